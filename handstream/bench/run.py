"""One benchmark run, step by step: options -> frames -> live -> in process -> sweep -> peer -> targets -> files
(:func:`run_bench`).
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from handstream import records
from handstream.bench.inprocess import (
    compare_paths,
    open_path_models,
    run_inprocess_paths,
    run_sweep,
    stage_mean_per_frame,
    sweep_ratios,
)
from handstream.bench.inputs import bench_rig, resolve_model
from handstream.bench.live import build_live_config, run_live
from handstream.bench.measure import other_load_now
from handstream.bench.options import JSON_NAME, PIPELINE_STAGES, PNG_NAME, SCHEMA_VERSION, BenchOptions, check_options
from handstream.bench.peers import run_mediapipe
from handstream.bench.report import evaluate_targets, write_png
from handstream.capture.material import read_video_frames, render_frames, write_image_folders
from handstream.errors import HandstreamError
from handstream.mediapipe import DEFAULT_LANDMARKER, mediapipe_unavailable


@dataclass
class Setup:
    """What every step of a run uses: the opened models, the frames, the rig and the live system's config.

    Attributes:
        model / model_label: the detector file and how the report names it; backend: it, opened in process.
        refiner: the live engine's ``model.refiner`` (None: no refine stage); crop / window: the two paths'
            opened models (:func:`~handstream.bench.inprocess.open_path_models`); live_path: which path runs live.
        rig / cameras / size / fps / frames: the views (metres), their names, pixels (w, h), frames per second,
            the frame sets; config: the live system's :class:`~handstream.config.ServeConfig`.
        mp_model: the MediaPipe bundle for ``--compare mediapipe`` (None: not found).
        palm: the opened palm detector of ``--palm-detector`` (the in-process runs'), or None.
    """

    model: Path
    model_label: str
    backend: Any
    refiner: Path | None
    crop: Any
    window: Any
    live_path: str
    rig: Any
    cameras: list[str]
    size: tuple[int, int]
    fps: float
    frames: Any
    config: Any
    mp_model: str | None
    palm: Any = None


def run_bench(
    o: BenchOptions, log: Callable[[str], None] | None = None, argv: Sequence[str] | None = None
) -> dict[str, Any]:
    """Run the whole benchmark (see :mod:`handstream.bench`); returns the report dict (also written to
    ``o.out``/latency.json with the PNG when ``o.out`` is set).

    Raises:
        HandstreamError: an option or file that is wrong (one line naming it), or a live system that fails.
    """
    log = log or (lambda s: print(f"bench: {s}", file=sys.stderr, flush=True))
    check_options(o)
    tmp = Path(tempfile.mkdtemp(prefix="handstream-bench-"))
    try:
        background = other_load_now(1.0)
        s = prepare(o, tmp, log)
        result = describe_run(o, s, argv, background)
        log(f"starting the live system: {len(s.cameras)} capture processes + engine ({o.backend}), {s.fps:g} fps")
        live = run_live(s.config, seconds=o.seconds, warmup=o.warmup, log=log, thumbnails=o.thumbnails)
        result["live"] = live
        result["config"]["backend_used"] = live["engine_status"].get("backend")
        result.update(measure_inprocess(o, s, live, log))
        result["compare"] = compare_peers(o, s, result["inprocess"]["latency_ms"]["total"]["p50"], log)
        if o.sweep:
            result["sweep"] = sweep(o, s, log)
            result["sweep_ratios"] = sweep_ratios(result["sweep"])
        result["background_busy_cores_after"] = other_load_now(1.0)
        result["targets"] = evaluate_targets(result)
        if o.out is not None:
            write_files(result, Path(o.out), log)
        return result
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def prepare(o: BenchOptions, tmp: Path, log: Callable[[str], None]) -> Setup:
    """Open the models (a model or backend that cannot load fails here, in one line, before any work), make
    the frames (decoded videos, or rendered frame sets written as image folders for the captures to play) and
    the live system's config; files go to ``tmp``."""
    from handstream.engine.backends import open_backend
    from handstream.geometry import load_calibration, save_calibration
    from handstream.models.defaults import refiner_option

    model, model_label = resolve_model(o.model, tmp)
    backend = open_backend(model, o.backend, threads=o.threads)
    refiner = refiner_option(o.refiner, model, tracking=o.tracking)  # the live engine's model.refiner
    # both paths are timed in process: the tracked path's crop model, the other path's refine stage
    crop, window = open_path_models(o.refiner, model, o.backend, o.threads, log)
    live_path = "tracked" if o.tracking and crop is not None else "detect_every_frame"
    palm = None
    if o.palm_detector is not None:
        from handstream.models.palm import PalmDetector

        palm = PalmDetector(o.palm_detector, threads=1)  # as the engine opens it
    mp_model = (
        o.mediapipe_model
        if o.mediapipe_model is not None
        else (str(DEFAULT_LANDMARKER) if DEFAULT_LANDMARKER.is_file() else None)
    )
    rig_file = folders = None
    if o.source == "video":
        rig = load_calibration(o.calibration, o.unit_scale)
        if len(rig) < len(o.videos):
            raise HandstreamError(f"--calibration: {o.calibration} has {len(rig)} cameras for {len(o.videos)} videos")
        cameras = list(rig.names[: len(o.videos)])
        rig = rig.subset(cameras)
        log(f"decoding up to {o.loop_frames} frames of {len(o.videos)} videos")
        frames = read_video_frames(o.videos, cameras, o.loop_frames)
        fps = o.fps or frames.fps
    else:
        preset = bench_rig(o.cameras, o.resolution, o.rig, o.fps)
        fps = preset.fps
        rig, cameras = preset.rig, list(preset.rig.names)
        w, h = rig[0].size
        log(f"rendering {o.loop_frames} frame sets of {len(cameras)} views {w}x{h} ({preset.color})")
        frames = render_frames(preset, o.loop_frames, o.seed)
        if not o.live_render:
            rig_file = tmp / "rig.toml"
            save_calibration(rig, rig_file)
            folders = write_image_folders(frames, tmp / "frames")
    frames.fps = fps
    config = build_live_config(o, model, rig_file, folders, cameras, fps, tmp, refiner)
    return Setup(model, model_label, backend, refiner, crop, window, live_path, rig, cameras, rig[0].size, fps,
                 frames, config, mp_model, palm)  # fmt: skip


def describe_run(o: BenchOptions, s: Setup, argv: Sequence[str] | None, background: float | None) -> dict[str, Any]:
    """The report's head: schema, version, command, machine, the load before, and ``config`` (what ran)."""
    from handstream import __version__
    from handstream.machine import describe_machine

    if o.source == "video":
        frames = "videos, played in a loop"
    else:
        frames = "rendered live by each capture" if o.live_render else "pre-rendered, played from PGM/PPM files"
    return {
        "schema": SCHEMA_VERSION,
        "handstream": __version__,
        "command": list(argv) if argv is not None else None,
        "machine": describe_machine(["numpy", "onnxruntime", "pyzmq", "opencv-python-headless", "torch", "mediapipe"]),
        "background_busy_cores_before": background,
        "config": {
            "source": o.source,
            "frames": frames,
            "rig": o.rig if o.source == "synthetic" else str(o.calibration),
            "cameras": len(s.cameras),
            "camera_names": s.cameras,
            "resolution": list(s.size),
            "fps": s.fps,
            "backend": o.backend,
            "model": s.model_label,
            "refiner": str(s.refiner) if s.refiner else None,
            "palm_detector": o.palm_detector,
            "tracking": o.tracking,
            "live_path": s.live_path,
            "max_views_per_hand": o.max_views_per_hand,
            "acquire_interval": s.config.engine.acquire_interval,
            "crop_model": s.crop.manifest.name if s.crop is not None else None,
            "detect_refiner": s.window.manifest.name if s.window is not None else None,
            "threads": o.threads,
            "transport": o.transport,
            "seconds": o.seconds,
            "warmup_s": o.warmup,
            "loop_frames": len(s.frames),
            "seed": o.seed,
        },
    }


def measure_inprocess(o: BenchOptions, s: Setup, live: dict[str, Any], log: Callable[[str], None]) -> dict[str, Any]:
    """Both engine paths in process on the same frames, the live run's first, and the transport's share (live
    minus in process). Returns the report keys ``inprocess`` (the live path's run), ``inprocess_<other path>``,
    ``paths`` (:func:`~handstream.bench.inprocess.compare_paths`) and ``transport_overhead_ms``."""
    in_s = o.inprocess_seconds if o.inprocess_seconds is not None else max(2.0, o.seconds / 2)
    calls = max(10, int(round(in_s * s.fps)))
    runs = run_inprocess_paths(s.rig, s.backend, s.config.engine, s.config.filter, s.crop, s.window, s.frames,
                               calls=calls, fps=s.fps, live_path=s.live_path, log=log, palm=s.palm)  # fmt: skip
    other = "detect_every_frame" if s.live_path == "tracked" else "tracked"
    paths = compare_paths(runs, s.live_path, live.get("tracking"))
    if runs["tracked"] is not None:
        runs["detect_every_frame"]["ratio_capacity_tracked_over_detect"] = paths["ratio_capacity_tracked_over_detect"]
    inproc = runs[s.live_path]
    return {"inprocess": inproc, f"inprocess_{other}": runs[other], "paths": paths,
            "transport_overhead_ms": transport_overhead(live, inproc)}  # fmt: skip


def transport_overhead(live: dict[str, Any], inproc: dict[str, Any]) -> dict[str, Any]:
    """Live minus in process, ms: ``difference_p50/p90/p99`` (end to end vs pipeline total), ``per_pose_p50``
    (what lies outside the pipeline's stages), ``transport_stages_p50`` (transport in + out),
    ``live_compute_mean`` / ``inprocess_compute_mean`` (the stages' means per frame set)."""
    lp, ip = live["latency_ms"], inproc["latency_ms"]
    diff: dict[str, Any] = {}
    for q in ("p50", "p90", "p99"):
        a, b = lp["end_to_end"][q], ip["total"][q]
        diff[f"difference_{q}"] = None if a is None or b is None else round(a - b, 3)
    a, b = lp["outside_pipeline"]["p50"], ip["outside_pipeline"]["p50"]
    diff["per_pose_p50"] = None if a is None or b is None else round(a - b, 3)
    parts = [lp[s]["p50"] for s in ("transport_in", "transport_out")]
    diff["transport_stages_p50"] = None if None in parts else round(sum(parts), 3)
    diff["live_compute_mean"] = round(sum(stage_mean_per_frame(lp[s], live["poses"]) for s in PIPELINE_STAGES), 3)
    diff["inprocess_compute_mean"] = ip["total"]["mean"]
    return diff


def compare_peers(o: BenchOptions, s: Setup, handstream_ms: float | None,
                  log: Callable[[str], None]) -> dict[str, Any]:  # fmt: skip
    """The peers of ``--compare`` on the same frames: peer -> its figures, or ``available: False`` with why."""
    out: dict[str, Any] = {}
    if "mediapipe" in o.compare:
        why = mediapipe_unavailable(s.mp_model)
        if why is None:
            log(f"MediaPipe hand landmarker on {o.compare_frames} frames x {len(s.cameras)} views")
            try:
                out["mediapipe"] = run_mediapipe(s.frames, s.mp_model, count=o.compare_frames,
                                                 handstream_ms=handstream_ms)  # fmt: skip
            except Exception as exc:  # a broken install or bundle: say why, keep the rest
                why = f"MediaPipe failed: {type(exc).__name__}: {exc}"
        if why is not None:
            log(f"MediaPipe not compared: {why}")
            out["mediapipe"] = {"available": False, "reason": why}
    return out


def sweep(o: BenchOptions, s: Setup, log: Callable[[str], None]) -> list[dict[str, Any]]:
    """The in-process sweep over ``--sweep-views`` x ``--sweep-resolutions`` (:func:`~handstream.bench.inprocess.
    run_sweep`), both paths."""
    log(
        f"sweep: views {list(o.sweep_views)} x resolutions {[f'{w}x{h}' for w, h in o.sweep_resolutions]}, "
        f"{o.sweep_calls} calls each"
    )
    return run_sweep(s.backend, s.config.engine, s.config.filter, s.crop, o.sweep_views, o.sweep_resolutions,
                     base=o.rig if o.source == "synthetic" else "headset4", calls=o.sweep_calls, seed=o.seed,
                     log=log, window_refiner=s.window, settle=o.sweep_settle)  # fmt: skip


def write_files(result: dict[str, Any], out: Path, log: Callable[[str], None]) -> None:
    """latency.json and latency.png in ``out`` (no PNG without matplotlib, said in ``log``)."""
    out.mkdir(parents=True, exist_ok=True)
    result["files"] = {"json": str(out / JSON_NAME), "png": None}
    try:
        write_png(result, out / PNG_NAME)
        result["files"]["png"] = str(out / PNG_NAME)
    except ImportError:
        log("no PNG: matplotlib is not installed (pip install 'handstream[viz]')")
    records.write_json(result, out / JSON_NAME, indent=1)  # NaN as null
