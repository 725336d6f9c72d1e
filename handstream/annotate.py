"""Offline videos in, annotated videos out: one video per camera with both hands' skeletons drawn, and the poses.

``handstream annotate --video cam0.mp4 --video cam1.mp4 --calibration calib.toml --out DIR``: the videos are
read in step (frame ``i`` of every file is one frame set, stamped ``i / fps``), run through the engine's own
pipeline (:class:`~handstream.engine.pipeline.Pipeline`: the tracked path, One-Euro smoothing on) as fast as the
machine allows, and written as

* ``DIR/<camera>.mp4`` per view: the smoothed 3D joints of each tracked hand projected into the view, bones in
  the hand's colour (:data:`HAND_COLORS`), joints in their finger's colour, dimmed and smaller where the joint's
  confidence is low; the frame index and which hands are tracked in a corner;
* ``DIR/poses.jsonl``: one pose per frame set, the subscriber's JSON layout (:func:`handstream.client.pose_to_dict`);
* ``DIR/poses.csv`` (or another path, ``.csv`` or ``.parquet``; or none): the 3D joints as a table, one row per hand
  per pose, columns named by joint: :func:`handstream.tables.write_poses_table` of ``poses.jsonl``, the table
  ``handstream poses-table`` writes;
* ``DIR/summary.json``: frames, hands tracked, seconds, frame sets per second, the files written.

Legend: ``V`` views, ``K`` joints (21). Units: metres (rig frame), pixels.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from handstream import records, tables
from handstream.errors import HandstreamError
from handstream.poses import PoseMessage
from handstream.skeleton import HAND_CONNECTIONS, JOINT_COLORS

HAND_COLORS = {"left": (0, 165, 255), "right": (255, 200, 0)}
"""BGR colour of each hand's bones: orange for the left, light blue for the right."""


def draw_pose(image: np.ndarray, camera, msg: PoseMessage, index: int | None = None) -> np.ndarray:
    """Draw the hands of one pose on one view's frame (BGR, changed in place and returned).

    Args:
        image: (h, w, 3) uint8 BGR (a grey (h, w) frame is converted); camera: the view's Camera (rig units).
        msg: the pose; its joints (K, 3) are projected with ``camera``.
        index: frame number for the caption (None: no caption).
    """
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    h, w = image.shape[:2]
    scale = max(1.0, min(h, w) / 480.0)
    tracked = []
    for hand in msg.hands:
        joints = np.asarray(hand.joints, np.float64)
        if not np.isfinite(joints).any():
            continue
        tracked.append(hand.side)
        px = camera.project(joints)
        ok = np.isfinite(px).all(axis=-1) & (px[:, 0] > -w) & (px[:, 0] < 2 * w) & (px[:, 1] > -h) & (px[:, 1] < 2 * h)
        conf = np.nan_to_num(np.asarray(hand.conf, np.float64), nan=0.0)
        colour = HAND_COLORS.get(hand.side, (255, 255, 255))
        for a, b in HAND_CONNECTIONS:
            if ok[a] and ok[b]:
                pa, pb = tuple(int(round(v)) for v in px[a]), tuple(int(round(v)) for v in px[b])
                cv2.line(image, pa, pb, colour, max(1, int(2 * scale)), cv2.LINE_AA)
        for k in np.flatnonzero(ok):
            c = float(np.clip(conf[k], 0.0, 1.0))
            dim = 0.35 + 0.65 * c  # a doubtful joint is darker and smaller
            joint_colour = tuple(int(v * dim) for v in JOINT_COLORS[k])
            cv2.circle(image, tuple(int(round(v)) for v in px[k]), max(2, int((2 + 2 * c) * scale)), joint_colour, -1,
                       cv2.LINE_AA)  # fmt: skip
    if index is not None:
        text = f"{index}  {' + '.join(tracked) if tracked else 'no hand'}"
        cv2.putText(image, text, (int(8 * scale), int(22 * scale)), cv2.FONT_HERSHEY_SIMPLEX, 0.6 * scale,
                    (255, 255, 255), max(1, int(scale)), cv2.LINE_AA)  # fmt: skip
    return image


