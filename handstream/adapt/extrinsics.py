"""Camera extrinsics from hand keypoints alone: relative poses from 2D correspondences, metric scale from bones.

Legend: ``F`` frames, ``V`` views (cameras), ``H`` hands (2: left, right), ``K`` joints (21), ``B`` bones (20,
:data:`handstream.skeleton.BONES`), ``P`` observations of one view (``F * H * K``).

Without a calibration board, the hands themselves are the calibration target: a joint seen by two cameras
at the same instant is a point correspondence, thousands of them over a few hundred frames. The intrinsics
and lens model of every camera must be known (they are per camera model, unlike the poses, which change
whenever the cameras are moved); :func:`estimate_extrinsics` finds the poses.

Method (camera 0 is the world origin, ``R = I``, ``t = 0``):

1. **Normalized coordinates.** Every detection is undistorted with its camera's own lens model
   (:meth:`handstream.geometry.Camera.normalize`); from there on the cameras are ideal pinholes with
   ``K = I``, so fisheye, OpenCV and pinhole cameras mix freely. Thresholds are given in pixels and
   converted per camera with its focal length.
2. **First pair.** The camera sharing the most observations with camera 0 is placed by the essential
   matrix (``cv2.findEssentialMat`` with ``USAC_ACCURATE``: RANSAC with local optimization, 10-30x more
   accurate here than plain RANSAC, which keeps the best minimal 5-point model) and ``cv2.recoverPose``
   (the cheirality check picks the decomposition that puts the hands in front of both cameras). Its
   baseline is the unit of length until step 5.
3. **Every other camera** is placed, most-connected first, by ``cv2.solvePnPRansac`` against the joints
   triangulated so far (:meth:`handstream.geometry.Rig.triangulate`, RANSAC over the placed views). PnP keeps
   one consistent unit of length across all cameras, and it works for cameras that barely overlap camera 0
   (a headset's side cameras) as long as they see joints that two placed cameras see. A camera that sees
   too few triangulated joints but enough joints of one placed camera ``u`` is *chained*: essential matrix
   with ``u``, its baseline length set so that the hands it triangulates with ``u`` have the bone lengths of
   the reconstruction so far (less precise than PnP: its position is then only as good as the bone
   statistics, ~1%).
4. **Refinement** (``refine=True``): bundle adjustment, a Levenberg-Marquardt fit of all poses but camera 0's
   and all triangulated joints to the reprojection error in each camera's own *distorted pixels*
   (Huber-weighted, gross outliers dropped, the joints eliminated by the Schur complement), twice (the
   second time with the outliers re-selected). The RANSAC steps work on normalized coordinates, where a
   fisheye's pixel of noise near the border of its image is many times larger than at its centre, and
   leave 0.1-1 degree of error; the fit weights every observation as the detector measured it and brings
   rotations to a few hundredths of a degree on synthetic data.
5. **Metric scale.** All joints are triangulated with the final poses and each bone's length is measured in
   every frame where both of its joints were triangulated, *corrected for the triangulation noise*: the
   length of a noisy vector is biased upwards (``E|d|^2 = L^2 + tr(cov)``; with 1 px of detection noise and
   an 8 cm baseline the plain medians come out 4-5% long), so each sample's squared length is reduced by
   the trace of its covariance (from the views' Jacobians and the noise estimated from the residuals) and
   the samples are averaged with inverse-variance weights (:func:`_unbiased_bones`). Each bone's length is
   compared to the reference hand's (:func:`reference_bone_lengths` times ``hand_scale``); the scale is the
   median of the 20 ratios, and all translations are multiplied by it.

**The scale is only as good as the bone-length prior.** The reference is the synthetic adult hand of
:mod:`handstream.synth.hand` (middle fingertip 19 cm from the wrist); adult hands differ from it by ~±10%
(and a detector's joint centres differ from any skeleton's definition by a few millimetres), and every
translation inherits that error one to one: a 10% larger hand than assumed gives a rig 10% too small.
Rotations and translation *directions* do not depend on it. Pass ``hand_scale`` (the user's hand length
over the reference's, :func:`hand_scale_from_length`) when it is known. The synthetic data draws each
subject's scale in 0.8-1.2 and varies every bone by ~3%: with ``hand_scale`` set to the subject's scale the
per-bone variation averages out to well below 1% (tests/test_adapt_extrinsics.py), without it the error is
the subject's deviation from 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from handstream.errors import HandstreamError
from handstream.geometry import Camera, Rig
from handstream.geometry.camera import matrix_to_rodrigues, rodrigues_to_matrix
from handstream.skeleton import BONES, NUM_JOINTS

_PARENT = np.array([p for p, _ in BONES])
_CHILD = np.array([c for _, c in BONES])
_MIN_BONE_SAMPLES = 5  # a bone enters the scale estimate when measured in at least this many hand instances
_MAX_BONE_NOISE = 0.25  # bone samples noisier than this fraction of the bone's length are dropped ...
_MAX_BONE_NOISE_CHAIN = 0.4  # ... or this, when chaining (fewer samples; both sides measured alike)
_HUBER_PX = 2.0  # refinement: residuals above this (pixels) are down-weighted ...
_OUTLIER_PX = 12.0  # ... and above this dropped (a wrong detection, or a joint swapped between hands)
_TRIANGULATE_PX = 8.0  # RANSAC threshold of the triangulation, ideal pixels
_MAX_ESSENTIAL = 3000  # correspondences the essential matrix is estimated from (see _relative_pose)
_PNP_THRESHOLD = 4.0  # PnP's threshold over threshold_px: the joints it is given are noisy in depth
_MAX_BA_JOINTS = 20000  # joints the bundle adjustment uses at most (~300 frames of two hands in view)


# ------------------------------------------------------------------------------------------------
# The bone-length prior
# ------------------------------------------------------------------------------------------------


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
    return np.linalg.norm(joints[_CHILD] - joints[_PARENT], axis=-1) * _check_scale(hand_scale)


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


def _check_scale(hand_scale: Any) -> float:
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


def _unbiased_bones(joints: np.ndarray, cov: np.ndarray, max_noise: float = _MAX_BONE_NOISE) -> np.ndarray:
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
        (B,) lengths, units of ``joints``; NaN for a bone with fewer than ``_MIN_BONE_SAMPLES`` usable samples.
    """
    d = joints[:, _CHILD] - joints[:, _PARENT]
    d2 = np.sum(d * d, axis=-1)  # (N, B)
    tr = np.trace(cov, axis1=-2, axis2=-1)
    trd = tr[:, _CHILD] + tr[:, _PARENT]
    out = np.full(len(BONES), np.nan)
    for b in range(len(BONES)):
        ok = np.isfinite(d2[:, b]) & np.isfinite(trd[:, b])
        if ok.sum() < _MIN_BONE_SAMPLES:
            continue
        length, t = np.sqrt(d2[ok, b]), trd[ok, b]
        typical = np.median(length)
        keep = (np.sqrt(t) < max_noise * typical) & (np.abs(length - typical) < 0.6 * typical)
        if keep.sum() < _MIN_BONE_SAMPLES:
            continue
        w = 1.0 / (t[keep] + (0.02 * typical) ** 2)
        l2 = np.sum(w * (length[keep] ** 2 - t[keep])) / np.sum(w)
        if l2 > 0:
            out[b] = np.sqrt(l2)
    return out


