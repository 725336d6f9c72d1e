"""Adapt an imported landmark network (MediaPipe's, :mod:`handstream.models.importer`) to a rig without labels.

Legend: ``F`` frames, ``V`` views, ``H`` hands (2), ``K`` joints (21), ``N`` crops in a batch.

The S2DHand / HaMuCo idea with the imported network as the teacher: the student starts equal to it (a
:class:`~handstream.models.landmark_net.LandmarkNet` built from the same ONNX initializers), and its labels come
from the multi-view consensus of its own tracked detections, so whatever it gains over the teacher is the
consensus's::

    round r:  detections = the engine's tracked path with the current student (round 0: the teacher),
                           :func:`handstream.engine.offline.track_recording` (acquisition by search)
              labels     = consensus_labels(rig, detections)        (handstream.adapt.pseudo, ConsensusConfig)
                           refitted to the recording's bone lengths  (handstream.adapt.bone_fit; bone_sigma)
              student    = fine-tune(student, RGB perspective crops of the labelled hands)
              [round-R/student.onnx: the next round tracks with it]
    then      OUT/<name>.onnx  (export_landmark_onnx: the teacher's names, roles and crop rule, parity checked)

The crops are the engine's (:func:`handstream.geometry.crop_camera.hand_crop` with the manifest's margin and
``min_side`` around the consensus' 3D joints, resampled by :func:`handstream.engine.crops.resample` in RGB),
jittered the way a tracker's prediction errs (a 3D offset, the margin, a roll), plus a few negatives that
look beside the hand. The loss (:func:`landmark_loss`): smooth-L1 on the labelled joints' crop px, presence
(1 on hand crops, 0 on negatives) and handedness (the label's side) by binary cross-entropy. The optimizer
steps are :func:`handstream.train.loop.run_steps`, the one loop of training and adaptation.

The learning rate must be tiny: TFLite folded the batch norms into the convolutions, so Adam above ~1e-5
overshoots (docs/adaptation.md has the curve measured on the real stereo clip).

Output folder::

    OUT/round-R/detections.npz  labels.npz  model.pt  report.json  [student.onnx (+ .json), not the last round]
    OUT/model.pt  OUT/<name>.onnx (+ .onnx.json)  OUT/report.json
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from handstream.adapt.pseudo import LABELLED, ConsensusConfig, PseudoLabels, consensus_labels
from handstream.capture.recording import Recording
from handstream.engine.crops import resample
from handstream.engine.offline import Detections2D, track_recording
from handstream.errors import HandstreamError
from handstream.geometry.crop_camera import CropCamera, hand_crop
from handstream.models.landmarks import PIXEL_OFFSET
from handstream.records import json_safe, write_json
from handstream.skeleton import HANDS, NUM_JOINTS
from handstream.train.loop import Schedule, adamw, make_loader, run_steps

LANDMARK_GRAD_CLIP = 5.0
"""Maximum global gradient norm of a step (the loss is in crop px: a bad label must not throw the network)."""


@dataclass(frozen=True)
class LandmarkAdaptConfig:
    """Settings of :func:`adapt_landmarks`.

    Attributes:
        rounds: track -> label -> fine-tune rounds.
        steps: optimizer steps per round; batch: crops per step (~65 ms per crop on one CPU core).
        lr: peak learning rate (Adam; linear warm-up over a tenth of the steps, then cosine to 0 per round); the
            defaults (2 rounds of 150 steps of 8 crops at 1e-5) are the best of the sweep in docs/adaptation.md.
        weight_decay: AdamW's decay (0: plain Adam, the measured setting).
        threads: torch and ONNX Runtime threads (0: all).
        consensus: the pseudo-label rules (:class:`~handstream.adapt.pseudo.ConsensusConfig`).
        min_joints: a (frame, view, hand) becomes a crop when at least this many of its joints are labelled.
        offset: sd of the crop's 3D offset, as a fraction of the hand's extent (the tracker's prediction error).
        margin_range: (min, max) crop margin, drawn log-uniformly (the engine's rule: the manifest's, 1.5).
        roll_deg: sd of the crop's roll about its axis, degrees.
        negatives: fraction of crops that look beside the hand (presence target 0).
        smooth_l1_px: smooth-L1's beta (crop px): quadratic below, linear above.
        presence_weight: weight of the presence and handedness losses against the keypoints'.
        bone_sigma: refit each frame's consensus hand to the recording's median bone lengths, tolerating this
            relative change per pixel of reprojection (:func:`handstream.adapt.bone_fit.fit_bone_lengths`);
            0: the consensus as it is.
        seed: randomness of the sampling and jitter.
        palm_detector: an imported palm detector guiding each round's search (``model.palm_detector``); None.
    """

    rounds: int = 2
    steps: int = 150
    batch: int = 8
    lr: float = 1e-5
    weight_decay: float = 0.0
    threads: int = 1
    consensus: ConsensusConfig = field(default_factory=ConsensusConfig)
    min_joints: int = 10
    offset: float = 0.05
    margin_range: tuple[float, float] = (1.35, 1.7)
    roll_deg: float = 8.0
    negatives: float = 0.1
    smooth_l1_px: float = 1.0
    presence_weight: float = 0.1
    bone_sigma: float = 0.05
    seed: int = 0
    palm_detector: str | None = None


def is_landmarks_model(path: str | Path) -> bool:
    """``path`` is an ``.onnx`` whose manifest says ``kind = "landmarks"`` (an imported MediaPipe network)."""
    from handstream.models.manifest import load_manifest, manifest_path

    p = Path(path)
    return p.suffix.lower() == ".onnx" and manifest_path(p).is_file() and load_manifest(p)[0].kind == "landmarks"


class LandmarkCrops(torch.utils.data.Dataset):
    """Training crops from pseudo-labels: one per (frame, view, hand) with at least ``cfg.min_joints`` labelled
    joints, made by the engine's crop rule around the consensus' 3D joints and jittered (module docstring).

    Items (tensors): ``image`` (3, S, S) RGB [0, 1]; ``target`` (K, 2) the labels in MediaPipe's crop px
    (edges at 0 and S: handstream's + 0.5); ``weight`` (K,) 1 on labelled joints inside the crop; ``presence``
    (1,) 1 on a hand crop, 0 on a negative; ``handedness`` (1,) 1 for the right hand; ``side_weight`` (1,) 1 on
    a hand crop (a negative has no side).
    """

    def __init__(self, recording: Recording, labels: PseudoLabels, crop_rule: dict, size: tuple[int, int],
                 cfg: LandmarkAdaptConfig, seed: int = 0, jitter: bool = True):  # fmt: skip
        self.recording, self.labels, self.cfg, self.seed, self.jitter = recording, labels, cfg, seed, jitter
        self.margin, self.min_side = float(crop_rule["margin"]), float(crop_rule.get("min_side", 0.0))
        self.size = (int(size[0]), int(size[1]))
        lab = (labels.status == LABELLED) & np.isfinite(labels.joints)[:, None].all(axis=-1)
        self.index = np.argwhere(lab.sum(axis=-1) >= cfg.min_joints)  # (N, 3): f, v, h
        self._draws = 0

    def __len__(self) -> int:
        return len(self.index)

    def crop(self, i: int, rng: np.random.Generator | None) -> tuple[CropCamera | None, bool]:
        """Item ``i``'s crop camera and whether it is a negative (``rng`` None: the engine's rule exactly)."""
        f, v, h = (int(x) for x in self.index[i])
        cam = self.recording.rig[self.recording.names[v]]
        J = self.labels.joints[f, h]
        ok = np.isfinite(J).all(axis=-1)
        extent = float(np.linalg.norm(J[ok].max(axis=0) - J[ok].min(axis=0)))  # rig units: no metric assumed
        if rng is None:
            return hand_crop(cam, J, self.size, self.margin, self.min_side), False
        if rng.random() < self.cfg.negatives:  # the hand's crop moved 1.5-3 hand extents away: no hand in it
            d = rng.normal(size=3)
            d *= rng.uniform(1.5, 3.0) * extent / max(float(np.linalg.norm(d)), 1e-9)
            crop = hand_crop(cam, J + d, self.size, self.margin, self.min_side)
            if crop is not None:
                return _rolled(crop, rng.uniform(-np.pi, np.pi)), True
        lo, hi = np.log(self.cfg.margin_range)
        margin = float(np.exp(rng.uniform(lo, hi)))
        crop = hand_crop(cam, J + rng.normal(0.0, self.cfg.offset * extent, 3), self.size, margin, self.min_side)
        if crop is None:
            return hand_crop(cam, J, self.size, self.margin, self.min_side), False
        return _rolled(crop, np.deg2rad(rng.normal(0.0, self.cfg.roll_deg))), False

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        i = int(i)
        f, v, h = (int(x) for x in self.index[i])
        self._draws += 1  # a crop drawn again gets new jitter; the same seed gives the same run (one process)
        rng = np.random.default_rng([self.seed, i, self._draws]) if self.jitter else None
        crop, negative = self.crop(i, rng)
        if crop is None:  # the hand behind the camera: cannot happen for a labelled view, kept safe
            raise HandstreamError(f"adapt: frame {f}, view {v}: no crop for a labelled hand")
        image = resample([self.recording.images[v][f]], [0], [crop], color="rgb")[0]
        uv = crop.project(self.labels.joints[f, h])  # (K, 2) handstream crop px, NaN behind the crop camera
        w, hgt = self.size
        lab = self.labels.status[f, v, h] == LABELLED
        inside = np.isfinite(uv).all(axis=-1) & (uv[:, 0] >= -0.5) & (uv[:, 0] <= w - 0.5) & (uv[:, 1] >= -0.5) \
            & (uv[:, 1] <= hgt - 0.5)  # fmt: skip
        weight = (lab & inside & (not negative)).astype(np.float32)
        target = np.where(weight[:, None] > 0, uv + PIXEL_OFFSET, 0.0).astype(np.float32)
        return {
            "image": torch.from_numpy(np.ascontiguousarray(image)),
            "target": torch.from_numpy(target),
            "weight": torch.from_numpy(weight),
            "presence": torch.tensor([0.0 if negative else 1.0]),
            "handedness": torch.tensor([1.0 if HANDS[h] == "right" else 0.0]),
            "side_weight": torch.tensor([0.0 if negative else 1.0]),
        }

    def exact_crops(self, n: int) -> np.ndarray:
        """(<= n, 3, S, S) float32 crops of the first items by the engine's rule (no jitter): parity inputs."""
        pick = np.linspace(0, len(self) - 1, min(n, len(self))).astype(int) if len(self) else []
        out = []
        for i in pick:
            f, v, _ = (int(x) for x in self.index[i])
            crop, _ = self.crop(int(i), None)
            out.append(resample([self.recording.images[v][f]], [0], [crop], color="rgb")[0])
        return np.stack(out) if out else np.zeros((0, 3, self.size[1], self.size[0]), np.float32)


def _rolled(crop: CropCamera, angle_rad: float) -> CropCamera:
    """``crop`` turned about its optical axis by ``angle_rad``."""
    c, s = np.cos(angle_rad), np.sin(angle_rad)
    return replace(crop, rotation=crop.rotation @ np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]))


