"""Frame pacing on the wall clock, shared by every source that plays frames at a rate.

Frame ``n`` is due at ``epoch + n * period``. Sources that share an epoch (the captures started by
``handstream serve``) are synchronized by construction. A reader that falls behind by more than a frame
skips to the newest due frame (counted in ``skipped``), like a camera whose reader is slow: the stream
stays live instead of queueing.
"""

from __future__ import annotations

import time


class FramePacer:
    """Pacing of one stream.

    Args:
        fps: frames per second.
        epoch_ns: time of frame 0, ns (``time.time_ns`` clock); None: the instant of the first :meth:`wait`.
        realtime: False: never wait or skip; frame ``n`` is stamped ``epoch + n * period`` (media clock,
            epoch 0 when None).
    """

    def __init__(self, fps: float, epoch_ns: int | None = None, realtime: bool = True):
        self.fps = float(fps)
        self.period_ns = int(round(1e9 / self.fps))
        self.epoch_ns = None if epoch_ns is None else int(epoch_ns)
        self.realtime = realtime
        self.skipped = 0

    def first_index(self) -> int:
        """Where a (re)started realtime stream joins: the frame due now (0 before the epoch is set)."""
        if not self.realtime or self.epoch_ns is None:
            return 0
        return max(0, (time.time_ns() - self.epoch_ns) // self.period_ns)

    def wait(self, n: int) -> tuple[int, int]:
        """Block until frame ``n`` is due (realtime); skip ahead when late by more than a frame.

        Returns:
            (index of the frame to read, its timestamp in ns).
        """
        if not self.realtime:
            return n, (self.epoch_ns or 0) + n * self.period_ns
        now = time.time_ns()
        if self.epoch_ns is None:
            self.epoch_ns = now - n * self.period_ns
        due = self.epoch_ns + n * self.period_ns
        if now > due + self.period_ns:
            newest = (now - self.epoch_ns) // self.period_ns
            self.skipped += int(newest - n)
            n = int(newest)
            due = self.epoch_ns + n * self.period_ns
        elif now < due:
            time.sleep((due - now) / 1e9)
        return n, due
