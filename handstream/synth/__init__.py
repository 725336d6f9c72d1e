"""Synthetic egocentric multi-view hands: hand model, headset rigs, renderer, datasets, live source.

Legend: ``V`` views, ``H`` hands (2: left, right), ``K`` joints (21), ``A`` joint angles (22).

handstream makes its own multi-view hand data with exact 3D ground truth, for tests, training, the
live demo and benchmarks (docs/synthetic-data.md):

* :mod:`~handstream.synth.hand`: a 21-joint hand driven by 22 joint angles with anatomical limits,
  per-subject size, a library of named poses and random poses; its body as capsules.
* :mod:`~handstream.synth.motion`: two hands moving in front of the headset, smooth in time, leaving
  and entering the view, crossing and occluding each other.
* :mod:`~handstream.synth.rigs`: rig presets ``stereo``, ``headset4`` (the AssemblyHands headset's
  four fisheye cameras, shipped with the package) and ``random`` (seeded 2-6 camera layouts).
* :mod:`~handstream.synth.render`: ray casts the hands through each camera's own pixel rays (lens
  distortion exact), shades them (infrared or RGB look) over a 3D room with a cluttered table, and
  labels every joint in every view (projection, visibility); :mod:`~handstream.synth.scene` makes
  the looks and rooms.
* :mod:`~handstream.synth.generator`: frame index -> images + labels, deterministic by seed.
* :mod:`~handstream.synth.dataset`: datasets on disk (``handstream synth render``) and their reader;
  ``handstream.synth.torch_dataset`` (imports torch) wraps the reader for PyTorch.
* :mod:`~handstream.synth.source`: ``SyntheticSource(rig, seed, fps)``, a live synchronized rig.
* :mod:`~handstream.synth.preview`: contact sheets with the ground truth drawn (``handstream synth preview``).

Importing this package does not import torch.
"""

from handstream.synth.dataset import SynthDataset, SynthSample, iter_frames, write_dataset
from handstream.synth.generator import SynthFrame, SynthGenerator
from handstream.synth.hand import ANGLE_LIMITS, ANGLE_NAMES, NAMED_POSES, HandShape, random_pose, sample_pose
from handstream.synth.motion import Motion, PosedHand
from handstream.synth.render import FrameLabels, Renderer, Visibility
from handstream.synth.rigs import PRESET_NAMES, RigPreset, Workspace, get_preset
from handstream.synth.source import FrameBundle, SyntheticSource

__all__ = [
    "ANGLE_LIMITS",
    "ANGLE_NAMES",
    "FrameBundle",
    "FrameLabels",
    "HandShape",
    "Motion",
    "NAMED_POSES",
    "PRESET_NAMES",
    "PosedHand",
    "Renderer",
    "RigPreset",
    "SynthDataset",
    "SynthFrame",
    "SynthGenerator",
    "SynthSample",
    "SyntheticSource",
    "Visibility",
    "Workspace",
    "get_preset",
    "iter_frames",
    "random_pose",
    "sample_pose",
    "write_dataset",
]
