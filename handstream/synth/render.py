"""The renderer: two posed hands + a scene + a look -> one image per camera, with exact ground truth.

Legend: ``V`` views, ``H`` hands (2: left, right), ``K`` joints (21), ``A`` angles (22), ``(h, w)`` image size.

Images: the hands' capsules are ray cast through every camera's own pixel rays
(:class:`~handstream.synth.raster.RayGrid`), depth tested against each other and against the scene,
shaded (:func:`~handstream.synth.scene.shade`), blurred a little (optics and anti-aliasing), optionally
motion blurred, exposed, and given sensor noise.

Ground truth (:class:`FrameLabels`) never comes from the rasterizer: 2D joints are
``Camera.project`` of the float64 3D joints (lens distortion included). Visibility per view and joint
(:class:`Visibility`) is read from the depth buffer at the joint's (rounded) pixel:

* ``OUT_OF_FRAME`` when the projection is outside the image, behind the camera, or beyond the lens'
  valid field of view (the pixel's own ray does not point at the joint);
* otherwise, let ``d`` be the joint's distance from the camera and ``r`` the radius of the thickest
  capsule that contains it (its own surface is then at least at ``d - r``). The surface in the depth
  buffer at that pixel occludes the joint when it is nearer than ``d - r - 2 mm`` and does not belong to
  a capsule that contains the joint: ``SELF_OCCLUDED`` (a capsule of the same hand),
  ``OCCLUDED_BY_OTHER_HAND`` (the other hand or its arm), ``OCCLUDED_BY_SCENE`` (table, objects);
* else ``VISIBLE``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import cv2
import numpy as np

from handstream.errors import HandstreamError
from handstream.geometry import Rig
from handstream.skeleton import HANDS, NUM_JOINTS
from handstream.synth.hand import FAR_ARM_CAPSULES, FOREARM_CAPSULES, NUM_CAPSULES, UPPER_ARM_CAPSULES
from handstream.synth.motion import PosedHand
from handstream.synth.raster import RayGrid
from handstream.synth.scene import Look, Scene, shade


class Visibility(IntEnum):
    """Per-joint, per-view visibility code (``uint8`` in label arrays)."""

    VISIBLE = 0
    SELF_OCCLUDED = 1
    OCCLUDED_BY_OTHER_HAND = 2
    OCCLUDED_BY_SCENE = 3
    OUT_OF_FRAME = 4


OCCLUSION_TOLERANCE = 0.002
"""Metres: an occluder must be this much nearer than the joint's own surface."""
_CONTAIN_TOLERANCE = 0.001
_RAY_ANGLE_TOL = 0.03  # radians between a joint's direction and its pixel's ray (~3-6 px)


@dataclass
class FrameLabels:
    """Ground truth of one frame (all views).

    Attributes:
        keypoints_2d: (V, H, K, 2) float64 distorted pixels (OpenCV convention): ``Camera.project`` of
            :attr:`joints_3d`, also outside the image; NaN behind the camera.
        visibility: (V, H, K) uint8 :class:`Visibility` codes.
        joints_3d: (H, K, 3) float64 metres, rig frame.
        hand_box: (V, H, 4) float32 ``x0, y0, x1, y1`` (inclusive pixels) of the hand's visible pixels
            (fingers, palm and wrist; not the arm); NaN when the hand covers no pixel of the view.
        angles: (H, A) float32 joint angles, radians.
        scale: hand scale of the subject (1: adult).
    """

    keypoints_2d: np.ndarray
    visibility: np.ndarray
    joints_3d: np.ndarray
    hand_box: np.ndarray
    angles: np.ndarray
    scale: float

    handedness = HANDS
    """Names of the hand axis: ``("left", "right")``."""

    @property
    def in_view(self) -> np.ndarray:
        """(V, H, K) bool: the joint projects into the image (any code but ``OUT_OF_FRAME``)."""
        return self.visibility != Visibility.OUT_OF_FRAME

    @property
    def visible(self) -> np.ndarray:
        """(V, H, K) bool: the joint is visible."""
        return self.visibility == Visibility.VISIBLE


