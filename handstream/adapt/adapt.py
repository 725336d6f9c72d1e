"""Unsupervised multi-view adaptation: rounds of (detect -> consensus pseudo-labels -> fine-tune).

Legend: ``F`` frames, ``V`` views, ``H`` hands (2), ``K`` joints (21).

::

    round r:  detections  = teacher (round 0 with --teacher) or the current student, every view
              [no calibration: extrinsics from the detections, handstream.adapt.extrinsics]
              labels      = consensus_labels(rig, detections)      (handstream.adapt.pseudo)
              student     = fine-tune(student, frames, labels)     (the supervised loss and augmentation)
    then, with a refiner:  refiner = fine-tune(refiner, windows around the last round's labelled hands)

:func:`adapt` in steps: ``_open_models`` (checks before any work), then per round ``_adapt_round``
(``_detect``, ``_round_rig``, ``_round_labels``, ``_fine_tune_round``, ``_save_detector``), then
``_adapt_refiner`` and ``_export``. The optimizer steps are :func:`handstream.train.loop.run_steps`, the loop of
supervised training, with adaptation's schedule (:func:`fine_tune_schedule`) and clipping
(:data:`FINE_TUNE_GRAD_CLIP`).

Output folder::

    OUT/round-R/detections.npz  labels.npz  model.pt  report.json
    OUT/model.pt  OUT/<name>.onnx (+ .onnx.json)  OUT/report.json  OUT/adapt.log
    OUT/refiner.pt  OUT/<name>-refiner.onnx (+ .onnx.json)      (with a refiner)

The exported detector's manifest names its refiner (``refiner``: ``<name>-refiner.onnx``, or ``""`` when
none was adapted: a refiner that has never seen these cameras can undo the adaptation), so ``serve``,
``eval`` and ``bench`` pair them by default. The CLI adapts no refiner unless asked (``--refiner``): on the
real clip of docs/adaptation.md the adapted detector alone did better than with an adapted refiner.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from handstream.adapt.pseudo import LABELLED, ConsensusConfig, PseudoLabels, consensus_labels, label_error, merge_labels
from handstream.capture.recording import Recording
from handstream.engine.offline import Detections2D, predict_recording
from handstream.errors import HandstreamError
from handstream.geometry import Rig
from handstream.models.codec import HeatmapCodec
from handstream.records import json_safe, write_json
from handstream.train.augment import AugmentConfig, HandCropConfig
from handstream.train.items import SampleSpec, make_crop_item, make_item
from handstream.train.loop import Schedule, adamw, make_loader, run_steps

FINE_TUNE_GRAD_CLIP = 5.0
"""Maximum global gradient norm of every adaptation step (supervised recipes set theirs: ``[train] grad_clip``)."""

FINE_TUNE_MAX_WARMUP = 20
"""Adaptation warms up over a tenth of its steps, at most this many."""


@dataclass(frozen=True)
class AdaptConfig:
    """Settings of :func:`adapt`.

    Attributes:
        rounds: detect -> label -> fine-tune rounds.
        steps: optimizer steps per round; batch: images per step; lr: peak learning rate (cosine per round).
        crop: (W, H) training window of the input (as in supervised training), None for whole inputs.
        threads: CPU threads for training and inference (0: all).
        consensus: the pseudo-label rules.
        augment: augmentation of the pseudo-labelled frames.
        estimate_extrinsics: ignore the calibration's extrinsics and estimate them from the hands each round.
        hand_scale: the user's hand size relative to the average adult hand (metric scale without calibration).
        presence_weight: weight of the presence loss.
        refiner_steps: optimizer steps of the refiner's fine-tuning, after the last round (when adapting one).
        seed: randomness of the sampling and augmentation.
    """

    rounds: int = 3
    steps: int = 300
    batch: int = 32
    lr: float = 5e-4
    weight_decay: float = 1e-4
    crop: tuple[int, int] | None = (160, 128)
    threads: int = 0
    consensus: ConsensusConfig = field(default_factory=ConsensusConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    estimate_extrinsics: bool = False
    hand_scale: float = 1.0
    presence_weight: float = 0.1
    refiner_steps: int = 300
    seed: int = 0


class PseudoViews(torch.utils.data.Dataset):
    """Training items from pseudo-labels (:func:`handstream.train.items.make_item`: the same targets, weights
    and augmentation as supervised training).

    Detector (``spec.hand_crop`` None): one item per (frame, view) with at least one label. Refiner: one
    window per (frame, view, hand) with at least ``spec.min_joints`` labelled joints
    (:func:`~handstream.train.items.make_crop_item`).
    """

    def __init__(self, recording: Recording, labels: PseudoLabels, spec: SampleSpec, seed: int = 0):
        self.recording, self.labels, self.spec, self.seed = recording, labels, spec, seed
        if spec.hand_crop is None:
            self.index = np.argwhere((labels.status >= 0).any(axis=(2, 3)))  # (N, 2): f, v
        else:
            self.index = np.argwhere((labels.status == LABELLED).sum(axis=-1) >= spec.min_joints)  # (N, 3): f, v, h

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> dict[str, Any]:
        f, v, *hand = (int(x) for x in self.index[int(i)])
        rng = np.random.default_rng([self.seed, int(i)]) if self.spec.augment is not None else None
        cam = self.recording.rig[self.recording.names[v]]
        args = (self.spec, self.recording.images[v][f], cam, self.labels.keypoints[f, v], self.labels.status[f, v], rng)
        return make_crop_item(*args, hand[0]) if hand else make_item(*args)


def fine_tune_schedule(cfg: AdaptConfig) -> Schedule:
    """Learning rates of ``cfg.steps`` adaptation steps: linear warm-up over a tenth of them (at most
    :data:`FINE_TUNE_MAX_WARMUP`, at least 1), then cosine from ``cfg.lr`` down to 0."""
    warmup = min(FINE_TUNE_MAX_WARMUP, max(1, cfg.steps // 10))
    return Schedule(peak=cfg.lr, total=cfg.steps, warmup=warmup, kind="cosine", floor=0.0)


def fine_tune(
    net, dataset: PseudoViews, cfg: AdaptConfig, *, progress: bool = True, desc: str = "fine-tune"
) -> dict[str, float]:
    """``cfg.steps`` AdamW steps of the supervised loss on ``dataset`` (cosine learning rate, short warm-up,
    :func:`fine_tune_schedule`; gradients clipped at :data:`FINE_TUNE_GRAD_CLIP`), batches of ``cfg.batch`` items
    drawn with replacement (seeded by ``cfg.seed``). Batch norms train too, so their statistics move to the new
    cameras; ``net`` is left in eval mode. Returns mean losses (``train_loss``, ``heatmap_loss``,
    ``presence_loss``) and ``train_s`` (seconds)."""
    gen = torch.Generator().manual_seed(cfg.seed)
    sampler = torch.utils.data.RandomSampler(
        dataset, replacement=True, num_samples=cfg.steps * cfg.batch, generator=gen
    )
    loader = make_loader(dataset, cfg.batch, sampler, workers=1)
    opt = adamw(net, cfg.lr, cfg.weight_decay)
    stats = run_steps(
        net, opt, loader, fine_tune_schedule(cfg), limit=cfg.steps, sigma=dataset.spec.codec.sigma,
        presence_weight=cfg.presence_weight, grad_clip=FINE_TUNE_GRAD_CLIP, progress=progress, desc=desc,
    )  # fmt: skip
    net.eval()
    return {**stats.means(), "train_s": stats.seconds}


def _score(recording: Recording, det: Detections2D, labels: PseudoLabels) -> dict[str, Any]:
    """Scoring against synthetic truth (reported, never used to adapt)."""
    t = recording.truth
    if not t:
        return {}
    from handstream import metrics

    vis = t["visibility"]
    m = (vis < 4) & (det.conf > 0)
    out = dict(label_error(labels, t["keypoints_2d"], vis))
    out["detection_epe_px"] = metrics.epe(det.keypoints, t["keypoints_2d"], m) if m.any() else float("nan")
    jm = np.isfinite(labels.joints).all(axis=-1)
    if jm.any():
        out["consensus_mpjpe_mm"] = 1000 * float(np.linalg.norm(labels.joints[jm] - t["joints_3d"][jm], axis=-1).mean())
    return out


# ------------------------------------------------------------------------------------------------
# The steps of adapt()
# ------------------------------------------------------------------------------------------------


@dataclass
class _Adaptation:
    """What the steps of :func:`adapt` share: the inputs, the detector being adapted (``net``, loaded from
    ``model`` with its ``manifest``), the items' ``spec`` and the report being filled."""

    recording: Recording
    model: str | Path
    net: Any
    manifest: Any
    spec: SampleSpec
    cfg: AdaptConfig
    out: Path
    teacher: str | Path | None
    detections: Detections2D | None
    progress: bool
    log: Any
    report: dict[str, Any]


