"""``handstream annotate``: offline videos in (one per camera, with their calibration), annotated videos and the
poses out (JSON lines and a table), as fast as the machine allows. The work is
:func:`handstream.annotate.annotate_videos`."""

from __future__ import annotations

from pathlib import Path

import typer

from handstream.cli.options import Calibration, Model, NoProgress, PalmDetectorPath, Refiner, Threads, UnitScale, Videos
from handstream.errors import HandstreamError


def annotate_command(
    video: Videos = (),
    calibration: Calibration = None,
    unit_scale: UnitScale = None,
    out: Path = typer.Option(
        ..., "--out", help="Output folder: <camera>.mp4 per view, poses.jsonl, poses.csv, summary.json."
    ),
    table: Path = typer.Option(
        None, "--table", help="The joints table: .csv or .parquet (with pyarrow). Default: OUT/poses.csv."
    ),
    no_table: bool = typer.Option(False, "--no-table", help="Write no joints table."),
    model: Model = None,
    refiner: Refiner = "default",
    palm_detector: PalmDetectorPath = None,
    threads: Threads = 0,
    frames: int = typer.Option(None, "--frames", help="Annotate at most this many frame sets."),
    no_progress: NoProgress = False,
) -> None:
    """Draw both hands' skeletons on recorded videos, one output video per camera, and write the poses.

    The videos are read in step (frame i of every file is one frame set), tracked by the engine's own pipeline
    (smoothed), and each view gets the 3D hands projected back: bones coloured by hand (left orange, right
    blue), joints by finger, dimmer where less confident. The 3D joints also go to a table, one row per hand per
    frame set, columns named by joint (the table poses-table writes).

    Example (real RGB cameras: import MediaPipe's network first, docs/real-cameras.md):
      handstream annotate --video cam0.mp4 --video cam1.mp4 --calibration calibration.toml --unit-scale 0.04
      --refiner engines/mediapipe-lite.onnx --out annotated/ --table annotated/poses.parquet
    """
    from handstream.annotate import annotate_videos
    from handstream.config import EngineConfig, FilterConfig
    from handstream.engine.backends import open_backend
    from handstream.engine.pipeline import Pipeline
    from handstream.geometry import load_calibration
    from handstream.models.defaults import DEFAULT_MODEL, refiner_option
    from handstream.tables import check_table_path

    if not video:
        raise HandstreamError("--video: give one video file per camera (in the calibration's order)")
    if calibration is None:
        raise HandstreamError("--calibration: the videos' camera calibration is needed (to triangulate)")
    if table is not None and no_table:
        raise HandstreamError("--table and --no-table: give one of them")
    if frames is not None and frames < 1:
        raise HandstreamError(f"--frames: expected an integer >= 1, got {frames}")
    table_arg = False if no_table else (table if table is not None else True)
    if table is not None:
        check_table_path(table)  # before the models load
    rig = load_calibration(calibration, unit_scale)
    if len(rig) < len(video):
        raise HandstreamError(f"--calibration: {calibration} has {len(rig)} cameras for {len(video)} videos")
    rig = rig.subset(list(rig.names[: len(video)]))
    detector_path = model or DEFAULT_MODEL
    crop_path = refiner_option(refiner, detector_path, tracking=True)
    detector = open_backend(detector_path, "auto", threads=threads)
    crop = open_backend(crop_path, "auto", threads=threads) if crop_path else None
    palm = None
    if palm_detector is not None:
        from handstream.models.palm import PalmDetector

        palm = PalmDetector(palm_detector)
    pipeline = Pipeline(rig, detector, EngineConfig(), FilterConfig(), refiner=crop, palm=palm)
    annotate_videos(video, rig, out, pipeline, limit=frames, table=table_arg, progress=not no_progress)
