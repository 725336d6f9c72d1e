"""PyTorch backend: a training checkpoint served directly, on CPU or a CUDA device.

On CUDA the heatmaps stay on the device and are decoded there by ``handstream._cuda`` (the pipeline
passes the tensors through), so only keypoints cross back to the host.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from handstream.errors import HandstreamError


class TorchBackend:
    """Runs a checkpoint saved by ``handstream train`` (weights + network config; loaded with
    ``torch.load(weights_only=True)``: no code in the file is executed).

    Args:
        path: ``.pt`` checkpoint.
        device: ``cpu``, ``cuda`` or ``cuda:N``.
        threads: CPU threads (0: torch's default).
    """

    name = "torch"

    def __init__(self, path: str | Path, *, device: str = "cpu", threads: int = 0):
        import torch

        from handstream.models.checkpoint import load_network

        self.torch = torch
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise HandstreamError(f"model.device {device!r}: torch sees no CUDA device on this machine")
        if threads:
            torch.set_num_threads(threads)
        self.device = torch.device(device)
        net, self.manifest = load_network(path)
        self.net = net.to(self.device).eval()

    def infer(self, image, rays):
        """As :meth:`OnnxRuntimeBackend.infer`; NumPy in -> NumPy out on CPU; tensors stay tensors."""
        torch = self.torch
        as_numpy = isinstance(image, np.ndarray)
        with torch.inference_mode():
            x = torch.as_tensor(image, device=self.device)
            r = torch.as_tensor(rays, device=self.device) if (self.manifest.kpe and rays is not None) else None
            heatmaps, presence = self.net(x, r)
            presence = torch.sigmoid(presence)
        if as_numpy and self.device.type == "cpu":
            return heatmaps.numpy(), presence.numpy()
        return heatmaps, presence
