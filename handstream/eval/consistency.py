"""Label-free metrics: how well per-view 2D detections agree with each other and over time.

Legend: ``F`` frames (consecutive instants of one recording), ``V`` views, ``H`` hands (2: left, right),
``K`` joints (21), ``B`` bones (20, :data:`handstream.skeleton.BONES`).

For recordings without 3D truth (a real rig, the stereo clip): the detections of every frame are
triangulated the way the engine does it (RANSAC over views, both hands in one call, a hand kept when at least
``min_joints`` joints are triangulated), then scored on what must hold for any correct answer: the 3D joints
reproject onto the 2D detections, bones keep their length, and joints do not jump between frames. Lengths
are in the rig's units (metres when the calibration is in metres or was given a unit scale; the stereo clip's
calibration is in board squares of ~4 cm), so the bone figures are relative (%).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from handstream.engine.triangulation import TriangulationRule, triangulate_recording
from handstream.errors import HandstreamError
from handstream.geometry import Rig
from handstream.skeleton import BONES, HANDS, JOINT_NAMES, NUM_JOINTS

MIN_BONE_SAMPLES = 3
"""A bone's length variation is only measured over at least this many frames."""

PALM_BONE = (0, 9)
"""Wrist to middle-finger MCP: the hand's size, reported in rig units as a scale check."""


def _mean(x: np.ndarray) -> float:
    x = np.asarray(x, dtype=np.float64)
    x = x[np.isfinite(x)]
    return float(x.mean()) if x.size else float("nan")


def _median(x: np.ndarray) -> float:
    x = np.asarray(x, dtype=np.float64)
    x = x[np.isfinite(x)]
    return float(np.median(x)) if x.size else float("nan")


