"""A crop model on real single-view images with 2D labels (``handstream eval --images DIR``): the
``annotations_op21.json`` layout of ``shared/data/real/images2d`` (:mod:`handstream.capture.images2d`).

Two ways in, both scored against the labels:

* **ideal**: the crop camera the tracker would make from a perfect track (:func:`handstream.geometry.crop_camera.
  hand_crop` around the labelled joints, the model's own margin, rolled upright): the network alone;
* **engine**: no label is used. The engine's acquisition finds the hand (a landmarks model: the search of
  :mod:`handstream.engine.search`, called until it finds a hand or has swept the image once; a heatmap crop model:
  the detector, ``detector``) and the tracker's crop rule makes the crop around what it found; the crop model then
  runs on that crop. A found hand is matched to the labelled hand nearest to it.

Per mode: ``hands`` labelled (at least 3 labelled joints), ``found`` (the model says a hand is there: presence >=
the engine's crop presence threshold, and for the engine mode within half a hand's size of a labelled hand),
``found_rate``, the 2D error of the found hands over the hand's size (mean over its labelled joints; the hand's
size is the longer side of the box of its labelled joints) as ``error_mean`` / ``error_median`` over hands, and
``pck_0.2`` (labelled joints of found hands within 0.2 of the hand's size). Images have no camera model: a
centred pinhole of ``fov_deg`` is assumed (it only shapes the crop's perspective).

Legend: ``K`` joints (21), ``N`` crops.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from handstream.capture.images2d import DEFAULT_REAL_FOV_DEG, LabelledImage, pinhole_for, read_annotations
from handstream.config import EngineConfig
from handstream.engine.backends import open_backend
from handstream.engine.crops import resample
from handstream.engine.estimate import infer_and_decode, infer_landmarks
from handstream.errors import HandstreamError
from handstream.geometry import Rig
from handstream.geometry.crop_camera import CropCamera, hand_crop
from handstream.skeleton import HANDS

PCK_AT = 0.2
"""PCK threshold, as a fraction of the hand's size."""
MATCH_AT = 0.5
"""Engine mode: a found hand counts for the labelled hand whose joints it lies within this fraction of the hand's
size of (mean distance), else it is a false find."""


def hand_size(keypoints: np.ndarray) -> float:
    """The longer side (px) of the box of a hand's labelled joints ((K, 2), NaN = not labelled)."""
    ok = np.isfinite(keypoints).all(axis=-1)
    return float((keypoints[ok].max(axis=0) - keypoints[ok].min(axis=0)).max())


