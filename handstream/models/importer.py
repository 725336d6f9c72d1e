"""Import MediaPipe's hand landmark network as a handstream crop model: ``NAME.onnx`` + ``NAME.onnx.json``.

What comes in (found by :mod:`handstream.models.mediapipe_files`): a ``hand_landmark_{full,lite}.tflite`` (from
the ``mediapipe`` wheel or the npm package ``@mediapipe/hands``), a Tasks-API ``.task`` bundle (a zip holding the
landmark and the palm network: the member whose input is 1x224x224x3), or nothing: then ``mediapipe==0.10.14`` is
fetched by package name (``pip download --no-deps``, else ``npm pack @mediapipe/hands``) and the network taken out
of it. Never from a model hub.

1. The TFLite flatbuffer is read (``tflite``) and checked: one float32 input 1x224x224x3, outputs 1x63, 1x1,
   1x1, 1x63 (landmarks, hand flag, handedness, world landmarks). A palm detector (1x192x192x3 -> anchors) is
   imported by :mod:`handstream.models.palm_import` instead (its fp16 weights folded first).
2. ``tflite2onnx`` converts it without TensorFlow (the full network's fp16 weights come out float32) into an
   NCHW graph (``input_1`` (1, 3, 224, 224)), opset 11, no Reshape: the batch axis is made dynamic by naming it
   ``N``, checked (a batch of 3 = 3 single runs); a graph where that fails keeps batch 1 (``max_views=1``).
3. Output roles: MediaPipe's output order, confirmed by the names of the layers that produce the outputs.
4. Parity: the TFLite interpreter (``ai-edge-litert``, a crop at a time) against ONNX Runtime (a batch) on
   seeded random crops and real ones when found (``parity_images``, by default ``shared/data/real/images2d``
   beside a checkout: :func:`real_crops`); max abs difference per output in its unit (px, probability,
   metres), above :data:`TOLERANCE` -> one-line error. Without ``ai_edge_litert``: ``{"checked": false}``.

The crop rule written into the manifest (:data:`CROP`): the engine's perspective crop camera
(:func:`handstream.geometry.crop_camera.hand_crop`, side = margin x the longer side of the box of all 21
joints, rolled upright wrist -> middle knuckle). MediaPipe's own rule when it tracks is 2.0 x the box of
12 joints without the finger tips and distal joints (``hand_landmark_landmarks_to_roi``; 2.6 x the palm box
from a detection). On the 9 fully annotated real hands of ``images2d`` (8 FreiHAND, 1 OneHand10K) that is
1.49 (median; 1.35-1.88) x the box of all 21. The engine's rule on those crops, hand flag (median) and mean
2D error (of the box's longer side; FreiHAND's knuckles add a definitional bias of their own):

    margin           1.4            1.5            1.6            1.8            2.0        MediaPipe's rule
    lite       0.986 / 0.119  0.994 / 0.113  0.995 / 0.115  0.993 / 0.120  0.989 / 0.130   0.991 / 0.125
    full       0.992 / 0.107  0.993 / 0.108  0.993 / 0.112  0.989 / 0.110  0.985 / 0.125   0.994 / 0.109

so margin 1.5. ``min_side`` 24 px is the shipped crop model's (a far hand is not magnified beyond what the
frame holds; MediaPipe has none).

Licence: the weights are MediaPipe's (Apache-2.0, Google LLC); converted files are not handstream's to ship:
keep MediaPipe's LICENSE with them. Heavy libraries (tflite, tflite2onnx, onnx, onnxruntime, ai_edge_litert,
cv2) are imported inside the functions: ``pip install 'handstream[import]'``.
"""

from __future__ import annotations

import datetime as _dt
import json
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from handstream.errors import HandstreamError
from handstream.models.landmarks import ROLES
from handstream.models.manifest import ModelManifest, manifest_path
from handstream.models.mediapipe_files import (
    INPUT_SHAPE,
    LICENCE,
    convert,
    fetch_landmark_network,
    landmark_tflite,
    package_version,
    parity_image_files,
    publish,
    require,
    tflite_interpreter,
    tflite_io,
)
from handstream.records import file_sha256

OUTPUT_SHAPES = ((1, 63), (1, 1), (1, 1), (1, 63))
"""MediaPipe's order: landmarks, hand flag (presence), handedness, world landmarks (:data:`ROLES`)."""
LAYER_NAMES = {"conv_landmarks": "landmarks", "conv_handflag": "presence", "conv_handedness": "handedness",
               "conv_world_landmarks": "world_landmarks"}  # fmt: skip
