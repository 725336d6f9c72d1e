"""``handstream calib``: inspect and convert camera calibrations."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from handstream.cli.options import UnitScale

calib_app = typer.Typer(help="Inspect and convert camera calibrations.", no_args_is_help=True)


@calib_app.command("show")
def calib_show(
    path: Path = typer.Argument(..., help="Calibration: aniposelib .toml, OpenCV .yaml/.yml/.xml, AssemblyHands .json"),
    unit_scale: UnitScale = None,
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
    Console().print(table)


@calib_app.command("convert")
def calib_convert(
    source: Path = typer.Argument(..., help="Calibration to read (.toml, .yaml/.yml/.xml, .json)."),
    target: Path = typer.Argument(..., help="File to write; the extension picks the format (.toml, .yaml/.yml, .xml)."),
    unit_scale: UnitScale = None,
) -> None:
    """Convert a calibration between formats (and units).

    Example: handstream calib convert assemblyhands.json headset.toml
    """
    from handstream.geometry import load_calibration, save_calibration

    rig = load_calibration(source, unit_scale=unit_scale)
    save_calibration(rig, target)
    Console().print(f"wrote {target} ({len(rig)} cameras)")
