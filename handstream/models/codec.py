"""One codec for training targets and inference decoding (as mmpose's codecs), so the two cannot disagree.

Legend: ``H`` hands (2), ``K`` joints (21), ``(h, w)`` heatmap size, ``...`` any leading dims.

Heatmap cell ``(i, j)`` covers input pixels ``stride*j .. stride*j + stride-1`` (x), so its centre is the
input coordinate ``(j + 0.5) * stride - 0.5`` (OpenCV convention: pixel centres at integers). Targets are
unnormalised Gaussians (peak 1) centred at the keypoint's sub-pixel position, so the decoder's peak value
is a confidence in [0, 1] and DARK refinement (same ``sigma``) recovers the sub-pixel position.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from handstream.errors import HandstreamError
from handstream.ops import decode_heatmaps
from handstream.skeleton import HANDS, NUM_JOINTS


@dataclass(frozen=True)
class HeatmapCodec:
    """Keypoints in network-input pixels <-> heatmaps ``(H*K, h, w)`` (left hand's 21 maps, then the right's).

    Attributes:
        input_size: (W_in, H_in) of the network input.
        stride: input pixels per heatmap cell.
        sigma: Gaussian standard deviation in heatmap cells (also DARK's blur).
        refine: sub-pixel refinement for decoding (``"dark"``, ``"quadratic"`` or None).
    """

    input_size: tuple[int, int] = (256, 192)
    stride: int = 4
    sigma: float = 2.0
    refine: str | None = "dark"

    def __post_init__(self) -> None:
        if self.stride < 1 or min(self.input_size) < self.stride:
            raise HandstreamError(f"codec: stride {self.stride} does not fit input size {self.input_size}")

    @property
    def heatmap_size(self) -> tuple[int, int]:
        """(w, h) of the heatmaps."""
        return -(-self.input_size[0] // self.stride), -(-self.input_size[1] // self.stride)

    @property
    def num_maps(self) -> int:
        return len(HANDS) * NUM_JOINTS

    def to_heatmap(self, points: np.ndarray) -> np.ndarray:
        """(..., 2) input pixels -> heatmap cells."""
        return (np.asarray(points, dtype=np.float64) + 0.5) / self.stride - 0.5

    def to_input(self, cells: np.ndarray) -> np.ndarray:
        """(..., 2) heatmap cells -> input pixels."""
        return (np.asarray(cells, dtype=np.float64) + 0.5) * self.stride - 0.5

    def encode(self, keypoints: np.ndarray, weight: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Training targets.

        Args:
            keypoints: (H, K, 2) input pixels; NaN for unknown; inf (or any point outside the input) for
                a joint known not to be in view, e.g. every joint of an absent hand.
            weight: optional (H, K) per-joint weight (e.g. 1 visible, 0.5 occluded, 0 absent).
        Returns:
            heatmaps (H*K, h, w) float32 and target weights (H*K,) float32. A keypoint outside the
            heatmap gets an all-zero map with its weight kept (it teaches "no peak here", as does an
            absent hand); a NaN keypoint (unknown) gets weight 0, so the loss ignores its map.
        """
        kp = np.asarray(keypoints, dtype=np.float64).reshape(-1, 2)
        if kp.shape[0] != self.num_maps:
            raise HandstreamError(
                f"codec.encode: expected ({len(HANDS)}, {NUM_JOINTS}, 2) keypoints, got {np.shape(keypoints)}"
            )
        w_in = np.ones(len(kp)) if weight is None else np.asarray(weight, dtype=np.float64).reshape(-1)
        w, h = self.heatmap_size
        c = self.to_heatmap(kp)
        inside = (
            np.isfinite(c).all(axis=1)
            & (c[:, 0] >= -0.5)
            & (c[:, 0] <= w - 0.5)
            & (c[:, 1] >= -0.5)
            & (c[:, 1] <= h - 0.5)
        )
        c = np.where(inside[:, None], c, -1e4)
        inv = -0.5 / self.sigma**2
        gx = np.exp(inv * (np.arange(w)[None, :] - c[:, :1]) ** 2)
        gy = np.exp(inv * (np.arange(h)[None, :] - c[:, 1:]) ** 2)
        maps = (gy[:, :, None] * gx[:, None, :]).astype(np.float32)
        known = ~np.isnan(kp).any(axis=1)
        return maps, np.where(known, w_in, 0.0).astype(np.float32)

    def decode(self, heatmaps) -> tuple[np.ndarray, np.ndarray]:
        """Predictions -> keypoints.

        Args:
            heatmaps: (..., H*K, h, w) float32 (NumPy, or a torch tensor: CUDA tensors decode on the GPU).
        Returns:
            keypoints (..., H, K, 2) in input pixels and confidence (..., H, K) (the peak value); the
            type follows the input (NumPy or torch). NaN where a map has no peak.
        """
        coords, conf = decode_heatmaps(heatmaps, self.refine, sigma=self.sigma)
        lead = tuple(conf.shape[:-1])
        coords = (coords + 0.5) * self.stride - 0.5
        return coords.reshape(*lead, len(HANDS), NUM_JOINTS, 2), conf.reshape(*lead, len(HANDS), NUM_JOINTS)