def _open_models(recording: Recording, model: str | Path, refiner: str | Path | None, cfg: AdaptConfig):
    """Checks before any work (the rig's intrinsics, ``model`` a detector, ``refiner`` a refiner), the torch
    threads, then the networks. Returns (net, manifest, (refiner net, its manifest) or None)."""
    from handstream.models.checkpoint import load_network

    if recording.rig is None:
        raise HandstreamError(
            "adapt: the cameras' intrinsics are needed: pass --calibration "
            "(with --estimate-extrinsics when its extrinsics are unknown)"
        )
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    net, manifest = load_network(model)
    if manifest.crop is not None:
        raise HandstreamError(
            f"adapt: {model} is a refiner (a 'crop' rule); --model takes the detector, --refiner the refiner"
        )
    ref = None
    if refiner is not None:  # checked before hours of work, not after
        ref = load_network(refiner)
        if ref[1].crop is None:
            raise HandstreamError(f"adapt: --refiner {refiner} is a detector (no 'crop' rule in its manifest)")
    return net, manifest, ref


def _detect(run: _Adaptation, r: int, current: Any) -> Detections2D:
    """Round ``r``'s 2D detections of every view: round 0 the given ones or the teacher's when there are, else
    those of the current student (``current``: the model path of the previous round)."""
    if r == 0 and run.detections is not None:
        return run.detections
    if r == 0 and run.teacher is not None:
        from handstream.mediapipe import teacher_recording

        return teacher_recording(run.recording, run.teacher, progress=run.progress)
    return predict_recording(
        run.recording, current, threads=run.cfg.threads, progress=run.progress, desc=f"round {r}: detecting"
    )


