"""Frame sources: where one camera's images come from. One source per capture process.

Every source yields :class:`Frame` objects (image, capture time, sequence number) from one camera and
says how its clock works:

* ``realtime`` sources pace frames on the wall clock and stamp ``time.time_ns()`` at capture (a device),
  or at the instant the frame was due (synthetic cameras, video/image playback; a synthetic camera plays
  its pre-rendered loop as an image folder, or renders live). Playback sources share an
  *epoch* (set by ``handstream serve``), so frame ``n`` of every camera is stamped ``epoch + n / fps``:
  the cameras of a recording or of a synthetic rig stay synchronized, even across a restart.
* non-realtime sources (video/images with ``realtime=False``) read as fast as the engine takes them and
  stamp the media clock ``epoch + n / fps``.

Sources raise :class:`~handstream.errors.HandstreamError` for anything a user can fix (missing file,
unreadable video, no such device), with the path in the message.
"""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from handstream.errors import HandstreamError
from handstream.pacing import FramePacer
from handstream.records import natural_key

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".pgm", ".ppm")


@dataclass
class Frame:
    """One image of one camera.

    Attributes:
        image: (h, w) uint8 mono or (h, w, 3) uint8 BGR.
        t_capture_ns: capture time, ns (``time.time_ns`` clock, or the media clock; see the module doc).
        seq: frame number in the source (gaps = frames skipped because the reader fell behind).
        meta: small plain map sent along (e.g. ``{"clock": "media"}``).
    """

    image: np.ndarray
    t_capture_ns: int
    seq: int
    meta: dict[str, Any] = field(default_factory=dict)


class Source(Protocol):
    """What a capture process reads from."""

    camera: str
    fps: float
    realtime: bool

    def read(self) -> Frame | None:
        """The next frame, or None at the end of the stream (never None for live sources)."""

    def close(self) -> None: ...


class SyntheticCameraSource:
    """One camera of a synthetic rig preset, rendered live. All cameras of the preset built with the same
    seed, loop and epoch render the same hands at the same instants, so separate processes stay synchronized.

    Args:
        preset: preset name (``stereo``, ``headset4``, ``random-<seed>``) or a
            :class:`~handstream.synth.rigs.RigPreset`.
        camera: camera name or index in the preset.
        seed: scene seed (shared by the rig's cameras).
        fps: frame rate (None: the preset's).
        epoch_ns: shared time origin (None: now).
        loop_frames: render the seamless loop of this many frames (frame ``n`` shows loop frame ``n % N``,
            the images a cached loop holds: :func:`handstream.capture.material.synthetic_loops`); None: the
            endless stream.
    """

    def __init__(
        self,
        preset,
        camera: str | int,
        seed: int = 0,
        fps: float | None = None,
        epoch_ns: int | None = None,
        *,
        loop_frames: int | None = None,
    ):
        from handstream.synth.generator import camera_generator

        full = synthetic_preset(preset, fps)
        self.camera = full.rig.names[full.rig.index(camera)]
        self.generator = camera_generator(full, self.camera, seed, loop_frames=loop_frames)
        self.generator.frame(0)  # warm up (ray grid, scene) before the first timed frame
        self._pace = FramePacer(full.fps, epoch_ns, True)
        self.fps, self.realtime = full.fps, True
        self._next: int | None = None

    @property
    def skipped(self) -> int:
        return self._pace.skipped

    def read(self) -> Frame:
        n = self._pace.first_index() if self._next is None else self._next
        n, t = self._pace.wait(n)
        image = self.generator.frame(n).images[0]
        self._next = n + 1
        return Frame(image, t, n)

    def close(self) -> None:
        pass


def synthetic_preset(preset, fps: float | None = None):
    """A :class:`~handstream.synth.rigs.RigPreset` from a name or a preset, at ``fps`` (None: its own)."""
    from handstream.synth.rigs import RigPreset, get_preset

    if isinstance(preset, RigPreset):
        return preset if fps is None else dataclasses.replace(preset, fps=float(fps))
    return get_preset(preset, fps=fps)


