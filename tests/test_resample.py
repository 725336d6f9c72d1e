"""resample_crops: the C++ kernel against the NumPy reference, the identity crop, cv2.remap, validation.

Tolerances: the kernel and the reference compute in float64 and differ only in the last bits of a source
pixel (reciprocals instead of divisions, Horner's rule, libm vs NumPy), ~1e-12 px, so their float32 outputs
agree to one float32 rounding (measured: bit for bit on 600 random scenes); 1e-6 (of the [0, 1] range) is that
with a wide margin. Against cv2.remap (on a float32 copy of the frame, so that its output is not rounded to
uint8) the bound is OpenCV 4's: it rounds map coordinates to 1/32 px (INTER_TAB_SIZE), moving a sample by up to
1/64 px per axis, so |diff| <= the image's steepest step per pixel / 32 (~0.56 grey levels here). OpenCV 5
samples float images at full precision: the measured difference there is ~3e-4 grey levels.
"""

import subprocess
import sys

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from handstream import HandstreamError
from handstream.geometry import Camera
from handstream.ops import reference, resample_crops

ATOL = 1e-6
MODEL_CODES = {"pinhole": 0, "opencv": 1, "fisheye": 2}


# ---------------------------------------------------------------------------------------------------
# random scenes
# ---------------------------------------------------------------------------------------------------
def rotation(rng: np.random.Generator, max_angle: float) -> np.ndarray:
    """A random rotation by up to ``max_angle`` radians about a random axis."""
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    return cv2.Rodrigues(axis * rng.uniform(0, max_angle))[0]


def look_at(direction) -> np.ndarray:
    """Rotation crop -> camera whose z axis is ``direction`` (camera frame), y roughly the camera's y."""
    z = np.asarray(direction, np.float64) / np.linalg.norm(direction)
    x = np.cross([0.0, 1.0, 0.0], z)
    x /= np.linalg.norm(x)
    return np.stack([x, np.cross(z, x), z], axis=1)


def random_lens(rng: np.random.Generator, model: str, w: int, h: int) -> np.ndarray:
    """A (14,) lens row with realistic intrinsics and coefficients for a (w, h) frame."""
    row = np.zeros(14)
    row[0] = MODEL_CODES[model]
    f = rng.uniform(0.35, 0.5) * max(w, h) if model == "fisheye" else rng.uniform(0.5, 1.3) * max(w, h)
    row[1], row[2] = f, f * rng.uniform(0.98, 1.02)
    row[3], row[4] = (w - 1) / 2 + rng.normal(scale=0.03 * w), (h - 1) / 2 + rng.normal(scale=0.03 * h)
    row[5] = rng.choice([0.0, rng.uniform(-1.0, 1.0)])
    if model == "opencv":
        k1, k2, k3 = rng.uniform(-0.35, 0.1), rng.uniform(-0.02, 0.15), rng.uniform(-0.02, 0.02)
        p1, p2 = rng.uniform(-2e-3, 2e-3, size=2)
        k4, k5, k6 = rng.uniform(0, 0.3), rng.uniform(-0.05, 0.05), rng.uniform(-0.01, 0.01)
        if rng.random() < 0.5:  # half of them without the rational terms
            k4 = k5 = k6 = 0.0
        row[6:14] = k1, k2, p1, p2, k3, k4, k5, k6
    elif model == "fisheye":
        row[6:10] = rng.uniform(-1, 1, size=4) * [0.05, 0.02, 0.01, 5e-3]
    return row


def camera_of(lens: np.ndarray, w: int, h: int) -> Camera:
    """The :class:`Camera` a lens row describes."""
    K = [[lens[1], lens[5], lens[3]], [0, lens[2], lens[4]], [0, 0, 1]]
    model = {v: k for k, v in MODEL_CODES.items()}[int(lens[0])]
    return Camera("cam", (w, h), K, lens[6 : 6 + {"pinhole": 0, "opencv": 8, "fisheye": 4}[model]], model=model)


