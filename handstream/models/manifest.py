"""The JSON manifest that travels next to every exported model (``<artifact>.json``, never inside it).

It says everything a backend needs to feed the model and read its outputs (input size, normalisation,
heatmap stride and joint layout, positional encoding), and where the artifact came from (checkpoint hash,
opset, TensorRT version and GPU, precision, parity figures), so the engine can refuse an artifact it
would misread, with a message that says what to rebuild.

Two kinds of model (``kind``, absent in every manifest written before the key existed: ``"heatmap"``):
``"heatmap"``, handstream's own networks (grey image [, rays] -> heatmaps, presence), and ``"landmarks"``, a
crop network that regresses one hand's 21 keypoints directly (MediaPipe's hand landmark network imported by
:mod:`handstream.models.importer`, decoded by :mod:`handstream.models.landmarks`): RGB input in the layout
``input_layout`` says, outputs named by ``output_roles``; stride, sigma, refine and kpe do not apply to it.

Example: ``engines/handstream-default.onnx`` and ``engines/handstream-default.onnx.json``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from handstream.errors import HandstreamError
from handstream.models.codec import HeatmapCodec
from handstream.skeleton import HANDS, HandJoint

FORMAT = "handstream.estimator"
VERSION = 1
ARTIFACT_FORMATS = ("onnx", "tensorrt", "checkpoint")
MODEL_KINDS = ("heatmap", "landmarks")
"""``kind``: heatmaps of both hands (handstream's networks) or one hand's regressed landmarks per crop."""
INPUT_LAYOUTS = ("NCHW", "NHWC")
LANDMARK_ROLES = ("landmarks", "presence", "handedness", "world_landmarks")
"""The outputs of a ``"landmarks"`` model (``output_roles`` maps each to an output name), see
:mod:`handstream.models.landmarks`."""
JOINT_NAMES = [j.name.lower() for j in HandJoint]


@dataclass
class ModelManifest:
    """Description of one model artifact.

    Attributes:
        name: model name (``handstream-default``).
        artifact: file name of the artifact, relative to the manifest's folder.
        artifact_format: ``onnx``, ``tensorrt`` or ``checkpoint`` (PyTorch weights).
        input_size: (W_in, H_in) network input, pixels.
        stride: input pixels per heatmap cell; sigma: target Gaussian in cells; refine: decoder refinement.
        kpe: whether the model takes the ``rays`` input (ray angles at heatmap resolution).
        network: the :class:`~handstream.models.network.NetConfig` as a dict (to rebuild it in PyTorch).
        max_views: largest batch the artifact accepts (ONNX: dynamic, any; TensorRT: its profile).
        input_names / output_names: tensor names: ``image`` [, ``rays``] -> ``heatmaps``, ``presence``.
        provenance: where it came from (checkpoint sha256, recipe, opset, torch/TensorRT versions, date).
        parity: figures of the export check (max abs diff against PyTorch, on which inputs).
        tensorrt: for engines: TensorRT version, GPU name and compute capability, precision.
        crop: None for a detector (whole frames, letterboxed); for a refiner, the rule of its hand windows
            (``{"margin": 1.6, "min_side": 24.0}``: side = margin x max(box side, min_side) frame px), see
            :mod:`handstream.models.crop`; for a crop model of the tracking engine, ``"camera": "perspective"``
            too: perspective crop cameras made by :func:`handstream.geometry.crop_camera.hand_crop` with that
            margin and min_side (:func:`crop_rule`, :func:`crop_camera`).
        refiner: for a detector, the refiner that goes with it, as a file name next to the manifest
            (``handstream adapt`` pairs an adapted detector with its adapted refiner); ``""``: this detector
            runs without a refiner (the shipped one has not seen its cameras); None: not said (the engine's
            default refiner).
        kind: ``"heatmap"`` (handstream's networks; every manifest without the key) or ``"landmarks"`` (a crop
            network regressing one hand's keypoints, e.g. MediaPipe's; needs ``crop`` and ``output_roles``).
        input_layout: ``"NCHW"`` (every heatmap model) or ``"NHWC"``: the image input's axis order.
        output_roles: for a landmarks model, the output name of each of :data:`LANDMARK_ROLES`; None otherwise.
    """

    name: str
    artifact: str
    artifact_format: str = "onnx"
    input_size: tuple[int, int] = (256, 192)
    stride: int = 4
    sigma: float = 2.0
    refine: str | None = "dark"
    kpe: bool = True
    network: dict = field(default_factory=dict)
    max_views: int = 16
    input_names: list[str] = field(default_factory=lambda: ["image", "rays"])
    output_names: list[str] = field(default_factory=lambda: ["heatmaps", "presence"])
    provenance: dict = field(default_factory=dict)
    parity: dict = field(default_factory=dict)
    tensorrt: dict | None = None
    crop: dict | None = None
    refiner: str | None = None
    kind: str = "heatmap"
    input_layout: str = "NCHW"
    output_roles: dict | None = None

    @property
    def codec(self) -> HeatmapCodec:
        if self.kind != "heatmap":
            raise HandstreamError(f"{self.artifact}: a {self.kind!r} model has no heatmaps (no heatmap codec)")
        return HeatmapCodec(tuple(self.input_size), self.stride, self.sigma, self.refine)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["input_size"] = list(self.input_size)
        if self.refiner is None:  # not said: the field stays out (a refiner's manifest never has it)
            del d["refiner"]
        if self.kind == "landmarks":
            for key in ("stride", "sigma", "refine", "kpe"):  # heatmap fields: they do not apply
                del d[key]
            return {"format": FORMAT, "version": VERSION, **d, **_landmarks_description(self)}
        del d["input_layout"], d["output_roles"]  # a heatmap model's are always NCHW and None
        return {
            "format": FORMAT,
            "version": VERSION,
            **d,
            "input": {
                "tensor": "image (N, 1, H_in, W_in) float32: grey = BGR->grey / 255, letterboxed top-left, zero padding"
                if self.crop is None
                else "image (N, 1, H_in, W_in) float32: grey = BGR->grey / 255, a square window around one hand (crop)"
                if crop_camera(self.crop) == "window"
                else "image (N, 1, H_in, W_in) float32: grey = BGR->grey / 255, a perspective crop camera looking at "
                "one hand, rolled upright (crop)",
                "rays": "rays (N, 2, H_in/stride, W_in/stride) float32: atan(x/z), atan(y/z) per heatmap cell"
                if self.kpe
                else None,
            },
            "layout": {"hands": list(HANDS), "joints": JOINT_NAMES, "heatmaps": "hand-major: left 0..20, right 21..41"},
        }

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    @classmethod
    def from_dict(cls, data: Any, where: str) -> ModelManifest:
        if not isinstance(data, dict):
            raise HandstreamError(f"{where}: expected a JSON object")
        if data.get("format") != FORMAT:
            raise HandstreamError(
                f"{where}: 'format' must be {FORMAT!r}, got {data.get('format')!r} (not a handstream model manifest)"
            )
        if data.get("version") != VERSION:
            raise HandstreamError(
                f"{where}: manifest version {data.get('version')!r} is not supported (this handstream reads {VERSION})"
            )
        layout = data.get("layout", {})
        if layout.get("hands", list(HANDS)) != list(HANDS) or layout.get("joints", JOINT_NAMES) != JOINT_NAMES:
            raise HandstreamError(f"{where}: 'layout' differs from handstream's 2 x 21 joint layout")

        def get(key: str, kind, default=None, required: bool = False):
            if key not in data:
                if required:
                    raise HandstreamError(f"{where}: missing field {key!r}")
                return default
            value = data[key]
            if kind is not None and not isinstance(value, kind) or isinstance(value, bool) and kind is int:
                kinds = kind if isinstance(kind, tuple) else (kind,)
                names = {"dict": "an object", "list": "a list", "str": "a string", "int": "an integer",
                         "float": "a number", "bool": "true or false", "NoneType": "null"}  # fmt: skip
                expected = " or ".join(dict.fromkeys(names.get(k.__name__, k.__name__) for k in kinds))
                raise HandstreamError(f"{where}: field {key!r} must be {expected}, got {value!r}")
            return value

        size = get("input_size", list, required=True)
        if len(size) != 2 or not all(isinstance(v, int) and v > 0 for v in size):
            raise HandstreamError(f"{where}: 'input_size' must be [width, height] positive integers, got {size!r}")
        fmt = get("artifact_format", str, "onnx")
        if fmt not in ARTIFACT_FORMATS:
            raise HandstreamError(f"{where}: 'artifact_format' must be one of {ARTIFACT_FORMATS}, got {fmt!r}")
        kind = get("kind", str, "heatmap")
        if kind not in MODEL_KINDS:
            raise HandstreamError(f"{where}: 'kind' must be one of {MODEL_KINDS}, got {kind!r}")
        layout_in = get("input_layout", str, "NCHW")
        if layout_in not in INPUT_LAYOUTS or kind == "heatmap" and layout_in != "NCHW":
            allowed = INPUT_LAYOUTS if kind == "landmarks" else ("NCHW",)
            raise HandstreamError(
                f"{where}: 'input_layout' must be one of {allowed} for a {kind} model, got {layout_in!r}"
            )
        if kind == "landmarks":
            return cls._landmarks_from(data, where, get, size, fmt, layout_in)
        stride = get("stride", int, required=True)
        if stride < 1 or size[0] % stride or size[1] % stride:
            raise HandstreamError(f"{where}: 'stride' {stride} must divide input_size {size}")
        refine = data.get("refine", "dark")
        if refine not in ("dark", "quadratic", None):
            raise HandstreamError(f"{where}: 'refine' must be 'dark', 'quadratic' or null, got {refine!r}")
        sigma = get("sigma", (int, float), 2.0)
        kpe = get("kpe", bool, True)
        inputs = get("input_names", list, ["image", "rays"] if kpe else ["image"])
        if inputs[:1] != ["image"] or (kpe and inputs[1:2] != ["rays"]) or len(inputs) != 1 + kpe:
            expected = ["image", "rays"] if kpe else ["image"]
            raise HandstreamError(f"{where}: 'input_names' must be {expected} for kpe={kpe}, got {inputs}")
        outputs = get("output_names", list, ["heatmaps", "presence"])
        if outputs != ["heatmaps", "presence"]:
            raise HandstreamError(f"{where}: 'output_names' must be ['heatmaps', 'presence'], got {outputs}")
        crop = crop_rule(get("crop", (dict, type(None)), None), where)
        refiner = get("refiner", (str, type(None)), None)
        if crop is not None and refiner is not None:
            raise HandstreamError(
                f"{where}: 'refiner' names the refiner of a detector, but this model is a refiner ('crop')"
            )
        return cls(
            **_common_fields(get, size, fmt),
            stride=stride,
            sigma=float(sigma),
            refine=refine,
            kpe=kpe,
            input_names=inputs,
            output_names=outputs,
            crop=crop,
            refiner=refiner,
        )

    @classmethod
    def _landmarks_from(cls, data: dict, where: str, get, size: list, fmt: str, layout_in: str) -> ModelManifest:
        """The fields of a ``"landmarks"`` model (its own checks; the heatmap fields are not read)."""
        inputs = get("input_names", list, required=True)
        outputs = get("output_names", list, required=True)
        roles = get("output_roles", dict, required=True)
        if len(inputs) != 1 or not all(isinstance(n, str) for n in inputs + outputs):
            raise HandstreamError(f"{where}: 'input_names' must be one tensor name for a landmarks model, got {inputs}")
        if sorted(roles) != sorted(LANDMARK_ROLES) or sorted(roles.values()) != sorted(outputs):
            raise HandstreamError(
                f"{where}: 'output_roles' must map {list(LANDMARK_ROLES)} to the output_names {outputs}, got {roles}"
            )
        crop = crop_rule(get("crop", dict, required=True), where)
        return cls(
            **_common_fields(get, size, fmt),
            stride=1,
            sigma=0.0,
            refine=None,
            kpe=False,
            input_names=inputs,
            output_names=outputs,
            crop=crop,
            kind="landmarks",
            input_layout=layout_in,
            output_roles=dict(roles),
        )


def _common_fields(get, size: list, fmt: str) -> dict[str, Any]:
    """The fields every kind of model has, read with ``from_dict``'s checked ``get``."""
    return {
        "name": get("name", str, required=True),
        "artifact": get("artifact", str, required=True),
        "artifact_format": fmt,
        "input_size": (size[0], size[1]),
        "network": get("network", dict, {}),
        "max_views": get("max_views", int, 16),
        "provenance": get("provenance", dict, {}),
        "parity": get("parity", dict, {}),
        "tensorrt": get("tensorrt", (dict, type(None)), None),
    }


def _landmarks_description(m: ModelManifest) -> dict[str, Any]:
    """The ``input``/``outputs``/``layout`` text of a landmarks model's manifest (written, never read back)."""
    w, h = m.input_size
    shape = f"(N, 3, {h}, {w})" if m.input_layout == "NCHW" else f"(N, {h}, {w}, 3)"
    text = {
        "landmarks": "(N, 63): 21 x (x, y, z) crop px; x right, y down, 0 and W_in at the crop's edges (handstream's "
        "pixel centres: x - 0.5, y - 0.5); z: depth relative to the wrist, about x's scale, smaller = nearer",
        "presence": "(N, 1): probability that the crop holds a hand",
        "handedness": "(N, 1): probability that the hand is a right hand (the subject's, in an unmirrored image)",
        "world_landmarks": "(N, 63): 21 x (x, y, z) metres, origin near the hand's centre, axes of the crop camera",
    }
    roles = m.output_roles or {}
    return {
        "input": {
            "tensor": f"{m.input_names[0] if m.input_names else 'image'} {shape} float32 RGB in [0, 1], an upright "
            "perspective crop around one hand (crop)",
        },
        "outputs": {roles[r]: f"{r} {text[r]}" for r in LANDMARK_ROLES if r in roles},
        "layout": {"hands": list(HANDS), "joints": JOINT_NAMES, "landmarks": "one hand per crop, 21 joints in order"},
    }


CROP_CAMERAS = ("window", "perspective")
"""The kinds of crop a crop network is trained on (``crop["camera"]``; absent: ``"window"``)."""


def crop_rule(crop: dict | None, where: str) -> dict | None:
    """A crop network's rule checked and normalised to ``{"margin": float >= 1, "min_side": float >= 0}``, plus
    ``"camera": "perspective"`` for a model trained on perspective crop cameras (None stays None: a detector);
    ``where`` names the file in the one-line error.

    ``camera`` says which crops the model expects: ``"window"`` (absent in the normalised rule, and in every
    manifest written before the key existed) is the refiner's affine window of the frame
    (:mod:`handstream.models.crop`); ``"perspective"`` is the tracking engine's perspective crop camera
    (:func:`handstream.geometry.crop_camera.hand_crop`, min_side in pixels of the real camera's focal length).
    """
    if crop is None:
        return None
    margin, min_side = crop.get("margin"), crop.get("min_side", 0.0)
    camera = crop.get("camera", "window")
    ok = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (margin, min_side))
    if not ok or margin < 1 or min_side < 0 or camera not in CROP_CAMERAS:
        raise HandstreamError(
            f'{where}: \'crop\' must be {{"margin": >= 1, "min_side": >= 0[, "camera": "window" or "perspective"]}}, '
            f"got {crop!r}"
        )
    rule = {"margin": float(margin), "min_side": float(min_side)}
    if camera == "perspective":
        rule["camera"] = "perspective"
    return rule


