"""``handstream serve``: the live system. Thin: flags -> :func:`build_config` -> :func:`handstream.serve.serve`."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path

import typer

from handstream.cli.options import (
    Backend,
    Calibration,
    Fps,
    LiveRender,
    Model,
    PalmDetectorPath,
    Quiet,
    Refiner,
    Seed,
    StopAfter,
    Threads,
    UnitScale,
    Videos,
)
from handstream.config import ServeConfig, SourceConfig, load_config
from handstream.errors import HandstreamError
from handstream.models.defaults import DEFAULT_MODEL


def _status_printer(quiet: bool):
    if quiet:
        return None
    tty = sys.stderr.isatty()
    last = [0.0]

    def show(line: str) -> None:
        if tty:
            sys.stderr.write("\r" + line[:200].ljust(120))
            sys.stderr.flush()
        elif time.monotonic() - last[0] >= 5.0:  # logs: one line every 5 s
            print(line, file=sys.stderr, flush=True)
            last[0] = time.monotonic()

    return show


def _kind(spec: dict) -> str:
    if spec["kind"] != "synthetic":
        return spec["kind"]
    loop = f"{spec['loop_frames']}-frame loop" if spec["loop_frames"] else "endless"
    return f"synthetic, {loop}, {'pre-rendered' if spec['render'] == 'cached' else 'rendered live'}"


class _RenderProgress:
    """A progress bar (rich) on stderr while serve renders a synthetic loop; nothing when it is cached."""

    def __init__(self, quiet: bool):
        self.quiet = quiet
        self.bar = None
        self.task = None

    def __call__(self, done: int, total: int, what: str) -> None:
        if self.quiet:
            return
        if self.bar is None:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn, TimeRemainingColumn

            print(f"handstream serve: {what}", file=sys.stderr, flush=True)
            self.bar = Progress(
                "[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                TimeRemainingColumn(), console=Console(stderr=True),
            )  # fmt: skip
            self.bar.start()
            self.task = self.bar.add_task("rendering", total=total)
        self.bar.update(self.task, completed=done, total=total)
        if done >= total:
            self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def build_config(
    *,
    config: Path | None = None,
    demo: bool = False,
    synthetic: str | None = None,
    calibration: Path | None = None,
    unit_scale: float | None = None,
    videos: Sequence[Path] = (),
    images: Sequence[Path] = (),
    devices: Sequence[str] = (),
    fps: float | None = None,
    loop: bool = False,
    fast: bool = False,
    model: Path | None = None,
    refiner: str | None = None,
    backend: str | None = None,
    threads: int | None = None,
    palm_detector: Path | None = None,
    frames_endpoint: str | None = None,
    poses_endpoint: str | None = None,
    no_filter: bool = False,
    include_2d: bool = False,
    seed: int = 0,
    live_render: bool = False,
    replay: Path | None = None,
) -> ServeConfig:
    """The serve config from a file (if any) with command-line flags applied on top.

    The keywords are ``serve``'s flags (their defaults: the flag not given). Paths given as flags are relative
    to the working directory; paths in a config file to the file. ``replay``: a recording folder, whose
    ``config.toml`` is the file (its frames played at their recorded times; ``fast``: as fast as the engine
    takes them, one frame set at a time).
    """
    if replay is not None:
        config = _replay_file(replay, config=config, demo=demo, synthetic=synthetic, calibration=calibration,
                              sources=[*videos, *images, *devices], live_render=live_render)  # fmt: skip
    cfg = load_config(config) if config is not None else ServeConfig()
    if replay is not None:
        for s in cfg.sources:
            s.realtime = not fast
    if sum([demo, synthetic is not None, calibration is not None]) > 1:
        raise HandstreamError("give only one of --demo, --synthetic PRESET, --calibration FILE")
    synthetic_rig = demo or bool(synthetic)
    if synthetic_rig:
        _use_synthetic_rig(cfg, synthetic or "headset4", fps=fps, seed=seed, live_render=live_render)
    if live_render:
        _render_live(cfg, calibration)
    _use_real_cameras(
        cfg, calibration, unit_scale, videos, images, devices, fps=fps, loop=loop, fast=fast, synthetic=synthetic_rig
    )
    _use_model(cfg, model, refiner, backend, threads, shipped_model=config is None)
    if palm_detector is not None:
        cfg.model.palm_detector = str(Path(palm_detector).resolve())
    _use_endpoints(cfg, frames_endpoint, poses_endpoint)
    _use_engine_flags(cfg, no_filter=no_filter, include_2d=include_2d, fast=fast)
    if cfg.rig.preset is None and cfg.rig.calibration is None:
        raise HandstreamError(
            "nothing to serve: give --demo, --synthetic PRESET, --calibration FILE with --video/--device, "
            "or --config FILE"
        )
    return ServeConfig.from_dict(cfg.to_dict(), str(config) if config else "command line")


def _replay_file(replay: Path, *, config, demo, synthetic, calibration, sources, live_render) -> Path:
    """``--replay DIR``: the recording's own config file (the recording checked first)."""
    from handstream.capture.recorder import open_recording_folder

    given = [name for name, v in (("--config", config), ("--demo", demo), ("--synthetic", synthetic),
             ("--calibration", calibration), ("--video/--images/--device", sources),
             ("--live-render", live_render)) if v]  # fmt: skip
    if given:
        raise HandstreamError(f"--replay: plays a recording's own cameras and config; not with {given[0]}")
    try:
        return open_recording_folder(replay).config
    except HandstreamError as exc:
        raise HandstreamError(f"--replay: {exc}") from None


