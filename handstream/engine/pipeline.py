"""The engine's stages in one process: frames of one instant -> 3D poses of both hands.

Legend: ``V`` views in the set, ``H`` hands (2: left, right), ``K`` joints (21), ``(H_in, W_in)`` network
input, ``(h, w)`` heatmaps.

Two paths, chosen by ``engine.tracking`` (default: tracked, when a crop model is configured)::

    tracked (engine/tracking.py):
      predict each tracked hand -> choose its views -> [acquire: the detect path below, only for hands
      not tracked] -> perspective crops (one batch) -> crop model -> decode -> triangulate per hand
      (crop cameras' rays) -> validate -> smooth (One-Euro) -> PoseMessage

    detect every frame set:
      preprocess (letterbox, grey, ray angles) -> infer (backend, one batch of V views)
        -> decode (heatmaps -> sub-pixel peaks, back to frame pixels) -> gate (presence, confidence)
        -> refine (optional: a window around each detected hand, full resolution, one batch; engine/refine.py)
        -> triangulate (undistort, RANSAC over views, both hands in one call) -> smooth (One-Euro) -> PoseMessage

:class:`Pipeline` is used by the engine process (:mod:`handstream.engine.process`, which adds sockets and
synchronisation), by tests and benchmarks, and for offline files. There is one implementation of each stage.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from handstream.config import EngineConfig, FilterConfig
from handstream.engine.backends import Backend
from handstream.engine.estimate import gate, infer_and_decode
from handstream.engine.refine import Refiner
from handstream.engine.search import SEARCH_MAX_INTERVAL, LandmarkSearch
from handstream.engine.smoothing import OneEuroFilter
from handstream.engine.tracking import Tracker, TrackingConfig
from handstream.engine.triangulation import TriangulationRule, triangulate_hands
from handstream.errors import HandstreamError
from handstream.geometry import Rig
from handstream.models.kpe import ray_angles
from handstream.models.preprocess import prepare_views
from handstream.poses import HandPose, PoseMessage
from handstream.skeleton import HANDS, NUM_JOINTS


@dataclass
class Detections:
    """Per-view 2D results of one frame set (before triangulation).

    Attributes:
        keypoints: (V, H, K, 2) float64 frame pixels (distorted, as in the image); NaN = not detected.
        conf: (V, H, K) float32 heatmap peak values, 0 where gated out.
        presence: (V, H) float32 per-view hand presence probabilities.
    """

    keypoints: np.ndarray
    conf: np.ndarray
    presence: np.ndarray


class Pipeline:
    """Frames -> poses, all stages, no sockets.

    Args:
        rig: the calibrated cameras (metres); frames are matched to cameras by name.
        backend: an opened inference backend (:func:`handstream.engine.backends.open_backend`).
        engine: thresholds (:class:`handstream.config.EngineConfig`).
        smoothing: One-Euro settings (:class:`handstream.config.FilterConfig`).
        refiner: an opened backend of the crop model (a manifest with a ``crop`` rule), or None. With
            ``engine.tracking`` (the default) it is the tracker's crop model (:mod:`handstream.engine.tracking`);
            without tracking it refines the detector's hands in windows (:mod:`handstream.engine.refine`).
            None: the detector runs on every frame set and its keypoints are triangulated as they are.
        palm: a :class:`handstream.models.palm.PalmDetector` (``model.palm_detector``) for acquisition by search,
            or None (:class:`handstream.engine.search.LandmarkSearch`).
    """

    def __init__(
        self,
        rig: Rig,
        backend: Backend,
        engine: EngineConfig | None = None,
        smoothing: FilterConfig | None = None,
        refiner: Backend | None = None,
        palm=None,
    ):
        if backend.manifest.crop is not None:
            raise HandstreamError(
                f"model {backend.manifest.name!r} is a refiner (its manifest has a 'crop' rule): use it as "
                "model.refiner, with a detector (e.g. engines/handstream-default.onnx) as model.path"
            )
        self.rig = rig
        self.backend = backend
        self.manifest = backend.manifest
        self.codec = self.manifest.codec
        self.cfg = c = engine or EngineConfig()
        self.rule = TriangulationRule.from_engine(c)
        self.tracker: Tracker | None = None
        self.search: LandmarkSearch | None = None  # acquisition by the crop model itself (engine.acquire)
        self.refiner: Refiner | None = None
        if refiner is not None and c.tracking:
            landmarks = refiner.manifest.kind == "landmarks"
            if c.acquire == "search" and not landmarks:
                raise HandstreamError(
                    f"engine.acquire = 'search' needs a landmarks crop model (one that says whether a crop holds a "
                    f"hand, e.g. MediaPipe's imported network); {refiner.manifest.name!r} is a heatmap model"
                )
            searching = c.acquire == "search" or (c.acquire == "auto" and landmarks)
            tc = TrackingConfig(
                max_views_per_hand=max(min(c.max_views_per_hand, len(rig)), c.min_views), min_views=c.min_views,
                acquire_interval=c.acquire_interval, min_joints=c.min_joints, max_reproj_px=c.max_reproj_px,
                max_bone_change=c.max_bone_change, ransac_threshold_px=c.ransac_threshold_px,
                max_hand_extent_m=c.max_hand_extent_m, crop_presence_threshold=c.crop_presence_threshold,
                confidence_threshold=c.confidence_threshold,
                max_acquire_interval=SEARCH_MAX_INTERVAL if searching else 0,
            )  # fmt: skip
            cams = {cam.name: cam for cam in rig}
            self.tracker = Tracker(cams, refiner, tc, max_crops=len(HANDS) * (tc.max_views_per_hand + len(rig)))
            if searching:
                self.search = LandmarkSearch(cams, refiner, c.search_crops_per_view, palm=palm)
        elif refiner is not None:
            if (refiner.manifest.crop or {}).get("camera") == "perspective":
                raise HandstreamError(
                    f"refiner {refiner.manifest.name!r} is a crop model of perspective crops (crop.camera = "
                    "'perspective'): it runs with engine.tracking = true; the detect-every-frame path needs a "
                    "window refiner (e.g. engines/handstream-refiner.onnx)"
                )
            self.refiner = Refiner(refiner, 2 * len(rig))
        if palm is not None and self.search is None:
            raise HandstreamError(
                "model.palm_detector: the palm detector places the windows of acquisition by search, which needs "
                "engine.tracking = true and a landmarks crop model (e.g. MediaPipe's imported network) as "
                "model.refiner, with engine.acquire = auto or search"
            )
        f = smoothing or FilterConfig()
        self.filter = OneEuroFilter(f.min_cutoff, f.beta, f.d_cutoff, f.enabled)
        self.seq = 0
        w, h = self.manifest.input_size
        self._input = np.zeros((len(rig), 1, h, w), np.float32)
        self._subsets: dict[tuple[str, ...], Rig] = {}
        prepare = getattr(backend, "prepare", None)  # torch on CUDA: capture a CUDA graph per view count now
        if prepare is not None:
            prepare(range(1, len(rig) + 1))

    def _subset(self, names: tuple[str, ...]) -> Rig:
        rig = self._subsets.get(names)
        if rig is None:
            rig = self._subsets[names] = self.rig.subset(list(names))
        return rig

    def detect(
        self, names: list[str], images: list[np.ndarray], timings: dict[str, float], refine: bool = True
    ) -> Detections:
        """Stages preprocess -> infer -> decode -> gate [-> refine] for V views; adds their times (ms) to
        ``timings``. ``refine``: run the refine stage when the pipeline has one (detect-every-frame path)."""
        t0 = time.perf_counter()
        batch, boxes = prepare_views(images, self.manifest.input_size, out=self._input)
        rays = None
        if self.manifest.kpe:
            rays = np.stack([ray_angles(self.rig[n], b, self.codec.stride) for n, b in zip(names, boxes, strict=True)])
        t1 = time.perf_counter()
        timings["preprocess"] = (t1 - t0) * 1e3
        kp_in, conf, presence = infer_and_decode(self.backend, batch, rays, timings)  # (V, H, K, 2) input px
        t2 = time.perf_counter()
        keypoints = np.empty(kp_in.shape, np.float64)
        for v, box in enumerate(boxes):
            keypoints[v] = box.to_frame(kp_in[v])
        keep = gate(keypoints, conf, presence, self.cfg.confidence_threshold, self.cfg.presence_threshold)
        conf = np.where(keep, conf, 0.0).astype(np.float32)
        keypoints[~keep] = np.nan
        timings["decode"] += (time.perf_counter() - t2) * 1e3
        t3 = time.perf_counter()
        if self.refiner is not None and refine:
            cams = [self.rig[n] for n in names]
            c = self.cfg
            self.refiner(cams, images, keypoints, conf, presence, c.presence_threshold, c.confidence_threshold)
            timings["refine"] = (time.perf_counter() - t3) * 1e3
        return Detections(keypoints, conf, presence)

    def process(
        self, frames: dict[str, np.ndarray], t_capture_ns: int, timings: dict[str, float] | None = None
    ) -> PoseMessage:
        """Run every stage on the frames of one instant.

        Args:
            frames: camera name -> image ((h, w) uint8 or (h, w, 3) BGR uint8, the camera's calibrated size);
                any subset of the rig's cameras.
            t_capture_ns: capture time of the set, ns.
            timings: stage times (ms) measured before this call (e.g. ``transport_in``, ``sync``), kept.
        Returns:
            A :class:`PoseMessage` (``t_publish_ns`` 0: set when published) with both hands: joints (K, 3)
            metres in the rig frame, NaN where not triangulated; a hand seen by fewer than
            ``min_views`` views, or with fewer than ``min_joints`` joints, is reported with NaN joints
            (not tracked) and its presence.
        """
        timings = dict(timings or {})
        names = [n for n in self.rig.names if n in frames]
        unknown = set(frames) - set(names)
        if unknown:
            raise HandstreamError(f"frames from cameras not in the rig: {sorted(unknown)}")
        images = []
        for n in names:
            img = frames[n]
            cam = self.rig[n]
            if (img.shape[1], img.shape[0]) != cam.size:
                raise HandstreamError(
                    f"camera {n}: frame is {img.shape[1]}x{img.shape[0]}, "
                    f"calibration says {cam.size[0]}x{cam.size[1]}"
                )
            images.append(img)
        if self.tracker is not None:
            hands = self._tracked(names, images, int(t_capture_ns), timings)
        else:
            hands = self._detected(names, images, int(t_capture_ns), timings)
        msg = PoseMessage(seq=self.seq, t_capture_ns=int(t_capture_ns), timings=timings, views=names, hands=hands)
        self.seq += 1
        return msg

    def triangulate_detections(self, names: list[str], det: Detections):
        """Triangulate a detect stage's keypoints: RANSAC over the views, the hand-extent rule, ``min_joints``.

        Returns joints (H, K, 3) metres (NaN = not found; a hand with fewer than ``min_joints`` joints is all
        NaN), reprojection error (H, K) px, views used (H, K) uint8 and confidence (H, K)."""
        V = len(names)
        H = len(HANDS)
        joints = np.full((H, NUM_JOINTS, 3), np.nan)
        reproj = np.full((H, NUM_JOINTS), np.nan)
        n_views = np.zeros((H, NUM_JOINTS), np.uint8)
        conf3d = np.full((H, NUM_JOINTS), np.nan)
        if V < self.cfg.min_views:
            return joints, reproj, n_views, conf3d
        t = triangulate_hands(self._subset(tuple(names)), det.keypoints, det.conf, self.rule)
        return t.joints, t.reproj_error, t.n_views, t.conf

    def _detected(self, names, images, t_ns: int, timings: dict[str, float]) -> list[HandPose]:
        """The detect-every-frame path: detect [+ refine] -> triangulate -> smooth."""
        V = len(names)
        det = self.detect(names, images, timings) if V else None
        t0 = time.perf_counter()
        if V:
            joints, reproj, n_views, conf3d = self.triangulate_detections(names, det)
        else:
            joints, reproj, n_views, conf3d = self.triangulate_detections([], None)
        t1 = time.perf_counter()
        smoothed = self.filter(joints, t_ns)
        timings["triangulate"] = (t1 - t0) * 1e3
        timings["smooth"] = (time.perf_counter() - t1) * 1e3
        presence = det.presence.max(axis=0) if V else np.zeros(len(HANDS))
        k2d = det.keypoints if (self.cfg.include_2d and V) else None
        return self._hands(smoothed, conf3d, reproj, n_views, presence, k2d)

    def _tracked(self, names, images, t_ns: int, timings: dict[str, float]) -> list[HandPose]:
        """The tracked path (:class:`handstream.engine.tracking.Tracker`), the detector only for acquisition."""

        def acquire(missing: list[int], tracked: dict[int, np.ndarray]):
            if self.search is not None:
                return self.search(names, images, missing, tracked)
            det = self.detect(names, images, {}, refine=False)
            return det.keypoints, det.presence

        results = self.tracker.step(names, images, t_ns, acquire, timings)
        joints = np.stack([r.joints for r in results])
        t1 = time.perf_counter()
        smoothed = self.filter(joints, t_ns)
        timings["smooth"] = (time.perf_counter() - t1) * 1e3
        k2d = np.stack([r.joints_2d for r in results], axis=1) if self.cfg.include_2d and names else None
        return self._hands(
            smoothed, np.stack([r.conf for r in results]), np.stack([r.reproj_error for r in results]),
            np.stack([r.n_views for r in results]), np.array([r.presence for r in results]), k2d,
        )  # fmt: skip

    def _hands(self, smoothed, conf3d, reproj, n_views, presence, keypoints_2d) -> list[HandPose]:
        """Per-hand results -> :class:`HandPose` list (``keypoints_2d`` (V, H, K, 2) or None)."""
        hands = []
        for h, side in enumerate(HANDS):
            finite = np.isfinite(smoothed[h]).all(axis=-1)
            hands.append(
                HandPose(
                    side=side,
                    presence=min(max(float(presence[h]), 0.0), 1.0),
                    joints=smoothed[h].astype(np.float32),
                    conf=np.where(finite, conf3d[h], np.nan).astype(np.float32),
                    reproj_error=np.where(finite, reproj[h], np.nan).astype(np.float32),
                    n_views=np.where(finite, n_views[h], 0).astype(np.uint8),
                    joints_2d=keypoints_2d[:, h].astype(np.float32) if keypoints_2d is not None else None,
                )
            )
        return hands
