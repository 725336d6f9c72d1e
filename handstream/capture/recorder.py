"""Session recordings on disk (``handstream serve --record DIR``): the layout, the frame writer, the readers.

::

    DIR/
      recording.json          manifest, written last: format, handstream version, date, cameras (name, size,
                              frames written, frames not written by reason), poses, the session's sources
      calibration.toml        the rig as served (metres; handstream.geometry.save_calibration)
      config.toml             a serve config that replays the session (handstream serve --config / --replay)
      poses.jsonl             the poses as published (handstream.client.pose_to_dict, one per line)
      frames/<camera>/        00000000.png ... one file per frame, named by the capture's seq
      frames/<camera>/timestamps.csv   seq,t_capture_ns (one row per frame written, in capture order)

Frames are PNG files (lossless; zlib level 1 with the RLE strategy): byte for byte the capture's image, grey
stays grey and BGR stays BGR, every tool reads them, a frame is found by its seq, and the ``images`` source
plays the folder as it is. A lossless video (FFV1) would be smaller but OpenCV reads grey FFV1 back as BGR, and
one file per camera loses what is already written when a session is killed. Measured on the shared 2-core
machine (loaded), one 640x480 frame: grey 5.8 ms / 148 kB (level 3, the default: 13 ms / 169 kB), BGR 15.6 ms
/ 504 kB (default: 33 ms / 571 kB); level 0 (stored) is 3 / 10 ms but twice the bytes.
"""

from __future__ import annotations

import csv
import json
import queue
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from handstream.errors import HandstreamError

FORMAT = "handstream-recording/1"
MANIFEST = "recording.json"
FRAMES = "frames"
TIMESTAMPS = "timestamps.csv"
POSES = "poses.jsonl"
CALIBRATION = "calibration.toml"
CONFIG = "config.toml"
PNG_PARAMS = [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE]
"""zlib level 1, RLE: half the default's time and fewer bytes on camera images (the module docstring)."""


def frame_name(seq: int) -> str:
    """The file of frame ``seq`` in its camera's folder."""
    return f"{seq:08d}.png"


class FrameWriter:
    """Writes the frames of every camera of a session, off the caller's thread.

    ``put(camera, seq, t_capture_ns, image)`` never blocks: a full queue drops the frame and counts it
    (``dropped["queue"]``). ``threads`` workers encode PNGs (OpenCV releases the GIL while encoding);
    ``close()`` writes what is queued, then the timestamp tables (rows sorted by seq).

    Args:
        root: the recording folder (``frames/<camera>/`` are made in it).
        cameras: the cameras that may be written.
        max_queue: frames waiting to be written, all cameras together ((h, w) uint8 each: 300 kB at 636x480).
        threads: encoder threads.
    """

    def __init__(self, root: str | Path, cameras: list[str], *, max_queue: int = 256, threads: int = 2):
        self.root = Path(root)
        self.folders = {c: self.root / FRAMES / c for c in cameras}
        for f in self.folders.values():
            f.mkdir(parents=True, exist_ok=True)
        self.rows: dict[str, list[tuple[int, int]]] = {c: [] for c in cameras}
        self.sizes: dict[str, tuple[int, int]] = {}
        self.dropped: dict[str, dict[str, int]] = {c: {"queue": 0, "write": 0} for c in cameras}
        self._queue: queue.Queue = queue.Queue(max_queue)
        self._lock = threading.Lock()
        self._workers = [threading.Thread(target=self._work, daemon=True) for _ in range(max(1, threads))]
        for w in self._workers:
            w.start()

    def put(self, camera: str, seq: int, t_capture_ns: int, image: np.ndarray) -> bool:
        """Queue one frame ((h, w) or (h, w, 3) uint8); False when dropped (queue full or unknown camera)."""
        if camera not in self.folders:
            return False
        try:
            self._queue.put_nowait((camera, int(seq), int(t_capture_ns), image))
        except queue.Full:
            with self._lock:
                self.dropped[camera]["queue"] += 1
            return False
        return True

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            camera, seq, t, image = item
            ok = False
            try:
                ok = cv2.imwrite(str(self.folders[camera] / frame_name(seq)), np.ascontiguousarray(image), PNG_PARAMS)
            except cv2.error:
                ok = False
            with self._lock:
                if ok:
                    self.rows[camera].append((seq, t))
                    self.sizes.setdefault(camera, (int(image.shape[1]), int(image.shape[0])))
                else:
                    self.dropped[camera]["write"] += 1

    def close(self) -> None:
        """Write what is queued, stop the workers, write ``timestamps.csv`` per camera."""
        for _ in self._workers:
            self._queue.put(None)
        for w in self._workers:
            w.join()
        for camera, rows in self.rows.items():
            write_timestamps(self.folders[camera] / TIMESTAMPS, sorted(rows))


