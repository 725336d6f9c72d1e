"""``handstream eval``: one command, five modes picked from the flags (:func:`pick_mode`), each a table on the
terminal and optionally JSON (``--json``).

==============  ==============================================  ================================================
mode            picked by                                       also takes
==============  ==============================================  ================================================
``scored``      ``--data DIR --model M.onnx``                   --refiner --pair --limit --threads --json
                                                                --no-progress
``tracked``     ``--data DIR --model M.onnx --tracked``         --max-views-per-hand --refiner --limit --threads
                                                                --json --no-progress
``label-noise`` ``--data DIR --label-noise PX[,PX...]``         --pair --limit --json
``recording``   ``--recording P`` per camera and ``--model M``  --calibration --unit-scale --frames --refiner
                (.onnx or .pt) or ``--teacher T.task``          (with --model) --mirrored (with --teacher)
                                                                --threads --json --no-progress
``images``      ``--images DIR`` [``--model CROP.onnx``]        --threads --json --no-progress
==============  ==============================================  ================================================

``scored``: :func:`handstream.eval.evaluate.evaluate` (metrics against the synthetic dataset's labels);
``tracked``: :func:`~handstream.eval.evaluate.evaluate_tracked` (the engine's tracked path, as live);
``label-noise``: :func:`~handstream.eval.evaluate.label_noise_floor` (the rig's geometric floor, no model);
``recording``: :func:`handstream.eval.consistency.evaluate_recording` (label-free consistency metrics);
``images``: :func:`handstream.eval.images.evaluate_images` (a crop model on real 2D-labelled images).
A flag of another mode is a one-line error (exit 2) where it would change the meaning (e.g. ``--frames`` with
``--data``, ``--pair`` with ``--recording``); the ones a mode does not use otherwise are ignored.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from handstream.cli.options import (
    Calibration,
    FrameRange,
    MaxViewsPerHand,
    Model,
    NoProgress,
    PalmDetectorPath,
    Recordings,
    Refiner,
    Teacher,
    Threads,
    UnitScale,
)
from handstream.errors import HandstreamError
from handstream.records import write_json


@dataclass(frozen=True)
class EvalFlags:
    """``handstream eval``'s flags, as given (None / False / empty: not given)."""

    model: Path | None
    data: Path | None
    images: Path | None
    recording: tuple[Path, ...]
    calibration: Path | None
    unit_scale: float | None
    frames: str | None
    teacher: Path | None
    mirrored: bool
    json_out: Path | None
    pair: str | None
    limit: int | None
    label_noise: str | None
    refiner: str
    tracked: bool
    max_views_per_hand: int | None
    threads: int
    progress: bool
    palm_detector: Path | None = None


def pick_mode(f: EvalFlags) -> str:
    """The mode the flags ask for (``scored``, ``tracked``, ``label-noise``, ``recording``; the module's table).

    Raises:
        HandstreamError: one line for a combination that does not make sense (the first one found).
    """
    if f.images is not None:
        _check_images_flags(f)
        return "images"
    if f.palm_detector is not None and (not f.recording or f.model is None):
        raise HandstreamError("--palm-detector: only with --images, or --recording with a landmarks --model")
    if f.label_noise is not None and (f.data is None or f.model is not None or f.teacher is not None):
        raise HandstreamError(
            "--label-noise: only with --data and without --model/--teacher (it triangulates the dataset's own labels)"
        )
    if (f.data is None) == (not f.recording):
        raise HandstreamError(
            "give either --data SYNTH_FOLDER (metrics against its labels) or --recording PATH per camera "
            "(label-free consistency metrics)"
        )
    if f.data is not None:
        _check_data_flags(f)
    else:
        _check_recording_flags(f)
    if (f.tracked or f.max_views_per_hand is not None) and (f.recording or f.label_noise is not None):
        raise HandstreamError("--tracked / --max-views-per-hand: only with --data and --model")
    if f.max_views_per_hand is not None and not f.tracked:
        raise HandstreamError("--max-views-per-hand: only with --tracked")
    if f.label_noise is not None:
        return "label-noise"
    if f.recording:
        return "recording"
    return "tracked" if f.tracked else "scored"