"""Names of the layers that produce each output in MediaPipe's networks (a check of the order)."""
LITE_MAX_PARAMETERS = 1_800_000
"""lite has 1,011,714 parameters, full 2,715,682."""
CROP = {"camera": "perspective", "margin": 1.5, "min_side": 24.0}
"""The engine's crop rule for this network (module docstring: how 1.5 was chosen)."""
TOLERANCE = 1e-3
"""Largest ONNX Runtime vs TFLite difference accepted per output, in its unit (px, probability, metres)."""
PARITY_KEYS = {"landmarks": "landmarks_px", "presence": "presence", "handedness": "handedness",
               "world_landmarks": "world_landmarks_m"}  # fmt: skip


def import_mediapipe(
    path: str | Path | None,
    out_dir: str | Path,
    *,
    variant: str | None = None,
    name: str | None = None,
    check_parity: bool = True,
    parity_images: str | Path | None = None,
    max_views: int = 16,
    palm: bool = False,
    log: Callable[[str], object] = print,
) -> list[Path]:
    """Convert MediaPipe's hand landmark network into ``out_dir/NAME.onnx`` and its manifest; or its palm
    detector (a ``palm_detection_*.tflite`` given, or ``palm=True``), by :mod:`handstream.models.palm_import`.

    Args:
        path: a ``hand_landmark_{full,lite}.tflite``, a ``.task`` bundle, or None: fetch :data:`MEDIAPIPE_WHEEL`
            by package name (needs pip, or npm, and a registry).
        out_dir: folder of the two files (created).
        variant: ``"full"`` or ``"lite"``: with ``path=None``, which network to take (default full, the one of
            Google's ``hand_landmarker.task``); with a path, a check (the variant is read from the parameter
            count). None: whatever the file is.
        name: file stem and manifest name; default ``mediapipe-hand-{variant}``.
        check_parity: compare ONNX Runtime with the TFLite interpreter (skipped, and said so, without
            ``ai_edge_litert``).
        parity_images: folder of real hand images for the parity check (default :data:`DEFAULT_PARITY_IMAGES`
            when it exists; else random crops only).
        max_views: the batch the manifest promises (the graph's batch axis is dynamic).
        palm: take the palm detector out of a ``.task`` bundle or the fetched package instead (a ``.tflite``
            given says what it is by itself).
        log: one line per step.
    Returns:
        [``NAME.onnx``, ``NAME.onnx.json``].
    Raises:
        HandstreamError (one line naming the file) for a missing or unreadable file, a bundle without a landmark
        network, a palm detector, any other network, a variant mismatch, a failed conversion or a parity miss.
    """
    if variant not in (None, "full", "lite"):
        raise HandstreamError(f"variant: expected 'full' or 'lite', got {variant!r}")
    if name is not None and (not name or Path(name).name != name or name.startswith(".")):
        raise HandstreamError(f"name: expected a file stem (no folder), got {name!r}")
    with tempfile.TemporaryDirectory(prefix="handstream-import-") as tmp:
        tmp_dir = Path(tmp)
        if path is None:
            tflite_path, where, source = fetch_landmark_network(variant or "full", tmp_dir, log, palm=palm)
        else:
            tflite_path, where, source = landmark_tflite(path, tmp_dir, palm=palm)
        from handstream.models.palm_import import import_palm, is_palm_tflite

        if is_palm_tflite(tflite_path.read_bytes()):
            return import_palm(tflite_path, where, source, out_dir, tmp_dir, name=name, variant=variant,
                               check_parity=check_parity, parity_images=parity_images, log=log)  # fmt: skip
        if palm:
            raise HandstreamError(f"{where}: not a MediaPipe palm detector (input 1x192x192x3)")
        check_landmark_tflite(tflite_path.read_bytes(), where)
        model, seconds = convert(tflite_path, tmp_dir / "converted.onnx", where)
        log(f"{where}: converted with tflite2onnx in {seconds:.2f} s")
        roles, layout = check_graph(model, where)
        n_params = sum(int(np.prod(t.dims)) for t in model.graph.initializer)
        found = "lite" if n_params <= LITE_MAX_PARAMETERS else "full"
        if variant is not None and path is not None and variant != found:
            raise HandstreamError(f"{where}: is the {found} network ({n_params:,} parameters), not the {variant} one")
        model, dynamic = dynamic_batch(model)
        if not dynamic:
            log(f"{where}: the batch axis could not be made dynamic; the model takes one crop (max_views=1)")
        name = name or f"mediapipe-hand-{found}"
        staged = tmp_dir / f"{name}.onnx"  # moved to out_dir once verified: a failed check leaves nothing there
        staged.write_bytes(model.SerializeToString())
        parity = {"checked": False, "why": "check_parity=False"}
        if check_parity:
            parity = parity_check(tflite_path, staged, roles, layout, parity_images, where, log)
        onnx_path = publish(staged, out_dir)
    provenance = {
        **source,
        "variant": found,
        "parameters": n_params,
        "converter": f"tflite2onnx {package_version('tflite2onnx')}",
        "tflite": package_version("tflite"),
        "onnx": package_version("onnx"),
        "opset": int(next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))),
        "conversion_s": round(seconds, 3),
        "batch": "dynamic" if dynamic else "1",
        "converted": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "sha256": file_sha256(onnx_path),
        "licence": LICENCE,
    }
    manifest = ModelManifest(
        name=name,
        artifact=onnx_path.name,
        kind="landmarks",
        input_size=(INPUT_SHAPE[2], INPUT_SHAPE[1]),
        stride=1,
        sigma=0.0,
        refine=None,
        kpe=False,
        max_views=max_views if dynamic else 1,
        input_names=[model.graph.input[0].name],
        output_names=[o.name for o in model.graph.output],
        output_roles=roles,
        input_layout=layout,
        provenance=provenance,
        parity=parity,
        crop=dict(CROP),
    )
    mpath = manifest.save(manifest_path(onnx_path))
    log(f"written {onnx_path} and {mpath.name} ({found}, {n_params:,} parameters, input {layout})")
    return [onnx_path, mpath]


