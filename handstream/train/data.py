"""Training datasets: synthetic per-view samples and real 2D-labelled images -> training items; the epoch sampler.

Legend: ``H`` hands (2: left, right), ``K`` joints (21), ``V`` views.

:class:`SynthViews` (a ``handstream synth render`` folder) and :class:`Images2D` (real images with 2D
keypoints) index their items and make them with :mod:`handstream.train.items` (whole inputs, window crops)
or :mod:`handstream.train.perspective` (perspective crops); the item dict is described there.
:class:`EpochSampler` draws an epoch over concatenated sources (DDP: each rank its share), :func:`collate`
stacks items into a batch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from handstream.capture.images2d import DEFAULT_REAL_FOV_DEG, pinhole_for, read_annotations
from handstream.errors import HandstreamError
from handstream.skeleton import NUM_JOINTS
from handstream.train.items import OUT_OF_FRAME, SampleSpec, make_crop_item, make_item
from handstream.train.perspective import make_perspective_item

"""Horizontal field of view assumed for real images that come without a camera model (pinhole, centred)."""


class SynthViews(torch.utils.data.Dataset):
    """One item per (frame, view) of a synthetic dataset folder (``handstream synth render``).

    Args:
        root: dataset folder; spec: how to make items; seed: augmentation seed (with the item index and
            :meth:`set_epoch`'s epoch, so runs are reproducible and workers independent).
    """

    def __init__(self, root: str | Path, spec: SampleSpec, seed: int = 0):
        from handstream.synth.dataset import SynthDataset

        self.data = SynthDataset(root)
        self.root = Path(root)
        self.spec = spec
        self.seed = seed
        self.epoch = 0
        self.views = self.data.num_views
        self._seen: np.ndarray | None = None  # refiner items, listed on first use

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _hands_seen(self) -> np.ndarray:
        """(M, 3) int (frame, view, hand) with at least ``min_joints`` joints in the frame: the refiner's items
        (a window around a hand the detector would report; random windows come from ``negatives``)."""
        if self._seen is None:
            rows = []
            for f in range(len(self.data)):
                lab = self.data.labels(f)
                v, kp = lab["visibility"], lab["keypoints_2d"]
                ok = ((v >= 0) & (v < OUT_OF_FRAME) & np.isfinite(kp).all(axis=-1)).sum(axis=-1) >= self.spec.min_joints
                rows += [(f, view, hand) for view, hand in zip(*np.nonzero(ok), strict=True)]
            self._seen = np.array(rows, np.int64).reshape(-1, 3)
        return self._seen

    def __len__(self) -> int:
        if self.spec.hand_crop is not None:
            return len(self._hands_seen())
        return len(self.data) * self.views

    def __getitem__(self, i: int) -> dict[str, Any]:
        i = int(i)
        hand = 0
        if self.spec.hand_crop is not None:
            frame, view, hand = (int(v) for v in self._hands_seen()[i])
        else:
            frame, view = divmod(i, self.views)
        lab = self.data.labels(frame)
        kp = lab["keypoints_2d"][view]
        vis = lab["visibility"][view].astype(np.int64)
        rng = np.random.default_rng([self.seed, self.epoch, i, hand]) if self.spec.augment is not None else None
        if self.spec.hand_crop is not None and self.spec.hand_crop.perspective:
            # validation (no augmentation): the engine's rule, and a fixed set of negatives for presence accuracy
            jitter = rng is not None
            rng = rng if jitter else np.random.default_rng([self.seed, i, hand, 1])
            img, cam = self.data.image(frame, view), self.data.rig[view]
            return make_perspective_item(
                self.spec, img, cam, lab["joints_3d"], vis, rng, hand, jitter=jitter, keypoints=kp
            )
        if self.spec.hand_crop is not None:
            return make_crop_item(self.spec, self.data.image(frame, view), self.data.rig[view], kp, vis, rng, hand)
        return make_item(self.spec, self.data.image(frame, view), self.data.rig[view], kp, vis, rng)


class Images2D(torch.utils.data.Dataset):
    """Real single-view images with 2D keypoints (the ``annotations_op21.json`` format of images2d).

    The JSON holds ``samples``: ``{file, width, height, hands: [{side, kpts2d: 21 x [x, y, v]}]}`` with
    joints in handstream's (MediaPipe/OpenPose) order, pixels. Supervision is 2D only: a joint with
    ``v > 0`` is a label, ``v == 0`` is unknown (weight 0). A hand's ``side`` ("left"/"right") puts it in
    that hand's maps; ``null`` (unknown) puts it in the left maps with ``hand_known = 0``, and the loss
    scores both assignments and keeps the better one (the other hand's maps get no supervision: an
    image may show a second, unlabelled hand). Without a camera model the rays come from a centred pinhole
    with ``fov_deg`` horizontal field of view (default 60 degrees).
    """

    def __init__(self, annotations: str | Path, spec: SampleSpec, seed: int = 0, fov_deg: float = DEFAULT_REAL_FOV_DEG):
        self.items = []
        for n, sample in enumerate(read_annotations(annotations)):
            kps = np.full((2, NUM_JOINTS, 2), np.nan)
            status = np.full((2, NUM_JOINTS), -1, np.int64)
            known = True
            used: set[int] = set()
            for hand in sample.hands:
                slot = {"left": 0, "right": 1}.get(hand.side, 0)
                if hand.side is None:
                    if len(sample.hands) > 1:
                        raise HandstreamError(f"{annotations}: samples[{n}]: several hands of unknown side cannot be "
                                              "assigned")  # fmt: skip
                    known = False
                if slot in used:
                    raise HandstreamError(f"{annotations}: samples[{n}]: two hands labelled {hand.side!r}")
                used.add(slot)
                lab = np.isfinite(hand.keypoints).all(axis=-1)
                kps[slot] = hand.keypoints
                status[slot] = np.where(lab, 0, -1)
            self.items.append((sample.file, kps, status, known))
        self.spec = spec
        self.seed = seed
        self.epoch = 0
        self.fov_deg = fov_deg

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, Any]:
        file, kps, status, known = self.items[int(i)]
        img = cv2.imread(str(file), cv2.IMREAD_COLOR)
        if img is None:
            raise HandstreamError(f"{file}: image not found or unreadable")
        cam = pinhole_for(img.shape[1], img.shape[0], self.fov_deg)
        rng = np.random.default_rng([self.seed, self.epoch, i]) if self.spec.augment is not None else None
        if self.spec.hand_crop is not None and self.spec.hand_crop.perspective:
            raise HandstreamError(f"{file}: perspective crops need 3D joints; 2D-labelled images have none")
        if self.spec.hand_crop is not None:
            labelled = [h for h in range(2) if (status[h] >= 0).any()] or [0]
            hand = labelled[int(rng.integers(len(labelled)))] if rng is not None else labelled[0]
            return make_crop_item(self.spec, img, cam, kps, status, rng, hand, hand_known=known)
        return make_item(self.spec, img, cam, kps, status, rng, hand_known=known)


class EpochSampler(torch.utils.data.Sampler):
    """Indices of one epoch over concatenated sources, each drawn ``repeat`` times its size, shuffled with
    (seed, epoch), split across ``world`` processes (rank r takes every world-th index; all ranks get the
    same count, so DDP steps stay in lockstep)."""

    def __init__(self, lengths: list[int], repeats: list[float], seed: int = 0, rank: int = 0, world: int = 1):
        self.lengths, self.repeats, self.seed, self.rank, self.world = lengths, repeats, seed, rank, world
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _all(self) -> np.ndarray:
        rng = np.random.default_rng([self.seed, self.epoch])
        parts, offset = [], 0
        for n, r in zip(self.lengths, self.repeats, strict=True):
            whole, frac = divmod(r, 1.0)
            idx = [np.arange(n)] * int(whole) + [rng.permutation(n)[: int(round(frac * n))]]
            parts.append(np.concatenate(idx) + offset)
            offset += n
        allidx = rng.permutation(np.concatenate(parts))
        usable = len(allidx) // self.world * self.world
        return allidx[:usable]

    def __iter__(self):
        return iter(self._all()[self.rank :: self.world].tolist())

    def __len__(self) -> int:
        total = sum(int(r // 1) * n + int(round((r % 1) * n)) for n, r in zip(self.lengths, self.repeats, strict=True))
        return total // self.world


def collate(items: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """Stack items (all of the same input size) into a batch."""
    return {k: torch.stack([it[k] for it in items]) for k in items[0]}
