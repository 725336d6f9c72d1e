"""Perspective crop cameras (after UmeTrack): a virtual pinhole camera looking at one hand.

Legend: ``N`` crops, ``K`` joints (21), ``(W, H)`` crop size in pixels.

A crop camera sits at the real camera's centre, turned so its optical axis points at the hand and rolled
so the hand is upright (wrist at the bottom, middle knuckle above it), with a focal length that makes the
hand fill the crop with a margin. The frame is resampled into it through the real camera's lens model
(:func:`handstream.ops.resample_crops`), so the crop is a distortion-free pinhole image whatever the lens:
one crop network serves pinhole, OpenCV and fisheye cameras, and the keypoints it finds are exact rays of
a pinhole camera, triangulated with :attr:`CropCamera.projection_matrix` without any undistortion.

Frames: ``X_cam = rotation @ X_crop`` (``rotation``: crop frame -> real camera frame; both x right, y down,
z forward). Crop pixels: OpenCV convention (pixel centres at integers), ``u = f x/z + cx``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from handstream.errors import HandstreamError
from handstream.geometry.camera import Camera

LENS_CODES = {"pinhole": 0, "opencv": 1, "fisheye": 2}
"""The lens model codes of :func:`handstream.ops.resample_crops`'s ``lens`` rows."""


def lens_row(camera: Camera, level_scale: float = 1.0) -> np.ndarray:
    """(14,) float64 lens description of ``camera`` for :func:`handstream.ops.resample_crops`:
    ``[model, fx, fy, cx, cy, skew, d0..d7]`` in the pixels of an image ``level_scale`` times the frame's size
    (a pyramid level: level px = (frame px + 0.5) * level_scale - 0.5)."""
    s = float(level_scale)
    K = camera.K
    row = np.zeros(14, np.float64)
    row[0] = LENS_CODES[camera.model]
    row[1], row[2] = K[0, 0] * s, K[1, 1] * s
    row[3], row[4] = (K[0, 2] + 0.5) * s - 0.5, (K[1, 2] + 0.5) * s - 0.5
    row[5] = K[0, 1] * s
    row[6 : 6 + len(camera.dist)] = camera.dist
    return row


def _unit(v: np.ndarray) -> np.ndarray | None:
    n = float(np.linalg.norm(v))
    return v / n if n > 1e-12 and np.isfinite(n) else None


def look_at_rotation(forward: np.ndarray, down: np.ndarray | None) -> np.ndarray:
    """(3, 3) rotation crop frame -> camera frame whose z axis is ``forward`` (camera frame) and whose y axis
    (image down) is the part of ``down`` orthogonal to it; when ``down`` is None or parallel to ``forward``,
    the camera's own y axis is used, then its x axis."""
    z = _unit(np.asarray(forward, np.float64))
    if z is None:
        raise HandstreamError("crop camera: the look direction is zero or not finite")
    for d in (down, np.array([0.0, 1.0, 0.0]), np.array([1.0, 0.0, 0.0])):
        if d is None:
            continue
        d = np.asarray(d, np.float64)
        y = _unit(d - (d @ z) * z)
        if y is not None:
            break
    x = np.cross(y, z)
    return np.stack([x, y, z], axis=1)


def _upright(rot: np.ndarray, pair: np.ndarray) -> np.ndarray:
    """``rot`` rolled about its optical axis so that ``pair[0]`` (the wrist, camera frame) appears straight below
    ``pair[1]`` (the middle knuckle) in the crop image; unchanged when either is unknown or behind."""
    if not np.isfinite(pair).all():
        return rot
    q = pair @ rot
    if not (q[:, 2] > 0).all():
        return rot
    d = q[0, :2] / q[0, 2] - q[1, :2] / q[1, 2]
    if not np.hypot(*d) > 1e-12:
        return rot
    a = np.arctan2(d[0], d[1])  # roll that turns d into (0, +|d|): image down
    c, s = np.cos(a), np.sin(a)
    return rot @ np.array([[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]])


