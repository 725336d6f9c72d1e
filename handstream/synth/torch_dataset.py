"""PyTorch view of a synthetic dataset (this module imports torch; ``handstream.synth`` does not).

Legend: ``V`` views, ``H`` hands (2), ``K`` joints (21), ``A`` angles (22), ``C`` channels (1 mono, 3 BGR).

* ``SynthTorchDataset(root)``: one item per frame, all views: ``images`` (V, C, h, w) uint8 (all views
  must have the same size; otherwise a list of (C, h, w) tensors), ``keypoints_2d`` (V, H, K, 2),
  ``visibility`` (V, H, K) uint8, ``joints_3d`` (H, K, 3), ``hand_box`` (V, H, 4), ``angles`` (H, A),
  ``scale``, ``index``, ``sequence``, ``time_s``.
* ``SynthTorchDataset(root, per_view=True)``: one item per (frame, view), what a 2D estimator trains
  on: ``image`` (C, h, w) uint8, ``keypoints_2d`` (H, K, 2), ``visibility`` (H, K), ``hand_box``
  (H, 4), ``joints_3d`` (H, K, 3), the camera's ``K`` (3, 3), ``dist``, ``R`` (3, 3), ``t`` (3,),
  ``view``, ``index``.

Floats are float32. ``transform``, when given, is applied to each item (a dict) before it is returned.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from handstream.synth.dataset import SynthDataset


def _chw(img: np.ndarray) -> torch.Tensor:
    if img.ndim == 2:
        img = img[None]
    else:
        img = np.ascontiguousarray(img.transpose(2, 0, 1))
    return torch.from_numpy(np.ascontiguousarray(img))


def _f32(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))


class SynthTorchDataset(torch.utils.data.Dataset):
    """A :class:`~handstream.synth.dataset.SynthDataset` as a ``torch.utils.data.Dataset``.

    Args:
        root: dataset folder.
        per_view: one item per (frame, view) instead of per frame.
        transform: optional callable applied to each item dict.
    """

    def __init__(self, root: str | Path, *, per_view: bool = False, transform: Callable[[dict], Any] | None = None):
        self.data = SynthDataset(root)
        self.per_view = per_view
        self.transform = transform
        rig = self.data.rig
        self._cams = [{"K": _f32(cam.K), "dist": _f32(cam.dist), "R": _f32(cam.R), "t": _f32(cam.t)} for cam in rig]

    def __len__(self) -> int:
        return len(self.data) * (self.data.num_views if self.per_view else 1)

    def __getitem__(self, i: int) -> Any:
        if self.per_view:
            frame, view = divmod(int(i), self.data.num_views)
            lab = self.data.labels(frame)
            item = {
                "image": _chw(self.data.image(frame, view)),
                "keypoints_2d": _f32(lab["keypoints_2d"][view]),
                "visibility": torch.from_numpy(lab["visibility"][view].copy()),
                "hand_box": _f32(lab["hand_box"][view]),
                "joints_3d": _f32(lab["joints_3d"]),
                "view": view,
                "index": int(lab["frame_index"]),
                **self._cams[view],
            }
        else:
            sample = self.data[int(i)]
            images = [_chw(img) for img in sample.images]
            same = all(img.shape == images[0].shape for img in images)
            item = {
                "images": torch.stack(images) if same else images,
                "keypoints_2d": _f32(sample.keypoints_2d),
                "visibility": torch.from_numpy(sample.visibility.copy()),
                "joints_3d": _f32(sample.joints_3d),
                "hand_box": _f32(sample.hand_box),
                "angles": _f32(sample.angles),
                "scale": float(sample.scale),
                "index": sample.index,
                "sequence": sample.sequence,
                "time_s": sample.time_s,
            }
        return self.transform(item) if self.transform is not None else item
