"""Camera and Rig: projection against OpenCV, undistortion round trips, validation, triangulation."""

from __future__ import annotations

import dataclasses
import sys
import types
import warnings
from typing import NamedTuple

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from handstream.errors import HandstreamError
from handstream.geometry import Camera, Rig, load_calibration
from handstream.geometry.camera import matrix_to_rodrigues, rodrigues_to_matrix

K0 = np.array([[800.0, 0.0, 330.0], [0.0, 790.0, 245.0], [0.0, 0.0, 1.0]])
SIZE = (640, 480)

# Coefficient sets: moderate, rational, strong (the real stereo clip's), fisheye.
OPENCV_5 = [-0.12, 0.08, 0.0012, -0.0009, -0.015]
OPENCV_8 = [0.3, -0.1, 0.001, 0.002, 0.05, 0.35, -0.08, 0.04]
OPENCV_STRONG = [-0.01396, 1.4193, -0.003534, -0.003567, -6.3943]
FISHEYE = [0.27, 0.023, -0.11, 0.036]


def random_pose(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    R = rodrigues_to_matrix(rng.normal(size=3))
    t = rng.normal(size=3)
    return R, t


def make_camera(model: str, dist, rng: np.random.Generator | None = None, name: str = "cam") -> Camera:
    R, t = random_pose(rng) if rng is not None else (np.eye(3), np.zeros(3))
    return Camera(name, SIZE, K0, dist, model, R, t)


def look_at(center, target=(0.0, 0.0, 0.0)) -> tuple[np.ndarray, np.ndarray]:
    """R, t of a camera at ``center`` looking at ``target`` (y of the camera roughly down = -z world)."""
    z = np.asarray(target, float) - np.asarray(center, float)
    z /= np.linalg.norm(z)
    x = np.cross(z, [0.0, 0.0, 1.0])
    x /= np.linalg.norm(x)
    R = np.stack([x, np.cross(z, x), z])
    return R, -R @ np.asarray(center, float)


def points_in_front(cam: Camera, rng: np.random.Generator, n: int, max_angle_deg: float = 50.0) -> np.ndarray:
    """(n, 3) world points within ``max_angle_deg`` of the optical axis, 0.3-5 units away."""
    theta = np.radians(max_angle_deg) * np.sqrt(rng.uniform(0, 1, n))
    phi = rng.uniform(0, 2 * np.pi, n)
    dist = rng.uniform(0.3, 5.0, n)
    X_cam = dist[:, None] * np.stack([np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi), np.cos(theta)], 1)
    return (X_cam - cam.t) @ cam.R


def pinhole_pixels(cam: Camera, X_world: np.ndarray) -> np.ndarray:
    """Ideal pixels through the projection matrix: what undistort_points must give back."""
    h = np.concatenate([X_world, np.ones((len(X_world), 1))], 1) @ cam.projection_matrix.T
    return h[:, :2] / h[:, 2:]


EVERY_MODEL = [
    ("pinhole", []),
    ("opencv", OPENCV_5),
    ("opencv", OPENCV_8),
    ("opencv", OPENCV_STRONG),
    ("fisheye", FISHEYE),
]


# ------------------------------------------------------------------------------------------------
# Projection against OpenCV
# ------------------------------------------------------------------------------------------------


def camera_and_points(model: str, dist, seed: int, n: int, max_angle_deg: float):
    """A random camera of ``model`` and ``n`` world points in front of it within ``max_angle_deg`` of its axis."""
    rng = np.random.default_rng(seed)
    cam = make_camera(model, dist, rng)
    return cam, points_in_front(cam, rng, n, max_angle_deg=max_angle_deg)


