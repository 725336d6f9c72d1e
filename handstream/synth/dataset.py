"""Synthetic datasets on disk: writing (sharded, deterministic) and reading (plain Python).

Legend: ``T`` frames of a shard, ``V`` views, ``H`` hands (2: left, right), ``K`` joints (21), ``A`` angles (22).

Layout of a dataset folder (docs/synthetic-data.md has the details)::

    manifest.json          format, version, preset, seed, counts, cameras, shards, label vocabularies
    calibration.toml       the rig (handstream.geometry.save_calibration; metres, headset frame)
    shard_00000.npz        annotations of frames [0, shard_size): arrays with a leading T axis
    shard_00000/0000000_v0.png ...   images: frame index, view index (mono 8-bit or BGR 8-bit PNG)

Frame ``i`` is the same image and labels whatever the shard size (see
:mod:`handstream.synth.generator`). Annotation files are read with ``np.load(allow_pickle=False)``.

:class:`SynthDataset` reads a dataset (random access, iteration); ``handstream.synth.torch_dataset``
wraps it for PyTorch.
"""

from __future__ import annotations

import json
import shutil
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from handstream import __version__
from handstream.errors import HandstreamError
from handstream.geometry import Rig, load_calibration, save_calibration
from handstream.skeleton import HANDS, JOINT_NAMES
from handstream.synth.generator import SynthGenerator, check_seed
from handstream.synth.hand import ANGLE_NAMES
from handstream.synth.render import FrameLabels, Visibility
from handstream.synth.rigs import RigPreset, get_preset

FORMAT = "handstream-synth"
VERSION = 1
MANIFEST = "manifest.json"
CALIBRATION = "calibration.toml"
IMAGE_PATTERN = "shard_{shard:05d}/{frame:07d}_v{view}.png"
ANNOTATION_PATTERN = "shard_{shard:05d}.npz"

ARRAYS = {
    "frame_index": "(T,) int64 frame index in the dataset",
    "sequence": "(T,) int64 sequence index (frames of a sequence move continuously)",
    "time_s": "(T,) float64 seconds since the start of the sequence",
    "keypoints_2d": "(T, V, H, K, 2) float64 distorted pixels: projection of joints_3d through each camera",
    "visibility": "(T, V, H, K) uint8 visibility code (see visibility_codes)",
    "joints_3d": "(T, H, K, 3) float64 metres, rig (headset) frame",
    "hand_box": "(T, V, H, 4) float32 x0, y0, x1, y1 of the hand's visible pixels (NaN: not in view)",
    "angles": "(T, H, A) float32 joint angles, radians (see angle_names)",
    "scale": "(T,) float32 hand scale of the subject (1 = adult)",
}
"""The arrays of every annotation shard, with their meaning."""

_PNG = [cv2.IMWRITE_PNG_COMPRESSION, 1]
_SHARD_CACHE = 16  # annotation shards kept in memory by a reader (shuffled access touches them all)


@dataclass
class SynthSample(FrameLabels):
    """One frame read from a dataset: its ground truth (the :class:`~handstream.synth.render.FrameLabels` it was
    rendered with: keypoints_2d (V, H, K, 2) float64 pixels, visibility (V, H, K) uint8, joints_3d (H, K, 3)
    float64 metres, hand_box (V, H, 4) float32, angles (H, A) float32, scale) and its images.

    Attributes:
        index: frame index; ``sequence``, ``time_s``: where it is in its sequence.
        images: per view, (h, w) uint8 (mono) or (h, w, 3) uint8 BGR.
    """

    index: int
    sequence: int
    time_s: float
    images: list[np.ndarray]


# --- writing ------------------------------------------------------------------------------------------


