"""The one exception type for errors a user can cause.

A bad config, calibration, model file or argument raises :class:`HandstreamError` with a message that
names the file/field and what was expected. The CLI prints that message as one line and exits with
code 2; library callers can catch it (it is also a ``ValueError``).
"""

from __future__ import annotations


class HandstreamError(ValueError):
    """A user-facing error: the message names the file or field and what was expected."""


def where(path: object, field: str | None = None) -> str:
    """Format a location for error messages: ``"calib.toml"`` or ``"calib.toml: cam_0.matrix"``."""
    return f"{path}: {field}" if field else f"{path}"
