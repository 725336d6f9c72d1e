"""Training data: synthetic per-view samples and real 2D-labelled images -> network inputs and targets.

Legend: ``H`` hands (2: left, right), ``K`` joints (21), ``(H_in, W_in)`` network input size, ``(h, w)``
heatmap size (input / stride), ``V`` views.

Every item is a dict of tensors (float32 unless said):

* ``image`` (1, H_in, W_in) in [0, 1]: the frame through the engine's own letterbox
  (:func:`~handstream.models.preprocess.prepare_views`), then augmented (:mod:`handstream.train.augment`).
* ``rays`` (2, h, w) radians: :func:`~handstream.models.kpe.ray_angles` of the camera through the same mapping.
* ``heatmaps`` (H*K, h, w), ``weights`` (H*K,): :meth:`HeatmapCodec.encode` targets. Joint weights: 1 visible,
  self-occluded or occluded by the other hand (the network must still place them, the triangulation needs
  them), ``occluded_weight`` when hidden by the scene; a joint outside the frame is "known absent" (zero map,
  weight kept); an unlabelled joint is "unknown" (weight 0).
* ``presence`` (H,) 0/1: the hand has at least ``min_joints`` labelled joints inside the input;
  ``presence_known`` (H,) 0 when every joint of the hand is unknown (then presence is not scored).
* ``hand_known`` () 1 when the hand axis is known (synthetic), 0 for single-hand images of unknown side: the
  loss then takes the better of the two assignments (:func:`handstream.train.loss.hand_loss`).
* ``affine`` (2, 3) frame -> input (float64), ``keypoints`` (H, K, 2) frame pixels (float64) and ``in_frame``
  (H, K) bool: for validation in frame pixels; ``box_size`` (H,) frame pixels: the hand's bounding box size
  (max side of the box of its in-frame joints), the PCK unit.

Crop items (``SampleSpec.hand_crop``): one per (frame, view, hand) the frame shows. Window crops
(:func:`make_crop_item`, the refiner) are affine maps of the frame, so ``affine`` and ``keypoints`` stay as above.
Perspective crops (:func:`make_perspective_item`, the tracking engine's crop model) are no affine map of the
frame: their ``affine`` is the identity and ``keypoints`` / ``box_size`` are in crop pixels (the crop camera's
projection of the true joints), so validation measures in crop pixels; ``rays`` are the crop camera's
(:meth:`~handstream.geometry.crop_camera.CropCamera.ray_angles`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from handstream.errors import HandstreamError
from handstream.geometry.camera import Camera
from handstream.geometry.crop_camera import CropCamera, hand_crop, look_at_rotation
from handstream.models.codec import HeatmapCodec
from handstream.models.kpe import ray_angles
from handstream.models.preprocess import InputMapping, prepare_views
from handstream.skeleton import NUM_JOINTS
from handstream.train.augment import AugmentConfig, HandCropConfig, warp_input

OUT_OF_FRAME = 4  # handstream.synth.render.Visibility.OUT_OF_FRAME
OCCLUDED_BY_SCENE = 3
DEFAULT_REAL_FOV_DEG = 60.0
"""Horizontal field of view assumed for real images that come without a camera model (pinhole, centred)."""


@dataclass
class SampleSpec:
    """How items are made (shared by all sources of a run).

    Attributes:
        codec: target encoder (input size, stride, sigma).
        augment: augmentation ranges, or None for the plain engine input (validation).
        crop: (W, H) window of the (augmented) input to train on, or None for the whole input. Cropping
            keeps the geometry (pixels per degree) of the full input; the rays describe the window's cells.
        min_joints: labelled joints inside the input for a hand to count as present.
        occluded_weight: target weight of joints hidden by the scene.
    """

    codec: HeatmapCodec
    augment: AugmentConfig | None = None
    crop: tuple[int, int] | None = None
    min_joints: int = 3
    occluded_weight: float = 0.5
    hand_crop: HandCropConfig | None = None


def box_sizes(keypoints: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """(H, K, 2) pixels and (H, K) bool -> (H,) max side of the bounding box of the valid joints (NaN if < 2)."""
    out = np.full(keypoints.shape[0], np.nan)
    for h in range(keypoints.shape[0]):
        p = keypoints[h][valid[h]]
        if len(p) >= 2:
            out[h] = float((p.max(axis=0) - p.min(axis=0)).max())
    return out


def make_item(
    spec: SampleSpec,
    image: np.ndarray,
    camera: Camera,
    keypoints: np.ndarray,
    status: np.ndarray,
    rng: np.random.Generator | None,
    hand_known: bool = True,
) -> dict[str, Any]:
    """One training item from one camera frame.

    Args:
        image: (h, w) uint8 grey or (h, w, 3) uint8 BGR frame.
        camera: its camera (size = frame size), for the rays.
        keypoints: (H, K, 2) frame pixels (distorted); NaN where unknown.
        status: (H, K) int: 0..3 = in the frame (3: hidden by the scene), 4 = known outside the frame,
            -1 = unknown (no label).
        rng: random generator for augmentation (None: no augmentation).
        hand_known: whether the hand axis (left/right) of ``keypoints`` is meaningful.
    """
    codec = spec.codec
    batch, (box,) = prepare_views([image], codec.input_size)
    inp = batch[0, 0]
    kp = np.asarray(keypoints, dtype=np.float64)
    status = np.asarray(status)
    in_frame = (status >= 0) & (status < OUT_OF_FRAME) & np.isfinite(kp).all(axis=-1)
    aug = np.array([[1.0, 0, 0], [0, 1.0, 0]])
    augment = spec.augment if rng is not None else None
    if augment is not None:
        rw, rh = box.resized
        augment.photometric(rng, inp[:rh, :rw])
        focus = box.to_input(np.where(in_frame[..., None], kp, np.nan)).reshape(-1, 2)
        aug = augment.sample_affine(rng, codec.input_size, focus)
        inp = warp_input(inp, aug)
    mapping = InputMapping.from_letterbox(box, aug)
    kp_in = mapping.to_input(kp)
    size = codec.input_size
    if spec.crop is not None:
        cw, ch = spec.crop
        pts = kp_in[in_frame]
        iw, ih = size
        if rng is not None and len(pts) and rng.random() < 0.8:
            cx, cy = pts[rng.integers(len(pts))] + rng.normal(0, 0.15, 2) * (cw, ch)
        elif rng is not None:
            cx, cy = rng.uniform(0, iw), rng.uniform(0, ih)
        else:
            cx, cy = iw / 2, ih / 2
        x0 = int(np.clip(round(cx - cw / 2), 0, max(0, iw - cw)))
        y0 = int(np.clip(round(cy - ch / 2), 0, max(0, ih - ch)))
        window = np.zeros((ch, cw), np.float32)
        part = inp[y0 : y0 + ch, x0 : x0 + cw]
        window[: part.shape[0], : part.shape[1]] = part
        inp = window
        m = mapping.matrix
        m[:, 2] -= (x0, y0)
        mapping = InputMapping((cw, ch), tuple(float(v) for v in m.ravel()))
        kp_in = mapping.to_input(kp)
        size = (cw, ch)
        codec = HeatmapCodec(size, codec.stride, codec.sigma, codec.refine)
    return _item(spec, codec, inp, mapping, camera, kp, status, in_frame, hand_known)


def make_crop_item(
    spec: SampleSpec,
    image: np.ndarray,
    camera: Camera,
    keypoints: np.ndarray,
    status: np.ndarray,
    rng: np.random.Generator | None,
    hand: int,
    hand_known: bool = True,
) -> dict[str, Any]:
    """One refiner item: a window around hand ``hand`` (0 left, 1 right) of one frame (``spec.hand_crop``).

    Arguments as :func:`make_item`. When that hand has fewer than ``min_joints`` joints in the frame, the
    window goes around the other hand, or (neither, or with probability ``negatives``) to a random place.
    Targets cover both hands (the other one may be in the window too); validation scores only the hand the
    window was made for (``in_frame`` of the other is cleared).
    """
    from handstream.models.crop import crop_image, crop_mapping, hand_box, window_side

    hc = spec.hand_crop
    codec = spec.codec
    kp = np.asarray(keypoints, dtype=np.float64)
    status = np.asarray(status)
    in_frame = (status >= 0) & (status < OUT_OF_FRAME) & np.isfinite(kp).all(axis=-1)
    fw, fh = image.shape[1], image.shape[0]
    usable = in_frame.sum(axis=1) >= spec.min_joints
    target = hand if usable[hand] or not usable[1 - hand] else 1 - hand
    negative = not usable[target] or (rng is not None and rng.random() < hc.negatives)
    angle = 0.0
    if not negative:
        center, box = hand_box(kp[target][in_frame[target]])
        if rng is not None:  # the engine's rule with a random margin, centre and angle
            side = window_side(box, float(np.exp(rng.uniform(*np.log(hc.margin_range)))), hc.min_side)
            center = center + rng.normal(0.0, hc.center_jitter, 2) * side
            angle = float(rng.uniform(-hc.rotate_deg, hc.rotate_deg))
        else:
            side = window_side(box, hc.margin, hc.min_side)
    elif rng is not None:
        side = float(rng.uniform(0.1, 0.35)) * max(fw, fh)
        center = np.array([rng.uniform(0, fw - 1), rng.uniform(0, fh - 1)])
    else:
        side, center = 0.25 * max(fw, fh), np.array([(fw - 1) / 2, (fh - 1) / 2])
    mapping = crop_mapping(center, side, codec.input_size, angle)
    inp = crop_image(image, mapping)
    if rng is not None and spec.augment is not None:
        spec.augment.photometric(rng, inp)
    scored = in_frame.copy()
    scored[1 - target] = False
    if negative:
        scored[:] = False
    return _item(spec, codec, inp, mapping, camera, kp, status, in_frame, hand_known, scored=scored)


def _rolled(crop: CropCamera, angle_rad: float) -> CropCamera:
    """``crop`` turned about its optical axis by ``angle_rad`` (the image turns the other way)."""
    c, s = np.cos(angle_rad), np.sin(angle_rad)
    roll = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    return replace(crop, rotation=crop.rotation @ roll)


def _negative_crop(
    camera: Camera, joints: np.ndarray, size: tuple[int, int], hc: HandCropConfig, rng: np.random.Generator
) -> CropCamera:
    """A crop with no hand of its own: half the time the hand's crop moved 15-40 cm away (a lost track), else a
    crop looking at a random direction of the frame, at a hand's field of view, with any roll."""
    fw, fh = camera.size
    if rng.random() < 0.5 and np.isfinite(joints).all():
        d = rng.normal(size=3)
        d *= rng.uniform(0.15, 0.4) / max(float(np.linalg.norm(d)), 1e-9)
        crop = hand_crop(camera, joints + d, size, float(np.exp(rng.uniform(*np.log(hc.margin_range)))), hc.min_side)
        if crop is not None:
            return _rolled(crop, rng.normal(0.0, np.deg2rad(hc.roll_deg)))
    for _ in range(8):
        xy = camera.normalize(np.array([rng.uniform(0, fw - 1), rng.uniform(0, fh - 1)]))
        if np.isfinite(xy).all():
            break
    else:
        xy = np.zeros(2)
    rotation = look_at_rotation(np.array([xy[0], xy[1], 1.0]), None)
    side = float(rng.uniform(0.15, 0.6))  # tan-plane extent of a hand 0.3-1.2 m away
    crop = CropCamera(camera, rotation, max(size) / (hc.margin * side), (int(size[0]), int(size[1])))
    return _rolled(crop, rng.uniform(-np.pi, np.pi))


