"""What every handstream child process does the same way: signals, parent watch, one-line errors.

* SIGTERM (from ``handstream serve``) asks the process to stop; SIGINT is ignored in children, so a
  Ctrl-C in the terminal reaches only the supervisor, which then stops the children in order.
* Children ask the kernel to send them SIGTERM when their parent dies (Linux ``PR_SET_PDEATHSIG``) and
  also poll their parent's pid, so a supervisor killed with SIGKILL leaves no orphans behind.
* A :class:`~handstream.errors.HandstreamError` ends the process with one line on stderr and exit code 2.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable

from handstream.errors import HandstreamError

EXIT_USER_ERROR = 2


class StopFlag:
    """Set by SIGTERM or when the parent is gone; the process's main loop checks :meth:`is_set`."""

    def __init__(self, parent_pid: int | None = None):
        self._event = threading.Event()
        self.parent_pid = parent_pid

    def set(self) -> None:
        self._event.set()

    def is_set(self) -> bool:
        if not self._event.is_set() and self.parent_pid is not None and os.getppid() != self.parent_pid:
            self._event.set()  # re-parented: the supervisor is gone
        return self._event.is_set()

    def wait(self, seconds: float) -> bool:
        return self._event.wait(seconds) or self.is_set()


def die_with_parent() -> None:
    """Ask the kernel to send this process SIGTERM when its parent dies (Linux; elsewhere nothing)."""
    if sys.platform != "linux":
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG = 1
    except (OSError, AttributeError):  # not fatal: the parent-pid poll covers it
        pass


def child_main(name: str, body: Callable[[StopFlag], int], parent_pid: int | None) -> None:
    """Run ``body(stop)`` as a child process's whole life and exit with its code."""
    logging.basicConfig(level=logging.WARNING, format=f"handstream {name}: %(message)s")
    stop = StopFlag(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    die_with_parent()
    if parent_pid is not None and os.getppid() != parent_pid:
        sys.exit(0)
    try:
        code = body(stop)
    except HandstreamError as exc:
        print(f"handstream {name}: error: {exc}", file=sys.stderr, flush=True)
        code = EXIT_USER_ERROR
    except KeyboardInterrupt:
        code = 0
    sys.stdout.flush()
    sys.exit(code)
