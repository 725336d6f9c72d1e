"""Pseudo-labels by cross-view consensus (S2DHand, HaMuCo): 2D detections of every view -> RANSAC
triangulation -> joints that enough views agree on -> reprojected into every view as 2D labels.

Legend: ``F`` frames, ``V`` views, ``H`` hands (2), ``K`` joints (21).

Why it works: a view's wrong detection (the other hand, a finger swapped, a blurred tip) rarely agrees
with the other views in 3D, so RANSAC leaves it out and the label that view receives is the reprojection of
the point the others agree on: the view is corrected, not imitated. A joint no two views agree on gets no
label at all (it is "unknown", weight 0), so a wrong consensus needs several views to be wrong the same way.

Status codes of the labels are those of the training data (:func:`handstream.train.data.make_item`):
0 = labelled inside the frame, 4 = known to be outside the frame (or the hand is absent), -1 = unknown.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from handstream.adapt.bones import bone_lengths, reference_bone_lengths
from handstream.engine.offline import Detections2D
from handstream.engine.triangulation import TriangulationRule, triangulate_recording
from handstream.geometry import Rig
from handstream.skeleton import BONES, HANDS, NUM_JOINTS

LABELLED, OUTSIDE, UNKNOWN = 0, 4, -1


@dataclass(frozen=True)
class ConsensusConfig:
    """Rules of the consensus.

    Attributes:
        threshold_px: RANSAC inlier threshold: a view agrees with a 3D point when its detection is within
            this many pixels of the point's reprojection.
        min_views: views that must agree on a joint for it to be labelled (>= 2).
        min_conf: detections below this confidence are not used.
        min_presence: a view takes part for a hand only where its presence reaches this.
        min_joints: a hand is labelled in a frame only with at least this many agreed joints (fewer: the
            whole hand is unknown in that frame).
        absent_presence: a hand whose presence is below this in every view is labelled absent (no peaks,
            presence 0): that negative is as useful as a positive.
        bone_tolerance: a labelled joint whose bone to its parent differs from the reference length of that
            bone by more than this fraction is dropped (a consistent but anatomically wrong point).
        anatomy: the reference lengths: ``"metric"`` (the rig is in metres: the average adult hand,
            :func:`handstream.adapt.bones.reference_bone_lengths`; a hand whose median bone ratio is
            outside ``hand_scale_range`` is dropped whole) or ``"relative"`` (calibrations in unknown units:
            the recording's own median bone lengths, which only helps when most agreements are right).
        hand_scale_range: (min, max) plausible hand size relative to the average adult hand (metric).
    """

    threshold_px: float = 8.0
    min_views: int = 2
    min_conf: float = 0.3
    min_presence: float = 0.5
    min_joints: int = 10
    absent_presence: float = 0.1
    bone_tolerance: float = 0.35
    anatomy: str = "metric"
    hand_scale_range: tuple[float, float] = (0.7, 1.35)


@dataclass
class PseudoLabels:
    """Consensus labels of a recording.

    Attributes:
        keypoints: (F, V, H, K, 2) float64 frame pixels: reprojection of the agreed 3D joint (NaN: no label).
        status: (F, V, H, K) int8: 0 labelled, 4 known outside the frame / hand absent, -1 unknown.
        joints: (F, H, K, 3) float64 the agreed 3D joints, calibration units (NaN: none).
        inliers: (F, V, H, K) bool: the view's own detection agreed with the consensus.
        report: counts (see :func:`consensus_labels`).
    """

    keypoints: np.ndarray
    status: np.ndarray
    joints: np.ndarray
    inliers: np.ndarray
    report: dict[str, Any] = field(default_factory=dict)

    def save(self, path) -> None:
        np.savez_compressed(
            path, keypoints=self.keypoints, status=self.status, joints=self.joints, inliers=self.inliers
        )


def consensus_labels(rig: Rig, det: Detections2D, cfg: ConsensusConfig | None = None) -> PseudoLabels:
    """Pseudo-labels for every view of every frame from the detections of all views.

    Args:
        rig: the calibrated cameras, in the order of the detections' views axis.
        det: per-view 2D detections (model or teacher), :class:`Detections2D`.
        cfg: the consensus rules.
    Returns:
        :class:`PseudoLabels`; ``report`` has ``labelled_joints`` (per view: joints given a label inside the
        frame), ``agreed`` (of those, where the view's own detection was an inlier), ``corrected`` (the view
        had a detection that disagreed: it is taught the consensus instead), ``filled`` (the view had no
        detection), ``rejected`` (detections that found no agreement), hands ``labelled`` / ``absent`` /
        ``unknown`` per hand.
    """
    cfg = cfg or ConsensusConfig()
    if cfg.min_views < 2:
        raise ValueError("consensus needs min_views >= 2")
    F, V, H, K = det.conf.shape
    if V != len(rig):
        raise ValueError(f"detections have {V} views, the rig {len(rig)} cameras")
    use = (det.conf >= cfg.min_conf) & (det.presence[..., None] >= cfg.min_presence)
    use &= np.isfinite(det.keypoints).all(axis=-1)
    # the engine's rules over the whole recording in one call; the hand-level rule comes after the anatomy check
    # (rig units, so no hand-extent rule; min_joints after the anatomy check)
    rule = TriangulationRule(cfg.threshold_px, cfg.min_views, max_hand_extent_m=0.0, min_joints=0)
    t = triangulate_recording(rig, det.keypoints, np.where(use, det.conf, 0.0), rule)
    joints, inliers, agreed = t.joints, t.inliers, t.agreed

    # anatomy: a point the views agree on can still be wrong (two views agreeing along an epipolar line);
    # bones of implausible length expose it
    lengths = bone_lengths(joints)  # (F, H, B)
    child = np.array([c for _, c in BONES])
    if cfg.anatomy == "metric":
        ratio = lengths / reference_bone_lengths(1.0)
        with warnings.catch_warnings():  # a hand with no triangulated bone: NaN, and numpy says so
            warnings.simplefilter("ignore", RuntimeWarning)
            hand_scale = np.nanmedian(ratio, axis=-1)  # (F, H)
        lo, hi = cfg.hand_scale_range
        implausible = ~((hand_scale >= lo) & (hand_scale <= hi))  # NaN (no bone) counts as implausible
        agreed &= ~implausible[..., None]
        typical = reference_bone_lengths(1.0) * np.where(np.isfinite(hand_scale), hand_scale, 1.0)[..., None]
    elif cfg.anatomy == "relative":
        typical = np.nanmedian(lengths, axis=(0, 1)) if np.isfinite(lengths).any(axis=(0, 1)).all() else None
    else:
        raise ValueError(f"anatomy must be 'metric' or 'relative', got {cfg.anatomy!r}")
    if typical is not None:
        bad = np.abs(lengths / typical - 1.0) > cfg.bone_tolerance  # NaN compares False
        drop = np.zeros_like(agreed)
        drop[..., child] = bad
        agreed &= ~drop
    hand_ok = agreed.sum(axis=-1) >= cfg.min_joints  # (F, H)
    agreed &= hand_ok[..., None]
    joints[~agreed] = np.nan
    inliers &= agreed[:, None]
    absent = (det.presence < cfg.absent_presence).all(axis=1) & ~hand_ok  # (F, H)

    keypoints = np.full((F, V, H, K, 2), np.nan)
    status = np.full((F, V, H, K), UNKNOWN, np.int8)
    for v, cam in enumerate(rig):
        w, h = cam.size
        pts = joints.reshape(-1, 3)
        ok = np.isfinite(pts).all(axis=-1)
        proj = np.full((len(pts), 2), np.nan)
        if ok.any():
            in_front = cam.world_to_camera(pts[ok])[:, 2] > 1e-6 * max(1.0, float(np.nanmax(np.abs(pts[ok]))))
            p = np.full((int(ok.sum()), 2), np.nan)
            if in_front.any():
                p[in_front] = cam.project(pts[ok][in_front])
            proj[ok] = p
        proj = proj.reshape(F, H, K, 2)
        inside = (
            np.isfinite(proj).all(axis=-1)
            & (proj[..., 0] >= 0)
            & (proj[..., 0] <= w - 1)
            & (proj[..., 1] >= 0)
            & (proj[..., 1] <= h - 1)
        )
        lab = agreed & inside
        keypoints[:, v][lab] = proj[lab]
        status[:, v][lab] = LABELLED
        status[:, v][agreed & ~inside] = OUTSIDE
        status[:, v][np.broadcast_to(absent[..., None], (F, H, K))] = OUTSIDE

    labelled = status == LABELLED
    own = use & labelled
    report = {
        "frames": F,
        "views": list(rig.names),
        "labelled_joints": labelled.sum(axis=(0, 2, 3)).tolist(),
        "agreed": (own & inliers).sum(axis=(0, 2, 3)).tolist(),
        "corrected": (own & ~inliers).sum(axis=(0, 2, 3)).tolist(),
        "filled": (labelled & ~use).sum(axis=(0, 2, 3)).tolist(),
        "rejected": (use & ~labelled & (status != OUTSIDE)).sum(axis=(0, 2, 3)).tolist(),
        "hands": {
            side: {
                "labelled": int(hand_ok[:, i].sum()),
                "absent": int(absent[:, i].sum()),
                "unknown": int((~hand_ok[:, i] & ~absent[:, i]).sum()),
            }
            for i, side in enumerate(HANDS)
        },
    }
    assert H == len(HANDS) and K == NUM_JOINTS
    return PseudoLabels(keypoints, status, joints, inliers, report)


def merge_labels(primary: PseudoLabels, fallback: PseudoLabels) -> PseudoLabels:
    """Per (frame, hand): the primary labels where they label the hand (any view labelled), else the
    fallback's (e.g. the student's consensus first, the teacher's where the student has none)."""
    use_p = (primary.status == LABELLED).any(axis=(1, 3))  # (F, H)
    use_f = ~use_p & (fallback.status >= 0).any(axis=(1, 3))
    take = use_f[:, None, :, None]  # (F, 1, H, 1) over views and joints
    status = np.where(take, fallback.status, primary.status)
    keypoints = np.where(take[..., None], fallback.keypoints, primary.keypoints)
    joints = np.where(use_f[..., None, None], fallback.joints, primary.joints)
    inliers = np.where(take, fallback.inliers, primary.inliers)
    report = dict(primary.report)
    report["from_fallback_hands"] = {side: int(use_f[:, i].sum()) for i, side in enumerate(HANDS)}
    report["labelled_joints"] = (status == LABELLED).sum(axis=(0, 2, 3)).tolist()
    return PseudoLabels(keypoints, status, joints, inliers, report)


def label_error(labels: PseudoLabels, truth_2d: np.ndarray, visibility: np.ndarray) -> dict[str, float]:
    """Scoring only (synthetic recordings): pixel error of the labels against the true 2D joints, over
    labelled joints inside the frame. ``truth_2d`` (F, V, H, K, 2) px, ``visibility`` (F, V, H, K) codes."""
    m = (labels.status == LABELLED) & (visibility < OUTSIDE)
    if not m.any():
        return {"label_epe_px": float("nan"), "label_median_px": float("nan"), "labelled": 0}
    err = np.linalg.norm(labels.keypoints[m] - truth_2d[m], axis=-1)
    return {"label_epe_px": float(err.mean()), "label_median_px": float(np.median(err)), "labelled": int(m.sum())}
