"""``handstream adapt``: adapt the estimator to a camera layout from unlabeled synchronized recordings.

The command in named steps: :func:`_starting_model` and :func:`_defaults` (the defaults of the model's kind),
:func:`_check_numbers`, :func:`_check_teacher` and :func:`_check_landmarks` (the flags, one line each),
:func:`_open_recording` (the frames in memory, with the rig), :func:`_adapt_config`; then
:func:`handstream.adapt.adapt.adapt` does the work (for an imported landmarks model,
:func:`handstream.adapt.landmarks.adapt_landmarks`).
"""

from __future__ import annotations

from pathlib import Path

import typer

from handstream.cli import options as opt
from handstream.errors import HandstreamError


def _positive(value, option: str, integer: bool = False):
    if value is None or value <= 0 or (integer and int(value) != value):
        raise HandstreamError(f"{option}: expected a positive {'integer' if integer else 'number'}, got {value}")
    return value


def _check_numbers(
    *,
    rounds: int,
    steps: int,
    refiner_steps: int,
    batch: int,
    lr: float,
    threshold_px: float,
    hand_scale: float,
    min_views: int,
    anatomy: str,
    min_conf: float,
) -> None:
    """The numeric and word flags, in the order of the checks (the first bad one is the error)."""
    for option, value, integer in (
        ("--rounds", rounds, True),
        ("--steps", steps, True),
        ("--refiner-steps", refiner_steps, True),
        ("--batch", batch, True),
        ("--lr", lr, False),
        ("--threshold-px", threshold_px, False),
        ("--hand-scale", hand_scale, False),
    ):
        _positive(value, option, integer)
    if min_views < 2:
        raise HandstreamError(f"--min-views: expected >= 2 (a consensus needs two views), got {min_views}")
    if anatomy not in ("metric", "relative"):
        raise HandstreamError(f"--anatomy: expected metric or relative, got {anatomy!r}")
    if not 0 <= min_conf < 1:
        raise HandstreamError(f"--min-conf: expected a number in [0, 1), got {min_conf}")


def _check_teacher(teacher: Path | None) -> None:
    """``--teacher``: a MediaPipe bundle that MediaPipe (installed) can open."""
    if teacher is None:
        return
    if not teacher.is_file():
        raise HandstreamError(f"--teacher: {teacher}: file not found (a MediaPipe hand_landmarker .task bundle)")
    from handstream.mediapipe import mediapipe_unavailable

    why = mediapipe_unavailable(teacher)
    if why:
        raise HandstreamError(f"--teacher: {why}")


def _starting_model(model: Path | None) -> Path:
    """``--model``, else the shipped model; it must exist."""
    from handstream.models.defaults import DEFAULT_MODEL

    model = model or Path(DEFAULT_MODEL)
    if not model.exists():
        raise HandstreamError(f"--model: {model}: not found")
    return model


HEATMAP_DEFAULTS = {"rounds": 3, "steps": 300, "batch": 32, "lr": 5e-4}
"""``--rounds``, ``--steps``, ``--batch``, ``--lr`` for handstream's own heatmap detector."""


def _defaults(landmarks: bool, **given) -> dict:
    """The flags given, the kind's defaults for the others (a landmarks model: those of
    :class:`~handstream.adapt.landmarks.LandmarkAdaptConfig`, a much smaller learning rate and batch)."""
    if landmarks:
        from handstream.adapt.landmarks import LandmarkAdaptConfig

        base = LandmarkAdaptConfig()
        defaults = {k: getattr(base, k) for k in HEATMAP_DEFAULTS}
    else:
        defaults = HEATMAP_DEFAULTS
    return {k: defaults[k] if v is None else v for k, v in given.items()}


def _check_landmarks(
    model: Path, landmarks: bool, teacher: Path | None, refiner: str, estimate_extrinsics: bool, bone_sigma
) -> None:
    """An imported landmarks model is its own teacher and its own crop model: no --teacher, --refiner or
    --estimate-extrinsics; --bone-sigma is only for one."""
    if not landmarks:
        if bone_sigma is not None:
            raise HandstreamError(f"--bone-sigma: only with an imported landmarks model as --model, not {model}")
        return
    if bone_sigma is not None and not bone_sigma >= 0:
        raise HandstreamError(f"--bone-sigma: expected a number >= 0 (0: off), got {bone_sigma}")
    for flag, given in (("--teacher", teacher is not None), ("--refiner", refiner.lower() != "none"),
                        ("--estimate-extrinsics", estimate_extrinsics)):  # fmt: skip
        if given:
            raise HandstreamError(
                f"{flag}: not with --model {model} (an imported landmarks model: it is the teacher, the crop model "
                "and needs calibrated extrinsics)"
            )


