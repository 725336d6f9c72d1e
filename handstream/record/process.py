"""The recorder process of ``handstream serve --record DIR``: everything needed to reproduce the session.

Design: the frame path is PUSH/PULL, which hands each frame to one puller, so a recorder cannot listen in on
the engine's socket. Each capture sends every frame twice instead: to the engine, and on a second PUSH socket
to this process's own PULL socket (``record_endpoint``), never blocking (a full queue drops the frame for the
recording only, counted by the capture as ``record_dropped``). The engine is not touched and does no extra
work; what a frame costs the capture is one more zero-copy send. The poses come from the engine's pose socket
(SUB, like any subscriber). PNG encoding runs in this process's writer threads
(:class:`handstream.capture.recorder.FrameWriter`), so a slow disk costs the recording frames, never the
live path. On SIGTERM it writes what is queued, the timestamp tables, then the manifest (last).
"""

from __future__ import annotations

import datetime
import json
import sys
import time
from pathlib import Path
from typing import Any

import zmq

from handstream import __version__
from handstream.capture.recorder import (
    CALIBRATION,
    CONFIG,
    FORMAT,
    FRAMES,
    MANIFEST,
    POSES,
    TIMESTAMPS,
    FrameWriter,
)
from handstream.client import pose_to_dict
from handstream.config import ServeConfig, dump_config
from handstream.geometry import Camera, Rig
from handstream.geometry.io import save_calibration
from handstream.poses import PoseMessage
from handstream.records import file_sha256
from handstream.runtime import StopFlag, child_main
from handstream.transport.pubsub import FrameReceiver, PoseSubscriber
from handstream.transport.security import curve_config

RECORD_HWM = 64  # frames queued per capture on the recorder's socket


def replay_config(config: ServeConfig, cameras: list[str], fps: float) -> ServeConfig:
    """The session's config with the recording as its rig and sources: ``serve --config DIR/config.toml``
    (or ``--replay DIR``) plays it through the same engine settings."""
    data = config.to_dict()
    data["model"]["path"] = config.resolve(config.model.path)
    data["rig"] = {"calibration": CALIBRATION, "unit_scale": 1.0}
    data["sources"] = [
        {"kind": "images", "camera": c, "path": f"{FRAMES}/{c}", "timestamps": f"{FRAMES}/{c}/{TIMESTAMPS}",
         "fps": float(fps)}
        for c in cameras
    ]  # fmt: skip
    data.pop("base_dir", None)
    return ServeConfig.from_dict(data, "recording config")


