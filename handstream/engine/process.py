"""The engine process: frame sockets -> synchronisation -> :class:`Pipeline` -> pose socket.

Loop: drain each camera to its newest frame (``FrameReceiver.drain_latest``), offer the frames to
:class:`~handstream.engine.sync.FrameSync`, run the pipeline on each released frame set, publish the pose.
Every ``status_interval_s`` it publishes ``status.engine`` (rates, drops by reason, latency percentiles)
and republishes the captures' own status messages, so one subscription to the pose socket sees the whole
system. A frame that does not fit the calibration is dropped and counted, never fatal. With
``engine.thumbnail_fps > 0``, after each pose it also publishes small thumbnails of that frame set's images
(``frame.<camera>``, :mod:`handstream.engine.thumbnails`) for the cameras that are due, only while a subscriber
asks for them.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any

import numpy as np

from handstream.config import ServeConfig
from handstream.engine.backends import open_backend
from handstream.engine.pipeline import Pipeline
from handstream.engine.sync import FrameSync
from handstream.engine.thumbnails import Thumbnails
from handstream.errors import HandstreamError
from handstream.geometry import Rig
from handstream.runtime import StopFlag, child_main
from handstream.transport.pubsub import FrameReceiver, PosePublisher
from handstream.transport.security import curve_config
from handstream.transport.topics import FRAME_PREFIX


class Engine:
    """Sockets + sync + pipeline. ``run(stop)`` until ``stop`` is set.

    Args:
        rig: calibrated cameras; frames of other cameras are dropped (reason ``camera``).
        config: the serve config (engine, filter, model and endpoint sections are used).
        fps: nominal camera rate, for the default sync tolerance (half a frame interval).
    """

    def __init__(self, rig: Rig, config: ServeConfig, fps: float):
        self.rig, self.cfg = rig, config
        e = config.engine
        self.fps = float(e.fps or fps)
        tol_ms = e.sync_tolerance_ms if e.sync_tolerance_ms is not None else 500.0 / self.fps
        self.sync = FrameSync(
            list(rig.names),
            tolerance_ns=int(tol_ms * 1e6),
            wait_ns=int(tol_ms * 1e6),
            camera_timeout_ns=int(e.camera_timeout_ms * 1e6),
            max_age_ns=int(e.max_age_ms * 1e6),
        )
        m = config.model
        self.backend = open_backend(config.resolve(m.path), m.backend, threads=m.threads, device=m.device)
        refiner = None
        if m.refiner:
            refiner = open_backend(config.resolve(m.refiner), m.backend, threads=m.threads, device=m.device)
        palm = None
        if m.palm_detector:
            from handstream.models.palm import PalmDetector

            # one thread: a second session's thread pool on the same cores spins against the crop model's
            # (an acquisition 48 ms instead of 25 ms on 2 cores)
            palm = PalmDetector(config.resolve(m.palm_detector), threads=1)
        self.pipeline = Pipeline(rig, self.backend, e, config.filter, refiner=refiner, palm=palm)
        ep = config.endpoints
        curve = curve_config(ep.curve_dir)
        self.receiver = FrameReceiver(ep.frames, cameras=rig.names, allow_remote=ep.allow_remote, curve=curve)
        try:
            self.publisher = PosePublisher(ep.poses, allow_remote=ep.allow_remote, curve=curve,
                                           track_subscriptions=e.thumbnail_fps > 0)  # fmt: skip
        except BaseException:
            self.receiver.close()
            raise
        self.dropped_frames = {"size": 0, "error": 0}
        self._latency_ms: deque[float] = deque(maxlen=300)
        self._frames_in: dict[str, int] = {c: 0 for c in rig.names}
        self.poses = 0
        self._due_in: float | None = None
        self.thumbnails = Thumbnails(e.thumbnail_fps) if e.thumbnail_fps > 0 else None
        self._thumb_topics = {c: FRAME_PREFIX + c.encode("ascii") for c in rig.names}

    def close(self) -> None:
        self.receiver.close()
        self.publisher.close()

    def step(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for frames, then process at most one frame set.
        Returns True if a pose was published."""
        wait = timeout_s if self._due_in is None else min(timeout_s, self._due_in)
        latest = self.receiver.drain_latest(timeout_ms=wait * 1e3)
        arrival = time.monotonic()
        arrival_wall = time.time_ns()
        for cam, msg in latest.items():
            cam_size = self.rig[cam].size
            if (msg.image.shape[1], msg.image.shape[0]) != cam_size:
                self.dropped_frames["size"] += 1  # e.g. a camera re-configured to another resolution
                continue
            msg.meta["_transport_ms"] = (arrival_wall - msg.t_send_ns) * 1e-6 if msg.t_send_ns else 0.0
            self._frames_in[cam] += 1
            self.sync.add(msg, arrival)
        fset, self._due_in = self.sync.poll()
        if fset is None:
            return False
        timings = {
            "transport_in": float(max(m.meta.get("_transport_ms", 0.0) for m in fset.frames.values())),
            "sync": fset.waited_ms,
        }
        try:
            pose = self.pipeline.process({c: m.image for c, m in fset.frames.items()}, fset.t_ref_ns, timings)
        except HandstreamError:
            self.dropped_frames["error"] += 1
            return False
        t = time.perf_counter()
        self.publisher.publish(pose)
        pose.timings["publish"] = (time.perf_counter() - t) * 1e3
        self.poses += 1
        if self.thumbnails is not None:  # after the pose: its latency first; the images of this very frame set
            wanted = {c: m for c, m in fset.frames.items() if self.publisher.subscribed(self._thumb_topics[c])}
            if wanted:
                self.thumbnails.publish(self.publisher, wanted, pose.seq)
        if not any(m.meta.get("clock") == "media" for m in fset.frames.values()):
            self._latency_ms.append((time.time_ns() - fset.t_ref_ns) * 1e-6)
        return True

    def status(self, elapsed_s: float, poses_in_window: int, frames_in_window: dict[str, int]) -> dict[str, Any]:
        lat = np.asarray(self._latency_ms) if self._latency_ms else None
        return {
            "poses": self.poses,
            "pose_rate": round(poses_in_window / elapsed_s, 2),
            "fps_in": {c: round(n / elapsed_s, 2) for c, n in frames_in_window.items()},
            "latency_ms": None
            if lat is None
            else {"p50": round(float(np.percentile(lat, 50)), 2), "p99": round(float(np.percentile(lat, 99)), 2)},
            "sync": self.sync.counters.as_dict(),
            "receiver": self.receiver.counters.as_dict(),
            "dropped_frames": dict(self.dropped_frames),
            "backend": self.backend.name,
            "tracking": None if self.pipeline.tracker is None else self.pipeline.tracker.stats.as_dict(),
            "thumbnails": {"fps": 0} if self.thumbnails is None else self.thumbnails.stats(),
        }

    def run(self, stop: StopFlag) -> int:
        interval = self.cfg.engine.status_interval_s
        t_status = time.monotonic()
        poses0, frames0 = 0, dict(self._frames_in)
        while not stop.is_set():
            self.step(0.02)
            now = time.monotonic()
            if now - t_status >= interval:
                window = {c: self._frames_in[c] - frames0.get(c, 0) for c in self._frames_in}
                self.publisher.publish_status(self.status(now - t_status, self.poses - poses0, window), "engine")
                for name, st in list(self.receiver.statuses.items()):
                    self.publisher.publish_status(st.data, name)
                self.receiver.statuses.clear()
                t_status, poses0, frames0 = now, self.poses, dict(self._frames_in)
        return 0


def engine_main(args: dict[str, Any]) -> None:
    """Process entry point. ``args``: ``config`` (ServeConfig as a dict), ``rig`` (calibration as a dict
    of cameras: ``Camera.to_dict``), ``fps``, ``parent_pid``."""

    def body(stop: StopFlag) -> int:
        from handstream.geometry import Camera

        config = ServeConfig.from_dict(args["config"], "config")
        rig = Rig([Camera.from_dict(c, f"rig.cameras[{i}]") for i, c in enumerate(args["rig"])])
        engine = Engine(rig, config, args["fps"])
        try:
            return engine.run(stop)
        finally:
            engine.close()

    child_main("engine", body, args.get("parent_pid"))