# --- finding the network -------------------------------------------------------------------------------------


# --- checks ---------------------------------------------------------------------------------------------------


def check_landmark_tflite(buf: bytes, where: str) -> None:
    """One-line error unless ``buf`` is a readable TFLite hand landmark network (module docstring, step 1)."""
    require("tflite", where)
    try:
        ins, outs = tflite_io(buf)
    except Exception as exc:  # flatbuffers raise struct.error, IndexError, ... on a truncated file
        raise HandstreamError(
            f"{where}: not a readable TFLite model (truncated or corrupt? {str(exc).splitlines()[0][:160]})"
        ) from None
    dims = " + ".join("x".join(map(str, s)) for s, _ in ins) or "none"
    out_dims = ", ".join("x".join(map(str, s)) for s in outs) or "none"
    if len(ins) == 1 and ins[0][0][1:] == (192, 192, 3) and len(outs) == 2 and all(len(s) == 3 for s in outs):
        raise HandstreamError(
            f"{where}: a MediaPipe palm detector (input {dims}, outputs {out_dims}), not a hand landmark network"
        )
    if len(ins) != 1 or ins[0][0] != INPUT_SHAPE or ins[0][1] != 0:  # 0: tflite's FLOAT32
        raise HandstreamError(
            f"{where}: not a MediaPipe hand landmark network: input {dims} (tflite type "
            f"{[t for _, t in ins]}), expected 1x224x224x3 float32"
        )
    if tuple(outs) != OUTPUT_SHAPES:
        raise HandstreamError(
            f"{where}: not a MediaPipe hand landmark network: outputs {out_dims}, expected 1x63, 1x1, 1x1, 1x63"
        )


def _dims(value_info) -> list:
    return [d.dim_param or d.dim_value for d in value_info.type.tensor_type.shape.dim]


def check_graph(model, where: str) -> tuple[dict[str, str], str]:
    """The converted graph's input layout (``NCHW`` or ``NHWC``) and output roles (role -> output name), or a
    one-line error when it is not the network that was checked in the flatbuffer."""
    inputs, outputs = list(model.graph.input), list(model.graph.output)
    shape = _dims(inputs[0]) if len(inputs) == 1 else []
    layout = {(1, 3, 224, 224): "NCHW", (1, 224, 224, 3): "NHWC"}.get(tuple(shape))
    if layout is None:
        raise HandstreamError(
            f"{where}: the converted graph's inputs are {[(i.name, _dims(i)) for i in inputs]}, expected one "
            "1x3x224x224 (NCHW) or 1x224x224x3 (NHWC)"
        )
    if [tuple(_dims(o)) for o in outputs] != list(OUTPUT_SHAPES):
        raise HandstreamError(
            f"{where}: the converted graph's outputs are {[(o.name, _dims(o)) for o in outputs]}, expected "
            "1x63, 1x1, 1x1, 1x63"
        )
    roles = {role: o.name for role, o in zip(ROLES, outputs, strict=True)}
    named = _roles_by_layer(model)
    if named and named != roles:
        raise HandstreamError(
            f"{where}: the outputs' layers {named} are not in MediaPipe's order {list(ROLES)}; not a known network"
        )
    return roles, layout


