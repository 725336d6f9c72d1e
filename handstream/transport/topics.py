"""Topic names: the first part of every message on the wire (see docs/wire-protocol.md).

A topic is ASCII and dotted: ``frame.<camera>``, ``pose``, ``status.<process>``. There is no control
topic: processes are stopped by their supervisor with signals (:mod:`handstream.serve`). Names (camera,
process) are 1-64 characters of ``[A-Za-z0-9_-]``, so a topic is at most 71 bytes and never needs
escaping. ZeroMQ subscriptions match topic *prefixes*; the receivers in :mod:`handstream.transport`
additionally compare the whole topic, so ``pose`` never matches ``poseX``.
"""

from __future__ import annotations

import re

from handstream.errors import HandstreamError

MAX_NAME_LEN = 64
"""Longest camera / process name, in characters."""

MAX_TOPIC_BYTES = len("status.") + MAX_NAME_LEN
"""Longest valid topic in bytes (``status.<64 characters>``)."""

FRAME_PREFIX = b"frame."
"""Prefix of frame topics: ``frame.<camera>``."""

POSE = b"pose"
"""Topic of pose messages (exactly these 4 bytes)."""

STATUS_PREFIX = b"status."
"""Prefix of status topics: ``status.<process>`` (counters, health)."""

_NAME_RE = re.compile(rf"[A-Za-z0-9_-]{{1,{MAX_NAME_LEN}}}")


_valid_names: set[str] = set()  # names seen valid (camera/stage names repeat in every message)
_VALID_NAMES_CACHE = 4096


def is_valid_name(name: object) -> bool:
    """True when ``name`` is a ``str`` of 1-64 characters from ``[A-Za-z0-9_-]`` (ASCII only)."""
    if type(name) is not str:
        return False
    if name in _valid_names:
        return True
    if _NAME_RE.fullmatch(name) is None:
        return False
    if len(_valid_names) < _VALID_NAMES_CACHE:
        _valid_names.add(name)
    return True


def check_name(name: object, what: str = "camera") -> str:
    """Return ``name`` if it is a valid camera/process name, else raise :class:`HandstreamError`.

    ``what`` names the field in the message (``"camera"``, ``"process"``).
    """
    if not is_valid_name(name):
        raise HandstreamError(
            f"{what} name {name!r} is invalid: expected 1-{MAX_NAME_LEN} ASCII characters from [A-Za-z0-9_-]"
        )
    return name  # type: ignore[return-value]


def frame_topic(camera: str) -> bytes:
    """Topic of the frames of one camera: ``frame_topic("cam0") == b"frame.cam0"``."""
    return FRAME_PREFIX + check_name(camera, "camera").encode("ascii")


def status_topic(process: str) -> bytes:
    """Topic of a process's status/counters: ``status_topic("engine") == b"status.engine"``."""
    return STATUS_PREFIX + check_name(process, "process").encode("ascii")


__all__ = [
    "FRAME_PREFIX",
    "MAX_NAME_LEN",
    "MAX_TOPIC_BYTES",
    "POSE",
    "STATUS_PREFIX",
    "check_name",
    "frame_topic",
    "is_valid_name",
    "status_topic",
]
