"""Camera extrinsics from hand keypoints alone: relative poses from 2D correspondences, metric scale from bones.

This module holds the method (below), the estimate (:class:`ExtrinsicsEstimate`: poses, statistics, its
report) and the comparison with a known calibration (:func:`extrinsics_error`); the solvers of the steps
are in :mod:`handstream.adapt.pose_solver`, the bone-length prior in :mod:`handstream.adapt.bones`.

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
   the samples are averaged with inverse-variance weights (:func:`~handstream.adapt.bones.unbiased_bone_lengths`).
   Each bone's length is compared to the reference hand's (:func:`~handstream.adapt.bones.reference_bone_lengths`
   times ``hand_scale``); the scale is the median of the 20 ratios, and all translations are multiplied by it.

**The scale is only as good as the bone-length prior.** The reference is the synthetic adult hand of
:mod:`handstream.synth.hand` (middle fingertip 19 cm from the wrist); adult hands differ from it by ~±10%
(and a detector's joint centres differ from any skeleton's definition by a few millimetres), and every
translation inherits that error one to one: a 10% larger hand than assumed gives a rig 10% too small.
Rotations and translation *directions* do not depend on it. Pass ``hand_scale`` (the user's hand length
over the reference's, :func:`~handstream.adapt.bones.hand_scale_from_length`) when it is known. The synthetic
data draws each subject's scale in 0.8-1.2 and varies every bone by ~3%: with ``hand_scale`` set to the
subject's scale the per-bone variation averages out to well below 1% (tests/test_adapt_extrinsics.py),
without it the error is the subject's deviation from 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from handstream.adapt.bones import MIN_BONE_SAMPLES, check_hand_scale, reference_bone_lengths
from handstream.adapt.pose_solver import bundle_adjust, chain, measure_bones, pnp, relative_pose, triangulate
from handstream.errors import HandstreamError
from handstream.geometry import Camera, Rig
from handstream.geometry.camera import matrix_to_rodrigues
from handstream.records import json_safe
from handstream.skeleton import BONES, NUM_JOINTS

_PNP_THRESHOLD = 4.0  # PnP's threshold over threshold_px: the joints it is given are noisy in depth


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
                    "reprojection_px": json_safe(float(self.reprojection_px[v])),
                    "center_m": [float(x) for x in cam.center],
                }
            )
        return {
            "scale_m": float(self.scale),
            "hand_scale": float(self.hand_scale),
            "bone_ratio_spread": json_safe(float(self.bone_ratio_spread)),
            "bone_ratios": [json_safe(float(x)) for x in self.bone_ratios],
            "noise_px": json_safe(float(self.noise_px)),
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
        hand_scale: the user's hand relative to the reference hand
            (:func:`~handstream.adapt.bones.hand_scale_from_length`).
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
    hand_scale = check_hand_scale(hand_scale)
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
    R, t, inl = relative_pose(normalized[0, both], normalized[b, both], float(np.sqrt(thr[0] * thr[b])))
    poses[b] = (R, t)
    n_corr[b], n_inl[b], placed_by[b], reference[b] = int(both.sum()), inl, "essential", cams[0].name

    # 3. the others: PnP against the joints triangulated so far, else chained to a placed camera
    while any(p is None for p in poses):
        placed = [v for v in range(V) if poses[v] is not None]
        X = triangulate(cams, poses, placed, pixels, weights)
        seen3d = np.isfinite(X).all(axis=-1)
        todo = [v for v in range(V) if poses[v] is None]
        n3d = {v: int((seen3d & valid[v]).sum()) for v in todo}
        v = max(todo, key=lambda u: (n3d[u], -u))
        if n3d[v] >= min_correspondences:
            use = seen3d & valid[v]
            poses[v], inl = pnp(X[use], normalized[v, use], float(_PNP_THRESHOLD * thr[v]))
            n_corr[v], n_inl[v], placed_by[v], reference[v] = n3d[v], inl, "pnp", "triangulated"
            continue
        pair = {(u, w_): int((valid[u] & valid[w_]).sum()) for w_ in todo for u in placed}
        u, v = max(pair, key=lambda k: (pair[k], -k[1], -k[0]))
        if pair[(u, v)] < min_correspondences:
            raise _too_few(cams[v].name, pair[(u, v)], cams[u].name, min_correspondences)
        poses[v], inl = chain(cams, poses, placed, u, v, pixels, normalized, weights, valid, thr)
        n_corr[v], n_inl[v], placed_by[v], reference[v] = pair[(u, v)], inl, "chain", cams[u].name

    everyone = list(range(V))
    # 4. pixel-space refinement of the poses (camera 0 fixed)
    if refine:
        for _ in range(2):  # the second round re-selects the outliers with the refined poses
            X = triangulate(cams, poses, everyone, pixels, weights)
            poses = bundle_adjust(cams, poses, X, pixels, weights)

    # 5. metric scale from bone lengths
    measured, X, noise_px = measure_bones(cams, poses, everyone, pixels, weights)
    ratios = reference_bone_lengths(hand_scale) / measured
    good = np.isfinite(ratios)
    if good.sum() < 5:
        raise HandstreamError(
            f"estimate_extrinsics: only {int(good.sum())} of {len(BONES)} bones were measured in "
            f">= {MIN_BONE_SAMPLES} frames with both joints triangulated; need >= 5 for the metric scale "
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
    "estimate_extrinsics",
    "extrinsics_error",
]
