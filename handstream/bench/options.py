"""The benchmark's options (:class:`BenchOptions`, checked in one place) and the names it reports: stages, labels,
resolutions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from handstream.errors import HandstreamError

LIVE_STAGES = (
    "transport_in", "sync", "acquire", "preprocess", "infer", "decode", "refine", "triangulate", "smooth",
    "transport_out",
)  # fmt: skip
"""Per-pose stages of the live system, in order (``transport_out`` = subscriber receive - publish stamp)."""


PIPELINE_STAGES = ("acquire", "preprocess", "infer", "decode", "refine", "triangulate", "smooth")
"""Stages of :meth:`Pipeline.process` (the in-process run). Path-dependent: ``acquire`` (the detector) only on
the tracked path's acquisition frame sets, ``refine`` only on the detect-every-frame path."""


STAGE_LABELS = {
    "end_to_end": "end to end (capture -> received)",
    "transport_in": "transport in (+ queue wait)",
    "sync": "sync wait",
    "acquire": "acquire (detector)",
    "preprocess": "preprocess",
    "infer": "infer",
    "decode": "decode",
    "triangulate": "triangulate",
    "smooth": "smooth",
    "transport_out": "publish + transport out",
    "residual": "capture read + engine loop",
    "total": "pipeline total",
    "outside_pipeline": "outside the pipeline stages",
}


SHORT_LABELS = {
    "end_to_end": "end to end", "transport_in": "transport in", "sync": "sync wait", "preprocess": "preprocess",
    "infer": "infer", "decode": "decode", "refine": "refine", "triangulate": "triangulate", "smooth": "smooth",
    "transport_out": "publish + out", "residual": "residual", "acquire": "acquire",
}  # fmt: skip


RESOLUTIONS = {"qvga": (320, 240), "vga": (640, 480), "svga": (800, 600), "hd": (1280, 720), "fhd": (1920, 1080)}
"""Named resolutions ``--resolution`` accepts besides ``WxH`` and ``native``."""


SWEEP_VIEWS = (2, 4, 8)


SWEEP_WARMUP_CALLS = 3


SWEEP_SETTLE = 30
"""Sweep: untimed calls before the window (warm-up), then at most this many more until both hands are tracked."""


SWEEP_RESOLUTIONS = ((320, 240), (640, 480), (1280, 720))


RANDOM_MODEL = "random-init"
"""``--model random-init``: a randomly initialised HandNet exported to ONNX (same architecture, meaningless
outputs): for timing before a trained model exists. Needs torch."""


JSON_NAME, PNG_NAME = "latency.json", "latency.png"


SCHEMA_VERSION = 1


@dataclass
class BenchOptions:
    """Everything one benchmark invocation needs (the CLI flags, one to one).

    Attributes:
        seconds: measured duration of the live run, s (after the warm-up).
        warmup: seconds of poses discarded after the first one.
        cameras: camera count of the live run (>= 2; None: 4, or the number of videos).
        resolution: (width, height) of every camera, pixels; None: the rig's own; ``"auto"``: 640x480 for
            pre-rendered synthetic frames, else the rig's own.
        fps: camera rate, frames/s (video source: None = the files').
        backend / model / threads: the estimator (``model`` None: the shipped default; ``"random-init"``).
        refiner: the refine stage's model (``"default"``: the detector's own or the shipped refiner, see
            :func:`~handstream.models.defaults.default_refiner`; ``"none"``: no refine stage).
        palm_detector: an imported palm detector for acquisition by search (``model.palm_detector``; None: none).
        tracking: the live run and the first in-process run use the tracked path (the engine's default); the
            detect-every-frame path is measured in process beside it. False: the detect-every-frame path only.
        max_views_per_hand: the tracked path's crops per hand and frame set.
        source: ``synthetic`` (pre-rendered frames of :func:`bench_rig`) or ``video`` (``videos`` +
            ``calibration``, ``unit_scale``).
        rig: the synthetic rig preset the cameras are taken from (``headset4``, ``stereo``, ``random-<seed>``).
        live_render: synthetic only: each capture process renders its camera live (as ``serve --demo``),
            instead of playing pre-rendered frames; needs the preset's own cameras and resolution.
        loop_frames: frame sets rendered (or decoded) once and played in a loop by the captures.
        inprocess_seconds: duration of the paced in-process run (None: half of ``seconds``, at least 2 s).
        sweep / sweep_views / sweep_resolutions / sweep_calls: the in-process sweep.
        sweep_settle: sweep: at most this many frame sets skipped (after the warm-up) until both hands are
            tracked, before the timed calls.
        compare: peers to time (``("mediapipe",)``); mediapipe_model: the hand landmarker ``.task`` bundle.
        compare_frames: multi-view frames timed with each peer.
        transport: ``tcp`` (loopback, free ports) or ``ipc`` (sockets in a temporary folder).
        thumbnails: the bench's subscriber also asks for the engine's camera thumbnails (``frame.*``), as
            ``handstream view --include-2d`` does; without one the engine makes none.
        out: folder for ``latency.json`` and ``latency.png`` (None: write nothing).
        seed: synthetic scene seed.
    """

    seconds: float = 20.0
    warmup: float = 3.0
    cameras: int | None = None
    resolution: tuple[int, int] | str | None = "auto"
    fps: float | None = 30.0
    backend: str = "auto"
    model: str | None = None
    refiner: str = "default"
    palm_detector: str | None = None
    tracking: bool = True
    max_views_per_hand: int = 2
    threads: int = 0
    source: str = "synthetic"
    videos: list[str] = field(default_factory=list)
    calibration: str | None = None
    unit_scale: float | None = None
    rig: str = "headset4"
    live_render: bool = False
    loop_frames: int = 90
    inprocess_seconds: float | None = None
    sweep: bool = False
    sweep_views: tuple[int, ...] = SWEEP_VIEWS
    sweep_resolutions: tuple[tuple[int, int], ...] = SWEEP_RESOLUTIONS
    sweep_calls: int = 30
    sweep_settle: int = SWEEP_SETTLE
    compare: tuple[str, ...] = ()
    mediapipe_model: str | None = None
    compare_frames: int = 60
    transport: str = "tcp"
    thumbnails: bool = False
    out: str | None = "handstream-bench"
    seed: int = 0


