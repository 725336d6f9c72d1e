"""``handstream eval``: metrics of an exported model on a synthetic dataset (table + JSON)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import typer


def _pair(value: str | None) -> tuple[int, int] | None:
    from handstream.errors import HandstreamError

    if value is None:
        return None
    try:
        a, b = (int(v) for v in value.split(","))
    except ValueError:
        raise HandstreamError(f"--pair: expected two view indices like 0,1, got {value!r}") from None
    return a, b


def _nan_to_null(obj):
    """JSON has no NaN: write null instead."""
    if isinstance(obj, dict):
        return {k: _nan_to_null(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_nan_to_null(v) for v in obj]
    return None if isinstance(obj, float) and math.isnan(obj) else obj


def _fmt(v) -> str:
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.3f}"
    return str(v)


def eval_command(
    model: Path = typer.Option(..., "--model", help="Exported model (.onnx with its .onnx.json manifest)."),
    data: Path = typer.Option(..., "--data", help="Synthetic dataset folder (handstream synth render)."),
    json_out: Path = typer.Option(None, "--json", help="Write the metrics to this JSON file."),
    pair: str = typer.Option(
        None, "--pair", help="The two views of the 2-view figures, e.g. 0,1 (default: the two that see most joints)."
    ),
    limit: int = typer.Option(None, "--limit", help="Evaluate only the first N frames."),
    threads: int = typer.Option(0, "--threads", help="ONNX Runtime threads (0: its default)."),
    no_progress: bool = typer.Option(False, "--no-progress", help="No progress bar."),
) -> None:
    """2D EPE / PCK, multi-view and 2-view MPJPE after RANSAC triangulation, PA-MPJPE, 3D PCK and AUC.

    Example: handstream eval --model engines/handstream-default.onnx --data data/h4-test --json eval.json
    """
    from rich.console import Console
    from rich.table import Table

    from handstream.eval.evaluate import evaluate

    res = evaluate(model, data, pair=_pair(pair), limit=limit, threads=threads, progress=not no_progress)
    console = Console()
    console.print(f"{model} on {data}: {res['frames']} frames, {res['views']} views, 2-view pair {res['pair']}")
    table = Table()
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in res["2d"].items():
        table.add_row(f"2D {key}", _fmt(value))
    for section in [k for k in res if k.startswith("3d_")]:
        for key, value in res[section].items():
            table.add_row(f"{section[3:]} {key}", _fmt(value))
    table.add_row("onnx ms/frame (median)", _fmt(res["onnx_ms_per_frame"]["median"]))
    console.print(table)
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(_nan_to_null(res), indent=2, allow_nan=False) + "\n")
        console.print(f"wrote {json_out}")
