"""decode_heatmaps: heatmaps -> sub-pixel peak coordinates and confidence (C++ or CUDA)."""

from __future__ import annotations

import numpy as np

from handstream.errors import HandstreamError
from handstream.ops import _native
from handstream.ops.reference import REFINE_CODES


def decode_heatmaps(heatmaps, refine: str | None = "dark", *, sigma: float = 2.0):
    """Locate the peak of every heatmap with sub-pixel refinement.

    Shapes: heatmaps ``(..., K, h, w)`` float32 (any leading dims, e.g. ``(V, H*K, h, w)``) ->
    ``coords (..., K, 2)`` float32 as (x, y) in heatmap pixels (pixel centres at integers; multiply by
    the stride to get input pixels) and ``conf (..., K)`` float32, the peak value.

    ``refine``: ``"dark"`` (Gaussian-blurred log-Taylor step, as DARK/mmpose; ``sigma`` is the blur in
    heatmap pixels and should match the training targets), ``"quadratic"`` (per-axis parabola), or
    ``None`` (integer argmax). A map containing NaN/inf gives NaN coords and conf; a flat map gives NaN
    coords and its value as conf. Never raises on map contents.

    NumPy arrays (and CPU tensors) run on the C++ kernel; a CUDA torch tensor runs on the CUDA kernel
    on the tensor's device and current stream, and returns CUDA tensors without a host copy.
    """
    if refine not in REFINE_CODES:
        raise HandstreamError(f"decode_heatmaps: refine must be 'dark', 'quadratic' or None, got {refine!r}")
    mode = REFINE_CODES[refine]
    if not (0.1 <= float(sigma) <= 6.0):
        raise HandstreamError(f"decode_heatmaps: sigma must be in [0.1, 6] heatmap pixels, got {sigma}")
    shape = tuple(heatmaps.shape)
    if len(shape) < 2 or shape[-1] < 1 or shape[-2] < 1:
        raise HandstreamError(f"decode_heatmaps: heatmaps must be (..., h, w) with h, w >= 1, got shape {shape}")
    lead, (h, w) = shape[:-2], shape[-2:]

    if _native.is_cuda_tensor(heatmaps):
        return _decode_cuda(heatmaps, lead, h, w, mode, float(sigma))
    if _native.is_tensor(heatmaps):
        import torch

        coords, conf = decode_heatmaps(heatmaps.detach().numpy(), refine, sigma=sigma)
        return torch.from_numpy(coords), torch.from_numpy(conf)

    maps = np.ascontiguousarray(heatmaps, dtype=np.float32).reshape(-1, h, w)
    coords, conf = _native.cpu().decode_heatmaps(maps, mode, float(sigma))
    return coords.reshape(*lead, 2), conf.reshape(lead)


def _decode_cuda(heatmaps, lead, h, w, mode, sigma):
    import torch

    module = _native.require_cuda()
    maps = heatmaps.detach().to(torch.float32).contiguous()
    n_maps = maps.numel() // (h * w)
    coords = torch.empty((*lead, 2), dtype=torch.float32, device=maps.device)
    conf = torch.empty(lead, dtype=torch.float32, device=maps.device)
    with torch.cuda.device(maps.device):
        module.decode_heatmaps(
            maps.data_ptr(), n_maps, h, w, mode, sigma, coords.data_ptr(), conf.data_ptr(), _native.stream_of(maps)
        )
    return coords, conf
