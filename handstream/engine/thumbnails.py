"""Small live thumbnails of the cameras, republished by the engine on the pose socket (``engine.thumbnail_fps``).

Captures PUSH their frames to the engine, so nothing else can reach them; ``handstream view --include-2d`` needs
a picture under each view's 2D skeleton. After the engine publishes a pose it sends, for each camera that is due
(at most ``fps`` times a second per camera), that frame set's own frame downscaled to at most
:data:`MAX_SIDE` pixels on its longest side, as an ordinary :class:`~handstream.transport.FrameMessage` on
``frame.<camera>`` (grey or BGR as the camera gives). So a thumbnail is always the picture of a published pose:
the same capture time, and ``meta.pose_seq`` names the pose. Pose and status subscribers subscribe to the
``pose`` / ``status.`` prefixes only, so they never receive these (docs/wire-protocol.md).

Cost (docs/performance.md, "Thumbnails"): resize + encode + send of 4 x 640x480 grey is well under a
millisecond per frame set that is due, and the PUB socket never blocks (a slow subscriber's messages are dropped).
"""

from __future__ import annotations

import time
from collections.abc import Mapping

import cv2
import numpy as np

from handstream.transport.messages import FrameMessage

MAX_SIDE = 160
"""Longest side of a thumbnail, pixels."""


def thumbnail(image: np.ndarray, max_side: int = MAX_SIDE) -> np.ndarray:
    """``image`` ``(h, w)`` or ``(h, w, 3)`` uint8 scaled down by the smallest whole factor ``k`` that brings its
    longest side to at most ``max_side`` pixels (``cv2.INTER_AREA``: each thumbnail pixel is the mean of a k x k
    block). A whole factor is OpenCV's fast area path: 720x720 BGR -> 144x144 costs about half of -> 160x160.
    A small enough image is returned as it is. Returns ``(round(h / k), round(w / k)[, 3])`` uint8, C-contiguous."""
    h, w = image.shape[:2]
    k = -(-max(h, w) // max_side)  # ceil
    if k <= 1:
        return np.ascontiguousarray(image)
    size = (max(1, round(w / k)), max(1, round(h / k)))  # cv2 wants (width, height)
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


class Thumbnails:
    """When each camera's next thumbnail is due, and the messages for a frame set.

    Args:
        fps: most thumbnails per second per camera (> 0; the engine makes none when the key is 0).
        max_side: longest side, pixels.
    """

    def __init__(self, fps: float, max_side: int = MAX_SIDE):
        self.interval_s = 1.0 / float(fps)
        self.max_side = int(max_side)
        self._due: dict[str, float] = {}  # camera -> monotonic time of its next thumbnail
        self._seq: dict[str, int] = {}  # camera -> its thumbnails so far (the messages' seq)
        self.sent = 0
        self.dropped = 0  # the PUB socket refused (no peer for a moment; it never blocks)
        self.ms_total = 0.0  # resize + encode + send, all thumbnails

    def due(self, cameras: list[str], now: float) -> list[str]:
        """The cameras of ``cameras`` whose thumbnail is due at monotonic ``now`` (s), marked as sent. The schedule
        keeps ``fps`` on average (a frame set late by a few ms does not push every later one back) without ever
        bursting to catch up after a pause."""
        out = []
        for cam in cameras:
            t = self._due.get(cam)
            if t is not None and now < t:
                continue
            out.append(cam)
            nxt = (t if t is not None else now) + self.interval_s
            self._due[cam] = nxt if nxt > now else now + self.interval_s
        return out

    def messages(self, frames: Mapping[str, FrameMessage], pose_seq: int, now: float) -> list[FrameMessage]:
        """The thumbnails of the due cameras of ``frames`` (the frame set a pose was just published for):
        ``FrameMessage(camera, seq, t_capture_ns of the frame, image (h', w'[, 3]) uint8, meta)`` with ``meta``
        ``{"thumbnail": True, "width", "height": the full frame's size in pixels, "frame_seq": the capture's own
        seq, "pose_seq": the pose's seq}``."""
        out = []
        for cam in self.due(sorted(frames), now):
            msg = frames[cam]
            h, w = msg.image.shape[:2]
            seq = self._seq.get(cam, 0)
            self._seq[cam] = seq + 1
            meta = {"thumbnail": True, "width": int(w), "height": int(h), "frame_seq": int(msg.seq),
                    "pose_seq": int(pose_seq)}  # fmt: skip
            out.append(FrameMessage(cam, seq, msg.t_capture_ns, thumbnail(msg.image, self.max_side), meta=meta))
        return out

    def publish(self, publisher, frames: Mapping[str, FrameMessage], pose_seq: int) -> int:
        """Send the due thumbnails of ``frames`` on ``publisher`` (a :class:`~handstream.transport.PosePublisher`:
        never blocks). Returns how many were handed to ZeroMQ; the time it took is added to :attr:`ms_total`."""
        t0 = time.perf_counter()
        n = 0
        for msg in self.messages(frames, pose_seq, time.monotonic()):
            if publisher.send(msg):
                n += 1
            else:
                self.dropped += 1
        self.sent += n
        self.ms_total += (time.perf_counter() - t0) * 1e3
        return n

    def stats(self) -> dict[str, float | int]:
        """``{"fps", "sent", "dropped", "ms_total"}`` for the engine's status (``ms_total``: all of the step so far,
        ms: divided by the frame sets processed it is the cost per set averaged over time)."""
        return {"fps": round(1.0 / self.interval_s, 3), "sent": self.sent, "dropped": self.dropped,
                "ms_total": round(self.ms_total, 3)}  # fmt: skip
