"""Run the 2D network on a batch and decode it: the one infer -> decode -> gate step of every stage that
runs a network (the detect stage, the refine stage, the tracker's crop stage). A heatmap network is decoded by
its codec (:func:`infer_and_decode`); a landmarks network regresses one hand per crop (:func:`infer_landmarks`);
both give the same (N, H, K) layout to :func:`gate` and the triangulation.

Legend: ``N`` images in the batch (views, windows or crops), ``H`` hands (2), ``K`` joints (21).
"""

from __future__ import annotations

import time

import numpy as np

from handstream.engine.backends import Backend
from handstream.skeleton import HANDS, NUM_JOINTS


def infer_and_decode(
    backend: Backend, batch: np.ndarray, rays: np.ndarray | None, timings: dict[str, float]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Infer a batch and decode its heatmaps with the model's codec.

    Args:
        backend: an opened backend; batch: (N, 1, H_in, W_in) float32; rays: (N, 2, h, w) float32 or None.
        timings: ``infer`` and ``decode`` (ms) are set.
    Returns:
        keypoints (N, H, K, 2) float64 network input pixels (NaN = no peak), conf (N, H, K) float32 peak values
        (0 where NaN), presence (N, H) float32; NumPy arrays whatever the backend's device.
    """
    t0 = time.perf_counter()
    heatmaps, presence = backend.infer(batch, rays)
    t1 = time.perf_counter()
    kp, conf = backend.manifest.codec.decode(heatmaps)
    if not isinstance(kp, np.ndarray):  # CUDA tensors from the torch backend
        kp, conf, presence = kp.cpu().numpy(), conf.cpu().numpy(), presence.cpu().numpy()
    kp = np.asarray(kp, np.float64)
    conf = np.nan_to_num(np.asarray(conf, np.float32), nan=0.0)
    timings["infer"] = (t1 - t0) * 1e3
    timings["decode"] = (time.perf_counter() - t1) * 1e3
    return kp, conf, np.asarray(presence, np.float32)


def infer_landmarks(
    backend: Backend, batch: np.ndarray, hands: np.ndarray, timings: dict[str, float]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Infer a batch of one-hand crops with a ``landmarks`` model, in the heatmap step's layout.

    Args:
        backend: an opened landmarks backend (``infer_landmarks``); batch: (N, 3, H_in, W_in) float32 RGB in [0, 1].
        hands: (N,) the hand (index into :data:`~handstream.skeleton.HANDS`) each crop is for.
        timings: ``infer`` and ``decode`` (ms) are set.
    Returns:
        keypoints (N, H, K, 2) float64 crop px, the crop's own hand filled, NaN for the other; conf (N, H, K)
        float32: the crop's hand presence on every joint (the network gives no per-joint score; the tracker
        weighs joints by how the views agree after triangulation); presence (N, H) float32, 0 for the other hand;
        handedness (N,) float32, the network's probability that the crop holds a right hand.
    """
    t0 = time.perf_counter()
    out = backend.infer_landmarks(batch)
    t1 = time.perf_counter()
    n = len(hands)
    kp = np.full((n, len(HANDS), NUM_JOINTS, 2), np.nan)
    conf = np.zeros((n, len(HANDS), NUM_JOINTS), np.float32)
    presence = np.zeros((n, len(HANDS)), np.float32)
    rows = np.arange(n)
    kp[rows, hands] = out.keypoints
    conf[rows, hands] = out.presence[:, None]
    presence[rows, hands] = out.presence
    timings["infer"] = (t1 - t0) * 1e3
    timings["decode"] = (time.perf_counter() - t1) * 1e3
    return kp, conf, presence, np.asarray(out.handedness, np.float32).reshape(n)


def gate(
    keypoints: np.ndarray, conf: np.ndarray, presence: np.ndarray, confidence_threshold: float,
    presence_threshold: float,
) -> np.ndarray:  # fmt: skip
    """(..., H, K) bool: the joints that count: finite, peak >= ``confidence_threshold``, in a hand whose
    presence (..., H) >= ``presence_threshold``."""
    keep = (conf >= confidence_threshold) & (presence[..., None] >= presence_threshold)
    return keep & np.isfinite(keypoints).all(axis=-1)