@pytest.mark.parametrize("model, dist", EVERY_MODEL)
def test_project_matches_opencv(model, dist):
    cam, X = camera_and_points(model, dist, seed=1, n=500, max_angle_deg=70 if model == "fisheye" else 40)
    ours = cam.project(X)
    rvec, tvec = matrix_to_rodrigues(cam.R), cam.t
    if model == "fisheye":
        ref = cv2.fisheye.projectPoints(X[:, None], rvec, tvec, cam.K, cam.dist)[0][:, 0]
    else:
        ref = cv2.projectPoints(X, rvec, tvec, cam.K, cam.dist if cam.dist.size else None)[0][:, 0]
    np.testing.assert_allclose(ours, ref, rtol=1e-9, atol=1e-9)


def test_project_shapes_nan_and_behind_without_warnings():
    cam = make_camera("opencv", OPENCV_5)
    pts = np.array([[[0.1, 0.0, 2.0], [np.nan, 0.0, 1.0]], [[0.0, 0.0, -1.0], [0.0, 0.0, 0.0]]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        px = cam.project(pts)
        assert px.shape == (2, 2, 2)
        assert np.isfinite(px[0, 0]).all()
        assert np.isnan(px[0, 1]).all()  # NaN in
        assert np.isnan(px[1]).all()  # behind the camera and on the camera plane
        assert cam.project(np.zeros((0, 3))).shape == (0, 2)
        assert cam.project([0.0, 0.0, 1.0]).shape == (2,)
        np.testing.assert_allclose(cam.project([0.0, 0.0, 1.0]), K0[:2, 2])


def test_project_rejects_wrong_shape():
    cam = make_camera("pinhole", [])
    with pytest.raises(HandstreamError, match=r"\(\.\.\., 3\)"):
        cam.project(np.zeros((4, 2)))


def test_projection_matrix_and_center():
    rng = np.random.default_rng(2)
    cam = make_camera("pinhole", [], rng)
    np.testing.assert_allclose(cam.projection_matrix, K0 @ np.c_[cam.R, cam.t])
    np.testing.assert_allclose(cam.R @ cam.center + cam.t, 0, atol=1e-12)
    X = points_in_front(cam, rng, 50)
    np.testing.assert_allclose(cam.project(X), pinhole_pixels(cam, X), rtol=1e-12)
    assert (cam.width, cam.height) == SIZE


# ------------------------------------------------------------------------------------------------
# Undistortion
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("model, dist", EVERY_MODEL)
def test_undistort_round_trip_all_models(model, dist):
    """project -> undistort_points equals the pinhole projection for points inside the valid range."""
    cam, X = camera_and_points(model, dist, seed=3, n=2000, max_angle_deg=80 if model == "fisheye" else 45)
    px = cam.project(X)
    X_cam = cam.world_to_camera(X)
    r = np.hypot(X_cam[:, 0], X_cam[:, 1]) / X_cam[:, 2]
    if model == "opencv":
        # beyond the radius where the distortion curve folds back the inverse is ambiguous
        keep = r < 0.99 * cam._fold_limit[0]
        assert keep.mean() > 0.3
        X, px = X[keep], px[keep]
    ideal = cam.undistort_points(px)
    assert np.isfinite(ideal).all()
    np.testing.assert_allclose(ideal, pinhole_pixels(cam, X), rtol=0, atol=1e-6)


def test_undistort_matches_opencv_with_tight_criteria():
    rng = np.random.default_rng(4)
    cam = make_camera("opencv", OPENCV_5)
    px = rng.uniform([0, 0], SIZE, (300, 2))
    criteria = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 200, 1e-16)
    ref = cv2.undistortPoints(px[:, None], cam.K, cam.dist, P=cam.K, criteria=criteria)[:, 0]
    np.testing.assert_allclose(cam.undistort_points(px), ref, atol=1e-7)

    fish = make_camera("fisheye", FISHEYE)
    ref = cv2.fisheye.undistortPoints(px[:, None], fish.K, fish.dist, P=fish.K, criteria=criteria)[:, 0]
    ours = fish.undistort_points(px)
    failed = (ref == -1e6).all(axis=1)  # OpenCV's mark for "did not converge"; ours did:
    assert failed.sum() < 5
    np.testing.assert_allclose(ours[~failed], ref[~failed], atol=1e-6)
    np.testing.assert_allclose(fish.distort(fish.normalize(px[failed])), px[failed], atol=1e-6)


@settings(max_examples=40, deadline=None)
@given(
    k=st.lists(st.floats(-0.3, 0.3), min_size=3, max_size=3),
    p=st.lists(st.floats(-0.002, 0.002), min_size=2, max_size=2),
    seed=st.integers(0, 2**16),
)
def test_pixel_normalize_distort_round_trip_random_opencv(k, p, seed):
    """Any pixel that can be undistorted is distorted back onto itself (1e-6 px)."""
    cam = Camera("c", SIZE, K0, [k[0], k[1], p[0], p[1], k[2]])
    px = np.random.default_rng(seed).uniform([-0.5, -0.5], [SIZE[0] - 0.5, SIZE[1] - 0.5], (200, 2))
    xy = cam.normalize(px)
    ok = np.isfinite(xy).all(axis=1)
    assert ok.mean() > 0.9
    np.testing.assert_allclose(cam.distort(xy[ok]), px[ok], atol=1e-6)


@settings(max_examples=40, deadline=None)
@given(k=st.lists(st.floats(-0.1, 0.3), min_size=4, max_size=4).map(lambda k: [k[0], k[1] / 3, k[2] / 10, k[3] / 30]))
def test_pixel_normalize_distort_round_trip_random_fisheye(k):
    cam = Camera("f", SIZE, np.array([[250.0, 0, 320], [0, 250, 240], [0, 0, 1]]), k, "fisheye")
    u, v = np.meshgrid(np.linspace(-0.5, SIZE[0] - 0.5, 33), np.linspace(-0.5, SIZE[1] - 0.5, 25))
    px = np.stack([u, v], -1).reshape(-1, 2)
    xy = cam.normalize(px)
    ok = np.isfinite(xy).all(axis=1)
    np.testing.assert_allclose(cam.distort(xy[ok]), px[ok], atol=1e-6)


def test_undistort_nan_and_unreachable_without_warnings():
    cam = make_camera("opencv", OPENCV_STRONG)
    fish = Camera("f", SIZE, K0, [0, 0, 0, 0], "fisheye")  # theta_d = theta
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = cam.undistort_points(np.array([[np.nan, 3.0], [330.0, 245.0], [1e6, 1e6]]))
        assert np.isnan(out[0]).all() and np.isnan(out[2]).all()
        np.testing.assert_allclose(out[1], [330.0, 245.0], atol=1e-9)
        # fisheye: theta = 1.7 rad is more than 90 degrees off-axis: no point on the pinhole plane
        far = fish.undistort_points(np.array([[330.0 + 800.0 * 1.7, 245.0], [330.0 + 800 * 1.5, 245.0]]))
        assert np.isnan(far[0]).all() and np.isfinite(far[1]).all()
        assert np.isnan(fish.unproject([[330.0 + 800.0 * 1.7, 245.0]])).all()
        assert cam.undistort_points(np.zeros((0, 2))).shape == (0, 2)


# ------------------------------------------------------------------------------------------------
# Back-projection
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("model, dist", EVERY_MODEL)
def test_mirror_camera_sees_the_reflected_world_as_the_flipped_image(model, dist):
    """The mirrored camera's projection of reflected points = the original projection flipped left to right,
    through OpenCV's own projection of the original (a reference independent of Camera.project)."""
    from handstream.geometry.mirror import mirror_camera, reflect_points

    for seed in range(5):
        cam, X = camera_and_points(model, dist, seed=seed, n=300, max_angle_deg=60 if model == "fisheye" else 35)
        rng = np.random.default_rng(100 + seed)
        normal, offset = rng.normal(size=3) * rng.uniform(0.5, 3.0), float(rng.normal() * 4.0)
        mcam = mirror_camera(cam, normal, offset)
        assert mcam.name == "camm" and np.linalg.det(mcam.R) == pytest.approx(1.0)
        rvec, _ = cv2.Rodrigues(cam.R)
        if model == "fisheye":
            ref, _ = cv2.fisheye.projectPoints(X[:, None], rvec, cam.t, cam.K, np.asarray(dist, float))
        else:
            ref, _ = cv2.projectPoints(X, rvec, cam.t, cam.K, np.asarray(dist, float))
        ref = ref.reshape(-1, 2)
        flipped = np.stack([cam.size[0] - 1 - ref[:, 0], ref[:, 1]], axis=1)
        np.testing.assert_allclose(mcam.project(reflect_points(X, normal, offset)), flipped, atol=1e-6)
        twice = mirror_camera(mcam, normal, offset)  # the mirror of the mirror is the camera itself
        np.testing.assert_allclose(twice.R, cam.R, atol=1e-12)
        np.testing.assert_allclose(twice.t, cam.t, atol=1e-9)
        np.testing.assert_allclose(twice.dist, cam.dist, atol=0)
    with pytest.raises(HandstreamError, match="mirror plane"):
        mirror_camera(cam, [0.0, 0.0, 0.0], 1.0)


@pytest.mark.parametrize("model, dist", [("pinhole", []), ("opencv", OPENCV_8), ("fisheye", FISHEYE)])
def test_unproject_then_project(model, dist):
    rng = np.random.default_rng(5)
    cam = make_camera(model, dist, rng)
    px = rng.uniform([0, 0], SIZE, (400, 2))
    depth = rng.uniform(0.2, 4.0, 400)
    X = cam.unproject(px, depth)
    np.testing.assert_allclose(cam.world_to_camera(X)[:, 2], depth, rtol=1e-12)
    np.testing.assert_allclose(cam.project(X), px, atol=1e-6)
    # rays: unit length, from the centre through the same points
    rays = cam.unproject(px)
    np.testing.assert_allclose(np.linalg.norm(rays, axis=-1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(cam.project(cam.center + 2.5 * rays), px, atol=1e-6)
    # a scalar depth and extra leading dims
    assert cam.unproject(px.reshape(20, 20, 2), 1.0).shape == (20, 20, 3)


def test_points_to_pixels_to_points_round_trip():
    rng = np.random.default_rng(6)
    cam = make_camera("opencv", OPENCV_5, rng)
    X = points_in_front(cam, rng, 300, max_angle_deg=30)
    depth = cam.world_to_camera(X)[:, 2]
    np.testing.assert_allclose(cam.unproject(cam.project(X), depth), X, atol=1e-9)


# ------------------------------------------------------------------------------------------------
# Validation and conversions
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"K": np.eye(2)}, r"K: expected a 3x3 matrix, got 2 rows"),
        ({"K": np.diag([-1.0, 1.0, 1.0])}, "focal lengths must be positive"),
        ({"K": [[1, 0, 0], [0, 1, 0], [0, 0, 2]]}, r"\[0, 0, 1\]"),
        ({"R": np.diag([1.0, 1.0, 1.1])}, "expected a rotation matrix"),
        ({"R": np.diag([1.0, 1.0, -1.0])}, "det"),
        ({"t": [1.0, 2.0]}, "t: expected a list of 3 numbers"),
        ({"t": [1.0, np.nan, 2.0]}, "finite"),
        ({"model": "kannala"}, "model: expected one of"),
        ({"model": "fisheye", "dist": [0.1, 0.2]}, "4 fisheye coefficients"),
        ({"model": "pinhole", "dist": [0.1]}, "pinhole camera has no distortion"),
        ({"dist": [0.1] * 12}, "thin-prism"),
        ({"size": (640, 0)}, "size: expected"),
        ({"name": ""}, "name"),
    ],
)
def test_camera_validation_errors(changes, message):
    fields = {
        "name": "cam",
        "size": SIZE,
        "K": K0,
        "dist": OPENCV_5,
        "model": None,
        "R": np.eye(3),
        "t": np.zeros(3),
    }
    fields.update(changes)
    with pytest.raises(HandstreamError, match=message):
        Camera(**fields)


