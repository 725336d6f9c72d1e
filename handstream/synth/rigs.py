"""Rig presets for synthetic data: ``stereo``, ``headset4`` and ``random``.

A :class:`RigPreset` is a :class:`~handstream.geometry.Rig` plus what a synthetic camera needs besides
its calibration: frame rate, colour mode (``"mono"``: 8-bit infrared-like, ``"rgb"``: BGR) and the
egocentric :class:`Workspace` where the hands move.

Rig frame of every preset (the *headset frame*): origin between the cameras, ``+z`` forward (the mean
optical axis), ``+y`` down, ``+x`` to the wearer's right; metres. Hands are placed in front of the
headset, 0.2-0.7 m from the cameras, mostly below eye level (``y > 0``).

================  ===========================================================================
``stereo``        two forward pinhole cameras with mild OpenCV distortion, 8 cm apart, tilted
                  20 degrees down, 640x480 RGB, 30 fps
``headset4``      the four head-mounted fisheye cameras of the AssemblyHands headset, 636x480
                  mono, 30 fps (shipped in ``rigs/headset4.toml``; see below)
``random``        a seeded generator of plausible layouts of 2-6 cameras (head-mounted clusters
                  or cameras around the workspace; pinhole, OpenCV or fisheye lenses; mono or
                  RGB), for testing layouts the estimator has not seen
a file            your own rig: a calibration file (:func:`preset_from_calibration`): its cameras,
                  re-expressed in a headset frame found from them, hands where most views see them
================  ===========================================================================

``headset4`` comes from one AssemblyHands calibration (facebookresearch/assemblyhands-toolkit, CC BY-NC
4.0): the 4 head-mounted cameras of
``nusar-2021_action_both_9012-c07c_9012_user_id_2021-02-01_164345.json`` loaded by
:func:`handstream.geometry.load_calibration` (metres; the OVFishEye62 lens fitted with the 4-term fisheye
model) and re-expressed in the headset frame by :func:`headset_frame`. The numbers are shipped in the
package (the data folder is not available to every user); :func:`headset4_from_assemblyhands` makes
them again, and a test checks that the two agree.
"""

from __future__ import annotations

import importlib.resources
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from handstream.errors import HandstreamError
from handstream.geometry import Camera, Rig, load_calibration, save_calibration
from handstream.geometry.io import CALIBRATION_EXTENSIONS

PRESET_NAMES = ("stereo", "headset4", "random")
"""The names :func:`get_preset` accepts."""

COLOR_MODES = ("mono", "rgb")

HEADSET4_SOURCE = "nusar-2021_action_both_9012-c07c_9012_user_id_2021-02-01_164345.json"
"""The AssemblyHands calibration (in ``rigs/assemblyhands/nimble_json_calib/``) headset4 was made from."""

_HEADSET4_RESOURCE = "headset4.toml"


@dataclass(frozen=True)
class Workspace:
    """Where hands move, in the rig frame (metres): a box, plus rest places outside every camera's view.

    Attributes:
        low: (3,) minimum x, y, z of the wrist positions of hands in view.
        high: (3,) maximum x, y, z.
        away: (2, 3) wrist positions of a hand out of view (left, right): hanging by the body, behind
            the cameras' field of view.
        elbow: (2, 3) where the elbows roughly are (left, right), for the forearm direction.
        shoulder: (2, 3) the shoulders (left, right), where the upper arms go.
        table: height (y, down) of the table top below the hands.
    """

    low: tuple[float, float, float]
    high: tuple[float, float, float]
    away: tuple[tuple[float, float, float], tuple[float, float, float]] = ((-0.28, 0.70, -0.30), (0.28, 0.70, -0.30))
    elbow: tuple[tuple[float, float, float], tuple[float, float, float]] = ((-0.22, 0.42, 0.04), (0.22, 0.42, 0.04))
    shoulder: tuple[tuple[float, float, float], tuple[float, float, float]] = (
        (-0.18, 0.24, -0.10),
        (0.18, 0.24, -0.10),
    )
    table: float = 0.50

    @property
    def center(self) -> np.ndarray:
        """(3,) centre of the box."""
        return (np.array(self.low) + np.array(self.high)) / 2


