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


BENCH_PROCESS = "bench (supervisor + subscriber)"
"""This process's name in the CPU/memory report of the live run."""


class LiveSession:
    """The live system of a ServeConfig run by a :class:`~handstream.serve.Supervisor` in a thread, and a
    subscriber to its poses and status messages in this one. Steps: :meth:`start`, :meth:`wait_first_pose`,
    :meth:`warm_up`, :meth:`open_window`, :meth:`measure`, :meth:`close_window`, :meth:`stop`."""

    def __init__(self, config, thumbnails: bool = False) -> None:
        from handstream.serve import Supervisor, plan
        from handstream.transport.pubsub import PoseSubscriber

        self.config = config
        self.plan = plan(config)
        self.sup = Supervisor(self.plan)
        self.codes: list[int] = []
        self.error: BaseException | None = None
        # thumbnails: subscribe to frame.* as the viewer does (the engine's XPUB makes them only while asked)
        self.sub = PoseSubscriber(config.endpoints.poses, status=True, frames=thumbnails)
        self.thumbnails = 0  # frame.* messages received
        self.thread = threading.Thread(target=self._supervise, name="handstream-supervisor", daemon=True)
        self.statuses: dict[str, dict[str, Any]] = {}  # process (engine or camera) -> newest status data
        self.status_t: dict[str, int] = {}  # process -> its send time, ns

    def _supervise(self) -> None:
        try:
            self.codes.append(self.sup.run())
        except BaseException as exc:  # surfaced in the main thread by alive()
            self.codes.append(-1)
            self.error = exc

    def take(self, msg) -> None:
        """Keep a status message (the newest per process); count a thumbnail; anything else is ignored."""
        from handstream.transport.messages import FrameMessage, StatusMessage

        if isinstance(msg, FrameMessage):
            self.thumbnails += 1
        elif isinstance(msg, StatusMessage):
            key = "engine" if msg.process == "engine" else str(msg.data.get("camera", msg.process))
            self.statuses[key] = msg.data
            self.status_t[key] = msg.t_send_ns

    def alive(self) -> None:
        """Raise a one-line HandstreamError when the supervisor has stopped."""
        if not self.thread.is_alive():
            err = f": {self.error}" if self.error else ""
            code = self.codes[0] if self.codes else "?"
            raise HandstreamError(f"the live system stopped early (exit code {code}){err}")

    def pids(self) -> dict[str, int]:
        return {**self.sup.pids(), BENCH_PROCESS: os.getpid()}

    def start(self) -> None:
        self.t_start = time.monotonic()
        self.thread.start()

    def wait_first_pose(self, timeout_s: float) -> float:
        """Seconds from :meth:`start` to the first pose received."""
        from handstream.poses import PoseMessage

        while True:
            self.alive()
            if time.monotonic() - self.t_start > timeout_s:
                raise HandstreamError(
                    f"no pose within {timeout_s:.0f} s of starting the live system (see the engine's messages above)"
                )
            msg = self.sub.recv(timeout_ms=200)
            self.take(msg)
            if isinstance(msg, PoseMessage):
                return time.monotonic() - self.t_start

    def warm_up(self, seconds: float) -> None:
        """Receive for ``seconds``, then up to 3 s more until every process has sent a status (the counters of
        the window need a start)."""
        t_end = time.monotonic() + seconds
        while time.monotonic() < t_end:
            self.take(self.sub.recv(timeout_ms=100))
        t_wait = time.monotonic() + 3.0
        names = self.plan.rig.names
        while time.monotonic() < t_wait and not ("engine" in self.statuses and all(c in self.statuses for c in names)):
            self.take(self.sub.recv(timeout_ms=100))
        self.alive()

    def snapshot(self) -> tuple[dict[str, Any], dict[str, int]]:
        """(the newest status of every process, a deep copy; their send times)."""
        return json.loads(json.dumps(self.statuses)), dict(self.status_t)

    def measure(self, seconds: float, monitor: ProcessMonitor) -> tuple[LiveRecord, float]:
        """Record every pose for ``seconds`` (CPU/memory sampled every 0.5 s); returns the record and the window's
        length, s."""
        from handstream.poses import PoseMessage

        rec = LiveRecord()
        self.thumbnails = 0
        monitor.start(self.pids())
        t0_ns = time.time_ns()
        t_end = time.monotonic() + seconds
        t_sample = time.monotonic()
        while (now := time.monotonic()) < t_end:
            msg = self.sub.recv(timeout_ms=min(100.0, max(1.0, (t_end - now) * 1e3)))
            t_recv = time.time_ns()
            if isinstance(msg, PoseMessage):
                rec.add(msg, t_recv, t0_ns)
            else:
                self.take(msg)
            if now - t_sample >= 0.5:
                monitor.sample(self.pids())
                t_sample = now
        window_s = (time.time_ns() - t0_ns) * 1e-9
        monitor.stop(self.pids())
        self.alive()
        return rec, window_s

    def close_window(self) -> None:
        """Wait (up to two status intervals) for the engine's next status: it closes the window's counters."""
        t_wait = time.monotonic() + 2 * self.config.engine.status_interval_s + 0.5
        end_seen = self.status_t.get("engine", 0)
        while time.monotonic() < t_wait and self.status_t.get("engine", 0) == end_seen:
            self.take(self.sub.recv(timeout_ms=100))

    def stop(self) -> None:
        self.sup.stop()
        self.thread.join(10.0)
        self.sub.close()


