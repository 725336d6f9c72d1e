"""The outputs of a ``"landmarks"`` crop model (MediaPipe's hand landmark network, imported by
:mod:`handstream.models.importer`) decoded for a batch of crops: one hand per crop.

Legend: ``N`` crops, ``K`` joints (21, MediaPipe's order, which is :mod:`handstream.skeleton`'s).

The network has four outputs, two of 63 values per crop and two of one value:

* **landmarks** (N, 63): 21 x (x, y, z) in crop pixels. MediaPipe's x, y put 0 and the input width at the
  crop's edges (its normalised coordinates are x / W_in, edge to edge); handstream puts pixel centres at
  integers, so :attr:`LandmarkOutputs.keypoints` = (x, y) - 0.5 (the convention :mod:`handstream.mediapipe`
  measured on full frames). z is depth relative to the wrist, at about the scale of x; smaller is nearer.
* **presence** (N, 1): probability that the crop holds a hand (MediaPipe drops the hand below 0.5).
* **handedness** (N, 1): probability that the hand is a right hand, the subject's, in an unmirrored image
  (measured on the 8 FreiHAND right hands of ``shared/data/real/images2d``: >= 0.99 upright, <= 0.01 flipped).
* **world_landmarks** (N, 63): 21 x (x, y, z) metres, origin near the hand's centre.

How the tensors are told apart: by name when the manifest's ``output_roles`` and the session's output names
are given; otherwise by shape, then order. The two outputs of 63 values per crop are the landmark sets, the
two of one value the scores; within each pair MediaPipe's graph order decides (landmarks before world
landmarks, presence before handedness: its ``SplitTensorVectorCalculator`` reads them so), which the
importer checked against the names of the layers that produce them (``conv_landmarks``, ``conv_handflag``,
``conv_handedness``, ``conv_world_landmarks``) before it wrote the manifest.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from handstream.errors import HandstreamError
from handstream.skeleton import NUM_JOINTS

PIXEL_OFFSET = 0.5
"""MediaPipe's crop px (edges at 0 and W_in) minus handstream's (pixel centres at integers)."""
ROLES = ("landmarks", "presence", "handedness", "world_landmarks")


@dataclass
class LandmarkOutputs:
    """One batch of crops decoded.

    Attributes:
        keypoints: (N, 21, 2) float32 crop px, handstream's pixel centres (x right, y down).
        z: (N, 21) float32 depth relative to the wrist, about crop px; smaller = nearer the camera.
        presence: (N,) float32 probability that the crop holds a hand.
        handedness: (N,) float32 probability that the hand is the subject's right hand (unmirrored image).
        world: (N, 21, 3) float32 metres, origin near the hand's centre.
    """

    keypoints: np.ndarray
    z: np.ndarray
    presence: np.ndarray
    handedness: np.ndarray
    world: np.ndarray

    @classmethod
    def decode(
        cls,
        outputs: Sequence[np.ndarray] | Mapping[str, np.ndarray],
        names: Sequence[str] | None = None,
        roles: Mapping[str, str] | None = None,
    ) -> LandmarkOutputs:
        """Decode the raw outputs of a batch.

        Args:
            outputs: the session's outputs in its order (``session.run(None, ...)``), or a name -> array mapping.
            names: the output names in that order (for a sequence); with ``roles``, tensors are taken by name.
            roles: the manifest's ``output_roles`` (role -> output name).
        Returns:
            the decoded batch.
        Raises:
            HandstreamError (one line) when the outputs are not two of 63 values and two of one value per crop
            of one batch, or a role's name is missing.
        """
        if isinstance(outputs, Mapping):
            names, arrays = list(outputs), list(outputs.values())
        else:
            arrays = list(outputs)
        arrays = [np.asarray(a, np.float32) for a in arrays]
        if roles is not None and names is not None:
            by_name = dict(zip(names, arrays, strict=True))
            missing = [r for r in ROLES if roles.get(r) not in by_name]
            if missing:
                raise HandstreamError(f"landmark outputs: no output for {missing} (roles {dict(roles)}, got {names})")
            picked = [by_name[roles[r]] for r in ROLES]
        else:
            picked = _by_shape(arrays)
        n = len(picked[0])
        if any(a.ndim < 1 or len(a) != n for a in picked):
            raise HandstreamError(f"landmark outputs: batch sizes differ ({[a.shape for a in picked]})")
        lm, presence, handedness, world = (a.reshape(n, -1) for a in picked)
        if lm.shape[1] != 3 * NUM_JOINTS or world.shape[1] != 3 * NUM_JOINTS or presence.shape[1] != 1:
            raise HandstreamError(f"landmark outputs: shapes {[a.shape for a in picked]} are not (N, 63) / (N, 1)")
        lm = lm.reshape(n, NUM_JOINTS, 3)
        return cls(
            keypoints=lm[..., :2] - PIXEL_OFFSET,
            z=lm[..., 2].copy(),
            presence=presence[:, 0].copy(),
            handedness=handedness.reshape(n, -1)[:, 0].copy(),
            world=world.reshape(n, NUM_JOINTS, 3),
        )


def _by_shape(arrays: list[np.ndarray]) -> list[np.ndarray]:
    """landmarks, presence, handedness, world by shape, then MediaPipe's order (module docstring)."""
    per_crop = [int(np.prod(a.shape[1:])) if a.ndim >= 1 else -1 for a in arrays]
    sets = [a for a, k in zip(arrays, per_crop, strict=True) if k == 3 * NUM_JOINTS]
    scores = [a for a, k in zip(arrays, per_crop, strict=True) if k == 1]
    if len(arrays) != 4 or len(sets) != 2 or len(scores) != 2:
        raise HandstreamError(
            f"landmark outputs: expected 2 of (N, 63) and 2 of (N, 1), got {[tuple(a.shape) for a in arrays]}"
        )
    return [sets[0], scores[0], scores[1], sets[1]]
