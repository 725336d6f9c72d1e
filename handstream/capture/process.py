"""The capture process: one camera's source -> timestamped frame messages -> the engine.

``capture_main(args)`` is the process body that ``handstream serve`` starts (one per camera); ``run_capture``
is the loop, usable in a thread for tests. Every second it sends ``status.capture-<camera>`` with its
counters (frames read, sent, dropped because the engine's queue was full, skipped because the reader fell
behind, measured fps) on the same socket; the engine republishes it on the pose socket.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import zmq

from handstream.capture.sources import Frame, Source, open_source
from handstream.runtime import StopFlag, child_main
from handstream.transport.encoding import encode
from handstream.transport.messages import FrameMessage
from handstream.transport.pubsub import FrameSender
from handstream.transport.security import curve_config

STATUS_INTERVAL_S = 1.0
RECORD_HWM = 64
"""Frames that may wait for the recorder per camera (it writes in bursts); more are dropped and counted."""


class LockStep:
    """Fast replay in lock step: a frame goes only once the engine has published the pose of the previous
    frame set, so the engine gets the frame sets one at a time, whole and in order, whatever the machine's
    load (``serve --replay DIR --fast``: the same frames give the same poses).

    The frame sets are those of the recording's poses (``poses``: each pose's capture time and views name the
    frames the live engine used), so the engine sees what it saw live, not the frame sets it skipped; without
    recorded poses, every instant of the recording. A set that lacks some camera is released by the engine
    after its camera timeout (its sync waits that long for media-clock frames): gaps cost time, not determinism.

    Before the first frame, every camera of the replay waits for all the others at a barrier (a file per
    camera in ``barrier_dir``) and for the engine's first status on the pose socket (the subscription works).

    Args:
        poses_endpoint: the engine's pose socket; curve: its CURVE keys (or None).
        barrier_dir: a folder shared by the replay's captures; cameras: all of them; camera: this one.
        tolerance_ns: a pose within this of a frame's time is that frame's (half a frame interval).
        timestamps: every camera's ``timestamps.csv`` (in the order of ``cameras``).
        poses: the recording's ``poses.jsonl`` (None, missing or empty: every instant of the recording).
        step: False: only the barrier (a real-time replay: its cameras then start together at
            :attr:`epoch_ns`, the last camera's arrival at the barrier plus 0.3 s, also after a restart).
        timeout_s: a pose that does not come in this long (a frame set the engine could not use) is not
            waited for any longer (counted in ``timeouts``).
    """

    def __init__(self, poses_endpoint: str, curve, barrier_dir: str, cameras: list[str], camera: str,
                 tolerance_ns: int, timestamps: list[str], poses: str | None = None, step: bool = True,
                 timeout_s: float = 5.0):  # fmt: skip
        import json

        import numpy as np

        from handstream.capture.recorder import read_timestamps
        from handstream.transport.pubsub import PoseSubscriber

        stamps = [read_timestamps(p)[1] for p in timestamps]
        own = stamps[list(cameras).index(camera)]
        sets = []
        if poses is not None and Path(poses).is_file():
            sets = [(int(d["t_capture_ns"]), d.get("views", [])) for d in map(json.loads, Path(poses).open())]
        self.wanted: dict[int, str] | None = None  # capture time of a frame played -> its set's cameras
        if sets:
            self.instants = np.unique([t for t, _ in sets])
            self.wanted = {}
            for t, views in sets:  # this camera's frame in a set: within the tolerance before its time
                if camera in views:
                    k = int(np.searchsorted(own, t, "right")) - 1
                    if k >= 0 and t - own[k] <= tolerance_ns:
                        self.wanted[int(own[k])] = ",".join(views)
        else:
            self.instants = np.unique(np.concatenate(stamps))
        self.sub = PoseSubscriber(poses_endpoint, curve=curve, status=True)
        self.barrier, self.cameras, self.camera = Path(barrier_dir), list(cameras), camera
        self.tolerance_ns, self.timeout_s = int(tolerance_ns), float(timeout_s)
        self.newest_ns = -1  # capture time of the newest pose seen
        self.timeouts = 0
        self.step = step
        self.epoch_ns: int | None = None

    def _drain(self, timeout_ms: float) -> bool:
        """Read what arrived (waiting up to ``timeout_ms`` for the first); True if anything came."""
        from handstream.poses import PoseMessage

        msg = self.sub.recv(timeout_ms=timeout_ms)
        got = msg is not None
        while msg is not None:
            if isinstance(msg, PoseMessage):
                self.newest_ns = max(self.newest_ns, msg.t_capture_ns)
            msg = self.sub.recv(timeout_ms=0)
        return got

    def start(self, stop: StopFlag, timeout_s: float = 60.0) -> None:
        """The barrier: the engine's status seen, then every camera ready."""
        t0 = time.monotonic()
        while not stop.is_set() and not self._drain(100) and time.monotonic() - t0 < timeout_s:
            pass
        self.barrier.mkdir(parents=True, exist_ok=True)
        (self.barrier / self.camera).touch()
        while not stop.is_set() and time.monotonic() - t0 < timeout_s:
            if all((self.barrier / c).exists() for c in self.cameras):
                break
            self._drain(20)
        stamps = [(self.barrier / c).stat().st_mtime_ns for c in self.cameras if (self.barrier / c).exists()]
        self.epoch_ns = max(stamps) + 300_000_000

    def takes(self, t_capture_ns: int) -> bool:
        """Whether the frame captured at ``t_capture_ns`` is in one of the frame sets played."""
        return self.wanted is None or int(t_capture_ns) in self.wanted

    def members(self, t_capture_ns: int) -> str | None:
        """The cameras of the recorded frame set of this frame, comma-separated (the frame's ``set`` meta: the
        engine waits for exactly those), or None when the sets are not known."""
        return None if self.wanted is None else self.wanted.get(int(t_capture_ns))

    def before(self, t_capture_ns: int, stop: StopFlag) -> None:
        """Block until the pose of the recording's instant before ``t_capture_ns`` is out (none: at once)."""
        import numpy as np

        k = int(np.searchsorted(self.instants, t_capture_ns - self.tolerance_ns, "left"))
        if k > 0:
            self.wait_for(int(self.instants[k - 1]), stop)

    def wait_for(self, t_capture_ns: int, stop: StopFlag) -> None:
        """Block until the engine published the pose of the frame captured at ``t_capture_ns``."""
        deadline = time.monotonic() + self.timeout_s
        while not stop.is_set() and self.newest_ns < t_capture_ns - self.tolerance_ns:
            left = deadline - time.monotonic()
            if left <= 0:
                self.timeouts += 1
                return
            self._drain(min(100.0, left * 1e3))

    def close(self) -> None:
        self.sub.close()


def _send_copy(sender: FrameSender, msg: FrameMessage) -> bool:
    """Send a frame to the recorder as a copy (zmq owns the bytes: up to 64 frames wait there, and the capture
    may end, and free its images, while they still do). Never blocks; counted like ``send_message``."""
    try:
        sender.socket.send_multipart(encode(msg, sender.limits), flags=zmq.NOBLOCK, copy=True)
    except zmq.Again:
        sender.counters.send_dropped += 1
        return False
    sender.counters.sent += 1
    return True


def run_capture(
    source: Source,
    sender: FrameSender,
    stop: StopFlag,
    *,
    max_frames: int | None = None,
    recorder: FrameSender | None = None,
    lockstep: LockStep | None = None,
) -> int:
    """Read frames and send them until the source ends (returns 0) or ``stop`` is set (returns 0).

    Realtime sources never block on the engine: a full queue drops the frame (counted). Non-realtime
    playback waits until the engine's queue has room, so it goes as fast as the engine takes frames (with
    ``lockstep``: one frame set at a time, :class:`LockStep`). ``recorder``: every frame also goes to the
    recorder (``serve --record``; never blocking: a full queue drops it there, counted as ``record_dropped``).
    """
    if recorder is not None:  # the recording starts with the first frame: wait (a little) for the recorder
        t0 = time.monotonic()
        while not stop.is_set() and not recorder.socket.poll(100, zmq.POLLOUT) and time.monotonic() - t0 < 10:
            pass
    if lockstep is not None:
        lockstep.start(stop)
        if not lockstep.step and hasattr(source, "set_epoch"):
            source.set_epoch(lockstep.epoch_ns)
        if not lockstep.step:
            lockstep.close()
            lockstep = None
    read = 0
    last_t: int | None = None
    t_status = time.monotonic()
    window_start, window_frames = t_status, 0
    fps = 0.0
    while not stop.is_set():
        frame: Frame | None = source.read()
        if frame is None:
            break
        read += 1
        window_frames += 1
        if lockstep is not None:
            if not lockstep.takes(frame.t_capture_ns):
                continue
            if lockstep.members(frame.t_capture_ns):
                frame.meta["set"] = lockstep.members(frame.t_capture_ns)
        msg = FrameMessage(source.camera, frame.seq, frame.t_capture_ns, frame.image, meta=frame.meta)
        if not source.realtime:
            while not stop.is_set() and not sender.socket.poll(100, zmq.POLLOUT):
                pass
        if lockstep is not None:
            lockstep.before(frame.t_capture_ns, stop)
            last_t = frame.t_capture_ns
        sender.send_message(msg)
        if recorder is not None:
            _send_copy(recorder, msg)
        now = time.monotonic()
        if now - t_status >= STATUS_INTERVAL_S:
            fps = window_frames / (now - window_start)
            window_start, window_frames = now, 0
            t_status = now
            c = sender.counters
            status = {
                "camera": source.camera,
                "fps": round(fps, 2),
                "read": read,
                "sent": c.sent,
                "dropped": c.send_dropped,
                "skipped": int(getattr(source, "skipped", 0)),
                "pid": os.getpid(),
            }
            if recorder is not None:
                status["record_sent"] = recorder.counters.sent
                status["record_dropped"] = recorder.counters.send_dropped
                recorder.send_status(status)
            if lockstep is not None:
                status["lockstep_timeouts"] = lockstep.timeouts
            sender.send_status(status)
        if max_frames is not None and read >= max_frames:
            break
    if lockstep is not None and last_t is not None:  # the last set's pose is out before this capture ends
        lockstep.wait_for(last_t, stop)
    if recorder is not None:  # the final count, for the recording's manifest
        recorder.send_status({"camera": source.camera, "read": read, "record_sent": recorder.counters.sent,
                              "record_dropped": recorder.counters.send_dropped, "final": True})  # fmt: skip
    return 0


def capture_main(args: dict[str, Any]) -> None:
    """Process entry point. ``args``: ``source`` (SourceConfig as a dict, paths resolved), ``endpoint``,
    ``preset``, ``epoch_ns``, ``curve_dir`` (or None), ``parent_pid``; optional ``record_endpoint`` (the
    recorder's frame socket, ``serve --record``) and ``lockstep`` (:class:`LockStep`'s keyword arguments but
    ``curve`` and ``camera``: fast replay)."""

    def body(stop: StopFlag) -> int:
        source = open_source(args["source"], preset=args.get("preset"), epoch_ns=args.get("epoch_ns"))
        curve = curve_config(args.get("curve_dir"))
        sender = FrameSender(source.camera, args["endpoint"], curve=curve)
        recorder = lockstep = None
        try:
            if args.get("record_endpoint"):
                recorder = FrameSender(source.camera, args["record_endpoint"], sndhwm=RECORD_HWM)
            if args.get("lockstep"):
                lockstep = LockStep(curve=curve, camera=source.camera, **args["lockstep"])
            return run_capture(source, sender, stop, recorder=recorder, lockstep=lockstep)
        finally:
            for s in (sender, recorder, lockstep):
                if s is not None:
                    s.close()
            source.close()

    child_main(f"capture {args['source'].get('camera')}", body, args.get("parent_pid"))