def consistency_metrics(
    rig: Rig,
    det,
    *,
    threshold_px: float = 12.0,
    min_views: int = 2,
    min_joints: int = 8,
) -> dict[str, Any]:
    """Multi-view and temporal consistency of 2D detections, without any 3D truth.

    Args:
        rig: the calibrated cameras, in the order of the detections' views axis.
        det: :class:`handstream.engine.offline.Detections2D`: keypoints (F, V, H, K, 2) distorted frame px
            (NaN = missing), conf (F, V, H, K); the F frames are consecutive instants.
        threshold_px: RANSAC inlier threshold, pixels (the engine's default, 12).
        min_views: views needed to triangulate a joint.
        min_joints: a hand is tracked in a frame when at least this many joints are triangulated (the
            engine's rule); the joints of untracked hands count nowhere below.
    Returns:
        A dict (plain floats and ints, NaN where nothing was measured):

        * ``frames``, ``views``, ``source``, ``settings``.
        * ``reprojection`` (pixels, distorted image pixels, i.e. where the detections are):

          - ``inlier_mean_px`` / ``inlier_median_px``: for each triangulated joint, the mean distance between
            its reprojection and the 2D points of the views RANSAC used; mean / median over joints. Small
            means the views it kept agree (it is at most ``threshold_px``-ish by construction).
          - ``all_views_mean_px`` / ``all_views_median_px``: the same over ALL views where the joint was
            detected, outliers included: it penalizes views that disagree (a wrong hand, a swapped label, a
            bad calibration of one camera).
          - ``inlier_rate``: fraction of the detections of triangulated joints that RANSAC used.
          - ``agreement_rate``: fraction of the joints detected in at least ``min_views`` views that RANSAC
            could triangulate (enough views within ``threshold_px``). With 2 views a disagreement leaves the
            joint out instead of raising the errors above: this is where it shows.
          - ``joints``: triangulated joints counted.
        * ``per_view``: camera name -> ``hand_found`` (fraction of frames where the view detected at least
          ``min_joints`` joints of some hand), ``reproj_mean_px`` (its mean distance to the reprojections,
          over its detections of triangulated joints), ``inlier_rate``.
        * ``hands``: ``left`` / ``right`` ->

          - ``coverage``: fraction of the F frames where the hand is tracked (>= ``min_joints`` joints);
            ``frames_tracked``: their count.
          - ``bone_cv_pct``: per bone (:data:`~handstream.skeleton.BONES`), the coefficient of variation
            (std / median) of its length over the frames where both its joints are triangulated (at least
            :data:`MIN_BONE_SAMPLES`), in %, averaged over the bones measured (``bones_measured``). Bones are
            rigid, so 0 is perfect; unit-free, so calibrations in board squares work. ``bone_cv_pct_median``:
            the median over bones; ``bone_cv_pct_per_bone``: ``"parent-child"`` joint names -> %.
          - ``palm_length``: median wrist to middle-MCP length, rig units (a scale check: ~0.09 m, ~2.0 units
            in the stereo clip).
          - ``jitter``: for each pair of consecutive frames where the hand is tracked in both, the mean over
            joints triangulated in both of the joint's displacement; the median over frame pairs, rig units
            per frame. It includes the real motion of the hand; ``jitter_2nd``: the same with the second
            difference ``|X[f+1] - 2 X[f] + X[f-1]|`` (three consecutive tracked frames), which cancels
            steady motion and leaves mostly the noise. ``jitter_pairs``: frame pairs counted.
    Raises:
        HandstreamError: when the detections' views do not match the rig.
    """
    kp = np.asarray(det.keypoints, dtype=np.float64)
    conf = np.asarray(det.conf, dtype=np.float64)
    if kp.ndim != 5 or kp.shape[-1] != 2 or kp.shape[2:4] != (len(HANDS), NUM_JOINTS):
        raise HandstreamError(f"detections: keypoints: expected (F, V, {len(HANDS)}, {NUM_JOINTS}, 2), got {kp.shape}")
    if conf.shape != kp.shape[:-1]:
        raise HandstreamError(f"detections: conf: expected {kp.shape[:-1]}, got {conf.shape}")
    F, V, H, K = conf.shape
    if V != len(rig):
        raise HandstreamError(f"detections have {V} views but the rig has {len(rig)} cameras ({', '.join(rig.names)})")
    if V < 2:
        raise HandstreamError(f"consistency metrics need at least 2 views to triangulate, got {V}")

    # the engine's rule; rig units are not metres, so no hand-extent rule
    t = triangulate_recording(rig, kp, conf, TriangulationRule(threshold_px, min_views, 0.0, max(int(min_joints), 1)))
    joints, inliers, valid, agreed = t.joints, t.inliers, t.valid, t.agreed
    tri_ok = np.isfinite(joints).all(axis=-1)  # (F, H, K)

    # reprojection into every view, distorted pixels: (V, F, H, K, 2) -> (F, V, H, K, 2)
    proj = np.moveaxis(rig.project(joints), 0, 1)
    dist = np.linalg.norm(proj - kp, axis=-1)  # NaN where either is missing
    seen = valid & tri_ok[:, None] & np.isfinite(dist)
    inl = inliers & seen
    with np.errstate(invalid="ignore", divide="ignore"):
        err_inl = np.where(inl, dist, 0.0).sum(axis=1) / inl.sum(axis=1)  # (F, H, K)
        err_all = np.where(seen, dist, 0.0).sum(axis=1) / seen.sum(axis=1)
    err_inl = err_inl[tri_ok]
    err_all = err_all[tri_ok]
    n_seen = int(seen.sum())
    multi = valid.sum(axis=1) >= min_views  # (F, H, K): detected in enough views to be triangulated
    reprojection = {
        "inlier_mean_px": _mean(err_inl),
        "inlier_median_px": _median(err_inl),
        "all_views_mean_px": _mean(err_all),
        "all_views_median_px": _median(err_all),
        "inlier_rate": float(inl.sum() / n_seen) if n_seen else float("nan"),
        "agreement_rate": float((agreed & multi).sum() / multi.sum()) if multi.any() else float("nan"),
        "joints": int(tri_ok.sum()),
    }

    per_view = {}
    found = (valid.sum(axis=-1) >= max(int(min_joints), 1)).any(axis=-1)  # (F, V)
    for v, name in enumerate(rig.names):
        sv = seen[:, v]
        per_view[name] = {
            "hand_found": float(found[:, v].mean()) if F else float("nan"),
            "reproj_mean_px": _mean(dist[:, v][sv]),
            "inlier_rate": float(inl[:, v].sum() / sv.sum()) if sv.any() else float("nan"),
        }

    hands = {}
    tracked = tri_ok.any(axis=-1)  # (F, H): untracked hands were blanked whole
    for h, side in enumerate(HANDS):
        X = joints[:, h]  # (F, K, 3)
        cvs = {}
        for a, b in BONES:
            length = np.linalg.norm(X[:, b] - X[:, a], axis=-1)
            length = length[np.isfinite(length)]
            if length.size >= MIN_BONE_SAMPLES and np.median(length) > 0:
                cvs[f"{JOINT_NAMES[a]}-{JOINT_NAMES[b]}"] = float(100.0 * length.std() / np.median(length))
        palm = np.linalg.norm(X[:, PALM_BONE[1]] - X[:, PALM_BONE[0]], axis=-1)
        step = np.linalg.norm(X[1:] - X[:-1], axis=-1)  # (F-1, K), NaN unless the joint is in both frames
        jit = np.array([_mean(s) for s in step]) if F > 1 else np.zeros(0)
        acc = np.linalg.norm(X[2:] - 2 * X[1:-1] + X[:-2], axis=-1) if F > 2 else np.zeros((0, K))
        jit2 = np.array([_mean(s) for s in acc]) if F > 2 else np.zeros(0)
        values = np.array(list(cvs.values()))
        hands[side] = {
            "coverage": float(tracked[:, h].mean()) if F else float("nan"),
            "frames_tracked": int(tracked[:, h].sum()),
            "bone_cv_pct": _mean(values),
            "bone_cv_pct_median": _median(values),
            "bones_measured": len(cvs),
            "bone_cv_pct_per_bone": cvs,
            "palm_length": _median(palm),
            "jitter": _median(jit),
            "jitter_2nd": _median(jit2),
            "jitter_pairs": int(np.isfinite(jit).sum()),
        }

    return {
        "frames": int(F),
        "views": int(V),
        "cameras": list(rig.names),
        "source": getattr(det, "source", ""),
        "settings": {"threshold_px": float(threshold_px), "min_views": int(min_views), "min_joints": int(min_joints)},
        "reprojection": reprojection,
        "per_view": per_view,
        "hands": hands,
    }


