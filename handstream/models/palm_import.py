"""Import MediaPipe's palm detector (``palm_detection_{full,lite}.tflite``) as ``NAME.onnx`` + ``NAME.onnx.json``
(a :class:`~handstream.models.palm.PalmManifest`), for acquisition by search on RGB cameras.

1. Its fp16 weights are folded first: each DEQUANTIZE op (fp16 constant -> float32) is removed and its output made a
   float32 constant, with TFLite's own flatbuffer schema (``ai_edge_litert.schema_py_generated``). tflite2onnx
   0.4.1 cannot convert the file as it is: it transposes the PReLU slopes that come out of a DEQUANTIZE as if they
   were NHWC activations (an ``IndexError`` in its layout propagation). The folded model computes the same.
2. ``tflite2onnx`` converts the folded model (NCHW input ``(1, 3, 192, 192)``; the batch stays 1: the engine runs
   one view at a time).
3. Outputs told apart by shape: ``(1, 2016, 18)`` boxes, ``(1, 2016, 1)`` scores.
4. Parity: the TFLite interpreter on the *original* file against ONNX Runtime, on seeded random inputs and the
   real images of ``parity_images`` letterboxed as the engine does (:meth:`~handstream.models.palm.PalmDetector.
   prepare`); max abs difference (input px for boxes, logits for scores) above :data:`TOLERANCE` -> one-line error.
"""

from __future__ import annotations

import datetime as _dt
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from handstream.errors import HandstreamError
from handstream.models import mediapipe_files as mpf
from handstream.models.palm import INPUT_SIZE, PalmManifest, palm_input
from handstream.records import file_sha256

INPUT_SHAPE = (1, INPUT_SIZE, INPUT_SIZE, 3)
OUTPUT_SHAPES = ((1, 2016, 18), (1, 2016, 1))
TOLERANCE = 1e-3
"""Largest ONNX Runtime vs TFLite difference accepted per output (input px for boxes, logits for scores)."""
LITE_MAX_PARAMETERS = 1_050_000
"""The palm detectors are told apart by their parameter count: lite 960,126, full 1,132,574 (MediaPipe
0.10.14)."""


def is_palm_tflite(buf: bytes) -> bool:
    """Does ``buf`` look like MediaPipe's palm detector (input 1x192x192x3, outputs 1x2016x18 and 1x2016x1)?"""
    try:
        ins, outs = mpf.tflite_io(buf)
    except Exception:  # flatbuffers raise their own types on a corrupt file
        return False
    return len(ins) == 1 and ins[0][0] == INPUT_SHAPE and tuple(outs) == OUTPUT_SHAPES


def fold_fp16(buf: bytes, where: str) -> tuple[bytes, int]:
    """``buf`` with every DEQUANTIZE of an fp16 constant replaced by the float32 constant it computes; returns
    (the new flatbuffer, the ops folded)."""
    try:
        import flatbuffers
        from ai_edge_litert import schema_py_generated as schema
    except ImportError as exc:
        raise HandstreamError(f"{where}: {exc.name} not importable; pip install 'handstream[import]'") from None
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(buf, 0))
    deq = {i for i, oc in enumerate(model.operatorCodes)
           if max(oc.builtinCode, oc.deprecatedBuiltinCode) == schema.BuiltinOperator.DEQUANTIZE}  # fmt: skip
    folded = 0
    for graph in model.subgraphs:
        keep = []
        for op in graph.operators:
            src = graph.tensors[op.inputs[0]] if op.opcodeIndex in deq else None
            data = model.buffers[src.buffer].data if src is not None else None
            if src is None or src.type != schema.TensorType.FLOAT16 or data is None or len(data) == 0:
                keep.append(op)
                continue
            dst = graph.tensors[op.outputs[0]]
            values = np.frombuffer(bytes(data), dtype=np.float16).astype(np.float32)
            if values.size != int(np.prod(dst.shape)):
                raise HandstreamError(f"{where}: a DEQUANTIZE of {values.size} values into shape {list(dst.shape)}")
            buffer = schema.BufferT()
            buffer.data = np.frombuffer(values.tobytes(), dtype=np.uint8)
            model.buffers.append(buffer)
            dst.buffer = len(model.buffers) - 1
            folded += 1
        graph.operators = keep
    builder = flatbuffers.Builder(len(buf) * 2)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output()), folded