@dataclass(frozen=True)
class RigPreset:
    """A synthetic camera setup: calibration, frame rate, colour mode, workspace.

    Attributes:
        name: preset name (``"random"`` presets are named ``"random-<seed>"``).
        rig: the cameras, in the headset frame (metres).
        fps: frames per second of the synthetic cameras.
        color: ``"mono"`` (8-bit single channel, infrared look) or ``"rgb"`` (8-bit BGR).
        workspace: where the hands move.
        description: one line for humans.
    """

    name: str
    rig: Rig
    fps: float = 30.0
    color: str = "mono"
    workspace: Workspace = field(default_factory=lambda: Workspace((-0.25, 0.0, 0.25), (0.25, 0.30, 0.52)))
    description: str = ""

    def __post_init__(self) -> None:
        if self.color not in COLOR_MODES:
            raise HandstreamError(f"rig preset {self.name!r}: color: expected 'mono' or 'rgb', got {self.color!r}")
        if not (0 < float(self.fps) <= 1000):
            raise HandstreamError(f"rig preset {self.name!r}: fps: expected a number in (0, 1000], got {self.fps!r}")

    @property
    def channels(self) -> int:
        """1 for mono, 3 for BGR."""
        return 1 if self.color == "mono" else 3


def get_preset(
    name: str, seed: int = 0, *, color: str | None = None, fps: float | None = None, unit_scale: float | None = None
) -> RigPreset:
    """A rig preset by name, or the preset of a calibration file.

    Args:
        name: ``"stereo"``, ``"headset4"`` or ``"random"`` (``"random-<seed>"`` also works), or the path of a
            calibration file (``.toml``, ``.yaml``, ``.json``; :func:`preset_from_calibration`).
        unit_scale: metres per length unit of a calibration file (presets are in metres).
        seed: the layout seed of ``"random"`` (ignored by the others).
        color: override the preset's colour mode (``"mono"`` / ``"rgb"``).
        fps: override the preset's frame rate.
    Raises:
        HandstreamError: for an unknown name or a bad override.
    """
    if not isinstance(name, str):
        raise HandstreamError(f"rig preset: expected a name ({', '.join(PRESET_NAMES)}), got {name!r}")
    key = name.strip().lower()
    if Path(name).suffix.lower() in CALIBRATION_EXTENSIONS:
        return preset_from_calibration(name, unit_scale=unit_scale, color=color, fps=fps)
    if unit_scale is not None:
        raise HandstreamError(
            f"--unit-scale / unit_scale: only for a calibration file; the preset {name!r} is in metres"
        )
    if key.startswith("random-") and key[7:].isdigit():
        key, seed = "random", int(key[7:])
    if key == "stereo":
        preset = stereo_preset()
    elif key == "headset4":
        preset = headset4_preset()
    elif key == "random":
        preset = random_preset(seed)
    else:
        raise HandstreamError(
            f"rig preset: unknown preset {name!r}; expected one of {', '.join(PRESET_NAMES)} or a calibration "
            f"file ({', '.join(CALIBRATION_EXTENSIONS)})"
        )
    if color is not None or fps is not None:
        preset = RigPreset(
            preset.name,
            preset.rig,
            fps=preset.fps if fps is None else fps,
            color=preset.color if color is None else color,
            workspace=preset.workspace,
            description=preset.description,
        )
    return preset


# --- stereo -------------------------------------------------------------------------------------------


