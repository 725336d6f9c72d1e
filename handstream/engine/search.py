"""Acquisition by search: find a hand in a view with the crop model itself, for cameras the detector is blind to.

Legend: ``V`` views, ``H`` hands (2), ``K`` joints (21), ``N`` search crops.

The shipped detector has only seen rendered hands; on a real RGB camera it finds none. A ``landmarks`` crop
model (MediaPipe's network, imported by :mod:`handstream.models.importer`) says whether a crop holds a hand
(its presence output) and which one (handedness), so it can look for hands: each view is covered by square
windows at three sizes (0.9, 0.6 and 0.4 of the frame's shorter side, overlapping by half) and four roll
angles (the network wants a hand upright, fingers up, and a camera may see it any way round), 116 windows per
view. Every call (one per acquisition) evaluates the next few windows of each view, all views in one batch,
and returns the best hand per view and side; the tracker then makes its usual crops around those keypoints.
The windows are interleaved across sizes and angles so each call looks at all scales; a full sweep of a view
takes ``ceil(116 / crops_per_view)`` acquisitions (39 at the default 3 per view).

Measured on the real stereo clip (frames 0, 100, 200, both views, the lite network): the best window holds the
hand with presence 0.5-1.0, at 0.4 of the frame and one of the four angles.
"""

from __future__ import annotations

import math

import numpy as np

from handstream.engine.backends import Backend
from handstream.engine.crops import resample
from handstream.geometry.camera import Camera
from handstream.geometry.crop_camera import CropCamera, look_at_rotation
from handstream.skeleton import HANDS, NUM_JOINTS

SIZES = (0.9, 0.6, 0.4)
"""Window sides, as fractions of the frame's shorter side."""
ANGLES = (0.0, 0.5 * math.pi, math.pi, 1.5 * math.pi)
"""Roll of the window about its axis, radians (0: upright in the image)."""


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
        presence_threshold: a window holds a hand when its presence is at least this.
    """

    def __init__(self, cameras: dict[str, Camera], backend: Backend, crops_per_view: int = 3,
                 presence_threshold: float = 0.5):  # fmt: skip
        w, h = backend.manifest.input_size
        self.size = (int(w), int(h))
        self.backend = backend
        self.windows = {n: search_windows(cam, self.size) for n, cam in cameras.items()}
        self.cursor = dict.fromkeys(cameras, 0)
        self.crops_per_view = int(crops_per_view)
        self.threshold = float(presence_threshold)
        self._input = np.zeros((self.crops_per_view * len(cameras), 3, h, w), np.float32)

    def __call__(self, names: list[str], images: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Look for hands in the next windows of every view.

        Returns:
            keypoints (V, H, K, 2) frame px (NaN where no hand was found) and presence (V, H), the layout of
            the detect stage's; a view's hand side comes from the network's handedness.
        """
        V = len(names)
        keypoints = np.full((V, len(HANDS), NUM_JOINTS, 2), np.nan)
        presence = np.zeros((V, len(HANDS)), np.float32)
        view_of, crops, index = [], [], []
        for v, n in enumerate(names):
            wins = self.windows[n]
            for k in range(min(self.crops_per_view, len(wins))):
                index.append((self.cursor[n] + k) % len(wins))
                crops.append(wins[index[-1]])
                view_of.append(v)
            self.cursor[n] = (self.cursor[n] + self.crops_per_view) % len(wins)
        if not crops:
            return keypoints, presence
        batch = resample(images, view_of, crops, out=self._input[: len(crops)], color="rgb")
        out = self.backend.infer_landmarks(batch)
        for i, (v, crop) in enumerate(zip(view_of, crops, strict=True)):
            p = float(out.presence[i])
            side = HANDS.index("right") if out.handedness[i] >= 0.5 else HANDS.index("left")
            if p >= self.threshold and p > presence[v, side]:
                presence[v, side] = p
                keypoints[v, side] = crop.to_frame(out.keypoints[i])
                self.cursor[names[v]] = index[i]  # look here first next time: a hand moves little meanwhile
        return keypoints, presence
