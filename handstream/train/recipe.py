"""Training recipes: TOML files (``training/<name>.toml``) -> validated :class:`Recipe` objects.

Every mistake a user can make in a recipe raises :class:`~handstream.errors.HandstreamError` with one line
that names the file and the field (``training/x.toml: train.lr: expected a positive number, got -1``).
``training/README.md`` and ``docs/training.md`` describe the fields; ``training/default.toml`` is the recipe
of the shipped model.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from handstream.errors import HandstreamError
from handstream.models.network import NetConfig
from handstream.train.augment import CROP_CAMERAS, AugmentConfig, HandCropConfig

SCHEDULES = ("cosine", "constant", "step")
PRESETS = ("headset4", "stereo", "random")


@dataclass(frozen=True)
class Source:
    """One data source.

    Attributes:
        kind: ``"synth"`` (a synthetic dataset: rendered into the cache from ``preset``/``seed``/``frames``,
            or an existing folder ``path``) or ``"images2d"`` (real images with 2D keypoints at ``path``).
        preset, rig_seed, seed, frames, sequence_length: the synthetic dataset to render (``random`` uses
            ``rig_seed`` for its layout).
        path: an existing dataset folder (synth) or annotation file/folder (images2d), relative to the recipe.
        repeat: how many times the source is drawn per epoch (fractions draw a random subset).
        fov_deg: images2d only: horizontal field of view assumed for the rays (no camera model).
    """

    kind: str = "synth"
    preset: str | None = None
    rig_seed: int = 0
    seed: int = 0
    frames: int = 0
    sequence_length: int = 64
    path: str | None = None
    repeat: float = 1.0
    fov_deg: float = 60.0

    @property
    def label(self) -> str:
        if self.path:
            return self.path
        rig = f"{self.preset}-{self.rig_seed}" if self.preset == "random" else self.preset
        return f"{rig}-seed{self.seed}-n{self.frames}-L{self.sequence_length}"


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings (recipe section ``[train]``)."""

    epochs: int = 10
    batch: int = 32
    lr: float = 2e-3
    weight_decay: float = 1e-4
    schedule: str = "cosine"
    warmup_steps: int = 100
    step_epochs: int = 4
    step_gamma: float = 0.3
    workers: int = 1
    threads: int = 0
    crop: tuple[int, int] | None = None
    full_size_epochs: int = 1
    full_size_steps: int = 0
    presence_weight: float = 0.1
    occluded_weight: float = 0.5
    min_joints: int = 3
    max_steps_per_epoch: int = 0
    val_max_items: int = 0
    grad_clip: float = 5.0
    seed: int = 0
    # start from these weights: a run's model.pt / checkpoint.pt, or an exported .onnx (relative to the recipe)
    init: str = ""


@dataclass(frozen=True)
class CodecConfig:
    """Input and target geometry (recipe section ``[codec]``)."""

    input_size: tuple[int, int] = (256, 192)
    stride: int = 4
    sigma: float = 2.0


@dataclass
class Recipe:
    """A parsed, validated recipe. ``path`` is the file it came from (relative paths resolve against it)."""

    name: str
    path: Path | None
    train_sources: list[Source]
    val_sources: list[Source]
    network: NetConfig
    codec: CodecConfig
    train: TrainConfig
    augment: AugmentConfig
    cache: Path
    export_onnx: str | None = None
    raw: dict = field(default_factory=dict)
    hand_crop: HandCropConfig | None = None  # set: a refiner (windows around one hand), else a detector

    def resolve(self, p: str) -> Path:
        q = Path(os.path.expanduser(p))
        return q if q.is_absolute() or self.path is None else (self.path.parent / q)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "train_sources": [asdict(s) for s in self.train_sources],
            "val_sources": [asdict(s) for s in self.val_sources],
            "network": self.network.to_dict(),
            "codec": asdict(self.codec),
            "train": asdict(self.train),
            "augment": asdict(self.augment),
            "hand_crop": asdict(self.hand_crop) if self.hand_crop else None,
        }


def _err(where: str, msg: str) -> HandstreamError:
    return HandstreamError(f"{where}: {msg}")


def _check(where: str, key: str, value: Any, default: Any) -> Any:
    """Check ``value`` against the type of ``default`` (numbers, bools, strings, number pairs)."""
    name = f"{where}.{key}" if where else key
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise _err(name, f"expected true or false, got {value!r}")
        return value
    if isinstance(default, int) and not isinstance(default, bool):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise _err(name, f"expected a non-negative integer, got {value!r}")
        return value
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise _err(name, f"expected a non-negative number, got {value!r}")
        return float(value)
    if isinstance(default, str):
        if not isinstance(value, str):
            raise _err(name, f"expected a string, got {value!r}")
        return value
    if isinstance(default, tuple) or default is None:
        if (
            not isinstance(value, list)
            or len(value) != 2
            or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
        ):
            raise _err(name, f"expected a pair [a, b] of numbers, got {value!r}")
        return tuple(value)
    return value