def _roles_by_layer(model) -> dict[str, str]:
    """role -> output name, from the names of the weights of the layer behind each output (through a Sigmoid);
    {} when any output's layer has no known name."""
    producer = {out: node for node in model.graph.node for out in node.output}
    roles = {}
    for o in model.graph.output:
        node = producer.get(o.name)
        if node is not None and node.op_type == "Sigmoid":
            node = producer.get(node.input[0])
        text = " ".join(node.input) if node is not None else ""
        hits = [role for layer, role in LAYER_NAMES.items() if f"/{layer}/" in text]
        if len(hits) != 1:
            return {}
        roles[hits[0]] = o.name
    return roles if len(roles) == len(ROLES) else {}


def dynamic_batch(model):
    """(model with the batch axis named ``N``, True), checked: a batch of 3 random crops gives the outputs of 3
    single runs (1e-5); (the model unchanged, False) when the graph will not take it."""
    import onnx

    fixed = onnx.ModelProto()
    fixed.CopyFrom(model)
    for t in list(model.graph.input) + list(model.graph.output):
        t.type.tensor_type.shape.dim[0].dim_param = "N"
    del model.graph.value_info[:]  # tflite2onnx wrote batch 1 into every intermediate shape
    try:
        model = onnx.shape_inference.infer_shapes(model, strict_mode=True)
        onnx.checker.check_model(model, full_check=True)
        session = _session(model.SerializeToString())
        name = model.graph.input[0].name
        x = np.random.default_rng(0).random((3, *_dims(fixed.graph.input[0])[1:]), dtype=np.float32)
        batch = session.run(None, {name: x})
        for i in range(3):
            for a, b in zip(batch, session.run(None, {name: x[i : i + 1]}), strict=True):
                if a.shape[0] != 3 or not np.allclose(a[i : i + 1], b, atol=1e-5, rtol=0):
                    return fixed, False
    except Exception:  # onnx's checker and onnxruntime raise their own types: the graph will not batch
        return fixed, False
    return model, True


def _session(model_bytes: bytes):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # a check, not a benchmark: leave the cores to the machine
    options.inter_op_num_threads = 1
    return ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])


# --- parity ---------------------------------------------------------------------------------------------------


def parity_check(
    tflite_path: Path,
    onnx_path: Path,
    roles: dict[str, str],
    layout: str,
    images: str | Path | None,
    where: str,
    log: Callable[[str], object] = print,
) -> dict:
    """ONNX Runtime against the TFLite interpreter (module docstring, step 4): the manifest's ``parity``."""
    Interpreter, unchecked = tflite_interpreter(where, log)
    if Interpreter is None:
        return unchecked
    sets = {"random": np.random.default_rng(0).random((4, *INPUT_SHAPE[1:]), dtype=np.float32)}
    real, said = real_crops(images)
    if real is not None:
        sets["real"] = real
    interpreter = Interpreter(model_path=str(tflite_path), num_threads=1)
    interpreter.allocate_tensors()
    inp = interpreter.get_input_details()[0]["index"]
    outs = [d["index"] for d in interpreter.get_output_details()]  # MediaPipe's order, as checked
    session = _session(onnx_path.read_bytes())
    feed = session.get_inputs()[0].name
    by_input: dict[str, dict[str, float]] = {}
    for key, x in sets.items():
        ref = []
        for crop in x:
            interpreter.set_tensor(inp, crop[None])
            interpreter.invoke()
            ref.append([interpreter.get_tensor(i).copy() for i in outs])
        got = dict(zip([o.name for o in session.get_outputs()], session.run(None, {feed: _layout(x, layout)}),
                       strict=True))  # fmt: skip
        by_input[key] = {
            PARITY_KEYS[role]: float(np.abs(got[roles[role]] - np.concatenate([r[j] for r in ref])).max())
            for j, role in enumerate(ROLES)
        }
    worst = {k: max(d[k] for d in by_input.values()) for k in PARITY_KEYS.values()}
    parity = {
        "checked": True,
        "reference": f"TFLite interpreter (ai-edge-litert {package_version('ai-edge-litert')}, CPU, a crop at a time)",
        "runtime": f"onnxruntime {package_version('onnxruntime')} CPUExecutionProvider (each input set as one batch)",
        "max_abs_diff": worst,
        "by_input": by_input,
        "inputs": [f"{k} x{len(v)}" for k, v in sets.items()],
        "real_inputs": said,
        "tolerance": TOLERANCE,
    }
    log(f"{where}: ONNX Runtime vs TFLite, max abs diff: " + ", ".join(f"{k} {v:.2e}" for k, v in worst.items())
        + f" ({', '.join(parity['inputs'])})")  # fmt: skip
    bad = {k: v for k, v in worst.items() if not v <= TOLERANCE}
    if bad:
        raise HandstreamError(
            f"{where}: the converted model differs from TFLite by {bad} (tolerance {TOLERANCE} per output); "
            "nothing written"
        )
    return parity


