"""``handstream eval``: metrics of a model on a synthetic dataset with truth (``--data``), or label-free
consistency metrics of a model or the MediaPipe teacher on any calibrated recording (``--recording``); a rich
table and optionally JSON."""

from __future__ import annotations

import math
from pathlib import Path

import typer

from handstream.records import write_json


def _pair(value: str | None) -> tuple[int, int] | None:
    from handstream.errors import HandstreamError

    if value is None:
        return None
    try:
        a, b = (int(v) for v in value.split(","))
    except ValueError:
        raise HandstreamError(f"--pair: expected two view indices like 0,1, got {value!r}") from None
    return a, b


def _fmt(v) -> str:
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.3f}"
    return str(v)


def _check_modes(
    data: Path | None,
    recording: list[Path],
    model: Path | None,
    teacher: Path | None,
    *,
    calibration: Path | None,
    unit_scale: float | None,
    frames: str | None,
    mirrored: bool,
    pair: str | None,
    limit: int | None,
    label_noise: str | None = None,
) -> None:
    """One line (HandstreamError) for a combination of options that does not make sense."""
    from handstream.errors import HandstreamError

    if label_noise is not None:
        if data is None or model is not None or teacher is not None:
            raise HandstreamError(
                "--label-noise: only with --data and without --model/--teacher "
                "(it triangulates the dataset's own labels)"
            )

    if (data is None) == (not recording):
        raise HandstreamError(
            "give either --data SYNTH_FOLDER (metrics against its labels) or --recording PATH per camera "
            "(label-free consistency metrics)"
        )
    if data is not None:
        if model is None and label_noise is None:
            raise HandstreamError(
                "--data: needs --model (an exported .onnx with its manifest), or --label-noise PX for the rig's floor"
            )
        for name, value in (
            ("--teacher", teacher), ("--calibration", calibration), ("--unit-scale", unit_scale), ("--frames", frames),
        ):  # fmt: skip
            if value is not None:
                raise HandstreamError(f"{name}: only with --recording (with --data use --limit)")
        if mirrored:
            raise HandstreamError("--mirrored: only with --recording and --teacher")
        return
    if (model is None) == (teacher is None):
        raise HandstreamError(
            "--recording: give either --model (a handstream model) or --teacher (a MediaPipe .task bundle)"
        )
    for name, value in (("--pair", pair), ("--limit", limit)):
        if value is not None:
            raise HandstreamError(f"{name}: only with --data (with --recording use --frames START:STOP)")


