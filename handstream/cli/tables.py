"""``handstream poses-table``: poses (JSON lines) -> one CSV or Parquet table, a row per hand per pose."""

from __future__ import annotations

import sys
from pathlib import Path

import typer


def poses_table_command(
    poses: Path = typer.Argument(..., help="Poses as JSON lines (subscribe --record, or a recording's poses.jsonl)."),
    out: Path = typer.Option(
        ..., "--out", "-o", help="The table: .csv (always) or .parquet (with pyarrow installed)."
    ),
) -> None:
    """Write poses as a table: one row per hand per pose, columns seq, t_capture_ns, side, presence, tracked,
    then <joint>_x, _y, _z (metres) and <joint>_conf per joint (handstream.skeleton.JOINT_NAMES); empty where
    a joint is not tracked.

    Example: handstream poses-table session/poses.jsonl --out poses.csv    (pandas: pd.read_csv("poses.csv"))
    """
    from handstream.tables import write_poses_table

    rows = write_poses_table(poses, out)
    print(f"handstream poses-table: {rows} rows written to {out}", file=sys.stderr)
