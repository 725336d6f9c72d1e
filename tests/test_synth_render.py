"""The synthetic renderer: exact labels, a depth buffer that agrees with geometry, visibility from it, determinism."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from handstream.geometry import Camera, Rig
from handstream.synth.generator import SynthGenerator
from handstream.synth.hand import FAR_ARM_CAPSULES, NUM_CAPSULES, HandShape
from handstream.synth.motion import place_hand
from handstream.synth.raster import RayGrid
from handstream.synth.render import OCCLUSION_TOLERANCE, Visibility, containment, hand_capsule_arrays
from handstream.synth.rigs import RigPreset, Workspace, get_preset

FRAMES = (0, 7, 23, 40)


@pytest.fixture(scope="module")
def headset():
    return SynthGenerator(get_preset("headset4"), seed=3, sequence_length=32)


@pytest.fixture(scope="module")
def headset_frames(headset):
    return [headset.frame(i, buffers=True) for i in FRAMES]


def small_rig() -> Rig:
    """Four small cameras with the three lens models, looking at the workspace (the brute-force tests)."""
    cams = []
    specs = [
        ("fish", "fisheye", (0.25, 0.02, -0.1, 0.03), 60.0, (-0.05, 0.03, 0.0), 0.5),
        ("cv", "opencv", (-0.15, 0.03, 0.001, -0.001, 0.0), 110.0, (0.05, 0.03, 0.0), 0.4),
        ("pin", "pinhole", (), 100.0, (0.0, -0.04, 0.0), 0.2),
        ("side", "fisheye", (0.2, 0.0, 0.0, 0.0), 40.0, (0.08, 0.0, 0.0), 1.2),
    ]
    for name, model, dist, f, center, pitch in specs:
        f *= 0.6
        c, s = np.cos(pitch), np.sin(pitch)
        R = np.array([[1.0, 0, 0], [0, c, -s], [0, s, c]])
        if name == "side":  # looking sideways: forearms pass beside it
            R = np.array([[0.0, 0, -1], [0, 1, 0], [1, 0, 0]]) @ R
        cams.append(Camera(name, (96, 72), [[f, 0, 47.5], [0, f, 35.5], [0, 0, 1]], dist, model, R, -R @ center))
    return Rig(cams)


# --- labels are projections ------------------------------------------------------------------------


def test_labels_are_projections_of_3d_joints(headset, headset_frames):
    rig = headset.preset.rig
    for frame in headset_frames:
        lab = frame.labels
        assert lab.keypoints_2d.shape == (4, 2, 21, 2) and lab.keypoints_2d.dtype == np.float64
        assert lab.joints_3d.shape == (2, 21, 3) and lab.visibility.shape == (4, 2, 21)
        for v, cam in enumerate(rig):
            expected = cam.project(lab.joints_3d)
            np.testing.assert_allclose(lab.keypoints_2d[v], expected, rtol=0, atol=1e-6)
        # and the joints are those of the posed hands of that frame
        hands = headset.hands(frame.index)
        np.testing.assert_array_equal(lab.joints_3d, np.stack([h.joints for h in hands]))


def test_rendered_surface_is_where_the_labels_are(headset, headset_frames):
    """Visible joints' pixels show the capsules that contain them: the renderer's rays and the labels share the lens."""
    own = total = 0
    for frame in headset_frames:
        hands = headset.hands(frame.index)
        for v in range(4):
            owner = frame.buffers.owner[v]
            for h in range(2):
                contains, _ = containment(hands[h])
                for k in np.flatnonzero(frame.labels.visibility[v, h] == Visibility.VISIBLE):
                    x, y = np.rint(frame.labels.keypoints_2d[v, h, k]).astype(int)
                    c = int(owner[y, x])
                    total += 1
                    own += c >= 0 and c // NUM_CAPSULES == h and contains[c % NUM_CAPSULES, k]
    assert total > 50 and own / total > 0.9, (own, total)


# --- the depth buffer ------------------------------------------------------------------------------


def _capsule_distance_f64(origin, dirs, a, b, r):
    """Brute-force nearest hit of rays (N, 3) from ``origin`` with capsules (C,...): (N,) distance, (N,) id."""
    best = np.full(len(dirs), np.inf)
    owner = np.full(len(dirs), -1)
    for c in range(len(a)):
        # sample the axis densely and intersect with spheres along it: exact enough for a check
        for s in np.linspace(0.0, 1.0, 64):
            p = a[c] + s * (b[c] - a[c])
            oc = origin - p
            bb = dirs @ oc
            h = bb * bb - (oc @ oc - r[c] ** 2)
            t = -bb - np.sqrt(np.maximum(h, 0))
            hit = (h >= 0) & (t > 0) & (t < best)
            best[hit] = t[hit]
            owner[hit] = c
    return best, owner


def test_depth_buffer_matches_analytic_intersections(headset, headset_frames):
    rng = np.random.default_rng(0)
    rig = headset.preset.rig
    for frame in headset_frames[:2]:
        a, b, r = hand_capsule_arrays(headset.hands(frame.index))
        for v, cam in enumerate(rig):
            owner = frame.buffers.owner[v]
            # hands at full resolution; arms in 2x2 blocks, exact at the block's top-left pixel (even x, y)
            far = np.isin(owner % NUM_CAPSULES, FAR_ARM_CAPSULES)
            even = (np.arange(owner.shape[0])[:, None] % 2 == 0) & (np.arange(owner.shape[1])[None, :] % 2 == 0)
            ys, xs = np.nonzero((owner >= 0) & (~far | even))
            if len(ys) == 0:
                continue
            pick = rng.choice(len(ys), size=min(40, len(ys)), replace=False)
            px = np.stack([xs[pick], ys[pick]], axis=1).astype(np.float64)
            dirs = cam.unproject(px)  # float64 world rays of the pixel centres
            t, who = _capsule_distance_f64(cam.center, dirs, a, b, r)
            depth = frame.buffers.depth[v][ys[pick], xs[pick]]
            # sphere sweeps approximate the capsule from inside: within 0.2 mm of the exact surface
            np.testing.assert_allclose(depth, t, atol=2e-4)


def test_spans_cover_every_pixel_a_full_raster_finds():
    """The screen-space spans (and the coarse path near camera planes) miss nothing: equal to testing all pixels."""
    rig = small_rig()
    grid = RayGrid(rig)
    preset = RigPreset("small", rig, workspace=Workspace((-0.15, 0.0, 0.15), (0.15, 0.2, 0.4)))
    gen = SynthGenerator(preset, seed=11, sequence_length=None)
    coarse = 0
    half = np.zeros(2 * NUM_CAPSULES, bool)
    half[list(FAR_ARM_CAPSULES) + [NUM_CAPSULES + c for c in FAR_ARM_CAPSULES]] = True
    for i in range(0, 120, 5):
        a, b, r = hand_capsule_arrays(gen.hands(i))
        fast = grid.cast(a, b, r, half=half if i % 2 else None)
        full = grid.cast(a, b, r, half=half if i % 2 else None, full=True)
        coarse += fast.coarse
        # the same pixels with the same surfaces (within a capsule the coarse path lists pixels cell by cell)
        # (a pixel can hold a full-resolution hit and a block corner: sort by pixel, then capsule)
        f, g = np.lexsort((fast.capsule, fast.pixel)), np.lexsort((full.capsule, full.pixel))
        np.testing.assert_array_equal(fast.pixel[f], full.pixel[g])
        np.testing.assert_array_equal(fast.capsule[f], full.capsule[g])
        np.testing.assert_array_equal(fast.depth[f], full.depth[g])
        np.testing.assert_array_equal(fast.view_bounds, full.view_bounds)
        assert fast.tested < full.tested
    assert coarse > 0  # the sideways camera sends forearms through the coarse path


# --- visibility --------------------------------------------------------------------------------------


def test_visibility_agrees_with_the_depth_buffer(headset, headset_frames):
    grid = headset.renderer.grid
    counts = np.zeros(5, int)
    for frame in headset_frames:
        hands = headset.hands(frame.index)
        lab = frame.labels
        for h in range(2):
            contains, radius = containment(hands[h])
            for v, cam in enumerate(headset.preset.rig):
                dist = np.linalg.norm(grid.to_camera(hands[h].joints)[v], axis=-1)
                for k in range(21):
                    code = lab.visibility[v, h, k]
                    counts[code] += 1
                    u, w = lab.keypoints_2d[v, h, k]
                    inside = np.isfinite(u) and -0.5 <= u < cam.width - 0.5 and -0.5 <= w < cam.height - 0.5
                    if code == Visibility.OUT_OF_FRAME:
                        continue
                    assert inside
                    x, y = int(np.rint(u)), int(np.rint(w))
                    owner = int(frame.buffers.owner[v][y, x])
                    depth = float(frame.buffers.depth[v][y, x])
                    nearer = depth < dist[k] - radius[k] - OCCLUSION_TOLERANCE
                    own = owner >= 0 and owner // NUM_CAPSULES == h and contains[owner % NUM_CAPSULES, k]
                    if code == Visibility.VISIBLE:
                        assert own or not nearer
                    else:
                        assert nearer and not own
                        expected = (
                            Visibility.OCCLUDED_BY_SCENE
                            if owner < 0
                            else (
                                Visibility.SELF_OCCLUDED
                                if owner // NUM_CAPSULES == h
                                else Visibility.OCCLUDED_BY_OTHER_HAND
                            )
                        )
                        assert code == expected
    assert counts[Visibility.VISIBLE] > 0 and counts[Visibility.SELF_OCCLUDED] > 0


def test_occlusion_by_the_other_hand_is_detected():
    """One hand held right in front of the other, seen by a camera behind both: the far one is occluded by it."""
    cam = Camera("c", (320, 240), [[300.0, 0, 159.5], [0, 300, 119.5], [0, 0, 1]])
    preset = RigPreset("one", Rig([cam]))
    gen = SynthGenerator(preset, seed=0)
    shape = HandShape.from_scale(1.0)
    flat = np.zeros(22)
    elbow = np.array([0.0, 0.5, 0.0])
    near = place_hand("left", flat, np.array([0.0, 0.0, 0.30]), elbow + [0, 0, 0.3], 0.0, shape)
    far = place_hand("right", flat, np.array([0.0, 0.0, 0.45]), elbow + [0, 0, 0.45], 0.0, shape)
    frame = gen.frame(0, hands=(near, far), buffers=True)
    vis = frame.labels.visibility[0]
    assert np.sum(vis[1] == Visibility.OCCLUDED_BY_OTHER_HAND) >= 10
    assert np.all(vis[0] != Visibility.OCCLUDED_BY_OTHER_HAND)


def test_hand_outside_every_camera_is_all_out_of_frame(headset):
    hands = headset.hands(0)
    shape = HandShape.from_scale(1.0)
    behind = place_hand("right", hands[1].angles, np.array([0.1, 0.2, -0.6]), np.array([0.1, 0.4, -0.4]), 0.0, shape)
    frame = headset.frame(0, hands=(hands[0], behind))
    assert np.all(frame.labels.visibility[:, 1] == Visibility.OUT_OF_FRAME)
    assert np.all(np.isnan(frame.labels.hand_box[:, 1]))
    both_gone = headset.frame(0, hands=(dataclasses.replace(behind, side="left"), behind))
    assert np.all(both_gone.labels.visibility == Visibility.OUT_OF_FRAME)
    assert all(img.dtype == np.uint8 for img in both_gone.images)


# --- determinism -------------------------------------------------------------------------------------


def test_same_seed_same_bytes():
    a = SynthGenerator(get_preset("stereo"), seed=5, sequence_length=4)
    b = SynthGenerator(get_preset("stereo"), seed=5, sequence_length=4)
    for i in (0, 3, 5):  # two sequences
        fa, fb = a.frame(i), b.frame(i)
        for ia, ib in zip(fa.images, fb.images, strict=True):
            assert ia.tobytes() == ib.tobytes()
        for key in ("keypoints_2d", "visibility", "joints_3d", "hand_box", "angles"):
            assert getattr(fa.labels, key).tobytes() == getattr(fb.labels, key).tobytes()
    other = SynthGenerator(get_preset("stereo"), seed=6, sequence_length=4).frame(0)
    assert other.images[0].tobytes() != a.frame(0).images[0].tobytes()


def test_frames_do_not_depend_on_render_order():
    gen = SynthGenerator(get_preset("stereo"), seed=2, sequence_length=3)
    forward = [gen.frame(i).images[1].tobytes() for i in (4, 0, 5)]
    fresh = SynthGenerator(get_preset("stereo"), seed=2, sequence_length=3)
    assert [fresh.frame(i).images[1].tobytes() for i in (5, 4, 0)] == [forward[2], forward[0], forward[1]]


def test_images_look_like_the_preset(headset_frames):
    for frame in headset_frames:
        assert [img.shape for img in frame.images] == [(480, 636)] * 4
        assert all(img.dtype == np.uint8 for img in frame.images)
        # hands are brighter than the room in the infrared look, on average where they are
        lab = frame.labels
        assert np.isfinite(lab.hand_box).any()
    rgb = SynthGenerator(get_preset("stereo"), seed=1).frame(0)
    assert [img.shape for img in rgb.images] == [(480, 640, 3)] * 2