def test_camera_normalizes_dist_and_model():
    assert Camera("a", SIZE, K0).model == "pinhole"
    assert Camera("a", SIZE, K0, [0, 0, 0, 0, 0]).model == "pinhole"
    cam = Camera("a", SIZE, K0, OPENCV_5)
    assert cam.model == "opencv" and cam.dist.shape == (8,)
    np.testing.assert_array_equal(cam.dist[:5], OPENCV_5)
    assert Camera("a", SIZE, K0, OPENCV_5 + [0, 0, 0, 0, 0, 0, 0]).dist.shape == (8,)  # 12 with zero prism
    assert Camera("a", SIZE, K0, model="fisheye").dist.shape == (4,)
    assert Camera("a", SIZE, K0, t=np.zeros((3, 1))).t.shape == (3,)


def test_camera_is_immutable():
    cam = make_camera("opencv", OPENCV_5)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cam.name = "other"  # type: ignore[misc]
    with pytest.raises(ValueError):
        cam.K[0, 0] = 1.0


def test_scaled_and_dict_round_trip():
    rng = np.random.default_rng(7)
    cam = make_camera("fisheye", FISHEYE, rng)
    half = cam.scaled(0.5)
    np.testing.assert_allclose(half.t, cam.t * 0.5)
    np.testing.assert_allclose(half.center, cam.center * 0.5)
    np.testing.assert_array_equal(half.R, cam.R)
    with pytest.raises(HandstreamError, match="unit_scale"):
        cam.scaled(-1.0)
    back = Camera.from_dict(cam.to_dict())
    for field in ("K", "dist", "R", "t"):
        np.testing.assert_array_equal(getattr(back, field), getattr(cam, field))
    assert (back.name, back.size, back.model) == (cam.name, cam.size, cam.model)
    with pytest.raises(HandstreamError, match="missing field 'K'"):
        Camera.from_dict({"name": "x", "size": [1, 1]})


