"""The engine's thumbnail step (``engine.thumbnail_fps``), in process: resize + encode + send per frame set.

Two camera sets: the demo's 4 x 640x480 grey (synthetic renders of serve --demo's headset4 rig) and the real
stereo clip's 2 x 720x720 BGR (its first frames, decoded once). A real PosePublisher on a TCP port with one
subscriber of ``frame.`` reading in a thread (what ``handstream view --include-2d`` does), every frame set due
(the step's cost when it runs), then the same averaged over time at ``--thumbnail-fps`` out of ``--camera-fps``.

    python benchmarks/thumbnails.py [--sets 600] [--threads 1] [--clip ../shared/data/real/stereo_clip]
"""

from __future__ import annotations

import argparse
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import zmq

from handstream.engine.thumbnails import Thumbnails, thumbnail
from handstream.transport.messages import FrameMessage
from handstream.transport.pubsub import PosePublisher

ROOT = Path(__file__).resolve().parents[1]


def demo_frames(n: int) -> list[dict[str, np.ndarray]]:
    """``n`` distinct frame sets of the demo's 4 cameras, (480, 640) uint8 grey (random texture: the cost of
    INTER_AREA does not depend on the content)."""
    rng = np.random.default_rng(0)
    names = ["cam0", "cam1", "cam2", "cam3"]
    return [{c: rng.integers(0, 256, (480, 640), np.uint8) for c in names} for _ in range(n)]


def clip_frames(clip: Path, n: int) -> list[dict[str, np.ndarray]]:
    """The first ``n`` frame sets of the stereo clip, (720, 720, 3) uint8 BGR per camera."""
    caps = {c: cv2.VideoCapture(str(clip / f"{c}.mp4")) for c in ("cam0", "cam1")}
    out = []
    for _ in range(n):
        fset = {}
        for c, cap in caps.items():
            ok, img = cap.read()
            if not ok:
                break
            fset[c] = img
        if len(fset) < len(caps):
            break
        out.append(fset)
    return out


def measure(sets: list[dict[str, np.ndarray]], repeats: int) -> np.ndarray:
    """ms per frame set with every camera due, ``repeats`` sets (cycling through ``sets``)."""
    pub = PosePublisher("tcp://127.0.0.1:*")
    sub = zmq.Context.instance().socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"frame.")
    sub.connect(pub.endpoint)
    done = threading.Event()
    got = [0]

    def read() -> None:
        while not done.is_set():
            if sub.poll(50):
                sub.recv_multipart()
                got[0] += 1

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    time.sleep(0.3)  # the subscription reaches the publisher
    thumbs = Thumbnails(1e6)  # every set due
    out = np.empty(repeats)
    t_capture = time.time_ns()
    for i in range(repeats):
        fset = sets[i % len(sets)]
        frames = {c: FrameMessage(c, i, t_capture, img) for c, img in fset.items()}
        t0 = time.perf_counter()
        thumbs.publish(pub, frames, i)
        out[i] = (time.perf_counter() - t0) * 1e3
        time.sleep(0.002)  # a frame set every few ms, not back to back (as the engine: it infers in between)
    time.sleep(0.2)
    done.set()
    reader.join(1)
    pub.close()
    sub.close(linger=0)
    print(f"  received by the subscriber: {got[0]} of {thumbs.sent} (PUB drops for a slow subscriber)")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sets", type=int, default=600, help="timed frame sets per camera set")
    ap.add_argument("--threads", type=int, default=1, help="cv2.setNumThreads (0: OpenCV's default)")
    ap.add_argument("--clip", type=Path, default=ROOT.parent / "shared/data/real/stereo_clip")
    ap.add_argument("--thumbnail-fps", type=float, default=5.0)
    ap.add_argument("--camera-fps", type=float, default=30.0)
    a = ap.parse_args()
    if a.threads:
        cv2.setNumThreads(a.threads)
    cases = [("demo: 4 x 640x480 grey", demo_frames(16))]
    if (a.clip / "cam0.mp4").is_file():
        cases.append(("stereo clip: 2 x 720x720 BGR", clip_frames(a.clip, 16)))
    else:
        print(f"no stereo clip at {a.clip}: skipped")
    share = min(1.0, a.thumbnail_fps / a.camera_fps)
    print(f"cv2 threads {cv2.getNumThreads()}; averaged over time: {a.thumbnail_fps:g} thumbnails/s of "
          f"{a.camera_fps:g} frame sets/s")  # fmt: skip
    for name, sets in cases:
        ms = measure(sets, a.sets)
        small = thumbnail(next(iter(sets[0].values())))
        t0 = time.perf_counter()
        for fset in sets * 8:
            for img in fset.values():
                thumbnail(img)
        resize_ms = (time.perf_counter() - t0) * 1e3 / (8 * len(sets))
        name = f"{name} -> {small.shape[1]}x{small.shape[0]} (resize alone {resize_ms:.3f} ms a set)"
        p50, p99, mean = np.percentile(ms, 50), np.percentile(ms, 99), ms.mean()
        print(f"{name}: when due p50 {p50:.3f} ms, p99 {p99:.3f} ms, mean {mean:.3f} ms; "
              f"per frame set averaged over time {mean * share:.3f} ms")  # fmt: skip


if __name__ == "__main__":
    main()
