"""Traffic counters of the socket wrappers (:mod:`handstream.transport.pubsub`), published in status messages."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Counters:
    """Traffic counters of one socket wrapper; publish them with ``StatusMessage(data=c.as_dict())``.

    Attributes:
        sent: messages handed to ZeroMQ.
        send_dropped: messages dropped at the sender because the queue was full / no peer (never blocks).
        received: valid messages received.
        superseded: valid frames/poses received but replaced by a newer one in the same drain.
        missed: gaps in sequence numbers seen by a receiver (messages lost upstream, e.g. PUB drops).
        dropped: invalid messages dropped, by :data:`handstream.transport.messages.REASONS` code (plus
            ``"camera"`` for a camera the receiver was not told to expect).
    """

    sent: int = 0
    send_dropped: int = 0
    received: int = 0
    superseded: int = 0
    missed: int = 0
    dropped: dict[str, int] = field(default_factory=dict)

    def drop(self, reason: str) -> None:
        """Count one invalid message with this reason code."""
        self.dropped[reason] = self.dropped.get(reason, 0) + 1

    @property
    def total_dropped(self) -> int:
        """All invalid messages dropped, any reason."""
        return sum(self.dropped.values())

    def as_dict(self) -> dict[str, Any]:
        """Plain-data snapshot (ints and a map of ints), suitable for :class:`StatusMessage` ``data``."""
        return {
            "sent": self.sent,
            "send_dropped": self.send_dropped,
            "received": self.received,
            "superseded": self.superseded,
            "missed": self.missed,
            "dropped": dict(self.dropped),
        }


__all__ = ["Counters"]
