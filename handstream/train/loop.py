"""The one optimisation loop of supervised training (:mod:`handstream.train.trainer`) and adaptation
(:func:`handstream.adapt.adapt.fine_tune`, the detector's rounds and the refiner's fine-tuning).

Legend: ``N`` images in a batch, ``H`` hands (2), ``K`` joints (21), ``(h, w)`` heatmap size.

One step: learning rate from the :class:`Schedule` (linear warm-up, then cosine, constant or step decay),
forward, :func:`~handstream.train.loss.hand_loss`, backward, gradient clipping, AdamW step. :func:`run_steps`
runs steps over a loader (an epoch of training, or a whole fine-tuning) with a tqdm bar and returns the
summed losses (:class:`StepStats`). What differs between the callers is an argument, never a guess here:
the schedule's warm-up length and cosine floor, the clipping norm, the device batches move to, whether the
bar shows samples/s.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch

from handstream.train.data import collate
from handstream.train.loss import hand_loss

SCHEDULES = ("cosine", "constant", "step")


@dataclass(frozen=True)
class Schedule:
    """Learning rate of every optimizer step: linear warm-up to ``peak``, then ``kind``.

    Attributes:
        peak: the rate after the warm-up (``[train] lr``, ``AdaptConfig.lr``).
        total: optimizer steps of the whole run (the cosine reaches its end there).
        warmup: steps of the linear warm-up (step ``s < warmup`` runs at ``peak * (s + 1) / warmup``; 0: none).
        kind: ``"cosine"`` (from ``peak`` down to ``floor * peak`` at ``total``), ``"constant"``, or ``"step"``
            (``peak * gamma ** (s // step_every)``, the warm-up included in ``s``).
        floor: the cosine's end as a fraction of ``peak`` (training: 0.02; adaptation: 0).
        step_every: steps between two decays of ``"step"``; gamma: their factor.
    """

    peak: float
    total: int
    warmup: int
    kind: str = "cosine"
    floor: float = 0.0
    step_every: int = 1
    gamma: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in SCHEDULES:
            raise ValueError(f"schedule: expected one of {SCHEDULES}, got {self.kind!r}")

    def lr(self, step: int) -> float:
        """The learning rate of optimizer step ``step`` (0-based); past ``total`` the cosine stays at its end."""
        if step < self.warmup:
            return self.peak * (step + 1) / self.warmup
        if self.kind == "constant":
            return self.peak
        if self.kind == "step":
            return self.peak * self.gamma ** (step // max(1, self.step_every))
        p = (step - self.warmup) / max(1, self.total - self.warmup)
        return self.peak * (self.floor + (1 - self.floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, p))))


@dataclass
class StepStats:
    """What :func:`run_steps` did: ``steps`` optimizer steps on ``samples`` items (this process), the sums of the
    losses over the steps (``hand_loss``'s total, heatmap and presence parts), the last step's ``lr`` (NaN when
    no step ran) and the wall time ``seconds`` (the progress bar included)."""

    steps: int = 0
    samples: int = 0
    loss: float = 0.0
    heatmap: float = 0.0
    presence: float = 0.0
    lr: float = float("nan")
    seconds: float = 0.0

    def means(self) -> dict[str, float]:
        """Mean losses per step: ``train_loss``, ``heatmap_loss``, ``presence_loss`` (0 when no step ran)."""
        n = max(1, self.steps)
        return {"train_loss": self.loss / n, "heatmap_loss": self.heatmap / n, "presence_loss": self.presence / n}


def make_loader(
    dataset: torch.utils.data.Dataset, batch: int, sampler: torch.utils.data.Sampler | None, workers: int,
    drop_last: bool = True,
) -> torch.utils.data.DataLoader:  # fmt: skip
    """Batches of :func:`~handstream.train.data.collate` (dicts of stacked tensors) in the order of ``sampler``
    (None: the dataset's order), with ``workers`` loader processes (0: in this one; 4 batches prefetched each)."""
    return torch.utils.data.DataLoader(
        dataset, batch_size=batch, sampler=sampler, num_workers=workers, collate_fn=collate, drop_last=drop_last,
        persistent_workers=False, prefetch_factor=4 if workers else None,
    )  # fmt: skip


def adamw(net: torch.nn.Module, lr: float, weight_decay: float) -> torch.optim.AdamW:
    """The optimizer of every run: AdamW over all of ``net``'s parameters (batch norms included)."""
    return torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=weight_decay)


def run_steps(
    model: torch.nn.Module,
    opt: torch.optim.Optimizer,
    batches: Iterable[dict[str, torch.Tensor]],
    schedule: Schedule,
    *,
    limit: int,
    sigma: float,
    presence_weight: float,
    grad_clip: float | None,
    first_step: int = 0,
    device: torch.device | None = None,
    progress: bool = True,
    desc: str = "train",
    world: int | None = None,
    loss_fn: Callable[[torch.nn.Module, dict[str, torch.Tensor]], tuple[torch.Tensor, dict[str, float]]] | None = None,
) -> StepStats:
    """At most ``limit`` optimizer steps of :func:`~handstream.train.loss.hand_loss`, one per batch of ``batches``.

    Args:
        model: the network (or its DDP wrapper), put in training mode here; ``model(image, rays)`` gives heatmaps
            (N, H*K, h, w) and presence logits (N, H).
        opt: its optimizer; every step sets the learning rate of all its groups.
        batches: dicts of :func:`~handstream.train.data.collate` (``image`` (N, 1, H_in, W_in), ``rays``,
            targets); only the first ``limit`` are used.
        schedule: the learning rates; step ``i`` of this call runs at ``schedule.lr(first_step + i)``, steps past
            ``schedule.total`` at the rate of its last step.
        sigma: the heatmaps' Gaussian sigma (heatmap cells); presence_weight: weight of the presence loss.
        grad_clip: maximum global gradient norm; 0 or None: no clipping.
        device: where batches are moved (non-blocking) before the forward pass; None: used where they are.
        progress: show a tqdm bar on stderr (``desc``, one tick per step, the running mean loss and the rate).
        world: also show samples/s in the bar, counting this many processes alike (DDP); None: no rate.
        loss_fn: ``(model, batch) -> (scalar loss, parts)`` instead of the heatmap loss (``sigma`` is then
            unused): how another kind of network (MediaPipe's landmark regressor, :mod:`handstream.adapt.landmarks`)
            goes through this same loop; ``parts["heatmap"]`` sums as the keypoint part, ``parts["presence"]`` as
            the presence part.
    Returns:
        the sums over the steps (:class:`StepStats`).
    """
    model.train()
    stats = StepStats()
    t0 = time.perf_counter()
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=limit, desc=desc, unit="step", file=sys.stderr, dynamic_ncols=True)
    step = first_step
    for i, batch in enumerate(batches):
        if i >= limit:
            break
        lr = schedule.lr(min(step, schedule.total - 1))
        step += 1
        for g in opt.param_groups:
            g["lr"] = lr
        if device is not None:
            batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
        if loss_fn is not None:
            loss, parts = loss_fn(model, batch)
        else:
            hm, logits = model(batch["image"], batch["rays"])
            loss, parts = hand_loss(hm, logits, batch, sigma, presence_weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        opt.step()
        stats.steps += 1
        stats.samples += len(batch["image"])
        stats.loss += float(loss.detach())
        stats.heatmap += parts.get("heatmap", 0.0)
        stats.presence += parts.get("presence", 0.0)
        stats.lr = lr
        if bar is not None:
            post = {"loss": f"{stats.loss / stats.steps:.4f}"}
            if world is not None:
                post["samples_s"] = f"{stats.samples * world / (time.perf_counter() - t0):.1f}"
            bar.set_postfix(**post, lr=f"{lr:.2e}")
            bar.update(1)
    if bar is not None:
        bar.close()
    stats.seconds = time.perf_counter() - t0
    return stats
