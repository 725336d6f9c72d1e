"""The engine's crop stage: every crop of a frame set in one call, close hands from a pyramid level."""

from __future__ import annotations

import cv2
import numpy as np

from handstream.engine.crops import pyramid_level, resample
from handstream.geometry import Camera
from handstream.geometry.crop_camera import CropCamera, hand_crop, look_at_rotation
from handstream.ops import reference

K0 = np.array([[200.0, 0.0, 317.5], [0.0, 199.0, 240.0], [0.0, 0.0, 1.0]])


def frames_and_cameras(rng):
    cams = [
        Camera("a", (636, 480), K0, [0.27, 0.023, -0.11, 0.036], "fisheye"),
        Camera("b", (640, 480), K0 * [[2, 1, 1], [1, 2, 1], [1, 1, 1]], [-0.12, 0.08, 0.001, -0.001, -0.01], "opencv"),
    ]
    images = [cv2.GaussianBlur(rng.integers(0, 256, (c.height, c.width), dtype=np.uint8), (5, 5), 1.5) for c in cams]
    return cams, images


def test_crops_match_the_reference_frame_by_frame():
    rng = np.random.default_rng(0)
    cams, images = frames_and_cameras(rng)
    crops = [CropCamera(cams[v], look_at_rotation(np.array([x, y, 1.0]), None), f, (128, 128))
             for v, x, y, f in ((0, 0.1, -0.2, 150.0), (1, -0.3, 0.1, 600.0), (0, 0.8, 0.5, 300.0))]  # fmt: skip
    assert [pyramid_level(c) for c in crops] == [0, 0, 0]
    out = resample(images, [0, 1, 0], crops)
    lens_crop = [c.lens_and_crop() for c in crops]
    ref = reference.resample_crops(
        images, [0, 1, 0], np.stack([lc[0] for lc in lens_crop]), np.stack([c.rotation for c in crops]),
        np.stack([lc[1] for lc in lens_crop]), (128, 128),
    )  # fmt: skip
    np.testing.assert_allclose(out, ref, atol=1e-5)


def test_a_close_hand_samples_a_pyramid_level():
    """A crop that would shrink the frame ~3x reads the 2nd pyramid level, not every 3rd pixel of the frame."""
    rng = np.random.default_rng(1)
    cams, images = frames_and_cameras(rng)
    crop = CropCamera(cams[0], look_at_rotation(np.array([0.0, 0.0, 1.0]), None), K0[0, 0] / 3.2, (128, 128))
    level = pyramid_level(crop)
    assert level == 2 and 2.9 < crop.frame_scale() < 3.5
    out = resample(images, [0], [crop])
    small = cv2.pyrDown(cv2.pyrDown(images[0]))
    lens, c = crop.lens_and_crop(small.shape[1] / images[0].shape[1])
    ref = reference.resample_crops([small], [0], lens[None], crop.rotation[None], c[None], (128, 128))
    np.testing.assert_allclose(out, ref, atol=1e-5)
    # the level is a low-passed frame: the crop of a noisy frame has far less variance than point sampling would
    direct = reference.resample_crops([images[0]], [0], crop.lens_and_crop()[0][None], crop.rotation[None],
                                      c[None], (128, 128))  # fmt: skip
    assert out.std() < 0.8 * direct.std()


def test_crop_of_a_synthetic_hand_shows_the_hand_upright():
    """End to end on a rendered frame: the crop of a hand holds its pixels (brighter than the background)."""
    from handstream.synth.generator import SynthGenerator
    from handstream.synth.rigs import get_preset

    preset = get_preset("headset4")
    frame = SynthGenerator(preset, 2, sequence_length=None, motion_blur=False).frame(10)
    for v, cam in enumerate(preset.rig):
        for h in range(2):
            joints = frame.labels.joints_3d[h]
            crop = hand_crop(cam, joints, (128, 128), 1.6)
            uv = crop.project(joints) if crop is not None else None
            if uv is None or not ((frame.labels.visibility[v, h] < 3).sum() >= 15):
                continue
            img = resample(list(frame.images), [v], [crop])[0]
            mask = np.zeros((128, 128), bool)
            cv2.fillConvexPoly(mask.view(np.uint8), cv2.convexHull(uv.astype(np.int32)), 1)
            assert img[mask].mean() > img[~mask].mean()
            return
    raise AssertionError("no hand visible enough in frame 10")
