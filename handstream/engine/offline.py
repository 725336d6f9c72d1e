"""Per-view 2D detections of a whole recording, by the engine's own stages or by a teacher.

Legend: ``F`` frames, ``V`` views, ``H`` hands (2), ``K`` joints (21).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from handstream.capture.recording import Recording
from handstream.config import EngineConfig
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
) -> Detections2D:
    """Run an estimator over every frame of ``recording`` with :meth:`Pipeline.detect` (letterbox, rays,
    inference, decode, presence and confidence gating: exactly what the engine does).

    Args:
        model: a model path (``.onnx`` + manifest, or a ``.pt`` checkpoint) or an opened backend.
        engine: gating thresholds (presence, confidence); default :class:`EngineConfig`.
        refiner: a refiner model for the engine's refine stage (None: the detector's keypoints as they are;
            adaptation trains the detector and runs without it).
    Returns:
        :class:`Detections2D` with ``F = len(recording)``.
    """
    from handstream.engine.backends import open_backend
    from handstream.engine.pipeline import Pipeline
    from handstream.geometry import Rig

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
