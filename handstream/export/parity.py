"""Parity: how far apart two runtimes of the same network are, on random and on real inputs.

Legend: ``N`` views, ``(H_in, W_in)`` input size, ``(h, w)`` heatmap size (input / stride), 42 heatmaps
(2 hands x 21 joints).

Every exported artifact is checked against the runtime it came from before it is kept: ONNX Runtime
against PyTorch (:mod:`handstream.export.onnx`), TensorRT against ONNX Runtime
(:mod:`handstream.export.tensorrt`). :func:`compare_outputs` measures the difference;
:func:`real_parity_inputs` makes inputs the way the engine does, from rendered camera frames.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from handstream.errors import HandstreamError

KEYPOINT_CONF = 0.2  # keypoint parity is measured on joints that both runtimes find with at least this peak


def as_float32(x) -> np.ndarray | None:
    """A torch tensor (any device) or array -> float32 NumPy array (None stays None)."""
    if x is None:
        return None
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.ascontiguousarray(x, dtype=np.float32)


def compare_outputs(cases, run, reference, codec) -> dict[str, Any]:
    """Run two runtimes on the same inputs and measure how far apart they are.

    Args:
        cases: list of ``(kind, image (N, 1, H_in, W_in), rays (N, 2, h, w) | None)`` NumPy float32;
            ``kind`` is ``"random"`` or ``"real"``.
        run, reference: ``f(image, rays) -> (heatmaps (N, 42, h, w), presence (N, 2))`` (NumPy or tensors).
        codec: decodes both heatmaps to keypoints (:class:`HeatmapCodec`).
    Returns:
        ``max_abs_diff`` {heatmaps, presence} over all cases, ``by_input`` the same per kind,
        ``keypoints_px``: the largest distance (input pixels) between the decoded keypoints of joints
        both runtimes find with a peak >= :data:`KEYPOINT_CONF` (None when no joint qualifies, e.g. an
        untrained network), ``keypoints_compared`` (how many), ``inputs`` (``"random x4"``, ...).
    """
    worst = {"heatmaps": 0.0, "presence": 0.0}
    by_input: dict[str, dict[str, float]] = {}
    kp_worst: float | None = None
    kp_count = 0
    for kind, image, rays in cases:
        got = [as_float32(v) for v in run(image, rays)]
        ref = [as_float32(v) for v in reference(image, rays)]
        slot = by_input.setdefault(kind, {"heatmaps": 0.0, "presence": 0.0})
        for key, a, b in zip(("heatmaps", "presence"), got, ref, strict=True):
            if a.shape != b.shape:
                raise HandstreamError(f"parity: {key} is {a.shape} from one runtime and {b.shape} from the other")
            d = float(np.abs(a.astype(np.float64) - b).max()) if a.size else 0.0
            d = d if np.isfinite(d) else float("inf")
            worst[key] = max(worst[key], d)
            slot[key] = max(slot[key], d)
        kp_a, conf_a = codec.decode(got[0])
        kp_b, conf_b = codec.decode(ref[0])
        both = (conf_a >= KEYPOINT_CONF) & (conf_b >= KEYPOINT_CONF)
        both &= np.isfinite(kp_a).all(-1) & np.isfinite(kp_b).all(-1)
        if both.any():
            d = float(np.linalg.norm(kp_a[both] - kp_b[both], axis=-1).max())
            kp_worst = d if kp_worst is None else max(kp_worst, d)
            kp_count += int(both.sum())
    return {
        "max_abs_diff": worst,
        "by_input": by_input,
        "keypoints_px": kp_worst,
        "keypoints_compared": kp_count,
        "inputs": [f"{kind} x{image.shape[0]}" for kind, image, _ in cases],
    }


def real_parity_inputs(
    input_size: tuple[int, int],
    stride: int = 4,
    kpe: bool = True,
    *,
    frames: int = 2,
    preset: str = "headset4",
    seed: int = 7,
) -> list[tuple[np.ndarray, np.ndarray | None]]:
    """Network inputs made the way the engine makes them, from rendered camera frames.

    Frames of a :class:`~handstream.synth.source.SyntheticSource` (every camera of ``preset``, hands
    in view) go through :func:`~handstream.models.preprocess.prepare_views` (grey, letterbox) and
    :func:`~handstream.models.kpe.ray_angles` (each camera's own lens model).

    Returns:
        one ``(image (V, 1, H_in, W_in), rays (V, 2, h, w) | None)`` pair of float32 arrays per frame,
        ``V`` = the preset's camera count (4 for ``headset4``).
    """
    from handstream.models.kpe import ray_angles
    from handstream.models.preprocess import prepare_views
    from handstream.synth.source import SyntheticSource

    out = []
    with SyntheticSource(preset, seed=seed, realtime=False, max_frames=frames) as source:
        for bundle in source:
            image, boxes = prepare_views(bundle.images, input_size)
            rays = None
            if kpe:
                rays = np.stack(
                    [ray_angles(source.rig[n], b, stride) for n, b in zip(bundle.cameras, boxes, strict=True)]
                )
            out.append((image.copy(), rays))
    return out


__all__ = ["KEYPOINT_CONF", "as_float32", "compare_outputs", "real_parity_inputs"]
