"""Exact ray casting of capsules through every pixel of a rig, in NumPy, within screen-space spans.

Legend: ``V`` views, ``C`` capsules, ``N`` (pixel, capsule) pairs tested, ``M`` pixels hit.

The ray of each pixel (its centre, through the lens distortion) is fixed by the calibration, so
:class:`RayGrid` computes it once per camera with :meth:`Camera.normalize` (the model that undistorts
the pipeline's detections): intersecting those rays with capsules gives exact depth and normals, and
distortion comes for free.

A capsule is tested only on the pixels that can see it:

* normally, the pixels of its projected *stadium*: the 2D capsule around the projections of its ends,
  as wide as the largest projected radius (8 points around each of the ends' and the middle's
  silhouettes) plus the bow of the projected axis (distortion bends it), plus a pixel; row by row.
  Fisheye projections are extended beyond 90 degrees for this (:func:`project_any`);
* when the capsule comes very near a camera or reaches more than 5 degrees beyond the image's widest ray
  (an arm passing beside a wide-angle camera), a coarse grid of rays (16x16-pixel cells) is tested
  against it instead: a bounding cone first, then the capsule grown by a cell's angular size; the cells
  it may touch are tested pixel by pixel.

All capsules of all views go through one vectorised batch, and a z-buffer (``np.minimum.at`` on
``depth bits << 8 | capsule``) keeps the nearest hit per pixel. Big surfaces without labels (the arms)
can be cast at half resolution: one ray per 2x2 block (``cast(..., half=mask)``, :meth:`RayGrid.blocks`).
Depth is the distance along the pixel's ray (metres), not the camera-frame ``z``.
``RayGrid.cast(..., full=True)`` tests every pixel, for tests.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from handstream.geometry import Camera, Rig

MAX_CAPSULES = 255
"""At most this many capsules in one :meth:`RayGrid.cast` (the capsule id takes 8 bits of the z-buffer key)."""

EMPTY_KEY = np.iinfo(np.int64).max
CELL = 16
"""Side of the coarse cells (pixels) used for capsules near a camera plane."""

_SPAN_MARGIN_PX = 1.0
_RADIUS_GROWTH = 1.1  # projected radius safety factor (8 samples around a sphere's silhouette ellipse)
_NEAR_FACTOR = 3.0  # a camera closer than this many radii to a capsule's axis: coarse path

_RAY_CACHE: dict[tuple, tuple] = {}


def _camera_key(cam: Camera) -> tuple:
    return (cam.size, cam.model, cam.K.tobytes(), cam.dist.tobytes())


_FISHEYE_MAX_ANGLE = np.deg2rad(150.0)
_ANGLE_MARGIN = np.deg2rad(5.0)  # stadiums up to this much beyond the image's widest ray; farther: coarse cells


def _fisheye_theta_d(theta: np.ndarray, k: np.ndarray) -> np.ndarray:
    t2 = theta * theta
    return theta * (1 + t2 * (k[0] + t2 * (k[1] + t2 * (k[2] + t2 * k[3]))))


def project_any(cam: Camera, points: np.ndarray) -> np.ndarray:
    """Camera-frame points (..., 3) -> distorted pixels (..., 2), also beyond 90 degrees for fisheye lenses.

    Equal to ``cam.distort(x / z, y / z)`` in front of the camera. A fisheye projection depends only on
    the angle from the axis (``theta = atan2(|xy|, z)``), so it extends to points beside and behind the
    camera (their pixels fall outside the image); other models give NaN for ``z <= 0``. Only for
    screen-space bounds, within :func:`_max_angle`.
    """
    p = np.asarray(points, dtype=np.float64)
    if cam.model != "fisheye":
        z = p[..., 2:3]
        with np.errstate(divide="ignore", invalid="ignore"):
            xy = np.where(z > 1e-9, p[..., :2] / z, np.nan)
        return cam.distort(xy)
    rho = np.hypot(p[..., 0], p[..., 1])
    theta = np.arctan2(rho, p[..., 2])
    scale = _fisheye_theta_d(theta, cam.dist) / np.maximum(rho, 1e-12)
    xd, yd = p[..., 0] * scale, p[..., 1] * scale
    K = cam.K
    return np.stack([K[0, 0] * xd + K[0, 1] * yd + K[0, 2], K[1, 1] * yd + K[1, 2]], axis=-1)


def _max_angle(cam: Camera, image_angle: float) -> float:
    """Largest off-axis angle (radians) for which the span logic projects points (beyond: coarse cells).

    The image's widest ray plus 5 degrees, but never beyond where :func:`project_any` stops being
    monotone outwards (sampled along 8 azimuths), nor beyond 89.5 degrees (150 for fisheye lenses).
    """
    cap = _FISHEYE_MAX_ANGLE if cam.model == "fisheye" else np.deg2rad(89.5)
    theta = np.linspace(0.0, cap, 3000)
    limit = theta[-1]
    for phi in np.linspace(0, 2 * np.pi, 8, endpoint=False):
        dirs = np.stack([np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi), np.cos(theta)], axis=1)
        uv = project_any(cam, dirs) - cam.K[:2, 2]
        radius = np.hypot(uv[:, 0], uv[:, 1])
        bad = ~(np.diff(radius) > 0) | ~np.isfinite(radius[1:])
        if bad.any():
            limit = min(limit, theta[int(np.argmax(bad))] * 0.98)
    return float(min(limit, image_angle + _ANGLE_MARGIN))


def pixel_rays(cam: Camera) -> tuple[np.ndarray, np.ndarray, float]:
    """Unit ray of every pixel centre in the camera frame, where it exists, and the valid projection angle.

    Returns:
        rays (H*W, 3) float64 (row-major pixel order, ``index = y * W + x``; zero where undefined),
        valid (H*W,) bool (False beyond the lens model's valid range), and the largest off-axis angle
        (radians) at which ``cam.distort`` is trusted (see :func:`_max_angle`). Cached per intrinsics.
    """
    key = _camera_key(cam)
    if key not in _RAY_CACHE:
        ys, xs = np.mgrid[0 : cam.height, 0 : cam.width]
        pixels = np.stack([xs.ravel(), ys.ravel()], axis=-1).astype(np.float64)
        xy = cam.normalize(pixels)
        valid = np.isfinite(xy).all(axis=1)
        rays = np.zeros((len(pixels), 3))
        rays[valid, :2] = xy[valid]
        rays[valid, 2] = 1.0
        rays[valid] /= np.linalg.norm(rays[valid], axis=1, keepdims=True)
        rays.flags.writeable = False
        valid.flags.writeable = False
        image_angle = float(np.arccos(np.clip(rays[valid, 2].min(), -1, 1))) if valid.any() else 0.0
        _RAY_CACHE[key] = (rays, valid, _max_angle(cam, image_angle))
        if len(_RAY_CACHE) > 32:
            _RAY_CACHE.pop(next(iter(_RAY_CACHE)))
    return _RAY_CACHE[key]


@dataclass
class Hits:
    """The visible surface of one :meth:`RayGrid.cast`: one entry per pixel hit, grouped by view.

    Attributes:
        pixel: (M,) int64 global pixel index (``RayGrid.offsets[v] + y * W + x``).
        depth: (M,) float32 distance along the ray, metres.
        capsule: (M,) int16 capsule index.
        view_bounds: (V + 1,) the hits of view ``v`` are ``[view_bounds[v], view_bounds[v + 1])``.
        tested: number of (pixel, capsule) pairs tested (a cost figure).
        coarse: number of (view, capsule) pairs that needed the coarse path.
    """

    pixel: np.ndarray
    depth: np.ndarray
    capsule: np.ndarray
    view_bounds: np.ndarray
    tested: int
    coarse: int = 0


@dataclass
class _Coarse:
    """Coarse cells of one view: centre rays, cell origins, angular half-size."""

    dx: np.ndarray
    dy: np.ndarray
    dz: np.ndarray
    x0: np.ndarray
    y0: np.ndarray
    always: np.ndarray  # cells with valid pixels but no valid centre ray: always tested
    alpha: float


def _capsule_depth(dx, dy, dz, oax, oay, oaz, bax, bay, baz, baba, baoa, cyl_c, ca, cb):
    """Nearest positive hit distance of unit rays (from the origin) with capsules; inf for a miss.

    The capsule constants (all per pair, broadcast with the rays): ``oa = -A``, ``ba = B - A``,
    ``baba = ba.ba``, ``baoa = ba.oa``, ``cyl_c = baba (oa.oa) - baoa^2 - r^2 baba``,
    ``ca = oa.oa - r^2``, ``cb = ob.ob - r^2`` (``ob = -B``). Works in the arrays' dtype.
    """
    bard = bax * dx + bay * dy + baz * dz
    rdoa = oax * dx + oay * dy + oaz * dz
    qa = np.maximum(baba - bard * bard, 1e-12 * baba)
    qb = baba * rdoa - baoa * bard
    h = qb * qb - qa * cyl_c
    return _capsule_hit(h, qa, qb, bard, rdoa, baba, baoa, ca, cb)


def _capsule_hit(h, qa, qb, bard, rdoa, baba, baoa, ca, cb):
    """Second half of :func:`_capsule_depth` (from the infinite-cylinder discriminant ``h`` on)."""
    inf = np.asarray(np.inf, dtype=h.dtype)
    with np.errstate(invalid="ignore"):
        t_body = (-qb - np.sqrt(h)) / qa
        yy = baoa + t_body * bard
        t = np.where((h >= 0) & (yy > 0) & (yy < baba) & (t_body > 0), t_body, inf)
        # the end spheres: nearest positive hit of each (both are needed when the camera lies on the
        # axis' extension, i.e. inside the infinite cylinder)
        for bc, cc in ((rdoa, ca), (rdoa - bard, cb)):
            hc = bc * bc - cc
            tc = -bc - np.sqrt(np.maximum(hc, 0))
            t = np.where((hc >= 0) & (tc > 0) & (tc < t), tc, t)
    return t


def _capsule_constants(a_cam: np.ndarray, b_cam: np.ndarray, r: np.ndarray) -> np.ndarray:
    """(11, G) constants of :func:`_capsule_depth` for capsules (G, 3), (G, 3), radii (G,), float64."""
    A, BA = a_cam, b_cam - a_cam
    r2 = r * r
    baba = np.sum(BA * BA, axis=1)
    baoa = -np.sum(BA * A, axis=1)
    oaoa = np.sum(A * A, axis=1)
    obob = np.sum(b_cam * b_cam, axis=1)
    cyl_c = baba * oaoa - baoa * baoa - r2 * baba
    return np.stack(
        [-A[:, 0], -A[:, 1], -A[:, 2], BA[:, 0], BA[:, 1], BA[:, 2], baba, baoa, cyl_c, oaoa - r2, obob - r2]
    )


def _segment_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(G,) distance from the origin to segments a (G, 3) - b (G, 3)."""
    ba = b - a
    s = np.clip(-np.sum(a * ba, axis=1) / np.maximum(np.sum(ba * ba, axis=1), 1e-18), 0.0, 1.0)
    return np.linalg.norm(a + s[:, None] * ba, axis=1)


class RayGrid:
    """Pixel rays of every camera of a rig, and a capsule ray caster over them.

    Args:
        rig: the cameras. Rays are computed once per distinct intrinsics (cached; ~0.1 s per
            640x480 fisheye camera).

    Attributes:
        rig: the cameras.
        offsets: (V + 1,) start of each view in the global pixel index.
        dx, dy, dz: (sum H*W,) float32 ray components in each camera's frame (zero where undefined).
        valid: (sum H*W,) bool.
    """

    def __init__(self, rig: Rig, cell: int = CELL):
        self.rig = rig
        self.cell = int(cell)
        sizes = [cam.width * cam.height for cam in rig]
        self.offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        rays = [pixel_rays(cam) for cam in rig]
        all_rays = np.concatenate([r for r, _, _ in rays]).astype(np.float32)
        self.dx = np.ascontiguousarray(all_rays[:, 0])
        self.dy = np.ascontiguousarray(all_rays[:, 1])
        self.dz = np.ascontiguousarray(all_rays[:, 2])
        self.valid = np.concatenate([v for _, v, _ in rays])
        self._cos_ok = np.array([np.cos(angle) for _, _, angle in rays])
        self._widths = np.array([cam.width for cam in rig], dtype=np.int64)
        self._heights = np.array([cam.height for cam in rig], dtype=np.int64)
        self._R = np.stack([cam.R for cam in rig])
        self._t = np.stack([cam.t for cam in rig])
        self._zbuf = np.full(2 * int(self.offsets[-1]), EMPTY_KEY, dtype=np.int64)  # full- and half-resolution
        # per pixel: its row's width, and whether it has a right (bit 0) and a lower (bit 1) neighbour
        self._row_width = np.repeat(self._widths, self._widths * self._heights)
        edges = []
        for cam in rig:
            e = np.zeros((cam.height, cam.width), np.uint8)
            e[:, :-1] |= 1
            e[:-1, :] |= 2
            edges.append(e.ravel())
        self._edge = np.concatenate(edges)
        self._coarse = [self._coarse_cells(v, r, valid) for v, (r, valid, _) in enumerate(rays)]

    def _coarse_cells(self, v: int, rays: np.ndarray, valid: np.ndarray) -> _Coarse:
        W, H = int(self._widths[v]), int(self._heights[v])
        grid = rays.reshape(H, W, 3)
        ok = valid.reshape(H, W)
        y0, x0 = np.mgrid[0 : H : self.cell, 0 : W : self.cell]
        y0, x0 = y0.ravel(), x0.ravel()
        cy = np.minimum(y0 + self.cell // 2, H - 1)
        cx = np.minimum(x0 + self.cell // 2, W - 1)
        centre = grid[cy, cx]
        centre_ok = ok[cy, cx]
        alpha = 0.0
        any_valid = np.zeros(len(y0), dtype=bool)
        for dy_ in (0, self.cell - 1):
            for dx_ in (0, self.cell - 1):
                yy = np.minimum(y0 + dy_, H - 1)
                xx = np.minimum(x0 + dx_, W - 1)
                corner_ok = ok[yy, xx]
                any_valid |= corner_ok
                both = corner_ok & centre_ok
                if both.any():
                    cosang = np.sum(grid[yy, xx][both] * centre[both], axis=1)
                    alpha = max(alpha, float(np.arccos(np.clip(cosang.min(), -1.0, 1.0))))
        c32 = centre.astype(np.float32)
        return _Coarse(
            c32[:, 0].copy(), c32[:, 1].copy(), c32[:, 2].copy(), x0, y0, any_valid & ~centre_ok, alpha * 1.1
        )

    @property
    def num_pixels(self) -> int:
        """Total pixels of all views."""
        return int(self.offsets[-1])

    def to_camera(self, points: np.ndarray) -> np.ndarray:
        """(..., 3) rig-frame points -> (V, ..., 3) camera-frame points of every view."""
        p = np.asarray(points, dtype=np.float64)
        shift = self._t.reshape((len(self.rig),) + (1,) * (p.ndim - 1) + (3,))
        return np.einsum("vij,...j->v...i", self._R, p) + shift

    # --- spans -------------------------------------------------------------------------------------

    def _stadium(self, A: np.ndarray, B: np.ndarray, r: np.ndarray, view: np.ndarray):
        """Projected stadium of capsules (G, 3) in their view's camera frame.

        Returns (pa, pb, rho, ok): projected ends (G, 2), stadium radius (G,) in pixels, and whether the
        capsule could be projected (False: use the coarse path).
        """
        M = 0.5 * (A + B)
        P = np.stack([A, B, M], axis=1)  # (G, 3, 3)
        n = np.sqrt(np.sum(P * P, axis=-1))  # (G, 3)
        u = P / np.maximum(n, 1e-9)[..., None]
        # two directions across each line of sight: e1 = u x (0, 1, 0), e2 = u x e1
        e1 = np.stack([-u[..., 2], np.zeros_like(n), u[..., 0]], axis=-1)
        e1 /= np.maximum(np.sqrt(np.sum(e1 * e1, axis=-1)), 1e-9)[..., None]
        e2 = np.stack(
            [
                u[..., 1] * e1[..., 2] - u[..., 2] * e1[..., 1],
                u[..., 2] * e1[..., 0] - u[..., 0] * e1[..., 2],
                u[..., 0] * e1[..., 1] - u[..., 1] * e1[..., 0],
            ],
            axis=-1,
        )
        grow = (r[:, None] * _RADIUS_GROWTH * n / np.sqrt(np.maximum(n * n - r[:, None] ** 2, 1e-12)))[..., None]
        c45 = np.float64(np.sqrt(0.5))
        d1, d2 = c45 * (e1 + e2), c45 * (e1 - e2)
        ring = np.stack([P + grow * e for e in (e1, -e1, e2, -e2, d1, -d1, d2, -d2)], axis=2)  # (G, 3, 8, 3)
        pts = np.concatenate([P, ring.reshape(len(A), 24, 3)], axis=1)  # (G, 27, 3)
        cosang = pts[..., 2] / np.maximum(np.sqrt(np.sum(pts * pts, axis=-1)), 1e-12)
        ok = np.all(cosang >= self._cos_ok[view][:, None], axis=1)
        ok &= _segment_distance(A, B) > _NEAR_FACTOR * r
        uv = np.full(pts.shape[:2] + (2,), np.nan)
        for v, cam in enumerate(self.rig):
            sel = np.flatnonzero((view == v) & ok)
            if sel.size:
                uv[sel] = project_any(cam, pts[sel])
        pa, pb, pm = uv[:, 0], uv[:, 1], uv[:, 2]
        spread = uv[:, 3:].reshape(len(A), 3, 8, 2) - uv[:, :3, None, :]
        rad = np.sqrt(np.max(np.sum(spread * spread, axis=-1), axis=-1))  # (G, 3) projected radii
        rad = (rad[:, 0], rad[:, 1], rad[:, 2])
        d = pb - pa
        dd = np.maximum(np.sum(d * d, axis=1), 1e-12)
        s = np.clip(np.sum((pm - pa) * d, axis=1) / dd, 0.0, 1.0)
        bow = np.linalg.norm(pm - (pa + s[:, None] * d), axis=1)
        rho = np.maximum(np.maximum(rad[0], rad[1]), rad[2]) + bow + _SPAN_MARGIN_PX
        ok &= np.isfinite(rho)
        return pa, pb, rho, ok

    def _stadium_rows(self, groups, view, pa, pb, rho):
        """Row spans (group, y, x0, x1) of the stadiums of ``groups``."""
        W = self._widths[view]
        H = self._heights[view]
        ymin = np.floor(np.minimum(pa[:, 1], pb[:, 1]) - rho)
        ymax = np.ceil(np.maximum(pa[:, 1], pb[:, 1]) + rho)
        xmin = np.floor(np.minimum(pa[:, 0], pb[:, 0]) - rho)
        xmax = np.ceil(np.maximum(pa[:, 0], pb[:, 0]) + rho)
        on = (xmax >= 0) & (xmin <= W - 1) & (ymax >= 0) & (ymin <= H - 1)
        y0 = np.clip(ymin, 0, H - 1).astype(np.int64)
        y1 = np.clip(ymax, 0, H - 1).astype(np.int64)
        rows_per = np.where(on, y1 - y0 + 1, 0)
        idx = np.repeat(np.arange(len(groups)), rows_per)
        first = np.cumsum(rows_per) - rows_per
        y = np.arange(len(idx), dtype=np.int64) - np.repeat(first, rows_per) + y0[idx]
        yf = y.astype(np.float64)
        ax, ay, bx, by, rr = pa[idx, 0], pa[idx, 1], pb[idx, 0], pb[idx, 1], rho[idx]
        # x-interval of the stadium on each row: the union of the two end discs and the band between
        lo = np.full(len(y), np.inf)
        hi = np.full(len(y), -np.inf)
        for cx, cy in ((ax, ay), (bx, by)):
            h2 = rr * rr - (yf - cy) ** 2
            inside = h2 >= 0
            half = np.sqrt(np.where(inside, h2, 0.0))
            lo = np.where(inside, np.minimum(lo, cx - half), lo)
            hi = np.where(inside, np.maximum(hi, cx + half), hi)
        dx, dy = bx - ax, by - ay
        length = np.sqrt(dx * dx + dy * dy)
        safe = np.maximum(length, 1e-12)
        ux, uy = dx / safe, dy / safe
        with np.errstate(divide="ignore", invalid="ignore"):
            # perpendicular slab: |-uy (x - ax) + ux (y - ay)| <= rr
            k = ux * (yf - ay)
            flat = np.abs(uy) < 1e-9
            p1, p2 = (k - rr) / uy, (k + rr) / uy
            p_lo = np.where(flat, -np.inf, ax + np.minimum(p1, p2))
            p_hi = np.where(flat, np.inf, ax + np.maximum(p1, p2))
            flat_out = flat & (np.abs(k) > rr)
            # along the axis: 0 <= ux (x - ax) + uy (y - ay) <= length
            m = uy * (yf - ay)
            vert = np.abs(ux) < 1e-9
            q1, q2 = -m / ux, (length - m) / ux
            q_lo = np.where(vert, -np.inf, ax + np.minimum(q1, q2))
            q_hi = np.where(vert, np.inf, ax + np.maximum(q1, q2))
            vert_out = vert & ((m < 0) | (m > length))
        b_lo = np.maximum(p_lo, q_lo)
        b_hi = np.minimum(p_hi, q_hi)
        band = (b_lo <= b_hi) & ~flat_out & ~vert_out
        lo = np.where(band, np.minimum(lo, b_lo), lo)
        hi = np.where(band, np.maximum(hi, b_hi), hi)
        Wr = W[idx]
        x0 = np.clip(np.ceil(np.nan_to_num(lo, posinf=1e9, neginf=-1e9)), 0, Wr).astype(np.int64)
        x1 = np.clip(np.floor(np.nan_to_num(hi, posinf=-1e9, neginf=-1e9)), -1, Wr - 1).astype(np.int64)
        return groups[idx], y, x0, x1

    def _coarse_rows(self, groups, view, A, B, r):
        """Row spans of the coarse cells that capsules (near a camera plane) may touch."""
        out_g, out_y, out_x0, out_x1 = [], [], [], []
        for v in np.unique(view):
            sel = np.flatnonzero(view == v)
            cells = self._coarse[v]
            W, H = int(self._widths[v]), int(self._heights[v])
            reach = np.maximum(np.linalg.norm(A[sel], axis=1), np.linalg.norm(B[sel], axis=1)) + r[sel]
            grown = r[sel] + reach * np.sin(min(cells.alpha, np.pi / 4)) + 1e-3
            inside = _segment_distance(A[sel], B[sel]) <= grown
            # first a bounding cone per capsule (cheap), then the grown capsule itself on the cells inside it
            mid = 0.5 * (A[sel] + B[sel])
            dist = np.linalg.norm(mid, axis=1)
            bound = 0.5 * np.linalg.norm(B[sel] - A[sel], axis=1) + grown
            ratio = bound / np.maximum(dist, 1e-12)
            cos_cone = np.where(ratio < 1.0, np.sqrt(np.maximum(1.0 - ratio**2, 0.0)), -1.0).astype(np.float32)
            axis = (mid / np.maximum(dist, 1e-12)[:, None]).astype(np.float32)
            cone = axis[:, 0:1] * cells.dx[None] + axis[:, 1:2] * cells.dy[None] + axis[:, 2:3] * cells.dz[None]
            in_cone = cone >= cos_cone[:, None]
            gi, ci = np.nonzero(in_cone)
            const = _capsule_constants(A[sel], B[sel], grown).astype(np.float32)[:, gi]  # (11, candidates)
            t = _capsule_depth(cells.dx[ci], cells.dy[ci], cells.dz[ci], *const)
            touch = np.isfinite(t) | cells.always[ci] | inside[gi]
            gi, ci = gi[touch], ci[touch]
            extra_g, extra_c = np.nonzero(cells.always[None] & ~in_cone)
            if extra_g.size:  # cells without a valid centre ray are always tested
                gi, ci = np.concatenate([gi, extra_g]), np.concatenate([ci, extra_c])
            order = np.lexsort((ci, gi))
            gi, ci = gi[order], ci[order]
            rows = np.arange(self.cell)
            y = (cells.y0[ci][:, None] + rows[None]).ravel()
            keep = y < H
            gg = np.repeat(groups[sel][gi], self.cell)[keep]
            x0 = np.repeat(cells.x0[ci], self.cell)[keep]
            out_g.append(gg)
            out_y.append(y[keep])
            out_x0.append(x0)
            out_x1.append(np.minimum(x0 + self.cell - 1, W - 1))
        return np.concatenate(out_g), np.concatenate(out_y), np.concatenate(out_x0), np.concatenate(out_x1)

    def _spans(self, a_cam: np.ndarray, b_cam: np.ndarray, radius: np.ndarray, full: bool):
        """Row spans (group, y, x0, x1 inclusive) to test, ordered by group (``group = view * C + capsule``)."""
        V, C = a_cam.shape[:2]
        groups = np.arange(V * C)
        view = groups // C
        r = np.tile(radius, V)
        A = a_cam.reshape(-1, 3)
        B = b_cam.reshape(-1, 3)
        behind = (A[:, 2] < -r) & (B[:, 2] < -r)
        if full:
            H = np.where(behind, 0, self._heights[view])
            g = np.repeat(groups, H)
            first = np.cumsum(H) - H
            y = np.arange(len(g)) - np.repeat(first, H)
            return g, y, np.zeros_like(y), self._widths[g // C] - 1, 0
        live = np.flatnonzero(~behind)
        pa, pb, rho, ok = self._stadium(A[live], B[live], r[live], view[live])
        fine = self._stadium_rows(live[ok], view[live[ok]], pa[ok], pb[ok], rho[ok])
        near = live[~ok]
        if near.size == 0:
            return (*fine, 0)
        coarse = self._coarse_rows(near, view[near], A[near], B[near], r[near])
        parts = [np.concatenate([f, c]) for f, c in zip(fine, coarse, strict=True)]
        order = np.argsort(parts[0], kind="stable")
        return (*[p[order] for p in parts], int(near.size))

    # --- casting -----------------------------------------------------------------------------------

    def cast(
        self,
        a: np.ndarray,
        b: np.ndarray,
        radius: np.ndarray,
        *,
        half: np.ndarray | None = None,
        full: bool = False,
    ) -> Hits:
        """The nearest capsule surface on every pixel of every view.

        Args:
            a, b: (C, 3) capsule axis end points, rig frame (metres).
            radius: (C,) capsule radii.
            half: (C,) bool, capsules cast at half resolution: for them only the top-left pixel of each
                2x2 block (even x and y) is tested and returned, in a z-buffer of their own (they are
                depth tested against the others afterwards, per pixel, with :meth:`blocks`). For big
                surfaces without labels, such as arms: a quarter of the cost, silhouettes on a 2-pixel grid.
            full: test every pixel (or block) of every view (slow; for tests of the span logic).
        Returns:
            :class:`Hits`, ordered by view, then by capsule within a view.
        """
        a = np.asarray(a, dtype=np.float64)
        b = np.asarray(b, dtype=np.float64)
        radius = np.asarray(radius, dtype=np.float64)
        C = len(a)
        V = len(self.rig)
        if C > MAX_CAPSULES:
            raise ValueError(f"cast: at most {MAX_CAPSULES} capsules, got {C}")
        if C == 0:
            empty = np.zeros(0, np.int64)
            return Hits(empty, np.zeros(0, np.float32), np.zeros(0, np.int16), np.zeros(V + 1, np.int64), 0)
        a_cam = self.to_camera(a)  # (V, C, 3)
        b_cam = self.to_camera(b)
        row_group, y, x0, x1, n_coarse = self._spans(a_cam, b_cam, radius, full)
        halved = half is not None and bool(np.any(half))
        if halved:
            half = np.asarray(half, dtype=bool)
            row_half = half[row_group % C]
            keep = ~row_half | (y % 2 == 0)  # blocks: even rows and even columns only
            row_group, y, x0, x1, row_half = row_group[keep], y[keep], x0[keep], x1[keep], row_half[keep]
            step = row_half + 1
            x0 = x0 + row_half * (x0 % 2)
            counts = np.where(x1 >= x0, (x1 - x0) // step + 1, 0)
        else:
            counts = np.maximum(x1 - x0 + 1, 0)
        n = int(counts.sum())
        row_view = row_group // C
        start = self.offsets[row_view] + y * self._widths[row_view] + x0
        first = np.cumsum(counts) - counts
        if halved:
            local = np.arange(n, dtype=np.int64) - np.repeat(first, counts)
            pix = np.repeat(start, counts) + local * np.repeat(step, counts)
        else:
            pix = np.arange(n, dtype=np.int64) + np.repeat(start - first, counts)

        # per-group constants, repeated along each row span (float32 from here on)
        const = _capsule_constants(a_cam.reshape(-1, 3), b_cam.reshape(-1, 3), np.tile(radius, V)).astype(np.float32)
        per_row = np.concatenate([const[:, row_group], row_group[None].astype(np.float32)])
        g = np.repeat(per_row, counts, axis=1)  # (12, N)
        oax, oay, oaz, bax, bay, baz, baba, baoa, cyl_c, ca, cb, grp_f = g
        dx, dy, dz = self.dx.take(pix), self.dy.take(pix), self.dz.take(pix)
        bard = bax * dx + bay * dy + baz * dz
        rdoa = oax * dx + oay * dy + oaz * dz
        qa = np.maximum(baba - bard * bard, np.float32(1e-12) * baba)
        qb = baba * rdoa - baoa * bard
        h = qb * qb - qa * cyl_c
        sel = np.flatnonzero(h >= 0)  # rays that meet the infinite cylinder (the end spheres lie inside it)
        t = _capsule_hit(h[sel], qa[sel], qb[sel], bard[sel], rdoa[sel], baba[sel], baoa[sel], ca[sel], cb[sel])
        ok = np.flatnonzero(t < np.inf)
        sel = sel[ok]
        pix, t = pix[sel], t[ok]
        grp = grp_f[sel].astype(np.int64)
        cap = grp % C
        key = (t.view(np.int32).astype(np.int64) << 8) | cap
        # half-resolution capsules have their own z-buffer (the second half of the buffer)
        slot = pix + half[cap] * self.num_pixels if halved else pix
        zbuf = self._zbuf
        np.minimum.at(zbuf, slot, key)
        win = np.flatnonzero(zbuf.take(slot) == key)
        zbuf[slot] = EMPTY_KEY  # leave the buffer clean for the next call
        pix, t, cap, grp = pix[win], t[win], cap[win], grp[win]
        view_bounds = np.searchsorted(grp // C, np.arange(V + 1), side="left").astype(np.int64)
        return Hits(pix, t, cap.astype(np.int16), view_bounds, n, n_coarse)

    def blocks(self, pixel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The 2x2 blocks of half-resolution hits: pixels (M, 4) (top-left, right, below, below-right)
        and (M, 4) bool, False where the block leaves the image."""
        edge = self._edge.take(pixel)
        width = self._row_width.take(pixel)
        pix = pixel[:, None] + np.stack([np.zeros_like(width), np.ones_like(width), width, width + 1], axis=1)
        right = (edge & 1).astype(bool)
        below = (edge & 2).astype(bool)
        valid = np.stack([np.ones_like(right), right, below, right & below], axis=1)
        return pix, valid

    def normals(
        self, hits: Hits, a: np.ndarray, b: np.ndarray, radius: np.ndarray, rays: np.ndarray | None = None
    ) -> np.ndarray:
        """(M, 3) float32 unit surface normals at the hits, in each view's camera frame.

        ``rays``: the hits' rays (:meth:`rays` of ``hits.pixel``) when the caller has them already.
        """
        V = len(self.rig)
        a_cam = self.to_camera(a)
        b_cam = self.to_camera(b)
        C = len(a)
        # per (view, capsule): A, B - A, 1 / |B - A|^2, 1 / r
        A = a_cam.reshape(-1, 3)
        BA = (b_cam - a_cam).reshape(-1, 3)
        inv_len2 = 1.0 / np.maximum(np.sum(BA * BA, axis=1), 1e-18)
        inv_r = np.tile(1.0 / np.asarray(radius, dtype=np.float64), V)
        table = np.stack([A[:, 0], A[:, 1], A[:, 2], BA[:, 0], BA[:, 1], BA[:, 2], inv_len2, inv_r]).astype(np.float32)
        view = np.repeat(np.arange(V), np.diff(hits.view_bounds))
        ax, ay, az, bx, by, bz, il2, ir = table.take(view * C + hits.capsule, axis=1)
        t = hits.depth
        if rays is None:
            rays = self.rays(hits.pixel)
        px = rays[:, 0] * t - ax
        py = rays[:, 1] * t - ay
        pz = rays[:, 2] * t - az
        s = np.clip((px * bx + py * by + pz * bz) * il2, 0.0, 1.0)
        nx = (px - s * bx) * ir
        ny = (py - s * by) * ir
        nz = (pz - s * bz) * ir
        norm = np.sqrt(nx * nx + ny * ny + nz * nz)
        inv = np.float32(1.0) / np.maximum(norm, np.float32(1e-6))
        return np.stack([nx * inv, ny * inv, nz * inv], axis=1)

    def rays(self, pixel: np.ndarray) -> np.ndarray:
        """(M, 3) float32 camera-frame rays of global pixel indices."""
        return np.stack([self.dx.take(pixel), self.dy.take(pixel), self.dz.take(pixel)], axis=1)