def _acquisition_crop(
    camera: Camera,
    keypoints: np.ndarray,
    in_frame: np.ndarray,
    size: tuple[int, int],
    margin: float,
    hc: HandCropConfig,
    rng: np.random.Generator,
) -> CropCamera | None:
    """The engine's acquisition crop of a hand (``Tracker._acquisition_crops``): :func:`hand_crop` through the rays
    of the detector's keypoints, here the labels of the joints inside the frame ((K, 2) px, (K,) bool) moved by
    Gaussian noise and each missed with probability 0.1."""
    kp = np.where(in_frame[:, None], np.asarray(keypoints, np.float64), np.nan)
    ok = np.isfinite(kp).all(axis=-1)
    if ok.sum() < 3:
        return None
    side = float((kp[ok].max(axis=0) - kp[ok].min(axis=0)).max())
    kp = kp + rng.normal(0.0, hc.acquisition_noise * max(side, hc.min_side), kp.shape)
    kp[rng.random(len(kp)) < 0.1] = np.nan
    if np.isfinite(kp).all(axis=-1).sum() < 3:
        return None
    return hand_crop(camera, camera.unproject(kp, depth=1.0), size, margin, hc.min_side)


_WHITE: dict[tuple, np.ndarray] = {}


def make_perspective_item(
    spec: SampleSpec,
    image: np.ndarray,
    camera: Camera,
    joints: np.ndarray,
    status: np.ndarray,
    rng: np.random.Generator | None,
    hand: int,
    hand_known: bool = True,
    jitter: bool = True,
    keypoints: np.ndarray | None = None,
    out_crop: list | None = None,
) -> dict[str, Any]:
    """One crop-model item: a perspective crop camera looking at hand ``hand`` (0 left, 1 right) of one frame
    (``spec.hand_crop.camera == "perspective"``), resampled by the engine's :func:`handstream.engine.crops.resample`.

    Args:
        image: (h, w) uint8 grey or (h, w, 3) uint8 BGR frame; camera: its camera (world = the joints' frame).
        joints: (H, K, 3) world points of both hands (metres; NaN = unknown).
        status: (H, K) int visibility codes of this view (as :func:`make_item`; 4 = outside the frame).
        rng: None: the engine's rule exactly (:func:`~handstream.geometry.crop_camera.hand_crop` with ``margin``),
            no photometric change, no negative. Else, with ``jitter``: the joints moved by a random 3D offset
            (``offset_m``), a random roll (``roll_deg``, ``roll_outliers``), the margin drawn in ``margin_range``
            and photometric augmentation; without ``jitter`` (validation): the rule. Either way with probability
            ``negatives`` the crop looks elsewhere (:func:`_negative_crop`). With ``jitter`` and ``keypoints``,
            with probability ``acquisition`` the crop is the engine's acquisition crop instead: through the
            rays of the hand's in-frame 2D keypoints, noisy and some missed (:class:`HandCropConfig`).
        jitter: see ``rng``.
        keypoints: (H, K, 2) frame pixels of the joints in this view (for acquisition crops), or None.
        out_crop: a list the item's :class:`CropCamera` is appended to (tests, tools), or None.
    Returns:
        the item dict (module docstring) with ``affine`` the identity, ``keypoints`` the labels in crop pixels
        (the crop camera's projection of the true joints), ``box_size`` in crop pixels: validation measures in
        crop pixels. Labels cover both hands (the other one may be in the crop); a joint outside the real frame
        is "known absent" even where it falls inside the crop (whose pixels there are 0), as is a joint behind
        the crop camera. When hand ``hand`` has fewer than ``min_joints`` joints in the frame the crop goes to
        the other hand, or (neither, or the hand behind the camera) is a negative; validation scores only the
        crop's own hand.
    """
    from handstream.engine.crops import resample

    hc = spec.hand_crop
    codec = spec.codec
    size = codec.input_size
    J = np.asarray(joints, dtype=np.float64)
    status = np.asarray(status)
    known = np.isfinite(J).all(axis=-1) & (status >= 0)
    in_frame = known & (status < OUT_OF_FRAME)
    usable = in_frame.sum(axis=1) >= spec.min_joints
    target = hand if usable[hand] or not usable[1 - hand] else 1 - hand
    negative = not usable[target] or (rng is not None and rng.random() < hc.negatives)
    crop = None
    if not negative:
        if rng is not None and jitter:
            margin = float(np.exp(rng.uniform(*np.log(hc.margin_range))))
            if keypoints is not None and rng.random() < hc.acquisition:
                crop = _acquisition_crop(camera, keypoints[target], in_frame[target], size, margin, hc, rng)
            else:
                crop = hand_crop(camera, J[target] + rng.normal(0.0, hc.offset_m, 3), size, margin, hc.min_side)
            if crop is not None:
                if rng.random() < hc.roll_outliers:
                    roll = rng.uniform(-hc.roll_outlier_deg, hc.roll_outlier_deg)
                else:
                    roll = rng.normal(0.0, hc.roll_deg)
                crop = _rolled(crop, np.deg2rad(roll))
        if crop is None:
            crop = hand_crop(camera, J[target], size, hc.margin, hc.min_side)
        negative = crop is None
    if negative:
        crop = _negative_crop(camera, J[target], size, hc, rng if rng is not None else np.random.default_rng(0))
    if out_crop is not None:
        out_crop.append(crop)
    inp = resample([image], [0], [crop])[0]
    if rng is not None and jitter and spec.augment is not None:
        spec.augment.photometric(rng, inp)
        key = image.shape[:2]
        if key not in _WHITE:
            _WHITE.clear()
            _WHITE[key] = np.full(key, 255, np.uint8)
        inp[resample([_WHITE[key]], [0], [crop])[0] <= 0] = 0.0  # outside the frame stays 0, as in the engine
    uv = crop.project(J)  # (H, K, 2) crop px; NaN behind the crop camera
    in_frame &= np.isfinite(uv).all(axis=-1)
    status = np.where(known, status, -1)
    scored = in_frame.copy()
    scored[1 - target] = False
    if negative:
        scored[:] = False
    return _assemble(spec, codec, inp, uv, crop.ray_angles(codec.stride), np.eye(3)[:2], uv, status, in_frame,
                     hand_known, scored)  # fmt: skip


