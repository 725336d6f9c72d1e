"""CLI commands of the live system: ``serve``, ``subscribe``, ``keys``. Thin: flags -> config -> library."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import typer

from handstream.config import ServeConfig, SourceConfig, load_config
from handstream.errors import HandstreamError
from handstream.models.defaults import DEFAULT_MODEL
from handstream.transport.pubsub import DEFAULT_POSE_ENDPOINT


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
    config: Path | None,
    demo: bool,
    synthetic: str | None,
    calibration: Path | None,
    unit_scale: float | None,
    videos: list[Path],
    images: list[Path],
    devices: list[str],
    fps: float | None,
    loop: bool,
    fast: bool,
    model: Path | None,
    backend: str | None,
    threads: int | None,
    frames_endpoint: str | None,
    poses_endpoint: str | None,
    no_filter: bool,
    include_2d: bool,
    seed: int,
    refiner: str | None = None,
    live_render: bool = False,
) -> ServeConfig:
    """The serve config from a file (if any) with command-line flags applied on top."""
    cfg = load_config(config) if config is not None else ServeConfig()
    if sum([demo, synthetic is not None, calibration is not None]) > 1:
        raise HandstreamError("give only one of --demo, --synthetic PRESET, --calibration FILE")
    if demo or synthetic:
        cfg.rig.preset, cfg.rig.calibration = (synthetic or "headset4"), None
        cfg.sources = []  # plan() adds one synthetic source per camera
        if fps is not None or seed or live_render:
            from handstream.synth.rigs import get_preset

            names = get_preset(cfg.rig.preset).rig.names
            cfg.sources = [SourceConfig(kind="synthetic", camera=n, seed=seed, fps=fps) for n in names]
    if live_render:
        if calibration is not None or cfg.rig.preset is None:
            raise HandstreamError("--live-render: only for synthetic cameras (--demo, --synthetic PRESET)")
        if not cfg.sources:  # a config file's synthetic rig with the default sources
            from handstream.synth.rigs import get_preset

            names = cfg.rig.cameras or get_preset(cfg.rig.preset).rig.names
            cfg.sources = [SourceConfig(kind="synthetic", camera=n) for n in names]
        for s in cfg.sources:
            if s.kind == "synthetic":
                s.render = "live"
    if calibration is not None:
        cfg.rig.calibration, cfg.rig.preset = str(calibration.resolve()), None  # flags: relative to the cwd
    if unit_scale is not None:
        cfg.rig.unit_scale = unit_scale
    file_sources = [("video", str(p.resolve())) for p in videos] + [("images", str(p.resolve())) for p in images]
    if file_sources or devices:
        if demo or synthetic:
            raise HandstreamError(
                "--video/--images/--device film real cameras: use them with --calibration, not --demo/--synthetic"
            )
        cfg.sources = [SourceConfig(kind=k, path=p, fps=fps, realtime=not fast, loop=loop) for k, p in file_sources]
        cfg.sources += [SourceConfig(kind="device", device=d, fps=fps) for d in devices]
    if model is not None:
        cfg.model.path = str(model.resolve())
    elif config is None:
        cfg.model.path = str(DEFAULT_MODEL)
    if refiner is not None:  # default | none stay words: plan() resolves them against the detector
        cfg.model.refiner = refiner if refiner.lower() in ("default", "none") else str(Path(refiner).resolve())
    if backend is not None:
        cfg.model.backend = backend
    if threads is not None:
        cfg.model.threads = threads
    if frames_endpoint is not None:
        cfg.endpoints.frames = frames_endpoint
    if poses_endpoint is not None:
        cfg.endpoints.poses = poses_endpoint
    if no_filter:
        cfg.filter.enabled = False
    if include_2d:
        cfg.engine.include_2d = True
    if fast:
        cfg.engine.max_age_ms = 0.0
    if cfg.rig.preset is None and cfg.rig.calibration is None:
        raise HandstreamError(
            "nothing to serve: give --demo, --synthetic PRESET, --calibration FILE with --video/--device, "
            "or --config FILE"
        )
    return ServeConfig.from_dict(cfg.to_dict(), str(config) if config else "command line")


def serve_command(
    config: Path = typer.Option(None, "--config", "-c", help="Serve config (TOML); flags override it."),
    demo: bool = typer.Option(False, "--demo", help="Synthetic 4-camera headset + the default model."),
    synthetic: str = typer.Option(None, "--synthetic", help="Synthetic rig preset: stereo, headset4, random-<seed>."),
    calibration: Path = typer.Option(None, "--calibration", help="Calibration of the real cameras."),
    unit_scale: float = typer.Option(None, "--unit-scale", help="Metres per calibration unit (e.g. 0.04)."),
    video: list[Path] = typer.Option([], "--video", help="A video per camera, in calibration order (repeat)."),
    images: list[Path] = typer.Option([], "--images", help="An image folder per camera (repeat)."),
    device: list[str] = typer.Option([], "--device", help="A camera index or /dev/videoN per camera (repeat)."),
    fps: float = typer.Option(None, "--fps", help="Frame rate (videos: default the file's)."),
    loop: bool = typer.Option(False, "--loop", help="Replay videos/folders forever."),
    fast: bool = typer.Option(False, "--fast", help="Play videos/folders as fast as the engine takes them."),
    model: Path = typer.Option(None, "--model", help="Model (.onnx with manifest, .pt, .engine)."),
    refiner: str = typer.Option(
        None,
        "--refiner",
        help=(
            "Refiner model (a second look at each hand): a path, none, or default "
            "(the one the model's manifest names, else the shipped one)."
        ),
    ),
    backend: str = typer.Option(None, "--backend", help="auto | onnxruntime | torch | tensorrt."),
    threads: int = typer.Option(None, "--threads", help="Inference threads (0: all cores)."),
    frames_endpoint: str = typer.Option(
        None, "--frames-endpoint", help="Engine frame socket (default tcp://127.0.0.1:5555)."
    ),
    poses_endpoint: str = typer.Option(
        None, "--poses-endpoint", help="Engine pose socket (default tcp://127.0.0.1:5556)."
    ),
    no_filter: bool = typer.Option(False, "--no-filter", help="Turn the One-Euro smoothing off."),
    include_2d: bool = typer.Option(False, "--include-2d", help="Put per-view 2D joints in the pose messages."),
    seed: int = typer.Option(0, "--seed", help="Synthetic scene seed."),
    live_render: bool = typer.Option(
        False,
        "--live-render",
        help=(
            "Synthetic cameras: each capture renders its frames live (costs CPU the engine then lacks) "
            "instead of playing the loop rendered once and cached in ~/.cache/handstream/loops."
        ),
    ),
    seconds: float = typer.Option(None, "--seconds", help="Stop after this many seconds."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No status line."),
) -> None:
    """Run the live system: one capture process per camera, the engine, poses on the pose socket.

    Examples:
      handstream serve --demo
      handstream serve --calibration calibration.toml --unit-scale 0.04 --video cam0.mp4 --video cam1.mp4
      handstream serve --config serve.toml
    Then, in another terminal: handstream subscribe
    """
    from handstream.serve import serve

    cfg = build_config(
        config, demo, synthetic, calibration, unit_scale, video, images, device, fps, loop, fast,
        model, backend, threads, frames_endpoint, poses_endpoint, no_filter, include_2d, seed, refiner=refiner,
        live_render=live_render,
    )  # fmt: skip

    def started(p) -> None:
        kinds = {_kind(s) for s in p.sources}
        if len(kinds) == 1:  # e.g. "a, b, c, d (synthetic, 300-frame loop, pre-rendered)"
            cams = ", ".join(s["camera"] for s in p.sources) + f" ({kinds.pop()})"
        else:
            cams = ", ".join(f"{s['camera']} ({_kind(s)})" for s in p.sources)
        print(f"handstream serve: {len(p.sources)} cameras: {cams}; {p.fps:g} fps", file=sys.stderr)
        print(
            f"handstream serve: poses on {cfg.endpoints.poses} "
            f"(handstream subscribe -e {cfg.endpoints.poses}); Ctrl-C stops",
            file=sys.stderr,
        )

    with _RenderProgress(quiet) as progress:
        code = serve(cfg, seconds=seconds, on_status=_status_printer(quiet), on_start=started, progress=progress)
    if not quiet and sys.stderr.isatty():
        sys.stderr.write("\n")
    raise typer.Exit(code)


def subscribe_command(
    endpoint: str = typer.Option(DEFAULT_POSE_ENDPOINT, "--endpoint", "-e", help="The engine's pose socket."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per pose on stdout."),
    record: Path = typer.Option(None, "--record", help="Also write every pose to this file (JSON lines)."),
    count: int = typer.Option(None, "--count", "-n", help="Stop after this many poses."),
    seconds: float = typer.Option(None, "--seconds", help="Stop after this many seconds."),
    timeout: float = typer.Option(None, "--timeout", help="Stop when no pose arrives for this many seconds."),
    curve_dir: Path = typer.Option(None, "--curve-dir", help="CURVE key folder, when the engine uses CURVE."),
) -> None:
    """Print the poses a running engine publishes (and optionally record them).

    Examples:
      handstream subscribe
      handstream subscribe --json -n 100 > poses.jsonl
      handstream subscribe --record session.jsonl --seconds 60
    """
    from handstream.client import describe, pose_to_dict
    from handstream.transport.pubsub import PoseSubscriber, curve_config

    sub = PoseSubscriber(endpoint, curve=curve_config(curve_dir))
    out = None
    if record is not None:
        try:
            out = record.open("w")
        except OSError as exc:
            sub.close()
            raise HandstreamError(f"{record}: cannot write ({exc.strerror})") from None
    n = 0
    t0 = time.monotonic()
    last = t0
    try:
        while True:
            if seconds is not None and time.monotonic() - t0 >= seconds:
                break
            msg = sub.recv(timeout_ms=100)
            now = time.monotonic()
            if msg is None:
                if timeout is not None and now - last >= timeout:
                    print(f"handstream subscribe: no pose for {timeout:g} s on {endpoint}", file=sys.stderr)
                    break
                continue
            last = now
            t_recv = time.time_ns()
            if as_json or out is not None:
                line = json.dumps(pose_to_dict(msg, t_recv), separators=(",", ":"))
                if out is not None:
                    out.write(line + "\n")
                if as_json:
                    print(line, flush=True)
            if not as_json:
                print(describe(msg, t_recv), flush=True)
            n += 1
            if count is not None and n >= count:
                break
    except KeyboardInterrupt:
        pass
    except BrokenPipeError:  # e.g. piped into `head`
        pass
    finally:
        sub.close()
        if out is not None:
            out.close()
            print(f"handstream subscribe: {n} poses written to {record}", file=sys.stderr)


def keys_command(
    directory: Path = typer.Argument(..., help="Folder for the key files (created)."),
) -> None:
    """Create CURVE keys for serving beyond this host (engine = server, captures/subscribers = clients).

    Example: handstream keys ~/.handstream/keys  then  serve with [endpoints] curve_dir = "~/.handstream/keys"
    """
    from handstream.transport.pubsub import generate_keys

    generate_keys(directory)
    print(f"wrote CURVE keys to {directory}: server.key(_secret), client.key(_secret), authorized_clients/")
