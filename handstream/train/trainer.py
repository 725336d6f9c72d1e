"""Supervised training of :class:`~handstream.models.network.HandNet`: data, epochs, validation, checkpoints.

Legend: ``N`` images in a batch, ``H`` hands (2), ``K`` joints (21), ``(h, w)`` heatmap size.

Single process or DDP under ``torchrun`` (``gloo`` on CPU, ``nccl`` on GPU): every rank builds the same
datasets, :class:`~handstream.train.data.EpochSampler` gives each rank its share of the epoch (same count,
so steps stay in lockstep), rank 0 alone validates, logs and writes files. The optimizer steps are
:func:`handstream.train.loop.run_steps` (shared with adaptation). :func:`train` in steps::

    _start_process -> _prepare_out -> _open_data -> _build_model -> _run_epochs (_train_epoch, _record_epoch)
    -> _save_model (+ export_model)

Output folder::

    OUT/recipe.toml      copy of the recipe          OUT/metrics.csv   one row per epoch
    OUT/checkpoint.pt    latest (model, optimizer, scheduler, epoch, recipe, metrics): --resume continues it
    OUT/model.pt         final weights + network config      OUT/train.log   one line per epoch
"""

from __future__ import annotations

import csv
import os
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from handstream.errors import HandstreamError
from handstream.metrics import epe, pck_2d, point_errors
from handstream.models.checkpoint import load_network, unfuse_batchnorm
from handstream.models.codec import HeatmapCodec
from handstream.models.network import HandNet
from handstream.train.data import EpochSampler, Images2D, SynthViews
from handstream.train.items import SampleSpec
from handstream.train.loop import Schedule, StepStats, adamw, make_loader, run_steps
from handstream.train.recipe import Recipe, Source

INIT_CALIBRATION_ITEMS = 512
"""Training items whose statistics re-create the batch norms of an exported (folded) ``train.init`` model."""

CSV_FIELDS = [
    "epoch", "lr", "train_loss", "heatmap_loss", "presence_loss", "samples", "samples_per_s", "epoch_s",
    "val_epe_px", "val_pck02", "val_coverage", "val_presence_acc", "val_items",
]  # fmt: skip

COSINE_FLOOR = 0.02
"""The cosine schedule of training ends at this fraction of ``[train] lr`` (adaptation's ends at 0)."""


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


