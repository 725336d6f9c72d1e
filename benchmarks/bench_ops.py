"""Per-frame benchmarks of handstream's kernels against their peers, measured in the same run.

    python benchmarks/bench_ops.py [--repeats N] [--quick] [--json out.json] [--heatmap 64] [--seed S]

Every call has the shape of one live frame: V = 4 views, 2 hands x 21 joints (P = 42 points), heatmaps
``(4, 42, h, w)`` float32 (h = w = 64 by default: the estimator's maps at stride 4 of a 256x256 crop).
The scene is synthetic and fresh every run (the seed is printed): a headset-like rig of 4 pinhole
cameras (640x480, f 350-450 px, 9 cm x 7 cm apart) looking at two hands 0.25-0.6 m away, the hands'
joints projected with Gaussian pixel noise, and heatmaps rendered as Gaussians at the sub-pixel
positions of the joints in each hand's crop, plus a little noise.

Rows (peer / handstream = speed-up; the targets are the project's, see benchmarks/README.md):

- triangulate DLT, 4 views: ``handstream.ops.triangulate(method="dlt")`` vs aniposelib 0.8
  ``CameraGroup.triangulate(points, undistort=False)``; target >= 100x at equal or lower 3D error.
- triangulate DLT, 2 views: the same on views 0 and 1 vs ``cv2.triangulatePoints`` (reference only).
- triangulate RANSAC, 10% of observations outliers: ``triangulate(method="ransac")`` vs aniposelib
  ``CameraGroup.triangulate_ransac``; target >= 1000x at equal or lower 3D error. Plain DLT on the same
  data is shown for contrast.
- decode_heatmaps: C++ vs the NumPy reference ``handstream.ops.reference.decode_heatmaps``, for "dark"
  (target >= 20x, and both must find the peaks equally well), "quadratic" and None.
- resample_crops: 4 perspective crops 128x128 (one hand per view, the engine's crop rule
  ``geometry.crop_camera.hand_crop``) from four 640x480 frames of fisheye cameras (the rig's poses,
  f 0.6x the rig's, k1..k4 of a real lens) vs ``cv2.remap`` with maps built per crop every frame: in NumPy
  (``Camera.distort``), and with OpenCV's own C++ ``cv2.fisheye.initUndistortRectifyMap``; and vs remap
  alone with prebuilt fixed-point maps (``cv2.convertMaps``), what a static crop would cost. Every variant
  returns float32 in [0, 1]; the error is the mean |difference| to the float64 NumPy reference, in grey
  levels (remap rounds coordinates to 1/32 px and its output to uint8). No target: reference figures.

Timings are per call (time.perf_counter_ns around each call, after warm-up, garbage collector off
while timing), reported as median and 90th percentile in microseconds. The exit code is 0 whether
or not the targets are met: the script reports, it does not judge.
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from handstream import ops, records
from handstream.machine import describe_machine
from handstream.ops import reference

N_VIEWS = 4
N_HANDS = 2
N_JOINTS = 21
N_POINTS = N_HANDS * N_JOINTS
IMAGE_SIZE = (640, 480)  # (width, height)
CROP_PX = 256  # the estimator's input crop; the heatmap stride is CROP_PX / heatmap size
RESAMPLE_PX = 128  # resample_crops: the crop network's input (W = H)
RESAMPLE_MARGIN = 1.3  # the crop's side / the hand's extent
FISHEYE_SCALE = 0.6  # fisheye focal length / the rig's pinhole focal length (a wider field of view)

TARGET_TRIANGULATE = 100.0
TARGET_RANSAC = 1000.0
TARGET_DECODE = 20.0
# "Equal or lower error": handstream's mean 3D error may exceed the peer's by at most this fraction
# (both are means over the same frames and points; 2% is well inside their frame-to-frame spread).
ERROR_TOLERANCE = 0.02
# decode: the C++ kernel and the NumPy reference "agree" when their mean peak errors differ by less.
DECODE_AGREE_PX = 1e-3

ANIPOSELIB_INSTALL = (
    "pip install --no-deps aniposelib==0.8.0 && pip install numba pandas toml scipy jax "
    "(never without --no-deps: it would pull opencv-contrib-python; see benchmarks/README.md)"
)


# ---------------------------------------------------------------------------------------------------
# the scene
# ---------------------------------------------------------------------------------------------------
@dataclass
class Rig:
    K: np.ndarray  # (V, 3, 3)
    R: np.ndarray  # (V, 3, 3) world -> camera
    t: np.ndarray  # (V, 3)    X_cam = R X_world + t
    P: np.ndarray  # (V, 3, 4) K [R | t]


@dataclass
class Frame:
    points_3d: np.ndarray  # (P, 3) ground truth, metres
    pixels: np.ndarray  # (V, P, 2) noisy undistorted pixels
    pixels_outliers: np.ndarray  # (V, P, 2) the same with a fraction of observations displaced
    outlier_mask: np.ndarray  # (V, P) bool
    heatmaps: np.ndarray  # (V, P, h, w) float32
    heatmap_centres: np.ndarray  # (V, P, 2) true sub-pixel peak positions (x, y), heatmap pixels


def _look_at(center: np.ndarray, target: np.ndarray) -> np.ndarray:
    """R (world -> camera) of a camera at ``center`` looking at ``target``, image y roughly world +y."""
    z = target - center
    z /= np.linalg.norm(z)
    x = np.cross(np.array([0.0, 1.0, 0.0]), z)
    x /= np.linalg.norm(x)
    return np.stack([x, np.cross(z, x), z])


def make_rig(rng: np.random.Generator) -> Rig:
    """4 cameras on a headset front (x right, y down, z forward), 9 cm x 7 cm apart, all looking at the
    workspace in front and below, each with a few degrees of individual tilt, f 350-450 px."""
    Ks, Rs, ts = [], [], []
    for sx, sy in ((-1, -1), (1, -1), (-1, 1), (1, 1)):
        center = np.array([0.045 * sx, 0.035 * sy, 0.0]) + rng.normal(scale=0.002, size=3)
        target = np.array([0.06 * sx, 0.08, 0.4]) + rng.normal(scale=0.02, size=3)
        R = _look_at(center, target)
        f = rng.uniform(350, 450)
        K = np.array(
            [
                [f, 0, 320 + rng.normal(scale=4)],
                [0, f * rng.uniform(0.99, 1.01), 240 + rng.normal(scale=4)],
                [0, 0, 1.0],
            ]
        )
        Ks.append(K)
        Rs.append(R)
        ts.append(-R @ center)
    K, R, t = np.array(Ks), np.array(Rs), np.array(ts)
    P = np.einsum("vij,vjk->vik", K, np.concatenate([R, t[:, :, None]], axis=2))
    return Rig(K=K, R=R, t=t, P=P)


def _rotation(axis: np.ndarray, angle: float) -> np.ndarray:
    return cv2.Rodrigues(np.asarray(axis, dtype=np.float64) / np.linalg.norm(axis) * angle)[0]


# Finger chains in the hand's own frame (metres): base offset from the wrist and phalanx lengths.
# The hand's frame: fingers along -y, the palm facing +z, the thumb towards -x (a right hand).
_FINGERS = [  # (base (x, y), lengths of the 4 segments after the base; the thumb's base is its CMC)
    ((-0.025, -0.025), (0.035, 0.032, 0.028)),  # thumb CMC -> MCP -> IP -> TIP
    ((-0.022, -0.090), (0.042, 0.025, 0.021)),  # index MCP -> PIP -> DIP -> TIP
    ((-0.002, -0.093), (0.046, 0.028, 0.022)),  # middle
    ((0.017, -0.088), (0.043, 0.027, 0.021)),  # ring
    ((0.033, -0.078), (0.034, 0.020, 0.019)),  # pinky
]


def make_hand(rng: np.random.Generator, scale: float, left: bool) -> np.ndarray:
    """(21, 3) joints of one hand in its own frame (wrist at the origin), random curl, MediaPipe order."""
    joints = [np.zeros(3)]
    for i, ((bx, by), lengths) in enumerate(_FINGERS):
        base = np.array([bx, by, 0.0])
        joints.append(base)
        direction = base / np.linalg.norm(base) if i > 0 else np.array([-0.6, -0.8, 0.0])
        bend_axis = np.cross(direction, [0.0, 0.0, 1.0]) if i > 0 else np.array([0.3, -0.2, 1.0])
        pos = base.copy()
        for length in lengths:
            direction = _rotation(bend_axis, rng.uniform(0.0, 0.5)) @ direction
            pos = pos + length * direction
            joints.append(pos)
    hand = np.array(joints) * scale
    if left:
        hand[:, 0] *= -1
    return hand


def make_hands(rng: np.random.Generator, rig: Rig) -> np.ndarray:
    """(42, 3) world points of two hands (left then right) in front of the rig, all seen by every camera."""
    for _ in range(1000):
        hands = []
        depth = rng.uniform(0.25, 0.6)
        for h, side in enumerate((-1, 1)):
            local = make_hand(rng, scale=rng.uniform(0.9, 1.1), left=h == 0)
            rotation = _rotation(rng.normal(size=3), rng.uniform(0, math.pi))
            wrist = np.array([side * rng.uniform(0.04, 0.12), rng.uniform(0.05, 0.15), depth + rng.normal(scale=0.05)])
            hands.append(local @ rotation.T + wrist)
        points = np.concatenate(hands)
        cam = np.einsum("vij,pj->vpi", rig.R, points) + rig.t[:, None, :]
        if cam[..., 2].min() < 0.15:
            continue
        px = project(rig.P, points)
        w, h = IMAGE_SIZE
        if px[..., 0].min() > 10 and px[..., 0].max() < w - 10 and px[..., 1].min() > 10 and px[..., 1].max() < h - 10:
            return points
    raise RuntimeError("could not place two hands in view of every camera")  # pragma: no cover


def project(P: np.ndarray, points: np.ndarray) -> np.ndarray:
    """points (N, 3) -> (V, N, 2) pixels through projections (V, 3, 4)."""
    uvw = np.einsum("vij,pj->vpi", P, np.hstack([points, np.ones((len(points), 1))]))
    return uvw[..., :2] / uvw[..., 2:]


def render_heatmaps(rng: np.random.Generator, pixels: np.ndarray, size: int, sigma: float):
    """Heatmaps (V, P, size, size) as the estimator would give them for each hand's crop.

    Each (view, hand) crop is a square box around the hand's 2D joints (side max(256, 1.25 x extent)),
    resized to the estimator's 256x256 input; the maps are its output at stride side / size. With pixel
    centres at integers on both grids, a joint at input pixel x lands at ``(x - x0 + 0.5) / stride - 0.5``.
    """
    V = pixels.shape[0]
    centres = np.empty((V, N_POINTS, 2))
    for v in range(V):
        for h in range(N_HANDS):
            pts = pixels[v, h * N_JOINTS : (h + 1) * N_JOINTS]
            lo, hi = pts.min(axis=0), pts.max(axis=0)
            side = max(CROP_PX, 1.25 * float((hi - lo).max()))
            origin = (lo + hi) / 2 - side / 2 + rng.normal(scale=0.03 * side, size=2)  # detector jitter
            stride = side / size
            # pixel-centre convention on both grids: map pixel i covers input [i, i + 1) * stride - 0.5
            centres[v, h * N_JOINTS : (h + 1) * N_JOINTS] = (pts - origin + 0.5) / stride - 0.5
    centres = np.clip(centres, 2.0, size - 3.0)  # a joint at the crop's very edge stays on its map
    grid = np.arange(size, dtype=np.float64)
    gx = np.exp(-((grid - centres[..., 0:1]) ** 2) / (2 * sigma**2))  # (V, P, w)
    gy = np.exp(-((grid - centres[..., 1:2]) ** 2) / (2 * sigma**2))  # (V, P, h)
    peak = rng.uniform(0.6, 1.0, size=(V, N_POINTS, 1, 1))
    maps = peak * gy[..., :, None] * gx[..., None, :]
    maps += rng.normal(scale=0.01, size=maps.shape)
    return np.ascontiguousarray(maps, dtype=np.float32), centres


def make_frames(
    rng: np.random.Generator,
    rig: Rig,
    n_frames: int,
    *,
    noise_px: float,
    outlier_fraction: float,
    heatmap: int,
    sigma: float,
) -> list[Frame]:
    frames = []
    n_obs = N_VIEWS * N_POINTS
    n_out = int(round(outlier_fraction * n_obs))
    for _ in range(n_frames):
        X = make_hands(rng, rig)
        px = project(rig.P, X) + rng.normal(scale=noise_px, size=(N_VIEWS, N_POINTS, 2))
        mask = np.zeros(n_obs, dtype=bool)
        mask[rng.choice(n_obs, size=n_out, replace=False)] = True
        mask = mask.reshape(N_VIEWS, N_POINTS)
        angle = rng.uniform(0, 2 * math.pi, size=n_out)
        radius = rng.uniform(30, 80, size=n_out)
        px_out = px.copy()
        px_out[mask] += np.stack([np.cos(angle), np.sin(angle)], axis=1) * radius[:, None]
        maps, centres = render_heatmaps(rng, px, heatmap, sigma)
        frames.append(
            Frame(
                points_3d=X,
                pixels=np.ascontiguousarray(px),
                pixels_outliers=px_out,
                outlier_mask=mask,
                heatmaps=maps,
                heatmap_centres=centres,
            )
        )
    return frames


@dataclass
class CropSet:
    """One frame's resample_crops call: 4 frames, one crop per view (hand v % 2), and the peers' inputs."""

    images: list[np.ndarray]  # V frames (480, 640) uint8
    cameras: list[Any]  # V handstream.geometry.Camera (fisheye)
    source: np.ndarray  # (N,) view of each crop
    lens: np.ndarray  # (N, 14)
    rotation: np.ndarray  # (N, 3, 3) crop frame -> camera frame
    crop: np.ndarray  # (N, 3) f, ccx, ccy


def make_textures(rng: np.random.Generator, n: int) -> list[np.ndarray]:
    """Frames (480, 640) uint8 with structure at several scales (blurred noise octaves), not flat noise."""
    w, h = IMAGE_SIZE
    out = []
    for _ in range(n):
        img = sum(cv2.GaussianBlur(rng.normal(size=(h, w)), (0, 0), s) * s for s in (1.0, 3.0, 9.0))
        img = (img - img.min()) / (img.max() - img.min())
        out.append(np.ascontiguousarray(np.round(255 * img), dtype=np.uint8))
    return out


def make_crop_sets(rng: np.random.Generator, rig: Rig, frames: list[Frame], textures: list[list[np.ndarray]]):
    from handstream.geometry import Camera
    from handstream.geometry.crop_camera import hand_crop

    cameras = []
    for v in range(N_VIEWS):
        K = rig.K[v].copy()
        K[:2, :2] *= FISHEYE_SCALE
        dist = [rng.uniform(0.0, 0.05), rng.uniform(-0.02, 0.0), rng.uniform(0.0, 0.01), rng.uniform(-3e-3, 0.0)]
        cameras.append(Camera(f"cam{v}", IMAGE_SIZE, K, dist, model="fisheye", R=rig.R[v], t=rig.t[v]))
    sets = []
    for i, frame in enumerate(frames):
        rows = []
        for v, cam in enumerate(cameras):
            hand = frame.points_3d[(v % N_HANDS) * N_JOINTS : (v % N_HANDS + 1) * N_JOINTS]
            c = hand_crop(cam, hand, (RESAMPLE_PX, RESAMPLE_PX), RESAMPLE_MARGIN)
            lens, crop = c.lens_and_crop()
            rows.append((v, lens, c.rotation, crop))
        sets.append(
            CropSet(
                images=textures[i % len(textures)],
                cameras=cameras,
                source=np.array([r[0] for r in rows], np.int64),
                lens=np.array([r[1] for r in rows]),
                rotation=np.array([r[2] for r in rows]),
                crop=np.array([r[3] for r in rows]),
            )
        )
    return sets


def crop_pixels() -> tuple[np.ndarray, np.ndarray]:
    """(H, W) float64 column and row indices of a crop (constant: a peer keeps them between frames)."""
    v, u = np.mgrid[0:RESAMPLE_PX, 0:RESAMPLE_PX].astype(np.float64)
    return u, v


def numpy_maps(camera: Any, rotation: np.ndarray, crop: np.ndarray, grid) -> tuple[np.ndarray, np.ndarray]:
    """float32 (H, W) remap maps of one crop built in NumPy through ``Camera.distort`` (-1e6: behind)."""
    u, v = grid
    f, ccx, ccy = crop
    rays = np.stack([(u - ccx) / f, (v - ccy) / f, np.ones_like(u)], axis=-1) @ rotation.T
    front = rays[..., 2] > 0
    maps = np.full(rays.shape[:-1] + (2,), -1e6)
    maps[front] = camera.distort(rays[front][:, :2] / rays[front][:, 2:])
    return maps[..., 0].astype(np.float32), maps[..., 1].astype(np.float32)


def opencv_maps(camera: Any, rotation: np.ndarray, crop: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The same maps from OpenCV's C++ fisheye code: the crop is a rectified camera (R = rotation^T, P = K)."""
    f, ccx, ccy = crop
    P = np.array([[f, 0.0, ccx], [0.0, f, ccy], [0.0, 0.0, 1.0]])
    size = (RESAMPLE_PX, RESAMPLE_PX)
    return cv2.fisheye.initUndistortRectifyMap(camera.K, camera.dist, rotation.T, P, size, cv2.CV_32FC1)


