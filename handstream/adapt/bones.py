"""The bone-length prior: the reference adult hand's bones, and bone lengths measured from noisy 3D hands.

Legend: ``N`` hand instances, ``K`` joints (21), ``B`` bones (20, :data:`handstream.skeleton.BONES`).

Hands are the metric ruler of adaptation without a calibration board: :func:`reference_bone_lengths` gives
the bones of :mod:`handstream.synth.hand`'s adult hand times ``hand_scale`` (:func:`hand_scale_from_length`
from a measured hand), :func:`unbiased_bone_lengths` the lengths of triangulated bones corrected for the
triangulation noise (:mod:`handstream.adapt.extrinsics` takes the metric scale from their ratio;
:mod:`handstream.adapt.pseudo` rejects hands whose bones disagree with the prior).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from handstream.errors import HandstreamError
from handstream.skeleton import BONES

_PARENT = np.array([p for p, _ in BONES])
_CHILD = np.array([c for _, c in BONES])
MIN_BONE_SAMPLES = 5
"""A bone enters the scale estimate when measured in at least this many hand instances."""
MAX_BONE_NOISE = 0.25
"""Bone samples noisier than this fraction of the bone's length are dropped (see :func:`unbiased_bone_lengths`)."""


def reference_bone_lengths(hand_scale: float = 1.0) -> np.ndarray:
    """Bone lengths of the synthetic adult hand (:mod:`handstream.synth.hand`) times ``hand_scale``.

    Computed from the hand model itself (forward kinematics of :class:`~handstream.synth.hand.HandShape` at
    scale 1, no per-bone jitter), so it follows the model if the model changes.

    Args:
        hand_scale: the user's hand size relative to the reference hand (1.0: middle fingertip 19 cm from
            the wrist; see :func:`hand_scale_from_length`).
    Returns:
        (B,) float64 metres, in the order of :data:`handstream.skeleton.BONES`.
    """
    from handstream.synth.hand import NUM_ANGLES, HandShape, forward_kinematics  # numpy only

    joints, _ = forward_kinematics(np.zeros(NUM_ANGLES), HandShape.from_scale(1.0))
    return np.linalg.norm(joints[_CHILD] - joints[_PARENT], axis=-1) * check_hand_scale(hand_scale)


def reference_hand_length() -> float:
    """Wrist to middle fingertip of the reference hand with straight fingers, metres (about 0.19)."""
    from handstream.synth.hand import NUM_ANGLES, HandShape, forward_kinematics

    joints, _ = forward_kinematics(np.zeros(NUM_ANGLES), HandShape.from_scale(1.0))
    return float(np.linalg.norm(joints[12] - joints[0]))


def hand_scale_from_length(hand_length_m: float) -> float:
    """``hand_scale`` for a hand measured from the wrist crease to the tip of the middle finger, in metres."""
    try:
        length = float(hand_length_m)
    except (TypeError, ValueError):
        raise HandstreamError(f"hand length: expected metres (e.g. 0.19), got {hand_length_m!r}") from None
    if not 0.08 <= length <= 0.35:
        raise HandstreamError(f"hand length: expected metres between 0.08 and 0.35 (e.g. 0.19), got {hand_length_m!r}")
    return length / reference_hand_length()


def check_hand_scale(hand_scale: Any) -> float:
    """``hand_scale`` as a float in 0.3-3; HandstreamError otherwise (1.0: the reference hand)."""
    try:
        s = float(hand_scale)
    except (TypeError, ValueError):
        raise HandstreamError(f"hand_scale: expected a number (1.0 = the reference hand), got {hand_scale!r}") from None
    if not 0.3 <= s <= 3.0:
        raise HandstreamError(f"hand_scale: expected a number between 0.3 and 3 (1.0 = the reference hand), got {s}")
    return s


def bone_lengths(joints: np.ndarray) -> np.ndarray:
    """Bone lengths of hands: joints (..., K, 3) -> (..., B), same unit; NaN where a joint is NaN."""
    return np.linalg.norm(joints[..., _CHILD, :] - joints[..., _PARENT, :], axis=-1)


def unbiased_bone_lengths(joints: np.ndarray, cov: np.ndarray, max_noise: float = MAX_BONE_NOISE) -> np.ndarray:
    """Each bone's length from noisy triangulated hands, corrected for the noise.

    The length of a noisy bone vector ``d = L + n`` is biased upwards: ``E|d|^2 = |L|^2 + tr(cov_n)``. With
    1 px of detection noise, hands 40 cm from cameras 8 cm apart have ~9 mm of depth noise per joint, and
    plain medians come out 4-5% too long overall (15-20% for the 2 cm fingertip bones). Here each
    sample's ``|d|^2`` is reduced by the trace of its covariance (the sum of its two joints'), samples whose
    noise exceeds ``max_noise`` times the bone's typical length are dropped (the correction is first-order),
    gross outliers (off the median by more than 60%) too, and the rest are averaged with weights
    ``1 / tr(cov)``.

    Args:
        joints: (N, K, 3) triangulated hands (NaN: not triangulated).
        cov: (N, K, 3, 3) covariance of each joint, squared units of ``joints``.
        max_noise: the noisiest samples used, as a fraction of the length.
    Returns:
        (B,) lengths, units of ``joints``; NaN for a bone with fewer than :data:`MIN_BONE_SAMPLES` usable samples.
    """
    d = joints[:, _CHILD] - joints[:, _PARENT]
    d2 = np.sum(d * d, axis=-1)  # (N, B)
    tr = np.trace(cov, axis1=-2, axis2=-1)
    trd = tr[:, _CHILD] + tr[:, _PARENT]
    out = np.full(len(BONES), np.nan)
    for b in range(len(BONES)):
        ok = np.isfinite(d2[:, b]) & np.isfinite(trd[:, b])
        if ok.sum() < MIN_BONE_SAMPLES:
            continue
        length, t = np.sqrt(d2[ok, b]), trd[ok, b]
        typical = np.median(length)
        keep = (np.sqrt(t) < max_noise * typical) & (np.abs(length - typical) < 0.6 * typical)
        if keep.sum() < MIN_BONE_SAMPLES:
            continue
        w = 1.0 / (t[keep] + (0.02 * typical) ** 2)
        l2 = np.sum(w * (length[keep] ** 2 - t[keep])) / np.sum(w)
        if l2 > 0:
            out[b] = np.sqrt(l2)
    return out
