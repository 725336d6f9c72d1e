"""Real single-view images with 2D hand keypoints: the ``annotations_op21.json`` layout of
``shared/data/real/images2d`` (read by training, :class:`handstream.train.data.Images2D`, and by
``handstream eval --images``, :mod:`handstream.eval.images`).

The JSON holds ``samples``: ``{file, width, height, hands: [{side, kpts2d: 21 x [x, y, v]}]}``, joints in
handstream's (MediaPipe/OpenPose) order, pixels; the images are in ``images/`` beside it. A joint with ``v > 0``
is labelled; ``side`` is ``"left"``, ``"right"`` or null (unknown).

Legend: ``K`` joints (21).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from handstream.errors import HandstreamError
from handstream.geometry.camera import Camera
from handstream.skeleton import NUM_JOINTS

ANNOTATIONS = "annotations_op21.json"
DEFAULT_REAL_FOV_DEG = 60.0
"""Horizontal field of view assumed for an image without a camera model, degrees."""


@dataclass
class LabelledHand:
    """One labelled hand: ``side`` (``left``, ``right`` or None: unknown), ``keypoints`` (K, 2) float64 px, NaN
    where not labelled."""

    side: str | None
    keypoints: np.ndarray


@dataclass
class LabelledImage:
    """One image file and its labelled hands."""

    file: Path
    hands: list[LabelledHand]


def read_annotations(path: str | Path) -> list[LabelledImage]:
    """Read an ``annotations_op21.json`` (or the folder holding it).

    Raises:
        HandstreamError: one line naming the file (and sample) when it is missing or malformed.
    """
    path = Path(path)
    if path.is_dir():
        path = path / ANNOTATIONS
    if not path.is_file():
        raise HandstreamError(f"{path}: annotation file not found (expected {ANNOTATIONS} beside an images/ folder)")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise HandstreamError(f"{path}: not readable JSON ({exc})") from None
    samples = data.get("samples") if isinstance(data, dict) else None
    if not isinstance(samples, list) or not samples:
        raise HandstreamError(f"{path}: expected an object with a non-empty 'samples' list")
    out = []
    for n, s in enumerate(samples):
        where = f"{path}: samples[{n}]"
        try:
            hands = []
            for hand in s["hands"]:
                arr = np.asarray(hand["kpts2d"], dtype=np.float64)
                if arr.shape != (NUM_JOINTS, 3):
                    raise HandstreamError(f"{where}: kpts2d: expected {NUM_JOINTS} x [x, y, v], got shape {arr.shape}")
                side = hand.get("side")
                if side not in (None, "left", "right"):
                    raise HandstreamError(f"{where}: side: expected 'left', 'right' or null, got {side!r}")
                hands.append(LabelledHand(side, np.where((arr[:, 2] > 0)[:, None], arr[:, :2], np.nan)))
            out.append(LabelledImage(path.parent / "images" / s["file"], hands))
        except (KeyError, TypeError, ValueError) as exc:
            raise HandstreamError(f"{where}: malformed sample ({exc})") from None
    return out


def pinhole_for(width: int, height: int, fov_deg: float = DEFAULT_REAL_FOV_DEG) -> Camera:
    """A centred pinhole camera of horizontal field of view ``fov_deg`` for an image without a camera model."""
    f = 0.5 * width / np.tan(np.deg2rad(fov_deg) / 2)
    return Camera("image", (width, height), [[f, 0, (width - 1) / 2], [0, f, (height - 1) / 2], [0, 0, 1]])