def _open_recording(
    recording: list[Path], calibration: Path | None, unit_scale: float | None, frames: str | None, progress: bool
):
    """The recording's frames in memory (:class:`handstream.capture.recording.Recording`): it needs a rig (the
    cameras' intrinsics) and at least two frames."""
    from handstream.capture.recording import open_recording, parse_frame_range

    rng = parse_frame_range(frames)
    rec = open_recording(list(recording), calibration, unit_scale=unit_scale, frames=rng, progress=progress)
    if rec.rig is None:
        raise HandstreamError(
            "--calibration: needed for the cameras' intrinsics "
            "(add --estimate-extrinsics when its extrinsics are unknown)"
        )
    if len(rec) < 2:
        raise HandstreamError(f"--recording: {len(rec)} frame(s) in the range; adaptation needs many (hundreds)")
    return rec


def _adapt_config(
    *,
    rounds: int,
    steps: int,
    batch: int,
    lr: float,
    threads: int,
    estimate_extrinsics: bool,
    hand_scale: float,
    refiner_steps: int,
    threshold_px: float,
    min_views: int,
    min_conf: float,
    anatomy: str,
    landmarks: bool = False,
    bone_sigma: float | None = None,
    seed: int = 0,
    palm_detector: Path | None = None,
):
    """The flags as an :class:`~handstream.adapt.adapt.AdaptConfig` (its consensus settings included), or for an
    imported landmarks model (``landmarks``) a :class:`~handstream.adapt.landmarks.LandmarkAdaptConfig`
    (``threads`` 0 there: all cores)."""
    from dataclasses import replace

    from handstream.adapt.adapt import AdaptConfig
    from handstream.adapt.pseudo import ConsensusConfig

    consensus = ConsensusConfig(threshold_px=threshold_px, min_views=min_views, min_conf=min_conf, anatomy=anatomy)
    if landmarks:
        from handstream.adapt.landmarks import LandmarkAdaptConfig

        cfg = LandmarkAdaptConfig(rounds=rounds, steps=steps, batch=batch, lr=lr, threads=threads,
                                  consensus=consensus, seed=seed,
                                  palm_detector=None if palm_detector is None else str(palm_detector))  # fmt: skip
        return cfg if bone_sigma is None else replace(cfg, bone_sigma=bone_sigma)
    cfg = AdaptConfig(
        rounds=rounds,
        steps=steps,
        batch=batch,
        lr=lr,
        threads=threads,
        estimate_extrinsics=estimate_extrinsics,
        hand_scale=hand_scale,
        refiner_steps=refiner_steps,
        seed=seed,
    )
    return replace(cfg, consensus=consensus)