def annotate_videos(
    videos: Sequence[str | Path],
    rig,
    out_dir: str | Path,
    pipeline,
    *,
    fps: float | None = None,
    limit: int | None = None,
    table: bool | str | Path = True,
    progress: bool = True,
    log: Callable[[str], object] = print,
) -> dict[str, Any]:
    """Run ``pipeline`` over videos read in step and write the annotated videos and the poses (module docstring).

    Args:
        videos: one file per camera, in ``rig``'s order (its first ``len(videos)`` cameras).
        rig: the calibrated cameras (the pipeline's); out_dir: the output folder (created).
        pipeline: a :class:`~handstream.engine.pipeline.Pipeline` on ``rig`` (its smoothing decides the track).
        fps: stamp frame sets at this rate (None: the first video's rate, 30 if it says none).
        limit: at most this many frame sets (None: until the shortest video ends).
        table: where the joints table goes: True: ``out_dir/poses.csv``; a path (``.csv``, or ``.parquet`` with
            pyarrow); False: no table.
    Returns:
        the summary (also written to ``summary.json``).
    Raises:
        HandstreamError: one line for a video that cannot be read, a frame of the wrong size, or a table path
            :func:`handstream.tables.write_poses_table` cannot write (checked before the first frame).
    """
    from handstream.client import pose_to_dict

    out = Path(out_dir)
    if table is True:
        table = out / "poses.csv"
    table_path = tables.check_table_path(table) if table is not False else None
    if table_path is not None:
        table_path.parent.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    names = list(rig.names[: len(videos)])
    caps = []
    for path in videos:
        if not Path(path).is_file():
            raise HandstreamError(f"{path}: video file not found")
        cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
        if not cap.isOpened():
            raise HandstreamError(f"{path}: cannot open as a video (OpenCV/FFmpeg could not read it)")
        caps.append(cap)
    rate = float(fps or caps[0].get(cv2.CAP_PROP_FPS) or 30.0)
    counts = [int(c.get(cv2.CAP_PROP_FRAME_COUNT) or 0) for c in caps]
    total = min(counts) if all(counts) else None
    if limit is not None:
        total = limit if total is None else min(total, limit)
    writers: list[cv2.VideoWriter] = []
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total, desc="annotate", unit="frame set")
    frames = tracked = 0
    t0 = time.perf_counter()
    try:
        with open(out / "poses.jsonl", "w", encoding="utf-8") as poses:
            while limit is None or frames < limit:
                images = [c.read() for c in caps]
                if not all(ok for ok, _ in images):
                    break
                images = [img for _, img in images]
                for name, img in zip(names, images, strict=True):
                    cam = rig[name]
                    if (img.shape[1], img.shape[0]) != tuple(cam.size):
                        raise HandstreamError(
                            f"{videos[names.index(name)]}: frames are {img.shape[1]}x{img.shape[0]}, the calibration "
                            f"of {name} says {cam.size[0]}x{cam.size[1]}"
                        )
                if not writers:
                    writers = [_writer(out / f"{n}.mp4", rate, rig[n].size) for n in names]
                msg = pipeline.process(dict(zip(names, images, strict=True)), int(round(frames * 1e9 / rate)), {})
                tracked += sum(bool(np.isfinite(h.joints).any()) for h in msg.hands)
                poses.write(json.dumps(pose_to_dict(msg), separators=(",", ":")) + "\n")
                for name, img, wr in zip(names, images, writers, strict=True):
                    wr.write(draw_pose(img, rig[name], msg, frames))
                frames += 1
                if bar is not None:
                    bar.update(1)
    finally:
        for c in caps:
            c.release()
        for wr in writers:
            wr.release()
        if bar is not None:
            bar.close()
    # the table is made from the file just written, so it holds exactly what poses.jsonl holds
    rows = tables.write_poses_table(out / "poses.jsonl", table_path) if table_path is not None else None
    seconds = time.perf_counter() - t0
    summary = {
        "videos": [str(v) for v in videos],
        "cameras": names,
        "frames": frames,
        "fps": rate,
        "hands_tracked": tracked,
        "seconds": round(seconds, 2),
        "frame_sets_per_s": round(frames / seconds, 2) if seconds > 0 else None,
        "files": {
            "videos": [str(out / f"{n}.mp4") for n in names],
            "poses": str(out / "poses.jsonl"),
            "table": None if table_path is None else str(table_path),
        },
        "table_rows": rows,
    }
    records.write_json(summary, out / "summary.json")
    wrote = f"{out}" + (f" and {table_path} ({rows} rows)" if rows is not None else "")
    log(f"annotated {frames} frame sets of {len(names)} views in {seconds:.1f} s ({summary['frame_sets_per_s']}/s); "
        f"{tracked} hand poses; wrote {wrote}")  # fmt: skip
    return summary


def _writer(path: Path, fps: float, size: tuple[int, int]) -> cv2.VideoWriter:
    """An MPEG-4 writer (OpenCV's ``mp4v``: no codec beyond OpenCV's own needed)."""
    wr = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (int(size[0]), int(size[1])))
    if not wr.isOpened():
        raise HandstreamError(f"{path}: OpenCV cannot write an mp4v video here")
    return wr
