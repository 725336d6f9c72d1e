"""The latency benchmark: the live system end to end, the same pipeline in-process, a sweep, a peer.

``handstream bench`` and ``benchmarks/latency.py`` both call :func:`run_bench`. One invocation:

1. **frames**: synthetic frame sets rendered once before anything is timed (a rig of ``cameras`` views at
   ``resolution``, built from a preset by :func:`bench_rig`), or the first frames of recorded videos;
2. **live**: the real system (:class:`handstream.serve.Supervisor`: one capture process per camera playing
   those frames at ``fps`` from files, the engine process, ZeroMQ sockets) and a subscriber in this process.
   After ``warmup`` seconds it records, per pose, the end-to-end latency (receive time - capture time) and
   every stage (``PoseMessage.timings`` + transport out = receive - publish time); the status messages give
   the drops, by place; ``/proc`` (or psutil) gives CPU and memory per process;
3. **in-process**: :class:`handstream.engine.pipeline.Pipeline` on the same frames, paced at ``fps``, no
   sockets, no other process: live minus in-process is the transport's share, measured side by side; both
   engine paths (tracked, detect every frame), the live run's first, side by side with their ratio;
4. optional **sweep** over views (2, 4, 8) x resolutions (in-process, back to back, both paths, the tracked
   one once both hands are tracked), and the **MediaPipe** hand landmarker (VIDEO mode, one landmarker per
   view, views one after the other);
5. the report: a dict (written as JSON with :func:`handstream.machine.describe_machine`), a terminal
   table (:func:`print_report`) and a PNG (:func:`write_png`).

Units: every time is in milliseconds (``*_ms``) unless named ``*_ns`` / ``*_s``; memory in MiB; CPU in
percent of one core (200 = two cores busy). Nothing here asserts a speed: targets are reported as met or not.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from handstream import records
from handstream.capture.material import FrameSets, read_video_frames, render_frames, write_image_folders
from handstream.errors import HandstreamError
from handstream.mediapipe import DEFAULT_LANDMARKER, mediapipe_unavailable, native_stderr_silenced
from handstream.skeleton import HANDS

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


# --- options --------------------------------------------------------------------------------------------


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


def _check_options(o: BenchOptions) -> None:
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


# --- rigs and frames ------------------------------------------------------------------------------------


def _rot_y(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def resize_camera(cam, size: tuple[int, int]):
    """The same camera imaging at another resolution: intrinsics scaled per axis (pixel centres kept),
    distortion unchanged (it acts on normalised coordinates). ``size`` is (width, height) in pixels."""
    w, h = size
    sx, sy = w / cam.size[0], h / cam.size[1]
    K = np.array(cam.K, dtype=float).copy()
    K[0, 0] *= sx
    K[0, 1] *= sx
    K[0, 2] = (K[0, 2] + 0.5) * sx - 0.5
    K[1, 1] *= sy
    K[1, 2] = (K[1, 2] + 0.5) * sy - 0.5
    return dataclasses.replace(cam, size=(int(w), int(h)), K=K)


def bench_rig(views: int, size: tuple[int, int] | None = (640, 480), base: str = "headset4", fps: float | None = None):
    """A synthetic rig of ``views`` cameras for benchmarks (a :class:`~handstream.synth.rigs.RigPreset`).

    Views ``0..n-1`` of the ``base`` preset, in order; beyond the preset's count, copies of its cameras
    yawed by +-12, +-24 ... degrees about the headset's vertical axis and 1.5 cm lower per copy, so that 8
    views of ``headset4`` are 8 distinct head-mounted cameras that all see the hands. ``size`` (width,
    height) rescales every camera's intrinsics (None: the preset's own); ``fps`` overrides the preset's.
    """
    from handstream.geometry import Rig
    from handstream.synth.rigs import RigPreset, get_preset

    if views < 1:
        raise HandstreamError(f"bench rig: expected at least 1 view, got {views}")
    preset = get_preset(base)
    cams = list(preset.rig)
    out = []
    for i in range(views):
        cam = cams[i % len(cams)]
        k = i // len(cams)
        if k:
            yaw = math.radians(12.0 * ((k + 1) // 2)) * (1 if k % 2 else -1)
            center = np.asarray(cam.center) + np.array([0.0, 0.015 * k, 0.0])
            R = np.asarray(cam.R) @ _rot_y(yaw).T
            cam = dataclasses.replace(cam, name=f"{cam.name}-{k}", R=R, t=-R @ center)
        if size is not None:
            cam = resize_camera(cam, size)
        out.append(cam)
    w, h = out[0].size
    same = all(c.size == out[0].size for c in out)
    label = f"{views}x{w}x{h}" if same else f"{views} views"
    return RigPreset(
        f"bench-{base}-{label}",
        Rig(out),
        fps=float(fps or preset.fps),
        color=preset.color,
        workspace=preset.workspace,
        description=f"{views} cameras from {base}" + (f" at {w}x{h}" if same else ""),
    )


# --- measurement helpers ---------------------------------------------------------------------------------


def summarize(values: Sequence[float] | np.ndarray) -> dict[str, float | int | None]:
    """``n``, ``mean``, ``p50``, ``p90``, ``p99``, ``max``, ``min`` of finite values (None when there are none)."""
    a = np.asarray(values, dtype=float)
    a = a[np.isfinite(a)]
    if a.size == 0:
        return {"n": 0, "mean": None, "p50": None, "p90": None, "p99": None, "max": None, "min": None}
    p50, p90, p99 = np.percentile(a, [50, 90, 99])
    return {
        "n": int(a.size),
        "mean": round(float(a.mean()), 4),
        "p50": round(float(p50), 4),
        "p90": round(float(p90), 4),
        "p99": round(float(p99), 4),
        "max": round(float(a.max()), 4),
        "min": round(float(a.min()), 4),
    }


def free_tcp_port() -> int:
    """A free port on 127.0.0.1 (the OS's choice)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def process_sample(pid: int) -> dict[str, float] | None:
    """CPU time (``cpu_s``, user + system, s) and resident memory (``rss_mb``, MiB) of a process, from psutil
    when installed, else ``/proc/<pid>/stat`` and ``/proc/<pid>/status``; None when it is gone/unreadable."""
    try:
        import psutil  # optional
    except ImportError:
        psutil = None
    if psutil is not None:
        try:
            p = psutil.Process(pid)
            t = p.cpu_times()
            return {"cpu_s": float(t.user + t.system), "rss_mb": p.memory_info().rss / 2**20}
        except psutil.Error:
            return None
    try:
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        cpu = (int(stat[11]) + int(stat[12])) / _TICK  # fields 14, 15: utime, stime
        rss = 0.0
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) / 1024.0
                break
        return {"cpu_s": cpu, "rss_mb": rss}
    except (OSError, IndexError, ValueError):
        return None


