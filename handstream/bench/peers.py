"""The peer timed on the same frames: MediaPipe's hand landmarker (VIDEO mode, one landmarker per view; its helpers are
:mod:`handstream.mediapipe`).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from handstream.bench.measure import summarize
from handstream.capture.material import FrameSets
from handstream.mediapipe import native_stderr_silenced


def run_mediapipe(frames: FrameSets, model: str | Path, *, count: int, handstream_ms: float | None,
                  warmup: int = 5) -> dict[str, Any]:  # fmt: skip
    """Time MediaPipe's HandLandmarker (VIDEO mode, 2 hands) on ``count`` multi-view frames, one landmarker per
    view (each view is its own video stream), the views one after another as a user would have to.

    Per view the time is the grey/BGR -> RGB conversion plus ``detect_for_video``. Returns ``per_view_ms``
    and ``per_frame_ms`` (sum over the views of a frame set) summaries, ``hands_per_view`` (mean hands found:
    MediaPipe's cost depends on it), ``ratio`` (MediaPipe per-frame p50 / ``handstream_ms``: > 1 means
    handstream, producing 3D, is faster) and the versions.
    """
    os.environ.setdefault("GLOG_minloglevel", "2")
    import cv2
    import mediapipe as mp
    from mediapipe.tasks.python import BaseOptions, vision

    opts = vision.HandLandmarkerOptions(
        base_options=BaseOptions(model_asset_path=str(model)), running_mode=vision.RunningMode.VIDEO, num_hands=2
    )
    with native_stderr_silenced():  # TFLite/glog chatter when a landmarker is created
        marks = [vision.HandLandmarker.create_from_options(opts) for _ in frames.cameras]
    period_ms = 1000.0 / (frames.fps or 30.0)
    per_view: list[float] = []
    per_frame: list[float] = []
    hands: list[int] = []
    quiet = native_stderr_silenced()
    quiet.__enter__()  # silenced through the warm-up frames (first inference logs too), restored below
    try:
        for i in range(warmup + count):
            if i == warmup:
                quiet.__exit__(None, None, None)
            ts = int(round(i * period_ms))
            total = 0.0
            for v, img in enumerate(frames.images[i % len(frames)]):
                t = time.perf_counter()
                rgb = cv2.cvtColor(img, cv2.COLOR_GRAY2RGB if img.ndim == 2 else cv2.COLOR_BGR2RGB)
                res = marks[v].detect_for_video(mp.Image(image_format=mp.ImageFormat.SRGB, data=rgb), ts)
                dt = (time.perf_counter() - t) * 1e3
                if i >= warmup:
                    per_view.append(dt)
                    hands.append(len(res.hand_landmarks))
                total += dt
            if i >= warmup:
                per_frame.append(total)
    finally:
        quiet.__exit__(None, None, None)
        for m in marks:
            m.close()
    pf = summarize(per_frame)
    ratio = round(pf["p50"] / handstream_ms, 3) if pf["p50"] and handstream_ms else None
    return {
        "available": True,
        "reason": None,
        "model": str(model),
        "version": getattr(mp, "__version__", None),
        "frames": count,
        "views": len(frames.cameras),
        "per_view_ms": summarize(per_view),
        "per_frame_ms": pf,
        "hands_per_view": round(float(np.mean(hands)), 3) if hands else None,
        "handstream_per_frame_ms": handstream_ms,
        "ratio": ratio,
    }
