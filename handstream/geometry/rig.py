"""A rig: an ordered set of calibrated cameras sharing one world frame.

The order of the cameras is the order of the view axis ``V`` of every array in handstream
(frames, heatmaps ``(V, H*K, h, w)``, keypoints ``(V, H, K, 2)``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from handstream.errors import HandstreamError
from handstream.geometry.camera import Camera

if TYPE_CHECKING:  # only for type hints: handstream.ops is imported lazily (it needs the C++ module)
    from handstream.ops import Triangulation


class Rig:
    """An ordered, immutable list of :class:`Camera` with unique names.

    Args:
        cameras: the cameras, in view order (at least one).
    Raises:
        HandstreamError: when empty, when an item is not a Camera, or when two cameras share a name.
    """

    def __init__(self, cameras: Iterable[Camera]):
        cams = tuple(cameras)
        if not cams:
            raise HandstreamError("rig: expected at least one camera, got none")
        for i, cam in enumerate(cams):
            if not isinstance(cam, Camera):
                raise HandstreamError(f"rig: camera {i}: expected a Camera, got {type(cam).__name__}")
        names = [cam.name for cam in cams]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise HandstreamError(f"rig: camera names must be unique, repeated: {', '.join(duplicates)}")
        self._cameras = cams

    # --- container protocol -----------------------------------------------------------------------

    @property
    def cameras(self) -> tuple[Camera, ...]:
        """The cameras in view order."""
        return self._cameras

    @property
    def names(self) -> list[str]:
        """Camera names in view order."""
        return [cam.name for cam in self._cameras]

    def __len__(self) -> int:
        return len(self._cameras)

    def __iter__(self) -> Iterator[Camera]:
        return iter(self._cameras)

    def __getitem__(self, key: int | str) -> Camera:
        """A camera by view index (negative indices allowed) or by name."""
        return self._cameras[self.index(key)]

    def index(self, key: int | str) -> int:
        """View index of a camera given by index or name (raises HandstreamError when absent)."""
        if isinstance(key, str):
            try:
                return self.names.index(key)
            except ValueError:
                raise HandstreamError(f"rig: no camera named {key!r}; cameras: {', '.join(self.names)}") from None
        if isinstance(key, int | np.integer) and not isinstance(key, bool):
            if -len(self) <= key < len(self):
                return int(key) % len(self)
            raise HandstreamError(f"rig: camera index {key} out of range for {len(self)} cameras")
        raise HandstreamError(f"rig: expected a camera name or index, got {key!r}")

    def __repr__(self) -> str:
        return f"Rig({len(self)} cameras: {', '.join(self.names)})"

    # --- derived arrays ---------------------------------------------------------------------------

    @property
    def projection_matrices(self) -> np.ndarray:
        """(V, 3, 4) float64 ``K [R | t]`` per view: world points -> ideal (undistorted) pixels."""
        return np.stack([cam.projection_matrix for cam in self._cameras])

    @property
    def centers(self) -> np.ndarray:
        """(V, 3) camera centres in world coordinates."""
        return np.stack([cam.center for cam in self._cameras])

    # --- new rigs ---------------------------------------------------------------------------------

    def subset(self, names_or_indices: Sequence[int | str]) -> Rig:
        """A rig with the given cameras (names or view indices), in the given order."""
        if isinstance(names_or_indices, str | int):
            names_or_indices = [names_or_indices]
        return Rig(self[key] for key in names_or_indices)

    def scaled(self, unit_scale: float) -> Rig:
        """All translations multiplied by ``unit_scale`` (e.g. 1e-3 for millimetres -> metres)."""
        return Rig(cam.scaled(unit_scale) for cam in self._cameras)

    # --- geometry ---------------------------------------------------------------------------------

    def project(self, points_3d: Any) -> np.ndarray:
        """Project world points into every view.

        Args:
            points_3d: (..., 3) world points.
        Returns:
            (V, ..., 2) distorted pixels; NaN for NaN input and for points behind a camera.
        """
        return np.stack([cam.project(points_3d) for cam in self._cameras])

    def undistort_points(self, points_2d: Any) -> np.ndarray:
        """Distorted pixels -> ideal pinhole pixels, view by view.

        Args:
            points_2d: (V, ..., 2) distorted pixels, view ``v`` in camera ``v``.
        Returns:
            (V, ..., 2) ideal pixels (consistent with :attr:`projection_matrices`); NaN where unknown.
        """
        pts = self._views(points_2d, "points_2d")
        return np.stack([cam.undistort_points(p) for cam, p in zip(self._cameras, pts, strict=True)])

    def triangulate(
        self,
        points_2d: Any,
        conf: Any = None,
        *,
        method: str = "ransac",
        threshold_px: float = 10.0,
        min_views: int = 2,
        refine: bool = False,
    ) -> Triangulation:
        """Triangulate points seen in several views (distortion removed first).

        Args:
            points_2d: (V, ..., 2) DISTORTED pixels as found in the images; NaN = not seen.
            conf: (V, ...) per-observation weight (e.g. heatmap confidence; 0 or NaN = not seen), or
                None (all 1).
            method, threshold_px, min_views, refine: passed to :func:`handstream.ops.triangulate`
                (``"ransac"`` rejects views whose reprojection error exceeds ``threshold_px`` pixels).
        Returns:
            ``handstream.ops.Triangulation`` with the middle dims ``...`` restored: ``points`` (..., 3)
            world units (NaN where fewer than ``min_views`` views agree), ``reproj_error`` (...) pixels,
            ``inliers`` (V, ...) bool, ``n_views`` (...) int32.
        """
        from handstream import ops  # lazy: the compiled kernels are only needed here

        pts = self._views(points_2d, "points_2d")
        middle = pts.shape[1:-1]
        ideal = self.undistort_points(pts).reshape(len(self), -1, 2)
        weights = None
        if conf is not None:
            c = np.asarray(conf, dtype=np.float64)
            if c.shape != pts.shape[:-1]:
                raise HandstreamError(
                    f"triangulate: conf: expected shape {pts.shape[:-1]} (points_2d without its last axis), "
                    f"got {c.shape}"
                )
            weights = np.ascontiguousarray(c.reshape(len(self), -1))
        result = ops.triangulate(
            np.ascontiguousarray(ideal),
            np.ascontiguousarray(self.projection_matrices),
            weights,
            method=method,
            threshold_px=threshold_px,
            min_views=min_views,
            refine=refine,
        )
        return result._replace(
            points=np.asarray(result.points).reshape(middle + (3,)),
            reproj_error=np.asarray(result.reproj_error).reshape(middle),
            inliers=np.asarray(result.inliers).reshape((len(self),) + middle),
            n_views=np.asarray(result.n_views).reshape(middle),
        )

    def _views(self, points_2d: Any, what: str) -> np.ndarray:
        """Check a (V, ..., 2) array against this rig and return it as float64."""
        pts = np.asarray(points_2d, dtype=np.float64)
        if pts.ndim < 2 or pts.shape[0] != len(self) or pts.shape[-1] != 2:
            raise HandstreamError(
                f"{what}: expected shape ({len(self)}, ..., 2) for a rig of {len(self)} cameras, got {pts.shape}"
            )
        return pts