def _item(
    spec: SampleSpec,
    codec: HeatmapCodec,
    inp: np.ndarray,
    mapping: InputMapping,
    camera: Camera,
    kp: np.ndarray,
    status: np.ndarray,
    in_frame: np.ndarray,
    hand_known: bool,
    scored: np.ndarray | None = None,
) -> dict[str, Any]:
    """Targets and the item dict for an input ``inp`` ((H_in, W_in) float32) made from the frame by ``mapping``.

    ``scored`` (H, K) bool: the joints validation measures (default: those in the frame).
    """
    rays = ray_angles(camera, mapping, codec.stride)
    return _assemble(spec, codec, inp, mapping.to_input(kp), rays, mapping.matrix, kp, status, in_frame, hand_known,
                     scored)  # fmt: skip


def _assemble(
    spec: SampleSpec,
    codec: HeatmapCodec,
    inp: np.ndarray,
    kp_in: np.ndarray,
    rays: np.ndarray,
    affine: np.ndarray,
    kp: np.ndarray,
    status: np.ndarray,
    in_frame: np.ndarray,
    hand_known: bool,
    scored: np.ndarray | None = None,
) -> dict[str, Any]:
    """The item dict: ``kp_in`` (H, K, 2) labels in input pixels, ``rays`` (2, h, w), ``affine`` (2, 3) and ``kp``
    (H, K, 2): the reference pixels validation maps decoded keypoints to (``affine`` @ kp = input px) and scores
    them against."""
    w_in, h_in = codec.input_size
    inside = (
        in_frame
        & (kp_in[..., 0] >= -0.5)
        & (kp_in[..., 0] <= w_in - 0.5)
        & (kp_in[..., 1] >= -0.5)
        & (kp_in[..., 1] <= h_in - 0.5)
    )
    target_kp = np.where(in_frame[..., None], kp_in, np.inf)
    target_kp = np.where((status < 0)[..., None], np.nan, target_kp)
    weight = np.where(status == OCCLUDED_BY_SCENE, spec.occluded_weight, 1.0)
    maps, weights = codec.encode(target_kp, weight)
    presence = (inside.sum(axis=1) >= spec.min_joints).astype(np.float32)
    # a hand with no label at all (pseudo-labels without consensus) says nothing about its presence
    presence_known = (status >= 0).any(axis=1).astype(np.float32)
    return {
        "image": torch.from_numpy(np.ascontiguousarray(inp, dtype=np.float32)[None]),
        "rays": torch.from_numpy(np.array(rays, dtype=np.float32)),
        "heatmaps": torch.from_numpy(maps),
        "weights": torch.from_numpy(weights),
        "presence": torch.from_numpy(presence),
        "presence_known": torch.from_numpy(presence_known),
        "hand_known": torch.tensor(float(hand_known)),
        "affine": torch.from_numpy(np.asarray(affine, dtype=np.float64)),
        "keypoints": torch.from_numpy(np.where(np.isfinite(kp), kp, np.nan)),
        "in_frame": torch.from_numpy(in_frame if scored is None else scored),
        "box_size": torch.from_numpy(box_sizes(kp, in_frame)),
    }


