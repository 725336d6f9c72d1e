"""The engine's stages in one process: frames of one instant -> 3D poses of both hands.

Legend: ``V`` views in the set, ``H`` hands (2: left, right), ``K`` joints (21), ``(H_in, W_in)`` network
input, ``(h, w)`` heatmaps.

::

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
from handstream.engine.hand_check import drop_far_joints
from handstream.engine.refine import Refiner
from handstream.engine.smoothing import OneEuroFilter
from handstream.errors import HandstreamError
from handstream.geometry import Rig
from handstream.models.kpe import ray_angles
from handstream.models.preprocess import prepare_views
from handstream.skeleton import HANDS, NUM_JOINTS
from handstream.transport.wire import HandPose, PoseMessage


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
        refiner: an opened backend of a refiner model (a manifest with a ``crop`` rule), or None: the
            detector's keypoints go to the triangulation as they are.
    """

    def __init__(
        self,
        rig: Rig,
        backend: Backend,
        engine: EngineConfig | None = None,
        smoothing: FilterConfig | None = None,
        refiner: Backend | None = None,
    ):
        if backend.manifest.crop is not None:
            raise HandstreamError(
                f"model {backend.manifest.name!r} is a refiner (its manifest has a 'crop' rule): use it as "
                "model.refiner, with a detector (e.g. engines/handstream-default.onnx) as model.path"
            )
        self.rig = rig
        self.refiner = Refiner(refiner, 2 * len(rig)) if refiner is not None else None
        self.backend = backend
        self.manifest = backend.manifest
        self.codec = self.manifest.codec
        self.cfg = engine or EngineConfig()
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

    def detect(self, names: list[str], images: list[np.ndarray], timings: dict[str, float]) -> Detections:
        """Stages preprocess -> infer -> decode -> gate for V views; adds their times (ms) to ``timings``."""
        t0 = time.perf_counter()
        batch, boxes = prepare_views(images, self.manifest.input_size, out=self._input)
        rays = None
        if self.manifest.kpe:
            rays = np.stack([ray_angles(self.rig[n], b, self.codec.stride) for n, b in zip(names, boxes, strict=True)])
        t1 = time.perf_counter()
        heatmaps, presence = self.backend.infer(batch, rays)
        t2 = time.perf_counter()
        kp_in, conf = self.codec.decode(heatmaps)  # (V, H, K, 2) input px, (V, H, K)
        if not isinstance(kp_in, np.ndarray):  # CUDA tensors from the torch backend: only keypoints come back
            kp_in, conf, presence = kp_in.cpu().numpy(), conf.cpu().numpy(), presence.cpu().numpy()
        keypoints = np.empty(kp_in.shape, np.float64)
        for v, box in enumerate(boxes):
            keypoints[v] = box.to_frame(kp_in[v])
        presence = np.asarray(presence, np.float32)
        conf = np.nan_to_num(np.asarray(conf, np.float32), nan=0.0)
        keep = (conf >= self.cfg.confidence_threshold) & (presence[:, :, None] >= self.cfg.presence_threshold)
        keep &= np.isfinite(keypoints).all(axis=-1)
        conf = np.where(keep, conf, 0.0).astype(np.float32)
        keypoints[~keep] = np.nan
        t3 = time.perf_counter()
        timings["preprocess"] = (t1 - t0) * 1e3
        timings["infer"] = (t2 - t1) * 1e3
        timings["decode"] = (t3 - t2) * 1e3
        if self.refiner is not None:
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
        V = len(names)
        det = self.detect(names, images, timings) if V else None

        t0 = time.perf_counter()
        joints = np.full((len(HANDS), NUM_JOINTS, 3), np.nan)
        reproj = np.full((len(HANDS), NUM_JOINTS), np.nan)
        n_views = np.zeros((len(HANDS), NUM_JOINTS), np.uint8)
        conf3d = np.full((len(HANDS), NUM_JOINTS), np.nan)
        if V >= self.cfg.min_views:
            tri = self._subset(tuple(names)).triangulate(
                det.keypoints.reshape(V, -1, 2), det.conf.reshape(V, -1), method="ransac",
                threshold_px=self.cfg.ransac_threshold_px, min_views=self.cfg.min_views,
            )  # fmt: skip
            joints = drop_far_joints(tri.points.reshape(len(HANDS), NUM_JOINTS, 3), self.cfg.max_hand_extent_m)
            reproj = tri.reproj_error.reshape(len(HANDS), NUM_JOINTS)
            n_views = tri.n_views.reshape(len(HANDS), NUM_JOINTS).astype(np.uint8)
            inl = tri.inliers.reshape(V, len(HANDS), NUM_JOINTS)
            with np.errstate(invalid="ignore", divide="ignore"):
                conf3d = (det.conf * inl).sum(axis=0) / inl.sum(axis=0)
            found = np.isfinite(joints).all(axis=-1)  # (H, K): triangulated and kept by the outlier rule
            reproj[~found], n_views[~found], conf3d[~found] = np.nan, 0, np.nan
            tracked = found.sum(axis=-1) >= max(self.cfg.min_joints, 1)
            joints[~tracked] = np.nan
            n_views[~tracked] = 0
        t1 = time.perf_counter()
        smoothed = self.filter(joints, t_capture_ns)
        t2 = time.perf_counter()
        timings["triangulate"] = (t1 - t0) * 1e3
        timings["smooth"] = (t2 - t1) * 1e3

        hands = []
        for h, side in enumerate(HANDS):
            finite = np.isfinite(smoothed[h]).all(axis=-1)
            presence = float(det.presence[:, h].max()) if V else 0.0
            hands.append(
                HandPose(
                    side=side,
                    presence=min(max(presence, 0.0), 1.0),
                    joints=smoothed[h].astype(np.float32),
                    conf=np.where(finite, conf3d[h], np.nan).astype(np.float32),
                    reproj_error=np.where(finite, reproj[h], np.nan).astype(np.float32),
                    n_views=n_views[h],
                    joints_2d=det.keypoints[:, h].astype(np.float32) if (self.cfg.include_2d and V) else None,
                )
            )
        msg = PoseMessage(seq=self.seq, t_capture_ns=int(t_capture_ns), timings=timings, views=names, hands=hands)
        self.seq += 1
        return msg
