"""Files the project writes and reads back: strict JSON reports (bench, eval, adapt, training records), file
hashes for provenance, and the natural order of file and camera names."""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from handstream.errors import HandstreamError


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


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB chunks (model and checkpoint provenance)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def natural_key(text: str) -> tuple:
    """Sort key that orders digit runs by value: ``cam_2`` < ``cam_10``."""
    # re.split with a capturing group alternates text, number, text, ... so positions always compare
    # str with str and int with int.
    return tuple(int(part) if i % 2 else part.lower() for i, part in enumerate(re.split(r"(\d+)", text)))


def read_json_lines(path: str | Path, missing: str = "file not found") -> Iterator[tuple[int, Any]]:
    """(line number, object) of each non-empty line of a JSON-lines file (poses as ``subscribe --record`` and
    recordings write them).

    Raises:
        HandstreamError: ``<path>: <missing>`` when there is no such file; ``<path>:<line>: not a JSON line``.
    """
    path = Path(path)
    if not path.is_file():
        raise HandstreamError(f"{path}: {missing}")
    with path.open(encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            if line.strip():
                try:
                    yield i, json.loads(line)
                except ValueError as exc:
                    raise HandstreamError(f"{path}:{i}: not a JSON line ({exc})") from None


def read_text(path: str | Path, missing: str = "file not found") -> str:
    """A UTF-8 text file (calibrations, configs, manifests), every failure one line naming it: ``<path>:
    <missing>`` when it is not a file, ``not a text file (not UTF-8)``, ``cannot read: <why>``."""
    path = Path(path)
    if not path.is_file():
        raise HandstreamError(f"{path}: {missing}")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise HandstreamError(f"{path}: not a text file (not UTF-8)") from None
    except OSError as exc:
        raise HandstreamError(f"{path}: cannot read: {exc.strerror}") from None