def _round_rig(run: _Adaptation, det: Detections2D, entry: dict[str, Any]) -> Rig:
    """The rig this round labels with: the calibration's, or (``estimate_extrinsics``) poses estimated from
    ``det`` (recorded in ``entry``, with their error against the calibration's own extrinsics when it has any)."""
    truth_rig = run.recording.rig
    if not run.cfg.estimate_extrinsics:
        return truth_rig
    from handstream.adapt.extrinsics import estimate_extrinsics, extrinsics_error

    est = estimate_extrinsics(list(truth_rig), det.keypoints, det.conf, hand_scale=run.cfg.hand_scale)
    entry["extrinsics"] = est.to_dict()
    # the calibration's own extrinsics, when it has any, are the reference (exact for synthetic data)
    if any(np.linalg.norm(c.t) > 0 for c in truth_rig):
        entry["extrinsics_error"] = extrinsics_error(est.rig, truth_rig)
    return est.rig


def _round_labels(
    run: _Adaptation, r: int, rig: Rig, det: Detections2D, first: PseudoLabels | None
) -> tuple[PseudoLabels, PseudoLabels]:
    """Consensus pseudo-labels of ``det`` on ``rig``; with a teacher, later rounds keep round 0's (the teacher's)
    labels where the student's consensus has none. Returns (this round's labels, round 0's labels)."""
    labels = consensus_labels(rig, det, run.cfg.consensus)
    if r == 0:
        first = labels
    elif run.teacher is not None:  # the student's consensus first; the teacher's where the student has none
        labels = merge_labels(labels, first)
    return labels, first


