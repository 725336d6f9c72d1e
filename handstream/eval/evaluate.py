"""Evaluate an exported estimator on a synthetic dataset, end to end as the engine runs it.

Legend: ``V`` views, ``H`` hands (2), ``K`` joints (21), ``(h, w)`` heatmap size.

Per frame: all views through the engine's own detect stage (:meth:`Pipeline.detect`: letterbox, ray angles,
ONNX Runtime, the manifest's codec, back to frame pixels, presence/confidence gates, and the refine stage
when a refiner is given), then RANSAC triangulation (:meth:`Rig.triangulate`) with all views and with a
pair of views. Nothing at inference reads the labels:
a hand's observations count in a view when the model's presence > ``presence_threshold`` and a joint's
heatmap peak > ``conf_threshold``. The labels are used only to score:

* 2D: EPE (frame pixels) and PCK@0.2 (of the hand's box size: the larger side of its visible-pixel box)
  over joints inside the frame, in views where the hand has >= ``min_joints`` joints inside the frame;
* 3D: MPJPE, PA-MPJPE (mm), PCK at 20..50 mm and its AUC, for every joint of the hands that have
  >= ``min_joints`` joints inside the frame of at least 2 of the views used; a joint the triangulation
  leaves NaN is a miss: excluded from the means, counted in ``coverage`` and as an error for PCK/AUC.

:func:`label_noise_floor` answers the question before the model: how precise must 2D be for this rig? It
triangulates the dataset's own 2D labels plus Gaussian noise (no model) and scores them the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from handstream import metrics
from handstream.config import EngineConfig
from handstream.engine.triangulation import TriangulationRule, triangulate_hands
from handstream.errors import HandstreamError
from handstream.models.manifest import load_manifest

OUT_OF_FRAME = 4


def default_pair(visibility: np.ndarray) -> tuple[int, int]:
    """The two views with the most joints inside the frame: visibility (T, V, H, K) codes -> (a, b), a < b."""
    counts = (visibility < OUT_OF_FRAME).sum(axis=(0, 2, 3))
    a, b = sorted(int(v) for v in np.argsort(-counts, kind="stable")[:2])
    return a, b


def _open_split(data: str | Path, pair: tuple[int, int] | None, limit: int | None):
    """The dataset, the labels of its first ``limit`` frames, and the checked 2-view pair (a, b)."""
    from handstream.synth.dataset import SynthDataset

    ds = SynthDataset(data)
    n_views = len(ds.rig)
    if n_views < 2:
        raise HandstreamError(f"{data}: needs at least 2 views to triangulate, the rig has {n_views}")
    frames = len(ds) if limit is None else min(int(limit), len(ds))
    labels = [ds.labels(i) for i in range(frames)]
    if pair is None:
        pair = default_pair(np.stack([lab["visibility"] for lab in labels]))  # (T, V, H, K)
    a, b = pair
    if not (0 <= a < n_views and 0 <= b < n_views and a != b):
        raise HandstreamError(f"--pair: expected two different views in 0..{n_views - 1}, got {a},{b}")
    return ds, labels, (a, b)


def _split_info(ds, data: str | Path, frames: int, pair: tuple[int, int]) -> dict[str, Any]:
    """What was scored: the dataset, its preset and seed, frames (the labels read), views, the 2-view pair."""
    return {
        "data": str(data),
        "preset": ds.manifest.get("preset"),
        "seed": ds.manifest.get("seed"),
        "frames": frames,
        "views": len(ds.rig),
        "pair": list(pair),
    }


def _triangulate(rig, sub, pair, kp, w, threshold_px, max_hand_extent_m, p3_all: list, p3_pair: list) -> None:
    """The engine's triangulate rule for one frame, with all views (appended to ``p3_all``) and with the pair
    (``p3_pair``); kp (V, H, K, 2) frame px, w (V, H, K). Synthetic rigs are in metres. No ``min_joints`` rule
    here: the score counts every joint of the hands the labels say are seen."""
    a, b = pair
    rule = TriangulationRule(threshold_px, EngineConfig().min_views, max_hand_extent_m, min_joints=0)
    for cams, k, c, out in ((rig, kp, w, p3_all), (sub, kp[[a, b]], w[[a, b]], p3_pair)):
        out.append(triangulate_hands(cams, k, c, rule).joints)


def _score_3d(pred: np.ndarray, gt: np.ndarray, hand_ok: np.ndarray) -> dict[str, float]:
    """pred, gt (T, H, K, 3) metres; hand_ok (T, H) bool -> 3D metrics in mm."""
    mask = np.broadcast_to(hand_ok[..., None], gt.shape[:-1])
    err, cov = metrics.point_errors(pred, gt, mask)
    n_total = int(mask.sum())
    all_err = np.concatenate([err, np.full(n_total - len(err), np.inf)])
    thr = np.array([0.020, 0.030, 0.040, 0.050])
    pck = metrics.pck_curve(all_err, thr)
    return {
        "mpjpe_mm": 1000 * float(err.mean()) if len(err) else float("nan"),
        "median_mm": 1000 * float(np.median(err)) if len(err) else float("nan"),
        "pa_mpjpe_mm": 1000 * metrics.pa_mpjpe(pred, gt, mask),
        "pck_20mm": float(pck[0]),
        "pck_30mm": float(pck[1]),
        "pck_40mm": float(pck[2]),
        "pck_50mm": float(pck[3]),
        "auc_20_50mm": metrics.auc(all_err, 0.020, 0.050),
        "coverage": float(cov),
        "joints": n_total,
        "hands": int(hand_ok.sum()),
    }


def evaluate(
    model: str | Path,
    data: str | Path,
    *,
    pair: tuple[int, int] | None = None,
    limit: int | None = None,
    presence_threshold: float = 0.5,
    conf_threshold: float = 0.2,
    threshold_px: float = 10.0,
    max_hand_extent_m: float = EngineConfig().max_hand_extent_m,
    min_joints: int = 3,
    threads: int = 0,
    progress: bool = False,
    refiner: str | Path | None = None,
) -> dict[str, Any]:
    """Run ``model`` (ONNX + manifest) on the synthetic dataset folder ``data``; returns the metrics dict.

    Args:
        pair: the two views of the 2-view figures (default: :func:`default_pair`).
        limit: evaluate only the first ``limit`` frames.
        presence_threshold, conf_threshold: inference gates (model outputs only).
        threshold_px: RANSAC inlier threshold, frame pixels.
        max_hand_extent_m: the engine's outlier rule (:func:`~handstream.engine.triangulation.drop_far_joints`).
        threads: ONNX Runtime intra-op threads (0: its default).
        refiner: a refiner model (ONNX + manifest with a ``crop`` rule) for the engine's refine stage, or None.
    """
    from handstream.engine.backends import open_backend
    from handstream.engine.pipeline import Pipeline

    manifest, artifact = load_manifest(model)
    if manifest.artifact_format != "onnx":
        raise HandstreamError(
            f"{model}: handstream eval runs ONNX models, this manifest says {manifest.artifact_format!r}"
        )
    ds, labels, (a, b) = _open_split(data, pair, limit)
    rig, sub, n_views, frames = ds.rig, ds.rig.subset([a, b]), len(ds.rig), len(labels)
    backend = open_backend(artifact, "onnxruntime", threads=threads)
    refine = open_backend(refiner, "onnxruntime", threads=threads) if refiner else None
    gates = EngineConfig(presence_threshold=presence_threshold, confidence_threshold=conf_threshold, tracking=False)
    pipe = Pipeline(rig, backend, gates, refiner=refine)

    kp2d_pred, kp2d_gt, in_frame, boxes = [], [], [], []
    p3_all, p3_pair, gt3 = [], [], []
    times: dict[str, list[float]] = {"infer": [], "refine": []}
    iterator = range(frames)
    if progress:
        from tqdm import tqdm

        iterator = tqdm(iterator, desc="eval", unit="frame")
    for i in iterator:
        images = [ds.image(i, v) for v in range(n_views)]
        timings: dict[str, float] = {}
        det = pipe.detect(list(rig.names), images, timings)  # the engine's own detect (+ refine) stage
        for k in times:
            times[k].append(timings.get(k, 0.0))
        kp, w = det.keypoints, det.conf
        _triangulate(rig, sub, (a, b), kp, w, threshold_px, max_hand_extent_m, p3_all, p3_pair)
        lab = labels[i]
        kp2d_pred.append(kp)
        kp2d_gt.append(lab["keypoints_2d"])
        in_frame.append(lab["visibility"] < OUT_OF_FRAME)
        box = lab["hand_box"].astype(np.float64)
        boxes.append(np.fmax(box[..., 2] - box[..., 0], box[..., 3] - box[..., 1]))
        gt3.append(lab["joints_3d"])

    pred2, gt2, inf = np.stack(kp2d_pred), np.stack(kp2d_gt), np.stack(in_frame)  # (T, V, H, K, ...)
    hand_in_view = inf.sum(axis=-1) >= min_joints  # (T, V, H)
    mask2 = inf & hand_in_view[..., None]
    _, cov2 = metrics.point_errors(pred2, gt2, mask2)
    gt3a = np.stack(gt3)
    res: dict[str, Any] = {
        "model": str(artifact),
        "refiner": str(refiner) if refiner else None,
        **_split_info(ds, data, frames, (a, b)),
        "settings": {
            "presence_threshold": presence_threshold,
            "conf_threshold": conf_threshold,
            "ransac_threshold_px": threshold_px,
            "max_hand_extent_m": max_hand_extent_m,
            "min_joints": min_joints,
        },  # fmt: skip
        "2d": {
            "epe_px": metrics.epe(pred2, gt2, mask2),
            "median_px": float(np.median(metrics.point_errors(pred2, gt2, mask2)[0])) if mask2.any() else float("nan"),
            "pck_0.2": metrics.pck_2d(pred2, gt2, np.stack(boxes), mask2, 0.2),
            "coverage": float(cov2),
            "joints": int(mask2.sum()),
        },
        f"3d_{n_views}view": _score_3d(np.stack(p3_all), gt3a, hand_in_view.sum(axis=1) >= 2),
        "3d_2view": _score_3d(np.stack(p3_pair), gt3a, hand_in_view[:, [a, b]].sum(axis=1) >= 2),
        "onnx_ms_per_frame": {
            "median": float(np.median(times["infer"])),
            "p90": float(np.percentile(times["infer"], 90)),
            "refine_median": float(np.median(times["refine"])) if refine else None,
            "views": n_views,
            "threads": threads or "default",
        },
    }
    return res


def evaluate_tracked(
    model: str | Path,
    data: str | Path,
    refiner: str | Path,
    *,
    engine: EngineConfig | None = None,
    smoothing: bool = True,
    limit: int | None = None,
    min_joints: int = 3,
    threads: int = 0,
    progress: bool = False,
) -> dict[str, Any]:
    """Score the engine's tracked path (:mod:`handstream.engine.tracking`) on a synthetic dataset, as it runs
    live: every frame set of a sequence through :meth:`Pipeline.process` in order (the tracker predicts each
    frame's crops from the previous poses; the detector runs only to acquire), the tracker reset at each new
    sequence, the One-Euro filter on unless ``smoothing`` is False. Nothing at inference reads the labels.

    Args:
        model: the detector (acquisition); refiner: the crop model.
        engine: the engine settings (default: :class:`EngineConfig`'s, i.e. the live defaults).
        limit: only the first ``limit`` frames; min_joints: a hand counts where it has at least this many joints
            inside the frame of >= 2 views (as :func:`evaluate`'s all-view figure).
    Returns:
        ``3d_tracked``: :func:`evaluate`'s 3D metrics (mm) over the scored hands; ``tracking``: the tracker's
        counters (acquisitions per frame set, crops per frame set, losses by reason); ``ms_per_frame``: the
        pipeline's wall time per frame set (median, p90).
    """
    import time

    from handstream.config import FilterConfig
    from handstream.engine.backends import open_backend
    from handstream.engine.pipeline import Pipeline

    manifest, artifact = load_manifest(model)
    ds, labels, pair = _open_split(data, None, limit)
    rig, frames = ds.rig, len(labels)
    cfg = engine or EngineConfig()
    pipe = Pipeline(
        rig, open_backend(artifact, "onnxruntime", threads=threads), cfg, FilterConfig(enabled=smoothing),
        refiner=open_backend(refiner, "onnxruntime", threads=threads),
    )  # fmt: skip
    if pipe.tracker is None:
        raise HandstreamError("evaluate_tracked: the engine settings turn tracking off (engine.tracking = false)")
    pred, gt, ok, wall = [], [], [], []
    iterator = range(frames)
    if progress:
        from tqdm import tqdm

        iterator = tqdm(iterator, desc="eval (tracked)", unit="frame")
    last_seq = None
    for i in iterator:
        lab = labels[i]
        seq = int(lab["sequence"])
        if seq != last_seq:  # a new sequence is a new scene: nothing carries over
            pipe.tracker.reset()
            pipe.filter.reset()
            last_seq = seq
        t_ns = int(round((seq * 1000.0 + float(lab["time_s"])) * 1e9))
        images = {n: ds.image(i, v) for v, n in enumerate(rig.names)}
        t0 = time.perf_counter()
        msg = pipe.process(images, t_ns)
        wall.append((time.perf_counter() - t0) * 1e3)
        pred.append(np.stack([h.joints for h in msg.hands]).astype(np.float64))
        gt.append(lab["joints_3d"])
        ok.append(((lab["visibility"] < OUT_OF_FRAME).sum(axis=-1) >= min_joints).sum(axis=0) >= 2)
    return {
        "model": str(artifact),
        "refiner": str(refiner),
        **_split_info(ds, data, frames, pair),
        "settings": {
            "max_views_per_hand": cfg.max_views_per_hand,
            "acquire_interval": cfg.acquire_interval,
            "smoothing": smoothing,
            "min_joints": min_joints,
        },
        "3d_tracked": _score_3d(np.stack(pred), np.stack(gt), np.stack(ok)),
        "tracking": pipe.tracker.stats.as_dict(),
        "ms_per_frame": {"median": float(np.median(wall)), "p90": float(np.percentile(wall, 90))},
    }


def label_noise_floor(
    data: str | Path,
    sigmas_px: list[float],
    *,
    pair: tuple[int, int] | None = None,
    limit: int | None = None,
    threshold_px: float = 10.0,
    max_hand_extent_m: float = EngineConfig().max_hand_extent_m,
    min_joints: int = 3,
    seed: int = 0,
) -> dict[str, Any]:
    """What the rig's geometry allows: 3D metrics of the labels' own 2D points plus Gaussian noise.

    No model runs. Every joint inside the frame of a view where its hand has >= ``min_joints`` joints in the
    frame is "detected" at its labelled 2D position plus N(0, sigma^2) per coordinate (frame pixels), weight 1,
    occluded joints included (the estimator reports them too); then the engine's RANSAC triangulation and
    outlier rule, and the 3D scoring of :func:`evaluate`. The 3D error at a given sigma is the floor a model
    with that 2D precision (and unbiased, independent errors) would reach on this layout: depth along
    short baselines magnifies 2D error.

    Args:
        sigmas_px: noise levels, frame pixels (standard deviation per coordinate; mean 2D error is about
            1.25 sigma); 0 gives the triangulation's own floor (undistortion and numerics only).
        pair, limit, threshold_px, max_hand_extent_m, min_joints: as in :func:`evaluate`.
        seed: noise seed (the result is reproducible).
    Returns:
        ``{"data", "preset", "seed", "frames", "views", "pair", "settings", "levels": [{"sigma_px",
        "epe_px", "3d_<V>view": {...}, "3d_2view": {...}}, ...]}``, 3D sections as in :func:`evaluate`.
    """
    sigmas = [float(s) for s in sigmas_px]
    if not sigmas or any(not np.isfinite(s) or s < 0 for s in sigmas):
        raise HandstreamError(f"--label-noise: expected pixel levels >= 0 like 0,1,2, got {sigmas_px!r}")
    ds, labels, (a, b) = _open_split(data, pair, limit)
    rig, sub, n_views, frames = ds.rig, ds.rig.subset([a, b]), len(ds.rig), len(labels)
    gt2 = np.stack([lab["keypoints_2d"] for lab in labels]).astype(np.float64)  # (T, V, H, K, 2)
    in_frame = np.stack([lab["visibility"] for lab in labels]) < OUT_OF_FRAME  # (T, V, H, K)
    gt3 = np.stack([lab["joints_3d"] for lab in labels])  # (T, H, K, 3)
    hand_in_view = in_frame.sum(axis=-1) >= min_joints  # (T, V, H)
    seen = in_frame & hand_in_view[..., None]  # what a perfect detector would report
    weight = seen.astype(np.float64)
    rng = np.random.default_rng(seed)
    levels = []
    for sigma in sigmas:
        noisy = gt2 + rng.normal(0.0, sigma, gt2.shape)
        noisy[~seen] = np.nan
        p3_all, p3_pair = [], []
        for i in range(frames):
            _triangulate(rig, sub, (a, b), noisy[i], weight[i], threshold_px, max_hand_extent_m, p3_all, p3_pair)
        levels.append({
            "sigma_px": sigma,
            "epe_px": metrics.epe(noisy, gt2, seen),
            f"3d_{n_views}view": _score_3d(np.stack(p3_all), gt3, hand_in_view.sum(axis=1) >= 2),
            "3d_2view": _score_3d(np.stack(p3_pair), gt3, hand_in_view[:, [a, b]].sum(axis=1) >= 2),
        })  # fmt: skip
    return {
        **_split_info(ds, data, frames, (a, b)),
        "settings": {
            "ransac_threshold_px": threshold_px,
            "max_hand_extent_m": max_hand_extent_m,
            "min_joints": min_joints,
            "noise_seed": seed,
        },
        "levels": levels,
    }
