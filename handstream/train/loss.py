"""Losses of the supervised estimator.

Legend: ``N`` images, ``H`` hands (2), ``K`` joints (21), ``(h, w)`` heatmap size.
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F

from handstream.skeleton import NUM_JOINTS


def hand_loss(
    pred: torch.Tensor,
    presence_logits: torch.Tensor,
    batch: dict[str, torch.Tensor],
    sigma: float,
    presence_weight: float = 0.1,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Weighted heatmap loss + presence loss.

    Args:
        pred: (N, H*K, h, w) predicted heatmaps; presence_logits: (N, H).
        batch: ``heatmaps`` (N, H*K, h, w) targets, ``weights`` (N, H*K), ``presence`` (N, H) 0/1,
            ``presence_known`` (N, H) optional 0/1 mask of the presence loss,
            ``hand_known`` (N,) 1 when the hand axis is known, 0 for one hand of unknown side stored in
            the left slot (both assignments are scored, the better one is kept, per image).
        sigma: target Gaussian sigma in cells: each map's squared error is divided by its target's
            energy (pi sigma^2), so an all-zero prediction of a present joint scores 1.
    Returns:
        the scalar loss and its parts as floats (``heatmap``, ``presence``).
    """
    target, w = batch["heatmaps"], batch["weights"]
    n = pred.shape[0]
    norm = math.pi * sigma**2
    err = ((pred - target) ** 2).sum(dim=(2, 3)) / norm  # (N, 42)
    direct = (err * w).sum(dim=1)
    known = batch["hand_known"] > 0.5
    if not bool(known.all()):
        # one hand of unknown side: its labels are in the left slot; score them against the right maps too.
        tl, wl = target[:, :NUM_JOINTS], w[:, :NUM_JOINTS]
        swap = (((pred[:, NUM_JOINTS:] - tl) ** 2).sum(dim=(2, 3)) / norm * wl).sum(dim=1)
        direct = torch.where(known, direct, torch.minimum(direct, swap))
    hm = direct.sum() / w.sum().clamp(min=1.0)
    presence = batch["presence"]
    bce = F.binary_cross_entropy_with_logits(presence_logits, presence, reduction="none")  # (N, H)
    if "presence_known" in batch:  # hands without any label (no consensus) do not teach absence
        bce = bce * batch["presence_known"]
    if not bool(known.all()):
        any_hand = F.binary_cross_entropy_with_logits(
            presence_logits.max(dim=1).values, presence[:, 0], reduction="none"
        )
        pres = torch.where(known, bce.mean(dim=1), any_hand)
    else:
        pres = bce.mean(dim=1)
    pres = pres.mean()
    loss = hm + presence_weight * pres
    del n
    return loss, {"heatmap": float(hm.detach()), "presence": float(pres.detach())}