def _fine_tune_round(run: _Adaptation, r: int, work: Recording, labels: PseudoLabels, entry: dict[str, Any]):
    """Fine-tune the detector on round ``r``'s labels (seed ``cfg.seed + r``); logs the labels, adds the losses
    to ``entry``. Raises HandstreamError when fewer views than a batch have labels."""
    cfg = run.cfg
    dataset = PseudoViews(work, labels, run.spec, seed=cfg.seed + r)
    n_lab = int((labels.status == LABELLED).sum())
    run.log(
        f"round {r}: {n_lab} joint labels in {len(dataset)} views ({_summary(labels)})"
        + (f", label error {entry['label_epe_px']:.2f} px" if "label_epe_px" in entry else "")
    )
    if len(dataset) < cfg.batch:
        raise HandstreamError(
            f"adapt: round {r} produced labels for only {len(dataset)} views (< batch {cfg.batch}): "
            "the views do not agree on the hands; "
            "check that the recordings are synchronized and match the calibration, record more frames, "
            "or loosen --threshold-px"
        )
    losses = fine_tune(run.net, dataset, replace(cfg, seed=cfg.seed + r), progress=run.progress,
                       desc=f"round {r}: fine-tune")  # fmt: skip
    entry.update(losses)
    return losses


def _save_detector(run: _Adaptation, path: Path, extra: dict[str, Any]) -> Path:
    """The detector's checkpoint (``.pt``, the starting model's input geometry), provenance in ``extra``."""
    from handstream.models.checkpoint import save_network

    m = run.manifest
    return save_network(path, run.net, input_size=m.input_size, stride=m.stride, sigma=m.sigma, extra=extra)


def _adapt_round(run: _Adaptation, r: int, current: Any, first: PseudoLabels | None):
    """Round ``r`` (module docstring): detect, [estimate extrinsics], label, fine-tune, save ``round-R/``; its
    entry goes into the report. Returns (the round's model path, round 0's labels, the round's labels, the
    recording with the round's rig)."""
    rdir = run.out / f"round-{r}"
    rdir.mkdir(exist_ok=True)
    t0 = time.perf_counter()
    det = _detect(run, r, current)
    det.save(rdir / "detections.npz")
    entry: dict[str, Any] = {"round": r, "detections": det.source or str(current), "detect_s": time.perf_counter() - t0}
    rig = _round_rig(run, det, entry)
    work = run.recording.with_rig(rig)
    labels, first = _round_labels(run, r, rig, det, first)
    labels.save(rdir / "labels.npz")
    entry["consensus"] = labels.report
    entry.update(_score(run.recording, det, labels))
    losses = _fine_tune_round(run, r, work, labels, entry)
    current = _save_detector(run, rdir / "model.pt", {"adapted_from": str(run.model), "round": r})
    entry["round_s"] = time.perf_counter() - t0
    run.report["rounds"].append(json_safe(entry))
    write_json(entry, rdir / "report.json")
    run.log(f"round {r}: loss {losses['train_loss']:.4f}, {entry['round_s']:.0f} s")
    return current, first, labels, work