class Recorder:
    """Sockets + writers of one recording (see the module docstring).

    Args:
        root: the recording folder (created; must be empty or new: :func:`handstream.serve.plan` checks).
        config: the session's config; rig: its cameras (metres); sources: the plan's resolved sources;
        fps: the nominal camera rate; record_endpoint: where to bind the frame socket.
        ready_file: touched when the engine's first status arrives (the subscription works: ``serve`` then
            starts the captures, so no pose is published before the recorder listens).
    """

    def __init__(self, root: Path, config: ServeConfig, rig: Rig, sources: list[dict], fps: float,
                 record_endpoint: str, ready_file: str | None = None):  # fmt: skip
        self.root, self.config, self.rig, self.sources, self.fps = root, config, rig, sources, fps
        self.cameras = [s["camera"] for s in sources]
        self.receiver = FrameReceiver(record_endpoint, cameras=self.cameras, rcvhwm=RECORD_HWM)
        curve = curve_config(config.endpoints.curve_dir)
        self.sub = PoseSubscriber(config.endpoints.poses, curve=curve, rcvhwm=1000, status=True)
        self.ready_file = ready_file
        root.mkdir(parents=True, exist_ok=True)
        self.writer = FrameWriter(root, self.cameras)
        self.captures: dict[str, dict[str, Any]] = {}
        self.engine_status: dict[str, Any] = {}
        self.poses = 0
        self.created = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
        save_calibration(rig, root / CALIBRATION)
        (root / CONFIG).write_text(dump_config(replay_config(config, rig.names, fps)))
        self._poses_file = (root / POSES).open("w")

    def step(self, timeout_ms: int) -> None:
        poller = zmq.Poller()
        poller.register(self.receiver.socket, zmq.POLLIN)
        poller.register(self.sub.socket, zmq.POLLIN)
        poller.poll(timeout_ms)
        self.drain()

    def drain(self) -> int:
        """Take everything queued on both sockets; returns how many messages."""
        n = 0
        while (msg := self.receiver.recv(timeout_ms=0)) is not None:
            self.writer.put(msg.camera, msg.seq, msg.t_capture_ns, msg.image)
            n += 1
        for st in self.receiver.statuses.values():
            if "camera" in st.data:
                self.captures[str(st.data["camera"])] = st.data
        while (pose := self.sub.recv(timeout_ms=0)) is not None:
            if isinstance(pose, PoseMessage):
                self._poses_file.write(json.dumps(pose_to_dict(pose), separators=(",", ":")) + "\n")
                self.poses += 1
                n += 1
            elif pose.process == "engine":
                self.engine_status = pose.data
                if self.ready_file is not None:
                    Path(self.ready_file).touch()
                    self.ready_file = None
        return n

    def finish(self) -> dict[str, Any]:
        """Write what is queued, the tables and the manifest; returns the manifest."""
        t_end = time.monotonic() + 0.3  # frames and poses still in flight when the captures stopped
        while time.monotonic() < t_end:
            if not self.drain():
                time.sleep(0.02)
        self.receiver.close()
        self.sub.close()
        self._poses_file.close()
        self.writer.close()
        manifest = self.manifest()
        tmp = self.root / (MANIFEST + ".partial")
        tmp.write_text(json.dumps(manifest, indent=2) + "\n")
        tmp.replace(self.root / MANIFEST)
        return manifest

    def manifest(self) -> dict[str, Any]:
        cams = []
        for c in self.rig.names:
            if c not in self.cameras:
                continue
            rows = sorted(self.writer.rows[c])
            st = self.captures.get(c, {})
            cams.append({
                "name": c,
                "size": list(self.rig[c].size),
                "frames": len(rows),
                "first_t_ns": rows[0][1] if rows else None,
                "last_t_ns": rows[-1][1] if rows else None,
                "not_written": {
                    "capture_queue": int(st.get("record_dropped", 0)),  # the recorder's socket was full
                    "recorder_queue": self.writer.dropped[c]["queue"],  # the writer threads fell behind
                    "write_errors": self.writer.dropped[c]["write"],
                },
            })  # fmt: skip
        model = Path(self.config.resolve(self.config.model.path))
        return {
            "format": FORMAT,
            "handstream_version": __version__,
            "created": self.created,
            "finished": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "fps": self.fps,
            "cameras": cams,
            "frames_format": "png",
            "poses": {"file": POSES, "count": self.poses, "missed": self.sub.counters.missed},
            # the engine's last status (about a second before the end): its sync counters (sets, stale, late,
            # unmatched) and dropped frames say which frames the live engine did not use
            "engine": {k: self.engine_status.get(k) for k in ("poses", "sync", "dropped_frames", "receiver")},
            "session": {
                "rig": self.config.to_dict()["rig"],
                "sources": self.sources,
                "model": str(model),
                "model_sha256": file_sha256(model) if model.is_file() else None,
                "refiner": self.config.model.refiner or None,
            },
        }


def recorder_main(args: dict[str, Any]) -> None:
    """Process entry point. ``args``: ``root``, ``config`` (ServeConfig as a dict), ``rig`` (``Camera.to_dict``
    each), ``sources`` (the plan's), ``fps``, ``record_endpoint``, ``parent_pid``."""

    def body(stop: StopFlag) -> int:
        config = ServeConfig.from_dict(args["config"], "config")
        rig = Rig([Camera.from_dict(c, f"rig.cameras[{i}]") for i, c in enumerate(args["rig"])])
        rec = Recorder(Path(args["root"]), config, rig, args["sources"], args["fps"], args["record_endpoint"],
                       args.get("ready_file"))  # fmt: skip
        while not stop.is_set():
            rec.step(100)
        m = rec.finish()
        frames = ", ".join(f"{c['name']} {c['frames']}" for c in m["cameras"])
        print(f"handstream serve: recorded {frames} frames, {m['poses']['count']} poses to {args['root']}",
              file=sys.stderr, flush=True)  # fmt: skip
        return 0

    child_main("recorder", body, args.get("parent_pid"))
