"""Supervised training of :class:`~handstream.models.network.HandNet`: data, loop, validation, checkpoints.

Legend: ``N`` images in a batch, ``H`` hands (2), ``K`` joints (21), ``(h, w)`` heatmap size.

Single process or DDP under ``torchrun`` (``gloo`` on CPU, ``nccl`` on GPU): every rank builds the same
datasets, :class:`~handstream.train.data.EpochSampler` gives each rank its share of the epoch (same count,
so steps stay in lockstep), rank 0 alone validates, logs and writes files. Output folder::

    OUT/recipe.toml      copy of the recipe          OUT/metrics.csv   one row per epoch
    OUT/checkpoint.pt    latest (model, optimizer, scheduler, epoch, recipe, metrics): --resume continues it
    OUT/model.pt         final weights + network config      OUT/train.log   one line per epoch
"""

from __future__ import annotations

import csv
import math
import os
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from handstream.errors import HandstreamError
from handstream.metrics import epe, pck_2d
from handstream.models.checkpoint import load_network, unfuse_batchnorm
from handstream.models.codec import HeatmapCodec
from handstream.models.network import HandNet
from handstream.train.data import EpochSampler, Images2D, SampleSpec, SynthViews, collate
from handstream.train.loss import hand_loss
from handstream.train.recipe import Recipe, Source

INIT_CALIBRATION_ITEMS = 512
"""Training items whose statistics re-create the batch norms of an exported (folded) ``train.init`` model."""

CSV_FIELDS = [
    "epoch", "lr", "train_loss", "heatmap_loss", "presence_loss", "samples", "samples_per_s", "epoch_s",
    "val_epe_px", "val_pck02", "val_coverage", "val_presence_acc", "val_items",
]  # fmt: skip


def ensure_synth(src: Source, cache: Path, log=print) -> Path:
    """The folder of a synthetic source: its ``path``, or the cache folder it renders to (rendered now if absent)."""
    from handstream.synth.dataset import MANIFEST, write_dataset

    folder = cache / src.label
    manifest = folder / MANIFEST
    if manifest.is_file() and '"complete": true' in manifest.read_text():
        return folder
    log(f"rendering {src.label} into {folder} ({src.frames} frames)")
    write_dataset(
        folder,
        src.preset,
        src.frames,
        src.seed,
        sequence_length=src.sequence_length,
        rig_seed=src.rig_seed,
        overwrite=True,
    )
    return folder


def build_dataset(recipe: Recipe, sources: list[Source], spec: SampleSpec, seed: int, render: bool = True) -> list[Any]:
    """One dataset per source (synthetic folders are rendered into the cache first when ``render``)."""
    out = []
    for src in sources:
        if src.kind == "images2d":
            out.append(Images2D(recipe.resolve(src.path), spec, seed=seed, fov_deg=src.fov_deg))
        elif src.path:
            out.append(SynthViews(recipe.resolve(src.path), spec, seed=seed))
        else:
            folder = ensure_synth(src, recipe.cache) if render else recipe.cache / src.label
            out.append(SynthViews(folder, spec, seed=seed))
    return out