def _export(run: _Adaptation, name: str, refiner: str | Path | None, ref) -> None:
    """``OUT/<name>.onnx`` (its manifest names the adapted refiner, or ``""``) and, with a refiner,
    ``OUT/<name>-refiner.onnx`` first; their paths go into the report."""
    from handstream.export.onnx import export_onnx
    from handstream.records import file_sha256

    out, manifest = run.out, run.manifest
    provenance = {"teacher": str(run.teacher) if run.teacher else None, "recording": run.recording.source}
    paired = ""
    if refiner is not None:
        rnet, rmanifest = ref
        paired = f"{name}-refiner.onnx"
        m = export_onnx(
            rnet, out / paired, name=f"{name}-refiner", input_size=rmanifest.input_size, stride=rmanifest.stride,
            sigma=rmanifest.sigma, crop=rmanifest.crop,
            provenance={
                **provenance, "adapted_from": str(refiner), "checkpoint_sha256": file_sha256(out / "refiner.pt")
            },
        )  # fmt: skip
        run.report["refiner_onnx"] = str(out / paired)
        run.log(f"exported {out / paired} (parity max abs diff {m.parity['max_abs_diff']})")
    m = export_onnx(
        run.net, out / f"{name}.onnx", name=name, input_size=manifest.input_size, stride=manifest.stride,
        sigma=manifest.sigma,
        provenance={**provenance, "adapted_from": str(run.model), "checkpoint_sha256": file_sha256(out / "model.pt")},
        refiner=paired,
    )  # fmt: skip
    run.report["onnx"] = str(out / f"{name}.onnx")
    run.log(
        f"exported {out / f'{name}.onnx'} (parity max abs diff {m.parity['max_abs_diff']}); "
        + (f"its refiner: {paired}" if paired else "it runs without a refiner (none was adapted)")
    )


def adapt(
    recording: Recording,
    model: str | Path,
    out: str | Path,
    cfg: AdaptConfig | None = None,
    *,
    teacher: str | Path | None = None,
    refiner: str | Path | None = None,
    detections: Detections2D | None = None,
    name: str = "adapted",
    export: bool = True,
    progress: bool = True,
    log=print,
) -> dict[str, Any]:
    """Adapt the estimator ``model`` to the cameras of ``recording`` without labels.

    Args:
        recording: synchronized frames of every camera with a rig (its extrinsics are re-estimated from the
            hands when ``cfg.estimate_extrinsics``; the intrinsics are always needed).
        model: the starting network: a ``.pt`` checkpoint (``handstream train``'s ``model.pt``: batch norms
            intact, preferred) or an ``.onnx`` with its manifest (batch norms folded).
        out: output folder (see the module docstring).
        teacher: a MediaPipe hand landmarker ``.task`` bundle: round 0 labels come from it instead of the
            student (fused by the same consensus, so the student can end better than the teacher); in later
            rounds the teacher's consensus labels a hand wherever the student's detections find none.
        refiner: a refiner (``.pt`` or ``.onnx`` with a ``crop`` rule) to fine-tune, after the rounds, on
            windows around the hands of the last round's labels; exported as ``<name>-refiner.onnx`` and
            named in the detector's manifest. None: the detector's manifest says to run without a refiner.
        detections: round 0 detections given directly (e.g. ``round-0/detections.npz`` of an earlier run,
            :meth:`Detections2D.load`) instead of computing them.
        An imported MediaPipe landmark network (an ``.onnx`` whose manifest says ``kind = "landmarks"``) is
        adapted by :func:`handstream.adapt.landmarks.adapt_landmarks` instead (``cfg`` None or a
        :class:`~handstream.adapt.landmarks.LandmarkAdaptConfig`; no teacher, refiner or detections).
    Returns:
        The report (also ``OUT/report.json``): per round the consensus counts, losses, extrinsics when
        estimated, and, for synthetic recordings, the label and detection errors against the truth.
    """
    from handstream.adapt.landmarks import LandmarkAdaptConfig, adapt_landmarks, is_landmarks_model

    if is_landmarks_model(model):
        if teacher is not None or refiner is not None or detections is not None:
            raise HandstreamError(f"adapt: {model} is a landmarks model: it is its own teacher and crop model "
                                  "(no teacher, refiner or detections)")  # fmt: skip
        if cfg is not None and not isinstance(cfg, LandmarkAdaptConfig):
            raise HandstreamError(f"adapt: {model} is a landmarks model: its settings are a LandmarkAdaptConfig")
        return adapt_landmarks(recording, model, out, cfg, name=name, export=export, progress=progress, log=log)
    cfg = cfg or AdaptConfig()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    net, manifest, ref = _open_models(recording, model, refiner, cfg)
    codec = HeatmapCodec(manifest.input_size, manifest.stride, manifest.sigma)
    report: dict[str, Any] = {
        "model": str(model),
        "teacher": str(teacher) if teacher else None,
        "refiner": str(refiner) if refiner else None,
        "recording": recording.source,
        "frames": len(recording),
        "views": recording.names,
        "config": json_safe(asdict(cfg)),
        "rounds": [],
    }
    run = _Adaptation(recording, model, net, manifest, SampleSpec(codec, cfg.augment, cfg.crop, 3, 1.0), cfg, out,
                      teacher, detections, progress, log, report)  # fmt: skip
    current: Any = model
    first = labels = None
    work = recording
    for r in range(cfg.rounds):
        current, first, labels, work = _adapt_round(run, r, current, first)
    _save_detector(run, out / "model.pt", {"adapted_from": str(model), "rounds": cfg.rounds})
    if refiner is not None:
        rnet, rmanifest = ref
        report["refiner_fine_tune"] = _adapt_refiner(rnet, rmanifest, refiner, work, labels, cfg, out, progress, log)
        write_json(report, out / "report.json")
    if export:
        _export(run, name, refiner, ref)
    write_json(report, out / "report.json")
    return report


