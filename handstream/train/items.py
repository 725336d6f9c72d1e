"""Training items: one camera frame and its labels -> the network's input and targets (one dict of tensors).

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
Perspective crops (:func:`handstream.train.perspective.make_perspective_item`, the tracking engine's crop model)
are no affine map of the frame: their ``affine`` is the identity and ``keypoints`` / ``box_size`` are in crop
pixels (the crop camera's projection of the true joints), so validation measures in crop pixels; ``rays`` are
the crop camera's (:meth:`~handstream.geometry.crop_camera.CropCamera.ray_angles`).

The datasets that make these items from folders and annotation files are in :mod:`handstream.train.data`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from handstream.geometry.camera import Camera
from handstream.models.codec import HeatmapCodec
from handstream.models.kpe import ray_angles
from handstream.models.preprocess import InputMapping, prepare_views
from handstream.train.augment import AugmentConfig, HandCropConfig, warp_input

OUT_OF_FRAME = 4  # handstream.synth.render.Visibility.OUT_OF_FRAME
OCCLUDED_BY_SCENE = 3


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
        hand_crop: crop items around one hand (window or perspective crops), or None for whole inputs.
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
    return assemble_item(spec, codec, inp, mapping.to_input(kp), rays, mapping.matrix, kp, status, in_frame,
                         hand_known, scored)  # fmt: skip


def assemble_item(
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
