"""What the viewer's page draws besides the hands: the cameras of the calibration, the rig's "up", each pose's
joints projected into every view and the engine's camera thumbnails as JPEG with their own pose (``--include-2d``).

All geometry runs here, through the project's own camera model (:class:`~handstream.geometry.Camera`: pinhole,
OpenCV and fisheye lenses), so the page's JavaScript only draws lines: a fisheye camera's frustum is its real
image border, not a pinhole guess.
"""

from __future__ import annotations

import base64
import math
from pathlib import Path
from typing import Any

import numpy as np

from handstream.geometry import Rig, load_calibration
from handstream.poses import PoseMessage
from handstream.skeleton import HAND_CONNECTIONS, JOINT_NAMES
from handstream.transport.messages import FrameMessage

BORDER_SAMPLES = 4
"""Points per image edge in a frustum's outline (corners included once): a fisheye's border is curved."""

DEMO_PRESETS = ("headset4",)
"""Synthetic presets recognised by their camera names when no ``--calibration`` is given: ``serve --demo``'s
headset4 (four serial numbers). Not stereo: its ``left`` / ``right`` would match real cameras named so."""


def _rows(a: np.ndarray, decimals: int) -> list:
    """(..., n) floats -> nested lists, a row with a non-finite value -> None."""
    if a.ndim == 1:
        return [round(float(v), decimals) for v in a] if np.isfinite(a).all() else None
    return [_rows(x, decimals) for x in a]


def _border(width: int, height: int, n: int = BORDER_SAMPLES) -> np.ndarray:
    """(4 n, 2) pixels around the image border, clockwise from the top-left corner (pixel edges, not centres)."""
    t = np.arange(n) / n
    w, h = float(width), float(height)
    top = np.stack([t * w, np.zeros(n)], 1)
    right = np.stack([np.full(n, w), t * h], 1)
    bottom = np.stack([w - t * w, np.full(n, h)], 1)
    left = np.stack([np.zeros(n), h - t * h], 1)
    return np.concatenate([top, right, bottom, left]) - 0.5


def _border_rays(cam) -> np.ndarray:
    """(4 n, 3) unit world rays through the image border. Where the lens model cannot be inverted (a fisheye
    border beyond its valid angle) the pixel is pulled towards the principal point until it can."""
    px = _border(cam.width, cam.height)
    c = cam.K[:2, 2]
    rays = cam.unproject(px)
    for shrink in (0.9, 0.8, 0.6, 0.4):
        bad = ~np.isfinite(rays).all(axis=1)
        if not bad.any():
            break
        rays[bad] = cam.unproject(c + (px[bad] - c) * shrink)
    return rays


def rig_up(rig: Rig) -> np.ndarray:
    """(3,) unit "up" of the rig's world frame: the world axis (+-x, +-y, +-z) nearest to the cameras' mean up
    (minus their image y axis) when they agree (mean length > 0.8), else -y (OpenCV's convention: y points down,
    as in the synthetic presets' headset frame). Only for drawing a floor grid and orbiting around it."""
    ups = -np.stack([c.R[1] for c in rig.cameras])  # image y axis (down) of each camera, in the world frame
    mean = ups.mean(axis=0)
    if np.linalg.norm(mean) <= 0.8:
        return np.array([0.0, -1.0, 0.0])
    axis = int(np.argmax(np.abs(mean)))
    out = np.zeros(3)
    out[axis] = math.copysign(1.0, mean[axis])
    return out


def scene_message(rig: Rig | None, source: str, *, include_2d: bool, endpoint: str) -> dict[str, Any]:
    """The ``scene`` message the page gets on connect (and again when the cameras become known).

    Args:
        rig: the calibrated cameras (metres), or None when unknown (no frustums, no 2D views).
        source: where the cameras came from, as the page shows it (a file, a preset, or why there are none).
        include_2d: whether pose messages carry per-view 2D joints (``views2d``).
        endpoint: the engine's pose endpoint the server subscribes to.
    Returns:
        ``{"type": "scene", "source", "endpoint", "include_2d", "up": [3], "cameras": [...]}``; each camera:
        ``name``, ``size`` [w, h] pixels, ``model``, ``K`` (3, 3), ``dist``, ``R`` (3, 3) world -> camera, ``t``
        (3,) metres, ``center`` (3,) metres (world), ``border`` (4 n, 3) unit world rays through the image
        border, clockwise from the top-left, ``image_up`` (3,) unit world direction of the image's top; and the
        skeleton the page draws (``bones``: MediaPipe's 21 drawing edges, ``joint_names``), so it is written once.
    """
    cameras = []
    if rig is not None:
        for cam in rig.cameras:
            d = cam.to_dict()
            d["center"] = [round(float(v), 6) for v in cam.center]
            d["border"] = _rows(_border_rays(cam), 5)
            d["image_up"] = [round(float(v), 5) for v in -cam.R[1]]
            cameras.append(d)
    up = rig_up(rig) if rig is not None else np.array([0.0, -1.0, 0.0])
    return {"type": "scene", "source": source, "endpoint": endpoint, "include_2d": include_2d,
            "up": up.tolist(), "cameras": cameras, "bones": [list(b) for b in HAND_CONNECTIONS],
            "joint_names": list(JOINT_NAMES)}  # fmt: skip


