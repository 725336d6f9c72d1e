"""What the benchmark runs on: the rig (a preset resized to the chosen views and resolution) and the model."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np

from handstream.bench.options import RANDOM_MODEL
from handstream.errors import HandstreamError
from handstream.synth.hand import rot_y


def resize_camera(cam, size: tuple[int, int]):
    """The same camera imaging at another resolution: intrinsics scaled per axis (pixel centres kept),
    distortion unchanged (it acts on normalised coordinates). ``size`` is (width, height) in pixels."""
    w, h = size
    sx, sy = w / cam.size[0], h / cam.size[1]
    K = np.array(cam.K, dtype=float).copy()
    K[0, 0] *= sx
    K[0, 1] *= sx
    K[0, 2] = (K[0, 2] + 0.5) * sx - 0.5
    K[1, 1] *= sy
    K[1, 2] = (K[1, 2] + 0.5) * sy - 0.5
    return dataclasses.replace(cam, size=(int(w), int(h)), K=K)


def bench_rig(views: int, size: tuple[int, int] | None = (640, 480), base: str = "headset4", fps: float | None = None):
    """A synthetic rig of ``views`` cameras for benchmarks (a :class:`~handstream.synth.rigs.RigPreset`).

    Views ``0..n-1`` of the ``base`` preset, in order; beyond the preset's count, copies of its cameras
    yawed by +-12, +-24 ... degrees about the headset's vertical axis and 1.5 cm lower per copy, so that 8
    views of ``headset4`` are 8 distinct head-mounted cameras that all see the hands. ``size`` (width,
    height) rescales every camera's intrinsics (None: the preset's own); ``fps`` overrides the preset's.
    """
    from handstream.geometry import Rig
    from handstream.synth.rigs import RigPreset, get_preset

    if views < 1:
        raise HandstreamError(f"bench rig: expected at least 1 view, got {views}")
    preset = get_preset(base)
    cams = list(preset.rig)
    out = []
    for i in range(views):
        cam = cams[i % len(cams)]
        k = i // len(cams)
        if k:
            yaw = math.radians(12.0 * ((k + 1) // 2)) * (1 if k % 2 else -1)
            center = np.asarray(cam.center) + np.array([0.0, 0.015 * k, 0.0])
            R = np.asarray(cam.R) @ rot_y(yaw).T
            cam = dataclasses.replace(cam, name=f"{cam.name}-{k}", R=R, t=-R @ center)
        if size is not None:
            cam = resize_camera(cam, size)
        out.append(cam)
    w, h = out[0].size
    same = all(c.size == out[0].size for c in out)
    label = f"{views}x{w}x{h}" if same else f"{views} views"
    return RigPreset(
        f"bench-{base}-{label}",
        Rig(out),
        fps=float(fps or preset.fps),
        color=preset.color,
        workspace=preset.workspace,
        description=f"{views} cameras from {base}" + (f" at {w}x{h}" if same else ""),
    )


def resolve_model(model: str | None, tmp: Path) -> tuple[Path, str]:
    """(path of the artifact, label). None: the shipped default; ``random-init``: a random HandNet exported
    to ONNX in ``tmp`` (timing only); else a path (must exist)."""
    from handstream.models.defaults import DEFAULT_MODEL

    if model == RANDOM_MODEL:
        try:
            import torch

            from handstream.export import export_onnx
            from handstream.models.network import HandNet
        except ImportError as exc:
            raise HandstreamError(
                f"--model {RANDOM_MODEL}: needs torch and onnx (pip install 'handstream[train]'): {exc}"
            ) from None
        torch.manual_seed(0)
        path = tmp / "random-init.onnx"
        export_onnx(HandNet(), path, name=RANDOM_MODEL)
        return path, f"{RANDOM_MODEL} (random weights: timings only)"
    path = Path(model) if model is not None else DEFAULT_MODEL
    if not path.exists():
        if model is None:
            raise HandstreamError(
                f"--model: the shipped model {path} is missing from this checkout; pass --model PATH "
                f"or --model {RANDOM_MODEL} (random weights, same architecture: timings only)"
            )
        raise HandstreamError(f"--model: {path}: model not found")
    return path.resolve(), str(path)