@dataclass(frozen=True, eq=False)
class CropCamera:
    """A virtual pinhole camera at ``camera``'s centre.

    Attributes:
        camera: the real camera whose frame is resampled.
        rotation: (3, 3) float64, crop frame -> real camera frame.
        focal: crop focal length, crop pixels (square pixels, no skew).
        size: (W, H) crop size, pixels; the principal point is the crop's centre ``((W-1)/2, (H-1)/2)``.
    """

    camera: Camera
    rotation: np.ndarray
    focal: float
    size: tuple[int, int]

    @property
    def center(self) -> np.ndarray:
        """(2,) principal point (crop pixels)."""
        return np.array([(self.size[0] - 1) / 2, (self.size[1] - 1) / 2])

    @property
    def K(self) -> np.ndarray:
        """(3, 3) crop intrinsics."""
        cx, cy = self.center
        return np.array([[self.focal, 0.0, cx], [0.0, self.focal, cy], [0.0, 0.0, 1.0]])

    @property
    def R(self) -> np.ndarray:
        """(3, 3) world -> crop frame rotation (``rotation.T @ camera.R``)."""
        return self.rotation.T @ self.camera.R

    @property
    def t(self) -> np.ndarray:
        """(3,) world -> crop frame translation (``rotation.T @ camera.t``)."""
        return self.rotation.T @ self.camera.t

    @property
    def projection_matrix(self) -> np.ndarray:
        """(3, 4) float64 ``K [R | t]``: world points -> crop pixels (exact: the crop is a pinhole image)."""
        return self.K @ np.hstack([self.R, self.t[:, None]])

    def project(self, points_3d: Any) -> np.ndarray:
        """(..., 3) world points -> (..., 2) crop pixels; NaN behind the crop camera."""
        X = np.asarray(points_3d, np.float64)
        c = X @ self.R.T + self.t
        with np.errstate(invalid="ignore", divide="ignore"):
            uv = c[..., :2] / c[..., 2:3] * self.focal + self.center
        uv[~(c[..., 2] > 0)] = np.nan
        return uv

    def rays(self, pixels: Any) -> np.ndarray:
        """(..., 2) crop pixels -> (..., 3) unit ray directions in the real camera's frame."""
        uv = np.asarray(pixels, np.float64)
        r = np.concatenate([(uv - self.center) / self.focal, np.ones(uv.shape[:-1] + (1,))], axis=-1)
        r = r @ self.rotation.T
        return r / np.linalg.norm(r, axis=-1, keepdims=True)

    def to_frame(self, pixels: Any) -> np.ndarray:
        """(..., 2) crop pixels -> (..., 2) distorted frame pixels of the real camera (NaN behind it)."""
        r = self.rays(pixels)
        out = np.full(r.shape[:-1] + (2,), np.nan)
        ok = r[..., 2] > 0
        out[ok] = self.camera.distort(r[ok][:, :2] / r[ok][:, 2:3])
        return out

    def ray_angles(self, stride: int) -> np.ndarray:
        """(2, h, w) float32 KPE input of the crop network: ``atan(x/z)``, ``atan(y/z)`` of each heatmap cell
        centre's ray in the real camera frame (as :func:`handstream.models.kpe.ray_angles` gives for a window of
        the frame), ``h, w = ceil(H / stride), ceil(W / stride)``; 0 for rays at or behind the camera plane."""
        w, h = self.size
        gh, gw = -(-h // stride), -(-w // stride)
        ys, xs = np.mgrid[0:gh, 0:gw].astype(np.float64)
        px = np.stack([xs, ys], axis=-1) * stride + (stride - 1) / 2  # (cell + 0.5) * stride - 0.5
        r = self.rays(px)
        ok = r[..., 2] > 1e-9
        with np.errstate(invalid="ignore", divide="ignore"):
            a = np.arctan(r[..., :2] / r[..., 2:3])
        a[~ok] = 0.0
        return a.transpose(2, 0, 1).astype(np.float32)

    def lens_and_crop(self, level_scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        """``lens`` (14,) and ``crop`` (3,) rows of :func:`handstream.ops.resample_crops` for this crop."""
        cx, cy = self.center
        return lens_row(self.camera, level_scale), np.array([self.focal, cx, cy])

    def frame_scale(self) -> float:
        """Approximate frame pixels per crop pixel at the crop's centre (for choosing a pyramid level)."""
        c = self.center
        p = self.to_frame(np.array([c, c + [1.0, 0.0], c + [0.0, 1.0]]))
        if not np.isfinite(p).all():
            return 1.0
        return float(np.sqrt(abs(np.linalg.det(np.stack([p[1] - p[0], p[2] - p[0]])))))


def hand_crop(
    camera: Camera,
    joints: np.ndarray,
    size: tuple[int, int],
    margin: float,
    min_side_px: float = 0.0,
    up: tuple[int, int] = (0, 9),
) -> CropCamera | None:
    """The crop camera the engine uses for one hand in one view (the crop rule; training jitters around it).

    Args:
        camera: the real camera.
        joints: (K, 3) world points of the hand (metres; NaN = unknown; at least 3 finite).
        size: (W, H) crop size in pixels.
        margin: the crop's longer side is ``margin`` x the longer side of the box of the joints as the crop sees
            them (the crop network's manifest ``crop.margin``).
        min_side_px: the box side is at least this many pixels of the real camera's focal length (a far hand is
            not magnified beyond what the frame holds).
        up: (from, to) joint indices of the upright direction: wrist (0) -> middle knuckle (9) points up.
    Returns:
        the :class:`CropCamera`, or None when fewer than 3 joints are finite, the hand's centre is behind the
        camera, or a joint is behind the crop camera. A hand some of whose joints are behind the real camera's
        plane (at the side of a wide fisheye) still gets its crop: the crop looks at the hand, not along the
        camera's axis.
    """
    J = np.asarray(joints, np.float64)
    cam_pts = camera.world_to_camera(J[np.isfinite(J).all(axis=-1)])
    if len(cam_pts) < 3 or not cam_pts.mean(axis=0)[2] > 0:
        return None
    jc = camera.world_to_camera(J)
    down = None
    if np.isfinite(jc[list(up)]).all():
        down = jc[up[0]] - jc[up[1]]
    forward = cam_pts.mean(axis=0)
    rot = look_at_rotation(forward, down)
    for _ in range(3):  # centre the crop on the box of the joints as the crop sees them, and roll it upright
        rot = _upright(rot, jc[list(up)])
        q = cam_pts @ rot
        if not (q[:, 2] > 0).all():
            return None
        q = q[:, :2] / q[:, 2:3]
        mid = (q.min(axis=0) + q.max(axis=0)) / 2
        rot = look_at_rotation(rot @ np.array([mid[0], mid[1], 1.0]), rot[:, 1])
    rot = _upright(rot, jc[list(up)])
    q = cam_pts @ rot
    q = q[:, :2] / q[:, 2:3]
    side = float((q.max(axis=0) - q.min(axis=0)).max())
    f_cam = float(np.sqrt(abs(camera.K[0, 0] * camera.K[1, 1])))
    side = max(side, float(min_side_px) / f_cam)
    focal = max(size) / (float(margin) * max(side, 1e-6))
    return CropCamera(camera, rot, focal, (int(size[0]), int(size[1])))
