"""MediaPipe's palm detector, decoded in the project: SSD anchors, box and keypoint decoding, weighted
non-maximum suppression, and the palm -> hand window rule. The network itself is imported on the user's machine
(:mod:`handstream.models.importer`: ``palm_detection_{full,lite}.tflite`` -> ONNX + a ``.palm.json`` manifest).

Legend: ``A`` anchors (2016), ``D`` detections.

The contract (MediaPipe 0.10's ``palm_detection_cpu.pbtxt``, :data:`SSD`):

* input ``(N, 3, 192, 192)`` float32 RGB in [0, 1] (``x / 255``), the whole frame letterboxed into the square
  (centred, black padding, as MediaPipe's ``ImageToTensorCalculator``); the ONNX graph is NCHW. (In [-1, 1], the
  range of the older 128 px detector, it fires on empty frames and misses real hands.)
* outputs ``(N, A, 18)`` raw boxes (x, y, w, h of the box centre and size, then 7 keypoints x, y, all in input
  pixels relative to the anchor) and ``(N, A, 1)`` raw scores (a logit, clipped to +-100).
* anchors: 4 layers with strides 8, 16, 16, 16 on the 192 input, 2 per cell per layer, fixed size 1: 24 x 24 x 2 +
  12 x 12 x 6 = 2016. Keypoints: 0 wrist, 1 index knuckle, 2 middle knuckle, 3 ring knuckle, 4 little knuckle,
  5 and 6 thumb.
* hand window: rotation from the wrist (keypoint 0) to the middle knuckle (2), the palm box's longer side x 2.6,
  moved half a side towards the fingers (MediaPipe's ``RectTransformationCalculator``: scale 2.6, shift_y -0.5).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from handstream.errors import HandstreamError

FORMAT = "handstream.palm-detector"
VERSION = 1
INPUT_SIZE = 192
SSD = {
    "num_layers": 4,
    "strides": [8, 16, 16, 16],
    "anchors_per_cell": 2,
    "anchor_offset": 0.5,
    "num_keypoints": 7,
    "score_clip": 100.0,
    "min_score": 0.5,
    "nms_iou": 0.3,
    "window_scale": 2.6,
    "window_shift": 0.5,
}
"""MediaPipe's options for the palm detector (SSD anchors, decoding, suppression, the hand window rule)."""
WRIST, MIDDLE_KNUCKLE = 0, 2


@dataclass
class PalmManifest:
    """The manifest of an imported palm detector (``NAME.onnx.json`` beside ``NAME.onnx``).

    Attributes:
        name, artifact: model name; the ONNX file's name, relative to the manifest.
        input_size: (192, 192) pixels; input_name / boxes / scores: tensor names.
        provenance, parity: where it came from; the check against the TFLite interpreter.
    """

    name: str
    artifact: str
    input_size: tuple[int, int] = (INPUT_SIZE, INPUT_SIZE)
    input_name: str = "input_1"
    boxes: str = "Identity"
    scores: str = "Identity_1"
    ssd: dict = field(default_factory=lambda: dict(SSD))
    provenance: dict = field(default_factory=dict)
    parity: dict = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["input_size"] = list(self.input_size)
        return {
            "format": FORMAT,
            "version": VERSION,
            "kind": "palm",
            **d,
            "input": f"{self.input_name} (N, 3, 192, 192) float32 RGB in [0, 1], the whole frame letterboxed (centred)",
            "outputs": {
                self.boxes: "(N, 2016, 18): box x, y, w, h and 7 keypoints x, y, input px relative to the anchors",
                self.scores: "(N, 2016, 1): logit of a palm",
            },
        }

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> PalmManifest:
        """Read ``path`` (the manifest, or the ``.onnx`` beside it); one-line errors name the file and field."""
        path = Path(path)
        if path.suffix == ".onnx":
            path = path.with_name(path.name + ".json")
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise HandstreamError(
                f"{path}: palm detector manifest not found (import it with handstream import-model)"
            ) from None
        except (OSError, ValueError) as exc:
            raise HandstreamError(f"{path}: not a readable JSON manifest ({exc})") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            got = data.get("format") if isinstance(data, dict) else type(data).__name__
            raise HandstreamError(f"{path}: 'format' must be {FORMAT!r} (a palm detector), got {got!r}")
        if data.get("version") != VERSION:
            raise HandstreamError(f"{path}: manifest version {data.get('version')!r} is not supported ({VERSION})")
        for key in ("name", "artifact", "input_name", "boxes", "scores"):
            if not isinstance(data.get(key), str):
                raise HandstreamError(f"{path}: field {key!r} must be a string, got {data.get(key)!r}")
        if data.get("input_size") != [INPUT_SIZE, INPUT_SIZE]:
            raise HandstreamError(f"{path}: 'input_size' must be [192, 192], got {data.get('input_size')!r}")
        return cls(
            name=data["name"], artifact=data["artifact"], input_name=data["input_name"], boxes=data["boxes"],
            scores=data["scores"], ssd={**SSD, **(data.get("ssd") or {})}, provenance=data.get("provenance") or {},
            parity=data.get("parity") or {},
        )  # fmt: skip


