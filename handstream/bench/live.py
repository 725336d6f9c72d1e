"""The live run: the real system (:class:`handstream.serve.Supervisor`: captures, engine, sockets) and a subscriber in
this process; latency per pose by stage, drops by place, CPU per process.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from handstream.bench.measure import ProcessMonitor, counter_delta, free_tcp_port, summarize, tracking_delta
from handstream.bench.options import LIVE_STAGES, PIPELINE_STAGES, BenchOptions
from handstream.errors import HandstreamError


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
        d = counter_delta(start.get(name, {}), data)
        cam = str(data.get("camera", name))
        out["capture_queue_full"][cam] = int(d.get("dropped", 0))
        out["capture_skipped"][cam] = int(d.get("skipped", 0))
        out["capture_sent"][cam] = int(d.get("sent", 0))
        out["capture_fps"][cam] = data.get("fps")
    e = counter_delta(start.get("engine", {}), end.get("engine", {}))
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