def _layout(x: np.ndarray, layout: str) -> np.ndarray:
    """(N, 224, 224, 3) crops in the ONNX graph's layout."""
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2) if layout == "NCHW" else x)


PARTIAL_JOINTS = [0, 1, 2, 3, 5, 6, 9, 10, 13, 14, 17, 18]  # MediaPipe boxes these for its next crop


def real_crops(folder: str | Path | None) -> tuple[np.ndarray | None, str]:
    """Real (M, 224, 224, 3) float32 RGB [0, 1] crops for the parity check, and what they are (one line).

    Every ``*.jpg``/``*.png`` under ``folder`` (default :data:`DEFAULT_PARITY_IMAGES`), resized to 224x224; for
    images listed in an ``annotations_op21.json`` beside their ``images/`` folder (21 joints per hand, px), also
    MediaPipe's own crop of each hand: rolled upright (wrist -> middle knuckle), 2.0 x the box of
    :data:`PARTIAL_JOINTS`, shifted 0.1 of it towards the fingers. None when there is no folder or no image.
    """
    import cv2

    files, none, root = parity_image_files(folder)
    if not files:
        return None, f"{none}: random crops only"
    resized, crops = [], []
    for file in files:
        image = cv2.imread(str(file))
        if image is None:
            continue
        resized.append(cv2.resize(image, INPUT_SHAPE[1:3][::-1], interpolation=cv2.INTER_AREA))
        for joints in _annotated_hands(file):
            crops.append(_mediapipe_crop(image, joints))
    if not resized:
        return None, f"no readable images under {root}: random crops only"
    x = np.stack([cv2.cvtColor(im, cv2.COLOR_BGR2RGB) for im in resized + crops]).astype(np.float32) / 255
    return x, f"{len(resized)} images under {root.name}/ resized to 224x224, {len(crops)} upright hand crops"


def _annotated_hands(image: Path) -> list[np.ndarray]:
    """(21, 2) px joints (NaN: not visible) of each hand annotated for ``image`` in ``../annotations_op21.json``
    (shared/data's images2d format) whose wrist, middle knuckle and 4 of :data:`PARTIAL_JOINTS` are visible."""
    file = image.parent.parent / "annotations_op21.json"
    if image.parent.name != "images" or not file.is_file():
        return []
    try:
        samples = json.loads(file.read_text()).get("samples", [])
        hands = [h for s in samples if s.get("file") == image.name for h in s.get("hands", [])]
        kpts = [np.asarray(h["kpts2d"], np.float64) for h in hands]
        joints = [np.where(k[:, 2:3] > 0, k[:, :2], np.nan) for k in kpts if k.shape == (21, 3)]
    except (OSError, ValueError, KeyError, TypeError, AttributeError, IndexError):
        return []
    seen = [np.isfinite(j).all(axis=1) for j in joints]
    return [j for j, v in zip(joints, seen, strict=True) if v[0] and v[9] and v[PARTIAL_JOINTS].sum() >= 4]


def _mediapipe_crop(image: np.ndarray, joints: np.ndarray) -> np.ndarray:
    """The 224x224 BGR crop MediaPipe's tracking rule would take of a hand (:func:`real_crops`)."""
    import cv2

    up = joints[9] - joints[0]
    angle = np.arctan2(up[0], -up[1])
    c, s = np.cos(angle), np.sin(angle)
    rot = np.array([[c, s], [-s, c]])  # image -> upright crop axes
    q = joints[PARTIAL_JOINTS] @ rot.T
    lo, hi = np.nanmin(q, axis=0), np.nanmax(q, axis=0)
    centre = (lo + hi) / 2 - np.array([0.0, 0.1 * (hi - lo)[1]])
    scale = INPUT_SHAPE[1] / (2.0 * max(float((hi - lo).max()), 1.0))
    affine = np.hstack([scale * rot, (INPUT_SHAPE[1] / 2 - scale * centre)[:, None]])  # centre: upright axes
    return cv2.warpAffine(image, affine, INPUT_SHAPE[1:3][::-1], flags=cv2.INTER_LINEAR, borderValue=(0, 0, 0))


