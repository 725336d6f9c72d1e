"""``handstream export-engine``: a checkpoint -> a verified ONNX model [-> a TensorRT engine], with manifests.

The work is :func:`handstream.export.export_engine`; this module parses options and prints.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from handstream.errors import HandstreamError


def _list_formats(console: Console) -> None:
    from handstream.export import format_table

    table = Table(title="handstream export-engine --format ...")
    for column in ("format", "files", "needs a GPU", "available here", "runs on"):
        table.add_column(column, overflow="fold")
    for row in format_table():
        table.add_row(row["format"], row["file"], row["gpu"], row["here"], row["runs_on"])
    console.print(table)
    for row in format_table():
        console.print(f"[bold]{row['format']}[/bold]: {row['notes']}")


def export_command(
    checkpoint: Path = typer.Option(
        None, "--checkpoint", help="Weights: handstream train's model.pt / checkpoint.pt, or an exported .onnx."
    ),
    out: Path = typer.Option(None, "--out", help="Output path without suffix, e.g. engines/my-model."),
    fmt: str = typer.Option(
        "onnx", "--format", help="onnx | tensorrt (tensorrt also writes the ONNX it is built from)."
    ),
    fp16: bool = typer.Option(False, "--fp16", help="TensorRT: allow fp16 kernels (inputs/outputs stay fp32)."),
    max_views: int = typer.Option(8, "--max-views", help="Most views per batch (TensorRT optimisation profile 1..N)."),
    input_size: str = typer.Option(
        None, "--input", help="Network input WIDTHxHEIGHT, multiples of 32 (default: as trained)."
    ),
    real_frames: int = typer.Option(2, "--real-frames", help="Rendered headset frames used as real parity inputs."),
    list_formats: bool = typer.Option(False, "--list", help="Print the table of formats and exit."),
) -> None:
    """Export the estimator for serving: ONNX (any machine) or a TensorRT engine (on the GPU that will run it).

    Every artifact gets a JSON manifest next to it (NAME.onnx.json, NAME.engine.json) and is checked
    against its reference (ONNX Runtime vs PyTorch; TensorRT vs ONNX Runtime) on random inputs and on
    rendered camera frames through the engine's preprocessing; a difference above tolerance fails.

    Examples:
      handstream export-engine --checkpoint runs/handstream-default/model.pt --out engines/my-model
      handstream export-engine --checkpoint runs/x/model.pt --out engines/x --input 320x256
      handstream export-engine --checkpoint engines/handstream-default.onnx --out engines/hs --format tensorrt --fp16
      handstream export-engine --list
    """
    from handstream.export import export_engine

    console = Console(stderr=True)
    if list_formats:
        _list_formats(Console())
        return
    if checkpoint is None or out is None:
        raise HandstreamError("export-engine: --checkpoint and --out are required (or --list)")
    results = export_engine(
        checkpoint, out, fmt=fmt.lower(), fp16=fp16, max_views=max_views, input_size=input_size,
        real_frames=real_frames, console=console,
    )  # fmt: skip
    table = Table(title="written")
    for column in ("artifact", "manifest", "input", "max views", "parity max abs diff (heatmaps / presence)", "vs"):
        table.add_column(column, overflow="fold")
    for path, manifest in results:
        d = manifest.parity.get("max_abs_diff", {})
        w, h = manifest.input_size
        table.add_row(
            str(path), f"{path.name}.json", f"{w}x{h}", str(manifest.max_views),
            f"{d.get('heatmaps', float('nan')):.1e} / {d.get('presence', float('nan')):.1e}",
            str(manifest.parity.get("reference", "")),
        )  # fmt: skip
    Console().print(table)