class SynthViews(torch.utils.data.Dataset):
    """One item per (frame, view) of a synthetic dataset folder (``handstream synth render``).

    Args:
        root: dataset folder; spec: how to make items; seed: augmentation seed (with the item index and
            :meth:`set_epoch`'s epoch, so runs are reproducible and workers independent).
    """

    def __init__(self, root: str | Path, spec: SampleSpec, seed: int = 0):
        from handstream.synth.dataset import SynthDataset

        self.data = SynthDataset(root)
        self.root = Path(root)
        self.spec = spec
        self.seed = seed
        self.epoch = 0
        self.views = self.data.num_views
        self._seen: np.ndarray | None = None  # refiner items, listed on first use

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _hands_seen(self) -> np.ndarray:
        """(M, 3) int (frame, view, hand) with at least ``min_joints`` joints in the frame: the refiner's items
        (a window around a hand the detector would report; random windows come from ``negatives``)."""
        if self._seen is None:
            rows = []
            for f in range(len(self.data)):
                lab = self.data.labels(f)
                v, kp = lab["visibility"], lab["keypoints_2d"]
                ok = ((v >= 0) & (v < OUT_OF_FRAME) & np.isfinite(kp).all(axis=-1)).sum(axis=-1) >= self.spec.min_joints
                rows += [(f, view, hand) for view, hand in zip(*np.nonzero(ok), strict=True)]
            self._seen = np.array(rows, np.int64).reshape(-1, 3)
        return self._seen

    def __len__(self) -> int:
        if self.spec.hand_crop is not None:
            return len(self._hands_seen())
        return len(self.data) * self.views

    def __getitem__(self, i: int) -> dict[str, Any]:
        i = int(i)
        hand = 0
        if self.spec.hand_crop is not None:
            frame, view, hand = (int(v) for v in self._hands_seen()[i])
        else:
            frame, view = divmod(i, self.views)
        lab = self.data.labels(frame)
        kp = lab["keypoints_2d"][view]
        vis = lab["visibility"][view].astype(np.int64)
        rng = np.random.default_rng([self.seed, self.epoch, i, hand]) if self.spec.augment is not None else None
        if self.spec.hand_crop is not None and self.spec.hand_crop.perspective:
            # validation (no augmentation): the engine's rule, and a fixed set of negatives for presence accuracy
            jitter = rng is not None
            rng = rng if jitter else np.random.default_rng([self.seed, i, hand, 1])
            img, cam = self.data.image(frame, view), self.data.rig[view]
            return make_perspective_item(
                self.spec, img, cam, lab["joints_3d"], vis, rng, hand, jitter=jitter, keypoints=kp
            )
        if self.spec.hand_crop is not None:
            return make_crop_item(self.spec, self.data.image(frame, view), self.data.rig[view], kp, vis, rng, hand)
        return make_item(self.spec, self.data.image(frame, view), self.data.rig[view], kp, vis, rng)