def _known_fields(file: str, where: str, table: Any, cls: type, not_a_table: str) -> None:
    """A TOML table whose keys are all fields of the dataclass ``cls``, else one line naming the first other key."""
    if not isinstance(table, dict):
        raise _err(f"{file}: {where}", not_a_table)
    fields = cls.__dataclass_fields__
    unknown = set(table) - set(fields)
    if unknown:
        raise _err(
            f"{file}: {where}.{sorted(unknown)[0]}", f"unknown field (expected one of {', '.join(sorted(fields))})"
        )


def _section(file: str, data: dict, key: str, cls: type) -> Any:
    table = data.get(key, {})
    _known_fields(file, key, table, cls, "expected a table")
    defaults = cls()
    values = {k: _check(f"{file}: {key}", k, v, getattr(defaults, k)) for k, v in table.items()}
    return cls(**values)


def _source(file: str, where: str, table: Any) -> Source:
    _known_fields(file, where, table, Source, "expected a table ([[data.train]] entries)")
    d = Source()
    values = {
        k: _check(f"{file}: {where}", k, v, getattr(d, k)) if k not in ("path", "preset") else v
        for k, v in table.items()
    }
    for k in ("path", "preset"):
        if k in values and not isinstance(values[k], str):
            raise _err(f"{file}: {where}.{k}", f"expected a string, got {values[k]!r}")
    src = Source(**values)
    if src.kind not in ("synth", "images2d"):
        raise _err(f"{file}: {where}.kind", f"expected 'synth' or 'images2d', got {src.kind!r}")
    if src.kind == "images2d" and not src.path:
        raise _err(f"{file}: {where}.path", "an images2d source needs the path of its annotations")
    if src.kind == "synth" and not src.path:
        if src.preset is None:
            raise _err(
                f"{file}: {where}.preset", f"a synthetic source needs a preset ({', '.join(PRESETS)}) or a dataset path"
            )
        if src.preset not in PRESETS:
            raise _err(f"{file}: {where}.preset", f"expected one of {', '.join(PRESETS)}, got {src.preset!r}")
        if src.frames <= 0:
            raise _err(f"{file}: {where}.frames", f"expected a positive number of frames, got {src.frames}")
        if src.sequence_length <= 0:
            raise _err(f"{file}: {where}.sequence_length", "expected a positive integer")
    if src.repeat <= 0:
        raise _err(f"{file}: {where}.repeat", f"expected a positive number, got {src.repeat}")
    if not 1.0 <= src.fov_deg < 179.0:
        raise _err(f"{file}: {where}.fov_deg", f"expected degrees in [1, 179), got {src.fov_deg}")
    return src