def _rot_x(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def stereo_preset() -> RigPreset:
    """Two forward cameras 8 cm apart, pitched 20 degrees down, 640x480, f = 320 px (90 degrees wide), RGB."""
    K = np.array([[320.0, 0.0, 319.5], [0.0, 320.0, 239.5], [0.0, 0.0, 1.0]])
    dist = (-0.06, 0.012, 0.0, 0.0, -0.001)
    # rig -> camera rotation: the optical axis (third row) tilts towards +y (down) by 20 degrees
    R = _rot_x(np.deg2rad(20.0))
    cams = []
    for name, x in (("left", -0.04), ("right", 0.04)):
        center = np.array([x, 0.0, 0.0])
        cams.append(Camera(name, (640, 480), K, dist, "opencv", R, -R @ center))
    return RigPreset(
        "stereo",
        Rig(cams),
        fps=30.0,
        color="rgb",
        workspace=Workspace((-0.16, 0.0, 0.28), (0.16, 0.22, 0.55), table=0.45),
        description="two forward RGB cameras, 8 cm baseline, 20 deg down, 640x480, 30 fps",
    )


# --- headset4 -----------------------------------------------------------------------------------------


def headset_frame(rig: Rig) -> tuple[np.ndarray, np.ndarray]:
    """The headset frame of a 4-camera head-mounted rig, from its cameras alone.

    Origin: the mean camera centre. ``z``: the mean optical axis. ``x``: from the left pair of cameras
    (views 0 and 1) to the right pair (views 2 and 3), made orthogonal to ``z``. ``y = z x x`` (down).

    Returns:
        ``R`` (3, 3) rotation from the rig's world frame to the headset frame (rows: x, y, z) and the
        origin ``o`` (3,), so that ``X_headset = R @ (X_world - o)``.
    """
    if len(rig) != 4:
        raise HandstreamError(f"headset_frame: expected a rig of 4 cameras, got {len(rig)}")
    centers = rig.centers
    z = np.sum([cam.R[2] for cam in rig], axis=0)
    z /= np.linalg.norm(z)
    lr = (centers[2] + centers[3] - centers[0] - centers[1]) / 2
    x = lr - (lr @ z) * z
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    return np.stack([x, y, z]), centers.mean(axis=0)


def reexpress(rig: Rig, R: np.ndarray, origin: np.ndarray) -> Rig:
    """The same cameras in the frame ``X_new = R @ (X_world - origin)``."""
    cams = []
    for cam in rig:
        R_new = cam.R @ R.T
        t_new = cam.R @ origin + cam.t
        cams.append(cam.with_pose(R_new, t_new))
    return Rig(cams)


def headset4_from_assemblyhands(path: str | Path) -> Rig:
    """The ``headset4`` cameras made from an AssemblyHands calibration JSON (its 4 head-mounted cameras).

    ``load_calibration(path)`` (egocentric cameras, millimetres -> metres, OVFishEye62 -> fisheye fit),
    then :func:`reexpress` into :func:`headset_frame`.
    """
    rig = load_calibration(path)
    R, origin = headset_frame(rig)
    return reexpress(rig, R, origin)


_HEADSET4_HEADER = """\
# headset4: the 4 head-mounted fisheye cameras of the AssemblyHands headset (cx3-02), for synthetic data.
# Source: facebookresearch/assemblyhands-toolkit calibration
#   {source}
# (CC BY-NC 4.0; these numbers are a derivative of it and keep that licence, with attribution).
# Made by handstream.synth.rigs.headset4_from_assemblyhands(path): load_calibration(path) (the egocentric
# cameras, millimetres -> metres, OVFishEye62 fitted with the 4-term fisheye model), then re-expressed in
# the headset frame (origin: mean camera centre; z: mean optical axis; x: left pair -> right pair; y down).
# Regenerate: python -c "from handstream.synth.rigs import write_headset4; write_headset4(PATH_TO_JSON)"
"""


def write_headset4(source: str | Path, target: str | Path | None = None) -> Path:
    """Write the shipped ``headset4.toml`` (or ``target``) from an AssemblyHands calibration JSON."""
    source = Path(source)
    target = Path(target) if target is not None else Path(__file__).with_name("rigs") / _HEADSET4_RESOURCE
    rig = headset4_from_assemblyhands(source)
    save_calibration(rig, target)
    body = target.read_text(encoding="utf-8")
    body = body[body.index("[cam_0]") :]  # drop save_calibration's generic header, keep the tables
    meta = (
        "\n[metadata]\n"
        'preset = "headset4"\n'
        f'source = "{source.name}"\n'
        'license = "CC BY-NC 4.0 (facebookresearch/assemblyhands-toolkit)"\n'
        "fps = 30.0\n"
        'color = "mono"\n'
    )
    target.write_text(_HEADSET4_HEADER.format(source=source.name) + "\n" + body + meta, encoding="utf-8")
    return target


def headset4_path() -> Path:
    """Path of the shipped ``headset4.toml``."""
    return Path(str(importlib.resources.files("handstream.synth") / "rigs" / _HEADSET4_RESOURCE))


def headset4_preset() -> RigPreset:
    """The four head-mounted fisheye cameras of the AssemblyHands headset (shipped; no data folder needed)."""
    path = headset4_path()
    rig = load_calibration(path)
    meta = tomllib.loads(path.read_text(encoding="utf-8")).get("metadata", {})
    return RigPreset(
        "headset4",
        rig,
        fps=float(meta.get("fps", 30.0)),
        color=str(meta.get("color", "mono")),
        workspace=Workspace((-0.28, 0.02, 0.24), (0.28, 0.32, 0.52), table=0.50),
        description="AssemblyHands headset: 4 head-mounted fisheye cameras, 636x480 mono, 30 fps",
    )


# --- random -------------------------------------------------------------------------------------------


def _look_at(center: np.ndarray, target: np.ndarray, roll: float) -> np.ndarray:
    """World -> camera rotation of a camera at ``center`` looking at ``target``, image y roughly down (+y)."""
    z = target - center
    z = z / np.linalg.norm(z)
    down = np.array([0.0, 1.0, 0.0])
    if abs(z @ down) > 0.95:
        down = np.array([0.0, 0.0, 1.0])
    x = np.cross(down, z)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    R = np.stack([x, y, z])
    c, s = np.cos(roll), np.sin(roll)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]) @ R