def test_rodrigues_helpers_match_opencv():
    rng = np.random.default_rng(8)
    for _ in range(50):
        rvec = rng.normal(size=3)
        rvec *= rng.uniform(0, np.pi) / np.linalg.norm(rvec)
        np.testing.assert_allclose(rodrigues_to_matrix(rvec), cv2.Rodrigues(rvec)[0], atol=1e-14)
        np.testing.assert_allclose(matrix_to_rodrigues(rodrigues_to_matrix(rvec)), rvec, atol=1e-12)
    np.testing.assert_array_equal(matrix_to_rodrigues(np.eye(3)), 0)


# ------------------------------------------------------------------------------------------------
# Rig
# ------------------------------------------------------------------------------------------------


def small_rig() -> Rig:
    """Three cameras (one per model) 3 units from the origin, looking at it."""
    cams = []
    for name, model, dist, center in [
        ("a", "opencv", OPENCV_5, (3.0, 0.0, 0.5)),
        ("b", "fisheye", FISHEYE, (0.0, 3.0, 1.0)),
        ("c", "pinhole", [], (-2.0, -2.0, 0.0)),
    ]:
        R, t = look_at(center)
        cams.append(Camera(name, SIZE, K0, dist, model, R, t))
    return Rig(cams)


def test_rig_container():
    rig = small_rig()
    assert len(rig) == 3 and rig.names == ["a", "b", "c"]
    assert rig["b"] is rig[1] and rig[-1].name == "c"
    assert [cam.name for cam in rig] == rig.names
    assert rig.projection_matrices.shape == (3, 3, 4) and rig.projection_matrices.dtype == np.float64
    np.testing.assert_array_equal(rig.projection_matrices[1], rig[1].projection_matrix)
    assert rig.subset(["c", 0]).names == ["c", "a"]
    np.testing.assert_allclose(rig.scaled(2.0)[0].t, rig[0].t * 2)
    with pytest.raises(HandstreamError, match="no camera named 'z'"):
        rig["z"]
    with pytest.raises(HandstreamError, match="out of range"):
        rig[3]
    with pytest.raises(HandstreamError, match="unique"):
        Rig([rig[0], rig[0]])
    with pytest.raises(HandstreamError, match="at least one"):
        Rig([])