def check_output_folder(out: str | Path, overwrite: bool) -> None:
    """Raise HandstreamError unless ``out`` can receive a dataset (absent, empty, or a dataset and ``overwrite``)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise HandstreamError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise HandstreamError(f"{out}: folder exists and is not empty (use --overwrite to replace a dataset there)")
        if not (out / MANIFEST).is_file():
            raise HandstreamError(
                f"{out}: --overwrite only replaces a handstream synthetic dataset, and this folder has no {MANIFEST}"
            )


def _prepare_folder(out: Path, overwrite: bool) -> None:
    check_output_folder(out, overwrite)
    if out.is_dir():
        for item in out.iterdir():
            if item.name in (MANIFEST, CALIBRATION) or item.name.startswith("shard_"):
                if item.is_dir():
                    shutil.rmtree(item)
                else:
                    item.unlink()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise HandstreamError(f"{out}: cannot create the folder: {exc.strerror}") from None


def _manifest(preset: RigPreset, seed: int, frames: int, shard_size: int, sequence_length: int, motion_blur, shards):
    return {
        "format": FORMAT,
        "version": VERSION,
        "complete": False,
        "handstream_version": __version__,
        "preset": preset.name,
        "description": preset.description,
        "seed": seed,
        "frames": frames,
        "shard_size": shard_size,
        "sequence_length": sequence_length,
        "motion_blur": motion_blur,
        "fps": preset.fps,
        "color": preset.color,
        "calibration": CALIBRATION,
        "cameras": [
            {"name": cam.name, "width": cam.width, "height": cam.height, "model": cam.model} for cam in preset.rig
        ],
        "hands": list(HANDS),
        "joint_names": list(JOINT_NAMES),
        "angle_names": list(ANGLE_NAMES),
        "visibility_codes": {str(int(v)): v.name.lower() for v in Visibility},
        "image_pattern": IMAGE_PATTERN,
        "annotation_pattern": ANNOTATION_PATTERN,
        "arrays": ARRAYS,
        "shards": shards,
        "license": (
            "headset4 camera parameters: CC BY-NC 4.0 (facebookresearch/assemblyhands-toolkit)"
            if preset.name == "headset4"
            else None
        ),
    }


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    tmp.replace(path)


def render_shard(
    out: Path,
    preset: RigPreset,
    seed: int,
    shard: int,
    first: int,
    count: int,
    sequence_length: int,
    motion_blur: bool | None = None,
    progress: Callable[[int], None] | None = None,
    generator: SynthGenerator | None = None,
) -> dict[str, Any]:
    """Render frames ``[first, first + count)`` as shard ``shard`` of the dataset in ``out``.

    Returns the shard's manifest entry. ``progress(1)`` is called after each frame.
    """
    gen = generator or SynthGenerator(preset, seed, sequence_length=sequence_length, motion_blur=motion_blur)
    folder = out / f"shard_{shard:05d}"
    folder.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, list] = {key: [] for key in ARRAYS}
    for i in range(first, first + count):
        frame = gen.frame(i)
        for v, img in enumerate(frame.images):
            ok, buf = cv2.imencode(".png", img, _PNG)
            if not ok:
                raise HandstreamError(f"{folder}: cannot encode frame {i} view {v} as PNG")
            (out / IMAGE_PATTERN.format(shard=shard, frame=i, view=v)).write_bytes(buf.tobytes())
        lab = frame.labels
        arrays["frame_index"].append(i)
        arrays["sequence"].append(frame.sequence)
        arrays["time_s"].append(frame.time_s)
        arrays["keypoints_2d"].append(lab.keypoints_2d)
        arrays["visibility"].append(lab.visibility)
        arrays["joints_3d"].append(lab.joints_3d)
        arrays["hand_box"].append(lab.hand_box)
        arrays["angles"].append(lab.angles)
        arrays["scale"].append(lab.scale)
        if progress is not None:
            progress(1)
    dtypes = {
        "frame_index": np.int64,
        "sequence": np.int64,
        "time_s": np.float64,
        "keypoints_2d": np.float64,
        "visibility": np.uint8,
        "joints_3d": np.float64,
        "hand_box": np.float32,
        "angles": np.float32,
        "scale": np.float32,
    }
    packed = {key: np.asarray(values, dtype=dtypes[key]) for key, values in arrays.items()}
    name = ANNOTATION_PATTERN.format(shard=shard)
    np.savez_compressed(out / name, **packed)
    return {"index": shard, "annotations": name, "images": folder.name, "first_frame": first, "frames": count}


def write_dataset(
    out: str | Path,
    preset: RigPreset | str,
    frames: int,
    seed: int = 0,
    *,
    shard_size: int = 500,
    sequence_length: int = 64,
    motion_blur: bool | None = None,
    overwrite: bool = False,
    progress: Callable[[int], None] | None = None,
    rig_seed: int = 0,
) -> Path:
    """Render a synthetic dataset of ``frames`` frames into the folder ``out``.

    Args:
        out: the dataset folder (created; must be empty or hold a dataset to replace with ``overwrite``).
        preset: a :class:`RigPreset` or a preset name (with ``rig_seed`` for ``"random"``).
        frames: number of frames (> 0).
        seed: the dataset seed: frame ``i`` depends only on (preset, seed, sequence_length, i).
        shard_size: frames per annotation file and image folder.
        sequence_length: frames per sequence (one subject, room and continuous motion).
        motion_blur: None: in ~30% of sequences; True / False: always / never.
        overwrite: replace an existing dataset in ``out``.
        progress: called with the number of frames finished, as they finish.
    Returns:
        The path of the manifest.
    Raises:
        HandstreamError: bad arguments, or a folder that cannot be used.
    """
    out = Path(out)
    frames = _positive_int(frames, "frames")
    shard_size = _positive_int(shard_size, "shard_size")
    sequence_length = _positive_int(sequence_length, "sequence_length")
    seed = check_seed(seed)
    preset_obj = get_preset(preset, rig_seed) if isinstance(preset, str) else preset
    _prepare_folder(out, overwrite)
    save_calibration(preset_obj.rig, out / CALIBRATION)
    jobs = [(s, first, min(shard_size, frames - first)) for s, first in enumerate(range(0, frames, shard_size))]
    planned = [
        {
            "index": s,
            "annotations": ANNOTATION_PATTERN.format(shard=s),
            "images": f"shard_{s:05d}",
            "first_frame": f,
            "frames": n,
        }
        for s, f, n in jobs
    ]
    manifest = _manifest(preset_obj, seed, frames, shard_size, sequence_length, motion_blur, planned)
    _write_json(out / MANIFEST, manifest)

    gen = SynthGenerator(preset_obj, seed, sequence_length=sequence_length, motion_blur=motion_blur)
    for s, first, n in jobs:
        render_shard(out, preset_obj, seed, s, first, n, sequence_length, motion_blur, progress, gen)
    manifest["complete"] = True
    _write_json(out / MANIFEST, manifest)
    return out / MANIFEST


def _positive_int(value: Any, name: str) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise HandstreamError(f"{name}: expected a positive integer, got {value!r}") from None
    if number != value and not isinstance(value, str) or number <= 0:
        raise HandstreamError(f"{name}: expected a positive integer, got {value!r}")
    return number


# --- reading ------------------------------------------------------------------------------------------


class SynthDataset:
    """A synthetic dataset on disk: ``len(ds)`` frames, ``ds[i]`` a :class:`SynthSample`, iteration in order.

    Args:
        root: the dataset folder (with ``manifest.json``).
        allow_incomplete: read a dataset whose writing did not finish (only its finished shards).

    Attributes:
        manifest: the parsed manifest; ``rig``: the cameras (from ``calibration.toml``).

    Raises:
        HandstreamError: missing or malformed manifest, another format or version, missing files.
    """

    def __init__(self, root: str | Path, *, allow_incomplete: bool = False):
        self.root = Path(root)
        path = self.root / MANIFEST
        if not path.is_file():
            raise HandstreamError(f"{path}: not found; is {self.root} a handstream synthetic dataset?")
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise HandstreamError(f"{path}: not valid JSON: {exc}") from None
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise HandstreamError(f"{path}: format: expected {FORMAT!r}, got {manifest.get('format')!r}")
        if manifest.get("version") != VERSION:
            raise HandstreamError(
                f"{path}: version: this handstream reads version {VERSION}, got {manifest.get('version')!r}"
            )
        if not manifest.get("complete") and not allow_incomplete:
            raise HandstreamError(f"{path}: the dataset is incomplete (its writing did not finish)")
        self.manifest = manifest
        self.rig: Rig = load_calibration(self.root / manifest.get("calibration", CALIBRATION))
        shards = manifest.get("shards", [])
        if allow_incomplete:
            shards = [s for s in shards if (self.root / s["annotations"]).is_file()]
        self._shards = sorted(shards, key=lambda s: s["first_frame"])
        self._firsts = np.array([s["first_frame"] for s in self._shards], dtype=np.int64)
        self._length = int(sum(s["frames"] for s in self._shards))
        self._cache: OrderedDict[int, dict[str, np.ndarray]] = OrderedDict()
        self.color: str = manifest.get("color", "mono")

    def __len__(self) -> int:
        return self._length

    @property
    def num_views(self) -> int:
        """Number of cameras (``V``)."""
        return len(self.rig)

    def _shard_arrays(self, s: int) -> dict[str, np.ndarray]:
        if s in self._cache:
            self._cache.move_to_end(s)
            return self._cache[s]
        path = self.root / self._shards[s]["annotations"]
        if not path.is_file():
            raise HandstreamError(f"{path}: annotation shard not found")
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {key: data[key] for key in data.files}
        except (OSError, ValueError) as exc:
            raise HandstreamError(f"{path}: cannot read annotations: {exc}") from None
        missing = set(ARRAYS) - set(arrays)
        if missing:
            raise HandstreamError(f"{path}: missing arrays {', '.join(sorted(missing))}")
        self._cache[s] = arrays
        if len(self._cache) > _SHARD_CACHE:
            self._cache.popitem(last=False)
        return arrays

    def labels(self, index: int) -> dict[str, Any]:
        """The annotations of frame ``index`` (no images): the arrays of :data:`ARRAYS` for that frame."""
        index = self._check(index)
        s = int(np.searchsorted(self._firsts, index, side="right") - 1)
        arrays = self._shard_arrays(s)
        row = index - int(self._firsts[s])
        return {key: value[row] for key, value in arrays.items()}

    def image_path(self, index: int, view: int) -> Path:
        """Path of the PNG of frame ``index``, view ``view``."""
        index = self._check(index)
        s = int(np.searchsorted(self._firsts, index, side="right") - 1)
        return self.root / IMAGE_PATTERN.format(shard=self._shards[s]["index"], frame=index, view=view)

    def image(self, index: int, view: int) -> np.ndarray:
        """(h, w) or (h, w, 3) uint8 image of frame ``index``, view ``view``."""
        path = self.image_path(index, view)
        img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if img is None:
            raise HandstreamError(f"{path}: image not found or unreadable")
        return img

    def __getitem__(self, index: int) -> SynthSample:
        lab = self.labels(index)
        images = [self.image(index, v) for v in range(self.num_views)]
        return SynthSample(
            index=int(lab["frame_index"]),
            sequence=int(lab["sequence"]),
            time_s=float(lab["time_s"]),
            images=images,
            keypoints_2d=lab["keypoints_2d"],
            visibility=lab["visibility"],
            joints_3d=lab["joints_3d"],
            hand_box=lab["hand_box"],
            angles=lab["angles"],
            scale=float(lab["scale"]),
        )

    def __iter__(self) -> Iterator[SynthSample]:
        for i in range(len(self)):
            yield self[i]

    def _check(self, index: Any) -> int:
        if isinstance(index, bool) or not isinstance(index, int | np.integer):
            raise HandstreamError(f"frame index: expected an integer, got {index!r}")
        i = int(index)
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise HandstreamError(f"frame index {index} out of range for a dataset of {len(self)} frames")
        return i


def iter_frames(root: str | Path) -> Iterator[SynthSample]:
    """Iterate over the frames of the dataset in ``root``, in order."""
    return iter(SynthDataset(root))
