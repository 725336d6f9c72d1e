"""Synchronized multi-view recordings for adaptation and label-free evaluation, held in memory.

Legend: ``F`` frames, ``V`` views (cameras), ``H`` hands (2), ``K`` joints (21).

A recording is one of:

* one video file or image folder per camera (frame ``i`` of every source was captured together), with a
  calibration file whose cameras are matched to the sources in order (or no calibration: the extrinsics are
  then estimated from the hands, :mod:`handstream.adapt.extrinsics`, which needs the intrinsics);
* a synthetic dataset folder (``handstream synth render``): its ``calibration.toml`` and images. Its labels
  are loaded into :attr:`Recording.truth` for scoring only; adaptation never reads them;
* a session recorded by ``handstream serve --record DIR`` (:mod:`handstream.capture.recorder`): its cameras'
  frames matched by capture time (an instant per frame of the first camera that every camera has a frame of
  within half a frame interval), its ``calibration.toml`` unless a calibration is given.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from handstream.capture.recorder import is_recording, match_instants, open_recording_folder
from handstream.capture.sources import list_images, read_image
from handstream.errors import HandstreamError
from handstream.geometry import Rig, load_calibration

VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v")


@dataclass
class Recording:
    """Frames of V cameras, F instants.

    Attributes:
        names: (V,) camera names, the order of the views axis (the calibration's, when one was given).
        images: V lists of F frames each ((h, w) uint8 grey or (h, w, 3) uint8 BGR, the camera's size).
        rig: the calibrated cameras (metres), or None when the extrinsics are unknown.
        frame_ids: (F,) int frame index of each instant in its source (the ``--frames`` range).
        truth: synthetic datasets only: ``keypoints_2d`` (F, V, H, K, 2) px, ``visibility`` (F, V, H, K),
            ``joints_3d`` (F, H, K, 3) metres. For scoring; never used to adapt.
        source: what was loaded (for reports).
    """

    names: list[str]
    images: list[list[np.ndarray]]
    rig: Rig | None
    frame_ids: np.ndarray
    truth: dict[str, np.ndarray] | None = None
    source: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.frame_ids)

    @property
    def num_views(self) -> int:
        return len(self.names)

    def frame(self, i: int) -> dict[str, np.ndarray]:
        """Camera name -> image of instant ``i`` (what :meth:`Pipeline.process` takes)."""
        return {n: self.images[v][i] for v, n in enumerate(self.names)}

    def subset(self, index: np.ndarray | slice) -> Recording:
        """The instants ``index`` (a slice or an int array) as a new recording sharing the images."""
        idx = np.arange(len(self))[index]
        truth = {k: v[idx] for k, v in self.truth.items()} if self.truth else None
        images = [[imgs[i] for i in idx] for imgs in self.images]
        return Recording(self.names, images, self.rig, self.frame_ids[idx], truth, dict(self.source))

    def with_rig(self, rig: Rig) -> Recording:
        return Recording(self.names, self.images, rig, self.frame_ids, self.truth, dict(self.source))


def parse_frame_range(text: str | None, option: str = "--frames") -> tuple[int, int | None]:
    """``"0:200"`` -> (0, 200); ``"200:"`` -> (200, None); None -> (0, None). One-line error otherwise."""
    if text is None or text == "":
        return 0, None
    parts = text.split(":")
    try:
        if len(parts) != 2:
            raise ValueError
        start = int(parts[0]) if parts[0] else 0
        stop = int(parts[1]) if parts[1] else None
    except ValueError:
        raise HandstreamError(
            f"{option}: expected START:STOP frame indices (e.g. 0:200 or 200:), got {text!r}"
        ) from None
    if start < 0 or (stop is not None and stop <= start):
        raise HandstreamError(f"{option}: expected 0 <= START < STOP, got {text!r}")
    return start, stop


def _is_synth_dataset(path: Path) -> bool:
    from handstream.synth.dataset import FORMAT, MANIFEST

    m = path / MANIFEST
    if not (path.is_dir() and m.is_file()):
        return False
    try:
        return json.loads(m.read_text()).get("format") == FORMAT
    except (OSError, ValueError):
        return False


def _read_video(path: Path, start: int, stop: int | None) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    if not cap.isOpened():
        raise HandstreamError(f"{path}: cannot open as a video")
    frames, i = [], 0
    try:
        while stop is None or i < stop:
            ok, img = cap.read()
            if not ok:
                break
            if i >= start:
                frames.append(img)
            i += 1
    finally:
        cap.release()
    return frames


def _read_folder(path: Path, start: int, stop: int | None) -> list[np.ndarray]:
    return [read_image(p) for p in list_images(path)[start:stop]]


def open_recording(
    sources: list[str | Path],
    calibration: str | Path | None = None,
    *,
    unit_scale: float | None = None,
    frames: tuple[int, int | None] = (0, None),
    progress: bool = False,
) -> Recording:
    """Load a recording into memory.

    Args:
        sources: one synthetic dataset folder, one ``serve --record`` folder, or one video file / image folder
            per camera.
        calibration: calibration file (its cameras are matched to ``sources`` in order, or by name for a
            ``serve --record`` folder, whose own ``calibration.toml`` is used when None; its extrinsics are
            ignored by the caller when estimating them). Ignored for a synthetic dataset (it has its own).
        unit_scale: metres per calibration length unit (see :func:`handstream.geometry.load_calibration`).
        frames: (start, stop) frame indices to load (stop None = to the end).
    Raises:
        HandstreamError: one line naming the source and what was expected.
    """
    paths = [Path(s) for s in sources]
    if not paths:
        raise HandstreamError(
            "no recording given: pass a synthetic dataset folder or one video/image folder per camera"
        )
    start, stop = frames
    for p in paths:
        if not p.exists():
            raise HandstreamError(f"{p}: recording not found")
    if len(paths) == 1 and _is_synth_dataset(paths[0]):
        return _open_synth(paths[0], start, stop, progress)
    if len(paths) == 1 and is_recording(paths[0]):
        return _open_session(paths[0], calibration, unit_scale, start, stop, progress)
    for p in paths:
        if p.is_file() and p.suffix.lower() not in VIDEO_SUFFIXES:
            raise HandstreamError(
                f"{p}: expected a video ({', '.join(VIDEO_SUFFIXES)}), an image folder or a synthetic dataset folder"
            )
    rig = None
    if calibration is not None:
        rig = load_calibration(calibration, unit_scale)
        if len(rig) != len(paths):
            raise HandstreamError(
                f"{calibration}: has {len(rig)} cameras ({', '.join(rig.names)}) "
                f"but {len(paths)} recordings were given (one per camera, in the calibration's order)"
            )
    names = list(rig.names) if rig is not None else [f"cam{v}" for v in range(len(paths))]
    images = []
    it = paths
    if progress:
        from tqdm import tqdm

        it = tqdm(paths, desc="reading recordings", unit="camera")
    for v, p in enumerate(it):
        imgs = _read_video(p, start, stop) if p.is_file() else _read_folder(p, start, stop)
        if not imgs:
            raise HandstreamError(f"{p}: no frames in the range {start}:{'' if stop is None else stop}")
        if rig is not None:
            cam = rig[names[v]]
            h, w = imgs[0].shape[:2]
            if (w, h) != cam.size:
                raise HandstreamError(
                    f"{p}: frames are {w}x{h} but camera {cam.name} in {calibration} is {cam.size[0]}x{cam.size[1]}"
                )
        images.append(imgs)
    n = min(len(x) for x in images)
    images = [x[:n] for x in images]
    ids = np.arange(start, start + n)
    return Recording(
        names,
        images,
        rig,
        ids,
        None,
        {
            "sources": [str(p) for p in paths],
            "calibration": str(calibration) if calibration else None,
            "frames": [int(start), int(start + n)],
        },
    )


def _open_session(
    path: Path, calibration: str | Path | None, unit_scale: float | None, start: int, stop: int | None, progress: bool
) -> Recording:
    """A ``serve --record`` folder: frames matched by capture time; ``frames`` counts the matched instants."""
    rec = open_recording_folder(path)
    calibration = rec.calibration if calibration is None else calibration
    rig = load_calibration(calibration, unit_scale if calibration != rec.calibration else 1.0)
    missing = [c for c in rec.cameras if c not in rig.names]
    if missing:
        raise HandstreamError(f"{calibration}: no camera {missing[0]!r} of the recording {path}")
    rig = rig.subset(rec.cameras)
    stamps = [rec.timestamps(c)[1] for c in rec.cameras]
    fps = float(rec.manifest.get("fps") or 30.0)
    rows = match_instants(stamps, int(0.5e9 / fps))[start:stop]
    if len(rows) == 0:
        end = "" if stop is None else stop
        raise HandstreamError(f"{path}: no frame set of all cameras in the range {start}:{end}")
    images: list[list[np.ndarray]] = []
    it = list(enumerate(rec.cameras))
    if progress:
        from tqdm import tqdm

        it = tqdm(it, desc="reading recordings", unit="camera")
    for v, c in it:
        files = list_images(rec.frames_dir(c))
        images.append([read_image(files[i]) for i in rows[:, v]])
    return Recording(
        list(rec.cameras),
        images,
        rig,
        np.arange(start, start + len(rows)),
        None,
        {"sources": [str(path)], "calibration": str(calibration), "frames": [int(start), int(start + len(rows))]},
    )


def _open_synth(path: Path, start: int, stop: int | None, progress: bool) -> Recording:
    from handstream.synth.dataset import SynthDataset

    data = SynthDataset(path)
    stop = len(data) if stop is None else min(stop, len(data))
    if start >= stop:
        raise HandstreamError(f"{path}: has {len(data)} frames; the range starts at {start}")
    ids = np.arange(start, stop)
    it = ids
    if progress:
        from tqdm import tqdm

        it = tqdm(ids, desc=f"reading {path.name}", unit="frame")
    images: list[list[np.ndarray]] = [[] for _ in range(data.num_views)]
    kp, vis, j3 = [], [], []
    for i in it:
        for v in range(data.num_views):
            images[v].append(data.image(int(i), v))
        lab = data.labels(int(i))
        kp.append(lab["keypoints_2d"])
        vis.append(lab["visibility"])
        j3.append(lab["joints_3d"])
    truth = {"keypoints_2d": np.stack(kp), "visibility": np.stack(vis), "joints_3d": np.stack(j3)}
    return Recording(
        list(data.rig.names),
        images,
        data.rig,
        ids,
        truth,
        {"sources": [str(path)], "calibration": str(path / "calibration.toml"), "frames": [int(start), int(stop)]},
    )
