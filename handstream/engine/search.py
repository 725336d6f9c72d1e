"""Acquisition by search: find a hand in a view with the crop model itself, for cameras the detector is blind to.

Legend: ``V`` views, ``H`` hands (2), ``K`` joints (21), ``N`` search crops.

The shipped detector has only seen rendered hands; on a real RGB camera it finds none. A ``landmarks`` crop
model (MediaPipe's network, imported by :mod:`handstream.models.importer`) says whether a crop holds a hand
(its presence output) and which one (handedness), so it can look for hands: each view is covered by square
windows at three sizes (0.9, 0.6 and 0.4 of the frame's shorter side, overlapping by half) and four roll
angles (the network wants a hand upright, fingers up, and a camera may see it any way round), 116 windows per
view. Every call (one per acquisition) evaluates a few crops of each view, all views in one batch, and
returns the best hand per view and side; the tracker then makes its usual crops around those keypoints and
triangulates. A view's crops in a call are, in this order: an upright crop around the hand it found in the last
call (a hand moves little between acquisitions); else, when another view found a hand, crops of that hand seen
from this view at those of 9 distances along the finding view's rays (0.12 to 3 m) where this view would see it
(the views predict each other's crops, so one view's find is confirmed in the next call instead of waiting for a
blind sweep); then the next windows of its sweep. While one hand is tracked, finds on it are dropped and a find
elsewhere is the other hand, whatever the handedness output says (:meth:`LandmarkSearch.__call__`); the tracker
follows a find up in the next frame sets (``engine/tracking.py::FOLLOW_UPS``). With MediaPipe's palm detector
(``model.palm_detector``, :mod:`handstream.models.palm`) a call looks first where it finds palms, in one view a
call, and sweeps only a view where it finds none (:class:`LandmarkSearch`, ``palm``). The windows are interleaved
across sizes and angles so every call looks at all scales; a full sweep of a view takes
``ceil(116 / crops_per_view)`` acquisitions (39 at the default 3 per view).

Measured on the real stereo clip (the lite network, one thread): the best window holds the hand with presence
0.5-1.0 at 0.4 of the frame and one of the four angles (frames 0, 100, 200, both views); the engine first tracks
the hand at frame set 15 and then keeps it in 234 of the 235 frame sets left, the detector never running. With
the clip's mirror image as a second, left hand in two more views (``benchmarks/mirrored_rig.py``), both hands are
tracked from frame set 30-45 on.
"""

from __future__ import annotations

import math

import numpy as np

from handstream.engine.backends import Backend
from handstream.engine.crops import resample
from handstream.geometry.camera import Camera
from handstream.geometry.crop_camera import CropCamera, hand_crop, look_at_rotation
from handstream.skeleton import HANDS, NUM_JOINTS

SIZES = (0.9, 0.6, 0.4)
"""Window sides, as fractions of the frame's shorter side."""
ANGLES = (0.0, 0.5 * math.pi, math.pi, 1.5 * math.pi)
"""Roll of the window about its axis, radians (0: upright in the image)."""
DEPTHS_M = tuple(float(d) for d in np.geomspace(0.12, 3.0, 9))
"""Distances (metres along the finding view's rays) at which a hand found in one view is looked for in the
others: a headset's 12 cm to a room camera's 3 m, 9 steps of x1.5."""
SEARCH_VIEWS = 2
"""A call evaluates at most ``crops_per_view x SEARCH_VIEWS`` crops, whatever the number of views: the follow-ups
of the last call's finds first, then the sweeps of the views in turn. Without the cap a call on four cameras cost
54 ms (12 crops, lite) and each dropped frames at 30 fps; with it a rig of V > 2 views sweeps each view every
V / 2 calls."""
SEARCH_MAX_INTERVAL = 16
"""Frame sets (half a second at 30 fps) the tracker waits at most between searches that keep finding nothing:
each costs ``2 x crops_per_view`` crops for two views, so a hand that is not there (the second hand of a
one-handed task) must not be looked for on every third frame set (``TrackingConfig.max_acquire_interval``)."""