_SIZES = ((640, 480), (640, 400), (636, 480), (800, 600), (512, 512), (480, 640), (320, 240))


def random_preset(seed: int = 0) -> RigPreset:
    """A plausible random layout of 2-6 cameras (deterministic in ``seed``).

    Half of the layouts are head-mounted clusters (centres within 20 x 10 x 4 cm of the origin, optical
    axes towards the workspace, rolls up to 90 degrees); the others are cameras 0.45-1.0 m around the
    workspace (above, in front, at the sides), looking at it. Lenses: pinhole, OpenCV (mild radial
    distortion) or fisheye, 70-160 degrees wide; sizes from 320x240 to 800x600; mono or RGB; 30 or 60 fps.
    Every camera sees the workspace centre.
    """
    try:
        seed = int(seed)
    except (TypeError, ValueError):
        raise HandstreamError(f"random rig: seed: expected an integer, got {seed!r}") from None
    if seed < 0:
        raise HandstreamError(f"random rig: seed: expected a non-negative integer, got {seed}")
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x716]))
    workspace = Workspace((-0.22, 0.0, 0.26), (0.22, 0.28, 0.52))
    target0 = workspace.center
    n = int(rng.integers(2, 7))
    head_mounted = bool(rng.random() < 0.5)
    cams = []
    for i in range(n):
        w, h = _SIZES[int(rng.integers(len(_SIZES)))]
        model = str(rng.choice(["pinhole", "opencv", "fisheye"], p=[0.3, 0.35, 0.35]))
        if head_mounted:
            center = rng.uniform([-0.10, -0.05, -0.02], [0.10, 0.05, 0.02])
            target = target0 + rng.normal(0, [0.12, 0.08, 0.08])
            roll = float(rng.choice([0.0, np.pi / 2, -np.pi / 2], p=[0.6, 0.2, 0.2]) + rng.normal(0, 0.15))
        else:
            direction = rng.normal(size=3) * [1.0, 0.6, 0.6] + [0.0, -0.6, -0.3]  # above / in front / sides
            direction /= np.linalg.norm(direction)
            center = target0 + direction * rng.uniform(0.45, 1.0)
            target = target0 + rng.normal(0, 0.05, 3)
            roll = float(rng.normal(0, 0.3))
        R = _look_at(center, target, roll)
        fov = np.deg2rad(rng.uniform(100, 160) if model == "fisheye" else rng.uniform(70, 105))
        half = max(w, h) / 2
        if model == "fisheye":
            f = half / (fov / 2)  # equidistant: r = f theta
            dist = rng.normal(0, [0.02, 0.01, 0.003, 0.001])
        else:
            f = half / np.tan(fov / 2)
            dist = (rng.uniform(-0.12, 0.05), rng.uniform(-0.01, 0.03), 0.0, 0.0, 0.0) if model == "opencv" else ()
        K = np.array(
            [
                [f, 0.0, (w - 1) / 2 + rng.normal(0, 3)],
                [0.0, f * rng.uniform(0.99, 1.01), (h - 1) / 2 + rng.normal(0, 3)],
                [0.0, 0.0, 1.0],
            ]
        )
        cams.append(Camera(f"cam{i}", (w, h), K, dist, model, R, -R @ center))
    color = str(rng.choice(COLOR_MODES))
    fps = float(rng.choice([30.0, 60.0]))
    kind = "head-mounted" if head_mounted else "surrounding"
    return RigPreset(
        f"random-{seed}",
        Rig(cams),
        fps=fps,
        color=color,
        workspace=workspace,
        description=f"random {kind} layout of {n} cameras (seed {seed}), {color}, {fps:g} fps",
    )


