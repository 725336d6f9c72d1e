"""The ``handstream`` typer app: the root (``--version``), every command registered by name, and :func:`main`.

Every error a user can cause is a :class:`~handstream.errors.HandstreamError`; :func:`main` prints it
as one line on stderr and exits with code 2 (the same code click uses for usage errors).
"""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from handstream import __version__
from handstream.cli.adapt import adapt_command
from handstream.cli.annotate import annotate_command
from handstream.cli.bench import bench_command
from handstream.cli.bridge import bridge_command
from handstream.cli.calib import calib_app
from handstream.cli.eval import eval_command
from handstream.cli.export import export_command
from handstream.cli.import_model import import_model_command
from handstream.cli.info import info_command
from handstream.cli.keys import keys_command
from handstream.cli.serve import serve_command
from handstream.cli.subscribe import subscribe_command
from handstream.cli.synth import synth_app
from handstream.cli.tables import poses_table_command
from handstream.cli.train import train_command
from handstream.cli.view import view_command
from handstream.errors import HandstreamError

app = typer.Typer(
    name="handstream",
    help="Real-time multi-view 3D hand pose: cameras -> heatmaps -> triangulation -> pose topic.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
COMMANDS = {
    "serve": serve_command,
    "subscribe": subscribe_command,
    "bridge": bridge_command,
    "view": view_command,
    "keys": keys_command,
    "export-engine": export_command,
    "import-model": import_model_command,
    "bench": bench_command,
    "train": train_command,
    "eval": eval_command,
    "adapt": adapt_command,
    "annotate": annotate_command,
    "poses-table": poses_table_command,
    "info": info_command,
}
"""Command name -> its function (a module of this package each), in the order ``handstream --help`` lists them."""
GROUPS = {"calib": calib_app, "synth": synth_app}
"""Command groups (``handstream calib show``, ``handstream synth render``, ...)."""

for _name, _group in GROUPS.items():
    app.add_typer(_group, name=_name)
for _name, _command in COMMANDS.items():
    app.command(_name)(_command)


def _version(value: bool) -> None:
    if value:
        Console().print(f"handstream {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """Real-time multi-view 3D hand pose estimation."""


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
