"""Latency benchmark of the live system: the same code as ``handstream bench`` (see handstream/bench/).

    python benchmarks/latency.py --seconds 20                       # 4 cameras 640x480 @ 30 fps, real processes
    python benchmarks/latency.py --sweep --compare mediapipe        # + views x resolutions, + MediaPipe
    python benchmarks/latency.py --model random-init --seconds 5    # before a trained model exists

Prints tables and writes handstream-bench/latency.json and latency.png (``--out DIR``); ``--help`` lists all.
"""

from __future__ import annotations

import sys

from handstream.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
