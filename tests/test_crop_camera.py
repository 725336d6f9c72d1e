"""Perspective crop cameras: a crop sees a point where the real camera does, through every lens model."""

from __future__ import annotations

import numpy as np
import pytest

from handstream.geometry import Camera
from handstream.geometry.camera import rodrigues_to_matrix
from handstream.geometry.crop_camera import CropCamera, hand_crop, lens_row, look_at_rotation

K0 = np.array([[420.0, 0.0, 318.0], [0.0, 415.0, 241.0], [0.0, 0.0, 1.0]])
LENSES = [
    ("pinhole", []),
    ("opencv", [-0.12, 0.08, 0.0012, -0.0009, -0.015]),
    ("opencv", [0.3, -0.1, 0.001, 0.002, 0.05, 0.35, -0.08, 0.04]),
    ("fisheye", [0.27, 0.023, -0.11, 0.036]),
]


def camera(model, dist, rng) -> Camera:
    R = rodrigues_to_matrix(rng.normal(size=3) * 0.5)
    return Camera("cam", (636, 480), K0, dist, model, R, rng.normal(size=3) * 0.1)


def random_hand(cam: Camera, rng, max_angle_deg=35.0) -> np.ndarray:
    """(21, 3) world points of a hand-sized cloud 0.25-0.7 m in front of ``cam``, up to ``max_angle_deg`` off-axis."""
    theta, phi = np.radians(max_angle_deg) * np.sqrt(rng.uniform()), rng.uniform(0, 2 * np.pi)
    d = np.array([np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi), np.cos(theta)])
    centre = d * rng.uniform(0.25, 0.7)
    pts = centre + rng.normal(size=(21, 3)) * 0.04
    return (pts - cam.t) @ cam.R


@pytest.mark.parametrize("model,dist", LENSES)
def test_crop_projects_where_the_real_camera_does(model, dist):
    rng = np.random.default_rng(len(dist) + 7)
    for _ in range(20):
        cam = camera(model, dist, rng)
        X = random_hand(cam, rng)
        crop = hand_crop(cam, X, (128, 128), margin=1.6)
        assert crop is not None
        uv = crop.project(X)  # crop pixels
        assert np.isfinite(uv).all()
        # the crop's pixel of each point maps back through the lens to the real camera's pixel of that point
        np.testing.assert_allclose(crop.to_frame(uv), cam.project(X), atol=1e-6)
        # and its rays are the points' directions in the camera frame
        Xc = cam.world_to_camera(X)
        np.testing.assert_allclose(crop.rays(uv), Xc / np.linalg.norm(Xc, axis=1, keepdims=True), atol=1e-9)
        # the projection matrix (what triangulation uses) agrees with project()
        h = np.c_[X, np.ones(len(X))] @ crop.projection_matrix.T
        np.testing.assert_allclose(h[:, :2] / h[:, 2:], uv, atol=1e-6)


@pytest.mark.parametrize("model,dist", LENSES)
def test_crop_keypoints_triangulate_without_undistortion(model, dist):
    """Keypoints found in two crops (exact pinhole pixels) triangulate to the points with the crops' matrices."""
    from handstream import ops

    rng = np.random.default_rng(3)
    cam_a = camera(model, dist, rng)
    X = random_hand(cam_a, rng, 20)
    R_b = cam_a.R @ rodrigues_to_matrix([0, 0.2, 0])  # a second camera 10 cm to the side, turned toward the hand
    cam_b = Camera("b", cam_a.size, K0, dist, model, R_b, R_b @ (-(cam_a.center + cam_a.R[0] * 0.1)))
    crops = [hand_crop(c, X, (128, 128), 1.6) for c in (cam_a, cam_b)]
    uv = np.stack([c.project(X) for c in crops])
    P = np.stack([c.projection_matrix for c in crops])
    tri = ops.triangulate(uv, P, method="dlt")
    np.testing.assert_allclose(tri.points, X, atol=1e-6)


