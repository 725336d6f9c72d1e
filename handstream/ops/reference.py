"""Slow, obvious NumPy references of the native kernels: the truth the C++ and CUDA code are tested against.

Every function here mirrors the contract and the arithmetic of the kernel of the same name
(``cpp/include/handstream/decode_math.h``, ``cpp/include/handstream/triangulate_math.h``,
``cpp/include/handstream/resample_math.h``), written for reading rather than speed. Shapes use the
legend of :mod:`handstream.ops`.
"""

from __future__ import annotations

import math

import numpy as np

REFINE_CODES = {None: 0, "none": 0, "quadratic": 1, "dark": 2}
MAX_DARK_RADIUS = 15


# ---------------------------------------------------------------------------------------------------
# decode_heatmaps
# ---------------------------------------------------------------------------------------------------
def dark_radius(sigma: float) -> int:
    """Half-width of the DARK blur kernel: ceil(2.5 sigma), in [1, 15] (11x11 for sigma 2, as mmpose)."""
    return int(min(max(math.ceil(2.5 * sigma), 1), MAX_DARK_RADIUS))


def gaussian_blur_zero_pad(maps: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur of ``maps (M, h, w)`` in float64 with zero padding (as mmpose pads)."""
    r = dark_radius(sigma)
    g = np.exp(-(np.arange(-r, r + 1, dtype=np.float64) ** 2) / (2.0 * sigma * sigma))
    g /= g.sum()
    m, h, w = maps.shape
    padded = np.zeros((m, h + 2 * r, w + 2 * r))
    padded[:, r : r + h, r : r + w] = maps
    rows = sum(g[i] * padded[:, :, i : i + w] for i in range(2 * r + 1))
    return sum(g[j] * rows[:, j : j + h, :] for j in range(2 * r + 1))


def decode_heatmaps(heatmaps: np.ndarray, refine: str | None = "dark", sigma: float = 2.0):
    """Reference of :func:`handstream.ops.decode_heatmaps`.

    heatmaps (..., h, w) float -> coords (..., 2) float32 (x, y) heatmap pixels, conf (...) float32.
    """
    hm = np.asarray(heatmaps, dtype=np.float32)
    lead, (h, w) = hm.shape[:-2], hm.shape[-2:]
    maps = hm.reshape(-1, h, w)
    m = maps.shape[0]
    coords = np.full((m, 2), np.nan, dtype=np.float32)
    conf = np.full(m, np.nan, dtype=np.float32)
    mode = REFINE_CODES[refine]
    blurred = None
    if mode == 2 and m:
        with np.errstate(invalid="ignore", over="ignore"):
            blurred = np.log(np.maximum(gaussian_blur_zero_pad(maps.astype(np.float64), sigma), 1e-10))

    for i in range(m):
        hmap = maps[i]
        if not np.isfinite(hmap).all():
            continue  # NaN/inf anywhere: no answer
        flat_index = int(np.argmax(hmap))  # first occurrence on ties, row-major
        conf[i] = hmap.flat[flat_index]
        if not hmap.max() > hmap.min():
            continue  # flat map: no peak
        y, x = divmod(flat_index, w)
        ox = oy = 0.0
        if mode == 1:
            if 0 < x < w - 1:
                ox = _parabola_offset(hmap[y, x - 1], hmap[y, x], hmap[y, x + 1])
            if 0 < y < h - 1:
                oy = _parabola_offset(hmap[y - 1, x], hmap[y, x], hmap[y + 1, x])
        elif mode == 2 and 2 <= x <= w - 3 and 2 <= y <= h - 3:
            L = blurred[i]
            dx = 0.5 * (L[y, x + 1] - L[y, x - 1])
            dy = 0.5 * (L[y + 1, x] - L[y - 1, x])
            dxx = 0.25 * (L[y, x + 2] - 2 * L[y, x] + L[y, x - 2])
            dyy = 0.25 * (L[y + 2, x] - 2 * L[y, x] + L[y - 2, x])
            dxy = 0.25 * (L[y + 1, x + 1] - L[y - 1, x + 1] - L[y + 1, x - 1] + L[y - 1, x - 1])
            hessian = np.array([[dxx, dxy], [dxy, dyy]])
            if dxx < 0 and np.linalg.det(hessian) > 0:  # a maximum: take one Newton step
                ox, oy = np.clip(-np.linalg.solve(hessian, [dx, dy]), -1.0, 1.0)
        coords[i] = (x + ox, y + oy)
    return coords.reshape(*lead, 2), conf.reshape(lead)


def _parabola_offset(left: float, centre: float, right: float) -> float:
    dd = float(left) - 2.0 * float(centre) + float(right)
    if not dd < 0:
        return 0.0
    return float(np.clip(0.5 * (float(left) - float(right)) / dd, -0.5, 0.5))


# ---------------------------------------------------------------------------------------------------
# triangulate
# ---------------------------------------------------------------------------------------------------
FINAL_PASSES = 2  # 1 plain + 1 depth re-weighting
HYPOTHESIS_PASSES = 1


def _pixel_error(P: np.ndarray, X: np.ndarray, xy: np.ndarray) -> float:
    c = P[2] @ np.append(X, 1.0)
    if c == 0:
        return math.nan
    uv = (P[:2] @ np.append(X, 1.0)) / c
    return float(np.hypot(*(uv - xy)))


def _solve3(A: np.ndarray, b: np.ndarray):
    """Solve A X = b for a symmetric 3x3 A; None unless A is clearly positive definite (the kernel's test)."""
    d = np.diag(A)
    if not ((d > 0).all() and np.linalg.det(A) > 1e-12 * d.prod()):
        return None
    X = np.linalg.solve(A, b)
    return X if np.isfinite(X).all() else None


def _solve_dlt(xy, w, P, mask, passes):
    """Weighted linear least squares in X (3,), re-weighted by 1/depth; None when singular."""
    X = None
    for _ in range(passes):
        A = np.zeros((3, 3))
        b = np.zeros(3)
        for v in np.flatnonzero(mask):
            s = abs(P[v, 2] @ np.append(X, 1.0)) if X is not None else np.linalg.norm(P[v, 2, :3])
            s = s if s > 0 else 1.0
            rows = np.stack([xy[v, 0] * P[v, 2] - P[v, 0], xy[v, 1] * P[v, 2] - P[v, 1]])
            k = w[v] / (s * s)
            A += k * rows[:, :3].T @ rows[:, :3]
            b -= k * rows[:, :3].T @ rows[:, 3]
        X = _solve3(A, b)
        if X is None:
            return None
    return X


def _refine_gn(xy, w, P, mask, iters, X):
    def cost(Y):
        return sum(w[v] * _pixel_error(P[v], Y, xy[v]) ** 2 for v in np.flatnonzero(mask))

    current = cost(X)
    for _ in range(iters):
        A = np.zeros((3, 3))
        g = np.zeros(3)
        for v in np.flatnonzero(mask):
            Xh = np.append(X, 1.0)
            c = P[v, 2] @ Xh
            if c == 0:
                return X
            uv = (P[v, :2] @ Xh) / c
            J = (P[v, :2, :3] - uv[:, None] * P[v, 2, :3]) / c
            A += w[v] * J.T @ J
            g -= w[v] * J.T @ (uv - xy[v])
        step = _solve3(A, g)
        if step is None:
            return X
        candidate = X + step
        new = cost(candidate)
        if not new < current:
            return X
        X, current = candidate, new
    return X


def _score(xy, valid, P, X, thr):
    inl = np.zeros(len(valid), dtype=bool)
    cost = 0.0
    for v in np.flatnonzero(valid):
        e = _pixel_error(P[v], X, xy[v])
        if e < thr:
            inl[v] = True
            cost += e * e
        else:
            cost += thr * thr
    return inl, cost


def triangulate_point(xy, w, P, method="dlt", threshold_px=10.0, min_views=2, refine_iters=0):
    """Reference for one point: xy (V, 2), w (V,), P (V, 3, 4) -> (X (3,), err, used (V,), n_views)."""
    V = len(xy)
    valid = np.isfinite(xy).all(axis=1) & np.isfinite(w) & (w > 0)
    n_valid = int(valid.sum())
    nan_point = np.full(3, np.nan)
    none_used = np.zeros(V, dtype=bool)
    if n_valid < max(min_views, 2):
        return nan_point, math.nan, none_used, n_valid

    if method == "dlt":
        used = valid.copy()
        X = _solve_dlt(xy, w, P, used, FINAL_PASSES)
    else:
        best = None  # (n, cost, inliers)
        for a in range(V):
            for b in range(a + 1, V):
                if not (valid[a] and valid[b]):
                    continue
                pair = np.zeros(V, dtype=bool)
                pair[[a, b]] = True
                H = _solve_dlt(xy, w, P, pair, HYPOTHESIS_PASSES)
                if H is None or not (P[a, 2] @ np.append(H, 1) > 0 and P[b, 2] @ np.append(H, 1) > 0):
                    continue
                inl, cost = _score(xy, valid, P, H, threshold_px)
                n = int(inl.sum())
                if best is None or n > best[0] or (n == best[0] and cost < best[1]):
                    best = (n, cost, inl)
        if best is None or best[0] < max(min_views, 2):
            return nan_point, math.nan, none_used, 0 if best is None else best[0]
        used = best[2]
        X = _solve_dlt(xy, w, P, used, FINAL_PASSES)
        if X is not None:
            inl, _ = _score(xy, valid, P, X, threshold_px)
            if (inl != used).any() and inl.sum() >= max(min_views, 2):
                X2 = _solve_dlt(xy, w, P, inl, FINAL_PASSES)
                if X2 is not None:
                    X, used = X2, inl
    if X is None:
        return nan_point, math.nan, none_used, 0
    if refine_iters > 0:
        X = _refine_gn(xy, w, P, used, refine_iters, X)
    err = float(np.mean([_pixel_error(P[v], X, xy[v]) for v in np.flatnonzero(used)]))
    return X, err, used, int(used.sum())


def triangulate(points_2d, projections, conf=None, *, method="dlt", threshold_px=10.0, min_views=2, refine=False):
    """Reference of :func:`handstream.ops.triangulate`; returns (points, reproj_error, inliers, n_views)."""
    xy_all = np.asarray(points_2d, dtype=np.float64)
    P = np.asarray(projections, dtype=np.float64)
    V, n_points, _ = xy_all.shape
    w_all = np.ones((V, n_points)) if conf is None else np.asarray(conf, dtype=np.float64)
    iters = int(refine) if not isinstance(refine, bool) else (10 if refine else 0)
    points = np.full((n_points, 3), np.nan)
    errors = np.full(n_points, np.nan)
    inliers = np.zeros((V, n_points), dtype=bool)
    n_views = np.zeros(n_points, dtype=np.int32)
    for p in range(n_points):
        X, e, used, n = triangulate_point(xy_all[:, p], w_all[:, p], P, method, threshold_px, min_views, iters)
        points[p], errors[p], inliers[:, p], n_views[p] = X, e, used, n
    return points, errors, inliers, n_views


# ---------------------------------------------------------------------------------------------------
# resample_crops
# ---------------------------------------------------------------------------------------------------
def lens_distort(lens: np.ndarray, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lens distortion of normalized coordinates ``x, y`` (any shape) by a (14,) lens row ->
    distorted normalized ``xd, yd`` (the formulas of :mod:`handstream.geometry.camera`)."""
    model, d = int(lens[0]), lens[6:]
    if model == 0:  # pinhole
        return x, y
    if model == 1:  # opencv: rational radial k1 k2 k3 / k4 k5 k6, tangential p1 p2
        k1, k2, p1, p2, k3, k4, k5, k6 = d
        r2 = x * x + y * y
        g = (1 + k1 * r2 + k2 * r2**2 + k3 * r2**3) / (1 + k4 * r2 + k5 * r2**2 + k6 * r2**3)
        xd = x * g + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
        yd = y * g + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
        return xd, yd
    if model == 2:  # fisheye (equidistant): theta_d = theta (1 + k1 theta^2 + ... + k4 theta^8)
        k1, k2, k3, k4 = d[:4]
        r = np.sqrt(x * x + y * y)
        theta = np.arctan(r)
        theta_d = theta * (1 + k1 * theta**2 + k2 * theta**4 + k3 * theta**6 + k4 * theta**8)
        small = r <= 1e-8  # OpenCV's guard on the axis
        scale = np.where(small, 1.0, theta_d / np.where(small, 1.0, r))
        return x * scale, y * scale
    raise ValueError(f"unknown lens model {model}")


def bilinear_zero_border(image: np.ndarray, px: np.ndarray, py: np.ndarray) -> np.ndarray:
    """Sample a (h, w) image at pixels ``px, py`` (pixel centres at integers) bilinearly, neighbours outside
    the image counting as 0 (cv2.remap with BORDER_CONSTANT 0); NaN coordinates give 0. float64 in [0, 255]."""
    h, w = image.shape
    img = image.astype(np.float64)
    inside = (px > -1) & (px < w) & (py > -1) & (py < h)  # False for NaN as well
    px, py = np.where(inside, px, 0.0), np.where(inside, py, 0.0)
    x0, y0 = np.floor(px), np.floor(py)
    ax, ay = px - x0, py - y0
    x0, y0 = x0.astype(np.int64), y0.astype(np.int64)

    def at(xi: np.ndarray, yi: np.ndarray) -> np.ndarray:
        ok = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
        return np.where(ok, img[np.clip(yi, 0, h - 1), np.clip(xi, 0, w - 1)], 0.0)

    top = (1 - ax) * at(x0, y0) + ax * at(x0 + 1, y0)
    bottom = (1 - ax) * at(x0, y0 + 1) + ax * at(x0 + 1, y0 + 1)
    return np.where(inside, (1 - ay) * top + ay * bottom, 0.0)


def resample_crops(images, source, lens, rotation, crop, out_size) -> np.ndarray:
    """Reference of :func:`handstream.ops.resample_crops` (NumPy frames only, no ``out``).

    images: S frames (h_s, w_s) uint8, or (h_s, w_s, 3) BGR; source (N,); lens (N, 14); rotation (N, 3, 3);
    crop (N, 3) = f, ccx, ccy; out_size (W, H) -> (N, H, W) float32, value / 255 ((N, 3, H, W) planes R, G, B
    for 3-channel frames).
    """
    W, H = int(out_size[0]), int(out_size[1])
    n = len(source)
    if len(images) and np.asarray(images[0]).ndim == 3:  # each channel on its own, B, G, R -> planes R, G, B
        planes = [[np.ascontiguousarray(np.asarray(img)[:, :, c]) for img in images] for c in (2, 1, 0)]
        return np.stack([resample_crops(p, source, lens, rotation, crop, out_size) for p in planes], axis=1)
    out = np.zeros((n, H, W), np.float32)
    v, u = np.mgrid[0:H, 0:W].astype(np.float64)
    for i in range(n):
        L, R = np.asarray(lens[i], np.float64), np.asarray(rotation[i], np.float64)
        f, ccx, ccy = np.asarray(crop[i], np.float64)
        # the ray of each crop pixel, crop frame -> real camera frame
        rc = np.stack([(u - ccx) / f, (v - ccy) / f, np.ones_like(u)], axis=-1)
        r = rc @ R.T
        front = r[..., 2] > 0
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            x = np.where(front, r[..., 0] / np.where(front, r[..., 2], 1.0), np.nan)
            y = np.where(front, r[..., 1] / np.where(front, r[..., 2], 1.0), np.nan)
            xd, yd = lens_distort(L, x, y)
            fx, fy, cx, cy, skew = L[1:6]
            px = fx * xd + skew * yd + cx
            py = fy * yd + cy
        value = bilinear_zero_border(np.asarray(images[int(source[i])]), px, py)
        out[i] = (value / 255.0).astype(np.float32)
    return out