def anchors(size: int = INPUT_SIZE, ssd: dict = SSD) -> np.ndarray:
    """SSD anchor centres ``(A, 2)`` in [0, 1] (x, y), MediaPipe's order: layer by layer (layers of one stride
    together), row-major cells, ``anchors_per_cell`` per cell; every anchor's size is 1 (fixed)."""
    out = []
    strides = list(ssd["strides"])
    i = 0
    while i < len(strides):
        j = i
        while j < len(strides) and strides[j] == strides[i]:
            j += 1
        n = math.ceil(size / strides[i])
        per_cell = ssd["anchors_per_cell"] * (j - i)
        ys, xs = np.meshgrid((np.arange(n) + ssd["anchor_offset"]) / n, (np.arange(n) + ssd["anchor_offset"]) / n,
                             indexing="ij")  # fmt: skip
        cells = np.stack([xs.ravel(), ys.ravel()], axis=-1)
        out.append(np.repeat(cells, per_cell, axis=0))
        i = j
    return np.concatenate(out).astype(np.float32)


@dataclass
class Palm:
    """One decoded palm in frame pixels: ``box`` (x0, y0, x1, y1), ``keypoints`` (7, 2), ``score`` in [0, 1]."""

    box: np.ndarray
    keypoints: np.ndarray
    score: float

    def window(self, ssd: dict = SSD) -> tuple[np.ndarray, float, float]:
        """The hand window MediaPipe derives from this palm: (centre (2,) frame px, side px, roll radians).
        ``roll`` is :func:`handstream.engine.search.search_window`'s angle: the crop's down points from the middle
        knuckle to the wrist, so the hand comes out upright."""
        centre = (self.box[:2] + self.box[2:]) / 2
        side = float((self.box[2:] - self.box[:2]).max())
        up = self.keypoints[MIDDLE_KNUCKLE] - self.keypoints[WRIST]
        norm = float(np.hypot(*up))
        up = up / norm if norm > 1e-6 else np.array([0.0, -1.0])
        centre = centre + ssd["window_shift"] * side * up
        return centre, ssd["window_scale"] * side, math.atan2(-up[0], -up[1])


