"""Frame synchronisation: the newest frames of all cameras -> one frame set per instant.

Cameras are not triggered together and frames arrive over sockets in any order, so the engine groups
frames by capture time: a frame set is the newest capture time ``t_ref`` among the waiting frames plus
every camera whose waiting frame is within ``tolerance`` of it. A set is complete when every live camera
is in it; an incomplete set is released once its first frame has waited ``wait`` (default: the tolerance,
half a frame interval), so a late or dead camera costs at most that much latency and never stops the
stream. Cameras silent for ``camera_timeout`` are not waited for. Frames older than the last released
set, frames that can no longer join one, and sets older than ``max_age`` (capture time vs. the wall clock)
are dropped and counted: the engine works on the present, never on a backlog.

Frames on the *media clock* (playback as fast as the engine takes frames: ``serve --fast``, ``--replay
--fast``) have no present to keep up with: an incomplete set of them waits up to ``camera_timeout`` for the
missing cameras, and in the first ``camera_timeout`` after the first frame, cameras never heard from yet are
waited for too (captures start one after the other). So a capture that the machine's load delays by more
than half a frame still gets its frame into the set. A media-clock frame may name its set's cameras (meta
``set``, comma-separated: a lock-step replay of recorded frame sets, :class:`handstream.capture.process.LockStep`):
the set then waits for exactly those cameras, up to :data:`SET_WAIT_NS`, and for no other.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from handstream.transport.messages import FrameMessage

SET_WAIT_NS = 10_000_000_000
"""How long a set whose frames name their cameras (meta ``set``) waits for the missing ones."""


@dataclass
class FrameSet:
    """Frames of one instant.

    Attributes:
        frames: camera name -> frame, in rig order.
        t_ref_ns: capture time of the set (the newest member's).
        waited_ms: how long the set's first frame waited for the others.
        complete: every live camera is in the set.
    """

    frames: dict[str, FrameMessage]
    t_ref_ns: int
    waited_ms: float
    complete: bool


@dataclass
class SyncCounters:
    sets: int = 0
    incomplete: int = 0
    stale: int = 0
    late: int = 0
    unmatched: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(vars(self))


@dataclass
class _Waiting:
    msg: FrameMessage
    arrival: float  # monotonic seconds


@dataclass
class FrameSync:
    """Groups frames by capture time (see the module docstring).

    Args:
        cameras: expected cameras, in rig order.
        tolerance_ns: maximum capture-time difference within a set.
        wait_ns: how long an incomplete set waits for missing cameras.
        camera_timeout_ns: a camera not heard from for this long is not waited for.
        max_age_ns: sets whose capture time is older than this (wall clock) are dropped (0: never;
            also skipped for frames on the media clock).
    """

    cameras: list[str]
    tolerance_ns: int
    wait_ns: int
    camera_timeout_ns: int = 500_000_000
    max_age_ns: int = 250_000_000
    counters: SyncCounters = field(default_factory=SyncCounters)
    _waiting: dict[str, _Waiting] = field(default_factory=dict)
    _last_seen: dict[str, float] = field(default_factory=dict)
    _last_t_ns: int | None = None
    _first_arrival: float | None = None

    def add(self, msg: FrameMessage, arrival: float | None = None) -> None:
        """Offer a frame (the newest of its camera from one drain)."""
        now = time.monotonic() if arrival is None else arrival
        self._last_seen[msg.camera] = now
        if self._first_arrival is None:
            self._first_arrival = now
        if self._last_t_ns is not None and msg.t_capture_ns <= self._last_t_ns + self.tolerance_ns:
            self.counters.late += 1  # belongs to an instant already released
            return
        if msg.camera in self._waiting:
            self.counters.unmatched += 1  # its older frame never found partners in time
        self._waiting[msg.camera] = _Waiting(msg, now)

    def live_cameras(self, now: float, media: bool = False) -> list[str]:
        """Cameras heard from within the camera timeout (media clock: also those never heard from, during the
        first camera timeout after the first frame)."""
        timeout = self.camera_timeout_ns * 1e-9
        starting = media and self._first_arrival is not None and now - self._first_arrival <= timeout
        return [
            c
            for c in self.cameras
            if now - self._last_seen.get(c, -1e18) <= timeout or (starting and c not in self._last_seen)
        ]

    def poll(self, now: float | None = None, now_wall_ns: int | None = None) -> tuple[FrameSet | None, float | None]:
        """Release a frame set when one is ready.

        Returns:
            (set or None, seconds until the waiting set is due, or None when nothing waits).
        """
        now = time.monotonic() if now is None else now
        while self._waiting:
            # the instant with the most cameras (newest on ties): a camera running ahead does not break up a set
            best: dict[str, _Waiting] = {}
            t_ref = -1
            for t in sorted({w.msg.t_capture_ns for w in self._waiting.values()}, reverse=True):
                group = {c: w for c, w in self._waiting.items() if abs(w.msg.t_capture_ns - t) <= self.tolerance_ns}
                if len(group) > len(best):
                    best, t_ref = group, max(w.msg.t_capture_ns for w in group.values())
            members = best
            ahead = {c for c, w in self._waiting.items() if c not in members and w.msg.t_capture_ns > t_ref}
            media = any(w.msg.meta.get("clock") == "media" for w in members.values())
            named = {c for w in members.values() for c in str(w.msg.meta.get("set") or "").split(",") if c}
            first = min(w.arrival for w in members.values())
            if media and named:  # the replay says which cameras this set has
                missing = (named & set(self.cameras)) - set(members) - ahead
                due = first + SET_WAIT_NS * 1e-9
            else:
                missing = set(self.live_cameras(now, media)) - set(members) - ahead  # whose frame may still come
                due = first + (self.camera_timeout_ns if media else self.wait_ns) * 1e-9
            if missing and now < due:
                return None, due - now
            complete = not missing and not ahead
            for c in [c for c in self._waiting if c not in members and c not in ahead]:
                del self._waiting[c]
                self.counters.unmatched += 1  # older than the released set: can never join one
            for c in members:
                del self._waiting[c]
            self._last_t_ns = t_ref
            wall = time.time_ns() if now_wall_ns is None else now_wall_ns
            if self.max_age_ns and not media and wall - t_ref > self.max_age_ns:
                self.counters.stale += 1
                continue
            self.counters.sets += 1
            self.counters.incomplete += not complete
            ordered = {c: members[c].msg for c in self.cameras if c in members}
            return FrameSet(ordered, t_ref, (now - first) * 1e3, complete), None
        return None, None