def _dist_info() -> tuple[int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    return rank, world


def lr_at(recipe: Recipe, step: int, total: int, steps_per_epoch: int) -> float:
    """Learning rate of optimizer step ``step`` of ``total`` (linear warm-up, then the schedule)."""
    t = recipe.train
    warm = min(t.warmup_steps, max(1, total // 5))
    if step < warm:
        return t.lr * (step + 1) / warm
    if t.schedule == "constant":
        return t.lr
    if t.schedule == "step":
        return t.lr * t.step_gamma ** ((step // max(1, steps_per_epoch)) // max(1, t.step_epochs))
    p = (step - warm) / max(1, total - warm)
    return t.lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(1.0, p))))


@torch.no_grad()
def validate(net: torch.nn.Module, loader, codec: HeatmapCodec) -> dict[str, float]:
    """2D metrics in frame pixels on a validation loader (items without augmentation or crop; perspective crop
    items: in crop pixels, see :mod:`handstream.train.data`).

    Returns ``val_epe_px`` (mean distance of decoded joints that are inside the frame, in views where the
    hand is present), ``val_pck02`` (within 0.2 x the hand's box size), ``val_coverage`` (fraction of
    those joints with a decoded peak), ``val_presence_acc`` (presence > 0.5 agrees with the target).
    """
    was = net.training
    net.eval()
    preds, gts, masks, boxes, pres_ok, n = [], [], [], [], [], 0
    for batch in loader:
        hm, logits = net(batch["image"], batch["rays"])
        kp_in, _ = codec.decode(hm.float().numpy())  # (N, H, K, 2) input px
        aff = batch["affine"].numpy()
        inv = np.linalg.inv(aff[:, :, :2])  # (N, 2, 2) input -> frame
        kp_frame = np.einsum("nij,nhkj->nhki", inv, kp_in - aff[:, None, None, :, 2])
        present = batch["presence"].numpy() > 0.5
        preds.append(kp_frame)
        gts.append(batch["keypoints"].numpy())
        masks.append(batch["in_frame"].numpy() & present[..., None])
        boxes.append(batch["box_size"].numpy())
        pres_ok.append(((torch.sigmoid(logits) > 0.5).numpy() == present).astype(np.float64))
        n += len(hm)
    net.train(was)
    if not n:
        return {}
    p, g, m, b = (np.concatenate(x) for x in (preds, gts, masks, boxes))
    from handstream.metrics import point_errors

    _, cov = point_errors(p, g, m)
    return {
        "val_epe_px": epe(p, g, m),
        "val_pck02": pck_2d(p, g, b, m),
        "val_coverage": float(cov),
        "val_presence_acc": float(np.concatenate(pres_ok).mean()),
        "val_items": n,
    }


def _save(path: Path, obj: dict) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    tmp.replace(path)


def train(recipe: Recipe, out: str | Path, resume: bool = False, progress: bool = True, log=print) -> dict[str, Any]:
    """Train by ``recipe`` into the folder ``out``; returns the last epoch's metrics.

    Under ``torchrun`` (``WORLD_SIZE`` > 1) it joins the process group and trains with DDP.
    Raises HandstreamError for user errors (missing data, a checkpoint of another network on --resume).
    """
    out = Path(out)
    rank, world = _dist_info()
    t = recipe.train
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("gloo" if not torch.cuda.is_available() else "nccl")
    main = rank == 0
    device = torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if torch.cuda.is_available() else "cpu")
    threads = t.threads or max(1, (os.cpu_count() or 1) // world)
    torch.set_num_threads(threads)
    torch.manual_seed(t.seed)
    ckpt_path = out / "checkpoint.pt"
    if t.init and not resume and not recipe.resolve(t.init).is_file():  # fail before rendering any data
        raise HandstreamError(f"{recipe.path}: train.init: {recipe.resolve(t.init)} not found")
    if main:
        out.mkdir(parents=True, exist_ok=True)
        if recipe.path is not None and recipe.path.resolve() != (out / "recipe.toml").resolve():
            shutil.copyfile(recipe.path, out / "recipe.toml")

    codec = HeatmapCodec(recipe.codec.input_size, recipe.codec.stride, recipe.codec.sigma)
    spec = SampleSpec(codec, recipe.augment, t.crop, t.min_joints, t.occluded_weight, recipe.hand_crop)
    # rank 0 renders missing synthetic data; the others wait for it
    if main:
        train_sets = build_dataset(recipe, recipe.train_sources, spec, t.seed)
        val_sets = build_dataset(recipe, recipe.val_sources, replace(spec, augment=None, crop=None), t.seed)
    if world > 1:
        dist.barrier()
    if not main:
        train_sets = build_dataset(recipe, recipe.train_sources, spec, t.seed, render=False)
        val_sets = []
    train_cat = torch.utils.data.ConcatDataset(train_sets)
    sampler = EpochSampler([len(d) for d in train_sets], [s.repeat for s in recipe.train_sources], t.seed, rank, world)
    if len(sampler) < t.batch:
        raise HandstreamError(
            f"{recipe.path}: train.batch {t.batch} is larger than the epoch's {len(sampler)} samples per process"
        )

    def loader_for(dataset, shuffle_sampler=None, batch=t.batch, drop_last=True):
        return torch.utils.data.DataLoader(
            dataset, batch_size=batch, sampler=shuffle_sampler, num_workers=t.workers, collate_fn=collate,
            drop_last=drop_last, persistent_workers=False, prefetch_factor=4 if t.workers else None,
        )  # fmt: skip

    val_loader = None
    if main and val_sets:
        val_cat = torch.utils.data.ConcatDataset(val_sets)
        if t.val_max_items and len(val_cat) > t.val_max_items:
            step = len(val_cat) / t.val_max_items
            val_cat = torch.utils.data.Subset(val_cat, [int(i * step) for i in range(t.val_max_items)])
        val_loader = loader_for(val_cat, None, batch=max(8, t.batch), drop_last=False)

    net = HandNet(recipe.network).to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=t.lr, weight_decay=t.weight_decay)
    start_epoch, history = 0, []
    if t.init and not resume:
        init_path = recipe.resolve(t.init)
        try:
            start, manifest_of_init = load_network(init_path)
        except HandstreamError as exc:
            raise HandstreamError(f"{recipe.path}: train.init: {exc}") from None
        if start.config.to_dict() != recipe.network.to_dict():
            raise HandstreamError(
                f"{recipe.path}: train.init: {init_path} holds another network ({start.config.to_dict()}) "
                f"than [network] ({recipe.network.to_dict()})"
            )
        if manifest_of_init.artifact_format == "onnx":  # batch norms folded: put them back, calibrated on the data
            sampler.set_epoch(0)
            for d in train_sets:
                d.set_epoch(0)
            calib = []
            for batch in loader_for(train_cat, sampler):
                calib.append((batch["image"], batch["rays"] if recipe.network.kpe else None))
                if len(calib) * t.batch >= INIT_CALIBRATION_ITEMS:
                    break
            start = unfuse_batchnorm(start, calib)
        net.load_state_dict(start.state_dict())
        if main:
            log(f"starting from the weights of {init_path}")
    if resume:
        if not ckpt_path.is_file():
            raise HandstreamError(f"{ckpt_path}: no checkpoint to resume from")
        ckpt = torch.load(ckpt_path, map_location=device, weights_only=True)
        if ckpt.get("network") != recipe.network.to_dict():
            raise HandstreamError(f"{ckpt_path}: checkpoint was trained with another network config than {recipe.path}")
        net.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        start_epoch, history = int(ckpt["epoch"]) + 1, list(ckpt.get("history", []))
        if main:
            log(f"resuming {ckpt_path} after epoch {start_epoch}")
    model = torch.nn.parallel.DistributedDataParallel(net) if world > 1 else net

    steps_per_epoch = len(sampler) // t.batch
    if t.max_steps_per_epoch:
        steps_per_epoch = min(steps_per_epoch, t.max_steps_per_epoch)

    def epoch_steps(e: int) -> int:
        full = t.crop is not None and e >= t.epochs - t.full_size_epochs
        return t.full_size_steps if full and t.full_size_steps else steps_per_epoch

    total = sum(epoch_steps(e) for e in range(t.epochs))
    step = sum(epoch_steps(e) for e in range(start_epoch))
    metrics_path = out / "metrics.csv"
    if main and (not resume or not metrics_path.is_file()):
        with open(metrics_path, "w", newline="") as f:
            csv.writer(f).writerow(CSV_FIELDS)
    row: dict[str, Any] = {}
    for epoch in range(start_epoch, t.epochs):
        full = t.crop is not None and epoch >= t.epochs - t.full_size_epochs
        epoch_spec = replace(spec, crop=None) if full or t.crop is None else spec
        for d in train_sets:
            d.spec = epoch_spec
            d.set_epoch(epoch)
        sampler.set_epoch(epoch)
        loader = loader_for(train_cat, sampler)
        limit = epoch_steps(epoch)
        model.train()
        t0 = time.perf_counter()
        sums = {"loss": 0.0, "heatmap": 0.0, "presence": 0.0}
        seen = steps = 0
        bar = None
        if main and progress:
            from tqdm import tqdm

            bar = tqdm(
                total=limit, desc=f"epoch {epoch + 1}/{t.epochs}", unit="step", file=sys.stderr, dynamic_ncols=True
            )
        for i, batch in enumerate(loader):
            if i >= limit:
                break
            lr = lr_at(recipe, min(step, total - 1), total, steps_per_epoch)
            step += 1
            for g in opt.param_groups:
                g["lr"] = lr
            batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
            hm, logits = model(batch["image"], batch["rays"])
            loss, parts = hand_loss(hm, logits, batch, codec.sigma, t.presence_weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if t.grad_clip:
                torch.nn.utils.clip_grad_norm_(net.parameters(), t.grad_clip)
            opt.step()
            seen += len(hm)
            steps += 1
            sums["loss"] += float(loss.detach())
            sums["heatmap"] += parts["heatmap"]
            sums["presence"] += parts["presence"]
            if bar is not None:
                rate = seen * world / (time.perf_counter() - t0)
                bar.set_postfix(loss=f"{sums['loss'] / (i + 1):.4f}", samples_s=f"{rate:.1f}", lr=f"{lr:.2e}")
                bar.update(1)
        if bar is not None:
            bar.close()
        steps = max(1, steps)
        elapsed = time.perf_counter() - t0
        if not main:
            continue
        row = {
            "epoch": epoch + 1,
            "lr": lr,
            "train_loss": sums["loss"] / steps,
            "heatmap_loss": sums["heatmap"] / steps,
            "presence_loss": sums["presence"] / steps,
            "samples": seen * world,
            "samples_per_s": seen * world / elapsed,
            "epoch_s": elapsed,
        }
        if val_loader is not None:
            row.update(validate(net, val_loader, codec))
        history.append(row)
        with open(metrics_path, "a", newline="") as f:
            csv.writer(f).writerow([_fmt(row.get(k, "")) for k in CSV_FIELDS])
        state = {"model": net.state_dict(), "optimizer": opt.state_dict(), "epoch": epoch}
        _save(ckpt_path, {**state, "network": recipe.network.to_dict(), "recipe": recipe.to_dict(), "history": history})
        log(" ".join(f"{k}={_fmt(v)}" for k, v in row.items()))
    if world > 1:
        dist.barrier()
    if main:
        _save(
            out / "model.pt",
            {
                "model": net.state_dict(),
                "network": recipe.network.to_dict(),
                "recipe": recipe.to_dict(),
                "history": history,
            },
        )
        if recipe.export_onnx:
            export_model(net, recipe, recipe.resolve(recipe.export_onnx), out, val_sets, log)
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()
    return row


def _fmt(v: Any) -> str:
    return f"{v:.5g}" if isinstance(v, float) else str(v)


def export_model(net: HandNet, recipe: Recipe, onnx_path: Path, out: Path, val_sets: list, log=print) -> None:
    """Export the trained network with :func:`handstream.export.export_onnx`, using a few validation
    inputs as real parity inputs; provenance records the recipe and checkpoint."""
    from handstream.export import export_onnx
    from handstream.records import file_sha256

    net = net.cpu().eval()
    real = []
    if val_sets:
        items = [val_sets[0][i] for i in range(min(4, len(val_sets[0])))]
        real = [(torch.stack([it["image"] for it in items]), torch.stack([it["rays"] for it in items]))]
    manifest = export_onnx(
        net, onnx_path, name=onnx_path.stem, input_size=recipe.codec.input_size, stride=recipe.codec.stride,
        sigma=recipe.codec.sigma, real_inputs=real,
        provenance={
            "recipe": str(recipe.path) if recipe.path else None, "checkpoint_sha256": file_sha256(out / "model.pt"),
            "training_data": [s.label for s in recipe.train_sources],
        },
        crop=recipe.hand_crop.rule() if recipe.hand_crop else None,
    )  # fmt: skip
    log(f"exported {onnx_path} (parity max abs diff {manifest.parity['max_abs_diff']})")
