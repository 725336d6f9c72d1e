"""The capture process: one camera's source -> timestamped frame messages -> the engine.

``capture_main(args)`` is the process body that ``handstream serve`` starts (one per camera); ``run_capture``
is the loop, usable in a thread for tests. Every second it sends ``status.capture-<camera>`` with its
counters (frames read, sent, dropped because the engine's queue was full, skipped because the reader fell
behind, measured fps) on the same socket; the engine republishes it on the pose socket.
"""

from __future__ import annotations

import os
import time
from typing import Any

import zmq

from handstream.capture.sources import Frame, Source, open_source
from handstream.runtime import StopFlag, child_main
from handstream.transport.messages import FrameMessage
from handstream.transport.pubsub import FrameSender
from handstream.transport.security import curve_config

STATUS_INTERVAL_S = 1.0


def run_capture(source: Source, sender: FrameSender, stop: StopFlag, *, max_frames: int | None = None) -> int:
    """Read frames and send them until the source ends (returns 0) or ``stop`` is set (returns 0).

    Realtime sources never block on the engine: a full queue drops the frame (counted). Non-realtime
    playback waits until the engine's queue has room, so it goes as fast as the engine takes frames.
    """
    read = 0
    t_status = time.monotonic()
    window_start, window_frames = t_status, 0
    fps = 0.0
    while not stop.is_set():
        frame: Frame | None = source.read()
        if frame is None:
            break
        read += 1
        window_frames += 1
        msg = FrameMessage(source.camera, frame.seq, frame.t_capture_ns, frame.image, meta=frame.meta)
        if not source.realtime:
            while not stop.is_set() and not sender.socket.poll(100, zmq.POLLOUT):
                pass
        sender.send_message(msg)
        now = time.monotonic()
        if now - t_status >= STATUS_INTERVAL_S:
            fps = window_frames / (now - window_start)
            window_start, window_frames = now, 0
            t_status = now
            c = sender.counters
            sender.send_status(
                {
                    "camera": source.camera,
                    "fps": round(fps, 2),
                    "read": read,
                    "sent": c.sent,
                    "dropped": c.send_dropped,
                    "skipped": int(getattr(source, "skipped", 0)),
                    "pid": os.getpid(),
                }
            )
        if max_frames is not None and read >= max_frames:
            break
    return 0


def capture_main(args: dict[str, Any]) -> None:
    """Process entry point. ``args``: ``source`` (SourceConfig as a dict, paths resolved), ``endpoint``,
    ``preset``, ``epoch_ns``, ``curve_dir`` (or None), ``parent_pid``."""

    def body(stop: StopFlag) -> int:
        source = open_source(args["source"], preset=args.get("preset"), epoch_ns=args.get("epoch_ns"))
        curve = curve_config(args.get("curve_dir"))
        sender = FrameSender(source.camera, args["endpoint"], curve=curve)
        try:
            return run_capture(source, sender, stop)
        finally:
            sender.close()
            source.close()

    child_main(f"capture {args['source'].get('camera')}", body, args.get("parent_pid"))