def test_rig_project_and_undistort_shapes():
    rig = small_rig()
    X = np.random.default_rng(10).normal(size=(2, 21, 3))
    px = rig.project(X)
    assert px.shape == (3, 2, 21, 2)
    for v, cam in enumerate(rig):
        np.testing.assert_array_equal(px[v], cam.project(X))
    ideal = rig.undistort_points(px)
    assert ideal.shape == px.shape
    with pytest.raises(HandstreamError, match=r"expected shape \(3, \.\.\., 2\)"):
        rig.undistort_points(px[:2])


class _FakeTriangulation(NamedTuple):
    points: np.ndarray
    reproj_error: np.ndarray
    inliers: np.ndarray
    n_views: np.ndarray


def _fake_triangulate(points_2d, projections, conf=None, *, method, threshold_px, min_views, refine):
    """Plain DLT standing in for handstream.ops.triangulate (checks the plumbing, not the kernel)."""
    V, P, _ = points_2d.shape
    assert points_2d.dtype == np.float64 and projections.shape == (V, 3, 4)
    assert conf is None or conf.shape == (V, P)
    pts = np.full((P, 3), np.nan)
    seen = np.isfinite(points_2d).all(-1)
    for p in range(P):
        rows = []
        for v in np.flatnonzero(seen[:, p]):
            x, y = points_2d[v, p]
            rows += [x * projections[v, 2] - projections[v, 0], y * projections[v, 2] - projections[v, 1]]
        if len(rows) >= 2 * min_views:
            h = np.linalg.svd(np.array(rows))[2][-1]
            pts[p] = h[:3] / h[3]
    return _FakeTriangulation(pts, np.zeros(P), seen, seen.sum(0).astype(np.int32))