def letterbox(size: tuple[int, int], input_size: int = INPUT_SIZE) -> tuple[float, np.ndarray, tuple[int, int]]:
    """(scale, offset (2,), scaled size (w', h')) of a frame of ``size`` (w, h) letterboxed, centred, into the
    square input: input px = frame px x scale + offset."""
    w, h = size
    scale = input_size / max(w, h)
    sw, sh = max(1, round(w * scale)), max(1, round(h * scale))
    return scale, np.array([(input_size - sw) // 2, (input_size - sh) // 2], np.float64), (sw, sh)


def decode(boxes: np.ndarray, scores: np.ndarray, anchor_xy: np.ndarray, size: tuple[int, int],
           ssd: dict = SSD, min_score: float | None = None) -> list[Palm]:  # fmt: skip
    """One image's raw outputs ``boxes`` (A, 18) and ``scores`` (A,) or (A, 1) -> palms in the frame of ``size``
    (w, h), best first, after MediaPipe's weighted non-maximum suppression (boxes overlapping the best by IoU >
    ``nms_iou`` are averaged into it, weighted by score)."""
    s = ssd["score_clip"]
    logit = np.clip(np.asarray(scores, np.float64).reshape(-1), -s, s)
    score = 1.0 / (1.0 + np.exp(-logit))
    keep = np.flatnonzero(score >= (ssd["min_score"] if min_score is None else min_score))
    if keep.size == 0:
        return []
    raw = np.asarray(boxes, np.float64)[keep]
    a = anchor_xy[keep].astype(np.float64)
    n_in = INPUT_SIZE
    scale, offset, _ = letterbox(size, n_in)
    centre = raw[:, 0:2] / n_in + a
    half = raw[:, 2:4] / n_in / 2
    kp = raw[:, 4 : 4 + 2 * ssd["num_keypoints"]].reshape(len(keep), -1, 2) / n_in + a[:, None]
    box = np.concatenate([centre - half, centre + half], axis=-1) * n_in  # input px
    box = (box - np.tile(offset, 2)) / scale
    kp = (kp * n_in - offset) / scale
    return _weighted_nms(box, kp, score[keep], ssd["nms_iou"])


def _weighted_nms(box: np.ndarray, kp: np.ndarray, score: np.ndarray, iou_min: float) -> list[Palm]:
    order = np.argsort(-score)
    out = []
    while order.size:
        best = order[0]
        iou = _iou(box[best], box[order])
        group = order[iou > iou_min]
        w = score[group][:, None]
        out.append(Palm((box[group] * w).sum(0) / w.sum(), (kp[group] * w[:, :, None]).sum(0) / w.sum(),
                        float(score[best])))  # fmt: skip
        order = order[iou <= iou_min]
    return out


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    lo = np.maximum(a[:2], b[:, :2])
    hi = np.minimum(a[2:], b[:, 2:])
    inter = np.prod(np.clip(hi - lo, 0, None), axis=1)
    area = lambda x: np.prod(np.clip(x[..., 2:] - x[..., :2], 0, None), axis=-1)  # noqa: E731
    return inter / np.maximum(area(a) + area(b) - inter, 1e-12)


def palm_input(image: np.ndarray, color: str = "bgr", out: np.ndarray | None = None) -> np.ndarray:
    """``image`` (h, w, 3) uint8 BGR (``color="rgb"``: RGB) or (h, w) grey -> the detector's input
    (1, 3, 192, 192) float32 RGB in [0, 1], letterboxed, centred, black padding (:func:`letterbox`)."""
    import cv2

    h, w = image.shape[:2]
    _, (ox, oy), (sw, sh) = letterbox((w, h))
    ox, oy = int(ox), int(oy)
    sq = np.zeros((INPUT_SIZE, INPUT_SIZE, *image.shape[2:]), np.uint8)
    sq[oy : oy + sh, ox : ox + sw] = cv2.resize(image, (sw, sh), interpolation=cv2.INTER_AREA)
    if sq.ndim == 2:
        sq = np.repeat(sq[:, :, None], 3, axis=2)
    elif color == "bgr":
        sq = sq[:, :, ::-1]
    out = np.zeros((1, 3, INPUT_SIZE, INPUT_SIZE), np.float32) if out is None else out
    np.multiply(sq.transpose(2, 0, 1), 1.0 / 255.0, out=out[0])
    return out


class PalmDetector:
    """An imported palm detector run with ONNX Runtime (one image a call).

    Args:
        path: ``NAME.onnx`` (its ``NAME.onnx.json`` manifest beside it) or the manifest.
        threads: intra-op threads (the engine uses 1: beside the crop model's session, a second thread pool on
            the same cores spins against it).
    """

    def __init__(self, path: str | Path, threads: int = 1):
        self.manifest = PalmManifest.load(path)
        p = Path(path)
        folder = p.parent
        self.path = folder / self.manifest.artifact
        if not self.path.is_file():
            raise HandstreamError(f"{self.path}: the palm detector's ONNX file is missing (named by its manifest)")
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = int(threads)
        options.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own types for a bad file
            raise HandstreamError(
                f"{self.path}: ONNX Runtime cannot load it ({str(exc).splitlines()[0][:160]})"
            ) from None
        self.anchor_xy = anchors(INPUT_SIZE, self.manifest.ssd)
        self._input = np.zeros((1, 3, INPUT_SIZE, INPUT_SIZE), np.float32)

    def prepare(self, image: np.ndarray, color: str = "bgr") -> np.ndarray:
        """:func:`palm_input` into this detector's reused input buffer."""
        return palm_input(image, color, out=self._input)

    def __call__(self, image: np.ndarray, color: str = "bgr", min_score: float | None = None) -> list[Palm]:
        """The palms in ``image`` (see :meth:`prepare`), frame px, best first."""
        h, w = image.shape[:2]
        boxes, scores = self.session.run(
            [self.manifest.boxes, self.manifest.scores], {self.manifest.input_name: self.prepare(image, color)}
        )
        return decode(boxes[0], scores[0], self.anchor_xy, (w, h), self.manifest.ssd, min_score)