def edge_direction(lens: np.ndarray, w: int, h: int, rng: np.random.Generator) -> np.ndarray:
    """The ray (camera frame) through the middle of a random edge of the frame."""
    centre = np.array([(w - 1) / 2, (h - 1) / 2])
    edge = np.array([((w - 1) / 2, 0.0), ((w - 1) / 2, h - 1.0), (0.0, (h - 1) / 2), (w - 1.0, (h - 1) / 2)])
    edge = edge[rng.permutation(4)]
    for t in np.linspace(1, 0, 11):  # an edge may lie beyond the lens's valid range (past 90 degrees, a fold)
        xy = camera_of(lens, w, h).normalize(centre + t * (edge - centre))
        ok = np.isfinite(xy).all(axis=1)
        if ok.any():
            return np.array([*xy[ok][0], 1.0])
    raise AssertionError("the frame centre cannot be undistorted")


def random_scene(seed: int, n_images: int, n_crops: int):
    """Frames of different sizes (uint8 noise: every interpolation weight shows), crops of every lens model,
    some looking at a frame edge (partly outside), some looking behind the camera (all zeros)."""
    rng = np.random.default_rng(seed)
    shapes = zip(rng.integers(12, 120, n_images), rng.integers(16, 160, n_images), strict=True)
    images = [rng.integers(0, 256, shape, dtype=np.uint8) for shape in shapes]
    W, H = int(rng.integers(3, 40)), int(rng.integers(3, 32))
    source = rng.integers(0, n_images, n_crops)
    lens, rot, crop = np.zeros((n_crops, 14)), np.zeros((n_crops, 3, 3)), np.zeros((n_crops, 3))
    for i in range(n_crops):
        h, w = images[source[i]].shape
        lens[i] = random_lens(rng, rng.choice(list(MODEL_CODES)), w, h)
        kind = rng.choice(["random", "edge", "behind"], p=[0.7, 0.2, 0.1])
        if kind == "random":
            rot[i] = rotation(rng, 1.3)
        elif kind == "edge":
            rot[i] = look_at(edge_direction(lens[i], w, h, rng))
        else:
            rot[i] = np.diag([-1.0, 1.0, -1.0]) @ rotation(rng, 0.3)
        crop[i] = rng.uniform(0.3, 2.5) * max(W, H), (W - 1) / 2 + rng.normal(), (H - 1) / 2 + rng.normal()
    return images, source, lens, rot, crop, (W, H)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n_images=st.integers(1, 4), n_crops=st.integers(0, 8))
def test_matches_reference_on_fresh_random_scenes(seed, n_images, n_crops):
    images, source, lens, rot, crop, size = random_scene(seed, n_images, n_crops)
    out = resample_crops(images, source, lens, rot, crop, size)
    expected = reference.resample_crops(images, source, lens, rot, crop, size)
    assert out.dtype == np.float32 and out.shape == (n_crops, size[1], size[0])
    np.testing.assert_allclose(out, expected, rtol=0, atol=ATOL)
    assert ((out >= 0) & (out <= 1)).all()


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n_images=st.integers(1, 3), n_crops=st.integers(0, 6))
def test_bgr_frames_give_rgb_planes_equal_to_each_channel_resampled(seed, n_images, n_crops):
    """(h, w, 3) BGR frames -> (N, 3, H, W) planes R, G, B: each the grey kernel on that channel, and the reference."""
    images, source, lens, rot, crop, size = random_scene(seed, n_images, n_crops)
    rng = np.random.default_rng(seed)
    bgr = [np.stack([img, rng.integers(0, 256, img.shape, dtype=np.uint8), img[::-1]], axis=-1) for img in images]
    out = resample_crops(bgr, source, lens, rot, crop, size)
    assert out.dtype == np.float32 and out.shape == (n_crops, 3, size[1], size[0])
    for plane, channel in enumerate((2, 1, 0)):
        one = resample_crops([np.ascontiguousarray(b[:, :, channel]) for b in bgr], source, lens, rot, crop, size)
        np.testing.assert_array_equal(out[:, plane], one)
    np.testing.assert_allclose(out, reference.resample_crops(bgr, source, lens, rot, crop, size), rtol=0, atol=ATOL)
    buffer = np.full((n_crops + 2, 3, size[1], size[0]), -1.0, np.float32)  # a reused buffer, larger than needed
    np.testing.assert_array_equal(resample_crops(bgr, source, lens, rot, crop, size, out=buffer), out)