def landmark_loss(net, batch: dict[str, torch.Tensor], *, presence_weight: float = 0.1,
                  beta_px: float = 1.0) -> tuple[torch.Tensor, dict[str, float]]:  # fmt: skip
    """Loss of a LandmarkNet on a batch of :class:`LandmarkCrops` items.

    smooth-L1 (``beta_px``) of the predicted landmarks' x, y (N, K, 2) crop px against ``target``, summed over
    x and y, weighted by ``weight`` and averaged over the weights; plus ``presence_weight`` x (binary
    cross-entropy of the presence against ``presence`` + that of the handedness against ``handedness``, on the
    hand crops). Returns the loss and its parts as floats (``heatmap``: the keypoint part, the loop's name for
    it; ``presence``: presence + handedness).
    """
    out = net(batch["image"])
    xy = out["landmarks"].reshape(len(batch["image"]), NUM_JOINTS, 3)[..., :2]
    w = batch["weight"]
    err = F.smooth_l1_loss(xy, batch["target"], beta=beta_px, reduction="none").sum(dim=-1)  # (N, K)
    kp = (err * w).sum() / w.sum().clamp(min=1.0)
    eps = 1e-6
    pres = F.binary_cross_entropy(out["presence"].clamp(eps, 1 - eps), batch["presence"])
    sw = batch["side_weight"]
    side = (F.binary_cross_entropy(out["handedness"].clamp(eps, 1 - eps), batch["handedness"], reduction="none")
            * sw).sum() / sw.sum().clamp(min=1.0)  # fmt: skip
    loss = kp + presence_weight * (pres + side)
    return loss, {"heatmap": float(kp.detach()), "presence": float((pres + side).detach())}


