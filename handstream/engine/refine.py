"""The refine stage: a second, closer look at every hand the detector found (optional; on by default).

Legend: ``V`` views, ``H`` hands (2: left, right), ``K`` joints (21), ``J`` windows (<= V * H).

The detector sees each whole frame at 256x192, where a hand at arm's length is ~25 input pixels wide.
For every (view, hand) the detector reports (presence and >= 3 joints), this stage cuts a square window
around the hand's keypoints from the full-resolution frame (:mod:`handstream.models.crop`; the rule,
``margin`` x the box side, comes from the refiner's manifest), runs all windows of the frame set through
the refiner in one batch, and replaces that hand's keypoints in that view by the refiner's, mapped back to
frame pixels. Where the refiner says the window holds no such hand (presence below the threshold), the
hand is dropped from that view: a detector's false hand does not reach the triangulation.
"""

from __future__ import annotations

import numpy as np

from handstream.engine.backends import Backend
from handstream.engine.estimate import gate, infer_and_decode
from handstream.errors import HandstreamError
from handstream.geometry.camera import Camera
from handstream.models.crop import crop_image, crop_mapping, hand_box, window_side
from handstream.models.kpe import ray_angles
from handstream.models.preprocess import InputMapping


class Refiner:
    """Windows around detected hands -> refined keypoints.

    Args:
        backend: an opened backend whose manifest has a ``crop`` rule (a refiner, e.g.
            ``engines/handstream-refiner.onnx``).
        max_windows: the most windows per call (2 x the rig's views): buffers are allocated once.
    """

    def __init__(self, backend: Backend, max_windows: int):
        m = backend.manifest
        if m.crop is None:
            raise HandstreamError(
                f"refiner {m.name!r}: its manifest has no 'crop' rule, so it is a detector, not a refiner "
                "(train one with a [hand_crop] recipe, e.g. training/refiner.toml)"
            )
        if m.artifact_format == "tensorrt" and m.max_views < max_windows:  # ONNX/torch: any batch
            raise HandstreamError(
                f"refiner {m.name!r}: takes at most {m.max_views} windows per batch, the rig needs {max_windows} "
                "(2 per camera); rebuild it with a larger --max-views"
            )
        self.backend = backend
        self.manifest = m
        self.codec = m.codec
        self.margin = float(m.crop["margin"])
        self.min_side = float(m.crop.get("min_side", 0.0))
        w, h = m.input_size
        self._input = np.zeros((max_windows, 1, h, w), np.float32)
        self.windows: list[tuple[int, int, InputMapping]] = []  # (view, hand, frame -> window map) of the last call
        prepare = getattr(backend, "prepare", None)  # torch on CUDA: a CUDA graph per batch size
        if prepare is not None:
            prepare(range(1, max_windows + 1))

    def __call__(
        self,
        cameras: list[Camera],
        images: list[np.ndarray],
        keypoints: np.ndarray,
        conf: np.ndarray,
        presence: np.ndarray,
        presence_threshold: float,
        confidence_threshold: float,
    ) -> int:
        """Refine in place.

        Args:
            cameras, images: the V views (frames at their calibrated size).
            keypoints: (V, H, K, 2) float64 frame pixels, NaN = not detected (updated).
            conf: (V, H, K) float32, 0 where gated out (updated).
            presence: (V, H) float32 (updated with the refiner's presence for the windows it saw).
            presence_threshold, confidence_threshold: the engine's gates, applied to the refiner's output.
        Returns:
            the number of windows run.
        """
        jobs = []
        for v in range(keypoints.shape[0]):
            for h in range(keypoints.shape[1]):
                if presence[v, h] < presence_threshold:
                    continue
                box = hand_box(keypoints[v, h])
                if box is None:
                    continue
                center, side = box
                side = window_side(side, self.margin, self.min_side)
                jobs.append((v, h, crop_mapping(center, side, self.manifest.input_size)))
        self.windows = jobs
        if not jobs:
            return 0
        n = len(jobs)
        batch = self._input[:n]
        for j, (v, _, mapping) in enumerate(jobs):
            crop_image(images[v], mapping, out=batch[j, 0])
        rays = None
        if self.manifest.kpe:  # each window has its own rays; not cached (they change every frame)
            rays = np.stack([ray_angles(cameras[v], mapping, self.codec.stride, cache=False) for v, _, mapping in jobs])
        kp_in, c, pres = infer_and_decode(self.backend, batch, rays, {})  # (J, H, K, 2) window px, (J, H, K)
        for j, (v, h, mapping) in enumerate(jobs):
            k = mapping.to_frame(kp_in[j, h])
            keep = gate(k, c[j, h], pres[j, h], confidence_threshold, presence_threshold)
            keypoints[v, h] = np.where(keep[:, None], k, np.nan)
            conf[v, h] = np.where(keep, c[j, h], 0.0)
            presence[v, h] = pres[j, h]
        return n