# --- your own rig ---------------------------------------------------------------------------------------

_HANDS = Workspace((-0.25, 0.0, 0.25), (0.25, 0.30, 0.52))  # RigPreset's default: in front, below eye level
_SHIFTS = tuple(np.round(np.arange(0.0, 0.81, 0.1), 2))
_MIN_SEEN = 0.25  # a rig that sees less of that space in >= 2 views is not one the hand generator can serve


def _seen_twice(rig: Rig, points: np.ndarray) -> np.ndarray:
    """(N,) bool: points (N, 3) in front of and inside the image of at least 2 cameras."""
    count = np.zeros(len(points), np.int64)
    for cam in rig:
        z = cam.world_to_camera(points)[:, 2]
        uv = cam.project(points)  # NaN behind the camera
        inside = (z > 0.05) & np.isfinite(uv).all(axis=-1)
        inside &= (uv[:, 0] >= 0) & (uv[:, 0] < cam.width) & (uv[:, 1] >= 0) & (uv[:, 1] < cam.height)
        count += inside
    return count >= 2


def preset_from_calibration(
    path: str | Path, *, unit_scale: float | None = None, color: str | None = None, fps: float | None = None
) -> RigPreset:
    """A preset of your own cameras: render synthetic hands for the rig in a calibration file.

    The hand generator works in a *headset frame* (x right, y down, z forward, metres; hands 0.25-0.52 m in
    front, mostly below eye level), so the cameras are re-expressed in one found from them: origin at the
    mean camera centre, z along the mean optical axis, y (down) along the cameras' mean image-down direction
    or one of its three other rolls about z, and the hand space moved forward by 0-0.8 m: the choice that
    has the most of the hand space seen by >= 2 cameras (within 5%: the roll nearest the image-down
    direction, then the nearest space; arms, body and rest places move with the hands). The rendered
    dataset's ``calibration.toml`` holds the cameras in that frame; poses relative to each other, lenses
    and image sizes are the file's. Suited to head-mounted and forward-facing rigs
    (a headset, a stereo pair); cameras around a table, facing each other, are refused.

    Args:
        path: calibration file (:func:`handstream.geometry.load_calibration`).
        unit_scale: metres per length unit of the file (e.g. 0.04 for 4 cm checkerboard squares); None: the
            format's default (metres, or millimetres for AssemblyHands JSON).
        color: ``"mono"`` (the default: infrared-like) or ``"rgb"``.
        fps: frame rate of the synthetic sequences (default 30).
    Raises:
        HandstreamError: the file's own errors; fewer than 2 cameras; cameras less than 5 mm or more than 5 m
            apart (a wrong length unit); cameras that do not face a common direction or see too little of the
            space in front of them in 2 views.
    """
    path = Path(path)
    rig = load_calibration(path, unit_scale)
    if len(rig) < 2:
        raise HandstreamError(f"{path}: needs at least 2 cameras to render multi-view data, found {len(rig)}")
    spread = float(np.linalg.norm(rig.centers[:, None] - rig.centers[None], axis=-1).max())
    if not 0.005 <= spread <= 5.0:
        raise HandstreamError(
            f"{path}: the cameras are {spread:.3g} m apart (expected 0.005-5 m for hands at arm's length); check "
            "the file's length unit (--unit-scale: metres per unit)"
        )
    axes = np.stack([cam.R[2] for cam in rig])
    z = axes.mean(axis=0)
    if np.linalg.norm(z) < 0.3:
        raise HandstreamError(
            f"{path}: the cameras do not face a common direction (mean optical axis length "
            f"{np.linalg.norm(z):.2f}); synthetic rendering supports head-mounted and forward-facing rigs"
        )
    z /= np.linalg.norm(z)
    down = np.stack([cam.R[1] for cam in rig]).mean(axis=0)
    down -= (down @ z) * z
    if np.linalg.norm(down) < 1e-6:
        down = np.cross(z, [1.0, 0.0, 0.0]) if abs(z[0]) < 0.9 else np.cross(z, [0.0, 1.0, 0.0])
    down /= np.linalg.norm(down)
    origin = rig.centers.mean(axis=0)
    grid = np.stack(
        np.meshgrid(*(np.linspace(lo, hi, 6) for lo, hi in zip(_HANDS.low, _HANDS.high, strict=True)), indexing="ij"),
        -1,
    )
    grid = grid.reshape(-1, 3)
    options = []  # (seen, cos(roll), -shift, R, shift)
    for k in range(4):  # y (down) rolled by k x 90 degrees about z
        a = k * np.pi / 2
        y = np.cos(a) * down + np.sin(a) * np.cross(z, down)
        R = np.stack([np.cross(y, z), y, z])  # rows x, y, z of the headset frame in the file's frame
        for d in _SHIFTS:  # the hand space moved forward by d (cameras that look at someone across a table)
            seen = float(_seen_twice(rig, (grid + [0.0, 0.0, d]) @ R + origin).mean())  # X = R^T x + o
            options.append((seen, round(float(np.cos(a)), 6), -float(d), R, float(d)))
    top = max(o[0] for o in options)
    seen, _, _, R, shift = max((o for o in options if o[0] >= top - 0.05), key=lambda o: (o[1], o[2]))
    if seen < _MIN_SEEN:
        raise HandstreamError(
            f"{path}: at most {100 * seen:.0f}% of the space where hands move (0.25-{0.52 + _SHIFTS[-1]:.2f} m in "
            f"front of the cameras) is seen by 2 cameras; check the file's length unit (--unit-scale: metres per unit)"
        )
    def forward(*points):  # the workspace's places, moved with the hands
        return tuple(tuple(float(c) for c in np.add(p, [0.0, 0.0, shift])) for p in points)

    w = _HANDS
    workspace = Workspace(*forward(w.low, w.high), away=forward(*w.away), elbow=forward(*w.elbow),
                          shoulder=forward(*w.shoulder), table=w.table)  # fmt: skip
    name = f"file:{path.name}"
    return RigPreset(
        name,
        reexpress(rig, R, origin),
        fps=30.0 if fps is None else fps,
        color="mono" if color is None else color,
        workspace=workspace,
        description=f"{len(rig)} cameras of {path}, hands {0.25 + shift:.2f}-{0.52 + shift:.2f} m in front "
        f"({100 * seen:.0f}% of that space seen by >= 2 views)",
    )
