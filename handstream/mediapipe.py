"""MediaPipe's hand landmarker as a teacher: per-view 2D keypoints of a whole recording.

Legend: ``F`` frames, ``V`` views, ``H`` hands (2: left, right), ``K`` joints (21, MediaPipe order, which is
:mod:`handstream.skeleton`'s).

Each camera is its own video stream: one ``HandLandmarker`` per view in VIDEO running mode (it tracks hands
from frame to frame), fed with monotonic timestamps derived from the frame index. What comes out, per view
and frame, is a :class:`~handstream.engine.offline.Detections2D` like the engine's own detect stage gives:

* **keypoints**: MediaPipe's normalized landmarks in frame pixels, ``x_px = x * width - 0.5`` (MediaPipe's
  normalized coordinates span the image edge to edge, so pixel ``i`` covers ``[i, i + 1) / width``; handstream
  puts pixel centres at integer coordinates; on the stereo clip, landmarks of flipped frames mapped back agree
  with those of the originals to 0.02 +- 0.11 px in x with this offset, -1 px without). Distorted pixels, as in
  the image. Landmarks that MediaPipe
  extrapolates outside the image are not observations: NaN.
* **conf**: MediaPipe gives no per-joint confidence. Each hand's handedness score (the probability of its
  left/right label, in [0.5, 1]; the hand is only reported once its presence passed ``min_score``) is copied
  to all its joints. It weighs the hand against the other views' in triangulation; it says nothing about
  which joint is accurate.
* **presence**: the same score per hand; 0 where the hand was not found.

Handedness: the Tasks API (mediapipe 0.10.15+, checked with 1.2.2) labels the *subject's* hands on the image
as given ("Passing a horizontally mirrored image will invert these outputs", its ``HandLandmarkerResult``
docstring). On the real stereo clip (``stereo_clip/cam0.mp4``, not mirrored: a right hand, palm down, thumb
towards the subject's left) it answers "Right", and "Left" on the flipped frame. So labels map straight to
``left``/``right``; pass ``mirrored=True`` for selfie-style recordings that were flipped horizontally (the
older ``mp.solutions.hands`` API assumed such input). Two hands with the same label in one view: the
higher-scoring one is kept.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

from handstream.capture.recording import Recording
from handstream.engine.offline import Detections2D
from handstream.errors import HandstreamError
from handstream.skeleton import HANDS, NUM_JOINTS

DEFAULT_FPS = 30.0
"""Frame rate assumed for the VIDEO-mode timestamps (recordings carry none); only their order matters."""

DEFAULT_LANDMARKER = Path(__file__).resolve().parents[2] / "shared" / "models" / "hand_landmarker_lite.task"
"""The hand landmarker bundle looked for when none is given: ``../shared/models`` beside a checkout."""


def mediapipe_unavailable(model: str | Path | None) -> str | None:
    """Why MediaPipe cannot be compared here (one line), or None when it can."""
    try:
        import mediapipe  # noqa: F401
        from mediapipe.tasks.python import vision  # noqa: F401
    except ImportError as exc:
        return f"mediapipe is not importable ({exc}); pip install 'handstream[teacher]'"
    if model is None:
        return (
            "no hand landmarker bundle: pass --mediapipe-model (e.g. hand_landmarker_lite.task; "
            f"looked for {DEFAULT_LANDMARKER})"
        )
    if not Path(model).is_file():
        return f"--mediapipe-model: {model}: file not found"
    return None


class native_stderr_silenced:  # noqa: N801 (a context manager used like a function)
    """Point file descriptor 2 at /dev/null (native libraries write there directly); re-entrant exit."""

    def __init__(self) -> None:
        self._saved: int | None = None

    def __enter__(self) -> native_stderr_silenced:
        try:
            sys.stderr.flush()
            self._saved = os.dup(2)
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, 2)
            os.close(null)
        except OSError:
            self._saved = None
        return self

    def __exit__(self, *exc: object) -> None:
        if self._saved is not None:
            os.dup2(self._saved, 2)
            os.close(self._saved)
            self._saved = None


def open_landmarkers(model_path: str | Path, count: int, *, min_score: float = 0.5) -> list:
    """``count`` MediaPipe ``HandLandmarker`` objects (VIDEO mode, 2 hands) on the ``.task`` bundle.

    Args:
        model_path: a hand landmarker ``.task`` bundle (e.g. Google's ``hand_landmarker.task``).
        min_score: MediaPipe's hand detection, presence and tracking confidences, in [0, 1].
    Raises:
        HandstreamError: one line when the file is missing or unreadable, or mediapipe is not installed.
    """
    path = Path(model_path)
    if not path.is_file():
        raise HandstreamError(f"{path}: hand landmarker model (.task bundle) not found")
    if not 0.0 <= float(min_score) <= 1.0:
        raise HandstreamError(f"teacher min_score: expected a number in [0, 1], got {min_score!r}")
    why = mediapipe_unavailable(path)
    if why is not None:
        raise HandstreamError(f"teacher: {why}")
    os.environ.setdefault("GLOG_minloglevel", "2")
    from mediapipe.tasks.python import BaseOptions, vision

    score = float(min_score)
    opts = vision.HandLandmarkerOptions(
        base_options=BaseOptions(model_asset_path=str(path)),
        running_mode=vision.RunningMode.VIDEO,
        num_hands=len(HANDS),
        min_hand_detection_confidence=score,
        min_hand_presence_confidence=score,
        min_tracking_confidence=score,
    )
    marks = []
    try:
        with native_stderr_silenced():  # TFLite/glog chatter on creation
            for _ in range(count):
                marks.append(vision.HandLandmarker.create_from_options(opts))
    except (RuntimeError, OSError, ValueError) as exc:
        for m in marks:
            m.close()
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise HandstreamError(f"{path}: cannot load as a MediaPipe hand landmarker bundle ({first})") from None
    return marks


def to_rgb(img: np.ndarray) -> np.ndarray:
    """(h, w) grey, (h, w, 1) grey or (h, w, 3) BGR uint8 -> (h, w, 3) RGB uint8, C-contiguous."""
    import cv2

    if img.ndim == 3 and img.shape[2] == 1:
        img = img[..., 0]
    code = cv2.COLOR_GRAY2RGB if img.ndim == 2 else cv2.COLOR_BGR2RGB
    return np.ascontiguousarray(cv2.cvtColor(img, code))


def hands_from_result(result, size: tuple[int, int], *, mirrored: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """One ``HandLandmarkerResult`` -> keypoints (H, K, 2) frame px (NaN = none) and score (H,) (0 = none).

    Args:
        size: (width, height) of the image, pixels.
        mirrored: the image was flipped horizontally (selfie view): swap MediaPipe's labels.
    """
    w, h = size
    kp = np.full((len(HANDS), NUM_JOINTS, 2), np.nan)
    score = np.zeros(len(HANDS), np.float32)
    for cats, lms in zip(result.handedness, result.hand_landmarks, strict=False):
        if not cats or len(lms) != NUM_JOINTS:
            continue
        label = (cats[0].category_name or cats[0].display_name or "").strip().lower()
        if label not in HANDS:
            continue
        if mirrored:
            label = "left" if label == "right" else "right"
        slot = HANDS.index(label)
        s = float(cats[0].score)
        if s <= score[slot]:
            continue  # a second hand with the same label: keep the higher score
        xy = np.array([(lm.x * w - 0.5, lm.y * h - 0.5) for lm in lms], dtype=np.float64)
        inside = (xy[:, 0] >= -0.5) & (xy[:, 0] <= w - 0.5) & (xy[:, 1] >= -0.5) & (xy[:, 1] <= h - 0.5)
        xy[~inside] = np.nan
        kp[slot], score[slot] = xy, s
    return kp, score


def teacher_recording(
    recording: Recording,
    model_path: str | Path,
    *,
    progress: bool = False,
    min_score: float = 0.5,
    mirrored: bool = False,
    fps: float = DEFAULT_FPS,
    desc: str = "teacher",
) -> Detections2D:
    """Run MediaPipe's hand landmarker over every view of every frame of ``recording``.

    Args:
        recording: the frames (any size, grey or BGR); its rig is not needed.
        model_path: hand landmarker ``.task`` bundle.
        min_score: MediaPipe's detection / presence / tracking confidence thresholds (its default 0.5).
        mirrored: the recording's images are horizontally flipped (selfie view): swap left and right.
        fps: frame rate for the VIDEO-mode timestamps, ``t_ms = frame_id * 1000 / fps``.
    Returns:
        :class:`Detections2D` (source ``teacher:<model_path>``): keypoints (F, V, H, K, 2) frame px, NaN where
        not found; conf (F, V, H, K) = the hand's score on every joint it has (no per-joint confidence from
        MediaPipe), 0 elsewhere; presence (F, V, H) = the hand's score, 0 where not found.
    Raises:
        HandstreamError: mediapipe missing, model file missing or unreadable.
    """
    F, V = len(recording), recording.num_views
    marks = open_landmarkers(model_path, V, min_score=min_score)  # checks the file and mediapipe first
    import mediapipe as mp

    out = Detections2D.empty(F, V, f"teacher:{model_path}")
    ids = np.asarray(recording.frame_ids, dtype=np.int64)
    if len(ids) != F or (F > 1 and not (np.diff(ids) > 0).all()):
        ids = np.arange(F)  # timestamps must increase: fall back to the position
    period_ms = 1000.0 / float(fps)
    it = range(F)
    if progress:
        from tqdm import tqdm

        it = tqdm(it, desc=desc, unit="frame")
    quiet = native_stderr_silenced()
    quiet.__enter__()  # the first inference logs from native code too
    try:
        last = -1
        for i in it:
            if i == 1:
                quiet.__exit__(None, None, None)
            ts = max(int(round(ids[i] * period_ms)), last + 1)
            last = ts
            for v in range(V):
                img = recording.images[v][i]
                res = marks[v].detect_for_video(mp.Image(image_format=mp.ImageFormat.SRGB, data=to_rgb(img)), ts)
                kp, score = hands_from_result(res, (img.shape[1], img.shape[0]), mirrored=mirrored)
                found = np.isfinite(kp).all(axis=-1)
                out.keypoints[i, v] = kp
                out.conf[i, v] = np.where(found, score[:, None], 0.0)
                out.presence[i, v] = score
    finally:
        quiet.__exit__(None, None, None)
        for m in marks:
            m.close()
    return out
