"""Perspective crop items: the tracking engine's crop model trains on crop cameras that look at one hand.

Legend: ``H`` hands (2), ``K`` joints (21).

A perspective crop (:class:`~handstream.geometry.crop_camera.CropCamera`) is a virtual pinhole camera turned
towards the hand, resampled from the frame through the real lens (:func:`handstream.engine.crops.resample`,
the engine's own resampler): no affine map of the frame, so the item's ``affine`` is the identity and its
``keypoints`` / ``box_size`` are crop pixels (the item dict: :mod:`handstream.train.items`). Training jitters
the crop the way a tracker's crops err (3D offset, roll, margin, acquisition crops through noisy 2D
keypoints) and mixes in negatives that look elsewhere.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from handstream.geometry.camera import Camera
from handstream.geometry.crop_camera import CropCamera, hand_crop, look_at_rotation
from handstream.train.augment import HandCropConfig
from handstream.train.items import OUT_OF_FRAME, SampleSpec, assemble_item


def _rolled(crop: CropCamera, angle_rad: float) -> CropCamera:
    """``crop`` turned about its optical axis by ``angle_rad`` (the image turns the other way)."""
    c, s = np.cos(angle_rad), np.sin(angle_rad)
    roll = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    return replace(crop, rotation=crop.rotation @ roll)


def _negative_crop(
    camera: Camera, joints: np.ndarray, size: tuple[int, int], hc: HandCropConfig, rng: np.random.Generator
) -> CropCamera:
    """A crop with no hand of its own: half the time the hand's crop moved 15-40 cm away (a lost track), else a
    crop looking at a random direction of the frame, at a hand's field of view, with any roll."""
    fw, fh = camera.size
    if rng.random() < 0.5 and np.isfinite(joints).all():
        d = rng.normal(size=3)
        d *= rng.uniform(0.15, 0.4) / max(float(np.linalg.norm(d)), 1e-9)
        crop = hand_crop(camera, joints + d, size, float(np.exp(rng.uniform(*np.log(hc.margin_range)))), hc.min_side)
        if crop is not None:
            return _rolled(crop, rng.normal(0.0, np.deg2rad(hc.roll_deg)))
    for _ in range(8):
        xy = camera.normalize(np.array([rng.uniform(0, fw - 1), rng.uniform(0, fh - 1)]))
        if np.isfinite(xy).all():
            break
    else:
        xy = np.zeros(2)
    rotation = look_at_rotation(np.array([xy[0], xy[1], 1.0]), None)
    side = float(rng.uniform(0.15, 0.6))  # tan-plane extent of a hand 0.3-1.2 m away
    crop = CropCamera(camera, rotation, max(size) / (hc.margin * side), (int(size[0]), int(size[1])))
    return _rolled(crop, rng.uniform(-np.pi, np.pi))


def _acquisition_crop(
    camera: Camera,
    keypoints: np.ndarray,
    in_frame: np.ndarray,
    size: tuple[int, int],
    margin: float,
    hc: HandCropConfig,
    rng: np.random.Generator,
) -> CropCamera | None:
    """The engine's acquisition crop of a hand (``Tracker._acquisition_crops``): :func:`hand_crop` through the rays
    of the detector's keypoints, here the labels of the joints inside the frame ((K, 2) px, (K,) bool) moved by
    Gaussian noise and each missed with probability 0.1."""
    kp = np.where(in_frame[:, None], np.asarray(keypoints, np.float64), np.nan)
    ok = np.isfinite(kp).all(axis=-1)
    if ok.sum() < 3:
        return None
    side = float((kp[ok].max(axis=0) - kp[ok].min(axis=0)).max())
    kp = kp + rng.normal(0.0, hc.acquisition_noise * max(side, hc.min_side), kp.shape)
    kp[rng.random(len(kp)) < 0.1] = np.nan
    if np.isfinite(kp).all(axis=-1).sum() < 3:
        return None
    return hand_crop(camera, camera.unproject(kp, depth=1.0), size, margin, hc.min_side)


_WHITE: dict[tuple, np.ndarray] = {}