def eval_command(
    model: Path = typer.Option(
        None, "--model", help="Model: exported .onnx with its .onnx.json manifest (a .pt checkpoint with --recording)."
    ),
    data: Path = typer.Option(
        None, "--data", help="Synthetic dataset folder (handstream synth render): scored against its labels."
    ),
    recording: list[Path] = typer.Option(
        [],
        "--recording",
        help="A video file or image folder per camera, in the calibration's order (repeat); no labels needed.",
    ),
    calibration: Path = typer.Option(
        None, "--calibration", help="Calibration of the --recording cameras (.toml, .yaml, .json)."
    ),
    unit_scale: float = typer.Option(
        None, "--unit-scale", help="Metres per calibration length unit (e.g. 0.04 for 4 cm board squares)."
    ),
    frames: str = typer.Option(
        None, "--frames", help="Frame range START:STOP of the --recording (e.g. 200:250 or 200:)."
    ),
    teacher: Path = typer.Option(
        None,
        "--teacher",
        help="Score MediaPipe's hand landmarker (.task bundle) instead of a --model (--recording only).",
    ),
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
    refiner: str = typer.Option(
        "default",
        "--refiner",
        help="With --model: the refine stage's model, as the engine runs it ('default': the one the model's "
        "manifest names, else the shipped engines/handstream-refiner.onnx; 'none': the detector alone).",
    ),
    tracked: bool = typer.Option(
        False,
        "--tracked",
        help="--data with --model: score the engine's tracked path as it runs live (each sequence in order, the "
        "crop model on crops predicted from the last poses, the detector only to acquire hands; One-Euro on).",
    ),
    max_views_per_hand: int = typer.Option(
        None, "--max-views-per-hand", help="--tracked: crops per hand and frame set (default: the engine's, 2)."
    ),
    threads: int = typer.Option(0, "--threads", help="ONNX Runtime threads (0: its default)."),
    no_progress: bool = typer.Option(False, "--no-progress", help="No progress bar."),
) -> None:
    """Evaluate 2D and 3D hand pose: against synthetic labels (--data), or without labels (--recording).

    --data: 2D EPE / PCK, multi-view and 2-view MPJPE after RANSAC triangulation, PA-MPJPE, 3D PCK and AUC.
    --recording: the detections of every view are triangulated as the engine does (RANSAC), then reprojection
    error (px), coverage, bone-length variation (%) and frame-to-frame jitter are reported.

    Example: handstream eval --model engines/handstream-default.onnx --data data/h4-test --json eval.json

    Example: handstream eval --model engines/handstream-default.onnx --data data/h4-test --tracked   (as live)

    Example: handstream eval --data data/h4-test --label-noise 0,1,2,4   (how precise must 2D be on this rig?)

    Example: handstream eval --teacher hand_landmarker.task --recording cam0.mp4 --recording cam1.mp4
    --calibration calibration.toml --frames 200:250
    """
    _check_modes(
        data, recording, model, teacher, calibration=calibration, unit_scale=unit_scale, frames=frames,
        mirrored=mirrored, pair=pair, limit=limit, label_noise=label_noise,
    )  # fmt: skip
    if (tracked or max_views_per_hand is not None) and (recording or label_noise is not None):
        from handstream.errors import HandstreamError

        raise HandstreamError("--tracked / --max-views-per-hand: only with --data and --model")
    if max_views_per_hand is not None and not tracked:
        from handstream.errors import HandstreamError

        raise HandstreamError("--max-views-per-hand: only with --tracked")
    if label_noise is not None:
        _eval_label_noise(data, label_noise, pair=_pair(pair), limit=limit, json_out=json_out)
        return
    from handstream.models.defaults import refiner_option

    refiner_path = refiner_option(refiner, model, tracking=tracked) if model is not None else None
    if recording:
        _eval_recording(
            recording, calibration, model=model, teacher=teacher, unit_scale=unit_scale, frames=frames,
            mirrored=mirrored, threads=threads, progress=not no_progress, json_out=json_out, refiner=refiner_path,
        )  # fmt: skip
        return
    from rich.console import Console
    from rich.table import Table

    from handstream.eval.evaluate import evaluate

    if tracked:
        _eval_tracked(model, data, refiner_path, max_views_per_hand, limit, threads, not no_progress, json_out)
        return
    res = evaluate(
        model, data, pair=_pair(pair), limit=limit, threads=threads, progress=not no_progress, refiner=refiner_path
    )
    console = Console()
    with_refiner = f" + refiner {refiner_path}" if refiner_path else " (no refiner)"
    console.print(
        f"{model}{with_refiner} on {data}: {res['frames']} frames, {res['views']} views, 2-view pair {res['pair']}"
    )
    table = Table()
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in res["2d"].items():
        table.add_row(f"2D {key}", _fmt(value))
    for section in [k for k in res if k.startswith("3d_")]:
        for key, value in res[section].items():
            table.add_row(f"{section[3:]} {key}", _fmt(value))
    table.add_row("onnx ms/frame (median)", _fmt(res["onnx_ms_per_frame"]["median"]))
    if refiner_path:
        table.add_row("refine ms/frame (median)", _fmt(res["onnx_ms_per_frame"]["refine_median"]))
    console.print(table)
    _write_json(res, json_out, console)


