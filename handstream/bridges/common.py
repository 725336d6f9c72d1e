"""What every bridge shares: the kinds and their options (checked before anything starts), the child entry point,
lazy imports of the optional libraries.

Options of a bridge are a plain dict (``{"port": 8765, "allow_remote": False}``), the same from
``handstream bridge KIND --port 8765`` and from ``handstream serve --bridge websocket:port=8765``.
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Callable
from typing import Any

from handstream.bridges.deps import require
from handstream.errors import HandstreamError
from handstream.runtime import StopFlag, child_main
from handstream.transport.endpoints import DEFAULT_POSE_ENDPOINT, check_connect_endpoint, is_loopback_host

KINDS = ("websocket", "osc", "lsl")
"""The bridges ``handstream bridge`` / ``serve --bridge`` know."""

DEFAULTS: dict[str, dict[str, Any]] = {
    "websocket": {"host": "127.0.0.1", "port": 8765, "allow_remote": False},
    "osc": {"host": "127.0.0.1", "port": 9000, "vmc": False},
    "lsl": {"rate": 0.0, "name": "handstream"},
}
"""Every option of each kind with its default (``rate`` 0 = irregular)."""

_LIBRARIES = {"websocket": "websockets", "osc": "pythonosc", "lsl": "pylsl"}


def _coerce(kind: str, key: str, value: Any, default: Any) -> Any:
    flag = f"--{key.replace('_', '-')}"
    if isinstance(default, bool):
        if isinstance(value, str):
            if value.lower() not in ("1", "0", "true", "false", "yes", "no"):
                raise HandstreamError(f"{kind} bridge: {flag}: expected true or false, got {value!r}")
            return value.lower() in ("1", "true", "yes")
        return bool(value)
    if isinstance(default, int):
        try:
            v = int(value)
        except (TypeError, ValueError):
            raise HandstreamError(f"{kind} bridge: {flag}: expected an integer, got {value!r}") from None
        if key == "port" and not 1 <= v <= 65535:
            raise HandstreamError(f"{kind} bridge: --port: expected 1..65535, got {v}")
        return v
    if isinstance(default, float):
        try:
            v = float(value)
        except (TypeError, ValueError):
            raise HandstreamError(f"{kind} bridge: {flag}: expected a number, got {value!r}") from None
        if not v >= 0:
            raise HandstreamError(f"{kind} bridge: {flag}: expected a number >= 0, got {value!r}")
        return v
    return str(value)


def check_options(kind: str, options: dict[str, Any] | None = None, *, probe: bool = True) -> dict[str, Any]:
    """The complete, checked options of a bridge (defaults filled in).

    Args:
        kind: one of :data:`KINDS`.
        options: given options (None values are ignored: the flag was not given).
        probe: also check what can be checked before starting: that the optional library imports, and for
            ``websocket`` that the port can be bound (then released).
    Raises:
        HandstreamError: one line naming the option and what was expected.
    """
    if kind not in KINDS:
        raise HandstreamError(f"bridge KIND: expected one of {', '.join(KINDS)}, got {kind!r}")
    out = dict(DEFAULTS[kind])
    for key, value in (options or {}).items():
        if value is None:
            continue
        if key not in out:
            raise HandstreamError(f"{kind} bridge: no option {key!r} (options: {', '.join(sorted(out))})")
        out[key] = _coerce(kind, key, value, out[key])
    if kind == "websocket":
        if not is_loopback_host(out["host"]) and not out["allow_remote"]:
            raise HandstreamError(
                f"websocket bridge: --host {out['host']}: not a loopback address; add --allow-remote to accept "
                "connections from other machines"
            )
        if out["allow_remote"] and out["host"] == "127.0.0.1":
            out["host"] = "0.0.0.0"
        if probe:
            probe_port(out["host"], out["port"])
    if probe:
        require(_LIBRARIES[kind])
    return out


def probe_port(host: str, port: int) -> None:
    """Raise one line when ``host:port`` cannot be bound for listening (e.g. in use)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((host, port))
            s.listen(1)
        except OSError as exc:
            raise HandstreamError(
                f"websocket bridge: --port {port}: cannot listen on {host} ({exc.strerror})"
            ) from None


def parse_spec(spec: str) -> tuple[str, dict[str, str]]:
    """``serve --bridge`` values: ``KIND`` or ``KIND:key=value,key=value`` -> (kind, {key: value})."""
    kind, _, rest = spec.partition(":")
    options: dict[str, str] = {}
    for item in filter(None, rest.split(",")):
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise HandstreamError(f"--bridge {spec}: expected KIND or KIND:key=value,..., got {item!r}")
        options[key.strip().replace("-", "_")] = value.strip()
    return kind.strip(), options


def _runner(kind: str) -> Callable[..., int]:
    if kind == "websocket":
        from handstream.bridges.websocket import run_websocket

        return run_websocket
    if kind == "osc":
        from handstream.bridges.osc import run_osc

        return run_osc
    from handstream.bridges.lsl import run_lsl

    return run_lsl


def run_bridge(
    kind: str,
    options: dict[str, Any],
    stop: StopFlag,
    *,
    endpoint: str = DEFAULT_POSE_ENDPOINT,
    curve_dir: str | None = None,
    on_ready: Callable[[str], None] | None = None,
) -> int:
    """Run one bridge until ``stop`` is set; returns the exit code.

    Args:
        kind: one of :data:`KINDS`.
        options: given options (checked here: :func:`check_options`).
        stop: the process's stop flag (SIGTERM, parent gone, Ctrl-C in the CLI).
        endpoint: the engine's pose endpoint to subscribe to.
        curve_dir: CURVE key folder when the engine uses CURVE.
        on_ready: called once with a line saying where the poses go, when the bridge is ready.
    """
    check_connect_endpoint(endpoint)
    opts = check_options(kind, options, probe=kind != "websocket")  # websocket: the real bind reports it
    return _runner(kind)(opts, stop, endpoint=endpoint, curve_dir=curve_dir, on_ready=on_ready)


def bridge_main(args: dict[str, Any]) -> None:
    """Process entry point (``python -m handstream.bridges``). ``args``: ``kind``, ``options``, ``endpoint``,
    ``curve_dir``, ``parent_pid``."""

    def body(stop: StopFlag) -> int:
        return run_bridge(
            args["kind"], args.get("options") or {}, stop, endpoint=args["endpoint"], curve_dir=args.get("curve_dir"),
            on_ready=lambda line: print(f"handstream bridge-{args['kind']}: {line}", file=sys.stderr, flush=True),
        )  # fmt: skip

    child_main(f"bridge-{args.get('kind')}", body, args.get("parent_pid"))
