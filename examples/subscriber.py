"""Read poses from a running `handstream serve` with the handstream package.

    python examples/subscriber.py [tcp://127.0.0.1:5556]
"""

import sys

import numpy as np

import handstream
from handstream.skeleton import HandJoint

endpoint = sys.argv[1] if len(sys.argv) > 1 else "tcp://127.0.0.1:5556"
for pose in handstream.subscribe(endpoint):
    for hand in pose.hands:
        tip = hand.joints[HandJoint.INDEX_FINGER_TIP]
        if np.isfinite(tip).all():
            print(f"{pose.seq}: {hand.side} index tip at {tip * 100} cm (rig frame), seen by {hand.n_views[8]} views")
