"""One benchmark run, step by step: options -> frames -> live -> in process -> sweep -> peer -> targets -> files
(:func:`run_bench`).
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

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
from handstream.bench.report import evaluate_targets, write_json, write_png
from handstream.capture.material import read_video_frames, render_frames, write_image_folders
from handstream.errors import HandstreamError
from handstream.mediapipe import DEFAULT_LANDMARKER, mediapipe_unavailable


def run_bench(
    o: BenchOptions, log: Callable[[str], None] | None = None, argv: Sequence[str] | None = None
) -> dict[str, Any]:
    """Run the whole benchmark (see the module docstring); returns the report dict (also written to
    ``o.out``/latency.json with the PNG when ``o.out`` is set).

    Raises:
        HandstreamError: an option or file that is wrong (one line naming it), or a live system that fails.
    """
    from handstream import __version__
    from handstream.engine.backends import open_backend
    from handstream.geometry import load_calibration, save_calibration
    from handstream.machine import describe_machine
    from handstream.models.defaults import refiner_option

    log = log or (lambda s: print(f"bench: {s}", file=sys.stderr, flush=True))
    check_options(o)
    tmp = Path(tempfile.mkdtemp(prefix="handstream-bench-"))
    try:
        model, model_label = resolve_model(o.model, tmp)
        # the in-process backend first: a model/backend that cannot load fails here, in one line, before any work
        backend = open_backend(model, o.backend, threads=o.threads)
        refiner = refiner_option(o.refiner, model, tracking=o.tracking)  # the live engine's model.refiner
        # both paths are timed in process: the tracked path's crop model, the other path's refine stage
        crop, window_refine = open_path_models(o.refiner, model, o.backend, o.threads, log)
        live_path = "tracked" if o.tracking and crop is not None else "detect_every_frame"
        background = other_load_now(1.0)
        mp_model = (
            o.mediapipe_model
            if o.mediapipe_model is not None
            else (str(DEFAULT_LANDMARKER) if DEFAULT_LANDMARKER.is_file() else None)
        )

        # -- the frames and the rig
        rig_file = folders = None
        if o.source == "video":
            rig = load_calibration(o.calibration, o.unit_scale)
            if len(rig) < len(o.videos):
                raise HandstreamError(
                    f"--calibration: {o.calibration} has {len(rig)} cameras for {len(o.videos)} videos"
                )
            cameras = list(rig.names[: len(o.videos)])
            rig = rig.subset(cameras)
            log(f"decoding up to {o.loop_frames} frames of {len(o.videos)} videos")
            frames = read_video_frames(o.videos, cameras, o.loop_frames)
            fps = o.fps or frames.fps
            size = rig[0].size
        else:
            preset = bench_rig(o.cameras, o.resolution, o.rig, o.fps)
            fps = preset.fps
            rig, cameras, size = preset.rig, list(preset.rig.names), preset.rig[0].size
            log(f"rendering {o.loop_frames} frame sets of {len(cameras)} views {size[0]}x{size[1]} ({preset.color})")
            frames = render_frames(preset, o.loop_frames, o.seed)
            if not o.live_render:
                rig_file = tmp / "rig.toml"
                save_calibration(rig, rig_file)
                folders = write_image_folders(frames, tmp / "frames")
        frames.fps = fps
        config = build_live_config(o, model, rig_file, folders, cameras, fps, tmp, refiner)
        engine_cfg, filter_cfg = config.engine, config.filter

        result: dict[str, Any] = {
            "schema": SCHEMA_VERSION,
            "handstream": __version__,
            "command": list(argv) if argv is not None else None,
            "machine": describe_machine(
                ["numpy", "onnxruntime", "pyzmq", "opencv-python-headless", "torch", "mediapipe"]
            ),
            "background_busy_cores_before": background,
            "config": {
                "source": o.source,
                "frames": (
                    "videos, played in a loop"
                    if o.source == "video"
                    else (
                        "rendered live by each capture" if o.live_render else "pre-rendered, played from PGM/PPM files"
                    )
                ),
                "rig": o.rig if o.source == "synthetic" else str(o.calibration),
                "cameras": len(cameras),
                "camera_names": cameras,
                "resolution": list(size),
                "fps": fps,
                "backend": o.backend,
                "model": model_label,
                "refiner": str(refiner) if refiner else None,
                "tracking": o.tracking,
                "live_path": live_path,
                "max_views_per_hand": o.max_views_per_hand,
                "acquire_interval": engine_cfg.acquire_interval,
                "crop_model": crop.manifest.name if crop is not None else None,
                "detect_refiner": window_refine.manifest.name if window_refine is not None else None,
                "threads": o.threads,
                "transport": o.transport,
                "seconds": o.seconds,
                "warmup_s": o.warmup,
                "loop_frames": len(frames),
                "seed": o.seed,
            },
        }

        # -- live
        log(f"starting the live system: {len(cameras)} capture processes + engine ({o.backend}), {fps:g} fps")
        live = run_live(config, seconds=o.seconds, warmup=o.warmup, log=log)
        result["live"] = live
        result["config"]["backend_used"] = live["engine_status"].get("backend")

        # -- in-process, same frames: both paths, the live run's first
        in_s = o.inprocess_seconds if o.inprocess_seconds is not None else max(2.0, o.seconds / 2)
        calls = max(10, int(round(in_s * fps)))
        runs = run_inprocess_paths(rig, backend, engine_cfg, filter_cfg, crop, window_refine, frames, calls=calls,
                                   fps=fps, live_path=live_path, log=log)  # fmt: skip
        inproc = runs[live_path]
        result["inprocess"] = inproc
        other = "detect_every_frame" if live_path == "tracked" else "tracked"
        result[f"inprocess_{other}"] = runs[other]
        result["paths"] = compare_paths(runs, live_path, live.get("tracking"))
        if runs["tracked"] is not None:
            runs["detect_every_frame"]["ratio_capacity_tracked_over_detect"] = result["paths"][
                "ratio_capacity_tracked_over_detect"
            ]
        lp, ip = live["latency_ms"], inproc["latency_ms"]
        diff = {}
        for q in ("p50", "p90", "p99"):
            a, b = lp["end_to_end"][q], ip["total"][q]
            diff[f"difference_{q}"] = None if a is None or b is None else round(a - b, 3)
        a, b = lp["outside_pipeline"]["p50"], ip["outside_pipeline"]["p50"]
        diff["per_pose_p50"] = None if a is None or b is None else round(a - b, 3)
        parts = [lp[s]["p50"] for s in ("transport_in", "transport_out")]
        diff["transport_stages_p50"] = None if None in parts else round(sum(parts), 3)
        live_compute = sum(stage_mean_per_frame(lp[s], live["poses"]) for s in PIPELINE_STAGES)
        diff["live_compute_mean"] = round(live_compute, 3)
        diff["inprocess_compute_mean"] = ip["total"]["mean"]
        result["transport_overhead_ms"] = diff

        # -- peers
        result["compare"] = {}
        if "mediapipe" in o.compare:
            why = mediapipe_unavailable(mp_model)
            if why is None:
                log(f"MediaPipe hand landmarker on {o.compare_frames} frames x {len(cameras)} views")
                try:
                    result["compare"]["mediapipe"] = run_mediapipe(
                        frames, mp_model, count=o.compare_frames, handstream_ms=ip["total"]["p50"]
                    )
                except Exception as exc:  # a broken install or bundle: say why, keep the rest
                    why = f"MediaPipe failed: {type(exc).__name__}: {exc}"
            if why is not None:
                log(f"MediaPipe not compared: {why}")
                result["compare"]["mediapipe"] = {"available": False, "reason": why}

        # -- sweep
        if o.sweep:
            log(
                f"sweep: views {list(o.sweep_views)} x resolutions {[f'{w}x{h}' for w, h in o.sweep_resolutions]}, "
                f"{o.sweep_calls} calls each"
            )
            result["sweep"] = run_sweep(backend, engine_cfg, filter_cfg, crop, o.sweep_views, o.sweep_resolutions,
                                        base=o.rig if o.source == "synthetic" else "headset4", calls=o.sweep_calls,
                                        seed=o.seed, log=log, window_refiner=window_refine,
                                        settle=o.sweep_settle)  # fmt: skip
            result["sweep_ratios"] = sweep_ratios(result["sweep"])
        result["background_busy_cores_after"] = other_load_now(1.0)
        result["targets"] = evaluate_targets(result)

        if o.out is not None:
            out = Path(o.out)
            out.mkdir(parents=True, exist_ok=True)
            result["files"] = {"json": str(out / JSON_NAME), "png": None}
            try:
                write_png(result, out / PNG_NAME)
                result["files"]["png"] = str(out / PNG_NAME)
            except ImportError:
                log("no PNG: matplotlib is not installed (pip install 'handstream[viz]')")
            write_json(result, out / JSON_NAME)
        return result
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