def pinhole_for(width: int, height: int, fov_deg: float = DEFAULT_REAL_FOV_DEG) -> Camera:
    """A centred pinhole camera of horizontal field of view ``fov_deg`` for an image without a camera model."""
    f = 0.5 * width / np.tan(np.deg2rad(fov_deg) / 2)
    return Camera("image", (width, height), [[f, 0, (width - 1) / 2], [0, f, (height - 1) / 2], [0, 0, 1]])


class Images2D(torch.utils.data.Dataset):
    """Real single-view images with 2D keypoints (the ``annotations_op21.json`` format of images2d).

    The JSON holds ``samples``: ``{file, width, height, hands: [{side, kpts2d: 21 x [x, y, v]}]}`` with
    joints in handstream's (MediaPipe/OpenPose) order, pixels. Supervision is 2D only: a joint with
    ``v > 0`` is a label, ``v == 0`` is unknown (weight 0). A hand's ``side`` ("left"/"right") puts it in
    that hand's maps; ``null`` (unknown) puts it in the left maps with ``hand_known = 0``, and the loss
    scores both assignments and keeps the better one (the other hand's maps get no supervision: an
    image may show a second, unlabelled hand). Without a camera model the rays come from a centred pinhole
    with ``fov_deg`` horizontal field of view (default 60 degrees).
    """

    def __init__(self, annotations: str | Path, spec: SampleSpec, seed: int = 0, fov_deg: float = DEFAULT_REAL_FOV_DEG):
        path = Path(annotations)
        if path.is_dir():
            path = path / "annotations_op21.json"
        if not path.is_file():
            raise HandstreamError(f"{path}: annotation file not found")
        try:
            data = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise HandstreamError(f"{path}: not readable JSON ({exc})") from None
        samples = data.get("samples") if isinstance(data, dict) else None
        if not isinstance(samples, list) or not samples:
            raise HandstreamError(f"{path}: expected an object with a non-empty 'samples' list")
        self.items = []
        for n, s in enumerate(samples):
            where = f"{path}: samples[{n}]"
            try:
                file = path.parent / "images" / s["file"]
                hands = s["hands"]
                kps = np.full((2, NUM_JOINTS, 2), np.nan)
                status = np.full((2, NUM_JOINTS), -1, np.int64)
                known = True
                used: set[int] = set()
                for hand in hands:
                    arr = np.asarray(hand["kpts2d"], dtype=np.float64)
                    if arr.shape != (NUM_JOINTS, 3):
                        raise HandstreamError(
                            f"{where}: kpts2d: expected {NUM_JOINTS} x [x, y, v], got shape {arr.shape}"
                        )
                    side = hand.get("side")
                    if side not in (None, "left", "right"):
                        raise HandstreamError(f"{where}: side: expected 'left', 'right' or null, got {side!r}")
                    slot = {"left": 0, "right": 1}.get(side, 0)
                    if side is None:
                        if len(hands) > 1:
                            raise HandstreamError(f"{where}: several hands of unknown side cannot be assigned")
                        known = False
                    if slot in used:
                        raise HandstreamError(f"{where}: two hands labelled {side!r}")
                    used.add(slot)
                    lab = arr[:, 2] > 0
                    kps[slot] = np.where(lab[:, None], arr[:, :2], np.nan)
                    status[slot] = np.where(lab, 0, -1)
            except (KeyError, TypeError, ValueError) as exc:
                raise HandstreamError(f"{where}: malformed sample ({exc})") from None
            self.items.append((file, kps, status, known))
        self.spec = spec
        self.seed = seed
        self.epoch = 0
        self.fov_deg = fov_deg

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, Any]:
        file, kps, status, known = self.items[int(i)]
        img = cv2.imread(str(file), cv2.IMREAD_COLOR)
        if img is None:
            raise HandstreamError(f"{file}: image not found or unreadable")
        cam = pinhole_for(img.shape[1], img.shape[0], self.fov_deg)
        rng = np.random.default_rng([self.seed, self.epoch, i]) if self.spec.augment is not None else None
        if self.spec.hand_crop is not None and self.spec.hand_crop.perspective:
            raise HandstreamError(f"{file}: perspective crops need 3D joints; 2D-labelled images have none")
        if self.spec.hand_crop is not None:
            labelled = [h for h in range(2) if (status[h] >= 0).any()] or [0]
            hand = labelled[int(rng.integers(len(labelled)))] if rng is not None else labelled[0]
            return make_crop_item(self.spec, img, cam, kps, status, rng, hand, hand_known=known)
        return make_item(self.spec, img, cam, kps, status, rng, hand_known=known)