def _check_data_flags(f: EvalFlags) -> None:
    if f.model is None and f.label_noise is None:
        raise HandstreamError(
            "--data: needs --model (an exported .onnx with its manifest), or --label-noise PX for the rig's floor"
        )
    for name, value in (
        ("--teacher", f.teacher), ("--calibration", f.calibration), ("--unit-scale", f.unit_scale),
        ("--frames", f.frames),
    ):  # fmt: skip
        if value is not None:
            raise HandstreamError(f"{name}: only with --recording (with --data use --limit)")
    if f.mirrored:
        raise HandstreamError("--mirrored: only with --recording and --teacher")


def _check_images_flags(f: EvalFlags) -> None:
    others = (("--data", f.data), ("--recording", f.recording or None), ("--teacher", f.teacher),
              ("--calibration", f.calibration), ("--frames", f.frames), ("--pair", f.pair),
              ("--label-noise", f.label_noise), ("--max-views-per-hand", f.max_views_per_hand))  # fmt: skip
    for name, value in others:
        if value is not None:
            raise HandstreamError(f"{name}: not with --images (real labelled images: --model, --json, --threads)")
    if f.tracked:
        raise HandstreamError("--tracked: not with --images (it scores the engine's acquisition and crops)")


def _check_recording_flags(f: EvalFlags) -> None:
    if (f.model is None) == (f.teacher is None):
        raise HandstreamError(
            "--recording: give either --model (a handstream model) or --teacher (a MediaPipe .task bundle)"
        )
    for name, value in (("--pair", f.pair), ("--limit", f.limit)):
        if value is not None:
            raise HandstreamError(f"{name}: only with --data (with --recording use --frames START:STOP)")


def eval_command(
    model: Model = None,
    data: Path = typer.Option(
        None, "--data", help="Synthetic dataset folder (handstream synth render): scored against its labels."
    ),
    recording: Recordings = (),
    images: Path = typer.Option(
        None,
        "--images",
        help="Real labelled images (an annotations_op21.json, its folder, or a folder of such folders): a crop "
        "model scored on ideal crops and through the engine's own acquisition.",
    ),
    calibration: Calibration = None,
    unit_scale: UnitScale = None,
    frames: FrameRange = None,
    teacher: Teacher = None,
    mirrored: bool = typer.Option(
        False, "--mirrored", help="--teacher: the images are horizontally flipped (selfie view): swap left and right."
    ),
    json_out: Path = typer.Option(None, "--json", help="Write the metrics to this JSON file."),
    pair: str = typer.Option(
        None,
        "--pair",
        help="--data: the two views of the 2-view figures, e.g. 0,1 (default: the two that see most joints).",
    ),
    limit: int = typer.Option(None, "--limit", help="--data: evaluate only the first N frames."),
    label_noise: str = typer.Option(
        None,
        "--label-noise",
        help="--data without --model: the rig's geometric floor: triangulate the dataset's own 2D labels plus "
        "Gaussian noise of these levels (px per coordinate, e.g. 0,1,2,4) and report the 3D error.",
    ),
    refiner: Refiner = "default",
    tracked: bool = typer.Option(
        False,
        "--tracked",
        help="--data with --model: score the engine's tracked path as it runs live (each sequence in order, the "
        "crop model on crops predicted from the last poses, the detector only to acquire hands; One-Euro on).",
    ),
    max_views_per_hand: MaxViewsPerHand = None,
    threads: Threads = 0,
    no_progress: NoProgress = False,
    palm_detector: PalmDetectorPath = None,
) -> None:
    """Evaluate 2D and 3D hand pose: against synthetic labels (--data), or without labels (--recording).

    The flags pick one of four modes:

      mode          picked by                                  also takes
      scored        --data DIR --model M.onnx                  --refiner --pair --limit --threads --json
      tracked       --data DIR --model M.onnx --tracked        --max-views-per-hand --refiner --limit --threads --json
      label-noise   --data DIR --label-noise PX,PX,...         --pair --limit --json
      recording     --recording P (one per camera) and         --calibration --unit-scale --frames --threads --json
                    --model M (.onnx or .pt) or --teacher T    --refiner, --palm-detector (with --model),
                                                               --mirrored (with --teacher)
      images        --images DIR [--model CROP.onnx]           --palm-detector --threads --json --no-progress

    A flag of another mode is a one-line error where it would change the meaning (e.g. --frames with --data).

    scored: 2D EPE / PCK, multi-view and 2-view MPJPE after RANSAC triangulation, PA-MPJPE, 3D PCK and AUC.
    tracked: the 3D figures of the engine's tracked path, and how often it acquires hands.
    label-noise: the 3D error of the dataset's own 2D labels plus Gaussian noise: how precise 2D must be.
    recording: the detections of every view are triangulated as the engine does (RANSAC), then reprojection
    error (px), coverage, bone-length variation (%) and frame-to-frame jitter are reported.
    images: a crop model (default the shipped one) on real images with 2D labels: found rate, 2D error over the
    hand's size, PCK@0.2, with ideal crops from the labels and through the engine's own acquisition.

    Example: handstream eval --model engines/handstream-default.onnx --data data/h4-test --json eval.json

    Example: handstream eval --model engines/handstream-default.onnx --data data/h4-test --tracked   (as live)

    Example: handstream eval --data data/h4-test --label-noise 0,1,2,4   (how precise must 2D be on this rig?)

    Example: handstream eval --images shared/data/real/images2d --model engines/mediapipe-lite.onnx

    Example: handstream eval --teacher hand_landmarker.task --recording cam0.mp4 --recording cam1.mp4
    --calibration calibration.toml --frames 200:250
    """
    flags = EvalFlags(
        model=model, data=data, images=images, recording=tuple(recording), calibration=calibration,
        unit_scale=unit_scale,
        frames=frames, teacher=teacher, mirrored=mirrored, json_out=json_out, pair=pair, limit=limit,
        label_noise=label_noise, refiner=refiner, tracked=tracked, max_views_per_hand=max_views_per_hand,
        threads=threads, progress=not no_progress, palm_detector=palm_detector,
    )  # fmt: skip
    MODES[pick_mode(flags)](flags)


