"""``handstream view``: the live 3D view in a browser (docs/use-the-poses.md, "Viewer")."""

from __future__ import annotations

import os
import sys

import typer

from handstream.cli.options import Calibration, CurveDir, PoseEndpoint, Quiet, StopAfter, UnitScale, stop_flag
from handstream.transport import DEFAULT_POSE_ENDPOINT


def _has_display() -> bool:
    """A graphical session to open a browser in (on Linux without one, Python's webbrowser would start a text
    browser in this terminal)."""
    return sys.platform in ("darwin", "win32") or bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def view_command(
    port: int = typer.Option(8080, "--port", help="Port of the page and its WebSocket (0: any free port)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (loopback unless --allow-remote)."),
    allow_remote: bool = typer.Option(
        False, "--allow-remote", help="Accept connections from other machines (listen on 0.0.0.0 by default)."
    ),
    endpoint: PoseEndpoint = DEFAULT_POSE_ENDPOINT,
    calibration: Calibration = None,
    unit_scale: UnitScale = None,
    include_2d: bool = typer.Option(
        False,
        "--include-2d",
        help="Also draw each view's 2D skeleton (the 3D joints projected into every camera) on its live camera image "
        "(the engine's thumbnails, engine.thumbnail_fps).",
    ),
    open_browser: bool = typer.Option(
        None, "--open/--no-open", help="Open the page in a browser (default: when there is a display)."
    ),
    curve_dir: CurveDir = None,
    seconds: StopAfter = None,
    quiet: Quiet = False,
) -> None:
    """Show the live poses in a browser: both hands in 3D, the cameras, rate, latency and drops.

    Without --calibration the cameras of serve --demo are recognised by their names; others are not drawn.

    Examples:
      handstream serve --demo            # in one terminal
      handstream view                    # in another: http://127.0.0.1:8080/
      handstream view --calibration calibration.toml --unit-scale 0.04 --include-2d
    """
    from handstream.bridges.deps import require
    from handstream.transport.endpoints import check_connect_endpoint
    from handstream.view import check_view_options, load_rig, run_view

    check_connect_endpoint(endpoint)
    listen_host, listen_port = check_view_options(host, port, allow_remote)
    rig = source = None
    if calibration is not None:
        rig = load_rig(calibration, unit_scale)
        source = f"{calibration} ({len(rig)} cameras)"
    elif unit_scale is not None:
        from handstream.errors import HandstreamError

        raise HandstreamError("--unit-scale: only with --calibration")
    require("websockets")
    stop = stop_flag(seconds)

    def ready(url: str) -> None:
        if not quiet:
            print(f"handstream view: {url} (poses from {endpoint}); Ctrl-C stops", file=sys.stderr, flush=True)
        if open_browser or (open_browser is None and _has_display()):
            import webbrowser

            webbrowser.open(url)

    opts = {"host": listen_host, "port": listen_port, "include_2d": include_2d}
    keys = None if curve_dir is None else str(curve_dir)
    code = run_view(opts, stop, endpoint=endpoint, curve_dir=keys, rig=rig, source=source or "", on_ready=ready)
    raise typer.Exit(code)
