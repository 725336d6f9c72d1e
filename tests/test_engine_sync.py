"""FrameSync: grouping frames of several cameras by capture time, waiting, dropping."""

import numpy as np

from handstream.engine.sync import FrameSync
from handstream.transport.messages import FrameMessage

MS = 1_000_000
CAMS = ["a", "b", "c"]


def frame(cam: str, t_ms: float, meta=None) -> FrameMessage:
    return FrameMessage(cam, 0, int(t_ms * MS), np.zeros((2, 2), np.uint8), meta=meta or {})


def make(**kw) -> FrameSync:
    args = dict(tolerance_ns=16 * MS, wait_ns=16 * MS, camera_timeout_ns=500 * MS, max_age_ns=0)
    args.update(kw)
    return FrameSync(CAMS, **args)


def test_complete_set_is_released_at_once_in_rig_order():
    s = make()
    for cam in ("c", "a", "b"):
        s.add(frame(cam, 1000 + (cam == "b") * 3), arrival=10.0)
    fset, _ = s.poll(now=10.0)
    assert fset is not None and fset.complete
    assert list(fset.frames) == CAMS
    assert fset.t_ref_ns == 1003 * MS
    assert s.poll(now=10.0) == (None, None)


def test_incomplete_set_waits_for_the_late_camera_then_goes_without_it():
    s = make()
    for cam in CAMS:  # all three cameras are live
        s.add(frame(cam, 900), arrival=9.9)
    s.poll(now=9.9)
    s.add(frame("a", 1000), arrival=10.0)
    s.add(frame("b", 1000), arrival=10.0)
    fset, due = s.poll(now=10.005)
    assert fset is None and 0 < due <= 0.016
    s.add(frame("c", 1001), arrival=10.008)  # arrives in time: joins
    fset, _ = s.poll(now=10.008)
    assert fset.complete and len(fset.frames) == 3
    s.add(frame("a", 1033), arrival=10.04)
    s.add(frame("b", 1033), arrival=10.04)
    assert s.poll(now=10.05)[0] is None
    fset, _ = s.poll(now=10.057)  # c never comes: released after the wait
    assert fset is not None and not fset.complete and list(fset.frames) == ["a", "b"]
    assert s.counters.incomplete == 1


def test_a_camera_running_ahead_does_not_break_up_the_set():
    s = make()
    s.add(frame("a", 1033), arrival=10.0)  # a is one frame ahead
    s.add(frame("b", 1000), arrival=10.0)
    s.add(frame("c", 1000), arrival=10.0)
    fset, _ = s.poll(now=10.0)
    assert list(fset.frames) == ["b", "c"] and fset.t_ref_ns == 1000 * MS
    s.add(frame("b", 1033), arrival=10.03)
    s.add(frame("c", 1034), arrival=10.03)
    fset, _ = s.poll(now=10.03)
    assert list(fset.frames) == CAMS  # a's frame was kept for the next set


def test_dead_camera_is_not_waited_for():
    s = make(camera_timeout_ns=100 * MS)
    s.add(frame("c", 0), arrival=0.0)
    s.poll(now=0.0)
    s.add(frame("a", 1000), arrival=1.0)
    s.add(frame("b", 1000), arrival=1.0)
    fset, _ = s.poll(now=1.0)  # c silent for 1 s > timeout: no wait
    assert fset is not None and list(fset.frames) == ["a", "b"]


def test_late_and_stale_frames_are_dropped_and_counted():
    s = make(max_age_ns=100 * MS)
    now_wall = 10_000 * MS
    for cam in CAMS:
        s.add(frame(cam, 9_990), arrival=1.0)
    fset, _ = s.poll(now=1.0, now_wall_ns=now_wall)
    assert fset is not None
    s.add(frame("a", 9_985), arrival=1.01)  # older than the released set
    assert s.counters.late == 1
    for cam in CAMS:
        s.add(frame(cam, 9_800), arrival=1.02)  # 200 ms old: stale... but also late
    for cam in CAMS:
        s.add(frame(cam, 10_200), arrival=1.3)
    fset, _ = s.poll(now=1.3, now_wall_ns=10_500 * MS)  # 300 ms old at release
    assert fset is None and s.counters.stale == 1


def test_media_clock_frames_are_never_stale():
    s = make(max_age_ns=100 * MS)
    for cam in CAMS:
        s.add(frame(cam, 5, {"clock": "media"}), arrival=1.0)
    fset, _ = s.poll(now=1.0, now_wall_ns=10**18)
    assert fset is not None