def parse_resolution(text: str | None, option: str = "--resolution") -> tuple[int, int] | None:
    """``"640x480"`` / ``"vga"`` / ``"native"`` -> (640, 480) / (640, 480) / None."""
    if text is None:
        return None
    key = text.strip().lower()
    if key == "native":
        return None
    if key in RESOLUTIONS:
        return RESOLUTIONS[key]
    parts = key.split("x")
    if len(parts) == 2 and all(p.isdigit() for p in parts):
        w, h = int(parts[0]), int(parts[1])
        if 16 <= w <= 8192 and 16 <= h <= 8192:
            return w, h
    names = ", ".join(RESOLUTIONS)
    raise HandstreamError(f"{option}: expected WxH (16-8192 each), native or one of {names}; got {text!r}")


def check_options(o: BenchOptions) -> None:
    """Validate ``o`` and fill its automatic defaults (``cameras``, ``resolution``) in place."""
    if o.resolution == "auto":
        o.resolution = (640, 480) if o.source == "synthetic" and not o.live_render else None
    elif isinstance(o.resolution, str):
        o.resolution = parse_resolution(o.resolution)
    if o.cameras is None:
        o.cameras = len(o.videos) if o.source == "video" else 4

    def need(ok: bool, message: str) -> None:
        if not ok:
            raise HandstreamError(message)

    need(o.seconds > 0, f"--seconds: expected a positive number, got {o.seconds}")
    need(o.warmup >= 0, f"--warmup: expected a number >= 0, got {o.warmup}")
    need(o.fps is None or 0 < o.fps <= 1000, f"--fps: expected a number in (0, 1000], got {o.fps}")
    need(o.source in ("synthetic", "video"), f"--source: expected synthetic or video, got {o.source!r}")
    need(
        o.backend in ("auto", "onnxruntime", "torch", "tensorrt"),
        f"--backend: expected auto, onnxruntime, torch or tensorrt, got {o.backend!r}",
    )
    need(o.threads >= 0, f"--threads: expected an integer >= 0, got {o.threads}")
    need(o.loop_frames >= 1, f"--loop-frames: expected an integer >= 1, got {o.loop_frames}")
    need(
        o.inprocess_seconds is None or o.inprocess_seconds > 0,
        f"--inprocess-seconds: expected a positive number, got {o.inprocess_seconds}",
    )
    need(o.sweep_calls >= 1, f"--sweep-calls: expected an integer >= 1, got {o.sweep_calls}")
    need(o.sweep_settle >= 0, f"--sweep-settle: expected an integer >= 0, got {o.sweep_settle}")
    need(
        2 <= o.max_views_per_hand <= 16,
        f"--max-views-per-hand: expected an integer in 2..16 (at least engine.min_views), got {o.max_views_per_hand}",
    )
    need(o.compare_frames >= 1, f"--compare-frames: expected an integer >= 1, got {o.compare_frames}")
    need(o.transport in ("tcp", "ipc"), f"--transport: expected tcp or ipc, got {o.transport!r}")
    for peer in o.compare:
        need(peer == "mediapipe", f"--compare: expected mediapipe, got {peer!r}")
    for v in o.sweep_views:
        need(1 <= v <= 16, f"--sweep-views: expected view counts in 1..16, got {v}")
    if o.source == "video":
        need(bool(o.videos), "--video: --source video needs one --video per camera")
        need(o.calibration is not None, "--calibration: --source video needs the cameras' calibration")
        need(
            o.resolution is None, "--resolution: videos are played at their own size (drop --resolution or pass native)"
        )
        need(not o.live_render, "--live-render: only for --source synthetic")
        for v in o.videos:
            need(Path(v).is_file(), f"--video: {v}: video file not found")
        need(Path(o.calibration).is_file(), f"--calibration: {o.calibration}: file not found")
        need(
            o.cameras is None or o.cameras == len(o.videos),
            f"--cameras: {o.cameras} cameras but {len(o.videos)} --video files",
        )
        need(len(o.videos) >= 2, f"--video: triangulation needs at least 2 cameras, got {len(o.videos)} video(s)")
    else:
        need(not o.videos and o.calibration is None, "--video/--calibration: only with --source video")
        need(
            o.cameras is not None and 2 <= o.cameras <= 16,
            f"--cameras: the live system needs 2..16 cameras, got {o.cameras}",
        )
        from handstream.synth.rigs import get_preset

        base = get_preset(o.rig)  # raises for an unknown preset
        if o.live_render:
            size = base.rig[0].size
            need(
                o.cameras <= len(base.rig),
                f"--live-render: preset {o.rig} has {len(base.rig)} cameras, --cameras asks for {o.cameras}",
            )
            need(o.resolution is None or tuple(o.resolution) == size,
                 f"--live-render: captures render {o.rig} at its own {size[0]}x{size[1]}; "
                 "pass --resolution native")  # fmt: skip
