"""The flags several commands share: one definition each (name, type, help), as ``typing.Annotated`` aliases.

A command takes one by annotating a parameter; the parameter's Python default is the flag's default, so a
flag whose default differs between commands is still one alias::

    def eval_command(threads: Threads = 0, refiner: Refiner = "default", ...)
    def serve_command(threads: Threads = None, refiner: Refiner = None, ...)   # None: the config file's value

A parameter without a default (or ``= ...``) is a required flag. Help wording is written once here, so it
names what the flag is, not what one command does with it: that is in each command's description (and, for
``eval``, in its table of modes). Help text is rich markup: no square brackets (``[default: x]`` would vanish
as an unknown tag) unless escaped (a backslash before the opening bracket).

Flags that share a name but not a meaning keep their own definition in their command's module:

* ``--out``: a file prefix (export-engine), a folder (adapt, bench, train, synth render), an image (synth preview);
* ``--frames``: a number of frames in ``synth render`` / ``synth preview``, START:STOP here (:data:`FrameRange`);
* ``--seconds`` of ``bench`` (the measured length of the run) vs. :data:`StopAfter` (serve, subscribe: stop);
* ``--json``: a switch in ``subscribe`` (print JSON), a file in ``eval`` (write JSON);
* ``--rig`` of ``bench``: only the synthetic presets (its cameras are preset cameras, resized and copied),
  where :data:`Rig` (synth) also takes your own calibration file.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Annotated

import typer

from handstream.runtime import StopFlag

# --- cameras and their calibration ------------------------------------------------------------------------------

Calibration = Annotated[
    Path,
    typer.Option(
        "--calibration",
        help="Calibration of the cameras (matched in order to the videos, folders or devices given): "
        "aniposelib .toml, OpenCV .yaml/.yml/.xml or AssemblyHands .json.",
    ),
]
UnitScale = Annotated[
    float,
    typer.Option(
        "--unit-scale",
        help="Metres per length unit of the calibration file (e.g. 0.04 for 4 cm board squares); "
        "lengths are multiplied by it on reading.",
    ),
]
Videos = Annotated[
    list[Path],
    typer.Option("--video", help="A video file per camera, in the calibration's order (repeat)."),
]
Recordings = Annotated[
    list[Path],
    typer.Option(
        "--recording",
        help="One video file or image folder per camera, in the calibration's order (repeat), "
        "or one synthetic dataset folder, or one serve --record folder (its calibration unless --calibration); "
        "no labels needed.",
    ),
]
FrameRange = Annotated[
    str,
    typer.Option("--frames", help="Frames of the recording to use, START:STOP (e.g. 0:200, or 200: to the end)."),
]
Fps = Annotated[
    float,
    typer.Option("--fps", help="Camera frame rate (default: a video's or device's own; 30 for synthetic cameras)."),
]

# --- synthetic cameras -------------------------------------------------------------------------------------------

Seed = Annotated[int, typer.Option("--seed", help="Seed of the synthetic scenes: the same seed, the same frames.")]
LiveRender = Annotated[
    bool,
    typer.Option(
        "--live-render",
        help="Synthetic cameras: each capture renders its frames live (costs CPU the engine then lacks) instead "
        "of playing frames rendered once beforehand (serve caches them in ~/.cache/handstream/loops).",
    ),
]
Rig = Annotated[
    str,
    typer.Option(
        "--rig",
        help="Rig preset: stereo, headset4 or random (random-<seed> picks a layout), or your own rig's "
        "calibration file (.toml, .yaml, .json).",
    ),
]
RigSeed = Annotated[int, typer.Option("--rig-seed", help="Layout seed of --rig random.")]
Color = Annotated[str, typer.Option("--color", help="Override the preset's colour mode: mono or rgb.")]

# --- models and inference ----------------------------------------------------------------------------------------

_MODEL = typer.Option(
    "--model",
    help="Model: an .onnx with its manifest (NAME.onnx.json), a .pt checkpoint or a TensorRT .engine "
    "(where optional, default: the shipped engines/handstream-default.onnx); bench also takes random-init "
    "(random weights: timings only).",
)
Model = Annotated[Path, _MODEL]
ModelName = Annotated[str, _MODEL]
"""``--model`` as the text given: bench's value may be the word ``random-init`` rather than a path."""
Refiner = Annotated[
    str,
    typer.Option(
        "--refiner",
        help="Refiner (a second look at each hand, on crops): default (the one the model's manifest names, "
        "else the shipped engines/handstream-refiner.onnx), none (the detector alone), or a path.",
    ),
]
PalmDetectorPath = Annotated[
    Path,
    typer.Option(
        "--palm-detector",
        help="An imported MediaPipe palm detector (handstream import-model mediapipe palm_detection_lite.tflite): "
        "acquisition by search looks where it finds palms (RGB cameras, with MediaPipe's landmark network).",
    ),
]
Backend = Annotated[str, typer.Option("--backend", help="Inference backend: auto | onnxruntime | torch | tensorrt.")]
Threads = Annotated[int, typer.Option("--threads", help="CPU threads of inference and training (0: one per core).")]
MaxViewsPerHand = Annotated[
    int,
    typer.Option(
        "--max-views-per-hand",
        help="Tracking: crops per hand and frame set, from the best views (2..16; the engine's default: 2).",
    ),
]
Teacher = Annotated[
    Path,
    typer.Option(
        "--teacher",
        help="MediaPipe hand landmarker bundle (.task) as the teacher (eval: scored instead of --model; adapt: "
        "round 0's labels, later the fallback where the views find no consensus).",
    ),
]

# --- the pose socket (subscribers: subscribe, view, bridge) -------------------------------------------------------

PoseEndpoint = Annotated[str, typer.Option("--endpoint", "-e", help="The engine's pose socket.")]
CurveDir = Annotated[Path, typer.Option("--curve-dir", help="CURVE key folder, when the engine uses CURVE.")]

# --- output ------------------------------------------------------------------------------------------------------

StopAfter = Annotated[float, typer.Option("--seconds", help="Stop after this many seconds.")]


class _Until(StopFlag):
    """Set by Ctrl-C / SIGTERM, or once ``seconds`` have passed (None: never)."""

    def __init__(self, seconds: float | None):
        super().__init__()
        self.deadline = None if seconds is None else time.monotonic() + seconds

    def is_set(self) -> bool:
        if self.deadline is not None and time.monotonic() >= self.deadline:
            self.set()
        return super().is_set()


def stop_flag(seconds: float | None) -> StopFlag:
    """The stop of a long-running subscriber command (view, bridge): a flag that Ctrl-C and SIGTERM set (their
    handlers are installed here), and that sets itself after ``seconds`` (:data:`StopAfter`; None: never)."""
    stop = _Until(seconds)
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, lambda *_: stop.set())
    return stop


Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No status or progress lines on stderr.")]
NoProgress = Annotated[bool, typer.Option("--no-progress", help="No progress bars.")]
