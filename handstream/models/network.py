"""HandNet: a small stride-4 heatmap network for both hands, with an intrinsics-aware positional encoding.

Legend: ``N`` images, ``H`` hands (2), ``K`` joints (21), ``(H_in, W_in)`` input size, ``(h, w)`` heatmap
size (input / 4).

Shape: an inverted-residual encoder (MobileNetV2-style blocks, strides 2..32), a light FPN decoder back to
stride 4, a heatmap head (``H*K`` maps: left hand's 21, then the right's) and a presence head (one logit per
hand, from the stride-32 features). With ``kpe=True`` the network takes a second input, the viewing angles
of every heatmap cell (:func:`handstream.models.kpe.ray_angles`), turns them into sinusoidal features and
injects them at stride 4 into the encoder and into the head. Normalisation of the [0, 1] grey input happens
inside the network, so every backend feeds the same tensor.

This module imports torch; the engine's ONNX Runtime path never imports it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import nn
from torch.nn import functional as F

from handstream.errors import HandstreamError
from handstream.skeleton import HANDS, NUM_JOINTS


@dataclass
class NetConfig:
    """Network hyper-parameters (recorded in checkpoints and manifests).

    Attributes:
        widths: channels at strides 4, 8, 16, 32.
        depths: inverted-residual blocks at strides 4, 8, 16, 32.
        expand: expansion ratio of the inverted-residual blocks.
        decoder: channels of the FPN decoder and head.
        kpe: use the intrinsics-aware positional encoding input.
        kpe_frequencies: sinusoid frequencies applied to the ray angles (radians).
    """

    widths: tuple[int, int, int, int] = (24, 48, 96, 128)
    depths: tuple[int, int, int, int] = (1, 2, 3, 2)
    expand: int = 3
    decoder: int = 64
    kpe: bool = True
    kpe_frequencies: tuple[float, ...] = (1.0, 2.0, 4.0)
    stem: int = 16
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict, where: str = "network") -> NetConfig:
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(data) - known
        if unknown:
            raise HandstreamError(f"{where}: unknown keys {sorted(unknown)} (expected some of {sorted(known)})")
        cfg = cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})
        if len(cfg.widths) != 4 or len(cfg.depths) != 4:
            raise HandstreamError(f"{where}: widths and depths need 4 entries (strides 4, 8, 16, 32)")
        return cfg

    def to_dict(self) -> dict:
        d = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @property
    def kpe_channels(self) -> int:
        return 2 + 4 * len(self.kpe_frequencies) if self.kpe else 0


def _cbr(cin: int, cout: int, k: int = 1, stride: int = 1, groups: int = 1, act: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    if act:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class InvertedResidual(nn.Module):
    """1x1 expand -> 3x3 depthwise (stride s) -> 1x1 project, with a skip when shapes match."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int):
        super().__init__()
        mid = cin * expand
        self.block = nn.Sequential(
            _cbr(cin, mid), _cbr(mid, mid, 3, stride, groups=mid), _cbr(mid, cout, act=False)
        )
        self.skip = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.block(x)
        return x + y if self.skip else y


def _stage(cin: int, cout: int, depth: int, stride: int, expand: int) -> nn.Sequential:
    return nn.Sequential(
        *[InvertedResidual(cin if i == 0 else cout, cout, stride if i == 0 else 1, expand) for i in range(depth)]
    )


class HandNet(nn.Module):
    """Grey image (+ ray angles) -> heatmaps and presence logits.

    ``forward(image, rays=None)``:
        image: (N, 1, H_in, W_in) float32 in [0, 1], H_in and W_in multiples of 32.
        rays: (N, 2, H_in/4, W_in/4) float32 radians; required when the config has ``kpe``.
    Returns:
        heatmaps (N, H*K, H_in/4, W_in/4) float32 (peak ~1 at a joint) and presence logits (N, H).
    """

    def __init__(self, config: NetConfig | None = None):
        super().__init__()
        self.config = cfg = config or NetConfig()
        w4, w8, w16, w32 = cfg.widths
        d4, d8, d16, d32 = cfg.depths
        kc = cfg.kpe_channels
        self.register_buffer(
            "freqs", torch.tensor(cfg.kpe_frequencies, dtype=torch.float32).view(1, -1, 1, 1), persistent=False
        )
        self.stem = nn.Sequential(
            _cbr(1, cfg.stem, 3, 2),
            _cbr(cfg.stem, cfg.stem, 3, 2, groups=cfg.stem),
            _cbr(cfg.stem, w4),
        )
        self.s4 = _stage(w4, w4, d4, 1, cfg.expand)
        self.kpe_in = _cbr(w4 + kc, w4) if kc else None
        self.s8 = _stage(w4, w8, d8, 2, cfg.expand)
        self.s16 = _stage(w8, w16, d16, 2, cfg.expand)
        self.s32 = _stage(w16, w32, d32, 2, cfg.expand)
        c = cfg.decoder
        self.lat = nn.ModuleList([_cbr(w, c, act=False) for w in (w4, w8, w16, w32)])
        self.smooth = nn.ModuleList([nn.Sequential(_cbr(c, c, 3, groups=c), _cbr(c, c)) for _ in range(3)])
        self.head = nn.Sequential(_cbr(c + kc, c), _cbr(c, c, 3, groups=c), nn.Conv2d(c, len(HANDS) * NUM_JOINTS, 1))
        self.presence = nn.Linear(w32, len(HANDS))

    def encode_rays(self, rays: torch.Tensor) -> torch.Tensor:
        """(N, 2, h, w) angles -> (N, 2 + 4F, h, w) sinusoidal features."""
        n, _, h, w = rays.shape
        scaled = (rays.unsqueeze(1) * self.freqs.unsqueeze(2)).reshape(n, -1, h, w)
        return torch.cat([rays, torch.sin(scaled), torch.cos(scaled)], dim=1)

    def forward(self, image: torch.Tensor, rays: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        x = (image - 0.5) * 4.0
        f4 = self.s4(self.stem(x))
        enc = None
        if self.kpe_in is not None:
            if rays is None:
                raise HandstreamError("HandNet: this network uses the positional encoding; pass rays (N, 2, h, w)")
            enc = self.encode_rays(rays)
            f4 = self.kpe_in(torch.cat([f4, enc], dim=1))
        f8 = self.s8(f4)
        f16 = self.s16(f8)
        f32 = self.s32(f16)
        y = self.lat[3](f32)
        for i, f in ((2, f16), (1, f8), (0, f4)):
            y = F.interpolate(y, size=f.shape[-2:], mode="nearest") + self.lat[i](f)
            y = self.smooth[i](y)
        if enc is not None:
            y = torch.cat([y, enc], dim=1)
        heatmaps = self.head(y)
        presence = self.presence(f32.mean(dim=(2, 3)))
        return heatmaps, presence


class InferenceNet(nn.Module):
    """What gets exported: HandNet with presence as probabilities (sigmoid) instead of logits."""

    def __init__(self, net: HandNet):
        super().__init__()
        self.net = net

    def forward(self, image: torch.Tensor, rays: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        heatmaps, presence = self.net(image, rays)
        return heatmaps, torch.sigmoid(presence)