def test_rig_triangulate_plumbing_with_a_stand_in_op(monkeypatch):
    """Undistortion, flattening and reshaping around ops.triangulate (runs without the C++ module)."""
    import handstream

    fake = types.ModuleType("handstream.ops")
    fake.triangulate = _fake_triangulate
    fake.Triangulation = _FakeTriangulation
    monkeypatch.setitem(sys.modules, "handstream.ops", fake)
    monkeypatch.setattr(handstream, "ops", fake, raising=False)

    rig = small_rig()
    X = np.random.default_rng(11).uniform(-0.3, 0.3, (2, 9, 3))  # near the origin: seen by all views
    px = rig.project(X)
    px[1, 0, 0] = np.nan  # one view misses one point
    result = rig.triangulate(px, conf=np.ones(px.shape[:-1]))
    assert result.points.shape == (2, 9, 3)
    assert result.reproj_error.shape == (2, 9)
    assert result.inliers.shape == (3, 2, 9)
    assert result.n_views.shape == (2, 9)
    np.testing.assert_allclose(result.points, X, atol=1e-9)
    assert result.n_views[0, 0] == 2 and result.n_views[1, 1] == 3
    with pytest.raises(HandstreamError, match="conf"):
        rig.triangulate(px, conf=np.ones((3, 2)))


# ------------------------------------------------------------------------------------------------
# Real calibrations (shared data)
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stereo_rig(shared_data):
    return load_calibration(shared_data / "real" / "stereo_clip" / "calibration.toml")