class VideoSource:
    """A video file played back as one camera.

    Args:
        path: the video file (anything OpenCV's FFmpeg backend reads).
        camera: camera name.
        fps: playback rate (None: the file's, 30 if it does not say).
        realtime: pace at ``fps`` (False: as fast as the engine takes frames, media-clock stamps).
        loop: start over at the end.
        epoch_ns: shared time origin (None: now).
    """

    def __init__(
        self,
        path: str | Path,
        camera: str,
        fps: float | None = None,
        *,
        realtime: bool = True,
        loop: bool = False,
        epoch_ns: int | None = None,
    ):
        self.path = Path(path)
        if not self.path.is_file():
            raise HandstreamError(f"{self.path}: video file not found")
        self._cap = cv2.VideoCapture(str(self.path), cv2.CAP_FFMPEG)
        if not self._cap.isOpened():
            raise HandstreamError(f"{self.path}: cannot open as a video (OpenCV/FFmpeg could not read it)")
        self.frame_count = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        file_fps = float(self._cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self.fps = float(fps) if fps else (file_fps if 0 < file_fps <= 1000 else 30.0)
        self.camera, self.realtime, self.loop = camera, realtime, loop
        self._pace = FramePacer(self.fps, epoch_ns, realtime)
        self._pos = 0  # index (in the file) of the frame the decoder returns next
        self._next: int | None = None  # stream index (counting loops) of the next frame to emit

    @property
    def skipped(self) -> int:
        return self._pace.skipped

    def read(self) -> Frame | None:
        if self._next is None:  # a (re)started playback joins at the frame due now, like its peers
            self._next = self._pace.first_index()
        n, t = self._pace.wait(self._next)
        if self.frame_count and n >= self.frame_count and not self.loop:
            return None
        local = n % self.frame_count if (self.loop and self.frame_count) else n
        if local != self._pos:
            if 0 < local - self._pos <= 30:  # a few frames behind: grab (no decode) up to it
                while self._pos < local and self._cap.grab():
                    self._pos += 1
            else:
                self._cap.set(cv2.CAP_PROP_POS_FRAMES, local)
                self._pos = local
        ok, image = self._cap.read()
        if not ok and self.loop and self._pos > 0:  # the header's frame count was wrong: wrap here
            self.frame_count = self._pos
            self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            self._pos = 0
            ok, image = self._cap.read()
        if not ok:
            return None
        self._pos += 1
        self._next = n + 1
        return Frame(image, t, n, {} if self.realtime else {"clock": "media"})

    def close(self) -> None:
        self._cap.release()


def list_images(folder: Path) -> list[Path]:
    """The images of a folder (suffixes in :data:`IMAGE_SUFFIXES`), in natural order (``2.png`` before ``10.png``)."""
    files = sorted(
        (p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES), key=lambda p: natural_key(p.name)
    )
    if not files:
        raise HandstreamError(f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)}) in the folder")
    return files


def read_image(path: Path) -> np.ndarray:
    """One image file -> (h, w) uint8 grey or (h, w, 3) uint8 BGR (16-bit scaled down, alpha dropped)."""
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise HandstreamError(f"{path}: cannot read as an image")
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    if image.ndim == 3 and image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return image