def landmark_schedule(cfg: LandmarkAdaptConfig) -> Schedule:
    """``cfg.steps`` learning rates: linear warm-up over a tenth of them (1..20), then cosine from ``cfg.lr`` to 0."""
    return Schedule(peak=cfg.lr, total=cfg.steps, warmup=min(20, max(1, cfg.steps // 10)), kind="cosine", floor=0.0)


def fine_tune_landmarks(net, crops: LandmarkCrops, cfg: LandmarkAdaptConfig, *, progress: bool = True,
                        desc: str = "fine-tune") -> dict[str, float]:  # fmt: skip
    """``cfg.steps`` Adam(W) steps of :func:`landmark_loss` on batches of ``cfg.batch`` crops drawn with
    replacement (seeded by ``cfg.seed``), through :func:`handstream.train.loop.run_steps`; ``net`` is left in
    eval mode (it has no batch norms or dropout: both modes compute the same). Returns ``train_loss``,
    ``keypoint_loss`` (crop px, smooth-L1), ``presence_loss`` (mean per step) and ``train_s``."""
    gen = torch.Generator().manual_seed(cfg.seed)
    sampler = torch.utils.data.RandomSampler(crops, replacement=True, num_samples=cfg.steps * cfg.batch,
                                             generator=gen)  # fmt: skip
    loader = make_loader(crops, cfg.batch, sampler, workers=0)
    opt = adamw(net, cfg.lr, cfg.weight_decay)

    def loss_fn(model, batch):
        return landmark_loss(model, batch, presence_weight=cfg.presence_weight, beta_px=cfg.smooth_l1_px)

    stats = run_steps(net, opt, loader, landmark_schedule(cfg), limit=cfg.steps, sigma=0.0, presence_weight=0.0,
                      grad_clip=LANDMARK_GRAD_CLIP, progress=progress, desc=desc, loss_fn=loss_fn)  # fmt: skip
    net.eval()
    m = stats.means()
    return {"train_loss": m["train_loss"], "keypoint_loss": m["heatmap_loss"], "presence_loss": m["presence_loss"],
            "train_s": stats.seconds}  # fmt: skip


# ------------------------------------------------------------------------------------------------
# The steps of adapt_landmarks()
# ------------------------------------------------------------------------------------------------


def open_student(model: str | Path):
    """The teacher ``model`` (an imported ``.onnx`` landmarks model, or a LandmarkNet ``.pt``) as a trainable
    LandmarkNet (checked against ONNX Runtime when an ``.onnx``) -> (net, manifest of an ONNX file to export
    with: the teacher's own, or for a ``.pt`` the manifest stored in it)."""
    from handstream.models.checkpoint import load_landmark_net

    net, manifest = load_landmark_net(model)
    return net, manifest


def _track(recording: Recording, current: str | Path, cfg: LandmarkAdaptConfig, progress: bool, r: int
           ) -> Detections2D:  # fmt: skip
    """Round ``r``'s detections: the engine's tracked path with the current model (an ``.onnx`` file)."""
    return track_recording(recording, current, threads=cfg.threads, progress=progress, desc=f"round {r}: tracking",
                           palm=cfg.palm_detector)  # fmt: skip


def _detections_summary(recording: Recording, det: Detections2D) -> dict[str, Any]:
    """The round's detections scored by the label-free metrics (training frames: a diagnostic, not a test)."""
    from handstream.eval.consistency import consistency_metrics

    m = consistency_metrics(recording.rig, det)
    rp = m["reprojection"]
    return {
        "agreement_rate": rp["agreement_rate"], "inlier_median_px": rp["inlier_median_px"],
        "coverage": {s: h["coverage"] for s, h in m["hands"].items()},
        "bone_cv_pct": {s: h["bone_cv_pct"] for s, h in m["hands"].items()},
    }  # fmt: skip


def _export_student(net, path: Path, manifest, crops: LandmarkCrops, provenance: dict[str, Any], log) -> Path:
    """``path`` (.onnx + manifest) from the student, parity-checked on random and real crops."""
    from handstream.export.landmarks import export_landmark_onnx

    m = export_landmark_onnx(net, path, manifest, name=path.stem, real_inputs=[crops.exact_crops(4)],
                             provenance=provenance)  # fmt: skip
    log(f"exported {path} (parity max abs diff {m.parity['max_abs_diff']})")
    return path


def adapt_landmarks(
    recording: Recording,
    model: str | Path,
    out: str | Path,
    cfg: LandmarkAdaptConfig | None = None,
    *,
    name: str = "adapted",
    export: bool = True,
    progress: bool = True,
    log=print,
) -> dict[str, Any]:
    """Adapt the imported landmark network ``model`` to the cameras of ``recording`` without labels.

    Args:
        recording: synchronized frames of every camera with a calibrated rig (the consensus triangulates).
        model: the teacher: an imported ``.onnx`` landmarks model (``handstream import-model``,
            :func:`handstream.models.importer.import_mediapipe`) with its manifest.
        out: output folder (module docstring).
        cfg: :class:`LandmarkAdaptConfig`.
        name: the exported student's name (``OUT/<name>.onnx``).
        export: write ``OUT/<name>.onnx`` (else only ``OUT/model.pt``).
    Returns:
        the report (also ``OUT/report.json``): per round the consensus counts, the tracked detections' own
        consistency figures, the losses and times; ``onnx`` the exported student.
    Raises:
        HandstreamError (one line): no rig, not a landmarks model, a round with fewer labelled crops than a batch.
    """
    from handstream.models.checkpoint import save_landmark_net

    cfg = cfg or LandmarkAdaptConfig()
    out = Path(out)
    if recording.rig is None:
        raise HandstreamError("adapt: the cameras' calibration is needed: pass --calibration")
    if Path(model).suffix.lower() != ".onnx":
        raise HandstreamError(f"adapt: --model {model}: the teacher must be the imported .onnx (with its manifest)")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    out.mkdir(parents=True, exist_ok=True)
    net, manifest = open_student(model)
    size = tuple(manifest.input_size)
    report: dict[str, Any] = {"model": str(model), "kind": "landmarks", "recording": recording.source,
                              "frames": len(recording), "views": recording.names, "config": json_safe(asdict(cfg)),
                              "rounds": []}  # fmt: skip
    provenance = {"adapted_from": str(model), "recording": json_safe(recording.source), "rounds": cfg.rounds,
                  "adaptation": "handstream.adapt.landmarks (multi-view consensus pseudo-labels)"}  # fmt: skip
    current: Path = Path(model)
    crops = None
    for r in range(cfg.rounds):
        rdir = out / f"round-{r}"
        rdir.mkdir(exist_ok=True)
        t0 = time.perf_counter()
        det = _track(recording, current, cfg, progress, r)
        det.save(rdir / "detections.npz")
        entry: dict[str, Any] = {"round": r, "detections": str(current), "track_s": time.perf_counter() - t0,
                                 "tracked": _detections_summary(recording, det)}  # fmt: skip
        labels = consensus_labels(recording.rig, det, cfg.consensus)
        if cfg.bone_sigma > 0:
            from handstream.adapt.bone_fit import fit_bone_lengths

            labels = fit_bone_lengths(recording.rig, det, labels, cfg.bone_sigma)
            fit = labels.report["bone_fit"]
            change = ", ".join(f"{side} {b:.1f} -> {a:.1f} %" for side, b, a in
                               zip(HANDS, fit["bone_cv_pct_before"], fit["bone_cv_pct_after"], strict=True)
                               if np.isfinite(b))  # fmt: skip
            log(f"round {r}: labels refitted to the recording's bone lengths: bone-length variation {change}")
        labels.save(rdir / "labels.npz")
        entry["consensus"] = labels.report
        crops = LandmarkCrops(recording, labels, manifest.crop, size, cfg, seed=cfg.seed + r)
        log(f"round {r}: {int((labels.status == LABELLED).sum())} joint labels, {len(crops)} hand crops; "
            f"tracked: agreement {entry['tracked']['agreement_rate']:.3f}, "
            f"median reprojection {entry['tracked']['inlier_median_px']:.2f} px")  # fmt: skip
        if len(crops) < cfg.batch:
            raise HandstreamError(
                f"adapt: round {r} labelled only {len(crops)} hand crops (< batch {cfg.batch}): the views do not "
                "agree on the hands; check that the recordings are synchronized and match the calibration, or "
                "loosen --threshold-px"
            )
        entry.update(fine_tune_landmarks(net, crops, replace(cfg, seed=cfg.seed + r), progress=progress,
                                         desc=f"round {r}: fine-tune"))  # fmt: skip
        save_landmark_net(rdir / "model.pt", net, manifest, extra={"adapted_from": str(model), "round": r})
        if r + 1 < cfg.rounds:  # the next round tracks with this student (ONNX Runtime, as the engine runs it)
            current = _export_student(net, rdir / "student.onnx", manifest, crops, {**provenance, "round": r}, log)
        entry["round_s"] = time.perf_counter() - t0
        report["rounds"].append(json_safe(entry))
        write_json(json_safe(entry), rdir / "report.json")
        log(f"round {r}: loss {entry['train_loss']:.4f} (keypoints {entry['keypoint_loss']:.3f} px), "
            f"{entry['round_s']:.0f} s")  # fmt: skip
    save_landmark_net(out / "model.pt", net, manifest, extra={"adapted_from": str(model), "rounds": cfg.rounds})
    if export and crops is not None:
        report["onnx"] = str(_export_student(net, out / f"{name}.onnx", manifest, crops, provenance, log))
    write_json(report, out / "report.json")
    return report


__all__ = [
    "LandmarkAdaptConfig",
    "LandmarkCrops",
    "adapt_landmarks",
    "fine_tune_landmarks",
    "is_landmarks_model",
    "landmark_loss",
    "landmark_schedule",
    "open_student",
]
