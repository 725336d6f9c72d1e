"""The ``handstream`` command line: thin wrappers that parse, call the library, and print.

Every error a user can cause is a :class:`~handstream.errors.HandstreamError`; :func:`main` prints it
as one line on stderr and exits with code 2 (the same code click uses for usage errors).
"""

from __future__ import annotations

import platform
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from handstream import __version__
from handstream.adapt.cli import adapt_command
from handstream.cli_bench import bench_command
from handstream.cli_export import export_command
from handstream.cli_serve import keys_command, serve_command, subscribe_command
from handstream.errors import HandstreamError
from handstream.eval.cli import eval_command
from handstream.synth.cli import synth_app
from handstream.train.cli import train_command

app = typer.Typer(
    name="handstream",
    help="Real-time multi-view 3D hand pose: cameras -> heatmaps -> triangulation -> pose topic.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
calib_app = typer.Typer(help="Inspect and convert camera calibrations.", no_args_is_help=True)
app.add_typer(calib_app, name="calib")
app.add_typer(synth_app, name="synth")
app.command("serve")(serve_command)
app.command("subscribe")(subscribe_command)
app.command("keys")(keys_command)
app.command("export-engine")(export_command)
app.command("bench")(bench_command)
app.command("train")(train_command)
app.command("eval")(eval_command)
app.command("adapt")(adapt_command)

console = Console()


def _version(value: bool) -> None:
    if value:
        console.print(f"handstream {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """Real-time multi-view 3D hand pose estimation."""


@app.command()
def info() -> None:
    """Show the installation: versions, native kernels, CUDA devices.

    Example: handstream info
    """
    from handstream.ops import _native

    table = Table(show_header=False, box=None)
    table.add_row("handstream", __version__)
    table.add_row("python", platform.python_version())
    import numpy

    table.add_row("numpy", numpy.__version__)
    try:
        _native.cpu()
        table.add_row("C++ kernels (handstream._C)", "built")
    except HandstreamError as exc:
        table.add_row("C++ kernels (handstream._C)", f"[red]{exc}[/red]")
    cuda = _native.cuda()
    if cuda is None:
        table.add_row("CUDA kernels (handstream._cuda)", "not built (no nvcc at install time)")
    else:
        n = cuda.device_count()
        table.add_row("CUDA kernels (handstream._cuda)", f"built; {n} usable device(s)")
    console.print(table)


@calib_app.command("show")
def calib_show(
    path: Path = typer.Argument(..., help="Calibration: aniposelib .toml, OpenCV .yaml/.yml/.xml, AssemblyHands .json"),
    unit_scale: float = typer.Option(None, help="Multiply lengths by this to get metres (e.g. 0.04 for 4 cm squares)."),
) -> None:
    """Load a calibration and print its cameras, baselines and fields of view.

    Example: handstream calib show calibration.toml --unit-scale 0.04
    """
    import numpy as np

    from handstream.geometry import load_calibration

    rig = load_calibration(path, unit_scale=unit_scale)
    table = Table(title=f"{path} ({len(rig)} cameras, lengths in metres)")
    for column in ("camera", "model", "size", "fx, fy (px)", "centre (m)", "to first (m)"):
        table.add_column(column)
    first = rig[0].center
    for cam in rig:
        table.add_row(
            cam.name,
            cam.model,
            f"{cam.width}x{cam.height}",
            f"{cam.K[0, 0]:.1f}, {cam.K[1, 1]:.1f}",
            ", ".join(f"{v:+.3f}" for v in cam.center),
            f"{np.linalg.norm(cam.center - first):.3f}",
        )
    console.print(table)


@calib_app.command("convert")
def calib_convert(
    source: Path = typer.Argument(..., help="Calibration to read (.toml, .yaml/.yml/.xml, .json)."),
    target: Path = typer.Argument(..., help="File to write; the extension picks the format (.toml, .yaml/.yml, .xml)."),
    unit_scale: float = typer.Option(None, help="Multiply lengths by this on reading (to get metres)."),
) -> None:
    """Convert a calibration between formats (and units).

    Example: handstream calib convert assemblyhands.json headset.toml
    """
    from handstream.geometry import load_calibration, save_calibration

    rig = load_calibration(source, unit_scale=unit_scale)
    save_calibration(rig, target)
    console.print(f"wrote {target} ({len(rig)} cameras)")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``handstream`` console script. Returns the exit code."""
    try:
        # standalone mode: click prints usage errors itself and exits with code 2
        app(args=argv, prog_name="handstream")
    except HandstreamError as exc:
        print(f"handstream: error: {exc}", file=sys.stderr)
        return 2
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
