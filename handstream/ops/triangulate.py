"""triangulate: 2D points in several calibrated views -> 3D points (C++ or CUDA)."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from handstream.errors import HandstreamError
from handstream.ops import _native

MAX_VIEWS = 16
METHODS = {"dlt": 0, "ransac": 1}
DEFAULT_REFINE_ITERS = 10


class Triangulation(NamedTuple):
    """Result of :func:`triangulate`. NaN marks a point that could not be triangulated.

    points       (P, 3) float64, world units of the projection matrices (metres in handstream)
    reproj_error (P,)   float64, mean pixel distance between the reprojection and the views used
    inliers      (V, P) bool, views used for each point
    n_views      (P,)   int32, number of views used; < min_views exactly where points is NaN
    """

    points: np.ndarray
    reproj_error: np.ndarray
    inliers: np.ndarray
    n_views: np.ndarray


def triangulate(
    points_2d,
    projections,
    conf=None,
    *,
    method: str = "dlt",
    threshold_px: float = 10.0,
    min_views: int = 2,
    refine: bool | int = False,
) -> Triangulation:
    """Triangulate P points seen by V calibrated views.

    Shapes: ``points_2d (V, P, 2)`` undistorted pixels (NaN = not seen in that view);
    ``projections (V, 3, 4)`` = K [R | t] with ``X_cam = R X_world + t``; ``conf (V, P)`` weights
    (None = all ones; 0 or NaN = not seen). 2 <= V <= 16.

    ``method="dlt"``: confidence-weighted linear triangulation over every valid view, re-weighted by
    depth so the residual approaches pixel error. ``method="ransac"``: every pair of views proposes a
    point; the proposal that the most views agree with (pixel error < ``threshold_px``) wins and is
    re-solved on its inliers. Deterministic. ``refine``: Gauss-Newton steps on the weighted pixel error
    (True = 10, or an int).

    Fewer than ``min_views`` valid (or agreeing) views gives a NaN point and ``n_views < min_views``,
    never an exception. NumPy input runs on the C++ kernel; CUDA tensors on the CUDA kernel, on the
    tensors' device, without host copies (results are CUDA tensors).
    """
    if method not in METHODS:
        raise HandstreamError(f"triangulate: method must be 'dlt' or 'ransac', got {method!r}")
    if isinstance(refine, bool):
        refine_iters = DEFAULT_REFINE_ITERS if refine else 0
    elif isinstance(refine, int | np.integer) and refine >= 0:
        refine_iters = int(refine)
    else:
        raise HandstreamError(f"triangulate: refine must be a bool or an iteration count >= 0, got {refine!r}")
    if not (isinstance(min_views, int | np.integer) and min_views >= 2):
        raise HandstreamError(f"triangulate: min_views must be an integer >= 2, got {min_views!r}")
    if not (float(threshold_px) > 0):
        raise HandstreamError(f"triangulate: threshold_px must be > 0 pixels, got {threshold_px}")
    shape = tuple(points_2d.shape)
    if len(shape) != 3 or shape[2] != 2:
        raise HandstreamError(f"triangulate: points_2d must be (V, P, 2), got shape {shape}")
    V, P = shape[0], shape[1]
    if not 2 <= V <= MAX_VIEWS:
        raise HandstreamError(f"triangulate: needs 2 to {MAX_VIEWS} views, got V={V}")
    if tuple(projections.shape) != (V, 3, 4):
        shape = tuple(projections.shape)
        raise HandstreamError(f"triangulate: projections must be (V, 3, 4) = ({V}, 3, 4), got {shape}")
    if conf is not None and tuple(conf.shape) != (V, P):
        raise HandstreamError(f"triangulate: conf must be (V, P) = ({V}, {P}), got {tuple(conf.shape)}")
    args = (METHODS[method], float(threshold_px), int(min_views), refine_iters)

    if _native.is_cuda_tensor(points_2d):
        return _triangulate_cuda(points_2d, projections, conf, V, P, args)
    if _native.is_tensor(points_2d):
        import torch

        as_np = [
            None if a is None else np.asarray(a.detach() if _native.is_tensor(a) else a)
            for a in (points_2d, projections, conf)
        ]
        result = triangulate(
            as_np[0],
            as_np[1],
            as_np[2],
            method=method,
            threshold_px=threshold_px,
            min_views=min_views,
            refine=refine_iters,
        )
        return Triangulation(*(torch.from_numpy(a) for a in result))

    try:  # the kernel checks that the projections are finite (cheaper than doing it here)
        result = _native.cpu().triangulate(points_2d, conf, projections, *args)
    except ValueError as exc:
        raise HandstreamError(f"triangulate: {exc}") from None
    return Triangulation(*result)


def _triangulate_cuda(points_2d, projections, conf, V, P, args) -> Triangulation:
    import torch

    module = _native.require_cuda()
    device = points_2d.device
    f64 = torch.float64
    pts = points_2d.detach().to(f64).contiguous()
    proj = torch.as_tensor(projections, dtype=f64, device=device).contiguous()
    w = None if conf is None else torch.as_tensor(conf, dtype=f64, device=device).contiguous()
    points = torch.empty((P, 3), dtype=f64, device=device)
    errors = torch.empty(P, dtype=f64, device=device)
    inliers = torch.empty((V, P), dtype=torch.bool, device=device)
    n_views = torch.empty(P, dtype=torch.int32, device=device)
    with torch.cuda.device(device):
        module.triangulate(
            V,
            P,
            pts.data_ptr(),
            0 if w is None else w.data_ptr(),
            proj.data_ptr(),
            *args,
            points.data_ptr(),
            errors.data_ptr(),
            inliers.data_ptr(),
            n_views.data_ptr(),
            _native.stream_of(pts),
        )
    return Triangulation(points, errors, inliers, n_views)