# ------------------------------------------------------------------------------------------------
# Result
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExtrinsicsEstimate:
    """Camera poses estimated from hand keypoints (:func:`estimate_extrinsics`).

    Attributes:
        rig: the cameras as given (same order, names, intrinsics) with the estimated poses, metres; camera 0
            is the world origin (``R = I``, ``t = 0``).
        scale: metres per unit of the scale-free reconstruction (whose unit is the baseline between camera 0
            and the first camera placed, ``placed_by[...] == "essential"``): the length of that baseline.
        correspondences: (V,) per view, the hand-joint observations it was placed with: shared with camera 0
            (essential matrix), triangulated joints it sees (PnP), shared with the camera it was chained to;
            for camera 0, its observations shared with any other camera.
        inliers: (V,) per view, how many of those the RANSAC step kept (camera 0: = correspondences).
        placed_by: (V,) ``"origin"`` (camera 0), ``"essential"``, ``"pnp"`` or ``"chain"`` (see the module
            docstring).
        reference: (V,) the camera each view was placed against (camera 0's own name for camera 0 and the
            first pair; ``"triangulated"`` for PnP).
        reprojection_px: (V,) median reprojection error of each view's observations of the final
            triangulation, its own distorted pixels (outliers included in the median).
        bone_ratios: (B,) reference / measured length of each bone (NaN: measured too rarely); ``scale`` is
            their median; their spread shows how well the hands matched the prior.
        noise_px: the detection noise estimated from the final residuals (standard deviation per pixel
            coordinate, over the degrees of freedom); the bone lengths are corrected for it.
        hand_scale: the ``hand_scale`` the bone-length prior was multiplied by.
        refined: whether the pixel-space refinement ran.
    """

    rig: Rig
    scale: float
    correspondences: tuple[int, ...]
    inliers: tuple[int, ...]
    placed_by: tuple[str, ...]
    reference: tuple[str, ...]
    reprojection_px: tuple[float, ...]
    bone_ratios: np.ndarray = field(repr=False)
    noise_px: float = float("nan")
    hand_scale: float = 1.0
    refined: bool = True

    @property
    def bone_ratio_spread(self) -> float:
        """Interquartile range of :attr:`bone_ratios` relative to their median (0.05: bones disagree by ~5%)."""
        r = self.bone_ratios[np.isfinite(self.bone_ratios)]
        q1, q3 = np.percentile(r, [25, 75])
        return float((q3 - q1) / np.median(r))

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python (JSON-ready) record: cameras (poses), scale, per-view statistics."""
        views = []
        for v, cam in enumerate(self.rig):
            views.append(
                {
                    "name": cam.name,
                    "placed_by": self.placed_by[v],
                    "reference": self.reference[v],
                    "correspondences": int(self.correspondences[v]),
                    "inliers": int(self.inliers[v]),
                    "reprojection_px": _json_float(self.reprojection_px[v]),
                    "center_m": [float(x) for x in cam.center],
                }
            )
        return {
            "scale_m": float(self.scale),
            "hand_scale": float(self.hand_scale),
            "bone_ratio_spread": _json_float(self.bone_ratio_spread),
            "bone_ratios": [_json_float(x) for x in self.bone_ratios],
            "noise_px": _json_float(self.noise_px),
            "refined": bool(self.refined),
            "views": views,
            "cameras": [cam.to_dict() for cam in self.rig],
        }

    def describe(self) -> str:
        """A few lines for humans: one per camera, then the scale."""
        lines = []
        for v, cam in enumerate(self.rig):
            c = cam.center * 1000
            lines.append(
                f"{cam.name}: {self.placed_by[v]} ({self.reference[v]}), "
                f"{self.inliers[v]}/{self.correspondences[v]} inliers, reprojection {self.reprojection_px[v]:.2f} px, "
                f"centre ({c[0]:.1f}, {c[1]:.1f}, {c[2]:.1f}) mm"
            )
        lines.append(
            f"scale {self.scale:.4f} m per unit (hand_scale {self.hand_scale:g}, bones agree within "
            f"{100 * self.bone_ratio_spread:.1f}% IQR, detection noise {self.noise_px:.2f} px); translations are "
            "only as good as the hand-size prior"
        )
        return "\n".join(lines)


def _json_float(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


# ------------------------------------------------------------------------------------------------
# Estimation
# ------------------------------------------------------------------------------------------------


def estimate_extrinsics(
    cameras: Sequence[Camera] | Rig,
    keypoints: Any,
    conf: Any = None,
    *,
    hand_scale: float = 1.0,
    min_conf: float = 0.3,
    min_correspondences: int = 50,
    threshold_px: float = 1.5,
    refine: bool = True,
) -> ExtrinsicsEstimate:
    """Estimate the poses of V cameras with known intrinsics from hand keypoints seen in several of them.

    Shapes: ``keypoints (F, V, H, K, 2)`` distorted pixels as detected (NaN = not detected),
    ``conf (F, V, H, K)`` detection confidence (None = all 1). Returns an :class:`ExtrinsicsEstimate` whose
    ``rig`` has camera 0 at the origin and translations in metres (scale from bone lengths, see the module
    docstring: only as good as ``hand_scale``).

    Args:
        cameras: V >= 2 cameras (or a Rig) in the order of the views axis; their intrinsics, lens model,
            image size and names are used, their poses ignored.
        keypoints: the detections; the same ``(frame, hand, joint)`` in two views is one correspondence, so
            hands must be assigned consistently (left/right) across views.
        conf: per-detection weight; detections below ``min_conf`` (or NaN) are ignored.
        hand_scale: the user's hand relative to the reference hand (:func:`hand_scale_from_length`).
        min_conf: confidence threshold.
        min_correspondences: fewest shared observations a camera may be placed with.
        threshold_px: RANSAC inlier threshold of the essential matrix and PnP, pixels (converted to
            normalized units with each camera's focal length); ~1-2x the detector's noise.
        refine: run the pixel-space refinement (step 4 of the module docstring).
    Raises:
        HandstreamError: wrong shapes or arguments, or a camera that shares fewer than
            ``min_correspondences`` observations with the cameras placed before it (the message names both).
    """
    cams = tuple(cameras)
    V = len(Rig(cams))  # validates: Camera items, unique names
    if V < 2:
        raise HandstreamError(f"estimate_extrinsics: needs at least 2 cameras, got {V}")
    kp = np.asarray(keypoints, dtype=np.float64)
    if kp.ndim != 5 or kp.shape[1] != V or kp.shape[3] != NUM_JOINTS or kp.shape[4] != 2:
        raise HandstreamError(
            f"estimate_extrinsics: keypoints: expected shape (F, {V}, H, {NUM_JOINTS}, 2) for {V} cameras, "
            f"got {kp.shape}"
        )
    if conf is None:
        w = np.ones(kp.shape[:-1])
    else:
        w = np.asarray(conf, dtype=np.float64)
        if w.shape != kp.shape[:-1]:
            raise HandstreamError(f"estimate_extrinsics: conf: expected shape {kp.shape[:-1]}, got {w.shape}")
        w = np.where(np.isfinite(w), w, 0.0)
    hand_scale = _check_scale(hand_scale)
    if not (isinstance(min_correspondences, int | np.integer) and min_correspondences >= 8):
        raise HandstreamError(f"min_correspondences: expected an integer >= 8, got {min_correspondences!r}")
    if not float(threshold_px) > 0:
        raise HandstreamError(f"threshold_px: expected a positive number of pixels, got {threshold_px!r}")

    # (V, P, 2) pixels, normalized coordinates, weights; P = F * H * K observations per view
    pixels = np.moveaxis(kp, 1, 0).reshape(V, -1, 2).copy()  # a copy: invalid detections become NaN
    weights = np.moveaxis(w, 1, 0).reshape(V, -1)
    normalized = np.stack([cam.normalize(pixels[v]) for v, cam in enumerate(cams)])
    valid = np.isfinite(normalized).all(axis=-1) & (weights >= min_conf)
    pixels[~valid] = np.nan
    normalized[~valid] = np.nan
    weights = np.where(valid, weights, 0.0)
    thr = np.array([threshold_px / np.sqrt(cam.K[0, 0] * cam.K[1, 1]) for cam in cams])

    poses: list[tuple[np.ndarray, np.ndarray] | None] = [None] * V
    poses[0] = (np.eye(3), np.zeros(3))
    n_corr = [0] * V
    n_inl = [0] * V
    placed_by = [""] * V
    reference = [""] * V
    shared_any = (valid[0] & valid[1:].any(axis=0)).sum()
    n_corr[0] = n_inl[0] = int(shared_any)
    placed_by[0], reference[0] = "origin", cams[0].name

    # 2. first pair: the camera sharing the most observations with camera 0
    shared0 = np.array([(valid[0] & valid[v]).sum() for v in range(V)])
    shared0[0] = -1
    b = int(np.argmax(shared0))
    if shared0[b] < min_correspondences:
        raise _too_few(cams[b].name, int(shared0[b]), cams[0].name, min_correspondences)
    both = valid[0] & valid[b]
    R, t, inl = _relative_pose(normalized[0, both], normalized[b, both], float(np.sqrt(thr[0] * thr[b])))
    poses[b] = (R, t)
    n_corr[b], n_inl[b], placed_by[b], reference[b] = int(both.sum()), inl, "essential", cams[0].name

    # 3. the others: PnP against the joints triangulated so far, else chained to a placed camera
    while any(p is None for p in poses):
        placed = [v for v in range(V) if poses[v] is not None]
        X = _triangulate(cams, poses, placed, pixels, weights)
        seen3d = np.isfinite(X).all(axis=-1)
        todo = [v for v in range(V) if poses[v] is None]
        n3d = {v: int((seen3d & valid[v]).sum()) for v in todo}
        v = max(todo, key=lambda u: (n3d[u], -u))
        if n3d[v] >= min_correspondences:
            use = seen3d & valid[v]
            poses[v], inl = _pnp(X[use], normalized[v, use], float(_PNP_THRESHOLD * thr[v]))
            n_corr[v], n_inl[v], placed_by[v], reference[v] = n3d[v], inl, "pnp", "triangulated"
            continue
        pair = {(u, w_): int((valid[u] & valid[w_]).sum()) for w_ in todo for u in placed}
        u, v = max(pair, key=lambda k: (pair[k], -k[1], -k[0]))
        if pair[(u, v)] < min_correspondences:
            raise _too_few(cams[v].name, pair[(u, v)], cams[u].name, min_correspondences)
        poses[v], inl = _chain(cams, poses, placed, u, v, pixels, normalized, weights, valid, thr)
        n_corr[v], n_inl[v], placed_by[v], reference[v] = pair[(u, v)], inl, "chain", cams[u].name

    everyone = list(range(V))
    # 4. pixel-space refinement of the poses (camera 0 fixed)
    if refine:
        for _ in range(2):  # the second round re-selects the outliers with the refined poses
            X = _triangulate(cams, poses, everyone, pixels, weights)
            poses = _bundle_adjust(cams, poses, X, pixels, weights)

    # 5. metric scale from bone lengths
    measured, X, noise_px = _measure_bones(cams, poses, everyone, pixels, weights)
    ratios = reference_bone_lengths(hand_scale) / measured
    good = np.isfinite(ratios)
    if good.sum() < 5:
        raise HandstreamError(
            f"estimate_extrinsics: only {int(good.sum())} of {len(BONES)} bones were measured in "
            f">= {_MIN_BONE_SAMPLES} frames with both joints triangulated; need >= 5 for the metric scale "
            "(record more frames with whole hands seen by two cameras)"
        )
    scale = float(np.median(ratios[good]))

    rig = Rig(cam.with_pose(R, t * scale) for cam, (R, t) in zip(cams, poses, strict=True))  # type: ignore[misc]
    reproj = []
    for v, cam in enumerate(rig):
        err = np.linalg.norm(cam.project(X * scale) - pixels[v], axis=-1)
        err = err[np.isfinite(err)]
        reproj.append(float(np.median(err)) if err.size else float("nan"))
    return ExtrinsicsEstimate(
        rig=rig,
        scale=scale,
        correspondences=tuple(n_corr),
        inliers=tuple(n_inl),
        placed_by=tuple(placed_by),
        reference=tuple(reference),
        reprojection_px=tuple(reproj),
        bone_ratios=ratios,
        noise_px=noise_px,
        hand_scale=hand_scale,
        refined=bool(refine),
    )


def _too_few(name: str, count: int, other: str, need: int) -> HandstreamError:
    return HandstreamError(
        f"camera {name} shares {count} hand-joint observations with {other}; need >= {need} "
        "(record more frames with the hand seen by both)"
    )


def _relative_pose(a: np.ndarray, b: np.ndarray, thr: float) -> tuple[np.ndarray, np.ndarray, int]:
    """Pose of camera b relative to camera a from normalized correspondences a, b (N, 2).

    The essential matrix is found on at most ``_MAX_ESSENTIAL`` correspondences spread evenly over the
    input (USAC's local optimization grows faster than linearly with N; more points barely change the
    result, and the refinement uses all of them); the inliers are then counted on all of them.

    Returns:
        ``R (3, 3)``, unit ``t (3,)`` with ``X_b = R X_a + t``, and the number of correspondences within
        ``thr`` (Sampson distance, normalized units) of the epipolar geometry with the joint in front of
        both cameras.
    """
    I3 = np.eye(3)
    sub = np.linspace(0, len(a) - 1, min(len(a), _MAX_ESSENTIAL)).astype(int)
    # USAC_ACCURATE (RANSAC with local optimization) is 10-30x more accurate than plain RANSAC, which keeps
    # the best minimal 5-point model: 0.04-0.2 vs 1-3 degrees on thousands of hand joints with 1 px noise.
    method = getattr(cv2, "USAC_ACCURATE", cv2.RANSAC)
    E, _ = cv2.findEssentialMat(a[sub], b[sub], I3, method=method, prob=0.9999, threshold=thr, maxIters=5000)
    if E is None or E.shape[0] < 3:
        raise HandstreamError("estimate_extrinsics: the essential matrix could not be estimated (degenerate views)")
    best = None
    for i in range(0, E.shape[0] - E.shape[0] % 3, 3):  # the 5-point solver can return several solutions
        Ei = E[i : i + 3]
        mask = (_sampson(Ei, a, b) < thr).astype(np.uint8)[:, None]
        n, R, t, _ = cv2.recoverPose(Ei, a, b, I3, mask=mask)
        if best is None or n > best[0]:
            best = (n, R, t.reshape(3))
    assert best is not None
    n, R, t = best
    return R, t / np.linalg.norm(t), int(n)


def _sampson(E: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Sampson distance (N,) of correspondences a, b (N, 2) to the epipolar geometry ``b^T E a = 0``."""
    ha = np.concatenate([a, np.ones((len(a), 1))], axis=1)
    hb = np.concatenate([b, np.ones((len(b), 1))], axis=1)
    Ea = ha @ E.T
    Etb = hb @ E
    num = np.sum(hb * Ea, axis=1)
    den = Ea[:, 0] ** 2 + Ea[:, 1] ** 2 + Etb[:, 0] ** 2 + Etb[:, 1] ** 2
    return np.abs(num) / np.sqrt(np.maximum(den, 1e-300))


def _pnp(X: np.ndarray, xy: np.ndarray, thr: float) -> tuple[tuple[np.ndarray, np.ndarray], int]:
    """Pose (R, t) of a camera from 3D points X (N, 3) and their normalized coordinates xy (N, 2)."""
    ok, rvec, tvec, inliers = cv2.solvePnPRansac(
        X,
        xy,
        np.eye(3),
        None,
        iterationsCount=2000,
        reprojectionError=thr,
        confidence=0.9999,
        flags=cv2.SOLVEPNP_SQPNP,
    )
    if not ok or inliers is None or len(inliers) < 6:
        raise HandstreamError("estimate_extrinsics: PnP found no consistent pose (degenerate views)")
    idx = inliers.ravel()
    rvec, tvec = cv2.solvePnPRefineLM(X[idx], xy[idx], np.eye(3), None, rvec, tvec)
    return (rodrigues_to_matrix(rvec.ravel()), tvec.reshape(3)), int(len(idx))


def _chain(cams, poses, placed, u, v, pixels, normalized, weights, valid, thr):
    """Place camera v relative to placed camera u by the essential matrix; baseline length from bone lengths.

    The pair (u, v) with a unit baseline triangulates hands whose median bone lengths, compared with those of
    the reconstruction so far (all placed cameras), give the baseline in the reconstruction's unit.
    """
    both = valid[u] & valid[v]
    R_uv, t_uv, inl = _relative_pose(normalized[u, both], normalized[v, both], float(np.sqrt(thr[u] * thr[v])))
    pair_poses = [None] * len(cams)
    pair_poses[u], pair_poses[v] = (np.eye(3), np.zeros(3)), (R_uv, t_uv)
    ratio = _measure_bones(cams, poses, placed, pixels, weights, _MAX_BONE_NOISE_CHAIN)[0]
    ratio = ratio / _measure_bones(cams, pair_poses, [u, v], pixels, weights, _MAX_BONE_NOISE_CHAIN)[0]
    ratio = ratio[np.isfinite(ratio)]
    if ratio.size < 3:
        raise HandstreamError(
            f"camera {cams[v].name}: too few whole hands seen together with {cams[u].name} to chain its "
            "position (record more frames with whole hands seen by both)"
        )
    s = float(np.median(ratio))
    R_u, t_u = poses[u]
    return (R_uv @ R_u, R_uv @ t_u + s * t_uv), inl


def _triangulate(cams, poses, views, pixels, weights, full: bool = False):
    """(P, 3) joints triangulated from the given views with their current poses; NaN where < 2 views agree.

    ``full``: return the whole :class:`handstream.ops.Triangulation` (inliers (len(views), P)) instead.
    """
    rig = Rig(cams[v].with_pose(*poses[v]) for v in views)
    result = rig.triangulate(
        pixels[views], weights[views], method="ransac", threshold_px=_TRIANGULATE_PX, min_views=2, refine=True
    )
    return result if full else np.asarray(result.points)


def _measure_bones(cams, poses, views, pixels, weights, max_noise=_MAX_BONE_NOISE):
    """Triangulate with the given views and measure the bones, noise-corrected (:func:`_unbiased_bones`).

    The covariance of each joint is ``sigma^2 (sum_v B_v^T B_v)^-1`` over the views it was triangulated from
    (``B_v``: d pixels / d joint of view v), with ``sigma`` the detection noise estimated from the residuals
    (sum of squares over the degrees of freedom, ``2 * observations - 3 * joints``).

    Returns:
        lengths (B,) in the poses' unit (NaN: too rarely measured), joints (P, 3) and sigma in pixels.
    """
    tri = _triangulate(cams, poses, views, pixels, weights, full=True)
    X = np.asarray(tri.points)
    inl = np.asarray(tri.inliers)
    P = len(X)
    found = np.isfinite(X).all(axis=-1)
    info = np.zeros((P, 3, 3))
    sq, n_obs = 0.0, 0
    for i, v in enumerate(views):
        R, t = poses[v]
        m = found & inl[i] & np.isfinite(pixels[v]).all(axis=-1)
        pix, Jc = _pixel_jacobian(cams[v], X[m] @ R.T + t)
        B = Jc @ R
        info[m] += np.einsum("nki,nkj->nij", B, B)
        sq += float(np.sum((pix - pixels[v, m]) ** 2))
        n_obs += int(m.sum())
    dof = 2 * n_obs - 3 * int(found.sum())
    sigma2 = sq / dof if dof > 0 else float("nan")
    cov = np.full((P, 3, 3), np.nan)
    good = found & (np.linalg.det(info) > 0)
    cov[good] = sigma2 * np.linalg.inv(info[good])
    lengths = _unbiased_bones(X.reshape(-1, NUM_JOINTS, 3), cov.reshape(-1, NUM_JOINTS, 3, 3), max_noise)
    return lengths, X, float(np.sqrt(sigma2))


def _project(cam: Camera, R: np.ndarray, t: np.ndarray, X: np.ndarray) -> np.ndarray:
    """Distorted pixels (N, 2) of world points X (N, 3) for camera ``cam`` with pose (R, t); NaN behind it."""
    Xc = X @ R.T + t
    out = np.full((len(X), 2), np.nan)
    front = Xc[:, 2] > 1e-9
    out[front] = cam.distort(Xc[front, :2] / Xc[front, 2:3])
    return out


def _skew(a: np.ndarray) -> np.ndarray:
    """(N, 3) vectors -> (N, 3, 3) cross-product matrices ``[a]x``."""
    z = np.zeros(len(a))
    return np.stack(
        [
            np.stack([z, -a[:, 2], a[:, 1]], -1),
            np.stack([a[:, 2], z, -a[:, 0]], -1),
            np.stack([-a[:, 1], a[:, 0], z], -1),
        ],
        -2,
    )


def _pixel_jacobian(cam: Camera, Xc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distorted pixels (N, 2) of camera-frame points Xc (N, 3) and their Jacobian d(pixels)/d(Xc) (N, 2, 3).

    Central differences (the lens models have no analytic Jacobian here), step 1e-6 of the depth.
    """
    pix = cam.distort(Xc[:, :2] / Xc[:, 2:3])
    J = np.empty((len(Xc), 2, 3))
    h = 1e-6 * np.abs(Xc[:, 2])
    for i in range(3):
        d = np.zeros_like(Xc)
        d[:, i] = h
        plus, minus = Xc + d, Xc - d
        diff = cam.distort(plus[:, :2] / plus[:, 2:3]) - cam.distort(minus[:, :2] / minus[:, 2:3])
        J[:, :, i] = diff / (2 * h[:, None])
    return pix, J


def _bundle_adjust(cams, poses, X, pixels, weights, iterations: int = 6):
    """Joint Levenberg-Marquardt over all poses but camera 0's and the joints, in distorted pixels.

    Minimizes ``sum conf * huber(|reprojection error|)`` (``_HUBER_PX``) over the observations of the joints
    ``X (P, 3)`` whose reprojection error is below ``_OUTLIER_PX`` at the start (the others are outliers:
    wrong detections), at most ``_MAX_BA_JOINTS`` joints spread over the recording. The joints are
    eliminated with the Schur complement (3x3 blocks), leaving a 6(V-1) system. The overall scale is free
    (the gauge; LM damping keeps the system regular) and is set later from the bones. Returns the new poses.
    """
    V = len(cams)
    Rs = [np.array(p[0], dtype=np.float64) for p in poses]
    ts = [np.array(p[1], dtype=np.float64) for p in poses]
    finite = np.nonzero(np.isfinite(X).all(axis=-1))[0]
    ov, op = [], []
    for v in range(V):
        err = np.linalg.norm(_project(cams[v], Rs[v], ts[v], X[finite]) - pixels[v, finite], axis=-1)
        keep = np.nonzero(np.isfinite(err) & (err < _OUTLIER_PX) & (weights[v, finite] > 0))[0]
        ov.append(np.full(keep.size, v))
        op.append(keep)
    ov, op = np.concatenate(ov), np.concatenate(op)
    enough = np.bincount(op, minlength=finite.size) >= 2
    sel = enough[op]
    ov, op = ov[sel], op[sel]
    used = np.unique(op)
    if used.size > _MAX_BA_JOINTS:  # evenly over the recording: the poses need no more, memory grows with P
        used = used[np.linspace(0, used.size - 1, _MAX_BA_JOINTS).astype(int)]
        sel = np.isin(op, used)
        ov, op = ov[sel], op[sel]
    used, op = np.unique(op, return_inverse=True)  # point index of each observation, 0..P-1
    P = used.size
    if P < 10:
        return poses
    Xs = X[finite[used]].copy()
    uv = pixels[ov, finite[used][op]]
    conf = weights[ov, finite[used][op]]
    by_view = [np.nonzero(ov == v)[0] for v in range(V)]

    def residuals(Rs, ts, Xs):
        r = np.empty((len(ov), 2))
        for v in range(V):
            m = by_view[v]
            Xc = Xs[op[m]] @ Rs[v].T + ts[v]
            r[m] = cams[v].distort(Xc[:, :2] / Xc[:, 2:3]) - uv[m]
            r[m[Xc[:, 2] <= 1e-9]] = np.inf  # behind the camera: reject the step
        return r

    def cost(r):
        a = np.linalg.norm(r, axis=-1)
        if not np.all(np.isfinite(a)):
            return np.inf
        return float(np.sum(conf * np.where(a < _HUBER_PX, a * a, 2 * _HUBER_PX * a - _HUBER_PX**2)))

    r = residuals(Rs, ts, Xs)
    c = cost(r)
    lam = 1e-3
    done = False
    for _ in range(iterations):
        a = np.linalg.norm(r, axis=-1)
        w = conf * np.where(a < _HUBER_PX, 1.0, _HUBER_PX / np.maximum(a, 1e-12))  # IRLS weights
        A = np.empty((len(ov), 2, 6))  # d r / d (rotation increment, translation)
        B = np.empty((len(ov), 2, 3))  # d r / d X
        for v in range(V):
            m = by_view[v]
            RX = Xs[op[m]] @ Rs[v].T
            _, Jc = _pixel_jacobian(cams[v], RX + ts[v])
            A[m, :, :3] = -Jc @ _skew(RX)  # R <- exp(dw) R: d(Xc) = dw x RX
            A[m, :, 3:] = Jc
            B[m] = Jc @ Rs[v]
        Aw, Bw = A * w[:, None, None], B * w[:, None, None]
        AtA = np.matmul(Aw.transpose(0, 2, 1), A)
        Hcc = np.stack([AtA[m].sum(axis=0) for m in by_view])  # (V, 6, 6)
        gc = np.stack([np.matmul(Aw[m].transpose(0, 2, 1), r[m][:, :, None]).sum(axis=0)[:, 0] for m in by_view])
        Hpp = np.zeros((P, 3, 3))
        np.add.at(Hpp, op, np.matmul(Bw.transpose(0, 2, 1), B))
        gp = np.zeros((P, 3))
        np.add.at(gp, op, np.matmul(Bw.transpose(0, 2, 1), r[:, :, None])[:, :, 0])
        Hcp = np.zeros((P, V, 6, 3))  # camera-joint blocks; one observation per (joint, view)
        Hcp[op, ov] = np.matmul(Aw.transpose(0, 2, 1), B)
        Hcp_flat = Hcp.reshape(P, 6 * V, 3)
        improved = False
        for _ in range(10):
            Hcc_d = Hcc + lam * (np.einsum("vii->vi", Hcc)[:, :, None] * np.eye(6) + 1e-9 * np.eye(6))
            Hpp_d = Hpp + lam * (np.einsum("pii->pi", Hpp)[:, :, None] * np.eye(3) + 1e-9 * np.eye(3))
            Hpp_inv = np.linalg.inv(Hpp_d)
            T = np.matmul(Hcp_flat, Hpp_inv)  # (P, 6V, 3)
            T_rows = T.transpose(1, 0, 2).reshape(6 * V, 3 * P)
            S = -T_rows @ Hcp_flat.transpose(1, 0, 2).reshape(6 * V, 3 * P).T  # Schur complement
            for v in range(V):
                S[6 * v : 6 * v + 6, 6 * v : 6 * v + 6] += Hcc_d[v]
            rhs = -gc.reshape(6 * V) + T_rows @ gp.reshape(3 * P)
            dc = np.zeros(6 * V)
            try:
                dc[6:] = np.linalg.solve(S[6:, 6:], rhs[6:])  # camera 0 stays at the origin
            except np.linalg.LinAlgError:
                lam *= 10
                continue
            dcv = dc.reshape(V, 6)
            back = np.matmul(Hcp_flat.transpose(0, 2, 1), dc)  # (P, 3): sum_v Hcp[p, v]^T dc_v
            dX = np.matmul(Hpp_inv, (-gp - back)[:, :, None])[:, :, 0]
            Rs_new = [rodrigues_to_matrix(dcv[v, :3]) @ Rs[v] for v in range(V)]
            ts_new = [ts[v] + dcv[v, 3:] for v in range(V)]
            Xs_new = Xs + dX
            r_new = residuals(Rs_new, ts_new, Xs_new)
            c_new = cost(r_new)
            if c_new < c:
                done = c - c_new < 1e-9 * c
                Rs, ts, Xs, r, c = Rs_new, ts_new, Xs_new, r_new, c_new
                lam = max(lam / 10, 1e-7)
                improved = True
                break
            lam *= 10
        if not improved or done:
            break
    return [(Rs[v], ts[v]) for v in range(V)]


# ------------------------------------------------------------------------------------------------
# Comparison with a known calibration
# ------------------------------------------------------------------------------------------------


def _relative_to_first(rig: Rig) -> list[tuple[np.ndarray, np.ndarray]]:
    """(R, t) of every camera in the frame of camera 0: ``X_v = R X_cam0 + t``."""
    R0, t0 = rig[0].R, rig[0].t
    out = []
    for cam in rig:
        R = cam.R @ R0.T
        out.append((R, cam.t - R @ t0))
    return out


def _angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 or nb == 0:
        return float("nan")
    return float(np.degrees(np.arctan2(np.linalg.norm(np.cross(a, b)), a @ b)))


def extrinsics_error(estimated: Rig, truth: Rig) -> list[dict[str, Any]]:
    """Per camera, how far an estimated rig is from the true one, both re-expressed relative to their camera 0.

    Translations in metres. Each dict: ``name`` (the estimated camera's), ``rotation_deg`` (angle of
    ``R_est R_true^T``), ``translation_direction_deg`` (angle between the translations relative to camera 0),
    ``scale_ratio`` (``|t_est| / |t_true|``), ``position_error_mm`` (distance between the camera centres in
    camera 0's frame). Camera 0 is 0 / NaN / NaN / 0 by construction.

    Raises:
        HandstreamError: when the rigs differ in length.
    """
    if len(estimated) != len(truth):
        raise HandstreamError(f"extrinsics_error: {len(estimated)} estimated cameras vs {len(truth)} true ones")
    out = []
    pairs = zip(_relative_to_first(estimated), _relative_to_first(truth), strict=True)
    for cam, ((Re, te), (Rt, tt)) in zip(estimated, pairs, strict=True):
        dR = Re @ Rt.T
        rot = float(np.degrees(np.linalg.norm(matrix_to_rodrigues(dR))))
        nt = float(np.linalg.norm(tt))
        ce, ct = -Re.T @ te, -Rt.T @ tt
        out.append(
            {
                "name": cam.name,
                "rotation_deg": rot,
                "translation_direction_deg": _angle_deg(te, tt),
                "scale_ratio": float(np.linalg.norm(te) / nt) if nt > 0 else float("nan"),
                "position_error_mm": float(np.linalg.norm(ce - ct) * 1000),
            }
        )
    return out


__all__ = [
    "ExtrinsicsEstimate",
    "bone_lengths",
    "estimate_extrinsics",
    "extrinsics_error",
    "hand_scale_from_length",
    "reference_bone_lengths",
    "reference_hand_length",
]
