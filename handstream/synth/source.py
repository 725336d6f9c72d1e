"""A live synthetic camera rig: synchronized multi-camera frames with timestamps and ground truth.

Legend: ``V`` views, ``H`` hands (2), ``K`` joints (21).

``SyntheticSource(rig, seed, fps)`` is an iterator of :class:`FrameBundle`: the images of every camera
of one instant, a sequence number, a capture timestamp and the ground truth. It renders one endless
sequence (one subject, one room, continuous motion: frame ``n`` shows time ``n / fps``), so its
content is deterministic in the seed whether it runs in real time or not.

* ``realtime=True`` (live): frames are paced at ``fps`` on the wall clock; ``t_capture_ns`` is the
  ``time.time_ns()`` instant the frame was due (its exposure). When rendering falls behind by more than
  a frame interval, the late frames are skipped (``dropped`` counts them), like a camera whose reader
  is slow: the stream stays live instead of queueing.
* ``realtime=False`` (benchmarks, tests): frames come as fast as they render; ``t_capture_ns`` is
  synthetic, ``start_ns + n * 1e9 / fps``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from handstream.errors import HandstreamError
from handstream.geometry import Rig
from handstream.pacing import FramePacer
from handstream.synth.generator import SynthGenerator
from handstream.synth.render import FrameLabels
from handstream.synth.rigs import RigPreset, get_preset


@dataclass
class FrameBundle:
    """The frames of all cameras at one instant.

    Attributes:
        seq: sequence number (frame index in the stream; gaps where frames were dropped).
        t_capture_ns: capture (exposure) time, nanoseconds (``time.time_ns`` clock when live).
        images: per view, (h, w) uint8 (mono) or (h, w, 3) uint8 BGR; views in rig order.
        labels: ground truth of the frame.
        cameras: camera names, in view order.
    """

    seq: int
    t_capture_ns: int
    images: list[np.ndarray]
    labels: FrameLabels
    cameras: tuple[str, ...]


class SyntheticSource:
    """Synchronized synthetic frames from every camera of a rig.

    Args:
        rig: a preset name (``"stereo"``, ``"headset4"``, ``"random"``), a :class:`RigPreset`, or a
            :class:`~handstream.geometry.Rig` in the headset frame (mono, default workspace).
        seed: the stream's seed.
        fps: frames per second; None: the preset's.
        realtime: pace frames on the wall clock (see the module docstring).
        max_frames: stop after this many frames (None: endless).
        start_ns: first timestamp when ``realtime=False``.
        motion_blur: None: as drawn from the seed; True / False: force.
    """

    def __init__(
        self,
        rig: str | RigPreset | Rig = "headset4",
        seed: int = 0,
        fps: float | None = None,
        *,
        realtime: bool = True,
        max_frames: int | None = None,
        start_ns: int = 0,
        motion_blur: bool | None = False,
    ):
        if isinstance(rig, str):
            preset = get_preset(rig, seed)
        elif isinstance(rig, RigPreset):
            preset = rig
        elif isinstance(rig, Rig):
            preset = RigPreset("custom", rig)
        else:
            raise HandstreamError(f"SyntheticSource: rig: expected a preset name, RigPreset or Rig, got {rig!r}")
        if fps is not None:
            if not (0 < float(fps) <= 1000):
                raise HandstreamError(f"SyntheticSource: fps: expected a number in (0, 1000], got {fps!r}")
            preset = RigPreset(preset.name, preset.rig, float(fps), preset.color, preset.workspace, preset.description)
        if max_frames is not None and int(max_frames) < 0:
            raise HandstreamError(f"SyntheticSource: max_frames: expected a non-negative integer, got {max_frames}")
        self.preset = preset
        self.fps = float(preset.fps)
        self.realtime = bool(realtime)
        self.max_frames = None if max_frames is None else int(max_frames)
        self.start_ns = int(start_ns)
        self.generator = SynthGenerator(preset, seed, sequence_length=None, motion_blur=motion_blur)
        self._pacer = FramePacer(self.fps, None if self.realtime else self.start_ns, self.realtime)
        self._next = 0
        self._emitted = 0
        self._closed = False

    @property
    def rig(self) -> Rig:
        """The cameras."""
        return self.preset.rig

    @property
    def cameras(self) -> tuple[str, ...]:
        """Camera names, in view order."""
        return tuple(self.preset.rig.names)

    @property
    def period_ns(self) -> int:
        """Nanoseconds between frames."""
        return self._pacer.period_ns

    @property
    def dropped(self) -> int:
        """Frames skipped because rendering fell behind (realtime)."""
        return self._pacer.skipped

    def __iter__(self) -> Iterator[FrameBundle]:
        return self

    def __next__(self) -> FrameBundle:
        if self._closed or (self.max_frames is not None and self._emitted >= self.max_frames):
            raise StopIteration
        return self.read()

    def read(self) -> FrameBundle:
        """The next bundle (waits for its time when ``realtime``)."""
        if self._closed:
            raise HandstreamError("SyntheticSource: read() after close()")
        seq, t_capture = self._pacer.wait(self._next)
        frame = self.generator.frame(seq)
        self._next = seq + 1
        self._emitted += 1
        return FrameBundle(seq, int(t_capture), frame.images, frame.labels, self.cameras)

    def close(self) -> None:
        """Stop the source; iteration ends."""
        self._closed = True

    def __enter__(self) -> SyntheticSource:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