class ImageFolderSource:
    """A folder of images (sorted in natural order: ``2.png`` before ``10.png``) played back as one camera.

    Args:
        path: folder; images with suffixes in :data:`IMAGE_SUFFIXES`.
        camera: camera name; fps: playback rate (default 30); realtime, loop, epoch_ns: as :class:`VideoSource`.
        timestamps: the files' capture times, a table ``seq,t_capture_ns`` with one row per file in order
            (``serve --record`` writes one per camera, :mod:`handstream.capture.recorder`). Frames then keep
            their recorded seq and are played at their recorded times instead of ``fps``: realtime, file ``i``
            is due (and stamped) at ``epoch_ns + t_i - t0_ns``; not realtime, stamped ``t_i`` itself.
        t0_ns: the recording's time origin, the same for all its cameras (default: this table's first time).
    """

    def __init__(
        self,
        path: str | Path,
        camera: str,
        fps: float | None = None,
        *,
        realtime: bool = True,
        loop: bool = False,
        epoch_ns: int | None = None,
        timestamps: str | Path | None = None,
        t0_ns: int | None = None,
    ):
        self.path = Path(path)
        if not self.path.is_dir():
            raise HandstreamError(f"{self.path}: image folder not found")
        self.files = list_images(self.path)
        self.fps = float(fps or 30.0)
        self.camera, self.realtime, self.loop = camera, realtime, loop
        self._pace = FramePacer(self.fps, epoch_ns, realtime)
        self._next: int | None = None
        self._stamped_skips = 0
        self.stamps: tuple[np.ndarray, np.ndarray] | None = None
        if timestamps is not None:
            from handstream.capture.recorder import read_timestamps

            seq, t = read_timestamps(timestamps)
            if len(seq) != len(self.files):
                raise HandstreamError(
                    f"{timestamps}: {len(seq)} rows but {self.path} has {len(self.files)} images (one row per image)"
                )
            if np.any(np.diff(t) < 0):
                raise HandstreamError(f"{timestamps}: t_capture_ns must not decrease")
            self.stamps = (seq, t)
            self._t0 = int(t[0] if t0_ns is None else t0_ns)

    @property
    def skipped(self) -> int:
        return self._pace.skipped + self._stamped_skips

    def set_epoch(self, epoch_ns: int) -> None:
        """Start (again) from ``epoch_ns``: the instant frame 0 (recorded times: ``t0_ns``) is due."""
        self._pace.epoch_ns = int(epoch_ns)
        self._next = None

    def _read_stamped(self) -> Frame | None:
        """Play the recorded times (see ``timestamps``)."""
        seq, t = self.stamps
        rel = t - self._t0
        if self.realtime and self._pace.epoch_ns is None:
            self._pace.epoch_ns = time.time_ns() - int(rel[0])
        epoch = self._pace.epoch_ns
        if self._next is None:  # a (re)started playback joins at the frame due now, like its peers
            self._next = int(np.searchsorted(rel, time.time_ns() - epoch, "left")) if self.realtime else 0
        i = self._next
        if i >= len(self.files):
            return None
        if self.realtime:
            now = time.time_ns()
            due = epoch + int(rel[i])
            if now > due + self._pace.period_ns:  # late by more than a frame: the newest due frame
                newest = max(i, int(np.searchsorted(rel, now - epoch, "right")) - 1)
                self._stamped_skips += newest - i
                i = newest
                due = epoch + int(rel[i])
            elif now < due:
                time.sleep((due - now) / 1e9)
            stamp = due
        else:
            stamp = int(t[i])
        image = read_image(self.files[i])
        self._next = i + 1
        return Frame(image, stamp, int(seq[i]), {} if self.realtime else {"clock": "media"})

    def read(self) -> Frame | None:
        if self.stamps is not None:
            return self._read_stamped()
        n = self._pace.first_index() if self._next is None else self._next
        n, t = self._pace.wait(n)
        if n >= len(self.files) and not self.loop:
            return None
        image = read_image(self.files[n % len(self.files)])
        self._next = n + 1
        return Frame(image, t, n, {} if self.realtime else {"clock": "media"})

    def close(self) -> None:
        pass