def crop_camera(crop: dict | None) -> str | None:
    """Which crops a model expects: ``"window"``, ``"perspective"``, or None for a detector (no ``crop`` rule)."""
    return None if crop is None else str(crop.get("camera", "window"))


def manifest_path(artifact: str | Path) -> Path:
    """The sidecar of an artifact: ``model.onnx`` -> ``model.onnx.json``."""
    artifact = Path(artifact)
    return artifact if artifact.suffix == ".json" else artifact.with_name(artifact.name + ".json")


def load_manifest(path: str | Path) -> tuple[ModelManifest, Path]:
    """Read a model's manifest, given the manifest or the artifact it describes.

    Returns:
        the manifest and the artifact's path (checked to exist).
    Raises:
        HandstreamError naming the file and field when anything is missing or inconsistent.
    """
    path = Path(path)
    mpath = manifest_path(path)
    if not mpath.is_file():
        if not path.exists():
            raise HandstreamError(f"{path}: model not found")
        raise HandstreamError(
            f"{path}: no manifest next to it (expected {mpath.name}; export the model with `handstream export-engine`)"
        )
    try:
        data = json.loads(mpath.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise HandstreamError(f"{mpath}: not a readable JSON manifest ({exc})") from None
    manifest = ModelManifest.from_dict(data, str(mpath))
    artifact = mpath.parent / manifest.artifact
    if not artifact.is_file():
        raise HandstreamError(f"{mpath}: artifact {manifest.artifact!r} not found next to it")
    if path.suffix != ".json" and artifact.resolve() != path.resolve():
        raise HandstreamError(f"{mpath}: describes {manifest.artifact!r}, not {path.name!r}")
    return manifest, artifact