def test_every_model_partly_outside_and_behind():
    """A fixed-size version of the random scenes that must exercise every branch."""
    rng = np.random.default_rng()
    images = [rng.integers(0, 256, shape, dtype=np.uint8) for shape in ((48, 64), (90, 120), (31, 47))]
    W, H = 33, 25
    rows = []
    for model in MODEL_CODES:
        for s, img in enumerate(images):
            h, w = img.shape
            lens = random_lens(rng, model, w, h)
            for R in (rotation(rng, 0.2), look_at(edge_direction(lens, w, h, rng)), np.diag([-1.0, 1.0, -1.0])):
                rows.append((s, lens, R, [rng.uniform(0.5, 1.5) * W, (W - 1) / 2, (H - 1) / 2]))
    source = np.array([r[0] for r in rows])
    lens, rot, crop = (np.array([r[k] for r in rows], np.float64) for k in (1, 2, 3))
    out = resample_crops(images, source, lens, rot, crop, (W, H))
    expected = reference.resample_crops(images, source, lens, rot, crop, (W, H))
    np.testing.assert_allclose(out, expected, rtol=0, atol=ATOL)
    behind = out[2::3]
    assert (behind == 0).all()
    edge = out[1::3]
    assert (edge == 0).any(axis=(1, 2)).all() and ((edge > 0).mean(axis=(1, 2)) > 0.2).all()


def test_the_frames_own_pinhole_camera_reproduces_the_frame_exactly():
    rng = np.random.default_rng()
    h, w = 37, 53
    img = rng.integers(0, 256, (h, w), dtype=np.uint8)
    expected = (img / 255.0).astype(np.float32)
    # f a power of two and a half-integer centre: every step is exact, so the result is bit for bit
    f, cx, cy = 512.0, 26.5, rng.integers(0, 37) + 0.5
    lens = np.array([[0, f, f, cx, cy, 0, 0, 0, 0, 0, 0, 0, 0, 0]], np.float64)
    out = resample_crops([img], [0], lens, np.eye(3)[None], [[f, cx, cy]], (w, h))
    np.testing.assert_array_equal(out[0], expected)
    # any focal length and centre: (u - cx) / f * f is u only to the last bit, so a sample may take ~1e-13 of
    # its neighbour (visible only where the pixel is 0)
    f, cx, cy = rng.uniform(100, 900), rng.uniform(0, w), rng.uniform(0, h)
    lens = np.array([[0, f, f, cx, cy, 0, 0, 0, 0, 0, 0, 0, 0, 0]], np.float64)
    out = resample_crops([img], [0], lens, np.eye(3)[None], [[f, cx, cy]], (w, h))
    np.testing.assert_allclose(out[0], expected, rtol=0, atol=1e-9)
    assert (out[0][img > 0] == expected[img > 0]).all()