def _adapt_refiner(
    net,
    manifest,
    source: str | Path,
    recording: Recording,
    labels: PseudoLabels,
    cfg: AdaptConfig,
    out: Path,
    progress: bool,
    log,
) -> dict[str, Any]:
    """Fine-tune the refiner ``net`` (loaded from ``source``) on windows (the engine's window rule, with the
    training jitter) around the hands that ``labels`` label; writes ``out/refiner.pt``. Returns the losses."""
    from handstream.models.checkpoint import save_network

    crop = manifest.crop
    spec = SampleSpec(
        manifest.codec, cfg.augment, None, 3, 1.0, HandCropConfig(margin=crop["margin"], min_side=crop["min_side"])
    )
    windows = PseudoViews(recording, labels, spec, seed=cfg.seed + cfg.rounds)
    if len(windows) < cfg.batch:
        raise HandstreamError(
            f"adapt: the last round labelled only {len(windows)} hand windows (< batch {cfg.batch}) "
            "to fine-tune the refiner on"
        )
    log(f"refiner: fine-tuning on {len(windows)} hand windows of the last round's labels")
    losses = fine_tune(
        net,
        windows,
        replace(cfg, steps=cfg.refiner_steps, seed=cfg.seed + cfg.rounds),
        progress=progress,
        desc="refiner: fine-tune",
    )
    save_network(out / "refiner.pt", net, input_size=manifest.input_size, stride=manifest.stride, sigma=manifest.sigma,
                 crop=crop, extra={"adapted_from": str(source)})  # fmt: skip
    log(f"refiner: loss {losses['train_loss']:.4f}, {losses['train_s']:.0f} s")
    return {"windows": len(windows), **losses, "adapted_from": str(source)}


def _summary(labels: PseudoLabels) -> str:
    h = labels.report["hands"]
    return ", ".join(
        f"{side} hand labelled in {v['labelled']} frames, absent {v['absent']}, unknown {v['unknown']}"
        for side, v in h.items()
    )