def import_palm(
    tflite_path: Path,
    where: str,
    source: dict,
    out_dir: str | Path,
    tmp_dir: Path,
    *,
    name: str | None = None,
    variant: str | None = None,
    check_parity: bool = True,
    parity_images: str | Path | None = None,
    log: Callable[[str], object] = print,
) -> list[Path]:
    """Convert the palm detector at ``tflite_path`` into ``out_dir/NAME.onnx`` and its manifest (module
    docstring). ``where`` names it in messages; ``source`` is its provenance. Returns the two paths."""
    buf = tflite_path.read_bytes()
    if not is_palm_tflite(buf):
        raise HandstreamError(
            f"{where}: not a MediaPipe palm detector (input 1x192x192x3, outputs 1x2016x18, 1x2016x1)"
        )
    t0 = time.perf_counter()
    folded, n_folded = fold_fp16(buf, where)
    folded_path = tmp_dir / "palm-folded.tflite"
    folded_path.write_bytes(folded)
    model, seconds = mpf.convert(folded_path, tmp_dir / "palm.onnx", where)
    seconds = time.perf_counter() - t0
    log(f"{where}: {n_folded} fp16 constants folded, converted with tflite2onnx in {seconds:.2f} s")
    outs = {tuple(d.dim_value for d in o.type.tensor_type.shape.dim): o.name for o in model.graph.output}
    if set(outs) != set(OUTPUT_SHAPES) or len(model.graph.input) != 1:
        raise HandstreamError(f"{where}: the converted graph's outputs are {sorted(outs)}, expected {OUTPUT_SHAPES}")
    n_params = sum(int(np.prod(t.dims)) for t in model.graph.initializer)
    found = "lite" if n_params <= LITE_MAX_PARAMETERS else "full"
    if variant is not None and variant != found:
        raise HandstreamError(f"{where}: is the {found} palm detector ({n_params:,} parameters), not the {variant} one")
    variant = found
    name = name or f"mediapipe-palm-{variant}"
    staged = tmp_dir / f"{name}.onnx"
    staged.write_bytes(model.SerializeToString())
    manifest = PalmManifest(name=name, artifact=staged.name, input_name=model.graph.input[0].name,
                            boxes=outs[OUTPUT_SHAPES[0]], scores=outs[OUTPUT_SHAPES[1]])  # fmt: skip
    parity = {"checked": False, "why": "check_parity=False"}
    if check_parity:
        parity = palm_parity(tflite_path, staged, manifest, parity_images, where, log)
    onnx_path = mpf.publish(staged, out_dir)
    manifest.parity = parity
    manifest.provenance = {
        **source,
        "variant": variant,
        "parameters": n_params,
        "converter": f"fp16 constants folded ({n_folded}), then tflite2onnx {mpf.package_version('tflite2onnx')}",
        "onnx": mpf.package_version("onnx"),
        "conversion_s": round(seconds, 3),
        "batch": "1",
        "converted": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "sha256": file_sha256(onnx_path),
        "licence": mpf.LICENCE,
    }
    mpath = manifest.save(onnx_path.with_name(onnx_path.name + ".json"))
    log(f"written {onnx_path} and {mpath.name} (palm detector, {n_params:,} parameters)")
    return [onnx_path, mpath]


def palm_parity(tflite_path: Path, onnx_path: Path, manifest: PalmManifest, images: str | Path | None, where: str,
                log: Callable[[str], object] = print) -> dict:  # fmt: skip
    """The original TFLite file against the converted ONNX one (module docstring, step 4): the manifest's
    ``parity``."""
    Interpreter, unchecked = mpf.tflite_interpreter(where, log)
    if Interpreter is None:
        return unchecked
    import onnxruntime as ort

    sets = {"random": np.random.default_rng(0).random((4, *INPUT_SHAPE[1:]), dtype=np.float32)}
    real, said = _real_inputs(images, palm_input)
    if real is not None:
        sets["real"] = real
    interpreter = Interpreter(model_path=str(tflite_path), num_threads=1)
    interpreter.allocate_tensors()
    inp = interpreter.get_input_details()[0]["index"]
    out_idx = {tuple(d["shape"]): d["index"] for d in interpreter.get_output_details()}
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    by_input = {}
    for key, x in sets.items():
        diff = {"boxes_px": 0.0, "scores_logit": 0.0}
        for img in x:
            interpreter.set_tensor(inp, img[None])
            interpreter.invoke()
            ref_b, ref_s = (interpreter.get_tensor(out_idx[s]) for s in OUTPUT_SHAPES)
            got_b, got_s = session.run([manifest.boxes, manifest.scores],
                                       {manifest.input_name: img.transpose(2, 0, 1)[None].copy()})  # fmt: skip
            diff["boxes_px"] = max(diff["boxes_px"], float(np.abs(got_b - ref_b).max()))
            diff["scores_logit"] = max(diff["scores_logit"], float(np.abs(got_s - ref_s).max()))
        by_input[key] = diff
    worst = {k: max(d[k] for d in by_input.values()) for k in ("boxes_px", "scores_logit")}
    log(f"{where}: ONNX Runtime vs TFLite, max abs diff: boxes {worst['boxes_px']:.2e} px, scores "
        f"{worst['scores_logit']:.2e} ({', '.join(f'{k} x{len(v)}' for k, v in sets.items())})")  # fmt: skip
    bad = {k: v for k, v in worst.items() if not v <= TOLERANCE}
    if bad:
        raise HandstreamError(
            f"{where}: the converted palm detector differs from TFLite by {bad} (tolerance {TOLERANCE}); "
            "nothing written"
        )
    return {
        "checked": True,
        "reference": f"TFLite interpreter (ai-edge-litert {mpf.package_version('ai-edge-litert')}) on the original",
        "runtime": f"onnxruntime {mpf.package_version('onnxruntime')} CPUExecutionProvider",
        "max_abs_diff": worst,
        "by_input": by_input,
        "inputs": [f"{k} x{len(v)}" for k, v in sets.items()],
        "real_inputs": said,
        "tolerance": TOLERANCE,
    }


def _real_inputs(folder: str | Path | None, prepare) -> tuple[np.ndarray | None, str]:
    """Real images letterboxed into (M, 192, 192, 3) float32 RGB [0, 1] inputs (``prepare``), and what they are."""
    import cv2

    files, none, root = mpf.parity_image_files(folder)
    x = [prepare(im)[0].transpose(1, 2, 0) for im in (cv2.imread(str(f)) for f in files) if im is not None]
    if not x:
        return None, f"{none or f'no readable images under {root}'}: random inputs only"
    return np.stack(x).astype(np.float32), f"{len(x)} images under {root.name}/ letterboxed to 192x192"