def run_live(
    config,
    *,
    seconds: float,
    warmup: float,
    log: Callable[[str], None],
    startup_timeout_s: float = 120.0,
    thumbnails: bool = False,
) -> dict[str, Any]:
    """Start the system of ``config`` (a :class:`handstream.config.ServeConfig`), measure, stop it.

    Returns ``poses``, ``pose_rate`` (/s), ``window_s``, ``complete_sets`` (fraction of poses with every
    view), ``subscriber_missed`` (sequence gaps at the subscriber), ``thumbnails`` (with ``thumbnails``: the
    ``frame.*`` messages received in the window and their rate, /s; else None), ``latency_ms`` (stage -> summary, with
    ``end_to_end`` and ``residual``), ``drops`` (:func:`drops_from_status`), ``processes`` and ``machine``
    (:class:`ProcessMonitor`), ``samples`` (per-pose arrays), ``startup_s``, ``engine_status`` (the last
    ``status.engine``: counters since start) and ``tracking`` (its tracker counters over the window, by
    :func:`tracking_delta`; None when the engine does not track).
    """
    live = LiveSession(config, thumbnails=thumbnails)
    live.start()
    try:
        startup_s = live.wait_first_pose(startup_timeout_s)
        log(f"first pose after {startup_s:.1f} s; warming up {warmup:g} s")
        live.warm_up(warmup)
        start_status, start_t = live.snapshot()
        monitor = ProcessMonitor()
        log(f"measuring {seconds:g} s")
        rec, window_s = live.measure(seconds, monitor)
        thumbnails_received = live.thumbnails
        live.close_window()
        end_status, end_t = live.snapshot()
    finally:
        live.stop()
    status_window = (end_t.get("engine", 0) - start_t.get("engine", 0)) * 1e-9 if start_t.get("engine") else None
    drops = drops_from_status(start_status, end_status, None if status_window is None else round(status_window, 3))
    processes, machine = monitor.report()
    views = np.asarray(rec.views)
    n_cams = len(live.plan.rig)
    return {
        "startup_s": round(startup_s, 2),
        "window_s": round(window_s, 3),
        "poses": len(rec.seq),
        "pose_rate": round(len(rec.seq) / window_s, 3) if window_s > 0 else None,
        "complete_sets": round(float((views == n_cams).mean()), 4) if views.size else None,
        "mean_views": round(float(views.mean()), 3) if views.size else None,
        "subscriber_missed": int(sum(max(0, b - a - 1) for a, b in zip(rec.seq, rec.seq[1:], strict=False))),
        "thumbnails": {"received": thumbnails_received,
                       "rate": round(thumbnails_received / window_s, 3) if window_s > 0 else None}
        if thumbnails else None,  # fmt: skip
        "latency_ms": live_latency(rec),
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


def live_latency(rec: LiveRecord) -> dict[str, Any]:
    """Stage -> :func:`summarize` of the live poses (ms): ``end_to_end``, every :data:`LIVE_STAGES`,
    ``residual`` (end to end minus the stages) and ``outside_pipeline`` (end to end minus the pipeline's)."""
    e2e = np.asarray(rec.end_to_end)

    def stage_sum(stages) -> np.ndarray:
        return np.nansum(np.stack([np.asarray(rec.stages[s]) for s in stages]), axis=0) if rec.seq else np.zeros(0)

    latency = {"end_to_end": summarize(e2e)}
    for s in LIVE_STAGES:
        latency[s] = summarize(rec.stages[s])
    latency["residual"] = summarize(e2e - stage_sum(LIVE_STAGES))
    latency["outside_pipeline"] = summarize(e2e - stage_sum(PIPELINE_STAGES))
    return latency


def build_live_config(o: BenchOptions, model: Path, rig_file: Path | None, folders: dict[str, Path] | None,
                      cameras: list[str], fps: float | None, tmp: Path, refiner: Path | None = None):  # fmt: skip
    """The :class:`handstream.config.ServeConfig` of the live run."""
    from handstream.config import ServeConfig

    if o.transport == "ipc":
        endpoints = {"frames": f"ipc://{tmp}/frames.sock", "poses": f"ipc://{tmp}/poses.sock"}
    else:
        endpoints = {"frames": f"tcp://127.0.0.1:{free_tcp_port()}", "poses": f"tcp://127.0.0.1:{free_tcp_port()}"}
    data: dict[str, Any] = {
        "model": {"path": str(model), "refiner": str(refiner or ""), "backend": o.backend, "threads": o.threads,
                  "palm_detector": str(Path(o.palm_detector).resolve()) if o.palm_detector else ""},  # fmt: skip
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