def recipe_schedule(recipe: Recipe, total: int, steps_per_epoch: int) -> Schedule:
    """The learning rates of a run of ``total`` optimizer steps: ``[train] lr`` after a linear warm-up of
    ``warmup_steps`` (at most a fifth of the run), then ``schedule``: cosine down to :data:`COSINE_FLOOR` x lr,
    constant, or ``step`` (x ``step_gamma`` every ``step_epochs`` epochs of ``steps_per_epoch`` steps)."""
    t = recipe.train
    return Schedule(
        peak=t.lr,
        total=total,
        warmup=min(t.warmup_steps, max(1, total // 5)),
        kind=t.schedule,
        floor=COSINE_FLOOR,
        step_every=max(1, steps_per_epoch) * max(1, t.step_epochs),
        gamma=t.step_gamma,
    )


def lr_at(recipe: Recipe, step: int, total: int, steps_per_epoch: int) -> float:
    """Learning rate of optimizer step ``step`` of ``total`` (linear warm-up, then the schedule)."""
    return recipe_schedule(recipe, total, steps_per_epoch).lr(step)


@torch.no_grad()
def validate(net: torch.nn.Module, loader, codec: HeatmapCodec) -> dict[str, float]:
    """2D metrics in frame pixels on a validation loader (items without augmentation or crop; perspective crop
    items: in crop pixels, see :mod:`handstream.train.items`).

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


# ------------------------------------------------------------------------------------------------
# The steps of train()
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Process:
    """This process's place in the run: ``rank`` of ``world`` processes, the device it trains on."""

    rank: int
    world: int
    device: torch.device

    @property
    def main(self) -> bool:
        """Rank 0: the one that renders, validates, logs and writes files."""
        return self.rank == 0


@dataclass
class _Data:
    """The datasets of a run (:func:`_open_data`): one per source; ``train_cat`` their concatenation drawn by
    ``sampler`` (this rank's share); ``val_loader`` (rank 0, when there are validation sources) or None."""

    train_sets: list[Any]
    val_sets: list[Any]
    train_cat: torch.utils.data.ConcatDataset
    sampler: EpochSampler
    val_loader: torch.utils.data.DataLoader | None = None


@dataclass
class _Epochs:
    """How many optimizer steps each epoch takes (the last ``full_size_epochs`` with a crop train on whole
    inputs, ``full_size_steps`` steps each when set)."""

    recipe: Recipe
    steps_per_epoch: int

    def full_size(self, epoch: int) -> bool:
        t = self.recipe.train
        return t.crop is not None and epoch >= t.epochs - t.full_size_epochs

    def steps(self, epoch: int) -> int:
        t = self.recipe.train
        return t.full_size_steps if self.full_size(epoch) and t.full_size_steps else self.steps_per_epoch

    def before(self, epoch: int) -> int:
        """Optimizer steps of the epochs before ``epoch`` (where a resumed run's schedule continues)."""
        return sum(self.steps(e) for e in range(epoch))


@dataclass
class _Run:
    """What every step of :func:`train` shares."""

    recipe: Recipe
    out: Path
    proc: _Process
    codec: HeatmapCodec
    spec: SampleSpec
    progress: bool
    log: Any = print
    history: list[dict[str, Any]] = field(default_factory=list)


def _start_process(recipe: Recipe) -> _Process:
    """Join the process group under ``torchrun`` (``WORLD_SIZE`` > 1), pick the device (this rank's GPU, else the
    CPU), set the torch threads (``[train] threads``, 0: the CPUs shared by the ranks) and seed torch."""
    t = recipe.train
    rank, world = _dist_info()
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("gloo" if not torch.cuda.is_available() else "nccl")
    device = torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if torch.cuda.is_available() else "cpu")
    torch.set_num_threads(t.threads or max(1, (os.cpu_count() or 1) // world))
    torch.manual_seed(t.seed)
    return _Process(rank, world, device)


def _prepare_out(recipe: Recipe, out: Path, resume: bool, main: bool) -> None:
    """Check ``train.init`` exists (before any data is rendered); rank 0 creates ``out`` and copies the recipe."""
    if recipe.train.init and not resume and not recipe.resolve(recipe.train.init).is_file():
        raise HandstreamError(f"{recipe.path}: train.init: {recipe.resolve(recipe.train.init)} not found")
    if main:
        out.mkdir(parents=True, exist_ok=True)
        if recipe.path is not None and recipe.path.resolve() != (out / "recipe.toml").resolve():
            shutil.copyfile(recipe.path, out / "recipe.toml")


def _open_data(recipe: Recipe, spec: SampleSpec, proc: _Process) -> _Data:
    """The training datasets of every rank (rank 0 renders missing synthetic data, the others wait for it),
    this rank's :class:`EpochSampler`, and rank 0's validation loader (items without augmentation or crop,
    at most ``val_max_items`` spread evenly). Raises HandstreamError when a batch is larger than an epoch."""
    t = recipe.train
    if proc.main:
        train_sets = build_dataset(recipe, recipe.train_sources, spec, t.seed)
        val_sets = build_dataset(recipe, recipe.val_sources, replace(spec, augment=None, crop=None), t.seed)
    if proc.world > 1:
        dist.barrier()
    if not proc.main:
        train_sets = build_dataset(recipe, recipe.train_sources, spec, t.seed, render=False)
        val_sets = []
    repeats = [s.repeat for s in recipe.train_sources]
    sampler = EpochSampler([len(d) for d in train_sets], repeats, t.seed, proc.rank, proc.world)
    if len(sampler) < t.batch:
        raise HandstreamError(
            f"{recipe.path}: train.batch {t.batch} is larger than the epoch's {len(sampler)} samples per process"
        )
    data = _Data(train_sets, val_sets, torch.utils.data.ConcatDataset(train_sets), sampler)
    if proc.main and val_sets:
        val_cat = torch.utils.data.ConcatDataset(val_sets)
        if t.val_max_items and len(val_cat) > t.val_max_items:
            step = len(val_cat) / t.val_max_items
            val_cat = torch.utils.data.Subset(val_cat, [int(i * step) for i in range(t.val_max_items)])
        data.val_loader = make_loader(val_cat, max(8, t.batch), None, t.workers, drop_last=False)
    return data


def _load_init(run: _Run, data: _Data, net: HandNet) -> None:
    """Load ``train.init`` into ``net`` (same network config); an exported ONNX model has its batch norms
    folded: they are put back, calibrated on :data:`INIT_CALIBRATION_ITEMS` items of epoch 0."""
    recipe, t = run.recipe, run.recipe.train
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
    if manifest_of_init.artifact_format == "onnx":
        data.sampler.set_epoch(0)
        for d in data.train_sets:
            d.set_epoch(0)
        calib = []
        for batch in make_loader(data.train_cat, t.batch, data.sampler, t.workers):
            calib.append((batch["image"], batch["rays"] if recipe.network.kpe else None))
            if len(calib) * t.batch >= INIT_CALIBRATION_ITEMS:
                break
        start = unfuse_batchnorm(start, calib)
    net.load_state_dict(start.state_dict())
    if run.proc.main:
        run.log(f"starting from the weights of {init_path}")


def _load_checkpoint(run: _Run, net: HandNet, opt: torch.optim.Optimizer) -> int:
    """``OUT/checkpoint.pt`` into ``net``, ``opt`` and ``run.history`` (--resume); returns the next epoch."""
    ckpt_path = run.out / "checkpoint.pt"
    if not ckpt_path.is_file():
        raise HandstreamError(f"{ckpt_path}: no checkpoint to resume from")
    ckpt = torch.load(ckpt_path, map_location=run.proc.device, weights_only=True)
    if ckpt.get("network") != run.recipe.network.to_dict():
        raise HandstreamError(f"{ckpt_path}: checkpoint was trained with another network config than {run.recipe.path}")
    net.load_state_dict(ckpt["model"])
    opt.load_state_dict(ckpt["optimizer"])
    start_epoch = int(ckpt["epoch"]) + 1
    run.history[:] = list(ckpt.get("history", []))
    if run.proc.main:
        run.log(f"resuming {ckpt_path} after epoch {start_epoch}")
    return start_epoch


def _build_model(run: _Run, data: _Data, resume: bool) -> tuple[HandNet, torch.optim.Optimizer, int]:
    """The network of ``[network]`` on this process's device and its AdamW optimizer, started from ``train.init``
    or (``resume``) from the checkpoint. Returns (net, optimizer, first epoch to train)."""
    t = run.recipe.train
    net = HandNet(run.recipe.network).to(run.proc.device)
    opt = adamw(net, t.lr, t.weight_decay)
    if t.init and not resume:
        _load_init(run, data, net)
    return net, opt, _load_checkpoint(run, net, opt) if resume else 0


def _train_epoch(
    run: _Run, model: torch.nn.Module, opt: torch.optim.Optimizer, data: _Data, epoch: int, plan: _Epochs,
    schedule: Schedule, step: int,
) -> StepStats:  # fmt: skip
    """One epoch of optimizer steps from global step ``step``: the epoch's items (whole inputs in the full-size
    epochs), the datasets' and sampler's epoch, then ``plan.steps(epoch)`` steps of :func:`run_steps`."""
    t = run.recipe.train
    epoch_spec = replace(run.spec, crop=None) if plan.full_size(epoch) or t.crop is None else run.spec
    for d in data.train_sets:
        d.spec = epoch_spec
        d.set_epoch(epoch)
    data.sampler.set_epoch(epoch)
    return run_steps(
        model, opt, make_loader(data.train_cat, t.batch, data.sampler, t.workers), schedule,
        limit=plan.steps(epoch), sigma=run.codec.sigma, presence_weight=t.presence_weight, grad_clip=t.grad_clip,
        first_step=step, device=run.proc.device, progress=run.proc.main and run.progress,
        desc=f"epoch {epoch + 1}/{t.epochs}", world=run.proc.world,
    )  # fmt: skip


def _record_epoch(
    run: _Run, net: HandNet, opt: torch.optim.Optimizer, data: _Data, epoch: int, stats: StepStats
) -> dict[str, Any]:
    """Rank 0 after an epoch: its row (losses, samples of all ranks, validation), appended to the history and
    ``metrics.csv``, the checkpoint rewritten, one log line. Returns the row."""
    world = run.proc.world
    row: dict[str, Any] = {
        "epoch": epoch + 1,
        "lr": stats.lr,
        **stats.means(),
        "samples": stats.samples * world,
        "samples_per_s": stats.samples * world / stats.seconds,
        "epoch_s": stats.seconds,
    }
    if data.val_loader is not None:
        row.update(validate(net, data.val_loader, run.codec))
    run.history.append(row)
    with open(run.out / "metrics.csv", "a", newline="") as f:
        csv.writer(f).writerow([_fmt(row.get(k, "")) for k in CSV_FIELDS])
    state = {"model": net.state_dict(), "optimizer": opt.state_dict(), "epoch": epoch}
    recipe = run.recipe
    _save(
        run.out / "checkpoint.pt",
        {**state, "network": recipe.network.to_dict(), "recipe": recipe.to_dict(), "history": run.history},
    )
    run.log(" ".join(f"{k}={_fmt(v)}" for k, v in row.items()))
    return row


def _run_epochs(
    run: _Run, net: HandNet, opt: torch.optim.Optimizer, data: _Data, start_epoch: int, resume: bool
) -> dict[str, Any]:
    """Epochs ``start_epoch`` .. ``epochs - 1`` (DDP-wrapped when several ranks), the schedule over all epochs
    (a resumed run continues it); rank 0 starts ``metrics.csv`` (kept on resume) and records every epoch.
    Returns the last epoch's row (rank 0; {} elsewhere)."""
    t = run.recipe.train
    model = torch.nn.parallel.DistributedDataParallel(net) if run.proc.world > 1 else net
    steps_per_epoch = len(data.sampler) // t.batch
    if t.max_steps_per_epoch:
        steps_per_epoch = min(steps_per_epoch, t.max_steps_per_epoch)
    plan = _Epochs(run.recipe, steps_per_epoch)
    schedule = recipe_schedule(run.recipe, plan.before(t.epochs), steps_per_epoch)
    step = plan.before(start_epoch)
    metrics_path = run.out / "metrics.csv"
    if run.proc.main and (not resume or not metrics_path.is_file()):
        with open(metrics_path, "w", newline="") as f:
            csv.writer(f).writerow(CSV_FIELDS)
    row: dict[str, Any] = {}
    for epoch in range(start_epoch, t.epochs):
        stats = _train_epoch(run, model, opt, data, epoch, plan, schedule, step)
        step += stats.steps
        if run.proc.main:
            row = _record_epoch(run, net, opt, data, epoch, stats)
    return row


def _save_model(run: _Run, net: HandNet, data: _Data) -> None:
    """Rank 0 at the end: ``OUT/model.pt`` (weights, network config, recipe, history), then the ONNX export when
    the recipe names one (:func:`export_model`)."""
    recipe = run.recipe
    _save(
        run.out / "model.pt",
        {"model": net.state_dict(), "network": recipe.network.to_dict(), "recipe": recipe.to_dict(),
         "history": run.history},
    )  # fmt: skip
    if recipe.export_onnx:
        export_model(net, recipe, recipe.resolve(recipe.export_onnx), run.out, data.val_sets, run.log)


def train(recipe: Recipe, out: str | Path, resume: bool = False, progress: bool = True, log=print) -> dict[str, Any]:
    """Train by ``recipe`` into the folder ``out``; returns the last epoch's metrics.

    Under ``torchrun`` (``WORLD_SIZE`` > 1) it joins the process group and trains with DDP.
    Raises HandstreamError for user errors (missing data, a checkpoint of another network on --resume).
    """
    out = Path(out)
    t = recipe.train
    proc = _start_process(recipe)
    _prepare_out(recipe, out, resume, proc.main)
    codec = HeatmapCodec(recipe.codec.input_size, recipe.codec.stride, recipe.codec.sigma)
    spec = SampleSpec(codec, recipe.augment, t.crop, t.min_joints, t.occluded_weight, recipe.hand_crop)
    run = _Run(recipe, out, proc, codec, spec, progress, log)
    data = _open_data(recipe, spec, proc)
    net, opt, start_epoch = _build_model(run, data, resume)
    row = _run_epochs(run, net, opt, data, start_epoch, resume)
    if proc.world > 1:
        dist.barrier()
    if proc.main:
        _save_model(run, net, data)
    if proc.world > 1:
        dist.barrier()
        dist.destroy_process_group()
    return row


def _fmt(v: Any) -> str:
    return f"{v:.5g}" if isinstance(v, float) else str(v)


def export_model(net: HandNet, recipe: Recipe, onnx_path: Path, out: Path, val_sets: list, log=print) -> None:
    """Export the trained network with :func:`handstream.export.onnx.export_onnx`, using a few validation
    inputs as real parity inputs; provenance records the recipe and checkpoint."""
    from handstream.export.onnx import export_onnx
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
