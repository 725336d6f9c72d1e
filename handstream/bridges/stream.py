"""The poses a bridge delivers: the newest from the engine's pose socket, never a backlog."""

from __future__ import annotations

from collections.abc import Iterator

from handstream.poses import PoseMessage


def latest_poses(sub, stop) -> Iterator[PoseMessage]:
    """The newest pose of a :class:`~handstream.transport.pubsub.PoseSubscriber` each time one arrives (older
    ones it holds are dropped: a bridge never falls behind the engine), until ``stop`` (a StopFlag or an
    Event) is set, checked every 0.1 s."""
    while not stop.is_set():
        msg = sub.latest(timeout_ms=100)
        if msg is not None:
            yield msg