def adapt_command(
    recording: opt.Recordings = ...,
    out: Path = typer.Option(..., "--out", help="Output folder (rounds, report.json, model.pt, <name>.onnx)."),
    model: opt.Model = None,
    calibration: opt.Calibration = None,
    unit_scale: opt.UnitScale = None,
    estimate_extrinsics: bool = typer.Option(
        False,
        "--estimate-extrinsics",
        help="Ignore the calibration's extrinsics: estimate them from the hands (essential matrix + bone lengths).",
    ),
    hand_scale: float = typer.Option(
        1.0,
        "--hand-scale",
        help="With --estimate-extrinsics: your hand's size relative to the average adult hand (sets the metric scale).",
    ),
    teacher: opt.Teacher = None,
    refiner: opt.Refiner = "none",
    refiner_steps: int = typer.Option(300, "--refiner-steps", help="Fine-tuning steps of the refiner."),
    frames: opt.FrameRange = None,
    rounds: int = typer.Option(
        None, "--rounds", help="Detect -> pseudo-label -> fine-tune rounds (default 3; landmarks model 2)."
    ),
    steps: int = typer.Option(None, "--steps", help="Fine-tuning steps per round (default 300; landmarks model 150)."),
    batch: int = typer.Option(None, "--batch", help="Images (crops) per step (default 32; landmarks model 8)."),
    lr: float = typer.Option(
        None, "--lr", help="Peak learning rate, cosine within each round (default 5e-4; landmarks model 1e-5)."
    ),
    threshold_px: float = typer.Option(
        8.0, "--threshold-px", help="Views agree on a joint when within this many pixels of its reprojection."
    ),
    min_views: int = typer.Option(2, "--min-views", help="Views that must agree on a joint for it to get a label."),
    min_conf: float = typer.Option(0.3, "--min-conf", help="Detections below this confidence are not used."),
    anatomy: str = typer.Option(
        "metric",
        "--anatomy",
        help=(
            "Bone-length check of the consensus: metric (calibration in metres, vs the average hand) "
            "or relative (unknown units)."
        ),
    ),
    bone_sigma: float = typer.Option(
        None,
        "--bone-sigma",
        help="Landmarks model only: refit each frame's consensus hand to the recording's median bone lengths, "
        "tolerating this relative change per pixel of reprojection (default 0.05; 0: off).",
    ),
    name: str = typer.Option("adapted", "--name", help="Name of the exported model (OUT/NAME.onnx)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the crop sampling and jitter: the same seed, the same run."),
    palm_detector: opt.PalmDetectorPath = None,
    threads: opt.Threads = 0,
    no_export: bool = typer.Option(False, "--no-export", help="Do not export OUT/NAME.onnx."),
    no_progress: opt.NoProgress = False,
) -> None:
    """Adapt the 2D estimator to your cameras without labels: cross-view consensus pseudo-labels and fine-tuning.

    --model is the starting network: a .pt checkpoint (preferred: batch norms intact) or an .onnx with its
    manifest (default: the shipped model). An imported MediaPipe landmark network (handstream import-model) is
    its own teacher: each round tracks the recording with it (the engine's tracked path), labels by the views'
    consensus and fine-tunes it on the engine's RGB crops of the labelled hands; OUT/NAME.onnx is the student.
    --calibration always gives the cameras' intrinsics.
    --refiner default or a path: also adapt that refiner after the detector (OUT/NAME-refiner.onnx, paired
    with it; default: the one --model goes with, else the shipped one). none (the default): the adapted
    detector runs without a refiner, the better choice on the real clip measured in docs/adaptation.md.

    Example: handstream adapt --recording cam0.mp4 --recording cam1.mp4 --calibration calib.toml --out runs/my-rig
    Without calibrated extrinsics: add --estimate-extrinsics (the file still gives the intrinsics).
    With a teacher: --teacher hand_landmarker.task. Serve the result: handstream serve --model OUT/adapted.onnx ...
    (its manifest says to run it without a refiner, or, with --refiner default, names the refiner adapted with it).
    """
    from handstream.adapt.adapt import adapt
    from handstream.adapt.landmarks import is_landmarks_model
    from handstream.models.defaults import refiner_option

    model = _starting_model(model)
    landmarks = is_landmarks_model(model)
    given = _defaults(landmarks, rounds=rounds, steps=steps, batch=batch, lr=lr)
    rounds, steps, batch, lr = given["rounds"], given["steps"], given["batch"], given["lr"]
    _check_numbers(
        rounds=rounds, steps=steps, refiner_steps=refiner_steps, batch=batch, lr=lr, threshold_px=threshold_px,
        hand_scale=hand_scale, min_views=min_views, anatomy=anatomy, min_conf=min_conf,
    )  # fmt: skip
    _check_landmarks(model, landmarks, teacher, refiner, estimate_extrinsics, bone_sigma)
    if palm_detector is not None:
        if not landmarks:
            raise HandstreamError(f"--palm-detector: only with an imported landmarks model as --model, not {model}")
        from handstream.models.palm import PalmDetector

        PalmDetector(palm_detector)  # a bad file: one line before minutes of reading the recording
    _check_teacher(teacher)
    refiner_path = None if landmarks else refiner_option(refiner, model)
    rec = _open_recording(recording, calibration, unit_scale, frames, progress=not no_progress)
    cfg = _adapt_config(
        rounds=rounds, steps=steps, batch=batch, lr=lr, threads=threads, estimate_extrinsics=estimate_extrinsics,
        hand_scale=hand_scale, refiner_steps=refiner_steps, threshold_px=threshold_px, min_views=min_views,
        min_conf=min_conf, anatomy=anatomy, landmarks=landmarks, bone_sigma=bone_sigma, seed=seed,
        palm_detector=palm_detector,
    )  # fmt: skip
    report = adapt(
        rec, model, out, cfg, teacher=teacher, refiner=refiner_path, name=name, export=not no_export,
        progress=not no_progress,
    )  # fmt: skip
    written = [report[k] for k in ("onnx", "refiner_onnx") if report.get(k)]
    typer.echo(f"wrote {out / 'report.json'}" + "".join(f" and {w}" for w in written))