def _use_synthetic_rig(cfg: ServeConfig, preset: str, *, fps: float | None, seed: int, live_render: bool) -> None:
    """``--demo`` / ``--synthetic PRESET``: the preset's cameras, one synthetic source each."""
    cfg.rig.preset, cfg.rig.calibration = preset, None
    cfg.sources = []  # plan() adds one synthetic source per camera
    if fps is not None or seed or live_render:
        from handstream.synth.rigs import get_preset

        names = get_preset(cfg.rig.preset).rig.names
        cfg.sources = [SourceConfig(kind="synthetic", camera=n, seed=seed, fps=fps) for n in names]


def _render_live(cfg: ServeConfig, calibration: Path | None) -> None:
    """``--live-render``: every synthetic source renders live (also a config file's synthetic rig)."""
    if calibration is not None or cfg.rig.preset is None:
        raise HandstreamError("--live-render: only for synthetic cameras (--demo, --synthetic PRESET)")
    if not cfg.sources:  # a config file's synthetic rig with the default sources
        from handstream.synth.rigs import get_preset

        names = cfg.rig.cameras or get_preset(cfg.rig.preset).rig.names
        cfg.sources = [SourceConfig(kind="synthetic", camera=n) for n in names]
    for s in cfg.sources:
        if s.kind == "synthetic":
            s.render = "live"


def _use_real_cameras(
    cfg: ServeConfig,
    calibration: Path | None,
    unit_scale: float | None,
    videos: Sequence[Path],
    images: Sequence[Path],
    devices: Sequence[str],
    *,
    fps: float | None,
    loop: bool,
    fast: bool,
    synthetic: bool,
) -> None:
    """``--calibration`` / ``--unit-scale`` and the sources filming real cameras (``--video``, ``--images``,
    ``--device``)."""
    if calibration is not None:
        cfg.rig.calibration, cfg.rig.preset = str(calibration.resolve()), None  # flags: relative to the cwd
    if unit_scale is not None:
        cfg.rig.unit_scale = unit_scale
    file_sources = [("video", str(p.resolve())) for p in videos] + [("images", str(p.resolve())) for p in images]
    if file_sources or devices:
        if synthetic:
            raise HandstreamError(
                "--video/--images/--device film real cameras: use them with --calibration, not --demo/--synthetic"
            )
        cfg.sources = [SourceConfig(kind=k, path=p, fps=fps, realtime=not fast, loop=loop) for k, p in file_sources]
        cfg.sources += [SourceConfig(kind="device", device=d, fps=fps) for d in devices]


def _use_model(
    cfg: ServeConfig,
    model: Path | None,
    refiner: str | None,
    backend: str | None,
    threads: int | None,
    *,
    shipped_model: bool,
) -> None:
    """``--model`` (not given: the config file's, else the shipped model), ``--refiner``, ``--backend``,
    ``--threads``."""
    if model is not None:
        cfg.model.path = str(Path(model).resolve())
    elif shipped_model:
        cfg.model.path = str(DEFAULT_MODEL)
    if refiner is not None:  # default | none stay words: plan() resolves them against the detector
        cfg.model.refiner = refiner if refiner.lower() in ("default", "none") else str(Path(refiner).resolve())
    if backend is not None:
        cfg.model.backend = backend
    if threads is not None:
        cfg.model.threads = threads


def _use_endpoints(cfg: ServeConfig, frames_endpoint: str | None, poses_endpoint: str | None) -> None:
    if frames_endpoint is not None:
        cfg.endpoints.frames = frames_endpoint
    if poses_endpoint is not None:
        cfg.endpoints.poses = poses_endpoint


def _use_engine_flags(cfg: ServeConfig, *, no_filter: bool, include_2d: bool, fast: bool) -> None:
    if no_filter:
        cfg.filter.enabled = False
    if include_2d:
        cfg.engine.include_2d = True
    if fast:
        cfg.engine.max_age_ms = 0.0