def make_perspective_item(
    spec: SampleSpec,
    image: np.ndarray,
    camera: Camera,
    joints: np.ndarray,
    status: np.ndarray,
    rng: np.random.Generator | None,
    hand: int,
    hand_known: bool = True,
    jitter: bool = True,
    keypoints: np.ndarray | None = None,
    out_crop: list | None = None,
) -> dict[str, Any]:
    """One crop-model item: a perspective crop camera looking at hand ``hand`` (0 left, 1 right) of one frame
    (``spec.hand_crop.camera == "perspective"``), resampled by the engine's :func:`handstream.engine.crops.resample`.

    Args:
        image: (h, w) uint8 grey or (h, w, 3) uint8 BGR frame; camera: its camera (world = the joints' frame).
        joints: (H, K, 3) world points of both hands (metres; NaN = unknown).
        status: (H, K) int visibility codes of this view (as :func:`~handstream.train.items.make_item`; 4 = outside
            the frame).
        rng: None: the engine's rule exactly (:func:`~handstream.geometry.crop_camera.hand_crop` with ``margin``),
            no photometric change, no negative. Else, with ``jitter``: the joints moved by a random 3D offset
            (``offset_m``), a random roll (``roll_deg``, ``roll_outliers``), the margin drawn in ``margin_range``
            and photometric augmentation; without ``jitter`` (validation): the rule. Either way with probability
            ``negatives`` the crop looks elsewhere (:func:`_negative_crop`). With ``jitter`` and ``keypoints``,
            with probability ``acquisition`` the crop is the engine's acquisition crop instead: through the
            rays of the hand's in-frame 2D keypoints, noisy and some missed (:class:`HandCropConfig`).
        jitter: see ``rng``.
        keypoints: (H, K, 2) frame pixels of the joints in this view (for acquisition crops), or None.
        out_crop: a list the item's :class:`CropCamera` is appended to (tests, tools), or None.
    Returns:
        the item dict (module docstring) with ``affine`` the identity, ``keypoints`` the labels in crop pixels
        (the crop camera's projection of the true joints), ``box_size`` in crop pixels: validation measures in
        crop pixels. Labels cover both hands (the other one may be in the crop); a joint outside the real frame
        is "known absent" even where it falls inside the crop (whose pixels there are 0), as is a joint behind
        the crop camera. When hand ``hand`` has fewer than ``min_joints`` joints in the frame the crop goes to
        the other hand, or (neither, or the hand behind the camera) is a negative; validation scores only the
        crop's own hand.
    """
    from handstream.engine.crops import resample

    hc = spec.hand_crop
    codec = spec.codec
    size = codec.input_size
    J = np.asarray(joints, dtype=np.float64)
    status = np.asarray(status)
    known = np.isfinite(J).all(axis=-1) & (status >= 0)
    in_frame = known & (status < OUT_OF_FRAME)
    usable = in_frame.sum(axis=1) >= spec.min_joints
    target = hand if usable[hand] or not usable[1 - hand] else 1 - hand
    negative = not usable[target] or (rng is not None and rng.random() < hc.negatives)
    crop = None
    if not negative:
        if rng is not None and jitter:
            margin = float(np.exp(rng.uniform(*np.log(hc.margin_range))))
            if keypoints is not None and rng.random() < hc.acquisition:
                crop = _acquisition_crop(camera, keypoints[target], in_frame[target], size, margin, hc, rng)
            else:
                crop = hand_crop(camera, J[target] + rng.normal(0.0, hc.offset_m, 3), size, margin, hc.min_side)
            if crop is not None:
                if rng.random() < hc.roll_outliers:
                    roll = rng.uniform(-hc.roll_outlier_deg, hc.roll_outlier_deg)
                else:
                    roll = rng.normal(0.0, hc.roll_deg)
                crop = _rolled(crop, np.deg2rad(roll))
        if crop is None:
            crop = hand_crop(camera, J[target], size, hc.margin, hc.min_side)
        negative = crop is None
    if negative:
        crop = _negative_crop(camera, J[target], size, hc, rng if rng is not None else np.random.default_rng(0))
    if out_crop is not None:
        out_crop.append(crop)
    inp = resample([image], [0], [crop])[0]
    if rng is not None and jitter and spec.augment is not None:
        spec.augment.photometric(rng, inp)
        key = image.shape[:2]
        if key not in _WHITE:
            _WHITE.clear()
            _WHITE[key] = np.full(key, 255, np.uint8)
        inp[resample([_WHITE[key]], [0], [crop])[0] <= 0] = 0.0  # outside the frame stays 0, as in the engine
    uv = crop.project(J)  # (H, K, 2) crop px; NaN behind the crop camera
    in_frame &= np.isfinite(uv).all(axis=-1)
    status = np.where(known, status, -1)
    scored = in_frame.copy()
    scored[1 - target] = False
    if negative:
        scored[:] = False
    return assemble_item(spec, codec, inp, uv, crop.ray_angles(codec.stride), np.eye(3)[:2], uv, status,
                         in_frame, hand_known, scored)  # fmt: skip
