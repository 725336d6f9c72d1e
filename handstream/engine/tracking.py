"""The tracking stage: each tracked hand's next crops come from its last 3D pose, not from a detector.

Legend: ``V`` views in the frame set, ``H`` hands (2: left, right), ``K`` joints (21), ``N`` crops.

Per frame set (:meth:`Tracker.step`):

1. **Predict** every tracked hand at the new capture time: its last joints moved by the track's velocity
   (constant velocity of the hand's centroid, from the last measured poses).
2. **Choose views** per hand: project the prediction into every view of the set and keep the views where
   the hand is in front, mostly inside the frame, large enough and away from the border, best first (last
   frame's reprojection error as a tie-breaker); at most ``max_views_per_hand``. The cost then grows with the
   number of hands, not of cameras.
3. **Acquire** (only for hands that are not tracked, at most every ``acquire_interval`` frame sets while some
   hand is tracked): the whole-frame detector runs on every view, and each view where it finds a hand that is
   not tracked gets a crop around that detection (a crop camera through the detected keypoints' rays). Those
   crops go through the crop model in the same batch as the tracked hands' crops, and a hand whose crops two
   views agree on (step 5) and that passes validation starts a track; its side (left/right) is the detector's,
   and from then on belongs to the track.
4. **Crop** each chosen (view, hand) with a perspective crop camera (:func:`handstream.geometry.crop_camera.
   hand_crop`, the crop model's ``margin``), resample all crops of the set in one call
   (:func:`handstream.engine.crops.resample`) and run the crop model on them in one batch.
5. **Triangulate** each hand from its crops' keypoints with the crop cameras' projection matrices (the
   keypoints are exact rays of pinhole cameras: no undistortion), RANSAC over the hand's views.
6. **Validate**: enough joints kept by the hand-extent rule, mean reprojection error, bone lengths against
   the track's own, the two hands not on one place. A hand that fails, or that fewer than ``min_views``
   views can see, is lost and goes back to acquisition.

One implementation, used live (:mod:`handstream.engine.process`), offline and in evaluation, through
:class:`handstream.engine.pipeline.Pipeline`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from handstream.engine.backends import Backend
from handstream.engine.crops import resample
from handstream.engine.estimate import gate, infer_and_decode, infer_landmarks
from handstream.engine.triangulation import AGREEMENT_SIGMA, TriangulationRule, agreement_confidence, triangulate_hands
from handstream.errors import HandstreamError
from handstream.geometry.camera import Camera
from handstream.geometry.crop_camera import CropCamera, hand_crop
from handstream.skeleton import BONES, HANDS, NUM_JOINTS

_BONES = np.array(BONES, np.int64)  # (20, 2) parent, child
MAX_DT_S = 0.1  # prediction horizon cap: after a stall the last pose is a better guess than a long extrapolation
FOLLOW_UPS = 8
"""With backoff (``max_acquire_interval``): an acquisition that finds a candidate for a missing hand in some view
but starts no track is followed by another in the next frame set, up to this many in a row, before the wait
grows again: the search confirms one view's find in the others over the next calls (engine/search.py: the
distances along its rays where the other view sees it, 3 crops a view a call, and the find's own crop, which
converges on the hand call by call), and a hand that waited half a second between those calls would have moved
out of the follow-up crops. On the two-hand scene of benchmarks/mirrored_rig.py, 3 in a row found the second
hand after 5 s, 8 after 1.5 s."""


@dataclass(frozen=True)
class TrackingConfig:
    """Tracking settings (``[engine]`` keys of the serve config, :class:`handstream.config.EngineConfig`).

    Attributes:
        max_views_per_hand: crops per hand and frame set (the best views by :func:`view_scores`).
        min_views: views that must agree on a joint; a hand seen by fewer is lost.
        acquire_interval: while some hand is tracked, the detector looks for the others every this many frame
            sets (1: every frame set); with no hand tracked it runs on every frame set.
        max_acquire_interval: while some hand is tracked, an acquisition that starts no track doubles the wait
            before the next (from ``acquire_interval``), up to this many frame sets; one that starts a track, or a
            lost track, resets it; with no hand tracked acquisition still runs on every frame set. 0 (the
            default; or ``acquire_interval``): no backoff. For acquisition by search, which costs several crops a
            view, so that a second hand that is not there costs little.
        min_joints: joints a hand must keep (after the hand-extent rule) to stay tracked.
        max_reproj_px: largest mean reprojection error (crop pixels) of a tracked hand.
        max_bone_change: largest median relative change of a hand's bone lengths against its track's own.
        min_separation_m: two hands whose centroids are closer than this are one hand: the newer track goes.
        crop_presence_threshold: a crop counts when the crop model's presence for its hand reaches this (lower
            than the detector's gate: the track is evidence already, and validation rejects a wrong hand).
        ransac_threshold_px, max_hand_extent_m, confidence_threshold: as the engine's.
    """

    max_views_per_hand: int = 2
    min_views: int = 2
    acquire_interval: int = 3
    max_acquire_interval: int = 0
    min_joints: int = 8
    max_reproj_px: float = 8.0
    max_bone_change: float = 0.35
    min_separation_m: float = 0.04
    ransac_threshold_px: float = 12.0
    max_hand_extent_m: float = 0.2
    crop_presence_threshold: float = 0.2
    confidence_threshold: float = 0.2


@dataclass
class HandTrack:
    """One tracked hand.

    Attributes:
        side: 0 left, 1 right (from the detector that started it; never from one view afterwards).
        joints: (K, 3) metres, rig frame: the last estimate, gaps filled from the prediction (all finite).
        velocity: (3,) m/s of the hand's centroid.
        t_ns: capture time of the last estimate.
        bones: (20,) reference bone lengths (metres; NaN until measured), a running mean.
        frames: frame sets tracked so far.
        view_error: camera name -> last mean reprojection error (crop px) in that view.
    """

    side: int
    joints: np.ndarray
    velocity: np.ndarray
    t_ns: int
    bones: np.ndarray = field(default_factory=lambda: np.full(len(BONES), np.nan))
    frames: int = 0
    view_error: dict[str, float] = field(default_factory=dict)

    def predict(self, t_ns: int) -> np.ndarray:
        """(K, 3) joints at capture time ``t_ns`` (constant velocity, at most ``MAX_DT_S`` ahead)."""
        dt = min(max((t_ns - self.t_ns) * 1e-9, 0.0), MAX_DT_S)
        return self.joints + self.velocity * dt


@dataclass
class TrackStats:
    """Counters since start (published in ``status.engine`` and reported by ``handstream bench``)."""

    frame_sets: int = 0
    acquisitions: int = 0
    crops: int = 0
    tracks_started: int = 0
    lost: dict[str, int] = field(default_factory=lambda: {"views": 0, "joints": 0, "reprojection": 0, "bones": 0,
                                                          "merged": 0})  # fmt: skip

    def as_dict(self) -> dict:
        n = max(self.frame_sets, 1)
        return {
            "frame_sets": self.frame_sets,
            "acquisitions": self.acquisitions,
            "acquisition_rate": round(self.acquisitions / n, 4),
            "crops": self.crops,
            "crops_per_frame_set": round(self.crops / n, 3),
            "tracks_started": self.tracks_started,
            "lost": dict(self.lost),
        }


@dataclass
class HandResult:
    """What the tracker measured for one hand in one frame set (all NaN / 0 when not tracked).

    Attributes:
        joints: (K, 3) metres, NaN where not triangulated (all NaN: not tracked).
        reproj_error: (K,) crop pixels; conf: (K,) mean crop-model confidence of the inlier views;
        n_views: (K,) uint8 views used; presence: the crop model's (or detector's) presence, 0..1;
        joints_2d: (V, K, 2) frame pixels (distorted) of the crops' keypoints, NaN in views not looked at.
        view_error: camera name -> mean reprojection error (crop px) of the inlier joints in that view.
    """

    joints: np.ndarray
    reproj_error: np.ndarray
    conf: np.ndarray
    n_views: np.ndarray
    presence: float
    joints_2d: np.ndarray
    view_error: dict[str, float] = field(default_factory=dict)


Detect = Callable[[list[int], dict[int, np.ndarray]], tuple[np.ndarray, np.ndarray]]
"""The acquisition's detector: (the hands looked for, indices into ``HANDS``; the tracked hands' predicted joints,
hand -> (K, 3) world) -> per-view keypoints (V, H, K, 2) frame px (distorted; NaN = not detected) and presence
(V, H), gated as the engine gates them; run only when the tracker asks. A detector may ignore both arguments (the
shipped one does: :meth:`_acquisition_crops` drops its finds of tracked hands); the search uses them
(engine/search.py)."""


def view_scores(camera: Camera, joints: np.ndarray, min_size_px: float = 12.0) -> float:
    """How well ``camera`` sees a hand at ``joints`` ((K, 3) metres): 0 = not usable, else a score in (0, 2].

    Usable: at least half the joints in front, at least 35% inside the frame, a projected box of at least
    ``min_size_px``. The score prefers joints inside the frame, away from the border, and larger hands (up to
    ~100 px)."""
    uv = camera.project(joints)
    ok = np.isfinite(uv).all(axis=-1)
    if ok.sum() < max(3, len(joints) // 2):
        return 0.0
    w, h = camera.size
    p = uv[ok]
    inside = (p[:, 0] >= 0) & (p[:, 0] <= w - 1) & (p[:, 1] >= 0) & (p[:, 1] <= h - 1)
    frac = inside.sum() / len(joints)
    if frac < 0.35:
        return 0.0
    size = float((p.max(axis=0) - p.min(axis=0)).max())
    if size < min_size_px:
        return 0.0
    centre = p.mean(axis=0)
    border = min(centre[0], w - 1 - centre[0], centre[1], h - 1 - centre[1]) / (0.5 * min(w, h))
    return float(frac + 0.5 * min(max(border, 0.0), 1.0) + 0.5 * min(size / 100.0, 1.0))


def bone_lengths(joints: np.ndarray) -> np.ndarray:
    """(K, 3) metres -> (20,) bone lengths (NaN where a joint is unknown)."""
    return np.linalg.norm(joints[_BONES[:, 1]] - joints[_BONES[:, 0]], axis=-1)


def check_sides(results: list[HandResult], crop_hands: list[int], handedness: np.ndarray,
                targets: dict[int, np.ndarray]) -> None:  # fmt: skip
    """Move a hand found this frame set (no track yet) to the side its crops' mean handedness says, in place, when
    that side is free: the acquisition took the side from one search window's handedness, which is unsure on a
    hand seen edge-on, and the upright crops in every view are better evidence. Tracked hands keep theirs.

    Args:
        results: one :class:`HandResult` per hand (left, right) of this frame set.
        crop_hands: (N,) the hand each crop of the frame set was for; handedness: (N,) the crops' probability
            of a right hand (the landmarks model's output); targets: the hands tracked before this frame set.
    """
    for h in range(len(HANDS)):
        other = 1 - h
        if h in targets or other in targets or not np.isfinite(results[h].joints).any():
            continue
        if np.isfinite(results[other].joints).any():
            return  # both found at once: nothing to swap with
        p_right = float(np.mean([handedness[j] for j, hh in enumerate(crop_hands) if hh == h]))
        if (p_right >= 0.5) != (HANDS[h] == "right"):
            results[h], results[other] = results[other], results[h]
        return


class Tracker:
    """Tracks both hands across frame sets with perspective crops.

    Args:
        cameras: name -> Camera of the rig (metres).
        crop_model: an opened backend of the crop model (a manifest with a ``crop`` rule).
        config: :class:`TrackingConfig`.
        max_crops: the most crops per call (buffers are allocated once).
    """

    def __init__(self, cameras: dict[str, Camera], crop_model: Backend, config: TrackingConfig, max_crops: int):
        m = crop_model.manifest
        if m.crop is None:
            raise HandstreamError(
                f"refiner {m.name!r}: its manifest has no 'crop' rule, so it is a detector, not a refiner "
                "(the tracker's crop model; train one with a [hand_crop] recipe, e.g. training/crop-model.toml)"
            )
        if config.max_views_per_hand < config.min_views:
            raise HandstreamError(
                f"engine.max_views_per_hand: expected at least engine.min_views ({config.min_views}), "
                f"got {config.max_views_per_hand}"
            )
        self.cameras = cameras
        self.backend = crop_model
        self.manifest = m
        self.landmarks = m.kind == "landmarks"  # one hand's keypoints regressed per RGB crop (e.g. MediaPipe's)
        self.codec = None if self.landmarks else m.codec
        self.cfg = config
        # the engine's triangulate rule; a tracked hand needs at least 3 joints whatever min_joints says
        self.rule = TriangulationRule(config.ransac_threshold_px, config.min_views, config.max_hand_extent_m,
                                      max(config.min_joints, 3))  # fmt: skip
        self.margin = float(m.crop["margin"])
        self.min_side = float(m.crop.get("min_side", 0.0))
        w, h = m.input_size
        self.size = (int(w), int(h))
        self._input = np.zeros((max_crops, 3 if self.landmarks else 1, h, w), np.float32)
        self.tracks: dict[int, HandTrack] = {}
        self.stats = TrackStats()
        self._since_acquire = 10**9
        self._backoff = 1  # x the interval before the next acquisition (doubles while acquisitions find nothing)
        self._follow_ups = 0  # acquisitions in a row that found a candidate and started no track (FOLLOW_UPS)
        self._max_interval = max(config.max_acquire_interval, config.acquire_interval)
        self.crops: list[tuple[int, str, CropCamera]] = []  # (hand, camera, crop) of the last frame set
        prepare = getattr(crop_model, "prepare", None)  # torch on CUDA: a CUDA graph per batch size
        if prepare is not None:
            prepare(range(1, max_crops + 1))

    def reset(self) -> None:
        """Forget every track (e.g. after a gap in the frames)."""
        self.tracks.clear()
        self._since_acquire = 10**9
        self._backoff, self._follow_ups = 1, 0

    # --- the steps --------------------------------------------------------------------------------

    def choose_views(self, names: list[str], joints: np.ndarray, track: HandTrack | None) -> list[str]:
        """Up to ``max_views_per_hand`` camera names that see a hand at ``joints`` ((K, 3)), best first."""
        scored = []
        for n in names:
            s = view_scores(self.cameras[n], joints)
            if s <= 0:
                continue
            if track is not None and n in track.view_error:  # a view that measured badly last time ranks lower
                s -= 0.02 * min(track.view_error[n], 20.0)
            scored.append((s, n))
        scored.sort(key=lambda x: -x[0])
        return [n for _, n in scored[: self.cfg.max_views_per_hand]]

    def step(self, names: list[str], images: list[np.ndarray], t_ns: int, detect: Detect,
             timings: dict[str, float]) -> list[HandResult]:  # fmt: skip
        """Track both hands in one frame set.

        Args:
            names, images: the V views of the set (frames at their calibrated sizes).
            t_ns: capture time of the set.
            detect: the acquisition's detector (called at most once, only when a hand is not tracked).
            timings: stage times (ms) are added: ``acquire`` (when the detector ran), ``preprocess`` (view
                choice, crop cameras, resampling), ``infer``, ``decode``, ``triangulate`` (with validation).
        Returns:
            one :class:`HandResult` per hand (left, right).
        """
        cfg = self.cfg
        V = len(names)
        self.stats.frame_sets += 1
        self._since_acquire += 1
        t0 = time.perf_counter()
        targets: dict[int, np.ndarray] = {h: tr.predict(t_ns) for h, tr in self.tracks.items()}
        jobs: list[tuple[int, str, CropCamera]] = []
        for h, joints in sorted(targets.items()):
            for n in self.choose_views(names, joints, self.tracks.get(h)):
                crop = hand_crop(self.cameras[n], joints, self.size, self.margin, self.min_side)
                if crop is not None:
                    jobs.append((h, n, crop))
        t_crops = time.perf_counter() - t0
        presence = np.zeros(len(HANDS), np.float32)
        missing = [h for h in range(len(HANDS)) if h not in targets]
        wait = min(self._backoff * cfg.acquire_interval, self._max_interval) if targets and not self._follow_ups else 1
        if missing and V >= cfg.min_views and self._since_acquire >= wait:
            ta = time.perf_counter()
            keypoints, det_presence = detect(missing, targets)
            self._since_acquire = 0
            self.stats.acquisitions += 1
            started = self.stats.tracks_started
            presence = np.asarray(det_presence, np.float32).max(axis=0)
            jobs += self._acquisition_crops(names, missing, targets, keypoints, det_presence)
            timings["acquire"] = (time.perf_counter() - ta) * 1e3
        t0 = time.perf_counter() - t_crops  # "preprocess" counts the tracked hands' crop cameras made above
        self.crops = jobs
        self.stats.crops += len(jobs)
        view_index = {n: i for i, n in enumerate(names)}
        batch = self._input[: len(jobs)]
        kp = conf = pres = handedness = None
        if jobs:
            views, cams = [view_index[n] for _, n, _ in jobs], [c for _, _, c in jobs]
            if self.landmarks:
                resample(images, views, cams, out=batch, color="rgb")
            else:
                resample(images, views, cams, out=batch[:, 0])
        rays = None
        if jobs and not self.landmarks and self.manifest.kpe:
            rays = np.stack([c.ray_angles(self.codec.stride) for _, _, c in jobs])
        t1 = time.perf_counter()
        timings["preprocess"] = (t1 - t0) * 1e3
        timings["infer"] = timings["decode"] = 0.0  # no crop, no crop model run
        if jobs and self.landmarks:
            hands = np.array([h for h, _, _ in jobs])
            kp, conf, pres, handedness = infer_landmarks(self.backend, batch, hands, timings)  # (N, H, K, 2) crop px
        elif jobs:
            kp, conf, pres = infer_and_decode(self.backend, batch, rays, timings)  # (N, H, K, 2) crop px
        t3 = time.perf_counter()
        results = [self._empty(V) for _ in HANDS]
        for h in range(len(HANDS)):
            idx = [j for j, (hh, _, _) in enumerate(jobs) if hh == h]
            if not idx:
                self._lose(h, "views")
                results[h].presence = float(presence[h])
                continue
            res, reason = self._measure(h, idx, jobs, kp, conf, pres, names)
            if res is None:
                self._lose(h, reason)
                results[h].presence = float(pres[idx, h].max())
                continue
            results[h] = res
        if handedness is not None:
            check_sides(results, [h for h, _, _ in jobs], handedness, targets)
        self._separate(results)
        for h, res in enumerate(results):
            if np.isfinite(res.joints).any():
                self._update(h, res, targets.get(h), t_ns)
        if "acquire" in timings and targets and self._max_interval > cfg.acquire_interval:  # max_acquire_interval
            self._backoff_after(self.stats.tracks_started > started, bool((presence[missing] > 0).any()))
        timings["triangulate"] = (time.perf_counter() - t3) * 1e3
        return results

    def _backoff_after(self, started: bool, candidate: bool) -> None:
        """The wait after an acquisition while another hand is tracked (``max_acquire_interval``, FOLLOW_UPS)."""
        if started:
            self._backoff, self._follow_ups = 1, 0
        elif candidate and self._follow_ups < FOLLOW_UPS:
            self._follow_ups += 1
        else:
            self._backoff, self._follow_ups = min(2 * self._backoff, self._max_interval), 0

    def _acquisition_crops(self, names, missing, targets, keypoints, presence) -> list[tuple[int, str, CropCamera]]:
        """Crops around the detector's hands that are not tracked: (hand, camera, crop) for each view where the
        detector reports hand h (>= 3 gated keypoints) away from where a tracked hand projects (the
        detector's other-side label for a hand already tracked)."""
        jobs = []
        for v, n in enumerate(names):
            cam = self.cameras[n]
            tracked_px = [cam.project(p.mean(axis=0)) for p in targets.values()]
            for h in missing:
                kp = keypoints[v, h]
                ok = np.isfinite(kp).all(axis=-1)
                if ok.sum() < 3:  # (the detect stage has already gated its keypoints by presence and confidence)
                    continue
                lo, hi = kp[ok].min(axis=0), kp[ok].max(axis=0)
                centre, side = (lo + hi) / 2, float((hi - lo).max())
                if any(np.isfinite(p).all() and np.linalg.norm(p - centre) < 0.5 * side for p in tracked_px):
                    continue
                rays = cam.unproject(kp, depth=1.0)  # world points along the detected keypoints' rays
                crop = hand_crop(cam, rays, self.size, self.margin, self.min_side)
                if crop is not None:
                    jobs.append((h, n, crop))
        return jobs

    def _empty(self, V: int) -> HandResult:
        K = NUM_JOINTS
        return HandResult(
            joints=np.full((K, 3), np.nan),
            reproj_error=np.full(K, np.nan),
            conf=np.full(K, np.nan),
            n_views=np.zeros(K, np.uint8),
            presence=0.0,
            joints_2d=np.full((V, K, 2), np.nan),
        )

    def _measure(self, h, idx, jobs, kp, conf, pres, names) -> tuple[HandResult | None, str]:
        """Triangulate and validate hand ``h`` from its crops ``idx``; (None, reason) when it fails."""
        cfg = self.cfg
        pts = np.array(kp[idx, h], np.float64)  # (Vh, K, 2) crop px
        c = np.array(conf[idx, h], np.float64)
        keep = gate(pts, c, pres[idx, h], cfg.confidence_threshold, cfg.crop_presence_threshold)
        pts[~keep] = np.nan
        c[~keep] = 0.0
        if len(idx) < cfg.min_views:
            return None, "views"
        proj = np.stack([jobs[j][2].projection_matrix for j in idx])
        t = triangulate_hands(proj, pts, c, self.rule)
        if not t.found.any():
            return None, "joints"
        joints, found, reproj = t.joints, t.found, t.reproj_error
        if float(np.nanmean(reproj)) > cfg.max_reproj_px:
            return None, "reprojection"
        track = self.tracks.get(h)
        if track is not None and track.frames >= 3:
            rel = np.abs(bone_lengths(joints) / track.bones - 1.0)
            rel = rel[np.isfinite(rel)]
            if len(rel) >= 5 and float(np.median(rel)) > cfg.max_bone_change:
                return None, "bones"
        inl = t.inliers
        V = len(names)
        joints_2d = np.full((V, NUM_JOINTS, 2), np.nan)
        view_index = {n: i for i, n in enumerate(names)}
        for j in idx:
            _, n, crop = jobs[j]
            joints_2d[view_index[n]] = crop.to_frame(pts[idx.index(j)])
        n_views = t.n_views
        view_error = {}  # per-view mean error, for the next frame's view choice
        for i, j in enumerate(idx):
            used = inl[i] & found
            view_error[jobs[j][1]] = float(_reproj_view(pts[i], proj[i], joints)[used].mean()) if used.any() else 99.0
        res = HandResult(
            joints=joints,
            reproj_error=reproj,
            conf=agreement_confidence(t, t.conf, AGREEMENT_SIGMA * self.size[0]) if self.landmarks else t.conf,
            n_views=n_views,
            presence=float(pres[idx, h].max()),
            joints_2d=joints_2d,
            view_error=view_error,
        )
        return res, ""

    def _separate(self, results: list[HandResult]) -> None:
        """Two hands on one place are one hand: keep the older track's (or, for two new ones, the more present)."""
        a, b = results
        if not (np.isfinite(a.joints).any() and np.isfinite(b.joints).any()):
            return
        ca, cb = np.nanmean(a.joints, axis=0), np.nanmean(b.joints, axis=0)
        if np.linalg.norm(ca - cb) >= self.cfg.min_separation_m:
            return
        fa = self.tracks[0].frames if 0 in self.tracks else -1
        fb = self.tracks[1].frames if 1 in self.tracks else -1
        drop = 1 if (fa, a.presence) >= (fb, b.presence) else 0
        self._lose(drop, "merged")
        results[drop] = self._empty(results[drop].joints_2d.shape[0])

    def _lose(self, h: int, reason: str) -> None:
        if h in self.tracks:
            del self.tracks[h]
            self.stats.lost[reason] = self.stats.lost.get(reason, 0) + 1
            self._since_acquire = self.cfg.acquire_interval  # look for it again in the next frame set
            self._backoff = 1

    def _update(self, h: int, res: HandResult, predicted: np.ndarray | None, t_ns: int) -> None:
        measured = res.joints
        found = np.isfinite(measured).all(axis=-1)
        centre = measured[found].mean(axis=0)
        if predicted is None:  # a new track: joints not measured start at the hand's centre
            filled = np.where(found[:, None], measured, centre)
        else:
            filled = np.where(found[:, None], measured, predicted + (centre - predicted[found].mean(axis=0)))
        track = self.tracks.get(h)
        if track is None:
            track = self.tracks[h] = HandTrack(h, filled, np.zeros(3), int(t_ns))
            self.stats.tracks_started += 1
        else:
            dt = (t_ns - track.t_ns) * 1e-9
            if 0 < dt <= MAX_DT_S * 2:
                v = (centre - track.joints[found].mean(axis=0)) / dt
                track.velocity = 0.5 * track.velocity + 0.5 * v  # smoothed: one noisy frame does not throw the crop
            else:
                track.velocity = np.zeros(3)
            track.joints, track.t_ns = filled, int(t_ns)
        bl = bone_lengths(measured)
        ok = np.isfinite(bl)
        known = np.isfinite(track.bones)
        w = 1.0 / min(track.frames + 1, 10)  # running mean over the first frames, then an EMA
        track.bones[ok & ~known] = bl[ok & ~known]
        upd = ok & known
        track.bones[upd] = (1 - w) * track.bones[upd] + w * bl[upd]
        track.frames += 1
        track.view_error = res.view_error


def _reproj_view(pts: np.ndarray, proj: np.ndarray, joints: np.ndarray) -> np.ndarray:
    """(K,) pixel distance between ``pts`` (K, 2) and the projection of ``joints`` (K, 3) by ``proj`` (3, 4)."""
    X = np.concatenate([joints, np.ones((len(joints), 1))], axis=1) @ proj.T
    with np.errstate(invalid="ignore", divide="ignore"):
        uv = X[:, :2] / X[:, 2:3]
    return np.linalg.norm(uv - pts, axis=-1)
