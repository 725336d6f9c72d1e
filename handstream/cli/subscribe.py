"""``handstream subscribe``: print (and optionally record) the poses a running engine publishes."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import typer

from handstream.cli.options import CurveDir, PoseEndpoint, StopAfter
from handstream.errors import HandstreamError
from handstream.transport import DEFAULT_POSE_ENDPOINT


def _open_record(record: Path | None, sub):
    if record is None:
        return None
    try:
        return record.open("w")
    except OSError as exc:
        sub.close()
        raise HandstreamError(f"{record}: cannot write ({exc.strerror})") from None


def subscribe_command(
    endpoint: PoseEndpoint = DEFAULT_POSE_ENDPOINT,
    as_json: bool = typer.Option(False, "--json", help="One JSON object per pose on stdout."),
    record: Path = typer.Option(None, "--record", help="Also write every pose to this file (JSON lines)."),
    count: int = typer.Option(None, "--count", "-n", help="Stop after this many poses."),
    seconds: StopAfter = None,
    timeout: float = typer.Option(None, "--timeout", help="Stop when no pose arrives for this many seconds."),
    curve_dir: CurveDir = None,
) -> None:
    """Print the poses a running engine publishes (and optionally record them).

    Examples:
      handstream subscribe
      handstream subscribe --json -n 100 > poses.jsonl
      handstream subscribe --record session.jsonl --seconds 60
    """
    from handstream.client import describe, pose_to_dict
    from handstream.transport import PoseSubscriber, curve_config

    sub = PoseSubscriber(endpoint, curve=curve_config(curve_dir))
    out = _open_record(record, sub)
    n = 0
    t0 = time.monotonic()
    last = t0
    try:
        while True:
            if seconds is not None and time.monotonic() - t0 >= seconds:
                break
            msg = sub.recv(timeout_ms=100)
            now = time.monotonic()
            if msg is None:
                if timeout is not None and now - last >= timeout:
                    print(f"handstream subscribe: no pose for {timeout:g} s on {endpoint}", file=sys.stderr)
                    break
                continue
            last = now
            t_recv = time.time_ns()
            if as_json or out is not None:
                line = json.dumps(pose_to_dict(msg, t_recv), separators=(",", ":"))
                if out is not None:
                    out.write(line + "\n")
                if as_json:
                    print(line, flush=True)
            if not as_json:
                print(describe(msg, t_recv), flush=True)
            n += 1
            if count is not None and n >= count:
                break
    except KeyboardInterrupt:
        pass
    except BrokenPipeError:  # e.g. piped into `head`
        pass
    finally:
        sub.close()
        if out is not None:
            out.close()
            print(f"handstream subscribe: {n} poses written to {record}", file=sys.stderr)
