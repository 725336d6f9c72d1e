"""Poses as a table a data scientist opens in one line (``handstream poses-table POSES.jsonl --out poses.csv``).

One row per hand per pose: ``seq``, ``t_capture_ns``, ``side``, ``presence``, ``tracked`` (any joint
triangulated), then for each joint of :data:`handstream.skeleton.JOINT_NAMES` ``<joint>_x``, ``_y``, ``_z``
(metres, rig frame) and ``<joint>_conf``; a joint that is not tracked is empty in CSV (NaN in Python, null in
Parquet). ::

    import pandas as pd; df = pd.read_csv("poses.csv")          # or pd.read_parquet("poses.parquet")
    from handstream.tables import poses_table; cols = poses_table("poses.jsonl")   # column -> NumPy array

The input is the JSON-lines layout of :func:`handstream.client.pose_to_dict` (``subscribe --record``,
``serve --record``'s ``poses.jsonl``), or those dicts already in memory.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from handstream.errors import HandstreamError
from handstream.records import read_json_lines
from handstream.skeleton import JOINT_NAMES

TABLE_SUFFIXES = (".csv", ".parquet")


def table_columns() -> list[str]:
    """The columns, in order."""
    cols = ["seq", "t_capture_ns", "side", "presence", "tracked"]
    for j in JOINT_NAMES:
        cols += [f"{j}_x", f"{j}_y", f"{j}_z", f"{j}_conf"]
    return cols


def _records(poses: str | Path | Iterable[dict[str, Any]]) -> Iterable[dict[str, Any]]:
    if not isinstance(poses, (str, Path)):
        yield from poses
        return
    for _, record in read_json_lines(poses, "poses file not found (JSON lines, as subscribe --record writes)"):
        yield record


def _num(v: Any) -> float:
    return math.nan if v is None else float(v)


def poses_table(poses: str | Path | Iterable[dict[str, Any]]) -> dict[str, np.ndarray]:
    """Column name -> (R,) array, R = hands over all poses (``seq``, ``t_capture_ns``: int64; ``side``: str;
    ``tracked``: bool; the rest float64, NaN where not tracked).

    Raises:
        HandstreamError: a missing file, or a line that is not a pose (``file:line``).
    """
    k = len(JOINT_NAMES)
    seq, t, side, presence, tracked, joints, conf = [], [], [], [], [], [], []
    for n, rec in enumerate(_records(poses), 1):
        try:
            for h in rec["hands"]:
                j = np.array([[_num(c) for c in xyz] for xyz in h["joints"]], np.float64).reshape(k, 3)
                cf = np.array([_num(c) for c in h["conf"]], np.float64).reshape(k)
                seq.append(int(rec["seq"]))
                t.append(int(rec["t_capture_ns"]))
                side.append(str(h["side"]))
                presence.append(float(h["presence"]))
                tracked.append(bool(np.isfinite(j).all(axis=1).any()))
                joints.append(j)
                conf.append(cf)
        except (KeyError, TypeError, ValueError) as exc:
            where = f"{poses}:{n}" if isinstance(poses, (str, Path)) else f"pose {n}"
            raise HandstreamError(f"{where}: not a pose record ({type(exc).__name__}: {exc})") from None
    jj = np.stack(joints) if joints else np.zeros((0, k, 3))
    cc = np.stack(conf) if conf else np.zeros((0, k))
    out: dict[str, np.ndarray] = {
        "seq": np.asarray(seq, np.int64),
        "t_capture_ns": np.asarray(t, np.int64),
        "side": np.asarray(side, dtype=str),
        "presence": np.asarray(presence, np.float64),
        "tracked": np.asarray(tracked, bool),
    }
    for i, name in enumerate(JOINT_NAMES):
        for a, axis in enumerate("xyz"):
            out[f"{name}_{axis}"] = jj[:, i, a]
        out[f"{name}_conf"] = cc[:, i]
    return out


def _cell(v: Any) -> Any:
    if isinstance(v, (float, np.floating)):
        return "" if not math.isfinite(v) else repr(float(v))
    if isinstance(v, (bool, np.bool_)):
        return int(v)
    return v.item() if isinstance(v, np.generic) else v


def check_table_path(out: str | Path) -> Path:
    """``out`` as a Path when :func:`write_poses_table` can write it: a ``.csv`` or ``.parquet`` name, pyarrow
    importable for Parquet (a caller that makes the poses first checks before the work, not after).

    Raises:
        HandstreamError: an unknown suffix, Parquet without pyarrow.
    """
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise HandstreamError(f"{out}: expected a .csv or .parquet file name")
    if suffix == ".parquet":
        try:
            import pyarrow.parquet  # noqa: F401
        except ImportError:
            raise HandstreamError(f"{out}: Parquet needs pyarrow (pip install pyarrow); .csv needs nothing") from None
    return out


def write_poses_table(poses: str | Path | Iterable[dict[str, Any]], out: str | Path) -> int:
    """Write :func:`poses_table` to ``out``: ``.csv`` (always) or ``.parquet`` (needs pyarrow). Returns the rows.

    Raises:
        HandstreamError: an unknown suffix, Parquet without pyarrow, a file that cannot be written.
    """
    out = check_table_path(out)
    suffix = out.suffix.lower()
    if suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq
    table = poses_table(poses)
    rows = len(table["seq"])
    try:
        if suffix == ".parquet":
            pq.write_table(pa.table({c: table[c] for c in table_columns()}), out)
        else:
            with out.open("w", newline="") as f:
                w = csv.writer(f)
                cols = table_columns()
                w.writerow(cols)
                for r in range(rows):
                    w.writerow([_cell(table[c][r]) for c in cols])
    except OSError as exc:
        raise HandstreamError(f"{out}: cannot write ({exc.strerror})") from None
    return rows
