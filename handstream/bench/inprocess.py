"""The in-process runs: :class:`~handstream.engine.pipeline.Pipeline` on the same frames without sockets, both engine
paths (tracked, detect every frame) side by side, and the sweep over views x resolutions.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from handstream.bench.inputs import bench_rig
from handstream.bench.measure import ProcessMonitor, fmt, summarize, tracking_delta
from handstream.bench.options import PIPELINE_STAGES, SWEEP_SETTLE, SWEEP_WARMUP_CALLS
from handstream.capture.material import FrameSets, render_frames
from handstream.skeleton import HANDS


def run_inprocess(
    pipeline,
    frames: FrameSets,
    *,
    calls: int,
    fps: float | None,
    warmup_calls: int = 5,
) -> dict[str, Any]:
    """Time :meth:`Pipeline.process` on ``frames`` (cycled): ``calls`` timed calls after ``warmup_calls``,
    paced at ``fps`` (a call starts when its frame is due; ``fps`` None: back to back).

    Returns ``calls``, ``latency_ms`` (``total`` = the call's wall time, and each of :data:`PIPELINE_STAGES`),
    ``capacity_fps`` (1000 / mean total: the rate this pipeline could sustain alone), ``samples``.
    """
    period = None if not fps else 1.0 / fps
    t_cap = time.time_ns()
    for i in range(warmup_calls):
        pipeline.process(frames.frames(i), t_cap + i * 33_000_000, {})
    total: list[float] = []
    stages: dict[str, list[float]] = {s: [] for s in PIPELINE_STAGES}
    t_next = time.perf_counter()
    for i in range(calls):
        if period is not None:
            delay = t_next - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            t_next += period
        f = frames.frames(warmup_calls + i)
        t = time.perf_counter()
        msg = pipeline.process(f, time.time_ns(), {})
        total.append((time.perf_counter() - t) * 1e3)
        for s in PIPELINE_STAGES:
            stages[s].append(float(msg.timings.get(s, float("nan"))))
    lat = {"total": summarize(total), **{s: summarize(v) for s, v in stages.items()}}
    lat["outside_pipeline"] = summarize(np.asarray(total) - np.nansum([stages[s] for s in PIPELINE_STAGES], axis=0))
    mean = lat["total"]["mean"]
    return {
        "calls": calls,
        "paced_fps": fps,
        "latency_ms": lat,
        "capacity_fps": round(1000.0 / mean, 2) if mean else None,
        "samples": {
            "total_ms": [round(x, 3) for x in total],
            **{f"{s}_ms": [round(x, 3) for x in v] for s, v in stages.items()},
        },
    }


def _time_calls(pipeline, frames: FrameSets, indices: Sequence[int], t0_ns: int, period_ns: int) -> dict[str, Any]:
    """Back-to-back :meth:`Pipeline.process` on the frame sets ``indices`` (capture times ``t0_ns + i * period_ns``,
    the frames' own clock, so the tracker predicts across real frame intervals). Returns ``total`` (ms per call),
    ``stages`` (stage -> ms, NaN where it did not run) and ``both_tracked`` (per call: both hands tracked when it
    began, so no acquisition; None without a tracker)."""
    tracker = pipeline.tracker
    total: list[float] = []
    stages: dict[str, list[float]] = {s: [] for s in PIPELINE_STAGES}
    both: list[bool] = []
    for i in indices:
        if tracker is not None:
            both.append(len(tracker.tracks) == len(HANDS))
        t = time.perf_counter()
        msg = pipeline.process(frames.frames(i), t0_ns + i * period_ns, {})
        total.append((time.perf_counter() - t) * 1e3)
        for s in PIPELINE_STAGES:
            stages[s].append(float(msg.timings.get(s, float("nan"))))
    return {"total": total, "stages": stages, "both_tracked": both if tracker is not None else None}


def _cost(total: Sequence[float]) -> dict[str, Any]:
    """Cost per frame set of timed calls: ``calls``, ``total`` (summary, ms), ``capacity_fps`` (1000 / mean)."""
    s = summarize(total)
    return {"calls": s["n"], "total": s, "capacity_fps": round(1000.0 / s["mean"], 2) if s["mean"] else None}


def sweep_config(pipe, dpipe, frames: FrameSets, *, calls: int, settle: int,
                 warmup_calls: int = SWEEP_WARMUP_CALLS) -> dict[str, Any]:  # fmt: skip
    """One sweep configuration on consecutive frame sets (no loop, no wrap), both paths.

    Tracked (``pipe``, with a tracker): frame sets 0, 1, ... are processed untimed until both hands are tracked
    (at least ``warmup_calls``, at most ``warmup_calls + settle``: the acquisition frames of the start), then
    ``calls`` timed. Detect every frame (``dpipe``, or None): ``warmup_calls`` untimed, then the same ``calls``
    frame sets. Without a tracker ``pipe`` is timed like ``dpipe``.

    Returns ``skipped_frame_sets`` (untimed before the window), ``settled`` (both hands tracked when the window
    began; None without a tracker), ``skipped_acquisitions``, ``latency_ms`` (every call of the window: ``total``
    and :data:`PIPELINE_STAGES`), ``capacity_fps``, ``both_tracked`` (:func:`_cost` of the window's calls that
    began with both hands tracked: the steady state), ``tracking`` (counters over the window) and
    ``detect_every_frame`` (``latency_ms``, ``capacity_fps``; None without ``dpipe``).
    """
    period_ns = int(round(1e9 / (frames.fps or 30.0)))
    t0 = time.time_ns()
    tracker = pipe.tracker
    i = 0
    while i < warmup_calls or (tracker is not None and len(tracker.tracks) < len(HANDS) and i < warmup_calls + settle):
        pipe.process(frames.frames(i), t0 + i * period_ns, {})
        i += 1
    before = None if tracker is None else tracker.stats.as_dict()
    window = range(i, i + calls)
    r = _time_calls(pipe, frames, window, t0, period_ns)
    lat = {"total": summarize(r["total"]), **{s: summarize(v) for s, v in r["stages"].items()}}
    row: dict[str, Any] = {
        "skipped_frame_sets": i,
        "settled": None if tracker is None else bool(r["both_tracked"] and r["both_tracked"][0]),
        "skipped_acquisitions": None if before is None else before["acquisitions"],
        "calls": calls,
        "latency_ms": lat,
        "capacity_fps": _cost(r["total"])["capacity_fps"],
        "both_tracked": None,
        "tracking": None if tracker is None else tracking_delta(before, tracker.stats.as_dict()),
        "detect_every_frame": None,
    }
    if tracker is not None:
        row["both_tracked"] = _cost([t for t, b in zip(r["total"], r["both_tracked"], strict=True) if b])
    if dpipe is not None:
        for k in range(warmup_calls):
            dpipe.process(frames.frames(k), t0 + k * period_ns, {})
        d = _time_calls(dpipe, frames, window, t0, period_ns)
        row["detect_every_frame"] = {
            "latency_ms": {"total": summarize(d["total"]), **{s: summarize(v) for s, v in d["stages"].items()}},
            "capacity_fps": _cost(d["total"])["capacity_fps"],
        }
    return row


def run_sweep(backend, engine_cfg, filter_cfg, crop_model, views: Sequence[int], resolutions: Sequence[tuple[int, int]],
              *, base: str, calls: int, seed: int, log: Callable[[str], None], window_refiner=None,
              settle: int = SWEEP_SETTLE) -> list[dict[str, Any]]:  # fmt: skip
    """In-process cost per frame set over views x resolutions, back to back, both paths (:func:`sweep_config`
    on ``warmup + settle + calls`` consecutive rendered frame sets of :func:`bench_rig`). The tracked path uses
    ``crop_model`` (None: the tracked path is not measured and each row is the detect-every-frame path alone);
    the detect-every-frame path uses ``window_refiner`` as its refine stage. One dict per configuration:
    ``views``, ``resolution``, ``path`` (``tracked`` or ``detect_every_frame``: what ``latency_ms`` is), the
    fields of :func:`sweep_config` and ``per_view_ms`` (total p50 / views)."""
    from handstream.engine.pipeline import Pipeline

    out = []
    for res in resolutions:
        for v in views:
            preset = bench_rig(v, res, base)
            frames = render_frames(preset, SWEEP_WARMUP_CALLS + settle + calls, seed)
            detect_cfg = dataclasses.replace(engine_cfg, tracking=False)
            dpipe = Pipeline(preset.rig, backend, detect_cfg, filter_cfg, refiner=window_refiner)
            if crop_model is not None:
                pipe = Pipeline(preset.rig, backend, dataclasses.replace(engine_cfg, tracking=True), filter_cfg,
                                refiner=crop_model)  # fmt: skip
                row = sweep_config(pipe, dpipe, frames, calls=calls, settle=settle)
            else:
                row = sweep_config(dpipe, None, frames, calls=calls, settle=settle)
            p50 = row["latency_ms"]["total"]["p50"]
            row = {"views": v, "resolution": list(res), "path": "tracked" if crop_model is not None else
                   "detect_every_frame", "per_view_ms": round(p50 / v, 3) if p50 else None, **row}  # fmt: skip
            msg = f"sweep {v} view(s) {res[0]}x{res[1]}: p50 {p50:.1f} ms"
            if row["detect_every_frame"] is not None:
                bt = row["both_tracked"]["total"]["p50"]
                msg += (f" tracked ({fmt(bt)} ms with both hands tracked, {row['skipped_frame_sets']} frame sets "
                        f"skipped), {row['detect_every_frame']['latency_ms']['total']['p50']:.1f} ms detecting "
                        "every frame")  # fmt: skip
            out.append(row)
            log(msg)
    return out


def sweep_ratios(rows: Sequence[dict[str, Any]], num: int = 8, den: int = 4) -> list[dict[str, Any]]:
    """Cost of ``num`` views / ``den`` views (p50 per frame set) per resolution of a sweep, each path:
    ``tracked`` (calls with both hands tracked), ``tracked_all_calls`` (every call of the window, acquisitions
    included), ``detect_every_frame``; None where a figure is missing."""

    def ratio(a: float | None, b: float | None) -> float | None:
        return None if a is None or not b else round(a / b, 3)

    out = []
    for res in dict.fromkeys(tuple(r["resolution"]) for r in rows):
        by = {r["views"]: r for r in rows if tuple(r["resolution"]) == res}
        if num not in by or den not in by:
            continue
        a, b = by[num], by[den]
        tracked = a.get("path") == "tracked"

        def p50(r, *keys):
            for k in keys:
                r = (r or {}).get(k)
            return r

        out.append({
            "resolution": list(res),
            "views": [num, den],
            "tracked": ratio(p50(a, "both_tracked", "total", "p50"), p50(b, "both_tracked", "total", "p50")),
            "tracked_all_calls": ratio(a["latency_ms"]["total"]["p50"], b["latency_ms"]["total"]["p50"])
            if tracked else None,
            "detect_every_frame": ratio(p50(a, "detect_every_frame", "latency_ms", "total", "p50"),
                                        p50(b, "detect_every_frame", "latency_ms", "total", "p50"))
            if tracked else ratio(a["latency_ms"]["total"]["p50"], b["latency_ms"]["total"]["p50"]),
        })  # fmt: skip
    return out


PATHS = ("tracked", "detect_every_frame")
"""The engine's two paths (``engine.tracking`` true / false), both timed in process by every run."""


def open_path_models(refiner: str, model: Path, backend: str, threads: int,
                     log: Callable[[str], None]) -> tuple[Any, Any]:  # fmt: skip
    """(the tracked path's crop model, the detect-every-frame path's refine stage), opened backends or None.

    ``refiner`` is the ``--refiner`` option: ``none`` -> (None, None): no tracking, detection without a refine
    stage; ``default`` -> each path's own (:func:`~handstream.models.defaults.default_refiner`); a path -> that model
    for both, except that a perspective crop model cannot refine windows: the detect-every-frame path then gets
    its default refiner (said in ``log``)."""
    from handstream.engine.backends import open_backend
    from handstream.models.defaults import default_refiner, refiner_option

    crop_path = refiner_option(refiner, model, tracking=True)
    window_path = refiner_option(refiner, model, tracking=False)
    crop = open_backend(crop_path, backend, threads=threads) if crop_path else None
    window = crop if window_path == crop_path else (open_backend(window_path, backend, threads=threads)
                                                    if window_path else None)  # fmt: skip
    if window is not None and (window.manifest.crop or {}).get("camera") == "perspective":
        fallback = default_refiner(model, tracking=False)
        if fallback is not None and fallback.exists() and fallback.resolve() != window_path:
            log(f"detect-every-frame path: {window_path.name} is a perspective crop model; refining with {fallback}")
            window = open_backend(fallback.resolve(), backend, threads=threads)
        else:
            log(f"detect-every-frame path: {window_path.name} is a perspective crop model; no refine stage")
            window = None
    return crop, window


def path_summary(run: dict[str, Any] | None) -> dict[str, Any] | None:
    """One path's in-process figures, small (no samples): ``p50_ms`` / ``p90_ms`` / ``p99_ms`` / ``mean_ms`` per
    frame set, ``capacity_fps``, ``acquire_p50_ms`` (the detector on the frame sets where it ran), and the
    tracker's ``acquisition_rate``, ``crops_per_frame_set``, ``lost`` (detect every frame: rate 1, crops None)."""
    if run is None:
        return None
    tot = run["latency_ms"]["total"]
    tr = run.get("tracking")
    return {
        "calls": run["calls"],
        "p50_ms": tot["p50"], "p90_ms": tot["p90"], "p99_ms": tot["p99"], "mean_ms": tot["mean"],
        "capacity_fps": run["capacity_fps"],
        "acquire_p50_ms": run["latency_ms"]["acquire"]["p50"] if tr is not None else None,
        "acquisition_rate": tr["acquisition_rate"] if tr is not None else 1.0,
        "crops_per_frame_set": tr["crops_per_frame_set"] if tr is not None else None,
        "lost": tr["lost"] if tr is not None else None,
    }  # fmt: skip


def run_inprocess_paths(rig, backend, engine_cfg, filter_cfg, crop, window, frames: FrameSets, *, calls: int,
                        fps: float | None, live_path: str, log: Callable[[str], None],
                        palm=None) -> dict[str, Any]:  # fmt: skip
    """Both engine paths in process on the same frames, paced the same (:func:`run_inprocess`), the live run's
    path (``live_path``) first (``palm``: the tracked path's palm detector, or None). Returns path -> run
    (``tracking``: the tracker's counters, None on the detect path; ``processes`` / ``machine`` of the bench
    process), the tracked path None without a crop model."""
    from handstream.engine.pipeline import Pipeline

    pipes = {"detect_every_frame": Pipeline(rig, backend, dataclasses.replace(engine_cfg, tracking=False),
                                            filter_cfg, refiner=window)}  # fmt: skip
    if crop is not None:
        pipes["tracked"] = Pipeline(rig, backend, dataclasses.replace(engine_cfg, tracking=True), filter_cfg,
                                    refiner=crop, palm=palm)  # fmt: skip
    out: dict[str, Any] = {p: None for p in PATHS}
    for path in sorted(pipes, key=lambda p: p != live_path):
        pipe = pipes[path]
        log(f"in-process pipeline, {path.replace('_', '-')} path: {calls} frame sets paced at {fps:g} fps")
        mon = ProcessMonitor()
        mon.start({"bench (in-process pipeline)": os.getpid()})
        run = run_inprocess(pipe, frames, calls=calls, fps=fps)
        mon.stop({"bench (in-process pipeline)": os.getpid()})
        run["path"] = path
        run["processes"], run["machine"] = mon.report()
        run["tracking"] = None if pipe.tracker is None else pipe.tracker.stats.as_dict()
        out[path] = run
    return out


def compare_paths(runs: dict[str, Any], live_path: str, live_tracking: dict[str, Any] | None) -> dict[str, Any]:
    """The side-by-side report of :func:`run_inprocess_paths`: ``live`` (the live run's path), one
    :func:`path_summary` per path, ``ratio_capacity_tracked_over_detect`` (in-process frame sets per second),
    ``live_tracking`` (the live engine's tracker counters over the measurement window, from ``status.engine``)."""
    tr, de = path_summary(runs.get("tracked")), path_summary(runs.get("detect_every_frame"))
    ratio = None
    if tr and de and tr["capacity_fps"] and de["capacity_fps"]:
        ratio = round(tr["capacity_fps"] / de["capacity_fps"], 3)
    return {"live": live_path, "tracked": tr, "detect_every_frame": de, "ratio_capacity_tracked_over_detect": ratio,
            "live_tracking": live_tracking}  # fmt: skip


def stage_mean_per_frame(summary: dict[str, Any], frames: int) -> float:
    """A stage's mean per frame set (ms) when it ran on only some (``summary['n']`` of ``frames``): the
    ``acquire`` and ``refine`` stages; means per frame set add up, means over the frames a stage ran on do not."""
    if not frames or not summary.get("n") or summary.get("mean") is None:
        return 0.0
    return float(summary["mean"]) * summary["n"] / frames
