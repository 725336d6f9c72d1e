"""``handstream bench``: the latency benchmark (flags -> :class:`handstream.bench.BenchOptions` -> run, print)."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from handstream.cli.options import (
    Backend,
    Calibration,
    Fps,
    LiveRender,
    MaxViewsPerHand,
    ModelName,
    PalmDetectorPath,
    Quiet,
    Refiner,
    Seed,
    Threads,
    UnitScale,
    Videos,
)
from handstream.errors import HandstreamError


def _ints(text: str, option: str) -> tuple[int, ...]:
    try:
        values = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise HandstreamError(f"{option}: expected comma-separated integers, got {text!r}") from None
    if not values:
        raise HandstreamError(f"{option}: expected at least one value")
    return values


def bench_command(
    seconds: float = typer.Option(20.0, "--seconds", help="Measured seconds of the live run (after the warm-up)."),
    warmup: float = typer.Option(3.0, "--warmup", help="Seconds of poses discarded after the first one."),
    cameras: int = typer.Option(
        None, "--cameras", help="Cameras (capture processes) of the live run (default: 4, or the number of --video)."
    ),
    resolution: str = typer.Option(
        None,
        "--resolution",
        help="WxH, native, or qvga|vga|svga|hd|fhd (default: vga for synthetic, native otherwise).",
    ),
    fps: Fps = None,
    backend: Backend = "auto",
    model: ModelName = None,
    refiner: Refiner = "default",
    palm_detector: PalmDetectorPath = None,
    threads: Threads = 0,
    source: str = typer.Option(
        "synthetic", "--source", help="synthetic (pre-rendered frames played by the captures) | video."
    ),
    video: Videos = (),
    calibration: Calibration = None,
    unit_scale: UnitScale = None,
    rig: str = typer.Option(  # not options.Rig: presets only (see there)
        "headset4", "--rig", help="Synthetic rig the cameras come from: headset4 | stereo | random-<seed>."
    ),
    live_render: LiveRender = False,
    loop_frames: int = typer.Option(90, "--loop-frames", help="Frame sets rendered/decoded once and played in a loop."),
    inprocess_seconds: float = typer.Option(
        None, "--inprocess-seconds", help="Seconds of the paced in-process run (default: half of --seconds, >= 2)."
    ),
    tracking: bool = typer.Option(
        True,
        "--tracking/--no-tracking",
        help="The live run tracks hands (the engine's default; the detect-every-frame path is timed in process "
        "beside it), or detects in every frame set.",
    ),
    max_views_per_hand: MaxViewsPerHand = 2,
    sweep: bool = typer.Option(
        False, "--sweep", help="Also sweep views x resolutions in process: cost per frame set of both paths."
    ),
    sweep_views: str = typer.Option("2,4,8", "--sweep-views", help="Views of the sweep, comma-separated."),
    sweep_resolutions: str = typer.Option(
        "320x240,640x480,1280x720", "--sweep-resolutions", help="Resolutions of the sweep, comma-separated."
    ),
    sweep_calls: int = typer.Option(30, "--sweep-calls", help="Timed calls per sweep configuration and path."),
    sweep_settle: int = typer.Option(
        30, "--sweep-settle", help="Sweep: at most this many frame sets skipped until both hands are tracked."
    ),
    compare: list[str] = typer.Option([], "--compare", help="Peer to time on the same frames: mediapipe."),
    mediapipe_model: Path = typer.Option(
        None,
        "--mediapipe-model",
        help="MediaPipe hand landmarker bundle (.task) "
        "(default: ../shared/models/hand_landmarker_lite.task if present).",
    ),
    compare_frames: int = typer.Option(60, "--compare-frames", help="Multi-view frames timed with each peer."),
    transport: str = typer.Option("tcp", "--transport", help="tcp (loopback, free ports) | ipc."),
    thumbnails: bool = typer.Option(
        False, "--thumbnails", help="Also subscribe to the engine's camera thumbnails, as view --include-2d does."
    ),
    out: Path = typer.Option(Path("handstream-bench"), "--out", help="Folder for latency.json and latency.png."),
    seed: Seed = 0,
    quiet: Quiet = False,
) -> None:
    """Measure latency end to end through the real processes and sockets, the same pipeline in-process, and
    where the time goes. Prints tables; writes latency.json (every figure + the machine) and latency.png.

    --source synthetic (the default): frame sets of --rig's cameras rendered once, played by the captures.
    --source video: one --video per camera, in the order of --calibration (with --unit-scale if needed).

    Examples:
      handstream bench --seconds 20
      handstream bench --seconds 15 --sweep --sweep-resolutions 640x480
      handstream bench --no-tracking --max-views-per-hand 3
      handstream bench --cameras 2 --resolution 1280x720 --fps 60 --sweep --compare mediapipe
      handstream bench --source video --calibration calib.toml --unit-scale 0.04 --video cam0.mp4 --video cam1.mp4
    """
    from handstream.bench import BenchOptions, parse_resolution, print_report, run_bench

    opts = BenchOptions(
        seconds=seconds,
        warmup=warmup,
        cameras=cameras,
        resolution="auto" if resolution is None else parse_resolution(resolution),
        fps=fps if fps is not None else (30.0 if source == "synthetic" else None),
        backend=backend,
        model=model,
        refiner=refiner,
        palm_detector=None if palm_detector is None else str(palm_detector),
        tracking=tracking,
        max_views_per_hand=max_views_per_hand,
        threads=threads,
        source=source,
        videos=[str(v) for v in video],
        calibration=None if calibration is None else str(calibration),
        unit_scale=unit_scale,
        rig=rig,
        live_render=live_render,
        loop_frames=loop_frames,
        inprocess_seconds=inprocess_seconds,
        sweep=sweep,
        sweep_views=_ints(sweep_views, "--sweep-views"),
        sweep_resolutions=tuple(
            parse_resolution(r, "--sweep-resolutions") or (640, 480) for r in sweep_resolutions.split(",") if r.strip()
        ),
        sweep_calls=sweep_calls,
        sweep_settle=sweep_settle,
        compare=tuple(c.strip().lower() for c in compare),
        mediapipe_model=None if mediapipe_model is None else str(mediapipe_model),
        compare_frames=compare_frames,
        transport=transport,
        thumbnails=thumbnails,
        out=str(out),
        seed=seed,
    )
    log = (lambda s: None) if quiet else (lambda s: print(f"bench: {s}", file=sys.stderr, flush=True))
    result = run_bench(opts, log=log, argv=[Path(sys.argv[0]).name, *sys.argv[1:]])
    print_report(result)