@dataclass
class RenderBuffers:
    """Per-view depth and owner buffers of a frame (for tests and debugging).

    Attributes:
        depth: per view, (h, w) float32 distance along the pixel's ray to the nearest surface (hands or
            scene; inf: nothing).
        owner: per view, (h, w) int16: ``hand * NUM_CAPSULES + capsule`` of the hand surface there, -1 for
            the scene.
    """

    depth: list[np.ndarray]
    owner: list[np.ndarray]


def hand_capsule_arrays(hands: tuple[PosedHand, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Both hands' capsules concatenated: a (H*C, 3), b (H*C, 3), r (H*C,); capsule ``h * C + c``."""
    return (
        np.concatenate([h.a for h in hands]),
        np.concatenate([h.b for h in hands]),
        np.concatenate([h.r for h in hands]),
    )


def containment(hand: PosedHand) -> tuple[np.ndarray, np.ndarray]:
    """Which capsules contain which joints (C, K) bool, and each joint's radius (K,) (thickest container)."""
    ba = hand.b - hand.a  # (C, 3)
    pa = hand.joints[None, :, :] - hand.a[:, None, :]  # (C, K, 3)
    s = np.clip(np.einsum("ckx,cx->ck", pa, ba) / np.maximum(np.sum(ba * ba, axis=1), 1e-18)[:, None], 0.0, 1.0)
    dist = np.linalg.norm(pa - s[..., None] * ba[:, None, :], axis=-1)
    contains = dist <= hand.r[:, None] + _CONTAIN_TOLERANCE
    radius = np.max(np.where(contains, hand.r[:, None], 0.0), axis=0)
    return contains, radius


class Renderer:
    """Renders frames of two hands for a rig (one :class:`RayGrid`, buffers reused between frames).

    The hands, wrists and the first 8 cm of the forearms are cast at full resolution; the rest of the
    arms (big, near the cameras, without labels) at half resolution (2x2 blocks), shaded once per block,
    then depth tested per pixel against the hands and the scene.

    Args:
        rig: the cameras.
        color: ``"mono"`` or ``"rgb"``.
    """

    def __init__(self, rig: Rig, color: str = "mono"):
        if color not in ("mono", "rgb"):
            raise HandstreamError(f"renderer: color: expected 'mono' or 'rgb', got {color!r}")
        self.rig = rig
        self.color = color
        self.grid = RayGrid(rig)
        n = self.grid.num_pixels
        self._owner = np.full(n, -1, dtype=np.int16)
        self._depth = np.full(n, np.inf, dtype=np.float32)
        self._images = [
            np.zeros((cam.height, cam.width) if color == "mono" else (cam.height, cam.width, 3), np.uint8)
            for cam in rig
        ]
        # small, fixed per-part shading variety: palm slightly lighter, arm slightly darker
        tone = np.ones(NUM_CAPSULES, np.float32)
        tone[15:22] = 1.03
        tone[list(FOREARM_CAPSULES + UPPER_ARM_CAPSULES)] = 0.93
        self._tone = np.tile(tone, 2)
        far = np.zeros(NUM_CAPSULES, bool)
        far[list(FAR_ARM_CAPSULES)] = True
        self._far_arm = np.tile(far, 2)  # sleeved, and cast at half resolution

    def render(
        self,
        hands: tuple[PosedHand, PosedHand],
        look: Look,
        scene: Scene,
        t: float,
        rng: np.random.Generator,
        *,
        earlier: tuple[PosedHand, PosedHand] | None = None,
        buffers: bool = False,
    ) -> tuple[list[np.ndarray], FrameLabels, RenderBuffers | None]:
        """One frame.

        Args:
            hands: the left and right hand at the frame's time.
            look: the sequence's look; ``scene``: its background.
            t: time in seconds (exposure changes).
            rng: this frame's random stream (noise placement).
            earlier: the hands at the start of the exposure, for motion blur (None: no motion blur).
            buffers: also return the depth and owner buffers.
        Returns:
            images (per view, (h, w) or (h, w, 3) uint8; reused arrays: copy them to keep them past the
            next call), labels, and the buffers (or None).
        """
        if look.color != self.color:
            raise HandstreamError(f"render: the look is {look.color!r} but the renderer makes {self.color!r} images")
        grid = self.grid
        V = len(self.rig)
        a, b, r = hand_capsule_arrays(hands)
        gain = look.gain(t)

        # one cast: hands, wrists and first forearm pieces at full resolution, the rest of the arms in
        # 2x2 blocks (their own z-buffer), shaded once per block, depth tested per pixel below
        hits = grid.cast(a, b, r, half=self._far_arm)
        view = np.repeat(np.arange(V), np.diff(hits.view_bounds))
        is_far = self._far_arm[hits.capsule]
        rays = grid.rays(hits.pixel)
        normals = grid.normals(hits, a, b, r, rays)
        radiance = self._shade(look, normals, rays, hits.depth, hits.capsule.astype(np.int64), view)
        fields = (hits.pixel, hits.depth, hits.capsule, view, radiance)
        front = ~is_far & (hits.depth < scene.depth.take(hits.pixel))
        h_pix, h_depth, h_cap, h_view, h_vals = (x.take(np.flatnonzero(front), axis=0) for x in fields)
        b_pix, b_depth, b_cap, b_view, b_vals = (x.take(np.flatnonzero(is_far), axis=0) for x in fields)
        pix4, valid4 = grid.blocks(b_pix)
        self._depth[h_pix] = h_depth
        self._owner[h_pix] = h_cap
        # each pixel of a block against the hands and the scene there
        nearest = np.minimum(self._depth.take(pix4), scene.depth.take(pix4))
        keep = valid4 & (b_depth[:, None] < nearest)
        rows = np.nonzero(keep)[0]
        a_pix, a_depth, a_cap, a_view, a_vals = pix4[keep], b_depth[rows], b_cap[rows], b_view[rows], b_vals[rows]
        self._depth[a_pix] = a_depth
        self._owner[a_pix] = a_cap
        # hand pixels now behind an arm are no longer visible
        shown = self._owner.take(h_pix) == h_cap
        h_bounds = np.searchsorted(h_view, np.arange(V + 1))
        a_bounds = np.searchsorted(a_view, np.arange(V + 1))

        # the visible pixels of each hand and arm per view, and the boxes of the hands
        vis_pix, vis_cap, rois = [], [], []
        boxes = np.full((V, 2, 4), np.nan, np.float32)
        for v, cam in enumerate(self.rig):
            hs = slice(h_bounds[v], h_bounds[v + 1])
            as_ = slice(a_bounds[v], a_bounds[v + 1])
            local = np.concatenate([h_pix[hs][shown[hs]], a_pix[as_]]) - grid.offsets[v]
            caps = np.concatenate([h_cap[hs][shown[hs]], a_cap[as_]])
            vis_pix.append(local)
            vis_cap.append(caps)
            rois.append(None)
            if local.size:
                ys, xs = np.divmod(local.astype(np.int32), np.int32(cam.width))
                pad = 3  # blur region: hands and arms
                rois[v] = (
                    slice(max(int(ys.min()) - pad, 0), min(int(ys.max()) + pad + 1, cam.height)),
                    slice(max(int(xs.min()) - pad, 0), min(int(xs.max()) + pad + 1, cam.width)),
                )
                right = caps >= NUM_CAPSULES
                hand = (caps % NUM_CAPSULES) < FOREARM_CAPSULES[0]  # fingers, palm, wrist: not the arm
                for h, mine in enumerate((~right & hand, right & hand)):
                    if mine.any():
                        boxes[v, h] = (xs[mine].min(), ys[mine].min(), xs[mine].max(), ys[mine].max())

        values_h = np.clip(h_vals * (255.0 * gain), 0, 255).astype(np.uint8)
        values_a = np.clip(a_vals * (255.0 * gain), 0, 255).astype(np.uint8)
        lut = np.clip(np.arange(256) * gain, 0, 255).astype(np.uint8)
        images = []
        for v in range(V):
            img = self._images[v]
            cv2.LUT(scene.background[v], lut, dst=img)
            flat = img.reshape(-1) if self.color == "mono" else img.reshape(-1, 3)
            hs = slice(h_bounds[v], h_bounds[v + 1])
            as_ = slice(a_bounds[v], a_bounds[v + 1])
            flat[h_pix[hs] - grid.offsets[v]] = values_h[hs]
            flat[a_pix[as_] - grid.offsets[v]] = values_a[as_]  # arms in front of hands: written last
            if rois[v] is not None:
                roi = img[rois[v]]
                roi[...] = cv2.GaussianBlur(roi, (0, 0), look.blur_sigma)
            images.append(img)
        if earlier is not None and look.motion_blur > 0:
            self._motion_blur(images, vis_pix, vis_cap, hands, earlier)
        for v, img in enumerate(images):
            h, w = img.shape[:2]
            oy = rng.integers(0, scene.noise_pos[v].shape[0] - h + 1)
            ox = rng.integers(0, scene.noise_pos[v].shape[1] - w + 1)
            cv2.add(img, scene.noise_pos[v][oy : oy + h, ox : ox + w], dst=img)
            cv2.subtract(img, scene.noise_neg[v][oy : oy + h, ox : ox + w], dst=img)

        labels = self._labels(hands, scene, boxes)
        bufs = None
        if buffers:
            depth_full = np.minimum(self._depth, scene.depth)
            bufs = RenderBuffers(
                [
                    depth_full[grid.offsets[v] : grid.offsets[v + 1]].reshape(c.height, c.width).copy()
                    for v, c in enumerate(self.rig)
                ],
                [
                    self._owner[grid.offsets[v] : grid.offsets[v + 1]].reshape(c.height, c.width).copy()
                    for v, c in enumerate(self.rig)
                ],
            )
        for p in (h_pix, a_pix):  # leave the buffers clean for the next frame
            self._depth[p] = np.inf
            self._owner[p] = -1
        return images, labels, bufs

    def cast_cost(self, hands: tuple[PosedHand, PosedHand]) -> tuple[int, int]:
        """(pixel or block, capsule) pairs tested and pixels hit (a block counts 4) for ``hands``: cost figures."""
        hits = self.grid.cast(*hand_capsule_arrays(hands), half=self._far_arm)
        far = self._far_arm[hits.capsule]
        return hits.tested, int(np.sum(~far) + 4 * np.sum(far))

    def _shade(self, look: Look, normals, rays, depth, capsule, view) -> np.ndarray:
        """Radiance (exposure 1) of hand surface points: (M,) mono or (M, 3) BGR."""
        light = np.asarray(look.light_dir, dtype=np.float64)
        sleeved = self._far_arm[capsule] if look.sleeve is not None else None
        if look.color == "mono":
            albedo = look.skin_ir * self._tone[capsule]
            if sleeved is not None:
                albedo[sleeved] = float(np.mean(look.sleeve))
            light_pp = light
        else:
            albedo = np.asarray(look.skin, np.float32)[None, :] * self._tone[capsule][:, None]
            if sleeved is not None:
                albedo[sleeved] = np.asarray(look.sleeve, np.float32)
            light_cam = np.stack([cam.R @ light for cam in self.rig]).astype(np.float32)
            light_pp = light_cam[view]
        return shade(look, normals, rays, depth, albedo, light_pp)

    def _motion_blur(self, images, vis_pix, vis_cap, hands, earlier) -> None:
        """Smear each hand's region along its image motion during the exposure (a line kernel)."""
        for v, cam in enumerate(self.rig):
            for h in range(2):
                mine = vis_pix[v][(vis_cap[v] >= h * NUM_CAPSULES) & (vis_cap[v] < (h + 1) * NUM_CAPSULES)]
                if mine.size < 20:
                    continue
                move = cam.project(hands[h].joints) - cam.project(earlier[h].joints)
                move = move[np.isfinite(move).all(axis=1)]
                if len(move) < 3:
                    continue
                shift = np.median(move, axis=0)
                length = float(np.hypot(*shift))
                if length < 1.5:
                    continue
                n = int(min(np.ceil(length), 41))
                n += 1 - n % 2
                kernel = np.zeros((n, n), np.float32)
                c = n // 2
                ux, uy = shift / length
                for i in np.linspace(-c, c, 2 * n):
                    kernel[int(round(c + i * uy)), int(round(c + i * ux))] = 1.0
                kernel /= kernel.sum()
                ys, xs = np.divmod(mine, cam.width)
                pad = c + 2
                x0, x1 = max(int(xs.min()) - pad, 0), min(int(xs.max()) + pad + 1, cam.width)
                y0, y1 = max(int(ys.min()) - pad, 0), min(int(ys.max()) + pad + 1, cam.height)
                roi = images[v][y0:y1, x0:x1]
                roi[...] = cv2.filter2D(roi, -1, kernel, borderType=cv2.BORDER_REPLICATE)

    def _labels(self, hands, scene: Scene, boxes: np.ndarray) -> FrameLabels:
        """Labels from the 3D joints and the filled depth / owner buffers (before they are cleared)."""
        grid = self.grid
        V = len(self.rig)
        joints = np.stack([h.joints for h in hands])  # (H, K, 3)
        kp = np.stack([cam.project(joints) for cam in self.rig])  # (V, H, K, 2)
        cam_pts = grid.to_camera(joints)  # (V, H, K, 3)
        dist = np.linalg.norm(cam_pts, axis=-1)
        widths = np.array([cam.width for cam in self.rig])[:, None, None]
        heights = np.array([cam.height for cam in self.rig])[:, None, None]
        with np.errstate(invalid="ignore"):
            inside = (kp[..., 0] >= -0.5) & (kp[..., 0] < widths - 0.5)
            inside &= (kp[..., 1] >= -0.5) & (kp[..., 1] < heights - 0.5)
        px = np.clip(np.rint(np.nan_to_num(kp[..., 0])), 0, widths - 1).astype(np.int64)
        py = np.clip(np.rint(np.nan_to_num(kp[..., 1])), 0, heights - 1).astype(np.int64)
        pix = grid.offsets[:V, None, None] + py * widths + px  # (V, H, K)
        ray = grid.rays(pix.ravel()).reshape(pix.shape + (3,)).astype(np.float64)
        cosang = np.sum(ray * cam_pts, axis=-1) / np.maximum(dist, 1e-12)
        inside &= grid.valid[pix] & (cosang > np.cos(_RAY_ANGLE_TOL))

        # depth and owner of the nearest surface at each joint's pixel
        owner = self._owner[pix].astype(np.int64)
        surf = np.where(owner >= 0, self._depth[pix], scene.depth[pix]).astype(np.float64)
        vis = np.full(pix.shape, Visibility.VISIBLE, dtype=np.uint8)
        for h, hand in enumerate(hands):
            contains, radius = containment(hand)
            own = owner[:, h]  # (V, K)
            own_hand = np.where(own >= 0, own // NUM_CAPSULES, -1)
            own_cap = np.where(own >= 0, own % NUM_CAPSULES, 0)
            contained = (own_hand == h) & contains[own_cap, np.arange(NUM_JOINTS)[None, :]]
            nearer = surf[:, h] < dist[:, h] - radius[None, :] - OCCLUSION_TOLERANCE
            occluded = nearer & ~contained
            code = np.where(own_hand == h, Visibility.SELF_OCCLUDED, Visibility.OCCLUDED_BY_OTHER_HAND)
            code = np.where(own_hand < 0, Visibility.OCCLUDED_BY_SCENE, code)
            vis[:, h] = np.where(occluded, code, Visibility.VISIBLE)
        vis[~inside] = Visibility.OUT_OF_FRAME

        return FrameLabels(
            keypoints_2d=kp,
            visibility=vis,
            joints_3d=joints,
            hand_box=boxes,
            angles=np.stack([h.angles for h in hands]).astype(np.float32),
            scale=0.0,
        )