class EpochSampler(torch.utils.data.Sampler):
    """Indices of one epoch over concatenated sources, each drawn ``repeat`` times its size, shuffled with
    (seed, epoch), split across ``world`` processes (rank r takes every world-th index; all ranks get the
    same count, so DDP steps stay in lockstep)."""

    def __init__(self, lengths: list[int], repeats: list[float], seed: int = 0, rank: int = 0, world: int = 1):
        self.lengths, self.repeats, self.seed, self.rank, self.world = lengths, repeats, seed, rank, world
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _all(self) -> np.ndarray:
        rng = np.random.default_rng([self.seed, self.epoch])
        parts, offset = [], 0
        for n, r in zip(self.lengths, self.repeats, strict=True):
            whole, frac = divmod(r, 1.0)
            idx = [np.arange(n)] * int(whole) + [rng.permutation(n)[: int(round(frac * n))]]
            parts.append(np.concatenate(idx) + offset)
            offset += n
        allidx = rng.permutation(np.concatenate(parts))
        usable = len(allidx) // self.world * self.world
        return allidx[:usable]

    def __iter__(self):
        return iter(self._all()[self.rank :: self.world].tolist())

    def __len__(self) -> int:
        total = sum(int(r // 1) * n + int(round((r % 1) * n)) for n, r in zip(self.lengths, self.repeats, strict=True))
        return total // self.world


def collate(items: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """Stack items (all of the same input size) into a batch."""
    return {k: torch.stack([it[k] for it in items]) for k in items[0]}
