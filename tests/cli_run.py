"""Running the command line as a user does (a child process) and checking its one-line errors."""

from __future__ import annotations

import signal
import subprocess
import sys


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """``python -m handstream.cli ARGS`` in a child process; text output captured, never raises on exit code."""
    return subprocess.run(
        [sys.executable, "-m", "handstream.cli", *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def assert_one_line_error(result: subprocess.CompletedProcess, *needles: str) -> str:
    """The project's error contract: exit code 2, one stderr line ``handstream: error: ...`` that contains every
    needle, no traceback. Returns that line."""
    assert result.returncode == 2, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("handstream: error: "), result.stderr
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def stop_cli(proc: subprocess.Popen, timeout: float = 10) -> None:
    """Stop a long-running command as Ctrl-C does (SIGINT), killing it if it has not exited after ``timeout`` s."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