def parse_recipe(data: dict, file: str = "recipe", path: Path | None = None) -> Recipe:
    """Validate a recipe given as a dict (the parsed TOML). ``file`` names it in error messages."""
    top = {"name", "data", "network", "codec", "train", "augment", "hand_crop", "export"}
    unknown = set(data) - top
    if unknown:
        raise _err(
            f"{file}: {sorted(unknown)[0]}", f"unknown section or field (expected some of {', '.join(sorted(top))})"
        )
    name = data.get("name")
    if not isinstance(name, str) or not name:
        raise _err(f"{file}: name", f"expected a non-empty string, got {name!r}")
    dat = data.get("data")
    if not isinstance(dat, dict):
        raise _err(f"{file}: data", "missing [data] with [[data.train]] sources")
    unknown = set(dat) - {"train", "val", "cache"}
    if unknown:
        raise _err(f"{file}: data.{sorted(unknown)[0]}", "unknown field (expected train, val, cache)")
    trains = dat.get("train")
    if not isinstance(trains, list) or not trains:
        raise _err(f"{file}: data.train", "expected at least one [[data.train]] source")
    vals = dat.get("val", [])
    if not isinstance(vals, list):
        raise _err(f"{file}: data.val", "expected [[data.val]] sources")
    train_sources = [_source(file, f"data.train[{i}]", t) for i, t in enumerate(trains)]
    val_sources = [_source(file, f"data.val[{i}]", t) for i, t in enumerate(vals)]
    cache = dat.get("cache", os.environ.get("HANDSTREAM_CACHE", "~/.cache/handstream") + "/synth")
    if not isinstance(cache, str):
        raise _err(f"{file}: data.cache", f"expected a folder path, got {cache!r}")
    net = data.get("network", {})
    if not isinstance(net, dict):
        raise _err(f"{file}: network", "expected a table")
    try:
        network = NetConfig.from_dict(net, where=f"{file}: network")
    except TypeError as exc:
        raise _err(f"{file}: network", str(exc)) from None
    if any(
        not isinstance(v, int) or v <= 0
        for v in (*network.widths, *network.depths, network.decoder, network.stem, network.expand)
    ):
        raise _err(f"{file}: network", "widths, depths, decoder, stem and expand must be positive integers")
    codec = _section(file, data, "codec", CodecConfig)
    w, h = (int(v) for v in codec.input_size)
    if w % 32 or h % 32 or w <= 0 or h <= 0:
        raise _err(
            f"{file}: codec.input_size",
            f"expected [width, height], positive multiples of 32, got {list(codec.input_size)}",
        )
    if codec.stride != 4:
        raise _err(f"{file}: codec.stride", f"the network's heatmaps are at stride 4, got {codec.stride}")
    if codec.sigma <= 0:
        raise _err(f"{file}: codec.sigma", "expected a positive number of heatmap cells")
    codec = CodecConfig((w, h), codec.stride, codec.sigma)
    train = _section(file, data, "train", TrainConfig)
    for key in ("epochs", "batch"):
        if getattr(train, key) <= 0:
            raise _err(f"{file}: train.{key}", f"expected a positive integer, got {getattr(train, key)}")
    if train.lr <= 0:
        raise _err(f"{file}: train.lr", f"expected a positive number, got {train.lr}")
    if train.schedule not in SCHEDULES:
        raise _err(f"{file}: train.schedule", f"expected one of {', '.join(SCHEDULES)}, got {train.schedule!r}")
    if train.crop is not None:
        cw, ch = (int(v) for v in train.crop)
        if cw % 32 or ch % 32 or cw <= 0 or ch <= 0 or cw > w or ch > h:
            raise _err(
                f"{file}: train.crop",
                f"expected [width, height], multiples of 32 within input_size {[w, h]}, got {list(train.crop)}",
            )
        train = TrainConfig(**{**asdict(train), "crop": (cw, ch)})
    augment = _section(file, data, "augment", AugmentConfig)
    for key in ("zoom", "contrast", "gamma"):
        lo, hi = getattr(augment, key)
        if not 0 < lo <= hi:
            raise _err(f"{file}: augment.{key}", f"expected [min, max] with 0 < min <= max, got {[lo, hi]}")
    if augment.blur > 1 or augment.hand_focus > 1:
        raise _err(f"{file}: augment", "blur and hand_focus are probabilities in [0, 1]")
    hand_crop = None
    if "hand_crop" in data:  # a refiner: windows around one hand (docs/training.md)
        hand_crop = _section(file, data, "hand_crop", HandCropConfig)
        lo, hi = hand_crop.margin_range
        if not (1.0 <= lo <= hand_crop.margin <= hi):
            raise _err(
                f"{file}: hand_crop",
                "expected 1 <= margin_range[0] <= margin <= margin_range[1], "
                f"got margin {hand_crop.margin}, margin_range {[lo, hi]}",
            )
        if hand_crop.negatives > 1:
            raise _err(f"{file}: hand_crop.negatives", f"expected a probability in [0, 1], got {hand_crop.negatives}")
        if train.crop is not None:
            raise _err(f"{file}: train.crop", "a [hand_crop] recipe makes its own windows; remove train.crop")
        if hand_crop.camera not in CROP_CAMERAS:
            raise _err(
                f"{file}: hand_crop.camera", f"expected one of {', '.join(CROP_CAMERAS)}, got {hand_crop.camera!r}"
            )
        if hand_crop.roll_outliers > 1:
            raise _err(
                f"{file}: hand_crop.roll_outliers", f"expected a probability in [0, 1], got {hand_crop.roll_outliers}"
            )
        if hand_crop.perspective:
            for i, src in enumerate(train_sources + val_sources):
                if src.kind == "images2d":
                    where = f"data.train[{i}]" if i < len(train_sources) else f"data.val[{i - len(train_sources)}]"
                    raise _err(
                        f"{file}: {where}",
                        "hand_crop.camera = 'perspective' needs 3D joints (synthetic data); "
                        "images2d has 2D labels only",
                    )
    export = data.get("export", {})
    if not isinstance(export, dict) or set(export) - {"onnx"}:
        raise _err(f"{file}: export", "expected a table with an optional 'onnx' path")
    onnx = export.get("onnx")
    if onnx is not None and (not isinstance(onnx, str) or not onnx.endswith(".onnx")):
        raise _err(f"{file}: export.onnx", f"expected a path ending in .onnx, got {onnx!r}")
    recipe = Recipe(
        name, path, train_sources, val_sources, network, codec, train, augment, Path(), onnx, data, hand_crop
    )
    recipe.cache = recipe.resolve(cache)
    return recipe


def load_recipe(path: str | Path) -> Recipe:
    """Read and validate a recipe TOML file."""
    path = Path(path)
    if not path.is_file():
        raise HandstreamError(f"{path}: recipe not found")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise HandstreamError(f"{path}: cannot read the recipe ({exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise HandstreamError(f"{path}: not valid TOML ({exc})") from None
    return parse_recipe(data, str(path), path)
