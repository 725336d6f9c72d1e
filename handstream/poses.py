"""What the engine produces and a subscriber receives: the 3D hand poses of one synchronized frame set.

:class:`PoseMessage` (one frame set) holds 0-2 :class:`HandPose` (one hand). The engine's pipeline makes them,
the wire codec (:mod:`handstream.transport.encoding` / ``decoding``) sends them on the ``pose`` topic, the client
(:mod:`handstream.client`) and ``handstream subscribe`` read them. Nothing here knows about sockets.

Legend: ``H`` hands (2), ``K`` joints per hand (21), ``V`` views (cameras) used for a pose. Units: metres in
the rig frame, pixels, nanoseconds (``CLOCK_REALTIME``), milliseconds for stage timings.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from handstream.openxr import OpenXRHand, openxr_hand
from handstream.skeleton import HANDS, NUM_JOINTS


@dataclass
class HandPose:
    """One hand of a pose message (shape legend: ``K`` = 21 joints, ``V`` = ``len(PoseMessage.views)``).

    Attributes:
        side: ``"left"`` or ``"right"``.
        presence: probability that the hand is present, in ``[0, 1]``.
        joints: ``(K, 3)`` float32, metres, rig frame; NaN rows = not triangulated.
        conf: ``(K,)`` float32 per-joint confidence (NaN = unknown).
        reproj_error: ``(K,)`` float32 mean reprojection error per joint, pixels (NaN = unknown).
        n_views: ``(K,)`` uint8 number of views that supported each joint (``<= V``).
        joints_2d: optional ``(V, K, 2)`` float32 pixel coordinates per view in ``PoseMessage.views``
            order (NaN = not seen in that view).

    Decoded arrays are zero-copy views (row ``i`` of the message's stacked ``(H, ...)`` buffers).
    """

    side: str
    presence: float
    joints: np.ndarray
    conf: np.ndarray
    reproj_error: np.ndarray
    n_views: np.ndarray
    joints_2d: np.ndarray | None = None

    def openxr(self) -> OpenXRHand:
        """This hand in OpenXR's 26 ``XR_EXT_hand_tracking`` joints (positions, orientations, radii; which are
        measured and which synthesised: :mod:`handstream.openxr`). ``webxr(hand.openxr())`` gives WebXR's 25."""
        return openxr_hand(self.joints, self.side)


@dataclass
class PoseMessage:
    """The 3D hand pose of one synchronized frame set. Topic ``pose``.

    Attributes:
        seq: engine output sequence number (+1 per published pose).
        t_capture_ns: capture time of the frame set (``CLOCK_REALTIME``, ns).
        t_publish_ns: wall clock when the pose was published, ns (header key ``t_send_ns``);
            0 = fill in at encode time. ``t_publish_ns - t_capture_ns`` is the end-to-end latency.
        timings: milliseconds per stage, e.g. ``{"sync": 0.1, "infer": 6.2, "triangulate": 0.05}``.
        views: camera names used, in the order of ``HandPose.joints_2d``'s first axis.
        hands: 0-2 hands with distinct sides.
    """

    seq: int
    t_capture_ns: int
    t_publish_ns: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    views: list[str] = field(default_factory=list)
    hands: list[HandPose] = field(default_factory=list)

    def hand(self, side: str) -> HandPose | None:
        """The hand with this side (``"left"``/``"right"``), or None when the message has none."""
        return next((h for h in self.hands if h.side == side), None)

    def joints_array(self) -> np.ndarray:
        """3D joints of both hands as ``(H, K, 3)`` = ``(2, 21, 3)`` float32 metres, in
        :data:`handstream.skeleton.HANDS` order; a hand absent from the message is all NaN."""
        out = np.full((len(HANDS), NUM_JOINTS, 3), np.nan, dtype=np.float32)
        for h in self.hands:
            out[HANDS.index(h.side)] = h.joints
        return out