def evaluate_recording(
    sources: list[str | Path],
    calibration: str | Path | None = None,
    *,
    model: str | Path | None = None,
    teacher: str | Path | None = None,
    unit_scale: float | None = None,
    frames: tuple[int, int | None] = (0, None),
    mirrored: bool = False,
    threads: int = 0,
    threshold_px: float = 12.0,
    min_views: int = 2,
    min_joints: int = 8,
    progress: bool = False,
    refiner: str | Path | None = None,
    palm_detector: str | Path | None = None,
) -> dict[str, Any]:
    """Load a recording, detect 2D keypoints with a model or the teacher, and score their consistency.

    Args:
        sources: one video file / image folder per camera (in the calibration's order), or one synthetic
            dataset folder (its own calibration; its labels are not used).
        calibration: calibration file (needed unless ``sources`` is a synthetic dataset).
        model: a handstream model (``.onnx`` + manifest or ``.pt``), run by the engine's detect stage
            (:func:`handstream.engine.offline.predict_recording`); or
        teacher: a MediaPipe hand landmarker ``.task`` bundle (:func:`handstream.mediapipe.teacher_recording`).
            Exactly one of the two.
        unit_scale: metres per calibration length unit (None: the file's own, see ``load_calibration``).
        frames: (start, stop) frame range (stop None = to the end).
        mirrored: teacher only: the images are horizontally flipped (selfie view).
        threshold_px, min_views, min_joints: see :func:`consistency_metrics`.
        refiner: with ``model``: a refiner for the engine's refine stage (None: off).
        palm_detector: with a landmarks ``model``: an imported palm detector guiding its search (None: off).
    Returns:
        :func:`consistency_metrics`'s dict plus ``detector`` (``model:<path>`` / ``teacher:<path>``),
        ``recording`` (sources, calibration, frame range) and ``length_unit`` (``"m"`` with a unit scale or a
        synthetic dataset, else ``"calibration units"``), ``seconds`` (detection wall time).
    Raises:
        HandstreamError: one line for a missing/unreadable recording, calibration or model, a bad combination.
    """
    import time

    from handstream.capture.recording import open_recording

    if (model is None) == (teacher is None):
        raise HandstreamError("give either --model (a handstream model) or --teacher (a MediaPipe .task bundle)")
    if mirrored and teacher is None:
        raise HandstreamError("--mirrored: only with --teacher (it swaps MediaPipe's left/right labels)")
    if teacher is not None:
        from handstream.mediapipe import mediapipe_unavailable

        if not Path(teacher).is_file():
            raise HandstreamError(f"{teacher}: hand landmarker model (.task bundle) not found")
        why = mediapipe_unavailable(teacher)  # before minutes of reading the recording
        if why is not None:
            raise HandstreamError(f"--teacher: {why}")
    if model is not None and not Path(model).exists():
        raise HandstreamError(f"{model}: model not found")
    rec = open_recording(sources, calibration, unit_scale=unit_scale, frames=frames, progress=progress)
    if rec.rig is None:
        raise HandstreamError(
            "--calibration: the cameras' calibration is needed to triangulate (one camera per --recording, in order)"
        )
    if rec.num_views < 2:
        raise HandstreamError(f"--recording: triangulation needs at least 2 cameras, got {rec.num_views}")
    t0 = time.perf_counter()
    if teacher is not None:
        from handstream.mediapipe import teacher_recording

        det = teacher_recording(rec, teacher, progress=progress, mirrored=mirrored)
    else:
        from handstream.engine.offline import predict_recording

        det = predict_recording(rec, model, threads=threads, progress=progress, refiner=refiner, palm=palm_detector)
    seconds = time.perf_counter() - t0
    res = consistency_metrics(rec.rig, det, threshold_px=threshold_px, min_views=min_views, min_joints=min_joints)
    synthetic = rec.truth is not None
    res["detector"] = det.source + (f" + refiner:{refiner}" if model is not None and refiner else "")
    res["recording"] = dict(rec.source)
    res["length_unit"] = "m" if (unit_scale is not None or synthetic) else "calibration units"
    res["seconds"] = round(seconds, 3)
    return res
