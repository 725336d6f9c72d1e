"""Checkpoints for inference: a network's weights plus what is needed to feed it.

A checkpoint is a ``torch.save`` dict with at least ``"network"`` (a :class:`NetConfig` as a dict),
``"model"`` (the state dict) and ``"codec"`` (``input_size``, ``stride``, ``sigma``). Training
checkpoints add optimizer state and progress; this module ignores those. Files are read with
``torch.load(weights_only=True)``, so loading never runs code from the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from handstream.errors import HandstreamError
from handstream.models.manifest import ModelManifest


def save_network(path: str | Path, net, *, input_size=(256, 192), stride: int = 4, sigma: float = 2.0, extra: dict[str, Any] | None = None) -> Path:
    """Write the inference part of a checkpoint (creates parent folders)."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {
        "network": net.config.to_dict(),
        "model": net.state_dict(),
        "codec": {"input_size": list(input_size), "stride": stride, "sigma": sigma},
        **(extra or {}),
    }
    torch.save(data, path)
    return path


def load_network(path: str | Path):
    """Read a checkpoint -> (HandNet in eval mode on CPU, ModelManifest describing it)."""
    import torch

    from handstream.models.network import HandNet, NetConfig

    path = Path(path)
    if not path.is_file():
        raise HandstreamError(f"{path}: checkpoint not found")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises pickle/zip/runtime errors for corrupt or non-checkpoint files
        raise HandstreamError(f"{path}: not a readable PyTorch checkpoint ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict) or "model" not in data or "network" not in data:
        raise HandstreamError(f"{path}: not a handstream checkpoint (expected keys 'network' and 'model')")
    config = NetConfig.from_dict(data["network"], f"{path}: network")
    net = HandNet(config)
    try:
        net.load_state_dict(data["model"])
    except RuntimeError as exc:
        raise HandstreamError(f"{path}: weights do not fit the network config ({str(exc).splitlines()[0]})") from None
    codec = data.get("codec", {})
    manifest = ModelManifest(
        name=path.stem,
        artifact=path.name,
        artifact_format="checkpoint",
        input_size=tuple(codec.get("input_size", (256, 192))),
        stride=int(codec.get("stride", 4)),
        sigma=float(codec.get("sigma", 2.0)),
        kpe=config.kpe,
        network=config.to_dict(),
        input_names=["image", "rays"] if config.kpe else ["image"],
    )
    return net.eval(), manifest
