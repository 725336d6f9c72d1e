"""The optional libraries of the ``bridges`` extra, imported only when a bridge runs."""

from __future__ import annotations

import importlib
from typing import Any

from handstream.errors import HandstreamError


def require(module: str) -> Any:
    """Import an optional library of the ``bridges`` extra, or raise one line naming the extra."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pylsl raises RuntimeError without liblsl: let that say so itself
        package = {"pythonosc": "python-osc"}.get(module, module)
        raise HandstreamError(
            f"{module} is not installed ({exc}): pip install 'handstream[bridges]' (or pip install {package})"
        ) from None