def machine_cpu_sample() -> tuple[float, float] | None:
    """(busy, total) CPU seconds of the whole machine since boot, all cores (``/proc/stat``); None if unavailable."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError, IndexError):
        return None
    total = sum(fields[:8])  # user nice system idle iowait irq softirq steal (guest is inside user)
    idle = fields[3] + fields[4]
    return (total - idle) / _TICK, total / _TICK


class ProcessMonitor:
    """CPU% and RSS of named processes over a window: :meth:`start`, :meth:`sample` (every ~0.5 s), :meth:`stop`."""

    def __init__(self) -> None:
        self.first: dict[str, tuple[int, dict[str, float], float]] = {}
        self.last: dict[str, tuple[int, dict[str, float], float]] = {}
        self.rss: dict[str, list[float]] = {}
        self.machine0: tuple[float, float] | None = None
        self.machine1: tuple[float, float] | None = None
        self.restarted: set[str] = set()

    def sample(self, pids: dict[str, int]) -> None:
        now = time.monotonic()
        for name, pid in pids.items():
            s = process_sample(pid)
            if s is None:
                continue
            if name not in self.first:
                self.first[name] = (pid, s, now)
            elif self.first[name][0] != pid:
                self.restarted.add(name)
                self.first[name] = (pid, s, now)
            self.last[name] = (pid, s, now)
            self.rss.setdefault(name, []).append(s["rss_mb"])

    def start(self, pids: dict[str, int]) -> None:
        self.machine0 = machine_cpu_sample()
        self.sample(pids)

    def stop(self, pids: dict[str, int]) -> None:
        self.sample(pids)
        self.machine1 = machine_cpu_sample()

    def report(self) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
        """(per process: pid, cpu_percent (of one core), rss_mb_mean, rss_mb_max, window_s; machine: busy
        cores, cores busy with other work)."""
        procs: dict[str, dict[str, Any]] = {}
        ours = 0.0
        for name, (_, s0, t0) in self.first.items():
            pid1, s1, t1 = self.last[name]
            dt = t1 - t0
            cpu = 100.0 * (s1["cpu_s"] - s0["cpu_s"]) / dt if dt > 0 else None
            ours += (cpu or 0.0) / 100.0
            rss = self.rss.get(name, [])
            procs[name] = {
                "pid": pid1,
                "cpu_percent": None if cpu is None else round(cpu, 1),
                "rss_mb_mean": round(float(np.mean(rss)), 1) if rss else None,
                "rss_mb_max": round(float(np.max(rss)), 1) if rss else None,
                "window_s": round(dt, 2),
                "restarted": name in self.restarted,
            }
        machine: dict[str, Any] = {"busy_cores": None, "other_busy_cores": None}
        if self.machine0 and self.machine1:
            busy = self.machine1[0] - self.machine0[0]
            total = self.machine1[1] - self.machine0[1]
            cores = os.cpu_count() or 1
            if total > 0:
                busy_cores = cores * busy / total
                machine = {
                    "busy_cores": round(busy_cores, 2),
                    "other_busy_cores": round(max(0.0, busy_cores - ours), 2),
                }
        return procs, machine


def _other_load_now(seconds: float = 1.0) -> float | None:
    """Cores busy on this machine over ``seconds`` (nothing of ours running): the background load."""
    a = machine_cpu_sample()
    time.sleep(seconds)
    b = machine_cpu_sample()
    if a is None or b is None or b[1] <= a[1]:
        return None
    return round((os.cpu_count() or 1) * (b[0] - a[0]) / (b[1] - a[1]), 2)


# --- the model ----------------------------------------------------------------------------------------


def resolve_model(model: str | None, tmp: Path) -> tuple[Path, str]:
    """(path of the artifact, label). None: the shipped default; ``random-init``: a random HandNet exported
    to ONNX in ``tmp`` (timing only); else a path (must exist)."""
    from handstream.models.defaults import DEFAULT_MODEL

    if model == RANDOM_MODEL:
        try:
            import torch

            from handstream.export import export_onnx
            from handstream.models.network import HandNet
        except ImportError as exc:
            raise HandstreamError(
                f"--model {RANDOM_MODEL}: needs torch and onnx (pip install 'handstream[train]'): {exc}"
            ) from None
        torch.manual_seed(0)
        path = tmp / "random-init.onnx"
        export_onnx(HandNet(), path, name=RANDOM_MODEL)
        return path, f"{RANDOM_MODEL} (random weights: timings only)"
    path = Path(model) if model is not None else DEFAULT_MODEL
    if not path.exists():
        if model is None:
            raise HandstreamError(
                f"--model: the shipped model {path} is missing from this checkout; pass --model PATH "
                f"or --model {RANDOM_MODEL} (random weights, same architecture: timings only)"
            )
        raise HandstreamError(f"--model: {path}: model not found")
    return path.resolve(), str(path)


# --- live ----------------------------------------------------------------------------------------------


@dataclass
class LiveRecord:
    """Per-pose figures of the live run (arrays of one value per pose received in the window).

    Attributes:
        seq: pose sequence numbers; views: views in each frame set; end_to_end: receive - capture, ms;
        stages: stage name -> ms (``LIVE_STAGES``); t_recv_s: receive time since the window began, s.
    """

    seq: list[int] = field(default_factory=list)
    views: list[int] = field(default_factory=list)
    end_to_end: list[float] = field(default_factory=list)
    stages: dict[str, list[float]] = field(default_factory=lambda: {s: [] for s in LIVE_STAGES})
    t_recv_s: list[float] = field(default_factory=list)

    def add(self, pose, t_recv_ns: int, t0_ns: int) -> None:
        self.seq.append(int(pose.seq))
        self.views.append(len(pose.views))
        self.end_to_end.append((t_recv_ns - pose.t_capture_ns) * 1e-6)
        self.t_recv_s.append((t_recv_ns - t0_ns) * 1e-9)
        for s in LIVE_STAGES:
            if s == "transport_out":
                v = (t_recv_ns - pose.t_publish_ns) * 1e-6 if pose.t_publish_ns else float("nan")
            else:
                v = float(pose.timings.get(s, float("nan")))
            self.stages[s].append(v)


def _counter_delta(a: Any, b: Any) -> Any:
    """b - a for nested dicts of counters (keys missing in ``a`` count from 0)."""
    if isinstance(b, dict):
        a = a if isinstance(a, dict) else {}
        return {k: _counter_delta(a.get(k), v) for k, v in b.items()}
    if isinstance(b, (int, float)) and not isinstance(b, bool):
        return b - (a if isinstance(a, (int, float)) and not isinstance(a, bool) else 0)
    return b


def drops_from_status(start: dict[str, dict], end: dict[str, dict], window_s: float | None) -> dict[str, Any]:
    """Frames lost, by place, between two snapshots of the status messages (process -> data).

    Returns ``capture_queue_full`` / ``capture_skipped`` / ``capture_sent`` / ``capture_fps`` (per camera),
    ``engine_superseded`` (frames replaced by a newer one before the engine took them: the engine was busy),
    ``receiver_invalid`` (by reason), ``receiver_missed`` (sequence gaps), ``sync`` (``stale``, ``unmatched``,
    ``late``, ``incomplete``, ``sets``), ``engine_dropped_frames`` (``size``, ``error``) and ``frames_dropped``
    (their sum over frames, the one number), ``window_s`` (between the two engine snapshots).
    """
    out: dict[str, Any] = {"capture_queue_full": {}, "capture_skipped": {}, "capture_sent": {}, "capture_fps": {}}
    for name, data in end.items():
        if name == "engine":
            continue
        d = _counter_delta(start.get(name, {}), data)
        cam = str(data.get("camera", name))
        out["capture_queue_full"][cam] = int(d.get("dropped", 0))
        out["capture_skipped"][cam] = int(d.get("skipped", 0))
        out["capture_sent"][cam] = int(d.get("sent", 0))
        out["capture_fps"][cam] = data.get("fps")
    e = _counter_delta(start.get("engine", {}), end.get("engine", {}))
    recv = e.get("receiver", {}) or {}
    sync = e.get("sync", {}) or {}
    out["engine_superseded"] = int(recv.get("superseded", 0))
    out["receiver_invalid"] = {k: int(v) for k, v in (recv.get("dropped", {}) or {}).items()}
    out["receiver_missed"] = int(recv.get("missed", 0))
    out["sync"] = {k: int(sync.get(k, 0)) for k in ("sets", "stale", "unmatched", "late", "incomplete")}
    out["engine_dropped_frames"] = {k: int(v) for k, v in (e.get("dropped_frames", {}) or {}).items()}
    out["frames_dropped"] = int(
        sum(out["capture_queue_full"].values())
        + out["engine_superseded"]
        + sum(out["receiver_invalid"].values())
        + out["receiver_missed"]
        + out["sync"]["stale"]
        + out["sync"]["unmatched"]
        + out["sync"]["late"]
        + sum(out["engine_dropped_frames"].values())
    )
    out["frames_skipped_by_captures"] = int(sum(out["capture_skipped"].values()))
    out["window_s"] = window_s
    return out


def run_live(
    config,
    *,
    seconds: float,
    warmup: float,
    log: Callable[[str], None],
    startup_timeout_s: float = 120.0,
) -> dict[str, Any]:
    """Start the system of ``config`` (a :class:`handstream.config.ServeConfig`), measure, stop it.

    Returns ``poses``, ``pose_rate`` (/s), ``window_s``, ``complete_sets`` (fraction of poses with every
    view), ``subscriber_missed`` (sequence gaps at the subscriber), ``latency_ms`` (stage -> summary, with
    ``end_to_end`` and ``residual``), ``drops`` (:func:`drops_from_status`), ``processes`` and ``machine``
    (:class:`ProcessMonitor`), ``samples`` (per-pose arrays), ``startup_s``, ``engine_status`` (the last
    ``status.engine``: counters since start) and ``tracking`` (its tracker counters over the window, by
    :func:`tracking_delta`; None when the engine does not track).
    """
    from handstream.poses import PoseMessage
    from handstream.serve import Supervisor, plan
    from handstream.transport.pubsub import PoseSubscriber
    from handstream.transport.wire import StatusMessage

    p = plan(config)
    sup = Supervisor(p)
    result: dict[str, Any] = {}
    codes: list[int] = []

    def body() -> None:
        try:
            codes.append(sup.run())
        except BaseException as exc:  # surfaced in the main thread
            codes.append(-1)
            result["_error"] = exc

    sub = PoseSubscriber(config.endpoints.poses, status=True)
    thread = threading.Thread(target=body, name="handstream-supervisor", daemon=True)
    statuses: dict[str, dict[str, Any]] = {}
    status_t: dict[str, int] = {}

    def take(msg) -> None:
        if isinstance(msg, StatusMessage):
            key = "engine" if msg.process == "engine" else str(msg.data.get("camera", msg.process))
            statuses[key] = msg.data
            status_t[key] = msg.t_send_ns

    def alive() -> None:
        if not thread.is_alive():
            err = result.get("_error")
            raise HandstreamError(
                f"the live system stopped early (exit code {codes[0] if codes else '?'}){f': {err}' if err else ''}"
            )

    t_start = time.monotonic()
    thread.start()
    try:
        first = None
        while first is None:
            alive()
            if time.monotonic() - t_start > startup_timeout_s:
                raise HandstreamError(
                    f"no pose within {startup_timeout_s:.0f} s of starting the live system "
                    "(see the engine's messages above)"
                )
            msg = sub.recv(timeout_ms=200)
            take(msg)
            if isinstance(msg, PoseMessage):
                first = msg
        startup_s = time.monotonic() - t_start
        log(f"first pose after {startup_s:.1f} s; warming up {warmup:g} s")
        t_end = time.monotonic() + warmup
        while time.monotonic() < t_end:
            take(sub.recv(timeout_ms=100))
        t_wait = time.monotonic() + 3.0  # the counters need a status of every process before the window
        while time.monotonic() < t_wait and not ("engine" in statuses and all(c in statuses for c in p.rig.names)):
            take(sub.recv(timeout_ms=100))
        alive()
        # snapshot at the start of the window: the newest status of every process
        start_status = json.loads(json.dumps(statuses))
        start_t = dict(status_t)
        monitor = ProcessMonitor()
        pids = {**sup.pids(), "bench (supervisor + subscriber)": os.getpid()}
        monitor.start(pids)
        rec = LiveRecord()
        log(f"measuring {seconds:g} s")
        t0_ns = time.time_ns()
        t_end = time.monotonic() + seconds
        t_sample = time.monotonic()
        while True:
            now = time.monotonic()
            if now >= t_end:
                break
            msg = sub.recv(timeout_ms=min(100.0, max(1.0, (t_end - now) * 1e3)))
            t_recv = time.time_ns()
            if isinstance(msg, PoseMessage):
                rec.add(msg, t_recv, t0_ns)
            else:
                take(msg)
            if now - t_sample >= 0.5:
                monitor.sample({**sup.pids(), "bench (supervisor + subscriber)": os.getpid()})
                t_sample = now
        window_s = (time.time_ns() - t0_ns) * 1e-9
        monitor.stop({**sup.pids(), "bench (supervisor + subscriber)": os.getpid()})
        alive()
        # the status published at (or just after) the end of the window closes the counters
        t_wait = time.monotonic() + 2 * config.engine.status_interval_s + 0.5
        end_seen = status_t.get("engine", 0)
        while time.monotonic() < t_wait and status_t.get("engine", 0) == end_seen:
            take(sub.recv(timeout_ms=100))
        end_status = json.loads(json.dumps(statuses))
        end_t = dict(status_t)
    finally:
        sup.stop()
        thread.join(10.0)
        sub.close()
    status_window = (end_t.get("engine", 0) - start_t.get("engine", 0)) * 1e-9 if start_t.get("engine") else None
    drops = drops_from_status(start_status, end_status, None if status_window is None else round(status_window, 3))
    gaps = int(sum(max(0, b - a - 1) for a, b in zip(rec.seq, rec.seq[1:], strict=False)))
    e2e = np.asarray(rec.end_to_end)
    stage_sum = (
        np.nansum(np.stack([np.asarray(rec.stages[s]) for s in LIVE_STAGES]), axis=0) if rec.seq else np.zeros(0)
    )
    residual = e2e - stage_sum
    latency = {"end_to_end": summarize(e2e)}
    for s in LIVE_STAGES:
        latency[s] = summarize(rec.stages[s])
    latency["residual"] = summarize(residual)
    compute = (
        np.nansum(np.stack([np.asarray(rec.stages[s]) for s in PIPELINE_STAGES]), axis=0) if rec.seq else np.zeros(0)
    )
    latency["outside_pipeline"] = summarize(e2e - compute)
    processes, machine = monitor.report()
    n_cams = len(p.rig)
    views = np.asarray(rec.views)
    return {
        "startup_s": round(startup_s, 2),
        "window_s": round(window_s, 3),
        "poses": len(rec.seq),
        "pose_rate": round(len(rec.seq) / window_s, 3) if window_s > 0 else None,
        "complete_sets": round(float((views == n_cams).mean()), 4) if views.size else None,
        "mean_views": round(float(views.mean()), 3) if views.size else None,
        "subscriber_missed": gaps,
        "latency_ms": latency,
        "drops": drops,
        "engine_status": end_status.get("engine", {}),
        "tracking": tracking_delta(start_status.get("engine", {}).get("tracking"),
                                   end_status.get("engine", {}).get("tracking")),  # fmt: skip
        "processes": processes,
        "machine": machine,
        "samples": {
            "t_recv_s": [round(x, 4) for x in rec.t_recv_s],
            "seq": rec.seq,
            "views": rec.views,
            "end_to_end_ms": [round(x, 3) for x in rec.end_to_end],
            **{f"{s}_ms": [None if not math.isfinite(x) else round(x, 3) for x in rec.stages[s]] for s in LIVE_STAGES},
        },
    }


# --- in-process -----------------------------------------------------------------------------------------


def run_inprocess(
    pipeline,
    frames: FrameSets,
    *,
    calls: int,
    fps: float | None,
    warmup_calls: int = 5,
) -> dict[str, Any]:
    """Time :meth:`Pipeline.process` on ``frames`` (cycled): ``calls`` timed calls after ``warmup_calls``,
    paced at ``fps`` (a call starts when its frame is due; ``fps`` None: back to back).

    Returns ``calls``, ``latency_ms`` (``total`` = the call's wall time, and each of :data:`PIPELINE_STAGES`),
    ``capacity_fps`` (1000 / mean total: the rate this pipeline could sustain alone), ``samples``.
    """
    period = None if not fps else 1.0 / fps
    t_cap = time.time_ns()
    for i in range(warmup_calls):
        pipeline.process(frames.frames(i), t_cap + i * 33_000_000, {})
    total: list[float] = []
    stages: dict[str, list[float]] = {s: [] for s in PIPELINE_STAGES}
    t_next = time.perf_counter()
    for i in range(calls):
        if period is not None:
            delay = t_next - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            t_next += period
        f = frames.frames(warmup_calls + i)
        t = time.perf_counter()
        msg = pipeline.process(f, time.time_ns(), {})
        total.append((time.perf_counter() - t) * 1e3)
        for s in PIPELINE_STAGES:
            stages[s].append(float(msg.timings.get(s, float("nan"))))
    lat = {"total": summarize(total), **{s: summarize(v) for s, v in stages.items()}}
    lat["outside_pipeline"] = summarize(np.asarray(total) - np.nansum([stages[s] for s in PIPELINE_STAGES], axis=0))
    mean = lat["total"]["mean"]
    return {
        "calls": calls,
        "paced_fps": fps,
        "latency_ms": lat,
        "capacity_fps": round(1000.0 / mean, 2) if mean else None,
        "samples": {
            "total_ms": [round(x, 3) for x in total],
            **{f"{s}_ms": [round(x, 3) for x in v] for s, v in stages.items()},
        },
    }


def tracking_delta(a: dict[str, Any] | None, b: dict[str, Any] | None) -> dict[str, Any] | None:
    """The tracker's counters (``TrackStats.as_dict()``) between two snapshots ``a`` -> ``b``, rates recomputed
    over that span (``a`` None: since start); None when ``b`` is None (no tracker)."""
    if b is None:
        return None
    d = _counter_delta(a or {}, b)
    n = max(int(d.get("frame_sets", 0)), 1)
    d["acquisition_rate"] = round(d.get("acquisitions", 0) / n, 4)
    d["crops_per_frame_set"] = round(d.get("crops", 0) / n, 3)
    return d


def _time_calls(pipeline, frames: FrameSets, indices: Sequence[int], t0_ns: int, period_ns: int) -> dict[str, Any]:
    """Back-to-back :meth:`Pipeline.process` on the frame sets ``indices`` (capture times ``t0_ns + i * period_ns``,
    the frames' own clock, so the tracker predicts across real frame intervals). Returns ``total`` (ms per call),
    ``stages`` (stage -> ms, NaN where it did not run) and ``both_tracked`` (per call: both hands tracked when it
    began, so no acquisition; None without a tracker)."""
    tracker = pipeline.tracker
    total: list[float] = []
    stages: dict[str, list[float]] = {s: [] for s in PIPELINE_STAGES}
    both: list[bool] = []
    for i in indices:
        if tracker is not None:
            both.append(len(tracker.tracks) == len(HANDS))
        t = time.perf_counter()
        msg = pipeline.process(frames.frames(i), t0_ns + i * period_ns, {})
        total.append((time.perf_counter() - t) * 1e3)
        for s in PIPELINE_STAGES:
            stages[s].append(float(msg.timings.get(s, float("nan"))))
    return {"total": total, "stages": stages, "both_tracked": both if tracker is not None else None}


def _cost(total: Sequence[float]) -> dict[str, Any]:
    """Cost per frame set of timed calls: ``calls``, ``total`` (summary, ms), ``capacity_fps`` (1000 / mean)."""
    s = summarize(total)
    return {"calls": s["n"], "total": s, "capacity_fps": round(1000.0 / s["mean"], 2) if s["mean"] else None}


def sweep_config(pipe, dpipe, frames: FrameSets, *, calls: int, settle: int,
                 warmup_calls: int = SWEEP_WARMUP_CALLS) -> dict[str, Any]:  # fmt: skip
    """One sweep configuration on consecutive frame sets (no loop, no wrap), both paths.

    Tracked (``pipe``, with a tracker): frame sets 0, 1, ... are processed untimed until both hands are tracked
    (at least ``warmup_calls``, at most ``warmup_calls + settle``: the acquisition frames of the start), then
    ``calls`` timed. Detect every frame (``dpipe``, or None): ``warmup_calls`` untimed, then the same ``calls``
    frame sets. Without a tracker ``pipe`` is timed like ``dpipe``.

    Returns ``skipped_frame_sets`` (untimed before the window), ``settled`` (both hands tracked when the window
    began; None without a tracker), ``skipped_acquisitions``, ``latency_ms`` (every call of the window: ``total``
    and :data:`PIPELINE_STAGES`), ``capacity_fps``, ``both_tracked`` (:func:`_cost` of the window's calls that
    began with both hands tracked: the steady state), ``tracking`` (counters over the window) and
    ``detect_every_frame`` (``latency_ms``, ``capacity_fps``; None without ``dpipe``).
    """
    period_ns = int(round(1e9 / (frames.fps or 30.0)))
    t0 = time.time_ns()
    tracker = pipe.tracker
    i = 0
    while i < warmup_calls or (tracker is not None and len(tracker.tracks) < len(HANDS) and i < warmup_calls + settle):
        pipe.process(frames.frames(i), t0 + i * period_ns, {})
        i += 1
    before = None if tracker is None else tracker.stats.as_dict()
    window = range(i, i + calls)
    r = _time_calls(pipe, frames, window, t0, period_ns)
    lat = {"total": summarize(r["total"]), **{s: summarize(v) for s, v in r["stages"].items()}}
    row: dict[str, Any] = {
        "skipped_frame_sets": i,
        "settled": None if tracker is None else bool(r["both_tracked"] and r["both_tracked"][0]),
        "skipped_acquisitions": None if before is None else before["acquisitions"],
        "calls": calls,
        "latency_ms": lat,
        "capacity_fps": _cost(r["total"])["capacity_fps"],
        "both_tracked": None,
        "tracking": None if tracker is None else tracking_delta(before, tracker.stats.as_dict()),
        "detect_every_frame": None,
    }
    if tracker is not None:
        row["both_tracked"] = _cost([t for t, b in zip(r["total"], r["both_tracked"], strict=True) if b])
    if dpipe is not None:
        for k in range(warmup_calls):
            dpipe.process(frames.frames(k), t0 + k * period_ns, {})
        d = _time_calls(dpipe, frames, window, t0, period_ns)
        row["detect_every_frame"] = {
            "latency_ms": {"total": summarize(d["total"]), **{s: summarize(v) for s, v in d["stages"].items()}},
            "capacity_fps": _cost(d["total"])["capacity_fps"],
        }
    return row


def run_sweep(backend, engine_cfg, filter_cfg, crop_model, views: Sequence[int], resolutions: Sequence[tuple[int, int]],
              *, base: str, calls: int, seed: int, log: Callable[[str], None], window_refiner=None,
              settle: int = SWEEP_SETTLE) -> list[dict[str, Any]]:  # fmt: skip
    """In-process cost per frame set over views x resolutions, back to back, both paths (:func:`sweep_config`
    on ``warmup + settle + calls`` consecutive rendered frame sets of :func:`bench_rig`). The tracked path uses
    ``crop_model`` (None: the tracked path is not measured and each row is the detect-every-frame path alone);
    the detect-every-frame path uses ``window_refiner`` as its refine stage. One dict per configuration:
    ``views``, ``resolution``, ``path`` (``tracked`` or ``detect_every_frame``: what ``latency_ms`` is), the
    fields of :func:`sweep_config` and ``per_view_ms`` (total p50 / views)."""
    from handstream.engine.pipeline import Pipeline

    out = []
    for res in resolutions:
        for v in views:
            preset = bench_rig(v, res, base)
            frames = render_frames(preset, SWEEP_WARMUP_CALLS + settle + calls, seed)
            detect_cfg = dataclasses.replace(engine_cfg, tracking=False)
            dpipe = Pipeline(preset.rig, backend, detect_cfg, filter_cfg, refiner=window_refiner)
            if crop_model is not None:
                pipe = Pipeline(preset.rig, backend, dataclasses.replace(engine_cfg, tracking=True), filter_cfg,
                                refiner=crop_model)  # fmt: skip
                row = sweep_config(pipe, dpipe, frames, calls=calls, settle=settle)
            else:
                row = sweep_config(dpipe, None, frames, calls=calls, settle=settle)
            p50 = row["latency_ms"]["total"]["p50"]
            row = {"views": v, "resolution": list(res), "path": "tracked" if crop_model is not None else
                   "detect_every_frame", "per_view_ms": round(p50 / v, 3) if p50 else None, **row}  # fmt: skip
            msg = f"sweep {v} view(s) {res[0]}x{res[1]}: p50 {p50:.1f} ms"
            if row["detect_every_frame"] is not None:
                bt = row["both_tracked"]["total"]["p50"]
                msg += (f" tracked ({_fmt(bt)} ms with both hands tracked, {row['skipped_frame_sets']} frame sets "
                        f"skipped), {row['detect_every_frame']['latency_ms']['total']['p50']:.1f} ms detecting "
                        "every frame")  # fmt: skip
            out.append(row)
            log(msg)
    return out


def sweep_ratios(rows: Sequence[dict[str, Any]], num: int = 8, den: int = 4) -> list[dict[str, Any]]:
    """Cost of ``num`` views / ``den`` views (p50 per frame set) per resolution of a sweep, each path:
    ``tracked`` (calls with both hands tracked), ``tracked_all_calls`` (every call of the window, acquisitions
    included), ``detect_every_frame``; None where a figure is missing."""

    def ratio(a: float | None, b: float | None) -> float | None:
        return None if a is None or not b else round(a / b, 3)

    out = []
    for res in dict.fromkeys(tuple(r["resolution"]) for r in rows):
        by = {r["views"]: r for r in rows if tuple(r["resolution"]) == res}
        if num not in by or den not in by:
            continue
        a, b = by[num], by[den]
        tracked = a.get("path") == "tracked"

        def p50(r, *keys):
            for k in keys:
                r = (r or {}).get(k)
            return r

        out.append({
            "resolution": list(res),
            "views": [num, den],
            "tracked": ratio(p50(a, "both_tracked", "total", "p50"), p50(b, "both_tracked", "total", "p50")),
            "tracked_all_calls": ratio(a["latency_ms"]["total"]["p50"], b["latency_ms"]["total"]["p50"])
            if tracked else None,
            "detect_every_frame": ratio(p50(a, "detect_every_frame", "latency_ms", "total", "p50"),
                                        p50(b, "detect_every_frame", "latency_ms", "total", "p50"))
            if tracked else ratio(a["latency_ms"]["total"]["p50"], b["latency_ms"]["total"]["p50"]),
        })  # fmt: skip
    return out


# --- the two engine paths ----------------------------------------------------------------------------------


PATHS = ("tracked", "detect_every_frame")
"""The engine's two paths (``engine.tracking`` true / false), both timed in process by every run."""


def open_path_models(refiner: str, model: Path, backend: str, threads: int,
                     log: Callable[[str], None]) -> tuple[Any, Any]:  # fmt: skip
    """(the tracked path's crop model, the detect-every-frame path's refine stage), opened backends or None.

    ``refiner`` is the ``--refiner`` option: ``none`` -> (None, None): no tracking, detection without a refine
    stage; ``default`` -> each path's own (:func:`~handstream.models.defaults.default_refiner`); a path -> that model
    for both, except that a perspective crop model cannot refine windows: the detect-every-frame path then gets
    its default refiner (said in ``log``)."""
    from handstream.engine.backends import open_backend
    from handstream.models.defaults import default_refiner, refiner_option

    crop_path = refiner_option(refiner, model, tracking=True)
    window_path = refiner_option(refiner, model, tracking=False)
    crop = open_backend(crop_path, backend, threads=threads) if crop_path else None
    window = crop if window_path == crop_path else (open_backend(window_path, backend, threads=threads)
                                                    if window_path else None)  # fmt: skip
    if window is not None and (window.manifest.crop or {}).get("camera") == "perspective":
        fallback = default_refiner(model, tracking=False)
        if fallback is not None and fallback.exists() and fallback.resolve() != window_path:
            log(f"detect-every-frame path: {window_path.name} is a perspective crop model; refining with {fallback}")
            window = open_backend(fallback.resolve(), backend, threads=threads)
        else:
            log(f"detect-every-frame path: {window_path.name} is a perspective crop model; no refine stage")
            window = None
    return crop, window


def path_summary(run: dict[str, Any] | None) -> dict[str, Any] | None:
    """One path's in-process figures, small (no samples): ``p50_ms`` / ``p90_ms`` / ``p99_ms`` / ``mean_ms`` per
    frame set, ``capacity_fps``, ``acquire_p50_ms`` (the detector on the frame sets where it ran), and the
    tracker's ``acquisition_rate``, ``crops_per_frame_set``, ``lost`` (detect every frame: rate 1, crops None)."""
    if run is None:
        return None
    tot = run["latency_ms"]["total"]
    tr = run.get("tracking")
    return {
        "calls": run["calls"],
        "p50_ms": tot["p50"], "p90_ms": tot["p90"], "p99_ms": tot["p99"], "mean_ms": tot["mean"],
        "capacity_fps": run["capacity_fps"],
        "acquire_p50_ms": run["latency_ms"]["acquire"]["p50"] if tr is not None else None,
        "acquisition_rate": tr["acquisition_rate"] if tr is not None else 1.0,
        "crops_per_frame_set": tr["crops_per_frame_set"] if tr is not None else None,
        "lost": tr["lost"] if tr is not None else None,
    }  # fmt: skip


def run_inprocess_paths(rig, backend, engine_cfg, filter_cfg, crop, window, frames: FrameSets, *, calls: int,
                        fps: float | None, live_path: str, log: Callable[[str], None]) -> dict[str, Any]:  # fmt: skip
    """Both engine paths in process on the same frames, paced the same (:func:`run_inprocess`), the live run's
    path (``live_path``) first. Returns path -> run (``tracking``: the tracker's counters, None on the detect
    path; ``processes`` / ``machine`` of the bench process), the tracked path None without a crop model."""
    from handstream.engine.pipeline import Pipeline

    pipes = {"detect_every_frame": Pipeline(rig, backend, dataclasses.replace(engine_cfg, tracking=False),
                                            filter_cfg, refiner=window)}  # fmt: skip
    if crop is not None:
        pipes["tracked"] = Pipeline(rig, backend, dataclasses.replace(engine_cfg, tracking=True), filter_cfg,
                                    refiner=crop)  # fmt: skip
    out: dict[str, Any] = {p: None for p in PATHS}
    for path in sorted(pipes, key=lambda p: p != live_path):
        pipe = pipes[path]
        log(f"in-process pipeline, {path.replace('_', '-')} path: {calls} frame sets paced at {fps:g} fps")
        mon = ProcessMonitor()
        mon.start({"bench (in-process pipeline)": os.getpid()})
        run = run_inprocess(pipe, frames, calls=calls, fps=fps)
        mon.stop({"bench (in-process pipeline)": os.getpid()})
        run["path"] = path
        run["processes"], run["machine"] = mon.report()
        run["tracking"] = None if pipe.tracker is None else pipe.tracker.stats.as_dict()
        out[path] = run
    return out


def compare_paths(runs: dict[str, Any], live_path: str, live_tracking: dict[str, Any] | None) -> dict[str, Any]:
    """The side-by-side report of :func:`run_inprocess_paths`: ``live`` (the live run's path), one
    :func:`path_summary` per path, ``ratio_capacity_tracked_over_detect`` (in-process frame sets per second),
    ``live_tracking`` (the live engine's tracker counters over the measurement window, from ``status.engine``)."""
    tr, de = path_summary(runs.get("tracked")), path_summary(runs.get("detect_every_frame"))
    ratio = None
    if tr and de and tr["capacity_fps"] and de["capacity_fps"]:
        ratio = round(tr["capacity_fps"] / de["capacity_fps"], 3)
    return {"live": live_path, "tracked": tr, "detect_every_frame": de, "ratio_capacity_tracked_over_detect": ratio,
            "live_tracking": live_tracking}  # fmt: skip


def stage_mean_per_frame(summary: dict[str, Any], frames: int) -> float:
    """A stage's mean per frame set (ms) when it ran on only some (``summary['n']`` of ``frames``): the
    ``acquire`` and ``refine`` stages; means per frame set add up, means over the frames a stage ran on do not."""
    if not frames or not summary.get("n") or summary.get("mean") is None:
        return 0.0
    return float(summary["mean"]) * summary["n"] / frames


# --- MediaPipe, the peer (its helpers: handstream.mediapipe) ------------------------------------------------


def run_mediapipe(frames: FrameSets, model: str | Path, *, count: int, handstream_ms: float | None,
                  warmup: int = 5) -> dict[str, Any]:  # fmt: skip
    """Time MediaPipe's HandLandmarker (VIDEO mode, 2 hands) on ``count`` multi-view frames, one landmarker per
    view (each view is its own video stream), the views one after another as a user would have to.

    Per view the time is the grey/BGR -> RGB conversion plus ``detect_for_video``. Returns ``per_view_ms``
    and ``per_frame_ms`` (sum over the views of a frame set) summaries, ``hands_per_view`` (mean hands found:
    MediaPipe's cost depends on it), ``ratio`` (MediaPipe per-frame p50 / ``handstream_ms``: > 1 means
    handstream, producing 3D, is faster) and the versions.
    """
    os.environ.setdefault("GLOG_minloglevel", "2")
    import cv2
    import mediapipe as mp
    from mediapipe.tasks.python import BaseOptions, vision

    opts = vision.HandLandmarkerOptions(
        base_options=BaseOptions(model_asset_path=str(model)), running_mode=vision.RunningMode.VIDEO, num_hands=2
    )
    with native_stderr_silenced():  # TFLite/glog chatter when a landmarker is created
        marks = [vision.HandLandmarker.create_from_options(opts) for _ in frames.cameras]
    period_ms = 1000.0 / (frames.fps or 30.0)
    per_view: list[float] = []
    per_frame: list[float] = []
    hands: list[int] = []
    quiet = native_stderr_silenced()
    quiet.__enter__()  # silenced through the warm-up frames (first inference logs too), restored below
    try:
        for i in range(warmup + count):
            if i == warmup:
                quiet.__exit__(None, None, None)
            ts = int(round(i * period_ms))
            total = 0.0
            for v, img in enumerate(frames.images[i % len(frames)]):
                t = time.perf_counter()
                rgb = cv2.cvtColor(img, cv2.COLOR_GRAY2RGB if img.ndim == 2 else cv2.COLOR_BGR2RGB)
                res = marks[v].detect_for_video(mp.Image(image_format=mp.ImageFormat.SRGB, data=rgb), ts)
                dt = (time.perf_counter() - t) * 1e3
                if i >= warmup:
                    per_view.append(dt)
                    hands.append(len(res.hand_landmarks))
                total += dt
            if i >= warmup:
                per_frame.append(total)
    finally:
        quiet.__exit__(None, None, None)
        for m in marks:
            m.close()
    pf = summarize(per_frame)
    ratio = round(pf["p50"] / handstream_ms, 3) if pf["p50"] and handstream_ms else None
    return {
        "available": True,
        "reason": None,
        "model": str(model),
        "version": getattr(mp, "__version__", None),
        "frames": count,
        "views": len(frames.cameras),
        "per_view_ms": summarize(per_view),
        "per_frame_ms": pf,
        "hands_per_view": round(float(np.mean(hands)), 3) if hands else None,
        "handstream_per_frame_ms": handstream_ms,
        "ratio": ratio,
    }


# --- targets ----------------------------------------------------------------------------------------------


def evaluate_targets(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets against this run: ``name``, ``target``, ``measured``, ``met`` (None: not measured),
    ``applies`` (False when this run's configuration is not the one the target is stated for)."""
    cfg, live = result["config"], result.get("live")
    fps = cfg["fps"]
    interval = 1000.0 / fps if fps else None
    target_cfg = (
        cfg["cameras"] == 4
        and tuple(cfg["resolution"] or ()) in ((640, 480), (636, 480))
        and fps
        and abs(fps - 30) < 0.5
    )
    out = []
    if live:
        rate = live["pose_rate"] or 0.0
        drops = live["drops"]["frames_dropped"] + live["drops"]["frames_skipped_by_captures"]
        out.append({
            "name": "sustained, no drops",
            "target": f"poses/s >= 0.98 x {fps:g} fps and 0 frames dropped in steady state",
            "measured": f"{rate:.2f} poses/s, {drops} frames dropped or skipped",
            "met": bool(rate >= 0.98 * fps and drops == 0),
            "applies": bool(target_cfg),
        })  # fmt: skip
        p99 = live["latency_ms"]["end_to_end"]["p99"]
        out.append({
            "name": "p99 end-to-end latency",
            "target": f"< {interval:.1f} ms (one frame interval)",
            "measured": None if p99 is None else f"{p99:.1f} ms",
            "met": None if p99 is None else bool(p99 < interval),
            "applies": bool(target_cfg),
        })  # fmt: skip
    ov = result.get("transport_overhead_ms")
    if ov and ov.get("per_pose_p50") is not None:
        out.append({
            "name": "transport overhead (median)",
            "target": "< 1 ms (per pose: live end to end - its pipeline stages, vs in-process)",
            "measured": f"{ov['per_pose_p50']:.2f} ms (side by side, difference of medians: "
            f"{_fmt(ov['difference_p50'], 2)} ms)",
            "met": bool(ov["per_pose_p50"] < 1.0),
            "applies": True,
        })  # fmt: skip
    for q in result.get("sweep_ratios") or []:
        if q["tracked"] is None:
            continue
        w, h = q["resolution"]
        out.append({
            "name": f"tracked cost, {q['views'][0]} views / {q['views'][1]} views ({w}x{h})",
            "target": "<= 1.5x (p50 per frame set, both hands tracked, in process)",
            "measured": f"{q['tracked']:.2f}x (detect every frame: {_fmt(q['detect_every_frame'], 2)}x)",
            "met": bool(q["tracked"] <= 1.5),
            "applies": True,
        })  # fmt: skip
    mp_ = (result.get("compare") or {}).get("mediapipe")
    if mp_ and mp_.get("available") and mp_.get("ratio") is not None:
        out.append({
            "name": "faster than MediaPipe view by view",
            "target": "MediaPipe per multi-view frame / handstream per multi-view frame > 1",
            "measured": f"{mp_['ratio']:.2f}x",
            "met": bool(mp_["ratio"] > 1.0),
            "applies": True,
        })  # fmt: skip
    return out


# --- the whole benchmark ----------------------------------------------------------------------------------


def build_live_config(o: BenchOptions, model: Path, rig_file: Path | None, folders: dict[str, Path] | None,
                      cameras: list[str], fps: float | None, tmp: Path, refiner: Path | None = None):  # fmt: skip
    """The :class:`handstream.config.ServeConfig` of the live run."""
    from handstream.config import ServeConfig

    if o.transport == "ipc":
        endpoints = {"frames": f"ipc://{tmp}/frames.sock", "poses": f"ipc://{tmp}/poses.sock"}
    else:
        endpoints = {"frames": f"tcp://127.0.0.1:{free_tcp_port()}", "poses": f"tcp://127.0.0.1:{free_tcp_port()}"}
    data: dict[str, Any] = {
        "model": {"path": str(model), "refiner": str(refiner or ""), "backend": o.backend, "threads": o.threads},
        "engine": {
            "status_interval_s": 0.5, "tracking": o.tracking, "max_views_per_hand": o.max_views_per_hand,
            **({"fps": fps} if fps else {}),
        },  # fmt: skip
        "endpoints": endpoints,
        "supervisor": {"restart": False},
    }
    if o.source == "video":
        data["rig"] = {"calibration": str(Path(o.calibration).resolve()), "cameras": cameras}
        if o.unit_scale is not None:
            data["rig"]["unit_scale"] = o.unit_scale
        data["sources"] = [
            {
                "kind": "video",
                "camera": c,
                "path": str(Path(v).resolve()),
                "loop": True,
                **({"fps": fps} if o.fps else {}),
            }
            for c, v in zip(cameras, o.videos, strict=True)
        ]
    elif o.live_render:
        data["rig"] = {"preset": o.rig, "cameras": cameras}
        data["sources"] = [
            {"kind": "synthetic", "camera": c, "seed": o.seed, "fps": fps, "render": "live", "loop_frames": 0}
            for c in cameras
        ]
    else:
        assert rig_file is not None and folders is not None
        data["rig"] = {"calibration": str(rig_file)}
        data["sources"] = [
            {"kind": "images", "camera": c, "path": str(folders[c]), "loop": True, "fps": fps} for c in cameras
        ]
    return ServeConfig.from_dict(data, "bench")


def run_bench(
    o: BenchOptions, log: Callable[[str], None] | None = None, argv: Sequence[str] | None = None
) -> dict[str, Any]:
    """Run the whole benchmark (see the module docstring); returns the report dict (also written to
    ``o.out``/latency.json with the PNG when ``o.out`` is set).

    Raises:
        HandstreamError: an option or file that is wrong (one line naming it), or a live system that fails.
    """
    from handstream import __version__
    from handstream.engine.backends import open_backend
    from handstream.geometry import load_calibration, save_calibration
    from handstream.machine import describe_machine
    from handstream.models.defaults import refiner_option

    log = log or (lambda s: print(f"bench: {s}", file=sys.stderr, flush=True))
    _check_options(o)
    tmp = Path(tempfile.mkdtemp(prefix="handstream-bench-"))
    try:
        model, model_label = resolve_model(o.model, tmp)
        # the in-process backend first: a model/backend that cannot load fails here, in one line, before any work
        backend = open_backend(model, o.backend, threads=o.threads)
        refiner = refiner_option(o.refiner, model, tracking=o.tracking)  # the live engine's model.refiner
        # both paths are timed in process: the tracked path's crop model, the other path's refine stage
        crop, window_refine = open_path_models(o.refiner, model, o.backend, o.threads, log)
        live_path = "tracked" if o.tracking and crop is not None else "detect_every_frame"
        background = _other_load_now(1.0)
        mp_model = (
            o.mediapipe_model
            if o.mediapipe_model is not None
            else (str(DEFAULT_LANDMARKER) if DEFAULT_LANDMARKER.is_file() else None)
        )

        # -- the frames and the rig
        rig_file = folders = None
        if o.source == "video":
            rig = load_calibration(o.calibration, o.unit_scale)
            if len(rig) < len(o.videos):
                raise HandstreamError(
                    f"--calibration: {o.calibration} has {len(rig)} cameras for {len(o.videos)} videos"
                )
            cameras = list(rig.names[: len(o.videos)])
            rig = rig.subset(cameras)
            log(f"decoding up to {o.loop_frames} frames of {len(o.videos)} videos")
            frames = read_video_frames(o.videos, cameras, o.loop_frames)
            fps = o.fps or frames.fps
            size = rig[0].size
        else:
            preset = bench_rig(o.cameras, o.resolution, o.rig, o.fps)
            fps = preset.fps
            rig, cameras, size = preset.rig, list(preset.rig.names), preset.rig[0].size
            log(f"rendering {o.loop_frames} frame sets of {len(cameras)} views {size[0]}x{size[1]} ({preset.color})")
            frames = render_frames(preset, o.loop_frames, o.seed)
            if not o.live_render:
                rig_file = tmp / "rig.toml"
                save_calibration(rig, rig_file)
                folders = write_image_folders(frames, tmp / "frames")
        frames.fps = fps
        config = build_live_config(o, model, rig_file, folders, cameras, fps, tmp, refiner)
        engine_cfg, filter_cfg = config.engine, config.filter

        result: dict[str, Any] = {
            "schema": SCHEMA_VERSION,
            "handstream": __version__,
            "command": list(argv) if argv is not None else None,
            "machine": describe_machine(
                ["numpy", "onnxruntime", "pyzmq", "opencv-python-headless", "torch", "mediapipe"]
            ),
            "background_busy_cores_before": background,
            "config": {
                "source": o.source,
                "frames": (
                    "videos, played in a loop"
                    if o.source == "video"
                    else (
                        "rendered live by each capture" if o.live_render else "pre-rendered, played from PGM/PPM files"
                    )
                ),
                "rig": o.rig if o.source == "synthetic" else str(o.calibration),
                "cameras": len(cameras),
                "camera_names": cameras,
                "resolution": list(size),
                "fps": fps,
                "backend": o.backend,
                "model": model_label,
                "refiner": str(refiner) if refiner else None,
                "tracking": o.tracking,
                "live_path": live_path,
                "max_views_per_hand": o.max_views_per_hand,
                "acquire_interval": engine_cfg.acquire_interval,
                "crop_model": crop.manifest.name if crop is not None else None,
                "detect_refiner": window_refine.manifest.name if window_refine is not None else None,
                "threads": o.threads,
                "transport": o.transport,
                "seconds": o.seconds,
                "warmup_s": o.warmup,
                "loop_frames": len(frames),
                "seed": o.seed,
            },
        }

        # -- live
        log(f"starting the live system: {len(cameras)} capture processes + engine ({o.backend}), {fps:g} fps")
        live = run_live(config, seconds=o.seconds, warmup=o.warmup, log=log)
        result["live"] = live
        result["config"]["backend_used"] = live["engine_status"].get("backend")

        # -- in-process, same frames: both paths, the live run's first
        in_s = o.inprocess_seconds if o.inprocess_seconds is not None else max(2.0, o.seconds / 2)
        calls = max(10, int(round(in_s * fps)))
        runs = run_inprocess_paths(rig, backend, engine_cfg, filter_cfg, crop, window_refine, frames, calls=calls,
                                   fps=fps, live_path=live_path, log=log)  # fmt: skip
        inproc = runs[live_path]
        result["inprocess"] = inproc
        other = "detect_every_frame" if live_path == "tracked" else "tracked"
        result[f"inprocess_{other}"] = runs[other]
        result["paths"] = compare_paths(runs, live_path, live.get("tracking"))
        if runs["tracked"] is not None:
            runs["detect_every_frame"]["ratio_capacity_tracked_over_detect"] = result["paths"][
                "ratio_capacity_tracked_over_detect"
            ]
        lp, ip = live["latency_ms"], inproc["latency_ms"]
        diff = {}
        for q in ("p50", "p90", "p99"):
            a, b = lp["end_to_end"][q], ip["total"][q]
            diff[f"difference_{q}"] = None if a is None or b is None else round(a - b, 3)
        a, b = lp["outside_pipeline"]["p50"], ip["outside_pipeline"]["p50"]
        diff["per_pose_p50"] = None if a is None or b is None else round(a - b, 3)
        parts = [lp[s]["p50"] for s in ("transport_in", "transport_out")]
        diff["transport_stages_p50"] = None if None in parts else round(sum(parts), 3)
        live_compute = sum(stage_mean_per_frame(lp[s], live["poses"]) for s in PIPELINE_STAGES)
        diff["live_compute_mean"] = round(live_compute, 3)
        diff["inprocess_compute_mean"] = ip["total"]["mean"]
        result["transport_overhead_ms"] = diff

        # -- peers
        result["compare"] = {}
        if "mediapipe" in o.compare:
            why = mediapipe_unavailable(mp_model)
            if why is None:
                log(f"MediaPipe hand landmarker on {o.compare_frames} frames x {len(cameras)} views")
                try:
                    result["compare"]["mediapipe"] = run_mediapipe(
                        frames, mp_model, count=o.compare_frames, handstream_ms=ip["total"]["p50"]
                    )
                except Exception as exc:  # a broken install or bundle: say why, keep the rest
                    why = f"MediaPipe failed: {type(exc).__name__}: {exc}"
            if why is not None:
                log(f"MediaPipe not compared: {why}")
                result["compare"]["mediapipe"] = {"available": False, "reason": why}

        # -- sweep
        if o.sweep:
            log(
                f"sweep: views {list(o.sweep_views)} x resolutions {[f'{w}x{h}' for w, h in o.sweep_resolutions]}, "
                f"{o.sweep_calls} calls each"
            )
            result["sweep"] = run_sweep(backend, engine_cfg, filter_cfg, crop, o.sweep_views, o.sweep_resolutions,
                                        base=o.rig if o.source == "synthetic" else "headset4", calls=o.sweep_calls,
                                        seed=o.seed, log=log, window_refiner=window_refine,
                                        settle=o.sweep_settle)  # fmt: skip
            result["sweep_ratios"] = sweep_ratios(result["sweep"])
        result["background_busy_cores_after"] = _other_load_now(1.0)
        result["targets"] = evaluate_targets(result)

        if o.out is not None:
            out = Path(o.out)
            out.mkdir(parents=True, exist_ok=True)
            result["files"] = {"json": str(out / JSON_NAME), "png": None}
            try:
                write_png(result, out / PNG_NAME)
                result["files"]["png"] = str(out / PNG_NAME)
            except ImportError:
                log("no PNG: matplotlib is not installed (pip install 'handstream[viz]')")
            write_json(result, out / JSON_NAME)
        return result
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# --- output ----------------------------------------------------------------------------------------------


def write_json(result: dict[str, Any], path: str | Path) -> None:
    """The report as JSON (NaN as null)."""
    records.write_json(result, path, indent=1)


_COLORS = {
    "transport_in": "#8c564b", "sync": "#bcbd22", "preprocess": "#1f77b4", "infer": "#ff7f0e",
    "decode": "#2ca02c", "refine": "#17becf", "acquire": "#393b79", "triangulate": "#d62728", "smooth": "#9467bd",
    "transport_out": "#e377c2", "residual": "#7f7f7f",
}  # fmt: skip


def write_png(result: dict[str, Any], path: str | Path) -> None:
    """Latency distribution (histogram + CDF, live vs in-process) and stacked bars of mean stage times per
    configuration (live, in-process, MediaPipe, the sweep). Matplotlib, Agg canvas (no display needed)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    cfg, live, inproc = result["config"], result.get("live"), result.get("inprocess")
    sweep = result.get("sweep") or []
    fig = Figure(figsize=(14, 9.5), dpi=110)
    FigureCanvasAgg(fig)
    gs = fig.add_gridspec(2, 2, height_ratios=[1, 1.1], hspace=0.35, wspace=0.35)
    m = result["machine"]
    w, h = cfg["resolution"]
    title = (f"handstream bench: {cfg['cameras']} cameras {w}x{h} @ {cfg['fps']:g} fps, "
             f"{cfg.get('backend_used') or cfg['backend']}, {m.get('cpu', '')} ({m.get('cores_usable')} cores), "
             f"{(m.get('date') or '')[:10]}")  # fmt: skip
    fig.suptitle(title, fontsize=10)
    interval = 1000.0 / cfg["fps"]
    series = []
    if live:
        series.append(("live end to end", np.asarray(live["samples"]["end_to_end_ms"], float), "#1f77b4"))
    if inproc:
        series.append((f"in-process, {_path_label(inproc)}", np.asarray(inproc["samples"]["total_ms"], float),
                       "#ff7f0e"))  # fmt: skip
    other = _other_path_run(result)
    if other:
        series.append((f"in-process, {_path_label(other)}", np.asarray(other["samples"]["total_ms"], float),
                       "#2ca02c"))  # fmt: skip
    ax = fig.add_subplot(gs[0, 0])
    finite = [s[1][np.isfinite(s[1])] for s in series]
    hi = max([float(np.percentile(a, 99.5)) for a in finite if a.size] + [interval * 1.1])
    bins = np.linspace(0, hi * 1.05, 60)
    for (name, _, color), a in zip(series, finite, strict=True):
        if a.size:
            ax.hist(np.clip(a, 0, bins[-1]), bins=bins, alpha=0.55, color=color, label=f"{name} (n={a.size})")
    ax.axvline(interval, color="k", ls="--", lw=1, label=f"one frame interval ({interval:.1f} ms)")
    ax.set_xlabel("latency, ms")
    ax.set_ylabel("frame sets")
    ax.set_title("latency distribution", fontsize=10)
    ax.legend(fontsize=8)
    ax = fig.add_subplot(gs[0, 1])
    for k, ((name, _, color), a) in enumerate(zip(series, finite, strict=True)):
        if a.size:
            xs = np.sort(a)
            ax.plot(xs, np.arange(1, xs.size + 1) / xs.size, color=color, label=name)
            for q, mk in ((50, "o"), (99, "^")):
                v = float(np.percentile(a, q))
                ax.plot([v], [q / 100], mk, color=color)
                ax.annotate(
                    f"p{q} {v:.1f}",
                    (v, q / 100),
                    textcoords="offset points",
                    xytext=(6, -12 - 11 * k if q == 50 else 4 - 11 * k),
                    fontsize=8,
                    color=color,
                )
    ax.axvline(interval, color="k", ls="--", lw=1)
    ax.set_xlabel("latency, ms")
    ax.set_ylabel("fraction of frame sets")
    ax.set_ylim(0, 1.02)
    ax.set_title("cumulative distribution", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")

    # stacked bars: mean ms per stage (means add up; medians do not)
    ax = fig.add_subplot(gs[1, 0] if sweep else gs[1, :])
    bars: list[tuple[str, dict[str, float]]] = []
    if live:
        lm = {s: stage_mean_per_frame(live["latency_ms"][s], live["poses"]) for s in LIVE_STAGES}
        lm["residual"] = max(0.0, live["latency_ms"]["residual"]["mean"] or 0.0)
        bars.append((f"live, end to end\n({_path_label(inproc) if inproc else cfg.get('live_path', '')})", lm))
    for run in (inproc, other):
        if run:
            bars.append((f"in-process,\n{_path_label(run)}",
                         {s: stage_mean_per_frame(run["latency_ms"][s], run["calls"]) for s in PIPELINE_STAGES}))
    mp_ = (result.get("compare") or {}).get("mediapipe")
    if mp_ and mp_.get("available"):
        bars.append((f"MediaPipe, {mp_['views']} views\n(2D only)", {"mediapipe": mp_["per_frame_ms"]["mean"] or 0.0}))
    handles = _stacked(ax, bars, interval)
    ax.set_title("where the time goes: mean ms per multi-view frame", fontsize=10)
    if sweep:
        _plot_sweep(fig.add_subplot(gs[1, 1]), sweep, interval)
    order = [s for s in (*LIVE_STAGES, "residual", "mediapipe") if s in handles]
    fig.legend([handles[s] for s in order], [STAGE_LABELS.get(s, "MediaPipe hand landmarker") for s in order],
               loc="lower center", ncol=min(5, len(order)), fontsize=8, frameon=False)  # fmt: skip
    fig.subplots_adjust(bottom=0.12, left=0.13)
    fig.savefig(str(path))


def _path_label(run: dict[str, Any]) -> str:
    return "tracked" if run.get("path", "tracked") == "tracked" and run.get("tracking") is not None else (
        "detect every frame")  # fmt: skip


def _other_path_run(result: dict[str, Any]) -> dict[str, Any] | None:
    """The in-process run of the path the live run did not use (None when it was not measured)."""
    return result.get("inprocess_detect_every_frame") or result.get("inprocess_tracked")


def _plot_sweep(ax, sweep: list[dict[str, Any]], interval: float) -> None:
    """Cost per frame set against views, per resolution: tracked (both hands tracked) solid, detect every frame
    dashed; markers at p50, bars up to p90."""
    colors = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"]
    for k, res in enumerate(dict.fromkeys(tuple(r["resolution"]) for r in sweep)):
        rows = sorted((r for r in sweep if tuple(r["resolution"]) == res), key=lambda r: r["views"])
        color = colors[k % len(colors)]
        for label, get, ls in (
            ("tracked", lambda r: (r.get("both_tracked") or {}).get("total") if r.get("path", "tracked") ==
             "tracked" else None, "-"),
            ("detect every frame", lambda r: (r.get("detect_every_frame") or {}).get("latency_ms", {}).get("total")
             if r.get("path", "tracked") == "tracked" else r["latency_ms"]["total"], "--"),
        ):  # fmt: skip
            pts = [(r["views"], get(r)) for r in rows]
            pts = [(v, s) for v, s in pts if s and s.get("p50") is not None]
            if not pts:
                continue
            xs = np.array([v for v, _ in pts], float)
            p50 = np.array([s["p50"] for _, s in pts])
            p90 = np.array([s["p90"] for _, s in pts])
            ax.errorbar(xs, p50, yerr=[np.zeros_like(p50), np.maximum(p90 - p50, 0)], color=color, ls=ls,
                        marker="o" if ls == "-" else "s", ms=4, capsize=3, lw=1.2,
                        label=f"{res[0]}x{res[1]} {label}")  # fmt: skip
    ax.axhline(interval, color="k", ls=":", lw=1)
    views = sorted({r["views"] for r in sweep})
    ax.set_xscale("log", base=2)
    ax.set_xticks(views, [str(v) for v in views])
    ax.set_xlabel("views")
    ax.set_ylabel("ms per frame set (p50, bar to p90)")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title("sweep, in process, back to back: tracked (solid) vs detect every frame (dashed)", fontsize=9)


def _stacked(ax, bars: list[tuple[str, dict[str, float]]], interval: float, fontsize: int = 8) -> dict[str, Any]:
    """Horizontal stacked bars, first configuration on top; returns stage -> legend handle."""
    y = np.arange(len(bars))[::-1]
    handles: dict[str, Any] = {}
    for i, (_, parts) in enumerate(bars):
        left = 0.0
        for stage, v in parts.items():
            h = ax.barh(y[i], v, left=left, color=_COLORS.get(stage, "#17becf"), height=0.6)
            handles.setdefault(stage, h)
            left += v
        ax.text(left, y[i], f" {left:.1f}", ha="left", va="center", fontsize=fontsize)
    ax.axvline(interval, color="k", ls="--", lw=1)
    ax.set_yticks(y, [b[0] for b in bars], fontsize=fontsize)
    ax.set_xlabel("ms (dashed: one frame interval)")
    ax.margins(x=0.12)
    return handles


def _fmt(v: Any, digits: int = 1) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def print_report(result: dict[str, Any], console=None) -> None:
    """The report as rich tables: latency by stage (live and in-process), throughput and drops, processes,
    sweep, peers and targets."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console(width=None if sys.stdout.isatty() else 120)
    cfg, live, inproc = result["config"], result.get("live"), result.get("inprocess")
    m = result["machine"]
    console.print(
        f"[bold]handstream bench[/bold]: {cfg['cameras']} cameras {cfg['resolution'][0]}x{cfg['resolution'][1]} "
        f"@ {cfg['fps']:g} fps, "
        f"{cfg['source']} ({cfg['frames']}), backend {cfg.get('backend_used') or cfg['backend']}, model {cfg['model']}"
    )
    console.print(f"machine: {m.get('cpu')}, {m.get('cores_usable')} cores, {m.get('date')}; other load before/after: "
                  f"{_fmt(result.get('background_busy_cores_before'), 2)} / "
                  f"{_fmt(result.get('background_busy_cores_after'), 2)} busy cores")  # fmt: skip
    t = Table(
        title=f"latency, ms (live: {live['poses']} poses in {live['window_s']:.1f} s; "
        f"in-process: {inproc['calls']} frame sets)"
    )
    t.add_column("stage")
    for col in ("live p50", "p90", "p99", "max", "mean", "in-proc p50", "p90", "p99"):
        t.add_column(col, justify="right")
    lp, ip = live["latency_ms"], inproc["latency_ms"]
    order = [
        ("end_to_end", "total"),
        *[(s, s if s in PIPELINE_STAGES else None) for s in LIVE_STAGES],
        ("residual", None),
    ]
    for ls, is_ in order:
        a = lp[ls]
        b = ip.get(is_) if is_ else None
        row = [SHORT_LABELS[ls]]
        row += [_fmt(a[q]) for q in ("p50", "p90", "p99", "max", "mean")]
        row += [_fmt(b[q]) if b else "" for q in ("p50", "p90", "p99")]
        t.add_row(*row, style="bold" if ls == "end_to_end" else None)
    console.print(t)
    console.print(
        "[dim]end to end: subscriber receive - capture time (in-process: the Pipeline.process call); transport in: "
        "engine receive - capture send, incl. queueing while the engine is busy; publish + out: subscriber receive "
        "- publish stamp; residual: end to end - the stages (capture read, engine loop)[/dim]"
    )
    ov = result["transport_overhead_ms"]
    console.print(
        f"transport overhead: per pose (live end to end minus that pose's pipeline stages, minus the same in-process) "
        f"p50 {_fmt(ov['per_pose_p50'], 2)} ms; side by side (live end to end - in-process total): "
        f"p50 {_fmt(ov['difference_p50'], 2)} ms, p90 {_fmt(ov['difference_p90'], 2)}, "
        f"p99 {_fmt(ov['difference_p99'], 2)}; transport stages alone (in + out) p50 "
        f"{_fmt(ov['transport_stages_p50'], 2)} ms; compute live {_fmt(ov['live_compute_mean'], 2)} vs in-process "
        f"{_fmt(ov['inprocess_compute_mean'], 2)} ms (mean); in-process capacity "
        f"{_fmt(inproc['capacity_fps'])} frame sets/s"
    )
    print_paths(result, console)
    d = live["drops"]
    t = Table(title="throughput and drops (measurement window)")
    t.add_column("what")
    t.add_column("value", justify="right")
    t.add_row("poses / s (camera rate)", f"{_fmt(live['pose_rate'], 2)} ({cfg['fps']:g})")
    t.add_row("frame sets with every view", f"{100 * (live['complete_sets'] or 0):.1f} %")
    t.add_row("capture fps", " ".join(f"{_fmt(v)}" for v in d["capture_fps"].values()))
    t.add_row("frames dropped (total)", str(d["frames_dropped"]))
    t.add_row("  capture queue full", str(sum(d["capture_queue_full"].values())))
    t.add_row("  superseded before the engine took them", str(d["engine_superseded"]))
    t.add_row(
        "  invalid at the engine (by reason)",
        ", ".join(f"{k} {v}" for k, v in d["receiver_invalid"].items() if v) or "0",
    )
    t.add_row("  lost in transit (sequence gaps)", str(d["receiver_missed"]))
    t.add_row(
        "  sync: stale / unmatched / late", f"{d['sync']['stale']} / {d['sync']['unmatched']} / {d['sync']['late']}"
    )
    t.add_row(
        "  engine: wrong size / error",
        f"{d['engine_dropped_frames'].get('size', 0)} / {d['engine_dropped_frames'].get('error', 0)}",
    )
    t.add_row("frames skipped by captures (reader late)", str(d["frames_skipped_by_captures"]))
    t.add_row("incomplete frame sets (sync)", str(d["sync"]["incomplete"]))
    t.add_row("poses missed by the subscriber", str(live["subscriber_missed"]))
    console.print(t)
    t = Table(title="processes (CPU % of one core, RSS MiB)")
    for col in ("process", "pid", "CPU %", "RSS mean", "RSS max"):
        t.add_column(col, justify="right" if col != "process" else "left")
    for name, p in live["processes"].items():
        t.add_row(
            name + (" (restarted)" if p.get("restarted") else ""),
            str(p["pid"]),
            _fmt(p["cpu_percent"]),
            _fmt(p["rss_mb_mean"]),
            _fmt(p["rss_mb_max"]),
        )
    mc = live["machine"]
    busy = None if mc["busy_cores"] is None else 100 * mc["busy_cores"]
    t.add_row("[dim]whole machine / other work[/dim]", "", f"{_fmt(busy)} / "
              f"{_fmt(None if mc['other_busy_cores'] is None else 100 * mc['other_busy_cores'])}", "", "")  # fmt: skip
    console.print(t)
    if result.get("sweep"):
        print_sweep(result, console)
    mp_ = (result.get("compare") or {}).get("mediapipe")
    if mp_ is not None:
        if mp_.get("available"):
            console.print(
                f"MediaPipe {mp_['version']} hand landmarker, {mp_['views']} views one after another: "
                f"{_fmt(mp_['per_frame_ms']['p50'])} ms per multi-view frame (p50; {_fmt(mp_['per_view_ms']['p50'])} "
                f"per view, {_fmt(mp_['hands_per_view'], 2)} hands found per view) vs handstream "
                f"{_fmt(mp_['handstream_per_frame_ms'])} ms with 3D: [bold]{_fmt(mp_['ratio'], 2)}x[/bold]"
            )
        else:
            console.print(f"MediaPipe: not compared: {mp_['reason']}")
    t = Table(title="targets (docs/performance.md)")
    for col in ("target", "wanted", "measured", "met"):
        t.add_column(col)
    for tg in result["targets"]:
        met = "-" if tg["met"] is None else ("yes" if tg["met"] else "no")
        if not tg["applies"]:
            met += " (other config)"
        t.add_row(tg["name"], tg["target"], tg["measured"] or "-", met)
    console.print(t)
    files = result.get("files") or {}
    if files:
        console.print(f"wrote {files.get('json')}" + (f" and {files['png']}" if files.get("png") else ""))


def _pct(rate: float | None) -> str:
    return "-" if rate is None else f"{100 * rate:.1f} %"


def print_paths(result: dict[str, Any], console) -> None:
    """The two engine paths side by side (in process, same frames, paced the same) and the ratio."""
    from rich.table import Table

    paths = result.get("paths")
    if not paths:
        return
    tr, de = paths["tracked"], paths["detect_every_frame"]
    calls = (tr or de)["calls"]
    t = Table(title=f"engine paths, in process ({calls} frame sets each, same frames, paced at the camera rate; "
                    f"the live run: {paths['live'].replace('_', '-')})")  # fmt: skip
    t.add_column("figure")
    t.add_column("tracked", justify="right")
    t.add_column("detect every frame", justify="right")

    def row(label: str, show: Callable[[dict[str, Any]], str]) -> None:
        t.add_row(label, *("not measured" if p is None else show(p) for p in (tr, de)))

    def lost(p: dict[str, Any]) -> str:
        return "-" if p["lost"] is None else (", ".join(f"{k} {n}" for k, n in p["lost"].items() if n) or "none")

    row("per frame set p50 / p90 / p99 ms",
        lambda p: f"{_fmt(p['p50_ms'], 2)} / {_fmt(p['p90_ms'], 2)} / {_fmt(p['p99_ms'], 2)}")  # fmt: skip
    row("capacity, frame sets/s", lambda p: _fmt(p["capacity_fps"]))
    row("detector runs (acquisitions), % of frame sets", lambda p: _pct(p["acquisition_rate"]))
    row("detector (acquire) p50 ms, when it runs", lambda p: _fmt(p["acquire_p50_ms"], 2))
    row("crops per frame set", lambda p: _fmt(p["crops_per_frame_set"], 2))
    row("tracks lost (by reason)", lost)
    live = paths.get("live_tracking")
    if live is not None:
        t.add_row("live engine (window): detector runs, % of frame sets", _pct(live["acquisition_rate"]), "")
        t.add_row("live engine (window): crops per frame set", _fmt(live["crops_per_frame_set"], 2), "")
    console.print(t)
    ratio = paths.get("ratio_capacity_tracked_over_detect")
    if ratio is not None:
        console.print(f"tracked capacity / detect-every-frame capacity (in process): [bold]{ratio:.2f}x[/bold]")


def print_sweep(result: dict[str, Any], console) -> None:
    """The sweep: cost per frame set of both paths for each views x resolution, and the 8/4-view ratios."""
    from rich.table import Table

    rows = result["sweep"]
    t = Table(title=f"sweep, in process, back to back: cost per frame set, ms ({rows[0]['calls']} calls each; "
                    "tracked: once both hands are tracked)")  # fmt: skip
    for col in ("views", "size", "skipped", "n", "tracked p50", "p90", "sets/s", "acq.", "crops",
                "detect p50", "p90 ", "sets/s ", "ratio"):  # fmt: skip
        t.add_column(col, justify="right")
    for r in rows:
        lat, trk, dr, bt = r["latency_ms"], r.get("tracking"), r.get("detect_every_frame"), r.get("both_tracked")
        if r.get("path", "tracked") != "tracked":  # no crop model: the detect-every-frame path alone
            dr, bt = {"latency_ms": lat, "capacity_fps": r["capacity_fps"]}, None
        dtot = dr["latency_ms"]["total"] if dr else None
        ratio = bt["capacity_fps"] / dr["capacity_fps"] if bt and dr and bt["capacity_fps"] and dr["capacity_fps"] \
            else None  # fmt: skip
        skipped = "-" if r.get("settled") is None else f"{r['skipped_frame_sets']}" + ("" if r["settled"] else "*")
        t.add_row(
            str(r["views"]), f"{r['resolution'][0]}x{r['resolution'][1]}", skipped, "-" if not bt else str(bt["calls"]),
            "-" if not bt else _fmt(bt["total"]["p50"], 2), "-" if not bt else _fmt(bt["total"]["p90"], 2),
            "-" if not bt else _fmt(bt["capacity_fps"]),
            "-" if trk is None else f"{trk['acquisitions']}/{trk['frame_sets']}",
            "-" if trk is None else _fmt(trk["crops_per_frame_set"], 2),
            "-" if dtot is None else _fmt(dtot["p50"], 2), "-" if dtot is None else _fmt(dtot["p90"], 2),
            "-" if dr is None else _fmt(dr["capacity_fps"]), "-" if ratio is None else f"{ratio:.2f}x",
        )  # fmt: skip
    console.print(t)
    console.print(
        f"[dim]skipped: frame sets processed untimed before the window ({SWEEP_WARMUP_CALLS} warm-up, then the "
        "acquisitions until both hands were tracked; * = not both tracked within --sweep-settle); n, tracked "
        "p50/p90/sets/s: the window's calls that began with both hands tracked (no detector); acq.: window calls "
        "where the detector ran (a hand lost in the window is acquired again); crops: per frame set; "
        "ratio: tracked / detect frame sets per second[/dim]"
    )
    for q in result.get("sweep_ratios") or []:
        w, h = q["resolution"]
        console.print(
            f"{w}x{h}, cost of {q['views'][0]} views / {q['views'][1]} views (p50 per frame set): tracked "
            f"[bold]{_fmt(q['tracked'], 2)}x[/bold] (target <= 1.5x; {_fmt(q['tracked_all_calls'], 2)}x over every "
            f"call of the window), detect every frame {_fmt(q['detect_every_frame'], 2)}x"
        )
