"""PyTorch backend: HandNet weights served directly, on CPU (eager) or a CUDA device (CUDA graphs).

Legend: ``N`` views, ``(H_in, W_in)`` input size, ``(h, w)`` heatmap size, 42 maps (2 hands x 21 joints).

The weights come from a checkpoint (``.pt``: :func:`handstream.models.checkpoint.save_network` or what
``handstream train`` writes) or from an exported ``.onnx`` model (read back from the graph, see
:func:`handstream.models.checkpoint.load_onnx_network`), so the shipped ONNX model runs on a GPU
without a separate checkpoint. Batch norms are folded into the convolutions before serving.

On CUDA the network is captured once per batch size ``N`` into a CUDA graph (lazily on first use, or
ahead with :meth:`TorchBackend.prepare`), and every call replays it: one launch instead of ~100 kernel
launches from Python. NumPy inputs are staged through pinned host memory and copied asynchronously on
torch's current stream; the heatmaps stay on the device and are decoded there by ``handstream._cuda``
(the pipeline passes the tensors through), so only keypoints cross back to the host. When
``handstream._cuda`` is not built, outputs are copied to the host instead (decoding then runs on
``handstream._C``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from handstream.errors import HandstreamError


@dataclass
class _Graph:
    graph: Any
    image: Any
    rays: Any
    heatmaps: Any
    presence: Any


class TorchBackend:
    """Runs HandNet weights with PyTorch (``torch.load(weights_only=True)``: no code in a file is executed).

    Args:
        path: ``.pt`` checkpoint or ``.onnx`` model (with its manifest).
        device: ``cpu``, ``cuda`` or ``cuda:N``.
        threads: CPU threads (0: torch's default).
        cuda_graphs: on CUDA, capture and replay CUDA graphs (False: eager, for comparison and debugging).

    ``infer`` on CPU: NumPy in -> NumPy out. On CUDA: NumPy or CUDA tensors in -> CUDA tensors out, which
    are the graph's static output buffers: valid until the next ``infer`` with the same ``N``.
    """

    name = "torch"

    def __init__(self, path: str | Path, *, device: str = "cpu", threads: int = 0, cuda_graphs: bool = True):
        import torch

        from handstream.models.checkpoint import fuse_batchnorm, load_network
        from handstream.ops import _native

        self.torch = torch
        if str(device).startswith("cuda") and not torch.cuda.is_available():
            raise HandstreamError(f"model.device {device!r}: torch sees no CUDA device on this machine")
        try:
            self.device = torch.device(device)
        except RuntimeError:
            raise HandstreamError(f"model.device: expected cpu, cuda or cuda:N, got {device!r}") from None
        if threads:
            torch.set_num_threads(threads)
        net, self.manifest = load_network(path)
        net = fuse_batchnorm(net).to(self.device).eval()
        for p in net.parameters():
            p.requires_grad_(False)
        self.net = net
        self.cuda = self.device.type == "cuda"
        if self.cuda and self.device.index is None:
            self.device = torch.device("cuda", torch.cuda.current_device())
        self.cuda_graphs = bool(cuda_graphs) and self.cuda
        if self.cuda:
            torch.backends.cudnn.benchmark = True  # fixed shapes per view count: let cuDNN pick its fastest kernels
        self.outputs_on_device = self.cuda and _native.cuda_available()
        self._graphs: dict[int, _Graph] = {}
        self._host: dict[str, Any] = {}
        self._staged = torch.cuda.Event() if self.cuda else None

    # -- CUDA helpers -------------------------------------------------------------------------------
    def _forward(self, image, rays):
        heatmaps, logits = self.net(image, rays if self.manifest.kpe else None)
        return heatmaps, self.torch.sigmoid(logits)

    def _shapes(self, n: int) -> dict[str, tuple[int, ...]]:
        w, h = self.manifest.input_size
        s = self.manifest.stride
        return {"image": (n, 1, h, w), "rays": (n, 2, -(-h // s), -(-w // s))}

    def _capture(self, n: int) -> _Graph:
        torch = self.torch
        shapes = self._shapes(n)
        with torch.cuda.device(self.device), torch.no_grad():
            image = torch.zeros(shapes["image"], device=self.device)
            rays = torch.zeros(shapes["rays"], device=self.device) if self.manifest.kpe else None
            side = torch.cuda.Stream(device=self.device)
            side.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(side):  # warm-up outside the capture (cuDNN autotuning, lazy init)
                for _ in range(3):
                    self._forward(image, rays)
            torch.cuda.current_stream(self.device).wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                heatmaps, presence = self._forward(image, rays)
        return _Graph(graph, image, rays, heatmaps, presence)

    def prepare(self, batch_sizes) -> None:
        """Capture the CUDA graphs of these batch sizes now (no-op on CPU or without graphs)."""
        if self.cuda_graphs:
            for n in batch_sizes:
                if int(n) not in self._graphs:
                    self._graphs[int(n)] = self._capture(int(n))

    def _upload(self, name: str, x, dst) -> None:
        """Copy ``x`` (NumPy via pinned memory, or a tensor) into the device tensor ``dst`` on the current stream."""
        torch = self.torch
        if tuple(x.shape) != tuple(dst.shape):
            raise HandstreamError(f"torch backend: input {name!r} must be {tuple(dst.shape)}, got {tuple(x.shape)}")
        if isinstance(x, np.ndarray):
            host = self._host.get(name)
            if host is None or host.shape[0] < dst.shape[0]:
                host = self._host[name] = torch.empty(tuple(dst.shape), dtype=torch.float32, pin_memory=True)
            staged = host[: dst.shape[0]]
            staged.numpy()[...] = x
            dst.copy_(staged, non_blocking=True)
        else:
            dst.copy_(x, non_blocking=True)

    # -- inference ----------------------------------------------------------------------------------
    def infer(self, image, rays):
        """image (N, 1, H_in, W_in), rays (N, 2, h, w) or None, float32 -> heatmaps (N, 42, h, w), presence (N, 2)."""
        torch = self.torch
        if not self.cuda:
            as_numpy = isinstance(image, np.ndarray)
            with torch.inference_mode():
                x = torch.as_tensor(image)
                r = torch.as_tensor(rays) if (self.manifest.kpe and rays is not None) else None
                heatmaps, presence = self._forward(x, r)
            return (heatmaps.numpy(), presence.numpy()) if as_numpy else (heatmaps, presence)

        n = int(image.shape[0])
        if self.manifest.kpe and rays is None:
            raise HandstreamError("torch backend: this model uses the positional encoding; pass rays (N, 2, h, w)")
        with torch.cuda.device(self.device), torch.no_grad():
            self._staged.synchronize()  # the previous upload has finished reading the pinned buffers
            if self.cuda_graphs:
                g = self._graphs.get(n)
                if g is None:
                    g = self._graphs[n] = self._capture(n)
                self._upload("image", image, g.image)
                if self.manifest.kpe:
                    self._upload("rays", rays, g.rays)
                self._staged.record()
                g.graph.replay()
                heatmaps, presence = g.heatmaps, g.presence
            else:
                shapes = self._shapes(n)
                x = torch.empty(shapes["image"], device=self.device)
                self._upload("image", image, x)
                r = None
                if self.manifest.kpe:
                    r = torch.empty(shapes["rays"], device=self.device)
                    self._upload("rays", rays, r)
                self._staged.record()
                heatmaps, presence = self._forward(x, r)
        if not self.outputs_on_device:  # no handstream._cuda to decode on the device
            return heatmaps.cpu().numpy(), presence.cpu().numpy()
        return heatmaps, presence
