"""JSON reports (bench, eval, adapt): one conversion to plain, strict JSON."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np


def json_safe(x: Any) -> Any:
    """JSON-safe copy: NaN/inf -> None, numpy scalars and arrays -> Python, tuples -> lists, paths -> str."""
    if isinstance(x, dict):
        return {str(k): json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [json_safe(v) for v in x]
    if isinstance(x, np.ndarray):
        return json_safe(x.tolist())
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, Path):
        return str(x)
    return x


def write_json(obj: Any, path: str | Path, indent: int = 2) -> None:
    """Write ``obj`` as strict JSON (NaN as null) with a trailing newline."""
    Path(path).write_text(json.dumps(json_safe(obj), indent=indent, allow_nan=False) + "\n", encoding="utf-8")