class CropRunner:
    """Runs a crop model (landmarks or heatmap, perspective crops) on crop cameras of one image."""

    def __init__(self, model: str | Path, threads: int):
        self.backend = open_backend(model, "onnxruntime" if Path(model).suffix == ".onnx" else "auto", threads=threads)
        m = self.backend.manifest
        if m.crop is None or (m.crop or {}).get("camera") != "perspective":
            raise HandstreamError(
                f"{model}: --images evaluates a crop model of perspective crops (its manifest's crop.camera = "
                "'perspective': engines/handstream-crop.onnx or an imported MediaPipe network), not a detector"
            )
        self.landmarks = m.kind == "landmarks"
        self.size = tuple(int(v) for v in m.input_size)
        self.margin, self.min_side = float(m.crop["margin"]), float(m.crop.get("min_side", 0.0))

    def crop_for(self, camera, keypoints: np.ndarray) -> CropCamera | None:
        """The tracker's crop around 2D keypoints ((K, 2) frame px, NaN allowed) of one view."""
        return hand_crop(camera, camera.unproject(keypoints, depth=1.0), self.size, self.margin, self.min_side)

    def run(self, image: np.ndarray, crops: list[CropCamera], slots: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """Keypoints (N, K, 2) frame px and presence (N,) of hand ``slots[i]`` in crop ``i`` (a landmarks model
        says its own hand; a heatmap model's slot is the one asked for)."""
        timings: dict[str, float] = {}
        hands = np.asarray(slots, np.int64)
        if self.landmarks:
            batch = resample([image], [0] * len(crops), crops, color="rgb")
            kp, _, pres, _ = infer_landmarks(self.backend, batch, hands, timings)
        else:
            batch = resample([image], [0] * len(crops), crops)[:, None]
            m = self.backend.manifest
            rays = np.stack([c.ray_angles(m.codec.stride) for c in crops]) if m.kpe else None
            kp, _, pres = infer_and_decode(self.backend, batch, rays, timings)
        rows = np.arange(len(crops))
        frame = np.stack([c.to_frame(kp[i, hands[i]]) for i, c in enumerate(crops)])
        return frame, pres[rows, hands]


def _run_hand(runner: CropRunner, image: np.ndarray, crop: CropCamera, side: str | None) -> tuple[np.ndarray, float]:
    """(K, 2) frame px and presence of the hand in one crop. A heatmap model has a map per side: the labelled
    side's, or for a hand of unknown side the side it is surer of; a landmarks model says its own hand."""
    if runner.landmarks or side is not None:
        kp, pres = runner.run(image, [crop], [HANDS.index(side) if side else 0])
        return kp[0], float(pres[0])
    kp, pres = runner.run(image, [crop, crop], [0, 1])
    k = int(np.argmax(pres))
    return kp[k], float(pres[k])


def _score(errors: list[float], sizes: list[float], joint_errors: list[np.ndarray], hands: int) -> dict[str, Any]:
    found = len(errors)
    rel = np.array(errors) if errors else np.zeros(0)
    joints = np.concatenate(joint_errors) if joint_errors else np.zeros(0)
    return {
        "hands": hands,
        "found": found,
        "found_rate": found / hands if hands else float("nan"),
        "error_mean": float(rel.mean()) if found else float("nan"),
        "error_median": float(np.median(rel)) if found else float("nan"),
        f"pck_{PCK_AT:g}": float((joints < PCK_AT).mean()) if len(joints) else float("nan"),
        "hand_size_px_median": float(np.median(sizes)) if sizes else float("nan"),
    }


def _errors(pred: np.ndarray, label: np.ndarray) -> np.ndarray:
    """Per labelled joint, the 2D distance over the hand's size ((K,) for the labelled joints only)."""
    ok = np.isfinite(label).all(axis=-1)
    return np.linalg.norm(pred[ok] - label[ok], axis=-1) / hand_size(label)


def _hands(sample: LabelledImage) -> list:
    return [h for h in sample.hands if np.isfinite(h.keypoints).all(axis=-1).sum() >= 3]


def evaluate_images(
    images: str | Path,
    model: str | Path,
    *,
    detector: str | Path | None = None,
    threads: int = 0,
    fov_deg: float = DEFAULT_REAL_FOV_DEG,
    progress: bool = False,
    palm_detector: str | Path | None = None,
) -> dict[str, Any]:
    """Score a crop model on real labelled images, ideal crops and the engine's own acquisition (module docstring).

    Args:
        images: an ``annotations_op21.json`` or its folder (or a folder of such folders: every one is read).
        model: the crop model (``.onnx`` with its manifest): a landmarks model or a perspective heatmap crop model.
        detector: the engine mode's detector for a heatmap crop model (default: the shipped one).
        palm_detector: an imported palm detector: the engine's acquisition by search looks at its palms'
            windows first, the sweep where it finds none (landmarks crop models only).
    Returns:
        ``images``, ``model``, ``kind``, ``ideal`` and ``engine`` (the figures above), ``settings``, ``seconds``.
    """
    from handstream.models.defaults import DEFAULT_MODEL

    samples = _read_all(Path(images))
    runner = CropRunner(model, threads)
    threshold = EngineConfig().crop_presence_threshold
    det = None if runner.landmarks else open_backend(detector or DEFAULT_MODEL, "onnxruntime", threads=threads)
    palm = None
    if palm_detector is not None:
        if not runner.landmarks:
            raise HandstreamError(f"--palm-detector: acquisition by search needs a landmarks crop model, not {model}")
        from handstream.models.palm import PalmDetector

        palm = PalmDetector(palm_detector, threads=1)  # as the engine opens it
    ideal: dict[str, list] = {"errors": [], "sizes": [], "joints": []}
    engine: dict[str, list] = {"errors": [], "sizes": [], "joints": [], "false": []}
    total = 0
    t0 = time.perf_counter()
    iterator = samples
    if progress:
        from tqdm import tqdm

        iterator = tqdm(samples, desc="eval --images", unit="image")
    for sample in iterator:
        image = cv2.imread(str(sample.file), cv2.IMREAD_COLOR)
        if image is None:
            raise HandstreamError(f"{sample.file}: image not found or unreadable")
        cam = pinhole_for(image.shape[1], image.shape[0], fov_deg)
        hands = _hands(sample)
        total += len(hands)
        for hand in hands:  # ideal crops, from the labels
            crop = runner.crop_for(cam, hand.keypoints)
            if crop is None:
                continue
            kp, pres = _run_hand(runner, image, crop, hand.side)
            if pres >= threshold:
                _add(ideal, kp, hand.keypoints)
        found = _acquire(runner, det, cam, image, palm)
        _match(engine, found, hands, runner, image, cam, threshold)
    seconds = time.perf_counter() - t0
    return {
        "images": str(images),
        "model": str(model),
        "kind": runner.backend.manifest.kind,
        "frames": len(samples),
        "ideal": _score(ideal["errors"], ideal["sizes"], ideal["joints"], total),
        "engine": {**_score(engine["errors"], engine["sizes"], engine["joints"], total),
                   "false_finds": len(engine["false"])},  # fmt: skip
        "settings": {"pck_at": PCK_AT, "match_at": MATCH_AT, "presence_threshold": threshold, "fov_deg": fov_deg,
                     "acquire": (f"search, palm detector {palm_detector}" if palm is not None else "search")
                     if runner.landmarks else f"detector {detector or DEFAULT_MODEL}"},  # fmt: skip
        "seconds": round(seconds, 2),
    }


def _read_all(path: Path) -> list[LabelledImage]:
    """One annotation file, or every ``annotations_op21.json`` one level below a folder without its own."""
    from handstream.capture.images2d import ANNOTATIONS

    if path.is_dir() and not (path / ANNOTATIONS).is_file():
        files = sorted(path.glob(f"*/{ANNOTATIONS}"))
        if not files:
            raise HandstreamError(f"{path}: no {ANNOTATIONS} in it or in its sub-folders")
        return [s for f in files for s in read_annotations(f)]
    return read_annotations(path)


def _add(acc: dict[str, list], pred: np.ndarray, label: np.ndarray) -> None:
    e = _errors(pred, label)
    acc["errors"].append(float(e.mean()))
    acc["sizes"].append(hand_size(label))
    acc["joints"].append(e)


def _acquire(runner: CropRunner, det, cam, image: np.ndarray, palm=None) -> list[np.ndarray]:
    """The engine's acquisition on one image: the found hands' keypoints ((K, 2) frame px each)."""
    from handstream.engine.search import LandmarkSearch

    if runner.landmarks:
        search = LandmarkSearch({cam.name: cam}, runner.backend, palm=palm)
        sweeps = -(-len(search.windows[cam.name]) // search.crops_per_view)  # (palm windows first in each call)
        for _ in range(sweeps):  # as the engine does over frames, on the one image: until a hit, one sweep at most
            kp, pres = search([cam.name], [image])
            hits = [kp[0, h] for h in range(len(HANDS)) if pres[0, h] > 0]
            if hits:
                return hits
        return []
    from handstream.config import FilterConfig
    from handstream.engine.pipeline import Pipeline

    pipe = Pipeline(Rig([cam]), det, EngineConfig(tracking=False), FilterConfig(enabled=False))
    d = pipe.detect([cam.name], [image], {}, refine=False)
    return [d.keypoints[0, h] for h in range(len(HANDS)) if np.isfinite(d.keypoints[0, h]).all(axis=-1).sum() >= 3]


def _match(acc: dict[str, list], found: list[np.ndarray], hands: list, runner: CropRunner, image, cam,
           threshold: float) -> None:  # fmt: skip
    """Crop around each found hand, run the crop model, and score it against the nearest labelled hand."""
    used: set[int] = set()
    for kp in found:
        crop = runner.crop_for(cam, kp)
        if crop is None:
            continue
        # the slot: a landmarks model says its own hand; a heatmap model is asked for the labelled hand's side
        best, best_d = None, np.inf
        for i, hand in enumerate(hands):
            ok = np.isfinite(hand.keypoints).all(axis=-1) & np.isfinite(kp).all(axis=-1)
            d = np.linalg.norm(kp[ok] - hand.keypoints[ok], axis=-1).mean() / hand_size(hand.keypoints) if ok.any() \
                else np.inf  # fmt: skip
            if i not in used and d < best_d:
                best, best_d = i, d
        pred, pres = _run_hand(runner, image, crop, None if best is None else hands[best].side)
        if pres < threshold:
            continue
        if best is None:
            acc["false"].append(kp)
            continue
        label = hands[best].keypoints
        ok = np.isfinite(label).all(axis=-1)
        if np.linalg.norm(pred[ok] - label[ok], axis=-1).mean() / hand_size(label) > MATCH_AT:
            acc["false"].append(kp)
            continue
        used.add(best)
        _add(acc, pred, label)