@pytest.fixture(scope="module")
def headset_rig(shared_data):
    files = sorted((shared_data / "rigs" / "assemblyhands" / "nimble_json_calib").glob("*.json"))
    return load_calibration(files[0])


def _grid(cam: Camera, step: float) -> np.ndarray:
    u, v = np.meshgrid(np.arange(-0.5, cam.width, step), np.arange(-0.5, cam.height, step))
    return np.stack([u, v], -1).reshape(-1, 2)


def test_real_calibrations_match_opencv(stereo_rig, headset_rig):
    rng = np.random.default_rng(12)
    for cam in [*stereo_rig, *headset_rig]:
        X = points_in_front(cam, rng, 300, max_angle_deg=60 if cam.model == "fisheye" else 25)
        rvec = matrix_to_rodrigues(cam.R)
        if cam.model == "fisheye":
            ref = cv2.fisheye.projectPoints(X[:, None], rvec, cam.t, cam.K, cam.dist)[0][:, 0]
        else:
            ref = cv2.projectPoints(X, rvec, cam.t, cam.K, cam.dist)[0][:, 0]
        np.testing.assert_allclose(cam.project(X), ref, rtol=1e-9, atol=1e-9)


def test_real_calibrations_undistort_round_trip_over_the_image(stereo_rig, headset_rig):
    """Every pixel of the image: normalize -> distort gives it back (1e-6 px); and the points seen
    there, projected and undistorted, land on their pinhole projection (1e-6 px).

    The stereo clip's strong k2/k3 make its distortion curve fold back just inside the image corners
    (~0.3% of the pixels): those have no valid inverse and come back NaN.
    """
    for cam in [*stereo_rig, *headset_rig]:
        px = _grid(cam, 3.0)
        xy = cam.normalize(px)
        ok = np.isfinite(xy).all(axis=1)
        assert ok.mean() > (0.99 if cam.model == "opencv" else 0.999999), cam.name
        np.testing.assert_allclose(cam.distort(xy[ok]), px[ok], atol=1e-6, rtol=0)
        X = cam.unproject(px[ok], 0.7)  # world points that are seen at those pixels
        np.testing.assert_allclose(cam.undistort_points(cam.project(X)), pinhole_pixels(cam, X), atol=1e-6, rtol=0)


def test_rig_triangulate_synthetic_scene_on_real_rig(headset_rig):
    """Noise-free points in front of the 4 headset cameras come back exactly (needs handstream.ops)."""
    rig = headset_rig
    rng = np.random.default_rng(13)
    # In front of the headset: along the mean viewing direction, 25-55 cm away, spread like two hands.
    forward = np.mean([cam.R[2] for cam in rig], axis=0)
    forward /= np.linalg.norm(forward)
    centre = rig.centers.mean(axis=0)
    X = centre + forward * rng.uniform(0.25, 0.55, (2, 21, 1)) + rng.normal(scale=0.08, size=(2, 21, 3))
    px = rig.project(X)
    visible = np.isfinite(px).all(-1)
    assert (visible.sum(0) >= 2).all()

    result = rig.triangulate(px, method="dlt")
    assert result.points.shape == (2, 21, 3)
    assert result.reproj_error.shape == (2, 21)
    assert result.inliers.shape == (4, 2, 21)
    assert result.n_views.shape == (2, 21)
    scale = np.linalg.norm(X - centre, axis=-1, keepdims=True)
    np.testing.assert_allclose(result.points, X, rtol=0, atol=1e-6 * scale.max())
    np.testing.assert_array_equal(result.n_views, visible.sum(0))

    ransac = rig.triangulate(px, np.ones(px.shape[:-1]), threshold_px=5.0)
    np.testing.assert_allclose(ransac.points, X, rtol=0, atol=1e-6 * scale.max())