def load_rig(calibration: str | Path, unit_scale: float | None = None) -> Rig:
    """``--calibration FILE`` (``--unit-scale``: metres per file unit) with the project's loader; raises
    HandstreamError (one line) for a missing or malformed file."""
    return load_calibration(calibration, unit_scale)


def preset_for_cameras(names: list[str]) -> tuple[str, Rig] | None:
    """The synthetic preset of :data:`DEMO_PRESETS` whose cameras are exactly ``names`` (any order), or None."""
    from handstream.synth.rigs import get_preset

    for preset in DEMO_PRESETS:
        rig = get_preset(preset).rig
        if sorted(rig.names) == sorted(names):
            return preset, rig
    return None


def project_views(rig: Rig, msg: PoseMessage) -> dict[str, list]:
    """Each hand's joints in every view of ``rig``: ``{camera: [[[u, v] | None] x 21] per hand, in msg.hands
    order}``, distorted pixels (0.1 px), None for a joint that is not tracked or behind the camera."""
    if not msg.hands:
        return {cam.name: [] for cam in rig.cameras}
    joints = np.stack([h.joints for h in msg.hands]).astype(np.float64)  # (H, 21, 3) metres
    return {cam.name: _rows(cam.project(joints), 1) for cam in rig.cameras}


JPEG_QUALITY = 80
"""Quality of the thumbnails sent to the pages (a 160x120 grey one is about 3-5 KB)."""


def thumbnail_message(frame: FrameMessage, rig: Rig | None, pose: PoseMessage | None) -> dict[str, Any]:
    """The ``thumbnail`` message of one engine thumbnail (``frame.<camera>``, :mod:`handstream.engine.thumbnails`).

    Args:
        frame: the thumbnail, ``image`` ``(h, w)`` grey or ``(h, w, 3)`` BGR uint8; ``meta`` has the full frame's
            ``width`` / ``height`` and the ``pose_seq`` of the pose of the same frame set.
        rig: the calibration (None: no joints).
        pose: that pose when the viewer still has it, else None.
    Returns:
        ``{"type": "thumbnail", "camera", "seq", "t_capture_ns", "pose_seq", "size": [w, h] of the thumbnail,
        "frame_size": [W, H] of the camera's frame, "jpeg": base64 JPEG, "hands": None or per hand of that pose
        {"side", "conf" (21,), "uv": [[u, v] | None] x 21 in the calibrated image's pixels}}``: the page scales the
        joints from the calibrated size to its canvas, so the skeleton lies on the picture it was found in.
    """
    import cv2

    ok, jpeg = cv2.imencode(".jpg", np.asarray(frame.image), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    h, w = frame.image.shape[:2]
    meta = frame.meta
    hands = None
    if pose is not None and rig is not None and frame.camera in rig.names:
        cam = rig[frame.camera]
        hands = [{"side": hd.side, "conf": [round(float(c), 3) if np.isfinite(c) else None for c in hd.conf],
                  "uv": _rows(cam.project(hd.joints.astype(np.float64)), 1)} for hd in pose.hands]  # fmt: skip
    return {"type": "thumbnail", "camera": frame.camera, "seq": frame.seq, "t_capture_ns": frame.t_capture_ns,
            "pose_seq": meta.get("pose_seq"), "size": [w, h],
            "frame_size": [meta.get("width", w), meta.get("height", h)],
            "jpeg": base64.b64encode(jpeg.tobytes()).decode("ascii") if ok else None, "hands": hands}  # fmt: skip