# --- the modes ---------------------------------------------------------------------------------------------------


def _refiner_path(f: EvalFlags) -> Path | None:
    """``--refiner`` resolved against ``--model`` as the engine would (None: no refine stage, or no model)."""
    from handstream.models.defaults import refiner_option

    return refiner_option(f.refiner, f.model, tracking=f.tracked) if f.model is not None else None


def run_scored(f: EvalFlags) -> None:
    """``--data --model``: :func:`handstream.eval.evaluate.evaluate` as a table."""
    from handstream.eval.evaluate import evaluate

    refiner = _refiner_path(f)
    res = evaluate(
        f.model, f.data, pair=_pair(f.pair), limit=f.limit, threads=f.threads, progress=f.progress, refiner=refiner
    )
    console = Console()
    with_refiner = f" + refiner {refiner}" if refiner else " (no refiner)"
    console.print(
        f"{f.model}{with_refiner} on {f.data}: {res['frames']} frames, {res['views']} views, 2-view pair {res['pair']}"
    )
    table = _metric_table()
    for key, value in res["2d"].items():
        table.add_row(f"2D {key}", _fmt(value))
    for section in [k for k in res if k.startswith("3d_")]:
        for key, value in res[section].items():
            table.add_row(f"{section[3:]} {key}", _fmt(value))
    table.add_row("onnx ms/frame (median)", _fmt(res["onnx_ms_per_frame"]["median"]))
    if refiner:
        table.add_row("refine ms/frame (median)", _fmt(res["onnx_ms_per_frame"]["refine_median"]))
    console.print(table)
    _write_json(res, f.json_out, console)


