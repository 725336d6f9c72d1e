"""``handstream bridge KIND``: deliver the live poses to a WebSocket, OSC or LSL consumer (docs/use-the-poses.md)."""

from __future__ import annotations

import sys

import typer

from handstream.cli.options import CurveDir, PoseEndpoint, Quiet, StopAfter, stop_flag
from handstream.errors import HandstreamError
from handstream.transport import DEFAULT_POSE_ENDPOINT


def bridge_command(
    kind: str = typer.Argument(..., help="websocket, osc or lsl."),
    endpoint: PoseEndpoint = DEFAULT_POSE_ENDPOINT,
    host: str = typer.Option(
        None, "--host", help="websocket: address to listen on (default 127.0.0.1); osc: where to send (127.0.0.1)."
    ),
    port: int = typer.Option(
        None, "--port", help="websocket: port to listen on (8765); osc: UDP port to send to (9000)."
    ),
    allow_remote: bool = typer.Option(
        False, "--allow-remote", help="websocket: accept connections from other machines (listen on 0.0.0.0)."
    ),
    vmc: bool = typer.Option(
        False, "--vmc", help="osc: send VMC protocol bone messages (/VMC/Ext/Bone/Pos, Unity's frame) instead."
    ),
    rate: float = typer.Option(None, "--rate", help="lsl: nominal rate of the streams, Hz (0: irregular)."),
    name: str = typer.Option(None, "--name", help="lsl: stream name prefix (default handstream)."),
    curve_dir: CurveDir = None,
    seconds: StopAfter = None,
    quiet: Quiet = False,
) -> None:
    """Run a bridge: subscribe to the engine's poses and deliver them to another tool.

    Examples:
      handstream bridge websocket --port 8765        # ws://127.0.0.1:8765/?format=json (or binary)
      handstream bridge osc --host 127.0.0.1 --port 9000
      handstream bridge osc --vmc --port 39539       # VMC protocol (VSeeFace, EVMC4U, VMC4B)
      handstream bridge lsl
    """
    from handstream.bridges import check_options, run_bridge

    given = {"host": host, "port": port, "allow_remote": allow_remote or None, "vmc": vmc or None, "rate": rate,
             "name": name}  # fmt: skip
    opts = check_options(kind, {k: v for k, v in given.items() if v is not None and k in _KEYS.get(kind, ())})
    extra = [f"--{k.replace('_', '-')}" for k, v in given.items() if v is not None and k not in _KEYS.get(kind, ())]
    if extra:
        raise HandstreamError(f"{extra[0]}: not an option of the {kind} bridge")
    stop = stop_flag(seconds)

    def ready(line: str) -> None:
        if not quiet:
            print(f"handstream bridge: {line}; Ctrl-C stops", file=sys.stderr, flush=True)

    keys = None if curve_dir is None else str(curve_dir)
    raise typer.Exit(run_bridge(kind, opts, stop, endpoint=endpoint, curve_dir=keys, on_ready=ready))


_KEYS = {"websocket": ("host", "port", "allow_remote"), "osc": ("host", "port", "vmc"), "lsl": ("rate", "name")}
