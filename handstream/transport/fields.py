"""The header field rules that encoding and decoding share (docs/wire-protocol.md, section 3).

Each rule checks one value and returns it (numpy scalars turned into Python numbers), or raises
:class:`~handstream.transport.messages.WireError` with reason ``"fields"``. Used as
``fields.uint(...)``, ``fields.name(...)`` by :mod:`handstream.transport.encoding` and
:mod:`handstream.transport.decoding`; not part of the package's public API.
"""

from __future__ import annotations

import math
import operator
from typing import Any

import numpy as np

from handstream.transport.messages import Limits, WireError
from handstream.transport.topics import MAX_NAME_LEN, is_valid_name

U64 = 1 << 64
"""Exclusive upper bound of unsigned 64-bit fields (``seq``)."""

I64 = 1 << 63
"""Exclusive upper bound of non-negative signed 64-bit fields (timestamps, ns)."""


def uint(value: Any, name: str, hi: int, *, strict: bool) -> int:
    """An integer in ``[0, hi)``; ``strict`` (decoding) accepts only ``int``, never bool or numpy ints."""
    if strict:
        ok = type(value) is int
    else:
        ok = not isinstance(value, bool | float)
        if ok:
            try:
                value = operator.index(value)
            except TypeError:
                ok = False
    if not ok or not 0 <= value < hi:
        raise WireError("fields", f"{name} must be an integer in [0, {hi}), got {value!r}")
    return value


def number(value: Any, name: str, *, lo: float | None = None, hi: float | None = None) -> float:
    """A finite number (int or float, never bool), optionally within ``[lo, hi]``."""
    t = type(value)
    if t is not float:
        if t is bool or not isinstance(value, int | np.floating | np.integer):
            raise WireError("fields", f"{name} must be a number, got {t.__name__}")
        value = float(value)
    if not math.isfinite(value) or (lo is not None and value < lo) or (hi is not None and value > hi):
        raise WireError("fields", f"{name} must be finite and within [{lo}, {hi}], got {value!r}")
    return value


def name(value: Any, what: str) -> str:
    """A camera / process / stage name: a ``str`` of 1-64 characters of ``[A-Za-z0-9_-]``."""
    if not is_valid_name(value):
        raise WireError("fields", f"{what} must be 1-{MAX_NAME_LEN} characters of [A-Za-z0-9_-], got {value!r}")
    return value


def plain(value: Any, what: str, depth: int, limits: Limits) -> Any:
    """Check a small JSON-like value: str/int/float/bool/None, lists and str-keyed maps ``depth`` deep.

    Returns it with numpy scalars turned into Python numbers (used when encoding).
    """
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int | np.integer):
        value = int(value)
        if not -I64 <= value < U64:
            raise WireError("fields", f"{what}: integer {value} out of the 64-bit range")
        return value
    if isinstance(value, float | np.floating):
        return float(value)
    if isinstance(value, str):
        if len(value) > limits.max_str_len:
            raise WireError("fields", f"{what}: string longer than {limits.max_str_len}")
        return value
    if depth <= 0:
        raise WireError("fields", f"{what}: nested too deep or not a plain value ({type(value).__name__})")
    if isinstance(value, list | tuple):
        if len(value) > limits.max_items:
            raise WireError("fields", f"{what}: more than {limits.max_items} items")
        return [plain(v, f"{what}[{i}]", depth - 1, limits) for i, v in enumerate(value)]
    if isinstance(value, dict):
        return plain_map(value, what, depth, limits)
    raise WireError("fields", f"{what}: {type(value).__name__} is not a plain value")


def plain_map(value: Any, what: str, depth: int, limits: Limits) -> dict[str, Any]:
    """A map of 1-64-character ASCII keys to :func:`plain` values (``meta``, status ``data``)."""
    if type(value) is not dict:
        raise WireError("fields", f"{what} must be a map, got {type(value).__name__}")
    if len(value) > limits.max_items:
        raise WireError("fields", f"{what}: more than {limits.max_items} entries")
    out = {}
    for k, v in value.items():
        if type(k) is not str or not 1 <= len(k) <= MAX_NAME_LEN or not k.isascii():
            raise WireError("fields", f"{what}: key {k!r} must be 1-{MAX_NAME_LEN} ASCII characters")
        out[k] = plain(v, f"{what}.{k}", depth - 1, limits)
    return out


def timings(value: Any, limits: Limits) -> dict[str, float]:
    """A pose's ``timings``: stage name -> milliseconds, finite and ``>= 0``."""
    if type(value) is not dict or len(value) > limits.max_items:
        raise WireError("fields", f"timings must be a map of at most {limits.max_items} entries")
    return {name(k, "timings key"): number(v, f"timings.{k}", lo=0.0) for k, v in value.items()}


def views(value: Any, limits: Limits) -> list[str]:
    """A pose's ``views``: distinct camera names, at most ``limits.max_views``."""
    if type(value) is not list or len(value) > limits.max_views:
        raise WireError("fields", f"views must be a list of at most {limits.max_views} camera names")
    names = [name(v, "views[]") for v in value]
    if len(set(names)) != len(names):
        raise WireError("fields", f"views must be distinct, got {names}")
    return names


__all__ = ["I64", "U64", "name", "number", "plain", "plain_map", "timings", "uint", "views"]