def _eval_tracked(model, data, refiner, max_views_per_hand, limit, threads, progress, json_out) -> None:
    """``--data --tracked``: :func:`handstream.eval.evaluate.evaluate_tracked` as a table."""
    from rich.console import Console
    from rich.table import Table

    from handstream.config import EngineConfig
    from handstream.errors import HandstreamError
    from handstream.eval.evaluate import evaluate_tracked

    if refiner is None:
        raise HandstreamError("--tracked: the tracked path needs a crop model (--refiner default or a path)")
    if max_views_per_hand is not None and max_views_per_hand < EngineConfig().min_views:
        raise HandstreamError(f"--max-views-per-hand: expected an integer >= 2, got {max_views_per_hand}")
    engine = EngineConfig() if max_views_per_hand is None else EngineConfig(max_views_per_hand=max_views_per_hand)
    res = evaluate_tracked(model, data, refiner, engine=engine, limit=limit, threads=threads, progress=progress)
    console = Console()
    console.print(f"{model} + crop model {refiner}, tracked, on {data}: {res['frames']} frames, {res['views']} views")
    table = Table()
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in res["3d_tracked"].items():
        table.add_row(f"tracked {key}", _fmt(value))
    for key in ("acquisition_rate", "crops_per_frame_set", "tracks_started"):
        table.add_row(f"tracking {key}", _fmt(res["tracking"][key]))
    table.add_row("tracking lost", ", ".join(f"{k} {v}" for k, v in res["tracking"]["lost"].items()))
    table.add_row("pipeline ms/frame (median)", _fmt(res["ms_per_frame"]["median"]))
    console.print(table)
    _write_json(res, json_out, console)


def _levels(value: str) -> list[float]:
    from handstream.errors import HandstreamError

    try:
        return [float(v) for v in value.split(",")]  # label_noise_floor checks the values
    except ValueError:
        raise HandstreamError(f"--label-noise: expected pixel levels like 0,1,2,4, got {value!r}") from None


def _eval_label_noise(data: Path, value: str, *, pair, limit: int | None, json_out: Path | None) -> None:
    from rich.console import Console
    from rich.table import Table

    from handstream.eval.evaluate import label_noise_floor

    res = label_noise_floor(data, _levels(value), pair=pair, limit=limit)
    console = Console()
    multi = f"3d_{res['views']}view"
    console.print(
        f"{data}: its 2D labels + Gaussian noise, no model; {res['frames']} frames, {res['views']} views, "
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
    _write_json(res, json_out, console)


def _write_json(res: dict, json_out: Path | None, console) -> None:
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        write_json(res, json_out)
        console.print(f"wrote {json_out}")


def _pct(v) -> str:
    return "nan" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.1f} %"


def _eval_recording(
    recording: list[Path],
    calibration: Path | None,
    *,
    model: Path | None,
    teacher: Path | None,
    unit_scale: float | None,
    frames: str | None,
    mirrored: bool,
    threads: int,
    progress: bool,
    json_out: Path | None,
    refiner: Path | None = None,
) -> None:
    from rich.console import Console
    from rich.table import Table

    from handstream.capture.recording import parse_frame_range
    from handstream.eval.consistency import evaluate_recording

    res = evaluate_recording(
        [str(p) for p in recording], calibration, model=model, teacher=teacher, unit_scale=unit_scale,
        frames=parse_frame_range(frames), mirrored=mirrored, threads=threads, progress=progress, refiner=refiner,
    )  # fmt: skip
    console = Console()
    span = res["recording"].get("frames") or [0, res["frames"]]
    unit = res["length_unit"]
    console.print(
        f"{res['detector']} on {res['views']} views ({', '.join(res['cameras'])}), frames {span[0]}:{span[1]} "
        f"({res['frames']}); RANSAC {res['settings']['threshold_px']:g} px, a hand needs "
        f"{res['settings']['min_joints']} joints"
    )
    rp = res["reprojection"]
    table = Table(title="multi-view consistency (no labels)")
    table.add_column("metric")
    table.add_column("value", justify="right")
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
    console.print(table)
    hands = Table(title=f"per hand (lengths in {unit})")
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
    console.print(hands)
    console.print(f"detection took {res['seconds']:.1f} s")
    _write_json(res, json_out, console)