def test_hand_crop_is_upright_centred_and_fills_the_margin():
    rng = np.random.default_rng(0)
    for model, dist in LENSES * 5:
        cam = camera(model, dist, rng)
        X = random_hand(cam, rng)
        crop = hand_crop(cam, X, (128, 128), margin=1.6)
        uv = crop.project(X)
        lo, hi = uv.min(axis=0), uv.max(axis=0)
        np.testing.assert_allclose((lo + hi) / 2, crop.center, atol=0.5)  # centred on the box
        assert abs((hi - lo).max() * 1.6 - 128) < 0.5  # the box's longer side x margin = the crop's side
        assert uv[0, 1] > uv[9, 1]  # wrist below the middle knuckle (image y points down)
        assert abs(uv[0, 0] - uv[9, 0]) < 1e-6  # and straight below it


def test_hand_crop_min_side_and_refusals():
    rng = np.random.default_rng(1)
    cam = camera("pinhole", [], rng)
    X = random_hand(cam, rng) * 1.0
    far = X.mean(axis=0) + (X - X.mean(axis=0)) * 0.05  # a tiny hand (~7 px)
    c = hand_crop(cam, far, (128, 128), 1.6, min_side_px=40)
    side_px = (c.project(far).max(axis=0) - c.project(far).min(axis=0)).max() / c.focal * K0[0, 0]
    assert c.focal <= 128 / (1.6 * 40 / np.sqrt(K0[0, 0] * K0[1, 1])) + 1e-9
    assert side_px < 40
    behind = cam.center - (X - cam.center)
    assert hand_crop(cam, behind, (128, 128), 1.6) is None
    assert hand_crop(cam, np.full((21, 3), np.nan), (128, 128), 1.6) is None


def test_a_hand_across_the_camera_plane_of_a_wide_fisheye_gets_its_crop():
    """Some joints behind the real camera's plane (at the side of a fisheye), the hand's centre in front: the crop
    looks at the hand, every joint in front of it, upright; the joints in front of the camera project where the
    camera sees them."""
    cam = Camera("fe", (636, 480), [[190.0, 0, 318], [0, 190.0, 240], [0, 0, 1]], [0.05, -0.01, 0.002, 0.0], "fisheye")
    rng = np.random.default_rng(2)
    centre = np.array([0.45, 0.05, 0.015])  # ~88 degrees off-axis
    X = centre + rng.normal(size=(21, 3)) * 0.03
    X[9] = X[0] + [0.0, -0.08, 0.0]
    assert (X[:, 2] <= 0).any() and (X[:, 2] > 0).sum() >= 3
    crop = hand_crop(cam, X, (128, 128), 1.6)
    assert crop is not None
    uv = crop.project(X)
    assert np.isfinite(uv).all() and uv[0, 1] > uv[9, 1]
    front = X[:, 2] > 0.02
    np.testing.assert_allclose(crop.to_frame(uv[front]), cam.project(X[front]), atol=1e-6)


def test_look_at_rotation_is_a_rotation_with_fallbacks():
    for fwd, down in [([0, 0, 1], [0, 1, 0]), ([0.3, -0.2, 1], [1, 1, 0]), ([0, 1, 0], [0, 1, 0]), ([0, 0, 1], None)]:
        R = look_at_rotation(np.array(fwd, float), None if down is None else np.array(down, float))
        np.testing.assert_allclose(R.T @ R, np.eye(3), atol=1e-12)
        assert np.linalg.det(R) == pytest.approx(1.0)
        np.testing.assert_allclose(R[:, 2], np.array(fwd) / np.linalg.norm(fwd), atol=1e-12)


def test_lens_row_scales_to_a_pyramid_level():
    cam = Camera("c", (636, 480), K0, [0.27, 0.023, -0.11, 0.036], "fisheye")
    row = lens_row(cam, 0.5)
    assert row[0] == 2 and row[1] == 210 and row[3] == pytest.approx((318 + 0.5) * 0.5 - 0.5)
    np.testing.assert_allclose(row[6:10], cam.dist)


def test_ray_angles_match_the_crop_rays():
    rng = np.random.default_rng(5)
    cam = camera("fisheye", [0.27, 0.023, -0.11, 0.036], rng)
    crop = CropCamera(cam, look_at_rotation(np.array([0.2, 0.1, 1.0]), None), 150.0, (128, 128))
    a = crop.ray_angles(4)
    assert a.shape == (2, 32, 32)
    r = crop.rays(np.array([[1.5 + 4 * 3, 1.5 + 4 * 5]]))[0]  # cell (row 5, col 3) centre
    np.testing.assert_allclose(a[:, 5, 3], np.arctan(r[:2] / r[2]), atol=1e-6)
