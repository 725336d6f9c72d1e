"""Training-time augmentation that keeps the camera geometry exact.

Legend: ``H`` hands (2), ``K`` joints (21), ``(H_in, W_in)`` network input size, ``(h, w)`` heatmap size.

A training input is made exactly as the engine makes one (:func:`handstream.models.preprocess.prepare_views`:
grey, letterboxed top-left, [0, 1]), then moved by a random similarity transform *in input space* (zoom
about a point, rotation, shift; zero where nothing of the frame lands). :class:`InputMapping` composes the
letterbox with that transform and offers the interface :func:`handstream.models.kpe.ray_angles` uses
(``to_frame``, ``input_size``, hashable), so the ray input of every heatmap cell is the true viewing direction
of the frame pixel that cell now shows, whatever the zoom or rotation. With the identity transform the input
and the rays are byte-for-byte what the engine computes.

Flips are not offered: a mirrored image of a left hand looks like a right hand, so a flip would have to swap
the hands' maps *and* mirror the rays (x angle negated), and a mirrored lens is no longer the camera's lens.
Photometric changes (brightness, contrast, gamma, noise, blur) are applied to the letterboxed frame region
before the geometric warp, so the padding stays exactly 0 as at inference.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from handstream.models.preprocess import InputMapping  # noqa: F401  (re-exported: it began here)


@dataclass(frozen=True)
class AugmentConfig:
    """Random augmentation ranges (recipe section ``[augment]``); ``enabled = false`` turns all off.

    Attributes:
        zoom: (min, max) scale factor about a random point (1 = the engine's letterbox).
        shift: max shift as a fraction of the input size (each axis, uniform +-).
        rotate_deg: max in-plane rotation, degrees (uniform +-).
        brightness: max additive change (fraction of full scale, uniform +-).
        contrast: (min, max) multiplicative contrast about the image mean.
        gamma: (min, max) gamma exponent.
        noise: max standard deviation of Gaussian pixel noise (fraction of full scale).
        blur: probability of a Gaussian blur (sigma 0.3-1.2 input px).
        hand_focus: probability that the zoom centre is a hand's joint (else anywhere), so zoomed-in
            samples still show hands.
    """

    enabled: bool = True
    zoom: tuple[float, float] = (0.8, 1.3)
    shift: float = 0.1
    rotate_deg: float = 20.0
    brightness: float = 0.15
    contrast: tuple[float, float] = (0.7, 1.3)
    gamma: tuple[float, float] = (0.7, 1.4)
    noise: float = 0.03
    blur: float = 0.3
    hand_focus: float = 0.7

    def sample_affine(
        self, rng: np.random.Generator, input_size: tuple[int, int], focus: np.ndarray | None
    ) -> np.ndarray:
        """A random (2, 3) input -> input similarity transform.

        Args:
            focus: (P, 2) input pixels of joints to zoom about (any finite ones), or None.
        """
        if not self.enabled:
            return np.array([[1.0, 0, 0], [0, 1.0, 0]])
        w, h = input_size
        s = float(np.exp(rng.uniform(np.log(self.zoom[0]), np.log(self.zoom[1]))))
        a = np.deg2rad(rng.uniform(-self.rotate_deg, self.rotate_deg))
        pts = None if focus is None else focus[np.isfinite(focus).all(axis=-1)]
        if pts is not None and len(pts) and rng.random() < self.hand_focus:
            c = pts[rng.integers(len(pts))]
        else:
            c = np.array([rng.uniform(0, w - 1), rng.uniform(0, h - 1)])
        shift = rng.uniform(-self.shift, self.shift, 2) * (w, h)
        rot = s * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
        # p' = rot @ (p - c) + c + shift  (the focus point stays where it was, up to the shift)
        t = c + shift - rot @ c
        return np.hstack([rot, t[:, None]])

    def photometric(self, rng: np.random.Generator, region: np.ndarray) -> None:
        """Change brightness, contrast, gamma, blur and noise of ``region`` ((h, w) float32 in [0, 1]) in place."""
        if not self.enabled or region.size == 0:
            return
        g = rng.uniform(*self.gamma)
        np.power(region, g, out=region)
        c = rng.uniform(*self.contrast)
        m = float(region.mean())
        region -= m
        region *= c
        region += m + rng.uniform(-self.brightness, self.brightness)
        if rng.random() < self.blur:
            cv2.GaussianBlur(region, (0, 0), float(rng.uniform(0.3, 1.2)), dst=region)
        if self.noise > 0:
            region += rng.standard_normal(region.shape, dtype=np.float32) * np.float32(rng.uniform(0, self.noise))
        np.clip(region, 0.0, 1.0, out=region)


CROP_CAMERAS = ("window", "perspective")
"""``[hand_crop] camera``: an affine window of the frame (the refiner) or a perspective crop camera (the crop
model of the tracking engine, :mod:`handstream.geometry.crop_camera`)."""


@dataclass(frozen=True)
class HandCropConfig:
    """Crop-network training (recipe section ``[hand_crop]``): each item is a crop around one hand, made from
    the full-resolution frame instead of the letterboxed whole frame.

    ``camera = "window"`` (the default, the refiner): a square affine window of the frame
    (:mod:`handstream.models.crop`) around the hand's 2D keypoints. ``camera = "perspective"`` (the crop model
    of the tracking engine): a perspective crop camera (:func:`handstream.geometry.crop_camera.hand_crop`: at
    the real camera's centre, looking at the hand's 3D joints, rolled upright) resampled by the engine's own
    :func:`handstream.engine.crops.resample`.

    Attributes:
        camera: ``"window"`` or ``"perspective"`` (written into the exported manifest's ``crop`` rule).
        margin: crop side / the hand's box side at inference and validation (recorded in the manifest).
        margin_range: (min, max) of the training draw (log-uniform), around ``margin``: the detector's box
            is too small when it misses fingertips and too large when one joint is off.
        center_jitter: window: standard deviation of the window centre's offset, as a fraction of the window
            side (the detector's box centre is not the true one).
        rotate_deg: window: max in-plane rotation of the window (uniform +-); the engine's windows are upright.
        min_side: smallest hand box side, frame pixels (a hand seen edge-on has a thin box); perspective: pixels
            of the real camera's focal length, as the engine's rule.
        negatives: probability of a crop with no hand of its own (window: a random place; perspective: a random
            direction, or the hand's crop moved 15-40 cm away, a lost track), so the presence output learns to
            say "no hand here".
        offset_m: perspective: standard deviation (metres, per axis) of the 3D offset added to the hand's
            joints before the crop rule (a tracker's prediction error).
        roll_deg: perspective: standard deviation of the crop's roll about its optical axis (degrees): the
            predicted wrist -> middle knuckle direction is noisy.
        roll_outliers: perspective: probability that the roll is instead uniform in +-``roll_outlier_deg``
            (a wrong predicted orientation).
        roll_outlier_deg: perspective: range of those rolls.
        acquisition: perspective: probability that the crop is instead made as the engine makes an acquisition
            crop (a hand not tracked yet): through the rays of the hand's 2D keypoints in this view, moved by
            ``acquisition_noise`` x the hand's box side (std, per coordinate) with each joint missed with
            probability 0.1 (a missed wrist or middle knuckle: no upright roll, the camera's own).
        acquisition_noise: perspective: see ``acquisition``.
    """

    margin: float = 1.6
    margin_range: tuple[float, float] = (1.3, 2.1)
    center_jitter: float = 0.08
    rotate_deg: float = 25.0
    min_side: float = 24.0
    negatives: float = 0.1
    camera: str = "window"
    offset_m: float = 0.02
    roll_deg: float = 10.0
    roll_outliers: float = 0.1
    roll_outlier_deg: float = 90.0
    acquisition: float = 0.2
    acquisition_noise: float = 0.04

    @property
    def perspective(self) -> bool:
        return self.camera == "perspective"

    def rule(self) -> dict:
        """The manifest's ``crop`` rule of a model trained on these crops
        (:func:`handstream.models.manifest.crop_rule`): ``{"margin", "min_side"}``, plus ``"camera": "perspective"``
        for perspective crops."""
        rule = {"margin": float(self.margin), "min_side": float(self.min_side)}
        if self.perspective:
            rule["camera"] = "perspective"
        return rule


def warp_input(image: np.ndarray, aug: np.ndarray) -> np.ndarray:
    """Apply a (2, 3) input -> input transform to an (H_in, W_in) float32 input (bilinear, zero outside)."""
    if np.allclose(aug, [[1, 0, 0], [0, 1, 0]]):
        return image
    h, w = image.shape
    return cv2.warpAffine(image, aug, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