class DeviceSource:
    """A live camera through OpenCV: an index (``"0"``) or a V4L2 device path (``/dev/video0``).

    The capture time is ``time.time_ns()`` when the frame is grabbed (the driver's buffer timestamp is not
    exposed uniformly by OpenCV); requested width/height/fps/exposure are set before the first frame and
    what the driver accepted is reported in the capture's status.
    """

    def __init__(
        self,
        device: str,
        camera: str,
        *,
        width: int | None = None,
        height: int | None = None,
        fps: float | None = None,
        exposure: float | None = None,
    ):
        self.device = str(device)
        if self.device.isdigit():
            self._cap = cv2.VideoCapture(int(self.device))
        else:
            if not os.path.exists(self.device):
                raise HandstreamError(f"{self.device}: camera device not found")
            self._cap = cv2.VideoCapture(self.device, cv2.CAP_V4L2)
        if not self._cap.isOpened():
            raise HandstreamError(f"camera {self.device}: cannot open (no such camera, or it is busy)")
        self._cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # newest frame, not a backlog
        for prop, value in (
            (cv2.CAP_PROP_FRAME_WIDTH, width),
            (cv2.CAP_PROP_FRAME_HEIGHT, height),
            (cv2.CAP_PROP_FPS, fps),
        ):
            if value:
                self._cap.set(prop, float(value))
        if exposure is not None:
            self._cap.set(cv2.CAP_PROP_AUTO_EXPOSURE, 1)  # V4L2: 1 = manual
            self._cap.set(cv2.CAP_PROP_EXPOSURE, float(exposure))
        self.fps = float(self._cap.get(cv2.CAP_PROP_FPS) or fps or 30.0)
        self.camera, self.realtime, self.skipped = camera, True, 0
        self._n = 0

    def settings(self) -> dict[str, float]:
        """What the driver accepted."""
        return {
            "width": float(self._cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
            "height": float(self._cap.get(cv2.CAP_PROP_FRAME_HEIGHT)),
            "fps": float(self._cap.get(cv2.CAP_PROP_FPS)),
            "exposure": float(self._cap.get(cv2.CAP_PROP_EXPOSURE)),
        }

    def read(self) -> Frame | None:
        if not self._cap.grab():
            raise HandstreamError(f"camera {self.device}: stopped delivering frames")
        t = time.time_ns()
        ok, image = self._cap.retrieve()
        if not ok:
            raise HandstreamError(f"camera {self.device}: frame could not be decoded")
        self._n += 1
        return Frame(image, t, self._n - 1)

    def close(self) -> None:
        self._cap.release()


def open_source(spec: dict[str, Any], *, preset=None, epoch_ns: int | None = None) -> Source:
    """Build a source from a :class:`handstream.config.SourceConfig` as a dict (paths already resolved).

    A ``synthetic`` source with ``render = "cached"`` plays its camera's pre-rendered loop, the folder
    ``loop_dir`` that :func:`handstream.serve.plan` puts in the spec
    (:func:`handstream.capture.material.synthetic_loops`), as a looping, paced :class:`ImageFolderSource`;
    with ``render = "live"`` it renders the same frames (:class:`SyntheticCameraSource`; ``loop_frames = 0``:
    the endless stream).

    Args:
        spec: ``kind``, ``camera`` and the kind's keys.
        preset: the rig preset (a name or a :class:`~handstream.synth.rigs.RigPreset`), for synthetic sources.
        epoch_ns: the shared time origin of playback and synthetic sources.
    """
    kind, camera = spec["kind"], spec["camera"]
    if kind == "synthetic":
        if preset is None:
            raise HandstreamError("a synthetic source needs a rig preset (rig.preset)")
        loop = spec.get("loop_frames", 0) or None
        if spec.get("render", "live") == "cached":
            if not spec.get("loop_dir"):
                raise HandstreamError(
                    f"camera {camera}: a cached synthetic source needs its rendered loop (loop_dir, made by "
                    'handstream serve); render = "live" renders in the capture instead'
                )
            fps = spec.get("fps") or synthetic_preset(preset).fps
            src = ImageFolderSource(spec["loop_dir"], camera, fps, realtime=True, loop=True, epoch_ns=epoch_ns)
            if loop is not None and len(src.files) != loop:
                raise HandstreamError(f"{spec['loop_dir']}: {len(src.files)} frames, expected a loop of {loop}")
            return src
        return SyntheticCameraSource(preset, camera, spec.get("seed", 0), spec.get("fps"), epoch_ns, loop_frames=loop)
    if kind == "video":
        return VideoSource(
            spec["path"],
            camera,
            spec.get("fps"),
            realtime=spec.get("realtime", True),
            loop=spec.get("loop", False),
            epoch_ns=epoch_ns,
        )
    if kind == "images":
        return ImageFolderSource(
            spec["path"],
            camera,
            spec.get("fps"),
            realtime=spec.get("realtime", True),
            loop=spec.get("loop", False),
            epoch_ns=epoch_ns,
            timestamps=spec.get("timestamps"),
            t0_ns=spec.get("t0_ns"),
        )
    if kind == "device":
        return DeviceSource(
            spec["device"],
            camera,
            width=spec.get("width"),
            height=spec.get("height"),
            fps=spec.get("fps"),
            exposure=spec.get("exposure"),
        )
    raise HandstreamError(f"unknown source kind {kind!r}")