def run_tracked(f: EvalFlags) -> None:
    """``--data --model --tracked``: :func:`handstream.eval.evaluate.evaluate_tracked` as a table."""
    from handstream.config import EngineConfig
    from handstream.eval.evaluate import evaluate_tracked

    refiner = _refiner_path(f)
    if refiner is None:
        raise HandstreamError("--tracked: the tracked path needs a crop model (--refiner default or a path)")
    views = f.max_views_per_hand
    if views is not None and views < EngineConfig().min_views:
        raise HandstreamError(f"--max-views-per-hand: expected an integer >= 2, got {views}")
    engine = EngineConfig() if views is None else EngineConfig(max_views_per_hand=views)
    res = evaluate_tracked(
        f.model, f.data, refiner, engine=engine, limit=f.limit, threads=f.threads, progress=f.progress
    )
    console = Console()
    console.print(
        f"{f.model} + crop model {refiner}, tracked, on {f.data}: {res['frames']} frames, {res['views']} views"
    )
    table = _metric_table()
    for key, value in res["3d_tracked"].items():
        table.add_row(f"tracked {key}", _fmt(value))
    for key in ("acquisition_rate", "crops_per_frame_set", "tracks_started"):
        table.add_row(f"tracking {key}", _fmt(res["tracking"][key]))
    table.add_row("tracking lost", ", ".join(f"{k} {v}" for k, v in res["tracking"]["lost"].items()))
    table.add_row("pipeline ms/frame (median)", _fmt(res["ms_per_frame"]["median"]))
    console.print(table)
    _write_json(res, f.json_out, console)


def run_label_noise(f: EvalFlags) -> None:
    """``--data --label-noise``: :func:`handstream.eval.evaluate.label_noise_floor` as a table, one row per level."""
    from handstream.eval.evaluate import label_noise_floor

    pair = _pair(f.pair)
    res = label_noise_floor(f.data, _levels(f.label_noise), pair=pair, limit=f.limit)
    console = Console()
    multi = f"3d_{res['views']}view"
    console.print(
        f"{f.data}: its 2D labels + Gaussian noise, no model; {res['frames']} frames, {res['views']} views, "
        f"2-view pair {res['pair']}; MPJPE mean / median"
    )
    table = Table()
    for col in ("sigma px", "2D EPE px", f"{res['views']}-view mm", "cov.", "2-view mm", "cov."):
        table.add_column(col, justify="right")
    for lv in res["levels"]:
        m, t = lv[multi], lv["3d_2view"]
        table.add_row(
            f"{lv['sigma_px']:g}", _fmt(lv["epe_px"]), f"{_fmt(m['mpjpe_mm'])} / {_fmt(m['median_mm'])}",
            _fmt(m["coverage"]), f"{_fmt(t['mpjpe_mm'])} / {_fmt(t['median_mm'])}", _fmt(t["coverage"]),
        )  # fmt: skip
    console.print(table)
    _write_json(res, f.json_out, console)


def run_recording(f: EvalFlags) -> None:
    """``--recording``: :func:`handstream.eval.consistency.evaluate_recording` as two tables (views, hands)."""
    from handstream.capture.recording import parse_frame_range
    from handstream.eval.consistency import evaluate_recording

    refiner = _refiner_path(f)
    res = evaluate_recording(
        [str(p) for p in f.recording], f.calibration, model=f.model, teacher=f.teacher, unit_scale=f.unit_scale,
        frames=parse_frame_range(f.frames), mirrored=f.mirrored, threads=f.threads, progress=f.progress,
        refiner=refiner, palm_detector=f.palm_detector,
    )  # fmt: skip
    console = Console()
    span = res["recording"].get("frames") or [0, res["frames"]]
    console.print(
        f"{res['detector']} on {res['views']} views ({', '.join(res['cameras'])}), frames {span[0]}:{span[1]} "
        f"({res['frames']}); RANSAC {res['settings']['threshold_px']:g} px, a hand needs "
        f"{res['settings']['min_joints']} joints"
    )
    console.print(_consistency_table(res))
    console.print(_hands_table(res))
    console.print(f"detection took {res['seconds']:.1f} s")
    _write_json(res, f.json_out, console)