def _box(kp: np.ndarray) -> tuple[np.ndarray, float] | None:
    """(centre (2,), side) of the square-ish box around the finite points of ``kp`` (K, 2), None under 3 points."""
    ok = np.isfinite(kp).all(axis=-1)
    if ok.sum() < 3:
        return None
    lo, hi = kp[ok].min(axis=0), kp[ok].max(axis=0)
    return (lo + hi) / 2, float((hi - lo).max())


def _on_a_tracked_hand(kp: np.ndarray, tracked: list[tuple[np.ndarray, float]]) -> bool:
    """Is the find ``kp`` (K, 2) frame px on a tracked hand, given as the (centre, side) of its projection? Yes
    when the tracked hand's centre is inside the find's box, or the find's centre inside the tracked hand's box
    grown by half its side each way: a window that grazes a hand places its keypoints roughly and off-centre."""
    box = _box(kp)
    if box is None:
        return False
    centre, side = box
    for c, s in tracked:
        if (np.abs(c - centre) <= side / 2).all() or (np.abs(centre - c) <= s).all():
            return True
    return False


def search_window(camera: Camera, centre_px: np.ndarray, side_px: float, angle: float,
                  size: tuple[int, int]) -> CropCamera:  # fmt: skip
    """A crop camera looking through frame pixel ``centre_px`` (2,) whose crop spans about ``side_px`` frame
    pixels, rolled by ``angle`` radians (0: the crop's down is the image's down)."""
    ray = camera.normalize(np.asarray([centre_px], np.float64))[0]
    forward = np.array([ray[0], ray[1], 1.0])
    down = np.array([math.sin(angle), math.cos(angle), 0.0])
    f = float(np.sqrt(abs(camera.K[0, 0] * camera.K[1, 1])))
    return CropCamera(camera, look_at_rotation(forward, down), max(size) * f / float(side_px), size)


def search_windows(camera: Camera, size: tuple[int, int]) -> list[CropCamera]:
    """Every window of one camera, interleaved across sizes and angles (one of each group in turn)."""
    w, h = camera.size
    short = min(w, h)
    groups = []
    for frac in SIZES:
        side = frac * short
        n = max(1, math.ceil((1.0 - frac) / (frac / 2.0)) + 1)  # windows overlapping by half
        xs = np.linspace(side / 2, w - side / 2, n) if n > 1 else np.array([w / 2])
        ys = np.linspace(side / 2, h - side / 2, n) if n > 1 else np.array([h / 2])
        for angle in ANGLES:
            groups.append([search_window(camera, np.array([x, y]), side, angle, size) for y in ys for x in xs])
    out = []
    for i in range(max(len(g) for g in groups)):
        out += [g[i] for g in groups if i < len(g)]
    return out