# ---------------------------------------------------------------------------------------------------
# against cv2.remap with maps from Camera.distort
# ---------------------------------------------------------------------------------------------------
def smooth_image(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """Blurred noise fading to 0 at the border (a frame edge is then no steep step for the 1/32 px rounding)."""
    noise = cv2.GaussianBlur(rng.uniform(0, 1, (h, w)), (0, 0), 6)
    noise = (noise - noise.min()) / (noise.max() - noise.min())
    fade = np.minimum(np.minimum(np.arange(w) + 1, w - np.arange(w))[None, :] / 30.0, 1.0) * np.minimum(
        np.minimum(np.arange(h) + 1, h - np.arange(h))[:, None] / 30.0, 1.0
    )
    return np.round(255 * noise * fade).astype(np.uint8)


def remap_crop(camera: Camera, img: np.ndarray, R: np.ndarray, f: float, size) -> np.ndarray:
    W, H = size
    v, u = np.mgrid[0:H, 0:W].astype(np.float64)
    rays = np.stack([(u - (W - 1) / 2) / f, (v - (H - 1) / 2) / f, np.ones_like(u)], -1) @ R.T
    front = rays[..., 2] > 0
    maps = np.full((H, W, 2), -1e6)
    maps[front] = camera.distort(rays[front][:, :2] / rays[front][:, 2:])
    mx, my = maps[..., 0].astype(np.float32), maps[..., 1].astype(np.float32)
    return cv2.remap(img.astype(np.float32), mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


@pytest.mark.parametrize(
    "model, dist, f",
    [
        ("opencv", [-0.28, 0.09, 8e-4, -5e-4, -0.012, 0.02, 0.004, 0.001], 420.0),
        ("fisheye", [0.03, -0.012, 0.004, -0.001], 190.0),
    ],
)
def test_matches_cv2_remap_with_camera_distort_maps(model, dist, f):
    rng = np.random.default_rng()
    w, h = 640, 480
    camera = Camera("cam", (w, h), [[f, 0.3, 322.4], [0, f * 1.004, 236.9], [0, 0, 1]], dist, model=model)
    img = smooth_image(rng, w, h)
    padded = np.pad(img.astype(np.float64), 1)
    steepest = max(np.abs(np.diff(padded, axis=0)).max(), np.abs(np.diff(padded, axis=1)).max())
    tol = steepest / 32 / 255 + 1e-6
    size = (96, 80)
    lens = np.zeros(14)
    lens[0] = MODEL_CODES[model]
    lens[1:6] = camera.K[0, 0], camera.K[1, 1], camera.K[0, 2], camera.K[1, 2], camera.K[0, 1]
    lens[6 : 6 + len(camera.dist)] = camera.dist
    # straight ahead, off-axis, and across the frame's edge (part of the crop outside the frame)
    edge = camera.normalize([330.0, 0.0])  # the ray through a pixel of the top edge
    views = [(np.eye(3), 150.0), (look_at([0.4, -0.3, 1.0]), 90.0), (look_at([*edge, 1.0]), 60.0)]
    if model == "fisheye":
        views.append((look_at([1.0, 0.1, 0.15]), 40.0))  # ~80 degrees off-axis, part of the crop behind
    rot = np.array([R for R, _ in views])
    crop = np.array([[cf, (size[0] - 1) / 2, (size[1] - 1) / 2] for _, cf in views])
    out = resample_crops([img], np.zeros(len(views), int), np.tile(lens, (len(views), 1)), rot, crop, size)
    for i, (R, cf) in enumerate(views):
        expected = remap_crop(camera, img, R, cf, size) / 255
        diff = np.abs(out[i] - expected)
        assert diff.max() <= tol, f"view {i}: max diff {diff.max() * 255:.3f} grey levels > {tol * 255:.3f}"
        assert (out[i] > 0).mean() > 0.3  # the crop does see the frame
    assert 0.2 < (out[2] == 0).mean() < 0.8  # the edge crop is partly outside


# ---------------------------------------------------------------------------------------------------
# buffers, torch, validation
# ---------------------------------------------------------------------------------------------------
def test_out_buffer_is_filled_and_returned():
    images, source, lens, rot, crop, size = random_scene(7, 3, 5)
    buffer = np.full((8, size[1], size[0]), -1.0, np.float32)
    result = resample_crops(images, source, lens, rot, crop, size, out=buffer)
    assert result.shape == (5, size[1], size[0]) and np.shares_memory(result, buffer)
    np.testing.assert_array_equal(result, resample_crops(images, source, lens, rot, crop, size))
    assert (buffer[5:] == -1).all()
    assert resample_crops(images, [], np.zeros((0, 14)), np.zeros((0, 3, 3)), np.zeros((0, 3)), size).shape == (
        0,
        size[1],
        size[0],
    )


def test_a_stacked_array_of_frames_is_a_list_of_frames():
    rng = np.random.default_rng()
    stack = rng.integers(0, 256, (3, 40, 50), dtype=np.uint8)
    lens = np.array([random_lens(rng, m, 50, 40) for m in MODEL_CODES])
    rot = np.array([rotation(rng, 0.5) for _ in range(3)])
    crop = np.array([[30.0, 15.5, 11.5]] * 3)
    args = ([2, 0, 1], lens, rot, crop, (32, 24))
    np.testing.assert_array_equal(resample_crops(stack, *args), resample_crops(list(stack), *args))


def test_cpu_tensors_run_on_the_cpu_kernel():
    torch = pytest.importorskip("torch")
    images, source, lens, rot, crop, size = random_scene(11, 2, 4)
    out = resample_crops([torch.from_numpy(i) for i in images], source, lens, rot, crop, size)
    assert isinstance(out, torch.Tensor)
    np.testing.assert_array_equal(out.numpy(), resample_crops(images, source, lens, rot, crop, size))


def test_numpy_calls_never_import_torch():
    code = (
        "import sys, numpy as np; from handstream.ops import resample_crops; "
        "lens = np.zeros((1, 14)); lens[0, 1:5] = 10, 10, 4, 4; "
        "resample_crops([np.zeros((8, 8), np.uint8)], [0], lens, np.eye(3)[None], [[10, 2, 2]], (5, 5)); "
        "print('torch' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


GREY = np.zeros((20, 30), np.uint8)
SMALL = np.zeros((10, 12), np.uint8)


def _valid():
    images = [GREY, SMALL]
    lens = np.zeros((2, 14))
    lens[:, 1:5] = 20, 20, 10, 8
    lens[1, 0] = 2
    return dict(
        images=images,
        source=np.array([0, 1]),
        lens=lens,
        rotation=np.stack([np.eye(3)] * 2),
        crop=np.array([[16.0, 7.5, 7.5]] * 2),
        out_size=(16, 16),
    )


@pytest.mark.parametrize(
    "change, match",
    [
        (dict(images=[GREY.astype(np.float32), SMALL]), r"images\[0\] must be \(h, w\) uint8, got .* float32"),
        (dict(images=[SMALL, np.zeros((20, 30, 3), np.uint8)]), r"images\[1\] must be \(h, w\) uint8"),  # mixed
        (dict(images=[np.zeros((20, 30, 3), np.uint8), SMALL]), r"images\[1\] must be \(h, w, 3\) uint8"),
        (dict(images=[GREY, np.zeros((0, 12), np.uint8)]), r"images\[1\] must be \(h, w\) uint8"),
        (dict(images=GREY), r"images must be a list of \(h, w\) frames or one \(S, h, w\)"),
        (dict(images="frame.png"), "images must be a list"),
        (dict(source=np.array([0, 2])), r"source\[1\] = 2 is not a frame index in \[0, 2\)"),
        (dict(source=np.array([-1, 0])), r"source\[0\] = -1 is not a frame index"),
        (dict(source=np.array([0.0, 1.0])), r"source must be \(N,\) int"),
        (dict(source=np.array([[0, 1]])), r"source must be \(N,\) int"),
        (dict(lens=np.zeros((2, 13))), r"lens must be \(2, 14\) float64, got shape \(2, 13\)"),
        (dict(lens=np.zeros((3, 14))), r"lens must be \(2, 14\) float64"),
        (dict(lens=np.full((2, 14), np.nan)), "lens must be finite"),
        (dict(lens=np.array([[3.0] + [10.0] * 13] * 2)), r"lens\[0, 0\] = 3 is not a lens model"),
        (dict(lens=np.array([[1.5] + [10.0] * 13] * 2)), r"lens\[0, 0\] = 1.5 is not a lens model"),
        (dict(rotation=np.zeros((2, 3, 4))), r"rotation must be \(2, 3, 3\) float64"),
        (dict(rotation=np.eye(3)), r"rotation must be \(2, 3, 3\)"),
        (dict(crop=np.zeros((2, 2))), r"crop must be \(2, 3\) float64"),
        (dict(crop=np.array([[16.0, 7.5, 7.5], [0.0, 7.5, 7.5]])), r"crop\[1, 0\] = 0 must be a focal length > 0"),
        (dict(out_size=(16,)), r"out_size must be \(W, H\)"),
        (dict(out_size=(16, 0)), r"out_size must be \(W, H\)"),
        (dict(out_size=(16.5, 8)), r"out_size must be \(W, H\)"),
        (dict(out=np.zeros((1, 16, 16), np.float32)), r"out must be a writeable C-contiguous \(>= 2, 16, 16\) float32"),
        (dict(out=np.zeros((2, 16, 16), np.float64)), r"out must be a writeable C-contiguous"),
        (dict(out=np.zeros((2, 16, 32), np.float32)[:, :, ::2]), r"out must be a writeable C-contiguous"),
    ],
)
def test_invalid_arguments_raise_one_line_errors(change, match):
    kwargs = {**_valid(), **change}
    with pytest.raises(HandstreamError, match=match) as info:
        resample_crops(**kwargs)
    assert "\n" not in str(info.value) and str(info.value).startswith("resample_crops: ")


def test_valid_arguments_pass():
    assert resample_crops(**_valid()).shape == (2, 16, 16)


# ---------------------------------------------------------------------------------------------------
# CUDA
# ---------------------------------------------------------------------------------------------------
@pytest.mark.needs_cuda
@pytest.mark.parametrize("repeat", range(3))
def test_cuda_matches_reference(repeat):
    import torch

    rng = np.random.default_rng()
    images, source, lens, rot, crop, size = random_scene(int(rng.integers(2**32)), 4, 24)
    frames = [torch.from_numpy(i).cuda() for i in images]
    out = resample_crops(frames, source, lens, rot, crop, size)
    assert out.is_cuda and out.dtype == torch.float32 and tuple(out.shape) == (24, size[1], size[0])
    expected = reference.resample_crops(images, source, lens, rot, crop, size)
    np.testing.assert_allclose(out.cpu().numpy(), expected, rtol=0, atol=ATOL)
    # into a reused device buffer, frames as one (S, h, w) tensor
    stack = torch.from_numpy(np.stack([np.resize(i, (40, 60)) for i in images])).cuda()
    buffer = torch.full((30, size[1], size[0]), -1.0, device="cuda")
    result = resample_crops(stack, source, lens, rot, crop, size, out=buffer)
    assert result.data_ptr() == buffer.data_ptr()
    expected = reference.resample_crops(list(stack.cpu().numpy()), source, lens, rot, crop, size)
    np.testing.assert_allclose(result.cpu().numpy(), expected, rtol=0, atol=ATOL)
    assert (buffer[24:] == -1).all()
    # many crops of one large frame (several blocks per crop)
    big = rng.integers(0, 256, (480, 640), dtype=np.uint8)
    n = 9
    lens = np.array([random_lens(rng, list(MODEL_CODES)[i % 3], 640, 480) for i in range(n)])
    rot = np.array([rotation(rng, 1.0) for _ in range(n)])
    crop = np.array([[rng.uniform(60, 200), 63.5, 63.5] for _ in range(n)])
    out = resample_crops([torch.from_numpy(big).cuda()], np.zeros(n, int), lens, rot, crop, (128, 128))
    expected = reference.resample_crops([big], np.zeros(n, int), lens, rot, crop, (128, 128))
    np.testing.assert_allclose(out.cpu().numpy(), expected, rtol=0, atol=ATOL)
