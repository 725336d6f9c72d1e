"""A real pose publisher for subscriber-side tests (subscribe, bridges): no engine, a real PUB socket."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from handstream.poses import PoseMessage
from handstream.transport.pubsub import PosePublisher
from tests.conftest import free_tcp_port


class Publishing:
    """Publishes ``make_pose(seq)`` every ``period`` s on a free loopback port until :meth:`close`; remembers each
    pose's publish time (``published``: seq -> ns). ``after(pose)``: more messages to send after each pose (e.g. the
    engine's thumbnails of its frame set)."""

    def __init__(self, make_pose: Callable[[int], PoseMessage], period: float = 0.02,
                 after: Callable[[PoseMessage], list] | None = None):  # fmt: skip
        self.endpoint = f"tcp://127.0.0.1:{free_tcp_port()}"
        self.pub = PosePublisher(self.endpoint)
        self.make_pose = make_pose
        self.after = after
        self.period = period
        self.published: dict[int, int] = {}
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        seq = 0
        while not self._stop.is_set():
            msg = self.make_pose(seq)
            msg.t_publish_ns = time.time_ns()
            self.published[seq] = msg.t_publish_ns
            self.pub.publish(msg)
            for extra in self.after(msg) if self.after is not None else []:
                self.pub.send(extra)
            seq += 1
            time.sleep(self.period)

    def close(self) -> None:
        self._stop.set()
        self.thread.join()
        self.pub.close()