class LandmarkSearch:
    """The acquisition's ``detect`` for a landmarks crop model (module docstring).

    Args:
        cameras: name -> Camera of the rig.
        backend: an opened landmarks model (``infer_landmarks``).
        crops_per_view: windows evaluated per view and call.
        palm: an imported palm detector (:class:`handstream.models.palm.PalmDetector`), or None. With one, a call
            looks at one view besides the follow-ups (the views in turn; the detector costs 7-10 ms a 720x720
            view on this project's 2-core VM): the detector runs on it and each palm it finds away from the tracked
            hands gives one window, MediaPipe's hand window rotated upright
            (:meth:`~handstream.models.palm.Palm.window`); only when it finds none is the view swept. The
            follow-ups then confirm a find in the other views. For RGB cameras: the detector was trained on RGB
            images of real hands (mono IR is not measured here).
        presence_threshold: a window holds a hand when its presence is at least this (low: a window that
            only grazes a hand, or holds it at the wrong angle, still places its keypoints roughly; the tracker's
            upright crop around them is the real test, by the crop model and the triangulation).
    """

    def __init__(self, cameras: dict[str, Camera], backend: Backend, crops_per_view: int = 3,
                 presence_threshold: float = 0.2, palm=None):  # fmt: skip
        w, h = backend.manifest.input_size
        self.size = (int(w), int(h))
        self.backend = backend
        self.windows = {n: search_windows(cam, self.size) for n, cam in cameras.items()}
        self.cursor = dict.fromkeys(cameras, 0)
        self.crops_per_view = int(crops_per_view)
        self.threshold = float(presence_threshold)
        self._input = np.zeros((self.crops_per_view * len(cameras), 3, h, w), np.float32)
        self.cameras = cameras
        crop = backend.manifest.crop or {}
        self.margin, self.min_side = float(crop.get("margin", 1.5)), float(crop.get("min_side", 0.0))
        self.hits: dict[str, np.ndarray] = {}  # view -> (K, 2) frame px of the hand the last call found there
        self.depth_cursor = dict.fromkeys(cameras, 0)
        self.next_view = 0  # the view whose sweep goes first in the next call (SEARCH_VIEWS)
        self.palm = palm
        self.palm_calls = 0  # views the palm detector ran on
        self.palms_found = 0  # palms it found there, away from the tracked hands

    def __call__(self, names: list[str], images: list[np.ndarray], sides: list[int] | None = None,
                 tracked: dict[int, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
        """Look for hands in the next windows of every view.

        Args:
            names, images: the V views of the frame set.
            sides: the hands looked for (indices into ``HANDS``; None: both).
            tracked: the hands already tracked, hand -> (K, 3) predicted world joints. A find on one of them in a
                view (its centre within half its size of where the tracked hand projects) is dropped: following
                it up would spend the next calls' crops on a hand already tracked, not on the missing one. A find
                elsewhere that the network calls the tracked hand's side is the missing hand when only one is
                missing (two hands, one of each: the handedness output is unsure on a hand seen edge-on or from
                the back, and a second hand away from the first is the other one).
        Returns:
            keypoints (V, H, K, 2) frame px (NaN where no hand was found) and presence (V, H), the layout of
            the detect stage's; a view's hand side comes from the network's handedness.
        """
        V = len(names)
        keypoints = np.full((V, len(HANDS), NUM_JOINTS, 2), np.nan)
        presence = np.zeros((V, len(HANDS)), np.float32)
        view_of, crops, index = [], [], []  # index: the window's, or -1 for a crop made from a hit
        hits = {n: h for n, h in self.hits.items() if n in names}
        own = {v: self._from_hits(n, hits) for v, n in enumerate(names)}
        budget = self.crops_per_view * min(V, SEARCH_VIEWS)
        for v in own:  # the follow-ups of the last call's finds first: they confirm a hand
            for crop in own[v][: max(0, budget - len(crops))]:
                crops.append(crop)
                view_of.append(v)
                index.append(-1)
        swept = 0
        tracked_px = self._tracked_px(names, tracked or {})
        for k in range(V):  # then the sweeps, the views in turn from where the last call stopped
            if len(crops) >= budget or (self.palm is not None and k >= 1):  # palm: one view a call (its cost)
                break
            v = (self.next_view + k) % V
            n, wins = names[v], self.windows[names[v]]
            take = min(self.crops_per_view - len(own[v]), budget - len(crops), len(wins))
            palms = self._from_palms(n, images[v], tracked_px[v])[: max(0, take)] if self.palm and take > 0 else []
            if palms:  # the palm detector's windows instead of the sweep's; where it finds none, the sweep goes on
                crops += palms
                view_of += [v] * len(palms)
                index += [-1] * len(palms)
                swept += 1
                continue
            for j in range(max(0, take)):
                index.append((self.cursor[n] + j) % len(wins))
                crops.append(wins[index[-1]])
                view_of.append(v)
            self.cursor[n] = (self.cursor[n] + max(0, take)) % len(wins)
            swept += 1
        self.next_view = (self.next_view + swept) % V
        self.hits = {}
        if not crops:
            return keypoints, presence
        batch = resample(images, view_of, crops, out=self._input[: len(crops)], color="rgb")
        out = self.backend.infer_landmarks(batch)
        wanted = list(range(len(HANDS))) if sides is None else list(sides)
        for i, (v, crop) in enumerate(zip(view_of, crops, strict=True)):
            p = float(out.presence[i])
            if p < self.threshold or not wanted:
                continue
            kp = crop.to_frame(out.keypoints[i])
            if _on_a_tracked_hand(kp, tracked_px[v]):
                continue
            side = HANDS.index("right") if out.handedness[i] >= 0.5 else HANDS.index("left")
            if side not in wanted and len(wanted) == 1:
                side = wanted[0]
            if side in wanted and p > presence[v, side]:
                presence[v, side] = p
                keypoints[v, side] = kp
                self.hits[names[v]] = kp.copy()
                if index[i] >= 0:
                    self.cursor[names[v]] = index[i]  # this window again if the hit's own crop misses next time
        return keypoints, presence

    def _from_palms(self, name: str, image: np.ndarray, tracked_px: list[tuple[np.ndarray, float]]) -> list[CropCamera]:
        """Windows of view ``name`` around the palms the palm detector finds in ``image`` (best first), those on
        a tracked hand left out."""
        palms = self.palm(image, color="bgr" if image.ndim == 3 else "grey")
        self.palm_calls += 1
        cam = self.cameras[name]
        out = []
        for p in palms:
            if _on_a_tracked_hand(p.keypoints, tracked_px):
                continue
            centre, side, angle = p.window()
            out.append(search_window(cam, centre, side, angle, self.size))
        self.palms_found += len(out)
        return out

    def _tracked_px(self, names: list[str], tracked: dict[int, np.ndarray]) -> list[list[tuple[np.ndarray, float]]]:
        """Per view, the (centre (2,), side) frame px box of each tracked hand's projected joints."""
        out = []
        for n in names:
            cam = self.cameras[n]
            boxes = [_box(cam.project(j)) for j in tracked.values() if np.isfinite(j).any()]
            out.append([b for b in boxes if b is not None])
        return out

    def _from_hits(self, name: str, hits: dict[str, np.ndarray]) -> list[CropCamera]:
        """Crops for view ``name`` made from the last call's hits: around its own hit (the hand moved little),
        else, when another view found a hand, along that hand's rays at the next depths of :data:`DEPTHS_M`
        (the hand seen from this view at each distance: the views predict each other's crops)."""
        cam = self.cameras[name]
        if name in hits:
            crop = hand_crop(cam, cam.unproject(hits[name], depth=1.0), self.size, self.margin, self.min_side)
            return [] if crop is None else [crop]
        if not hits:
            return []
        other, kp = next(iter(hits.items()))
        src = self.cameras[other]
        hands = [src.unproject(kp, depth=np.full(len(kp), d)) for d in DEPTHS_M]  # (K, 3) world, per distance
        w, h = cam.size
        seen = []  # the distances at which this view would see the hand's centre (the others cannot confirm it)
        for k, joints in enumerate(hands):
            c = cam.project(joints.mean(axis=0)[None])[0]
            if np.isfinite(c).all() and 0 <= c[0] < w and 0 <= c[1] < h:
                seen.append(k)
        out = []
        for _ in range(min(self.crops_per_view, len(seen))):
            k = seen[self.depth_cursor[name] % len(seen)]
            self.depth_cursor[name] += 1
            crop = hand_crop(cam, hands[k], self.size, self.margin, self.min_side)
            if crop is not None:
                out.append(crop)
        return out
