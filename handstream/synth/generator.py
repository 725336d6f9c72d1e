"""Frames of a synthetic dataset or stream: frame index -> images + ground truth, deterministic by seed.

Legend: ``V`` views, ``H`` hands (2), ``K`` joints (21).

Frames are grouped in *sequences* of ``sequence_length`` frames (one subject, one room, one look,
continuous motion); frame ``i`` is frame ``i % L`` of sequence ``i // L``, at time ``(i % L) / fps``.
Everything random is drawn from streams keyed by the dataset seed and the sequence or frame index
(``numpy.random.SeedSequence([seed, tag, index])``), never from a shared running state, so a frame's
bytes depend only on ``(preset, seed, index, sequence_length)``: sharded or parallel rendering gives
the same frames as rendering in one go. ``sequence_length=None`` makes one endless sequence (the live
:class:`~handstream.synth.source.SyntheticSource`); ``loop_frames=N`` with it makes one sequence that
repeats every ``N`` frames without a seam (periodic motion and exposure; frame ``i`` is frame ``i % N``),
the loop ``handstream serve`` renders once and plays (:mod:`handstream.capture.material`).

:func:`camera_generator` is the generator of one camera of a preset, as a synthetic capture process
renders it. Its images equal that view's in a whole-rig render except for the sensor noise (each frame
draws where its noise is cut from, view after view, so a one-view render draws differently).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from handstream.errors import HandstreamError
from handstream.synth.hand import HandShape
from handstream.synth.motion import Motion, PosedHand
from handstream.synth.render import FrameLabels, RenderBuffers, Renderer
from handstream.synth.rigs import RigPreset
from handstream.synth.scene import Look, Scene, build_scene, random_look

_TAG_SEQUENCE = 1
_TAG_FRAME = 2


def check_seed(seed: Any) -> int:
    """A random seed as given by a user: a non-negative integer, else a one-line HandstreamError."""
    try:
        value = int(seed)
    except (TypeError, ValueError):
        raise HandstreamError(f"seed: expected a non-negative integer, got {seed!r}") from None
    if value < 0:
        raise HandstreamError(f"seed: expected a non-negative integer, got {seed}")
    return value


@dataclass
class SynthFrame:
    """One rendered frame.

    Attributes:
        index: frame index in the dataset / stream.
        sequence: sequence index; ``time_s``: seconds since the start of the sequence.
        images: per view, (h, w) uint8 (mono) or (h, w, 3) uint8 BGR.
        labels: the ground truth.
        buffers: depth and owner buffers, when asked for.
    """

    index: int
    sequence: int
    time_s: float
    images: list[np.ndarray]
    labels: FrameLabels
    buffers: RenderBuffers | None = None


@dataclass
class _Sequence:
    look: Look
    scene: Scene
    motion: Motion
    shape: HandShape


class SynthGenerator:
    """Renders frame ``i`` of the synthetic data defined by ``(preset, seed, sequence_length)``.

    Args:
        preset: the rig preset.
        seed: the dataset seed (non-negative integer).
        sequence_length: frames per sequence (None: one endless sequence).
        motion_blur: None: on for ~30% of sequences; True / False: always / never.
        loop_frames: with ``sequence_length=None``: the sequence repeats every this many frames, seamlessly
            (the motion's key poses and the exposure's oscillation are fitted to the period); None: endless.
    """

    def __init__(
        self,
        preset: RigPreset,
        seed: int = 0,
        *,
        sequence_length: int | None = 64,
        motion_blur: bool | None = None,
        loop_frames: int | None = None,
    ):
        seed = check_seed(seed)
        if sequence_length is not None and int(sequence_length) <= 0:
            raise HandstreamError(f"sequence_length: expected a positive integer, got {sequence_length}")
        if loop_frames is not None:
            if sequence_length is not None:
                raise HandstreamError("loop_frames: a loop is one endless sequence: pass sequence_length=None")
            if isinstance(loop_frames, bool) or not isinstance(loop_frames, int | np.integer) or loop_frames < 1:
                raise HandstreamError(f"loop_frames: expected a positive integer, got {loop_frames!r}")
        self.loop_frames = None if loop_frames is None else int(loop_frames)
        self.preset = preset
        self.seed = seed
        self.sequence_length = None if sequence_length is None else int(sequence_length)
        self.motion_blur = motion_blur
        self.renderer = Renderer(preset.rig, preset.color)
        self._sequence = lru_cache(maxsize=2)(self._make_sequence)

    def _rng(self, tag: int, index: int) -> np.random.Generator:
        return np.random.default_rng(np.random.SeedSequence([self.seed, tag, int(index)]))

    def _make_sequence(self, q: int) -> _Sequence:
        rng = self._rng(_TAG_SEQUENCE, q)
        look = random_look(rng, self.preset.color, motion_blur=self.motion_blur)
        shape = HandShape.from_scale(float(rng.uniform(0.8, 1.2)), rng)
        motion_seed = int(rng.integers(2**62))
        scene = build_scene(self.renderer.grid, look, self.preset.workspace, rng)
        period = None if self.loop_frames is None else self.loop_frames / self.preset.fps
        if period is not None:  # a whole number of exposure oscillations per loop
            cycles = max(1, round(period / look.exposure_period))
            look = dataclasses.replace(look, exposure_period=period / cycles)
        motion = Motion(self.preset.workspace, motion_seed, shape, period=period)
        return _Sequence(look, scene, motion, shape)

    def locate(self, index: int) -> tuple[int, float]:
        """(sequence, time in seconds) of frame ``index``."""
        if index < 0:
            raise HandstreamError(f"frame index: expected a non-negative integer, got {index}")
        if self.sequence_length is None:
            if self.loop_frames is not None:
                index %= self.loop_frames
            return 0, index / self.preset.fps
        q, k = divmod(int(index), self.sequence_length)
        return q, k / self.preset.fps

    def hands(self, index: int) -> tuple[PosedHand, PosedHand]:
        """The posed hands of frame ``index`` (no rendering)."""
        q, t = self.locate(index)
        return self._sequence(q).motion.hands(t)

    def frame(
        self, index: int, *, buffers: bool = False, hands: tuple[PosedHand, PosedHand] | None = None
    ) -> SynthFrame:
        """Render frame ``index``.

        Args:
            index: frame index (>= 0).
            buffers: also return the depth and owner buffers.
            hands: render these hands instead of the motion's (for tests: e.g. a hand outside every view).
        Returns:
            The frame; its images are copies (safe to keep).
        """
        q, t = self.locate(index)
        seq = self._sequence(q)
        if hands is None:
            hands = seq.motion.hands(t)
        earlier = None
        if seq.look.motion_blur > 0:
            earlier = seq.motion.hands(t - seq.look.motion_blur / self.preset.fps)
        rng = self._rng(_TAG_FRAME, index if self.loop_frames is None else index % self.loop_frames)
        images, labels, bufs = self.renderer.render(
            hands, seq.look, seq.scene, t, rng, earlier=earlier, buffers=buffers
        )
        labels = dataclasses.replace(labels, scale=seq.shape.scale)
        return SynthFrame(int(index), q, t, [img.copy() for img in images], labels, bufs)

    def look(self, index: int) -> Look:
        """The look of the sequence of frame ``index``."""
        return self._sequence(self.locate(index)[0]).look


def camera_generator(
    preset: RigPreset, camera: str | int, seed: int = 0, *, loop_frames: int | None = None
) -> SynthGenerator:
    """The generator of one camera of ``preset`` (a one-camera rig: what a synthetic capture process
    renders; motion blur off, one endless sequence, or a loop of ``loop_frames``).

    Args:
        preset: the whole rig; ``camera``: a camera name or index in it.
        seed: the scene seed (shared by the rig's cameras: same hands, room and look in every camera).
        loop_frames: frames of the seamless loop (None: endless).
    """
    index = preset.rig.index(camera)
    one = dataclasses.replace(preset, rig=preset.rig.subset([index]))
    return SynthGenerator(one, seed, sequence_length=None, motion_blur=False, loop_frames=loop_frames)
