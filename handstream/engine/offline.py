"""Per-view 2D detections of a whole recording, by the engine's own stages or by a teacher.

Legend: ``F`` frames, ``V`` views, ``H`` hands (2), ``K`` joints (21).

Two ways through the engine: :func:`predict_recording` runs a heatmap detector on every whole frame (the
detect-every-frame path); :func:`track_recording` runs the tracked path with a crop model (e.g. MediaPipe's
imported landmark network, which only sees one hand per crop and so cannot run on whole frames), frame sets in
order as live. :func:`predict_recording` given a ``landmarks`` model hands it to :func:`track_recording`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from handstream.capture.recording import Recording
from handstream.config import EngineConfig
from handstream.errors import HandstreamError
from handstream.skeleton import HANDS, NUM_JOINTS


@dataclass
class Detections2D:
    """2D detections of every view of every frame.

    Attributes:
        keypoints: (F, V, H, K, 2) float64 frame pixels (distorted, as in the image); NaN = not detected.
        conf: (F, V, H, K) float32 confidences in [0, 1] (heatmap peaks, or the teacher's scores); 0 = none.
        presence: (F, V, H) float32 hand presence probabilities per view.
        source: who made them (``model:<path>`` or ``teacher:<path>``).
    """

    keypoints: np.ndarray
    conf: np.ndarray
    presence: np.ndarray
    source: str = ""

    @classmethod
    def empty(cls, frames: int, views: int, source: str = "") -> Detections2D:
        H, K = len(HANDS), NUM_JOINTS
        return cls(
            np.full((frames, views, H, K, 2), np.nan),
            np.zeros((frames, views, H, K), np.float32),
            np.zeros((frames, views, H), np.float32),
            source,
        )

    def save(self, path: str | Path) -> None:
        np.savez_compressed(path, keypoints=self.keypoints, conf=self.conf, presence=self.presence, source=self.source)

    @classmethod
    def load(cls, path: str | Path) -> Detections2D:
        with np.load(path) as z:
            return cls(z["keypoints"], z["conf"], z["presence"], str(z["source"]))


def predict_recording(
    recording: Recording,
    model,
    *,
    engine: EngineConfig | None = None,
    threads: int = 0,
    progress: bool = False,
    desc: str = "predicting",
    refiner: str | Path | None = None,
    palm=None,
) -> Detections2D:
    """Run an estimator over every frame of ``recording`` with :meth:`Pipeline.detect` (letterbox, rays,
    inference, decode, presence and confidence gating: exactly what the engine does).

    Args:
        model: a model path (``.onnx`` + manifest, or a ``.pt`` checkpoint) or an opened backend; a ``landmarks``
            model (manifest ``kind``) goes to :func:`track_recording` (``refiner`` is then not used).
        engine: gating thresholds (presence, confidence); default :class:`EngineConfig`.
        refiner: a refiner model for the engine's refine stage (None: the detector's keypoints as they are;
            adaptation trains the detector and runs without it).
        palm: with a landmarks model, an imported palm detector (path or :class:`~handstream.models.palm.
            PalmDetector`) guiding its search (:func:`track_recording`); None: none.
    Returns:
        :class:`Detections2D` with ``F = len(recording)``.
    """
    from handstream.engine.backends import open_backend
    from handstream.engine.pipeline import Pipeline
    from handstream.geometry import Rig

    if _is_landmarks(model):  # one hand per crop: it runs on the tracked path (the refiner is not used)
        return track_recording(recording, model, engine=engine, threads=threads, progress=progress, desc=desc,
                               palm=palm)  # fmt: skip
    if palm is not None:
        raise HandstreamError("--palm-detector: only with a landmarks crop model (it guides acquisition by search)")
    backend = open_backend(model, threads=threads) if isinstance(model, (str, Path)) else model
    rig = recording.rig
    if rig is None:
        raise ValueError("predict_recording needs the cameras' intrinsics: give the recording a rig")
    refine = open_backend(refiner, threads=threads) if refiner else None
    # the engine's detect stage frame by frame (+ its refine stage): the detect-every-frame path, not tracking
    engine = dataclasses.replace(engine or EngineConfig(), tracking=False)
    pipe = Pipeline(Rig(list(rig)), backend, engine, refiner=refine)
    out = Detections2D.empty(
        len(recording), recording.num_views, f"model:{model}" if isinstance(model, (str, Path)) else "model"
    )
    it = range(len(recording))
    if progress:
        from tqdm import tqdm

        it = tqdm(it, desc=desc, unit="frame")
    timings: dict[str, float] = {}
    for i in it:
        imgs = [recording.images[v][i] for v in range(recording.num_views)]
        det = pipe.detect(recording.names, imgs, timings)
        out.keypoints[i] = det.keypoints
        out.conf[i] = det.conf
        out.presence[i] = det.presence
    return out


def _is_landmarks(model) -> bool:
    """``model`` (a path with a manifest, or an opened backend) is a ``landmarks`` crop model."""
    if not isinstance(model, (str, Path)):
        return getattr(getattr(model, "manifest", None), "kind", None) == "landmarks"
    from handstream.models.manifest import load_manifest, manifest_path

    return (
        Path(model).suffix.lower() == ".onnx"
        and manifest_path(model).is_file()
        and (load_manifest(model)[0].kind == "landmarks")
    )


def track_recording(
    recording: Recording,
    crop_model,
    *,
    detector=None,
    engine: EngineConfig | None = None,
    fps: float = 30.0,
    threads: int = 0,
    progress: bool = False,
    desc: str = "tracking",
    palm=None,
) -> Detections2D:
    """Run the engine's tracked path (:class:`handstream.engine.tracking.Tracker`) over ``recording``, frame sets
    in order as live, and keep each view's 2D keypoints of each hand.

    Args:
        crop_model: the tracker's crop model: a path (``.onnx`` + manifest) or an opened backend; a ``landmarks``
            model acquires hands by search (``engine.acquire = "auto"``), a heatmap crop model by the detector.
        detector: the whole-frame detector (path or backend) the pipeline needs for acquisition by detector
            (default: the shipped one; not run when acquisition is by search).
        engine: the engine's settings (default :class:`EngineConfig`); tracking is on and 2D joints are kept.
        fps: the frame rate the capture times are made from (frame ids / fps: the tracker's velocity model).
        palm: an imported palm detector (path or opened) guiding the search (``model.palm_detector``); None: none.
    Returns:
        :class:`Detections2D` with ``F = len(recording)``: ``keypoints`` the crops' keypoints in frame px
        (distorted) in the views the tracker looked at (NaN elsewhere and where gated); ``conf`` the engine's
        per-joint confidence of the hand (for a landmarks model: presence x the share of agreeing views x the
        reprojection fit, :func:`handstream.engine.triangulation.agreement_confidence`) in those views, 0 where
        the joint was not triangulated or the hand not tracked; ``presence`` the hand's crop-model presence in
        the views with keypoints (0 elsewhere; an untracked hand keeps the presence the tracker reports).
    """
    from handstream.config import FilterConfig
    from handstream.engine.backends import open_backend
    from handstream.engine.pipeline import Pipeline
    from handstream.geometry import Rig

    rig = recording.rig
    if rig is None:
        raise ValueError("track_recording needs the cameras' calibration: give the recording a rig")
    crop = open_backend(crop_model, threads=threads) if isinstance(crop_model, (str, Path)) else crop_model
    if detector is None:
        from handstream.models.defaults import DEFAULT_MODEL

        detector = DEFAULT_MODEL
    det_backend = open_backend(detector, threads=threads) if isinstance(detector, (str, Path)) else detector
    engine = dataclasses.replace(engine or EngineConfig(), tracking=True, include_2d=True)
    if isinstance(palm, (str, Path)):
        from handstream.models.palm import PalmDetector

        palm = PalmDetector(palm)
    pipe = Pipeline(Rig(list(rig)), det_backend, engine, FilterConfig(enabled=False), refiner=crop, palm=palm)
    source = f"tracked:{crop_model}" if isinstance(crop_model, (str, Path)) else "tracked"
    source += f" + palm:{palm.path}" if palm is not None else ""
    out = Detections2D.empty(len(recording), recording.num_views, source)
    view_of = {n: v for v, n in enumerate(recording.names)}
    it = range(len(recording))
    if progress:
        from tqdm import tqdm

        it = tqdm(it, desc=desc, unit="frame")
    for i in it:
        t_ns = int(round(float(recording.frame_ids[i]) * 1e9 / fps))
        msg = pipe.process(recording.frame(i), t_ns)
        for h, hand in enumerate(msg.hands):
            if hand.joints_2d is None or not np.isfinite(hand.joints_2d).any():
                out.presence[i, :, h] = hand.presence  # not tracked: what the search or the crops said
                continue
            conf = np.nan_to_num(np.asarray(hand.conf, np.float32), nan=0.0)  # (K,) 0 where not triangulated
            for j, name in enumerate(msg.views):
                v = view_of[name]
                kp = np.asarray(hand.joints_2d[j], np.float64)  # (K, 2)
                seen = np.isfinite(kp).all(axis=-1)
                if not seen.any():
                    continue
                out.keypoints[i, v, h] = kp
                out.conf[i, v, h] = np.where(seen, conf, 0.0)
                out.presence[i, v, h] = hand.presence
    return out