def write_timestamps(path: str | Path, rows: list[tuple[int, int]]) -> None:
    """A camera's table: header ``seq,t_capture_ns``, one row per frame (ints; ns on the capture's clock)."""
    with Path(path).open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["seq", "t_capture_ns"])
        w.writerows(rows)


def read_timestamps(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """``timestamps.csv`` -> (seq (F,) int64, t_capture_ns (F,) int64), in file order. One-line errors."""
    path = Path(path)
    if not path.is_file():
        raise HandstreamError(f"{path}: timestamps table not found")
    try:
        with path.open(newline="") as f:
            rows = list(csv.reader(f))
        if not rows or [c.strip() for c in rows[0]] != ["seq", "t_capture_ns"]:
            raise ValueError("expected the header seq,t_capture_ns")
        data = np.array([[int(a), int(b)] for a, b in rows[1:]], dtype=np.int64).reshape(-1, 2)
    except (OSError, ValueError) as exc:
        raise HandstreamError(f"{path}: not a timestamps table ({exc})") from None
    if len(data) == 0:
        raise HandstreamError(f"{path}: no frames in the timestamps table")
    return data[:, 0], data[:, 1]


@dataclass
class RecordingFolder:
    """A recording on disk (see the module docstring), its manifest read and checked.

    Attributes:
        root: the folder.
        manifest: ``recording.json`` as written.
        cameras: camera names, in the rig's order.
    """

    root: Path
    manifest: dict[str, Any]
    cameras: list[str]

    def frames_dir(self, camera: str) -> Path:
        return self.root / FRAMES / camera

    def timestamps(self, camera: str) -> tuple[np.ndarray, np.ndarray]:
        """(seq (F,), t_capture_ns (F,)) of one camera's frames."""
        return read_timestamps(self.frames_dir(camera) / TIMESTAMPS)

    @property
    def calibration(self) -> Path:
        return self.root / CALIBRATION

    @property
    def config(self) -> Path:
        return self.root / CONFIG

    @property
    def poses(self) -> Path:
        return self.root / POSES


def is_recording(path: str | Path) -> bool:
    """True for a folder with a handstream recording's manifest."""
    return (Path(path) / MANIFEST).is_file()


def open_recording_folder(path: str | Path) -> RecordingFolder:
    """Read and check a recording folder's manifest and files; one-line :class:`HandstreamError` otherwise."""
    root = Path(path)
    if not root.is_dir():
        raise HandstreamError(f"{root}: recording folder not found")
    m = root / MANIFEST
    if not m.is_file():
        raise HandstreamError(f"{root}: not a handstream recording (no {MANIFEST}; serve --record DIR writes one)")
    try:
        manifest = json.loads(m.read_text())
    except (OSError, ValueError) as exc:
        raise HandstreamError(f"{m}: cannot read the manifest ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise HandstreamError(f"{m}: expected format {FORMAT!r}, got {manifest.get('format')!r}")
    cameras = [c["name"] for c in manifest.get("cameras", [])]
    if len(cameras) < 1:
        raise HandstreamError(f"{m}: no cameras in the manifest")
    rec = RecordingFolder(root, manifest, cameras)
    for name in (CALIBRATION, CONFIG):
        if not (root / name).is_file():
            raise HandstreamError(f"{root / name}: missing from the recording")
    for c in cameras:
        if not (rec.frames_dir(c) / TIMESTAMPS).is_file():
            raise HandstreamError(f"{rec.frames_dir(c) / TIMESTAMPS}: missing from the recording")
    return rec


def match_instants(stamps: list[np.ndarray], tolerance_ns: int) -> np.ndarray:
    """Frames of several cameras captured together: (N, V) indices into each camera's ``stamps`` (sorted
    (F_v,) int ns), one row per frame of the first camera that every other camera has a frame within
    ``tolerance_ns`` of (the nearest one)."""
    ref = stamps[0]
    cols = [np.arange(len(ref))]
    ok = np.ones(len(ref), bool)
    for s in stamps[1:]:
        j = np.clip(np.searchsorted(s, ref), 1, max(1, len(s) - 1)) if len(s) > 1 else np.zeros(len(ref), int)
        prev = np.maximum(j - 1, 0)
        best = np.where(np.abs(s[prev] - ref) <= np.abs(s[j] - ref), prev, j)
        ok &= np.abs(s[best] - ref) <= tolerance_ns
        cols.append(best)
    return np.stack(cols, axis=1)[ok]