def remap_into(out: np.ndarray, images: list[np.ndarray], source: np.ndarray, maps: list[tuple]) -> np.ndarray:
    """cv2.remap (bilinear, zero border) of each crop, then /255 into the float32 (N, H, W) buffer."""
    for i, (m1, m2) in enumerate(maps):
        dst = cv2.remap(images[source[i]], m1, m2, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        np.multiply(dst, np.float32(1 / 255), out=out[i])
    return out


def error_grey(outputs: dict[int, np.ndarray], expected: dict[int, np.ndarray]) -> dict[str, Any]:
    """Mean and max |output - expected| in grey levels (1/255) over the frames in ``expected``."""
    d = np.concatenate([np.abs(np.asarray(outputs[i], np.float64) - expected[i]).ravel() for i in expected]) * 255
    return {"mean_grey": float(d.mean()), "max_grey": float(d.max()), "frames": len(expected)}


# ---------------------------------------------------------------------------------------------------
# timing and errors
# ---------------------------------------------------------------------------------------------------
@dataclass
class Timed:
    times_ns: np.ndarray
    outputs: dict[int, Any]  # frame index -> output of the first timed call on that frame

    def stats(self) -> dict[str, float]:
        t = self.times_ns / 1e3
        return {
            "median_us": float(np.median(t)),
            "p90_us": float(np.percentile(t, 90)),
            "mean_us": float(t.mean()),
            "min_us": float(t.min()),
            "n": int(len(t)),
        }


def time_calls(
    fn: Callable[..., Any], inputs: Sequence[tuple], repeats: int, warmup: int, collect: bool = True
) -> Timed:
    """Call ``fn(*inputs[i % len(inputs)])`` ``repeats`` times, each timed alone, after ``warmup`` calls.

    The garbage collector runs once before (``collect``) and is off while timing.
    """
    for i in range(warmup):
        fn(*inputs[i % len(inputs)])
    times = np.empty(repeats, dtype=np.int64)
    outputs: dict[int, Any] = {}
    n = len(inputs)
    gc_was_enabled = gc.isenabled()
    if collect:
        gc.collect()
    gc.disable()
    try:
        for i in range(repeats):
            args = inputs[i % n]
            t0 = time.perf_counter_ns()
            out = fn(*args)
            times[i] = time.perf_counter_ns() - t0
            if i < n:
                outputs[i] = out
    finally:
        if gc_was_enabled:
            gc.enable()
    return Timed(times, outputs)


def distances_mm(outputs: dict[int, np.ndarray], frames: list[Frame], frame_ids: Sequence[int]) -> np.ndarray:
    """Distances (mm) of every output point to the truth over ``frame_ids``; NaN where not triangulated."""
    return (
        np.concatenate(
            [np.linalg.norm(np.asarray(outputs[i], dtype=np.float64) - frames[i].points_3d, axis=1) for i in frame_ids]
        )
        * 1e3
    )


def error_3d_mm(dist: np.ndarray, common: np.ndarray, n_frames: int) -> dict[str, Any]:
    """Mean and median of ``dist`` over the points in ``common`` (those every compared method triangulated);
    points this method left NaN are counted in ``failed_points``."""
    d = dist[common]
    return {
        "mean_mm": float(d.mean()) if len(d) else float("nan"),
        "median_mm": float(np.median(d)) if len(d) else float("nan"),
        "failed_points": int((~np.isfinite(dist)).sum()),
        "points_compared": int(common.sum()),
        "frames": n_frames,
    }


def error_peak_px(outputs: dict[int, tuple], frames: list[Frame], frame_ids: Sequence[int]) -> dict[str, Any]:
    dists = [
        np.linalg.norm(np.asarray(outputs[i][0], dtype=np.float64) - frames[i].heatmap_centres, axis=-1).ravel()
        for i in frame_ids
    ]
    d = np.concatenate(dists)
    failed = int((~np.isfinite(d)).sum())
    d = d[np.isfinite(d)]
    return {
        "mean_px": float(d.mean()),
        "median_px": float(np.median(d)),
        "failed_maps": failed,
        "frames": len(frame_ids),
    }


# ---------------------------------------------------------------------------------------------------
# the peers
# ---------------------------------------------------------------------------------------------------
def load_aniposelib() -> tuple[Any, str | None]:
    """(aniposelib.cameras module, None) or (None, why it cannot be used)."""
    try:
        from aniposelib import cameras
    except ImportError as exc:
        return None, f"aniposelib peers skipped ({exc}); install them with: {ANIPOSELIB_INSTALL}"
    try:
        import jax  # noqa: F401  (aniposelib 0.8's CameraGroup.triangulate imports it at call time)
    except ImportError as exc:
        return (
            None,
            f"aniposelib peers skipped (aniposelib 0.8 triangulates with jax: {exc}); pip install jax",
        )
    return cameras, None


def aniposelib_group(cameras_module: Any, rig: Rig) -> Any:
    cams = []
    for v in range(N_VIEWS):
        rvec = cv2.Rodrigues(rig.R[v])[0].ravel()
        cams.append(
            cameras_module.Camera(
                matrix=rig.K[v], dist=np.zeros(5), size=IMAGE_SIZE, rvec=rvec, tvec=rig.t[v], name=f"cam{v}"
            )
        )
    return cameras_module.CameraGroup(cams)


def normalized(rig: Rig, pixels: np.ndarray) -> np.ndarray:
    """Undistorted pixels (V, P, 2) -> normalised image coordinates K^-1 [x y 1] (V, P, 2)."""
    Kinv = np.linalg.inv(rig.K)
    xy1 = np.concatenate([pixels, np.ones(pixels.shape[:-1] + (1,))], axis=-1)
    out = np.einsum("vij,vpj->vpi", Kinv, xy1)
    return np.ascontiguousarray(out[..., :2] / out[..., 2:])


def cv2_triangulate(P0: np.ndarray, P1: np.ndarray, x0: np.ndarray, x1: np.ndarray) -> np.ndarray:
    X = cv2.triangulatePoints(P0, P1, x0, x1)
    return (X[:3] / X[3]).T


# ---------------------------------------------------------------------------------------------------
# the run
# ---------------------------------------------------------------------------------------------------
def machine_info() -> dict[str, Any]:
    info = describe_machine(["handstream", "aniposelib", "jax", "numba"])
    info.update(numpy=np.__version__, opencv=cv2.__version__)
    return info


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--repeats",
        type=int,
        default=None,
        help="timed calls of each handstream op and of cv2 (default 2000; --quick: 20)",
    )
    p.add_argument(
        "--slow-repeats",
        type=int,
        default=None,
        help="timed calls of aniposelib triangulate and the NumPy decode reference "
        "(default min(repeats, 200); --quick: 3)",
    )
    p.add_argument(
        "--ransac-repeats",
        type=int,
        default=None,
        help="timed calls of aniposelib triangulate_ransac, ~0.1-0.5 s each (default 8; --quick: 1)",
    )
    p.add_argument(
        "--frames",
        type=int,
        default=None,
        help="distinct random frames cycled through by the timed calls (default 32; --quick: 3)",
    )
    p.add_argument("--heatmap", type=int, default=64, help="heatmap side h = w in pixels (default 64)")
    p.add_argument("--sigma", type=float, default=2.0, help="heatmap Gaussian sigma = DARK blur sigma (default 2)")
    p.add_argument("--noise-px", type=float, default=1.5, help="2D keypoint noise, std in pixels (default 1.5)")
    p.add_argument(
        "--outliers",
        type=float,
        default=0.10,
        help="fraction of (view, point) observations made outliers for RANSAC (default 0.10)",
    )
    p.add_argument("--threshold-px", type=float, default=10.0, help="handstream RANSAC threshold (default 10)")
    p.add_argument("--seed", type=int, default=None, help="random seed (default: fresh, printed)")
    p.add_argument("--quick", action="store_true", help="a few repeats only: a smoke run, not a measurement")
    p.add_argument("--no-aniposelib", action="store_true", help="skip the aniposelib peers")
    p.add_argument("--json", metavar="PATH", help="write every figure to this JSON file")
    args = p.parse_args(argv)
    quick = args.quick
    if args.repeats is None:
        args.repeats = 20 if quick else 2000
    if args.slow_repeats is None:
        args.slow_repeats = 3 if quick else min(args.repeats, 200)
    if args.ransac_repeats is None:
        args.ransac_repeats = 1 if quick else 8
    if args.frames is None:
        args.frames = 3 if quick else 32
    for name in ("repeats", "slow_repeats", "ransac_repeats", "frames"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.heatmap < 8:
        p.error("--heatmap must be >= 8")
    if args.seed is None:
        args.seed = int.from_bytes(os.urandom(4), "little")
    return args


def row(
    op: str,
    hs: Timed,
    hs_err: dict | None,
    peer_name: str,
    peer: Timed | None,
    peer_err: dict | None,
    target: float | None,
    error_unit: str,
    error_ok: bool | None,
) -> dict[str, Any]:
    hs_stats = hs.stats()
    peer_stats = peer.stats() if peer is not None else None
    ratio = peer_stats["median_us"] / hs_stats["median_us"] if peer_stats else None
    met = None
    if target is not None and ratio is not None:
        met = bool(ratio >= target and (error_ok is None or error_ok))
    return {
        "operation": op,
        "handstream": {**hs_stats, "error": hs_err},
        "peer_name": peer_name,
        "peer": None if peer_stats is None else {**peer_stats, "error": peer_err},
        "ratio": ratio,
        "target_ratio": target,
        "error_ok": error_ok,
        "met": met,
        "error_unit": error_unit,
    }


def run(args: argparse.Namespace, log: Callable[[str], None]) -> dict[str, Any]:
    rng = np.random.default_rng(args.seed)
    rig = make_rig(rng)
    frames = make_frames(
        rng,
        rig,
        args.frames,
        noise_px=args.noise_px,
        outlier_fraction=args.outliers,
        heatmap=args.heatmap,
        sigma=args.sigma,
    )
    F = len(frames)
    notes: list[str] = []
    quick = args.quick
    warm_fast, warm_slow = (3, 1) if quick else (100, 10)
    warm_ransac = 0 if quick else 1  # aniposelib's first call compiles numba code (~2 s)
    collect = not quick
    R, RS, RR = args.repeats, args.slow_repeats, args.ransac_repeats

    anipose, why = (None, "aniposelib peers skipped (--no-aniposelib)") if args.no_aniposelib else load_aniposelib()
    if why:
        notes.append(why)
        log(why)
    group = aniposelib_group(anipose, rig) if anipose is not None else None

    P = np.ascontiguousarray(rig.P)
    P2 = np.ascontiguousarray(rig.P[:2])
    clean = [(f.pixels, P) for f in frames]
    dirty = [(f.pixels_outliers, P) for f in frames]
    results: dict[str, Any] = {}

    def tri(method: str) -> Callable[..., np.ndarray]:
        def call(pts: np.ndarray, proj: np.ndarray) -> np.ndarray:
            return ops.triangulate(pts, proj, method=method, threshold_px=args.threshold_px).points

        return call

    def tri_cmp(name: str, hs_fn, hs_inputs, peer_name, peer_fn, peer_inputs, peer_repeats, peer_warmup, target):
        log(f"  {name}: handstream ...")
        hs = time_calls(hs_fn, hs_inputs, R, warm_fast, collect)
        peer = None
        if peer_fn is not None:
            log(f"  {name}: {peer_name} ({peer_repeats} calls) ...")
            peer = time_calls(peer_fn, peer_inputs, peer_repeats, peer_warmup, collect)
        ids = range(min(F, R, peer_repeats if peer is not None else R))
        hs_d = distances_mm(hs.outputs, frames, ids)
        peer_d = distances_mm(peer.outputs, frames, ids) if peer is not None else None
        common = np.isfinite(hs_d) if peer_d is None else np.isfinite(hs_d) & np.isfinite(peer_d)
        hs_err = error_3d_mm(hs_d, common, len(ids))
        peer_err = error_3d_mm(peer_d, common, len(ids)) if peer_d is not None else None
        ok = None
        if peer_err is not None and target is not None:
            ok = bool(hs_err["mean_mm"] <= peer_err["mean_mm"] * (1 + ERROR_TOLERANCE))
        results[name] = row(name.replace("_", " "), hs, hs_err, peer_name, peer, peer_err, target, "mm", ok)

    # 1. DLT, 4 views. aniposelib's undistort=False path takes normalised coordinates (its own
    # undistort step is cv2.undistortPoints without a new camera matrix), so it gets K^-1 x.
    # Spin the CPU up before the first timed call (the first table row would otherwise pay for
    # frequency ramp-up and cold caches that the later rows do not).
    spin_until = time.perf_counter() + (0.2 if args.quick else 1.0)
    while time.perf_counter() < spin_until:
        ops.triangulate(frames[0].pixels, P, method="dlt")
    log("triangulate (DLT)")
    ap_clean = [(normalized(rig, f.pixels),) for f in frames]

    def ap_dlt(pts):
        return group.triangulate(pts, undistort=False)

    def dlt_vs_aniposelib(name: str, data, ap_data, target, operation: str) -> None:
        """Our DLT against aniposelib's on the same frames (clean, or with outliers for contrast)."""
        tri_cmp(name, tri("dlt"), data, "aniposelib triangulate", ap_dlt if group is not None else None, ap_data,
                RS, warm_slow, target)  # fmt: skip
        results[name]["operation"] = operation

    dlt_vs_aniposelib("triangulate_dlt", clean, ap_clean, TARGET_TRIANGULATE, f"triangulate DLT, {N_VIEWS} views")

    # 2. DLT on 2 views against OpenCV (reference only, no target).
    tri_cmp(
        "triangulate_dlt_2views",
        tri("dlt"),
        [(f.pixels[:2].copy(), P2) for f in frames],
        "cv2.triangulatePoints",
        cv2_triangulate,
        [(P[0], P[1], np.ascontiguousarray(f.pixels[0].T), np.ascontiguousarray(f.pixels[1].T)) for f in frames],
        R,
        warm_fast,
        None,
    )
    results["triangulate_dlt_2views"]["operation"] = "triangulate DLT, views 0 and 1"

    # 3. RANSAC with outliers. aniposelib's triangulate_ransac scores subsets by the pixel reprojection
    # error of its cameras (K included), so it must get pixels and undistort=True (zero distortion: the
    # undistortion is K^-1 only); with undistort=False and normalised points it mixes units and returns NaN.
    log("triangulate (RANSAC)")

    def ap_ransac(pts):
        return group.triangulate_ransac(pts, undistort=True, min_cams=2, progress=False)[0]

    pct = f"{args.outliers:.0%}"
    tri_cmp(
        "triangulate_ransac",
        tri("ransac"),
        dirty,
        "aniposelib triangulate_ransac",
        ap_ransac if group is not None else None,
        [(f.pixels_outliers,) for f in frames],
        RR,
        warm_ransac,
        TARGET_RANSAC,
    )
    results["triangulate_ransac"]["operation"] = f"triangulate RANSAC, {pct} outliers"
    if group is not None:
        notes.append(
            f"aniposelib triangulate_ransac: {RR} timed call(s) after {warm_ransac} warm-up "
            f"(~0.1-0.5 s a call), errors over those {min(RR, F)} frame(s) for both"
        )

    # 3b. plain DLT on the same outlier data, for contrast.
    ap_dirty = [(normalized(rig, f.pixels_outliers),) for f in frames]
    dlt_vs_aniposelib("triangulate_dlt_outliers", dirty, ap_dirty, None, f"triangulate DLT, {pct} outliers")

    # 4. decode.
    log("decode_heatmaps")
    maps = [(f.heatmaps,) for f in frames]
    h = args.heatmap
    for refine, key, target in (
        ("dark", "decode_dark", TARGET_DECODE),
        ("quadratic", "decode_quadratic", None),
        (None, "decode_none", None),
    ):

        def hs_fn(hm, refine=refine):
            return ops.decode_heatmaps(hm, refine, sigma=args.sigma)

        def ref_fn(hm, refine=refine):
            return reference.decode_heatmaps(hm, refine, args.sigma)

        log(f"  {refine}: handstream ...")
        hs = time_calls(hs_fn, maps, R, warm_fast, collect)
        log(f"  {refine}: NumPy reference ({RS} calls) ...")
        peer = time_calls(ref_fn, maps, RS, warm_slow, collect)
        ids = range(min(F, R, RS))
        hs_err, peer_err = error_peak_px(hs.outputs, frames, ids), error_peak_px(peer.outputs, frames, ids)
        agree = bool(
            abs(hs_err["mean_px"] - peer_err["mean_px"]) < DECODE_AGREE_PX
            and hs_err["failed_maps"] == peer_err["failed_maps"]
        )
        results[key] = row(
            f"decode_heatmaps {refine}",
            hs,
            hs_err,
            f"NumPy reference {refine}",
            peer,
            peer_err,
            target,
            "px",
            agree,
        )

    # 5. resample_crops against cv2.remap. Every variant writes float32 crops into its own reused buffer.
    log("resample_crops")
    crop_sets = make_crop_sets(rng, rig, frames, [make_textures(rng, N_VIEWS) for _ in range(min(F, 4))])
    n_crops = len(crop_sets[0].source)
    buffers = [np.empty((n_crops, RESAMPLE_PX, RESAMPLE_PX), np.float32) for _ in range(4)]
    grid = crop_pixels()

    def hs_resample(cs: CropSet) -> np.ndarray:
        size = (RESAMPLE_PX, RESAMPLE_PX)
        return ops.resample_crops(cs.images, cs.source, cs.lens, cs.rotation, cs.crop, size, out=buffers[0])

    def numpy_remap(cs: CropSet) -> np.ndarray:
        maps = [numpy_maps(cs.cameras[s], cs.rotation[i], cs.crop[i], grid) for i, s in enumerate(cs.source)]
        return remap_into(buffers[1], cs.images, cs.source, maps)

    def opencv_remap(cs: CropSet) -> np.ndarray:
        maps = [opencv_maps(cs.cameras[s], cs.rotation[i], cs.crop[i]) for i, s in enumerate(cs.source)]
        return remap_into(buffers[2], cs.images, cs.source, maps)

    prebuilt = [  # fixed-point maps (CV_16SC2): remap's fastest input
        [cv2.convertMaps(*opencv_maps(cs.cameras[s], cs.rotation[i], cs.crop[i]), cv2.CV_16SC2) for i, s in src]
        for cs, src in ((cs, list(enumerate(cs.source))) for cs in crop_sets)
    ]

    def remap_only(cs: CropSet, maps: list[tuple]) -> np.ndarray:
        return remap_into(buffers[3], cs.images, cs.source, maps)

    def outputs(fn, inputs) -> dict[int, np.ndarray]:  # untimed calls: the timed ones reuse one buffer
        return {i: fn(*inputs[i]).copy() for i in ids}

    one = [(cs,) for cs in crop_sets]
    ids = range(min(F, R, RS, 8))
    size = (RESAMPLE_PX, RESAMPLE_PX)
    expected = {
        i: reference.resample_crops(cs.images, cs.source, cs.lens, cs.rotation, cs.crop, size)
        for i, cs in enumerate(crop_sets[: len(ids)])
    }
    log("  handstream ...")
    hs = time_calls(hs_resample, one, R, warm_fast, collect)
    hs_err = error_grey(outputs(hs_resample, one), expected)
    what = f"{n_crops} crops {RESAMPLE_PX}x{RESAMPLE_PX}, {N_VIEWS} fisheye {IMAGE_SIZE[0]}x{IMAGE_SIZE[1]}"
    same = "resample_crops (the same)"
    with_maps = list(zip(crop_sets, prebuilt, strict=True))
    peers = [
        ("resample_numpy_maps", f"resample_crops, {what}", "NumPy maps + cv2.remap", numpy_remap, one, RS, warm_slow),
        ("resample_opencv_maps", same, "cv2.fisheye maps + remap", opencv_remap, one, R, warm_fast),
        ("resample_remap_only", same, "cv2.remap, prebuilt maps", remap_only, with_maps, R, warm_fast),
    ]
    for key, op, name, fn, inputs, repeats, warm in peers:
        log(f"  {name} ({repeats} calls) ...")
        peer = time_calls(fn, inputs, repeats, warm, collect)
        results[key] = row(op, hs, hs_err, name, peer, error_grey(outputs(fn, inputs), expected), None, "grey", None)
    notes.append(
        "resample_crops: the peers build their maps every frame (NumPy: Camera.distort; cv2.fisheye."
        "initUndistortRectifyMap: OpenCV's C++) except 'prebuilt maps' (remap alone, fixed-point maps); "
        "every variant ends in float32 /255; error: mean (max) |difference| to the float64 NumPy reference, "
        "grey levels"
    )

    notes.append(
        f"timed calls: handstream and cv2 {R} each ({warm_fast} warm-up); aniposelib triangulate and the "
        f"NumPy reference {RS} each ({warm_slow} warm-up); cycling through {F} random frames"
    )
    notes.append(
        f"3D error: mean distance to the truth over the points both methods triangulated (NaN = not "
        f"triangulated, counted apart); 'equal or lower error': handstream's <= peer's "
        f"x {1 + ERROR_TOLERANCE:g}; decode: mean peak errors must agree within {DECODE_AGREE_PX:g} px"
    )
    return {
        "machine": machine_info(),
        "settings": {
            "seed": args.seed,
            "views": N_VIEWS,
            "points": N_POINTS,
            "heatmap": [N_VIEWS, N_POINTS, h, h],
            "sigma": args.sigma,
            "noise_px": args.noise_px,
            "outlier_fraction": args.outliers,
            "threshold_px": args.threshold_px,
            "frames": F,
            "repeats": R,
            "slow_repeats": RS,
            "ransac_repeats": RR,
            "quick": quick,
            "rig": {"K": rig.K.tolist(), "R": rig.R.tolist(), "t": rig.t.tolist()},
        },
        "targets": {
            "triangulate": TARGET_TRIANGULATE,
            "ransac": TARGET_RANSAC,
            "decode": TARGET_DECODE,
            "error_tolerance": ERROR_TOLERANCE,
            "decode_agree_px": DECODE_AGREE_PX,
        },
        "results": results,
        "notes": notes,
    }


# ---------------------------------------------------------------------------------------------------
# output
# ---------------------------------------------------------------------------------------------------
def _fmt_us(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x:,.1f}" if x < 1000 else f"{x:,.0f}"


def _fmt_err(err: dict | None, unit: str) -> str:
    if err is None:
        return "-"
    if unit == "mm":
        text = f"{err['mean_mm']:.2f} mm"
        return text + (f" ({err['failed_points']} NaN)" if err["failed_points"] else "")
    if unit == "grey":
        return f"{err['mean_grey']:.3f} grey (max {err['max_grey']:.2f})"
    text = f"{err['mean_px']:.4f} px"
    return text + (f" ({err['failed_maps']} NaN)" if err["failed_maps"] else "")


def print_report(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if console.width < 170:  # a pipe or a narrow terminal: keep one line per row
        console = Console(width=170)
    m = report["machine"]
    console.print(
        f"machine: {m['cpu']}, {m['cores']} cores ({m['cores_usable']} usable); python {m['python']}, "
        f"numpy {m['numpy']}, opencv {m['opencv']}, aniposelib {m['aniposelib'] or 'not installed'}, "
        f"jax {m['jax'] or '-'}, numba {m['numba'] or '-'}; {m['date']}"
    )
    s = report["settings"]
    console.print(
        f"seed {s['seed']}; {s['views']} views, {s['points']} points, heatmaps {tuple(s['heatmap'])}, "
        f"2D noise {s['noise_px']:g} px, outliers {s['outlier_fraction']:.0%} (handstream RANSAC threshold "
        f"{s['threshold_px']:g} px), {s['frames']} frames"
        + ("; QUICK RUN (smoke test, not a measurement)" if s["quick"] else "")
    )
    table = Table(title="handstream kernels vs peers, per frame (median and p90 of single calls, microseconds)")
    for col, justify in (
        ("operation", "left"),
        ("handstream us\nmedian / p90", "right"),
        ("peer", "left"),
        ("peer us\nmedian / p90", "right"),
        ("speed-up\npeer/hs", "right"),
        ("error\nhandstream", "right"),
        ("error\npeer", "right"),
        ("target\nratio", "right"),
        ("met", "center"),
    ):
        table.add_column(col, justify=justify)
    for r in report["results"].values():
        hs, peer = r["handstream"], r["peer"]
        met = "-" if r["met"] is None else ("[green]yes[/]" if r["met"] else "[red]no[/]")
        table.add_row(
            r["operation"],
            f"{_fmt_us(hs['median_us'])} / {_fmt_us(hs['p90_us'])}",
            r["peer_name"] + ("" if peer is not None else " (skipped)"),
            "-" if peer is None else f"{_fmt_us(peer['median_us'])} / {_fmt_us(peer['p90_us'])}",
            "-" if r["ratio"] is None else f"{r['ratio']:,.1f}x",
            _fmt_err(hs["error"], r["error_unit"]),
            _fmt_err(peer["error"] if peer else None, r["error_unit"]),
            "-" if r["target_ratio"] is None else f">= {r['target_ratio']:g}x",
            met,
        )
    console.print(table)
    for note in report["notes"]:
        console.print(f"note: {note}")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    print(f"bench_ops: seed {args.seed}", flush=True)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    report = run(args, log)
    print_report(report)
    if args.json:
        records.write_json(report, args.json)  # NaN as null
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
