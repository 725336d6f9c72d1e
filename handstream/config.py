"""The live system's configuration: one TOML file <-> validated dataclasses.

A complete example (every key is optional except where noted; see docs/serving.md)::

    [rig]
    calibration = "calibration.toml"   # a calibration file (any format handstream reads) ...
    # preset = "headset4"              # ... or a synthetic preset (stereo | headset4 | random-<seed>)
    unit_scale = 0.04                  # metres per calibration unit (default: the format's own)
    cameras = ["cam_0", "cam_1"]       # use only these cameras of the file

    [[sources]]                        # one capture process per camera
    kind = "video"                     # synthetic | video | images | device
    camera = "cam_0"                   # the rig camera it films
    path = "cam0.mp4"
    # fps = 30                         # video/images: playback rate (default: the file's / 30)
    # realtime = true                  # false: as fast as the engine takes them
    # loop = false
    # render = "cached"                # synthetic: "cached" (the loop rendered once, played) | "live"
    # loop_frames = 300                # synthetic: frames of the seamless loop (0: endless, live only)

    [model]
    path = "engines/handstream-default.onnx"
    refiner = "default"                # a second look at each hand: default | none | a path
    backend = "auto"                   # auto | onnxruntime | torch | tensorrt
    threads = 0                        # inference threads (0: all cores)

    [engine]
    sync_tolerance_ms = 16.7           # default: half a frame interval
    min_views = 2
    presence_threshold = 0.5
    thumbnail_fps = 5                  # camera thumbnails for handstream view --include-2d (0: none)

    [filter]
    enabled = true
    min_cutoff = 1.0                   # One-Euro, Hz
    beta = 20.0                        # One-Euro speed coefficient, 1/m

    [endpoints]
    frames = "tcp://127.0.0.1:5555"
    poses = "tcp://127.0.0.1:5556"

Every problem raises :class:`~handstream.errors.HandstreamError` naming the file and the key, e.g.
``serve.toml: engine.min_views: expected an integer >= 2, got 1``.
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from handstream.errors import HandstreamError
from handstream.models.defaults import DEFAULT_MODEL
from handstream.records import read_text
from handstream.transport.endpoints import DEFAULT_FRAME_ENDPOINT, DEFAULT_POSE_ENDPOINT, Endpoints
from handstream.transport.topics import is_valid_name

SOURCE_KINDS = ("synthetic", "video", "images", "device")
RENDER_MODES = ("cached", "live")
ACQUIRE_MODES = ("auto", "detector", "search")
BACKENDS = ("auto", "onnxruntime", "torch", "tensorrt")
MAX_THUMBNAIL_FPS = 30  # thumbnails per second and camera: a view, not a video


@dataclass
class RigConfig:
    """Which cameras: a calibration file or a synthetic preset (exactly one).

    Attributes:
        calibration: path of a calibration file (aniposelib TOML, OpenCV YAML/XML, AssemblyHands JSON).
        preset: synthetic preset name (``stereo``, ``headset4``, ``random-<seed>``).
        unit_scale: metres per calibration unit (None: the format's default).
        cameras: names of the cameras to use (None: all).
    """

    calibration: str | None = None
    preset: str | None = None
    unit_scale: float | None = None
    cameras: list[str] | None = None


@dataclass
class SourceConfig:
    """One capture process.

    Attributes:
        kind: ``synthetic`` (a camera of the rig preset), ``video`` (a file), ``images`` (a folder),
            ``device`` (an OpenCV camera index or a V4L2 path).
        camera: the rig camera this source films (default: the rig's cameras in order).
        path: video file or image folder.
        device: camera index (``"0"``) or device path (``/dev/video0``), for ``device``.
        fps: frames per second (video: default the file's; images: 30; synthetic: the preset's;
            device: requested from the driver).
        realtime: pace frames at ``fps`` on the wall clock (false: video/images as fast as the engine
            takes them; stamps then follow the media clock).
        loop: start over at the end of a video / image folder.
        width / height / exposure: requested from a device (exposure in the driver's units).
        seed: synthetic scene seed (all synthetic cameras of a rig share it).
        render: synthetic: ``"cached"``: ``serve`` renders the camera's seamless loop once (cached on disk,
            :mod:`handstream.capture.material`) and the capture plays it; ``"live"``: the capture renders
            every frame itself (up to a third of a core per 636x480 camera at 30 fps).
        loop_frames: synthetic: frames of the loop (``loop_frames / fps`` seconds); 0: the endless stream,
            which only ``render = "live"`` can show.
        timestamps: images: a ``seq,t_capture_ns`` table with a row per image (``serve --record`` writes one
            per camera): the frames are played at their recorded times (realtime: the recorded intervals;
            else stamped with the recorded times), not at ``fps``.
    """

    kind: str = "synthetic"
    camera: str | None = None
    path: str | None = None
    device: str | None = None
    fps: float | None = None
    realtime: bool = True
    loop: bool = False
    width: int | None = None
    height: int | None = None
    exposure: float | None = None
    seed: int = 0
    render: str = "cached"
    loop_frames: int = 300
    timestamps: str | None = None


@dataclass
class ModelConfig:
    """The estimator.

    Attributes:
        path: the model artifact, the detector (``.onnx`` with its ``.onnx.json`` manifest; ``.pt`` for
            the torch backend; ``.engine`` for TensorRT).
        refiner: the refiner artifact (same kinds, same backend), which looks again at a window around
            each detected hand (:mod:`handstream.engine.refine`); ``"default"``: the one the detector's
            manifest names (an adapted detector's adapted refiner), else the shipped refiner; ``"none"`` or
            ``""`` turns the refine stage off.
        palm_detector: an imported MediaPipe palm detector (``.onnx`` + its ``.onnx.json``, from ``handstream
            import-model mediapipe palm_detection_lite.tflite``): acquisition by search looks where it finds palms
            instead of sweeping windows (:mod:`handstream.engine.search`; RGB cameras); ``""``: none.
        backend: ``auto`` (the fastest available for the artifact), ``onnxruntime``, ``torch``, ``tensorrt``.
        threads: inference threads (0: one per core).
        device: torch device for the torch backend (``cpu``, ``cuda``, ``cuda:1``).
    """

    path: str = str(DEFAULT_MODEL)
    refiner: str = "default"
    palm_detector: str = ""
    backend: str = "auto"
    threads: int = 0
    device: str = "cpu"


@dataclass
class EngineConfig:
    """The engine's synchronisation and geometry settings.

    Attributes:
        sync_tolerance_ms: frames whose capture times differ by at most this belong to one frame set;
            also how long the engine waits for a late camera (None: half a frame interval).
        max_age_ms: frame sets older than this (capture time vs now) are dropped as stale (0: never).
        camera_timeout_ms: a camera silent for this long is "gone" and not waited for.
        min_views: views needed to triangulate a joint (>= 2).
        presence_threshold: a hand is looked for in a view only where its presence score reaches this.
        confidence_threshold: heatmap peaks below this do not count as detections.
        ransac_threshold_px: inlier threshold of the RANSAC triangulation, pixels.
        min_joints: a hand is tracked when at least this many joints are triangulated.
        max_hand_extent_m: a triangulated joint farther than this (metres) from its hand's median joint
            is dropped as an outlier (no hand is that large; 0: off). See ``engine/triangulation.py``.
        include_2d: put the per-view 2D joints in the pose messages.
        tracking: track hands with perspective crops predicted from their last 3D pose, the detector only to
            find hands that are not tracked (:mod:`handstream.engine.tracking`; needs a crop model as
            ``model.refiner``); false: the detector on every view of every frame set, then the refine stage.
        max_views_per_hand: tracking: crops per hand and frame set (the best views); at least ``min_views``.
        acquire_interval: tracking: while a hand is tracked, look for the other every this many frame sets.
        acquire: tracking: how hands that are not tracked are found: ``detector`` (the detector, ``model.path``,
            on every view), ``search`` (the crop model itself on windows covering each view,
            :mod:`handstream.engine.search`: for a ``landmarks`` crop model on real RGB cameras, which the
            synthetic detector does not see) or ``auto`` (``search`` for a landmarks crop model, else ``detector``).
        search_crops_per_view: acquisition by search: windows looked at per view and acquisition.
        max_reproj_px: tracking: a hand whose mean reprojection error (crop pixels) exceeds this is lost.
        crop_presence_threshold: tracking: a crop counts where the crop model's presence reaches this.
        max_bone_change: tracking: a hand whose bone lengths change by more than this fraction (median) from
            its track's own is lost.
        status_interval_s: how often the engine publishes ``status.engine``.
        thumbnail_fps: most small camera images (longest side <= 160 px) per second and camera that the engine
            republishes on the pose socket as ``frame.<camera>``, for ``handstream view --include-2d``
            (:mod:`handstream.engine.thumbnails`); made only while a subscriber asks for them; 0: never.
        fps: nominal camera rate (None: the sources'); sets the default tolerance.
    """

    sync_tolerance_ms: float | None = None
    max_age_ms: float = 250.0
    camera_timeout_ms: float = 500.0
    min_views: int = 2
    presence_threshold: float = 0.5
    confidence_threshold: float = 0.2
    ransac_threshold_px: float = 12.0
    min_joints: int = 8
    max_hand_extent_m: float = 0.2
    include_2d: bool = False
    tracking: bool = True
    max_views_per_hand: int = 2
    acquire_interval: int = 3
    acquire: str = "auto"
    search_crops_per_view: int = 3
    max_reproj_px: float = 8.0
    max_bone_change: float = 0.35
    crop_presence_threshold: float = 0.2
    status_interval_s: float = 1.0
    thumbnail_fps: float = 5.0
    fps: float | None = None


@dataclass
class FilterConfig:
    """One-Euro smoothing of the 3D joints (Casiez et al., CHI 2012), per joint and axis.

    Attributes:
        enabled: off switch.
        min_cutoff: cutoff at rest, Hz (lower: smoother, more lag when slow).
        beta: how fast the cutoff rises with speed, per (m/s) (higher: less lag when fast).
        d_cutoff: cutoff of the speed estimate, Hz.
    """

    enabled: bool = True
    min_cutoff: float = 1.0
    beta: float = 20.0
    d_cutoff: float = 1.0


@dataclass
class EndpointConfig:
    """Sockets. The engine binds both; captures and subscribers connect.

    Attributes:
        frames / poses: ZeroMQ endpoints (``tcp://host:port``, ``ipc:///path``).
        allow_remote: permit binding non-loopback addresses.
        curve_dir: folder with CURVE certificates (``handstream keys``); None: no encryption.
    """

    frames: str = DEFAULT_FRAME_ENDPOINT
    poses: str = DEFAULT_POSE_ENDPOINT
    allow_remote: bool = False
    curve_dir: str | None = None


@dataclass
class SupervisorConfig:
    """Restart policy of ``handstream serve``.

    Attributes:
        restart: restart a capture or engine process that dies.
        backoff_s: first restart delay, doubled per consecutive failure up to ``backoff_max_s``.
        stable_s: a process that ran this long resets its backoff.
    """

    restart: bool = True
    backoff_s: float = 0.5
    backoff_max_s: float = 10.0
    stable_s: float = 30.0


@dataclass
class ServeConfig:
    """Everything ``handstream serve`` needs."""

    rig: RigConfig = field(default_factory=RigConfig)
    sources: list[SourceConfig] = field(default_factory=list)
    model: ModelConfig = field(default_factory=ModelConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)
    filter: FilterConfig = field(default_factory=FilterConfig)
    endpoints: EndpointConfig = field(default_factory=EndpointConfig)
    supervisor: SupervisorConfig = field(default_factory=SupervisorConfig)
    base_dir: str = "."  # relative paths in the file are relative to the file's folder

    def resolve(self, path: str | None) -> str | None:
        """A path from the config, relative to the config file's folder."""
        if path is None:
            return None
        p = Path(path).expanduser()
        return str(p if p.is_absolute() else Path(self.base_dir) / p)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (for sending to child processes: no pickle of objects, just data)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "config") -> ServeConfig:
        cfg = _build(cls, data, where)
        validate(cfg, where)
        return cfg


# --- building and checking ---------------------------------------------------------------------------


def _type_name(tp: Any) -> str:
    names = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}
    return names.get(tp, getattr(tp, "__name__", str(tp)))


def _convert(value: Any, tp: Any, file: str, key: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _convert(value, inner[0], file, key)
    if origin is list:
        (item,) = typing.get_args(tp)
        if not isinstance(value, list):
            raise HandstreamError(f"{file}: {key}: expected a list, got {value!r}")
        return [_convert(v, item, file, f"{key}[{i}]") for i, v in enumerate(value)]
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise HandstreamError(f"{file}: {key}: expected a table, got {value!r}")
        return _build(tp, value, file, f"{key}.")
    if tp is str and isinstance(value, int) and not isinstance(value, bool):
        return str(value)  # e.g. device = 0
    ok = {
        bool: isinstance(value, bool),
        int: isinstance(value, int) and not isinstance(value, bool),
        float: isinstance(value, (int, float)) and not isinstance(value, bool),
        str: isinstance(value, str),
    }[tp]
    if not ok:
        raise HandstreamError(f"{file}: {key}: expected {_type_name(tp)}, got {value!r}")
    return float(value) if tp is float else value


def _build(cls: type, data: dict[str, Any], file: str, prefix: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)} - {"base_dir"}
    unknown = sorted(set(data) - fields - ({"base_dir"} if not prefix else set()))
    if unknown:
        raise HandstreamError(
            f"{file}: unknown key {prefix}{unknown[0]} (expected one of: {', '.join(sorted(fields))})"
        )
    return cls(**{name: _convert(value, hints[name], file, f"{prefix}{name}") for name, value in data.items()})


def _check(ok: bool, where: str, message: str) -> None:
    if not ok:
        raise HandstreamError(f"{where}: {message}")


def validate(cfg: ServeConfig, where: str = "config") -> None:
    """Check values and cross-references (not files: :func:`handstream.serve.plan` opens those)."""
    r = cfg.rig
    _check(
        (r.calibration is None) != (r.preset is None), where, "rig: give exactly one of rig.calibration or rig.preset"
    )
    _check(
        r.unit_scale is None or r.unit_scale > 0,
        where,
        f"rig.unit_scale: expected a positive number, got {r.unit_scale}",
    )
    for i, s in enumerate(cfg.sources):
        here = f"sources[{i}]"
        _check(s.kind in SOURCE_KINDS, where, f"{here}.kind: expected one of {', '.join(SOURCE_KINDS)}, got {s.kind!r}")
        if s.kind in ("video", "images"):
            _check(bool(s.path), where, f"{here}.path: a {s.kind} source needs a path")
        if s.kind == "device":
            _check(bool(s.device), where, f"{here}.device: a device source needs a camera index or device path")
        _check(s.fps is None or 0 < s.fps <= 1000, where, f"{here}.fps: expected a number in (0, 1000], got {s.fps}")
        _check(
            s.camera is None or is_valid_name(s.camera),
            where,
            f"{here}.camera: expected 1-64 characters of [A-Za-z0-9_-], got {s.camera!r}",
        )
        for key in ("width", "height"):
            v = getattr(s, key)
            _check(v is None or v > 0, where, f"{here}.{key}: expected a positive integer, got {v}")
        _check(s.seed >= 0, where, f"{here}.seed: expected a non-negative integer, got {s.seed}")
        modes = ", ".join(RENDER_MODES)
        _check(s.render in RENDER_MODES, where, f"{here}.render: expected one of {modes}, got {s.render!r}")
        _check(
            s.timestamps is None or (s.kind == "images" and not s.loop),
            where,
            f"{here}.timestamps: only for an images source without loop",
        )
        _check(s.loop_frames >= 0, where, f"{here}.loop_frames: expected an integer >= 0, got {s.loop_frames}")
        _check(
            s.loop_frames > 0 or s.render == "live" or s.kind != "synthetic",
            where,
            f'{here}.loop_frames: 0 (the endless stream) can only be rendered live: set render = "live"',
        )
    m = cfg.model
    _check(m.backend in BACKENDS, where, f"model.backend: expected one of {', '.join(BACKENDS)}, got {m.backend!r}")
    _check(m.threads >= 0, where, f"model.threads: expected an integer >= 0, got {m.threads}")
    e = cfg.engine
    _check(e.min_views >= 2, where, f"engine.min_views: expected an integer >= 2, got {e.min_views}")
    _check(
        e.sync_tolerance_ms is None or e.sync_tolerance_ms > 0,
        where,
        f"engine.sync_tolerance_ms: expected a positive number, got {e.sync_tolerance_ms}",
    )
    _check(e.max_age_ms >= 0, where, f"engine.max_age_ms: expected a number >= 0, got {e.max_age_ms}")
    _check(
        e.camera_timeout_ms > 0,
        where,
        f"engine.camera_timeout_ms: expected a positive number, got {e.camera_timeout_ms}",
    )
    _check(
        0 <= e.presence_threshold <= 1,
        where,
        f"engine.presence_threshold: expected a number in [0, 1], got {e.presence_threshold}",
    )
    _check(
        0 <= e.confidence_threshold <= 1,
        where,
        f"engine.confidence_threshold: expected a number in [0, 1], got {e.confidence_threshold}",
    )
    _check(
        e.ransac_threshold_px > 0,
        where,
        f"engine.ransac_threshold_px: expected a positive number, got {e.ransac_threshold_px}",
    )
    _check(
        e.max_hand_extent_m >= 0,
        where,
        f"engine.max_hand_extent_m: expected a number of metres >= 0 (0: off), got {e.max_hand_extent_m}",
    )
    _check(
        e.max_views_per_hand >= e.min_views,
        where,
        f"engine.max_views_per_hand: expected an integer >= engine.min_views ({e.min_views}), "
        f"got {e.max_views_per_hand}",
    )
    _check(
        e.acquire_interval >= 1, where, f"engine.acquire_interval: expected an integer >= 1, got {e.acquire_interval}"
    )
    _check(
        e.acquire in ACQUIRE_MODES,
        where,
        f"engine.acquire: expected one of {', '.join(ACQUIRE_MODES)}, got {e.acquire!r}",
    )
    _check(
        1 <= e.search_crops_per_view <= 64,
        where,
        f"engine.search_crops_per_view: expected an integer in [1, 64], got {e.search_crops_per_view}",
    )
    _check(e.max_reproj_px > 0, where, f"engine.max_reproj_px: expected a positive number, got {e.max_reproj_px}")
    _check(
        e.max_bone_change > 0, where, f"engine.max_bone_change: expected a positive number, got {e.max_bone_change}"
    )
    _check(
        0 <= e.crop_presence_threshold <= 1,
        where,
        f"engine.crop_presence_threshold: expected a number in [0, 1], got {e.crop_presence_threshold}",
    )
    _check(0 <= e.min_joints <= 21, where, f"engine.min_joints: expected an integer in [0, 21], got {e.min_joints}")
    _check(
        e.status_interval_s > 0,
        where,
        f"engine.status_interval_s: expected a positive number, got {e.status_interval_s}",
    )
    _check(
        0 <= e.thumbnail_fps <= MAX_THUMBNAIL_FPS,
        where,
        f"engine.thumbnail_fps: expected a number in [0, {MAX_THUMBNAIL_FPS}] (0: none), got {e.thumbnail_fps}",
    )
    _check(e.fps is None or 0 < e.fps <= 1000, where, f"engine.fps: expected a number in (0, 1000], got {e.fps}")
    f = cfg.filter
    _check(
        f.min_cutoff > 0 and f.d_cutoff > 0 and f.beta >= 0,
        where,
        "filter: min_cutoff and d_cutoff must be > 0 and beta >= 0",
    )
    ep = cfg.endpoints
    try:
        Endpoints(ep.frames, ep.poses, ep.allow_remote)
    except HandstreamError as exc:
        raise HandstreamError(f"{where}: endpoints: {exc}") from None
    _check(ep.frames != ep.poses, where, "endpoints: frames and poses must differ")
    sv = cfg.supervisor
    _check(0 < sv.backoff_s <= sv.backoff_max_s, where, "supervisor: expected 0 < backoff_s <= backoff_max_s")


def load_config(path: str | Path) -> ServeConfig:
    """Read and validate a serve config TOML file (relative paths in it are relative to its folder)."""
    path = Path(path)
    text = read_text(path, "config file not found")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise HandstreamError(f"{path}: not valid TOML ({exc})") from None
    data["base_dir"] = str(path.resolve().parent)
    return ServeConfig.from_dict(data, str(path))


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)  # a JSON string is a TOML basic string
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"no TOML for {v!r}")


def dump_config(cfg: ServeConfig) -> str:
    """The config as TOML text that :func:`load_config` reads back to the same config (keys set to None are
    left out: they mean the default; ``base_dir`` is the file's folder, so give absolute or file-relative paths)."""
    data = cfg.to_dict()
    data.pop("base_dir", None)
    lines: list[str] = []
    sources = data.pop("sources")
    for name, table in data.items():
        lines.append(f"[{name}]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in table.items() if v is not None]
        lines.append("")
    for src in sources:
        lines.append("[[sources]]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in src.items() if v is not None]
        lines.append("")
    return "\n".join(lines)