def _started_printer(endpoint: str):
    """What serve prints once every process runs: the cameras, the rate, where the poses are."""

    def started(p) -> None:
        kinds = {_kind(s) for s in p.sources}
        if len(kinds) == 1:  # e.g. "a, b, c, d (synthetic, 300-frame loop, pre-rendered)"
            cams = ", ".join(s["camera"] for s in p.sources) + f" ({kinds.pop()})"
        else:
            cams = ", ".join(f"{s['camera']} ({_kind(s)})" for s in p.sources)
        print(f"handstream serve: {len(p.sources)} cameras: {cams}; {p.fps:g} fps", file=sys.stderr)
        print(
            f"handstream serve: poses on {endpoint} (handstream subscribe -e {endpoint}); Ctrl-C stops",
            file=sys.stderr,
        )

    return started


def serve_command(
    config: Path = typer.Option(None, "--config", "-c", help="Serve config (TOML); flags override it."),
    demo: bool = typer.Option(False, "--demo", help="Synthetic 4-camera headset + the default model."),
    synthetic: str = typer.Option(None, "--synthetic", help="Synthetic rig preset: stereo, headset4, random-<seed>."),
    calibration: Calibration = None,
    unit_scale: UnitScale = None,
    video: Videos = (),
    images: list[Path] = typer.Option([], "--images", help="An image folder per camera (repeat)."),
    device: list[str] = typer.Option([], "--device", help="A camera index or /dev/videoN per camera (repeat)."),
    fps: Fps = None,
    loop: bool = typer.Option(False, "--loop", help="Replay videos/folders forever."),
    fast: bool = typer.Option(False, "--fast", help="Play videos/folders as fast as the engine takes them."),
    model: Model = None,
    refiner: Refiner = None,
    palm_detector: PalmDetectorPath = None,
    backend: Backend = None,
    threads: Threads = None,
    frames_endpoint: str = typer.Option(
        None, "--frames-endpoint", help="Engine frame socket (default tcp://127.0.0.1:5555)."
    ),
    poses_endpoint: str = typer.Option(
        None, "--poses-endpoint", help="Engine pose socket (default tcp://127.0.0.1:5556)."
    ),
    no_filter: bool = typer.Option(False, "--no-filter", help="Turn the One-Euro smoothing off."),
    include_2d: bool = typer.Option(False, "--include-2d", help="Put per-view 2D joints in the pose messages."),
    seed: Seed = 0,
    live_render: LiveRender = False,
    bridge: list[str] = typer.Option(
        [], "--bridge", help="Also run a bridge: websocket, osc or lsl, options as KIND:key=value,... (repeat)."
    ),
    record: Path = typer.Option(
        None, "--record", help="Record the session to this new folder: every camera's frames (PNG) with their "
        "capture times, the poses, the calibration and a config that replays it (serve --replay).",
    ),
    replay: Path = typer.Option(
        None, "--replay", help="Play a recording (serve --record) through the capture processes at its recorded "
        "times; with --fast as fast as the engine takes frames, one frame set at a time (the same poses).",
    ),
    seconds: StopAfter = None,
    quiet: Quiet = False,
) -> None:
    """Run the live system: one capture process per camera, the engine, poses on the pose socket.

    Flags not given keep the --config file's values (--model, --refiner, --backend, --threads: the config's,
    else the shipped model with its refiner, backend auto, one thread per core).

    Examples:
      handstream serve --demo
      handstream serve --calibration calibration.toml --unit-scale 0.04 --video cam0.mp4 --video cam1.mp4
      handstream serve --config serve.toml
      handstream serve --demo --record session/ --seconds 10;  handstream serve --replay session/ --fast
      handstream serve --demo --bridge websocket --bridge osc:host=127.0.0.1,port=9000
    Then, in another terminal: handstream subscribe
    """
    from handstream.bridges.common import check_options, parse_spec
    from handstream.serve import serve

    cfg = build_config(
        config=config, demo=demo, synthetic=synthetic, calibration=calibration, unit_scale=unit_scale, videos=video,
        images=images, devices=device, fps=fps, loop=loop, fast=fast, model=model, refiner=refiner, backend=backend,
        palm_detector=palm_detector, threads=threads, frames_endpoint=frames_endpoint, poses_endpoint=poses_endpoint,
        no_filter=no_filter, include_2d=include_2d, seed=seed, live_render=live_render, replay=replay,
    )  # fmt: skip
    bridges = [(kind, check_options(kind, opts)) for kind, opts in map(parse_spec, bridge)]  # before anything starts
    with _RenderProgress(quiet) as progress:
        code = serve(
            cfg, seconds=seconds, on_status=_status_printer(quiet), on_start=_started_printer(cfg.endpoints.poses),
            progress=progress, bridges=bridges, record=record,
        )  # fmt: skip
    if not quiet and sys.stderr.isatty():
        sys.stderr.write("\n")
    raise typer.Exit(code)
