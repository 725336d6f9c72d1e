"""Looks and backgrounds: skin, light, exposure, noise, and a room with a cluttered table around the hands.

Legend: ``V`` views, ``(H, W)`` image size of a view.

A :class:`Look` is drawn once per sequence (one subject in one place): skin reflectance, lighting,
exposure, sensor noise, blur. Two lighting models:

* ``mono`` (infrared look, like a headset's tracking cameras): an illuminator at the headset, so
  brightness falls off with the square of the distance: near hands are bright, the room is dim;
* ``rgb``: a key light from above plus ambient and a little fill from the viewer; no falloff.

A :class:`Scene` is the static world behind the hands, rendered once per sequence through the same
pixel rays as the hands (so every view sees the same 3D room): a box-shaped room with textured walls,
floor and ceiling, a table below the workspace (sometimes none) with paper, mats, cables and objects
(cups, bottles, pens, balls as capsules). It keeps, per view, the background image at exposure 1 and
the depth of every pixel (for the depth test against the hands and for ``OCCLUDED_BY_SCENE``), and
banks of sensor noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from handstream.synth.raster import RayGrid
from handstream.synth.rigs import Workspace

# Skin reflectance, BGR in [0, 1], light to dark (sRGB-ish values of common skin tones).
SKIN_TONES = np.array(
    [
        [0.71, 0.80, 0.95],
        [0.62, 0.74, 0.92],
        [0.55, 0.68, 0.87],
        [0.45, 0.60, 0.80],
        [0.37, 0.52, 0.74],
        [0.30, 0.43, 0.64],
        [0.22, 0.33, 0.52],
        [0.16, 0.25, 0.40],
    ]
)
_NOISE_PAD = 32
_IR_REF_DISTANCE = 0.30  # metres at which the infrared illuminator gives its nominal brightness
_IR_FALLOFF = 1.5  # exponent of the illuminator's falloff (2 physically; auto-exposure tempers it)


@dataclass(frozen=True)
class Look:
    """How one sequence looks (drawn by :func:`random_look`).

    Attributes:
        color: ``"mono"`` or ``"rgb"``.
        skin: (3,) BGR reflectance of the skin in [0, 1] (``mono`` uses :attr:`skin_ir`).
        skin_ir: near-infrared reflectance of the skin (skin is bright in the infrared).
        light_dir: (3,) unit vector towards the key light, rig frame (``rgb``).
        key: key light strength (``rgb``); for ``mono``, the illuminator's strength at 0.3 m.
        ambient: ambient light.
        fill: light from the viewer's direction (``rgb``).
        exposure: base gain (1: nominal).
        exposure_wobble: relative amplitude of slow exposure changes (auto-exposure hunting).
        exposure_period: seconds per exposure oscillation.
        noise_sigma: sensor noise, 8-bit levels (Gaussian).
        blur_sigma: optical blur of the hands (pixels), which also anti-aliases their edges.
        motion_blur: fraction of a frame interval the shutter is open for motion blur (0: off).
        tint: (3,) BGR white balance of the whole image (``rgb``).
        sleeve: (3,) BGR reflectance of a sleeve over the forearm (beyond 6 cm from the wrist), or None
            for bare arms; ``mono`` uses its mean.
    """

    color: str = "mono"
    skin: tuple[float, float, float] = (0.55, 0.68, 0.87)
    skin_ir: float = 0.8
    light_dir: tuple[float, float, float] = (0.2, -0.9, -0.3)
    key: float = 0.8
    ambient: float = 0.3
    fill: float = 0.2
    exposure: float = 1.0
    exposure_wobble: float = 0.05
    exposure_period: float = 7.0
    noise_sigma: float = 2.0
    blur_sigma: float = 0.7
    motion_blur: float = 0.0
    tint: tuple[float, float, float] = (1.0, 1.0, 1.0)
    sleeve: tuple[float, float, float] | None = None

    def gain(self, t: float) -> float:
        """Exposure gain at time ``t`` seconds."""
        return float(self.exposure * (1.0 + self.exposure_wobble * np.sin(2 * np.pi * t / self.exposure_period)))


def random_look(rng: np.random.Generator, color: str, *, motion_blur: bool | None = None) -> Look:
    """A random :class:`Look` for colour mode ``color``; ``motion_blur`` None: on for ~30% of sequences."""
    skin = SKIN_TONES[rng.integers(len(SKIN_TONES))] * rng.uniform(0.92, 1.08, 3)
    light = np.array([rng.uniform(-0.6, 0.6), -1.0, rng.uniform(-0.6, 0.3)])
    light /= np.linalg.norm(light)
    blur = (rng.random() < 0.3) if motion_blur is None else motion_blur
    sleeve = tuple(float(v) for v in rng.uniform(0.05, 0.9, 3)) if rng.random() < 0.5 else None
    if color == "mono":
        return Look(
            color="mono",
            skin=tuple(np.clip(skin, 0, 1)),
            skin_ir=float(rng.uniform(0.6, 0.95)),
            key=float(rng.uniform(0.45, 0.8)),
            ambient=float(rng.uniform(0.05, 0.3)),
            fill=0.0,
            exposure=float(np.exp(rng.uniform(np.log(0.65), np.log(1.3)))),
            exposure_wobble=float(rng.uniform(0.0, 0.12)),
            exposure_period=float(rng.uniform(3.0, 12.0)),
            noise_sigma=float(rng.uniform(1.0, 6.0)),
            blur_sigma=float(rng.uniform(0.5, 1.0)),
            motion_blur=float(rng.uniform(0.3, 0.9)) if blur else 0.0,
            sleeve=sleeve,
        )
    return Look(
        color="rgb",
        skin=tuple(np.clip(skin, 0, 1)),
        skin_ir=0.8,
        light_dir=tuple(light),
        key=float(rng.uniform(0.45, 0.85)),
        ambient=float(rng.uniform(0.25, 0.5)),
        fill=float(rng.uniform(0.05, 0.25)),
        exposure=float(np.exp(rng.uniform(np.log(0.7), np.log(1.35)))),
        exposure_wobble=float(rng.uniform(0.0, 0.1)),
        exposure_period=float(rng.uniform(3.0, 12.0)),
        noise_sigma=float(rng.uniform(1.0, 5.0)),
        blur_sigma=float(rng.uniform(0.5, 1.0)),
        motion_blur=float(rng.uniform(0.3, 0.9)) if blur else 0.0,
        tint=tuple(rng.uniform(0.9, 1.1, 3)),
        sleeve=sleeve,
    )


def shade(
    look: Look,
    normal: np.ndarray,
    ray: np.ndarray,
    depth: np.ndarray,
    albedo: np.ndarray,
    light_cam: np.ndarray,
) -> np.ndarray:
    """Radiance (exposure 1, 1.0 = white) of surface points seen along camera-frame rays.

    Args:
        normal: (M, 3) unit normals, camera frame.
        ray: (M, 3) unit rays, camera frame (from the camera towards the point).
        depth: (M,) distance along the ray, metres.
        albedo: (M,) reflectance (mono) or (M, 3) BGR reflectance (rgb).
        light_cam: (3,) or (M, 3) unit vector towards the key light, in the camera frame of each point.
    Returns:
        (M,) (mono) or (M, 3) (rgb) float32.
    """
    nx, ny, nz = normal[:, 0], normal[:, 1], normal[:, 2]
    facing = np.clip(-(nx * ray[:, 0] + ny * ray[:, 1] + nz * ray[:, 2]), 0.0, 1.0)
    if look.color == "mono":
        falloff = np.minimum((_IR_REF_DISTANCE / np.maximum(depth, 0.05)) ** _IR_FALLOFF, 2.0)
        return (albedo * (look.ambient + look.key * facing**0.8 * falloff)).astype(np.float32)
    lc = np.asarray(light_cam, dtype=np.float32)
    lambert = np.clip(nx * lc[..., 0] + ny * lc[..., 1] + nz * lc[..., 2], 0.0, 1.0)
    light = look.ambient + look.key * lambert + look.fill * facing
    return (albedo * light[:, None] * np.asarray(look.tint, dtype=np.float32)).astype(np.float32)


# --- procedural textures --------------------------------------------------------------------------


def _fractal_noise(rng: np.random.Generator, h: int, w: int, octaves: int = 5, base: int = 4) -> np.ndarray:
    """(h, w) float32 smooth noise in [0, 1]: random grids of increasing resolution, resized and summed."""
    out = np.zeros((h, w), np.float32)
    amp, total = 1.0, 0.0
    for i in range(octaves):
        n = base * 2**i
        small = rng.random((max(2, n * h // max(h, w)), max(2, n * w // max(h, w)))).astype(np.float32)
        out += amp * cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
        total += amp
        amp *= 0.55
    out /= total
    return np.clip((out - out.min()) / max(float(np.ptp(out)), 1e-6), 0, 1)


def _color(rng: np.random.Generator, lo: float = 0.15, hi: float = 0.9) -> np.ndarray:
    return rng.uniform(lo, hi, 3).astype(np.float32)


def _table_texture(rng: np.random.Generator, size: int = 512) -> np.ndarray:
    """BGR float32 texture of a table top (1.6 m x 1.6 m): wood, laminate or cloth, with clutter on it."""
    kind = rng.integers(3)
    noise = _fractal_noise(rng, size, size)
    base = _color(rng, 0.2, 0.75)
    if kind == 0:  # wood grain
        yy = np.arange(size, dtype=np.float32)[:, None]
        grain = 0.5 + 0.5 * np.sin(yy * rng.uniform(0.15, 0.4) + 12 * noise)
        tex = base[None, None] * (0.75 + 0.35 * grain[..., None])
    elif kind == 1:  # laminate
        tex = base[None, None] * (0.9 + 0.2 * noise[..., None])
    else:  # cloth / mat
        fine = _fractal_noise(rng, size, size, octaves=3, base=64)
        tex = base[None, None] * (0.75 + 0.3 * fine[..., None] + 0.1 * noise[..., None])
    tex = np.ascontiguousarray(tex, dtype=np.float32)
    for _ in range(int(rng.integers(3, 12))):  # papers, mats, books
        c = tuple(float(v) for v in _color(rng, 0.3, 0.95))
        center = tuple(float(v) for v in rng.uniform(0, size, 2))
        box = (center, tuple(float(v) for v in rng.uniform(30, 140, 2)), float(rng.uniform(0, 180)))
        pts = cv2.boxPoints(box).astype(np.int32)
        cv2.fillConvexPoly(tex, pts, c, lineType=cv2.LINE_AA)
        if rng.random() < 0.5:  # text-like lines on paper
            for k in range(int(rng.integers(3, 9))):
                shift = (k - 4) * 6
                p0 = np.array(center) + np.array([-30, shift])
                p1 = p0 + np.array([rng.uniform(20, 60), 0])
                cv2.line(tex, tuple(int(v) for v in p0), tuple(int(v) for v in p1), (0.15, 0.15, 0.15), 1)
    for _ in range(int(rng.integers(1, 5))):  # cables
        pts = np.cumsum(rng.normal(0, 25, (8, 2)), axis=0) + rng.uniform(0, size, 2)
        cv2.polylines(
            tex, [pts.astype(np.int32)], False, tuple(float(v) for v in _color(rng, 0.05, 0.4)), 3, cv2.LINE_AA
        )
    return tex


def _wall_texture(rng: np.random.Generator, size: int = 512) -> np.ndarray:
    """BGR float32 texture of walls (one tile = 2 m x 2 m): paint with stains, posters, shelves, windows."""
    base = _color(rng, 0.45, 0.9)
    tex = base[None, None] * (0.85 + 0.2 * _fractal_noise(rng, size, size)[..., None])
    tex = np.ascontiguousarray(tex, dtype=np.float32)
    for _ in range(int(rng.integers(1, 6))):
        x0, y0 = rng.uniform(0, size * 0.8, 2)
        w, h = rng.uniform(40, 200, 2)
        c = _color(rng, 0.05, 1.0)
        if rng.random() < 0.2:
            c = np.full(3, 1.4, np.float32)  # a window: brighter than paint
        cv2.rectangle(tex, (int(x0), int(y0)), (int(x0 + w), int(y0 + h)), tuple(float(v) for v in c), -1)
    return tex


def _floor_texture(rng: np.random.Generator, size: int = 256) -> np.ndarray:
    base = _color(rng, 0.15, 0.6)
    tex = base[None, None] * (0.7 + 0.4 * _fractal_noise(rng, size, size, base=8)[..., None])
    return np.ascontiguousarray(tex, dtype=np.float32)


def _sample(tex: np.ndarray, u: np.ndarray, v: np.ndarray, metres: float) -> np.ndarray:
    """Texture (h, w, 3) values at plane coordinates (u, v) metres, tiling every ``metres``."""
    h, w = tex.shape[:2]
    n = len(u)
    cols = 1024  # cv2.remap wants maps below 32767 on each side
    rows = -(-n // cols)
    mx = np.zeros(rows * cols, np.float32)
    my = np.zeros(rows * cols, np.float32)
    mx[:n] = np.mod(u / metres, 1.0) * w
    my[:n] = np.mod(v / metres, 1.0) * h
    out = cv2.remap(tex, mx.reshape(rows, cols), my.reshape(rows, cols), cv2.INTER_LINEAR, borderMode=cv2.BORDER_WRAP)
    return out.reshape(-1, 3)[:n]


# --- the scene ----------------------------------------------------------------------------------------


@dataclass
class Scene:
    """The static world of a sequence, rendered once into every view.

    Attributes:
        background: per view, (H, W) uint8 (mono) or (H, W, 3) uint8 BGR radiance at exposure 1.
        depth: (sum H*W,) float32 distance along each pixel's ray to the scene (inf: nothing).
        noise_pos, noise_neg: per view, uint8 noise banks (H + 32, W + 32[, 3]); a frame adds one
            window of ``noise_pos`` and subtracts the same window of ``noise_neg``.
        objects: (n, 7) capsules of the clutter objects (a xyz, b xyz, r), rig frame.
    """

    background: list[np.ndarray]
    depth: np.ndarray
    noise_pos: list[np.ndarray]
    noise_neg: list[np.ndarray]
    objects: np.ndarray


def build_scene(grid: RayGrid, look: Look, workspace: Workspace, rng: np.random.Generator) -> Scene:
    """Render a random room with a table and clutter into every view of ``grid`` (~30 ms per view)."""
    rig = grid.rig
    table_y = float(workspace.table + rng.uniform(0.0, 0.08))
    has_table = rng.random() < 0.85
    room_lo = np.array([-rng.uniform(1.0, 2.5), -rng.uniform(0.7, 1.3), -rng.uniform(0.8, 2.0)])
    room_hi = np.array([rng.uniform(1.0, 2.5), rng.uniform(1.4, 1.7), rng.uniform(1.2, 3.5)])
    table_lo = np.array([-rng.uniform(0.5, 0.9), rng.uniform(0.0, 0.15)])  # x, z
    table_hi = np.array([rng.uniform(0.5, 0.9), rng.uniform(0.8, 1.3)])
    table_tex = _table_texture(rng)
    wall_tex = _wall_texture(rng)
    floor_tex = _floor_texture(rng)
    ceiling_albedo = _color(rng, 0.6, 0.95)

    # clutter: capsules standing or lying on the table
    objects = []
    if has_table:
        for _ in range(int(rng.integers(2, 9))):
            x = rng.uniform(table_lo[0] + 0.1, table_hi[0] - 0.1)
            z = rng.uniform(max(table_lo[1], 0.25), table_hi[1] - 0.1)
            kind = rng.integers(3)
            if kind == 0:  # cup / bottle, standing
                r = rng.uniform(0.025, 0.045)
                height = rng.uniform(0.06, 0.22)
                a = [x, table_y - r, z]
                b = [x, table_y - max(height - r, r), z]
            elif kind == 1:  # pen / tool / box, lying
                r = rng.uniform(0.005, 0.025)
                length = rng.uniform(0.08, 0.25)
                ang = rng.uniform(0, np.pi)
                d = 0.5 * length * np.array([np.cos(ang), 0.0, np.sin(ang)])
                a = np.array([x, table_y - r, z]) - d
                b = np.array([x, table_y - r, z]) + d
            else:  # ball
                r = rng.uniform(0.02, 0.05)
                a = b = [x, table_y - r, z]
            objects.append(np.concatenate([a, b, [r]]))
    objects_arr = np.array(objects, dtype=np.float64).reshape(-1, 7)
    object_albedo = rng.uniform(0.1, 0.9, (len(objects_arr), 3)).astype(np.float32)

    obj_hits = grid.cast(objects_arr[:, :3], objects_arr[:, 3:6], objects_arr[:, 6]) if len(objects_arr) else None
    obj_normals = (
        grid.normals(obj_hits, objects_arr[:, :3], objects_arr[:, 3:6], objects_arr[:, 6])
        if obj_hits is not None
        else None
    )

    backgrounds, depth_all, pos_banks, neg_banks = [], [], [], []
    light = np.asarray(look.light_dir, dtype=np.float64)
    for v, cam in enumerate(rig):
        lo, hi = grid.offsets[v], grid.offsets[v + 1]
        d_cam = np.stack([grid.dx[lo:hi], grid.dy[lo:hi], grid.dz[lo:hi]], axis=1).astype(np.float64)
        valid = grid.valid[lo:hi]
        d = d_cam @ cam.R  # rig frame (R^T applied to row vectors)
        o = cam.center
        n_pix = len(d)
        with np.errstate(divide="ignore", invalid="ignore"):
            # room: nearest exit through the box's faces
            t_face = np.where(d > 0, (room_hi - o) / d, np.where(d < 0, (room_lo - o) / d, np.inf))
            axis = np.argmin(t_face, axis=1)
            t = t_face[np.arange(n_pix), axis]
            positive = d[np.arange(n_pix), axis] > 0
            normal = np.zeros((n_pix, 3))
            normal[np.arange(n_pix), axis] = np.where(positive, -1.0, 1.0)
            surface = np.where(axis == 1, np.where(positive, 2, 3), 1)  # 1 walls, 2 floor, 3 ceiling
            if has_table:
                tt = (table_y - o[1]) / d[:, 1]
                px = o[0] + tt * d[:, 0]
                pz = o[2] + tt * d[:, 2]
                on = (
                    (tt > 0)
                    & (tt < t)
                    & (px > table_lo[0])
                    & (px < table_hi[0])
                    & (pz > table_lo[1])
                    & (pz < table_hi[1])
                )
                t = np.where(on, tt, t)
                normal[on] = [0.0, -1.0, 0.0]
                surface = np.where(on, 0, surface)
        p = o + np.where(valid & np.isfinite(t), t, 0.0)[:, None] * d
        albedo = np.zeros((n_pix, 3), np.float32)
        for sid in range(4):
            m = np.flatnonzero((surface == sid) & valid)
            if m.size == 0:
                continue
            if sid == 0:
                albedo[m] = _sample(table_tex, p[m, 0] - table_lo[0], p[m, 2] - table_lo[1], 1.6)
            elif sid == 1:
                along = np.where(axis[m] == 0, p[m, 2], p[m, 0])
                albedo[m] = _sample(wall_tex, along, p[m, 1], 2.0)
            elif sid == 2:
                albedo[m] = _sample(floor_tex, p[m, 0], p[m, 2], 1.0)
            else:
                albedo[m] = ceiling_albedo
        depth = np.where(valid, t, np.inf).astype(np.float32)
        n_cam = (normal @ cam.R.T).astype(np.float32)
        rays32 = d_cam.astype(np.float32)
        if obj_hits is not None:
            s = slice(obj_hits.view_bounds[v], obj_hits.view_bounds[v + 1])
            pix = obj_hits.pixel[s] - lo
            closer = obj_hits.depth[s] < depth[pix]
            pix = pix[closer]
            depth[pix] = obj_hits.depth[s][closer]
            n_cam[pix] = obj_normals[s][closer]
            albedo[pix] = object_albedo[obj_hits.capsule[s][closer]]
        if look.color == "mono":
            a = (albedo @ np.array([0.25, 0.45, 0.30], np.float32)).astype(np.float32)
            radiance = shade(look, n_cam, rays32, depth, a, cam.R @ light)
        else:
            radiance = shade(look, n_cam, rays32, depth, albedo, cam.R @ light)
        radiance[~valid] = 0
        shape = (cam.height, cam.width) if look.color == "mono" else (cam.height, cam.width, 3)
        img = np.clip(radiance * 255.0, 0, 255).astype(np.uint8).reshape(shape)
        img = cv2.GaussianBlur(img, (0, 0), 0.8)
        backgrounds.append(img)
        depth_all.append(depth)
        bank_shape = (cam.height + _NOISE_PAD, cam.width + _NOISE_PAD) + (() if look.color == "mono" else (3,))
        noise = rng.normal(0.0, look.noise_sigma, bank_shape).astype(np.float32)
        pos_banks.append(np.clip(np.rint(noise), 0, 255).astype(np.uint8))
        neg_banks.append(np.clip(np.rint(-noise), 0, 255).astype(np.uint8))
    return Scene(backgrounds, np.concatenate(depth_all), pos_banks, neg_banks, objects_arr)