def run_images(f: EvalFlags) -> None:
    """``--images``: :func:`handstream.eval.images.evaluate_images` as a table (ideal crops, the engine's way)."""
    from handstream.eval.images import PCK_AT, evaluate_images
    from handstream.models.defaults import DEFAULT_CROP_MODEL

    model = f.model or DEFAULT_CROP_MODEL
    res = evaluate_images(f.images, model, threads=f.threads, progress=f.progress, palm_detector=f.palm_detector)
    console = Console()
    console.print(
        f"{model} ({res['kind']}) on {f.images}: {res['frames']} images, {res['ideal']['hands']} labelled hands; "
        "errors over the hand's size (the longer side of its labelled joints' box); "
        f"engine: {res['settings']['acquire']}"
    )
    table = Table()
    for col in ("crops", "found", "found rate", "error mean", "error median", f"PCK@{PCK_AT:g}", "false finds"):
        table.add_column(col, justify="right")
    for mode, label in (("ideal", "ideal crop"), ("engine", "engine")):
        r = res[mode]
        table.add_row(label, f"{r['found']}/{r['hands']}", _pct(r["found_rate"]), _fmt(r["error_mean"]),
                      _fmt(r["error_median"]), _pct(r[f"pck_{PCK_AT:g}"]), str(r.get("false_finds", "-")))  # fmt: skip
    console.print(table)
    _write_json(res, f.json_out, console)


MODES: dict[str, Callable[[EvalFlags], None]] = {
    "scored": run_scored,
    "tracked": run_tracked,
    "label-noise": run_label_noise,
    "recording": run_recording,
    "images": run_images,
}
"""Mode name (:func:`pick_mode`) -> what runs it."""


# --- parsing and tables ------------------------------------------------------------------------------------------


def _pair(value: str | None) -> tuple[int, int] | None:
    if value is None:
        return None
    try:
        a, b = (int(v) for v in value.split(","))
    except ValueError:
        raise HandstreamError(f"--pair: expected two view indices like 0,1, got {value!r}") from None
    return a, b


def _levels(value: str) -> list[float]:
    try:
        return [float(v) for v in value.split(",")]  # label_noise_floor checks the values
    except ValueError:
        raise HandstreamError(f"--label-noise: expected pixel levels like 0,1,2,4, got {value!r}") from None


def _fmt(v) -> str:
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.3f}"
    return str(v)


def _pct(v) -> str:
    return "nan" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.1f} %"


def _metric_table(title: str | None = None) -> Table:
    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    return table


def _consistency_table(res: dict) -> Table:
    """``--recording``: reprojection and agreement over all views, then per view."""
    rp = res["reprojection"]
    table = _metric_table("multi-view consistency (no labels)")
    table.add_row(
        "reprojection, views used: mean / median px", f"{_fmt(rp['inlier_mean_px'])} / {_fmt(rp['inlier_median_px'])}"
    )
    table.add_row(
        "reprojection, all views: mean / median px",
        f"{_fmt(rp['all_views_mean_px'])} / {_fmt(rp['all_views_median_px'])}",
    )
    table.add_row("detections used by RANSAC", _pct(rp["inlier_rate"]))
    table.add_row("joints the views agree on", _pct(rp["agreement_rate"]))
    table.add_row("joints triangulated", str(rp["joints"]))
    for name, pv in res["per_view"].items():
        table.add_row(
            f"{name}: hand found / reprojection px", f"{_pct(pv['hand_found'])} / {_fmt(pv['reproj_mean_px'])}"
        )
    return table


def _hands_table(res: dict) -> Table:
    """``--recording``: coverage, bone-length variation and jitter per hand."""
    hands = Table(title=f"per hand (lengths in {res['length_unit']})")
    hands.add_column("metric")
    for side in res["hands"]:
        hands.add_column(side, justify="right")
    rows = (
        ("coverage (tracked frames)", lambda h: f"{_pct(h['coverage'])} ({h['frames_tracked']})"),
        ("bone length CV, mean over bones", lambda h: f"{_fmt(h['bone_cv_pct'])} %"),
        ("bone length CV, median over bones", lambda h: f"{_fmt(h['bone_cv_pct_median'])} %"),
        ("palm length (wrist - middle MCP)", lambda h: _fmt(h["palm_length"])),
        ("jitter per frame (median)", lambda h: _fmt(h["jitter"])),
        ("jitter, 2nd difference (median)", lambda h: _fmt(h["jitter_2nd"])),
    )
    for label, get in rows:
        hands.add_row(label, *(get(h) for h in res["hands"].values()))
    return hands


def _write_json(res: dict, json_out: Path | None, console: Console) -> None:
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        write_json(res, json_out)
        console.print(f"wrote {json_out}")
