"""MediaPipe's TFLite files and the steps both importers share (:mod:`handstream.models.importer` for the hand
landmark network, :mod:`handstream.models.palm_import` for the palm detector).

Finding the file: one the user gave (a ``.tflite``, or the member of a ``.task`` bundle with the wanted input shape)
or ``mediapipe==0.10.14`` fetched by package name (``pip download --no-deps``, else ``npm pack @mediapipe/hands``),
never from a model hub. Then: reading a flatbuffer's inputs and outputs (``tflite``), converting it (``tflite2onnx``),
the TFLite interpreter for parity (``ai_edge_litert``, optional), the real images parity runs on, and writing the
verified result. Heavy libraries are imported inside the functions: ``pip install 'handstream[import]'``.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from handstream.errors import HandstreamError
from handstream.records import file_sha256

MEDIAPIPE_WHEEL = "mediapipe==0.10.14"
"""The wheel the networks are taken from when no file is given (any platform's: the .tflite files are the same)."""

MEDIAPIPE_NPM = "@mediapipe/hands@0.4.1675469240"
"""The npm package tried when pip cannot fetch the wheel (its files sit in ``package/``)."""

WHEEL_FOLDER = "mediapipe/modules/hand_landmark/"

INPUT_SHAPE = (1, 224, 224, 3)

PALM_INPUT_SHAPE = (1, 192, 192, 3)

PALM_WHEEL_FOLDER = "mediapipe/modules/palm_detection/"

LICENCE = (
    "Apache-2.0: MediaPipe's weights (Google LLC), converted unchanged; keep MediaPipe's LICENSE with this model. "
    "Not part of handstream's distribution."
)

DEFAULT_PARITY_IMAGES = (
    Path(os.environ.get("HANDSTREAM_SHARED_DATA", Path(__file__).resolve().parents[3] / "shared" / "data"))
    / "real"
    / "images2d"
)
"""Real hand images for the parity check: ``../shared/data/real/images2d`` beside a checkout."""


def publish(staged: Path, out_dir: str | Path) -> Path:
    """Copy a verified ``staged`` file into ``out_dir`` (created); returns its path there."""
    out = Path(out_dir) / staged.name
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(staged, out)
    except OSError as exc:
        raise HandstreamError(f"{out}: cannot write it ({exc.strerror or exc})") from None
    return out


def landmark_tflite(path: str | Path, tmp_dir: Path, palm: bool = False) -> tuple[Path, str, dict]:
    """The landmark ``.tflite`` of a file the user gave: itself, or the member of a ``.task`` bundle whose input is
    1x224x224x3 (``palm``: 1x192x192x3, the palm detector), extracted into ``tmp_dir``. Returns (path, name for
    messages, provenance)."""
    path = Path(path)
    if not path.is_file():
        raise HandstreamError(f"{path}: file not found")
    source = {"source": path.name, "source_sha256": file_sha256(path)}
    with open(path, "rb") as f:
        head = f.read(8)
    if head[4:8] == b"TFL3":  # tested first: a .tflite with metadata may end with a zip of its associated files
        return path, str(path), source
    if not zipfile.is_zipfile(path):
        raise HandstreamError(f"{path}: neither a TFLite model (no TFL3 identifier) nor a .task bundle (not a zip)")
    require("tflite", str(path))
    try:
        with zipfile.ZipFile(path) as bundle:
            members = [m for m in bundle.namelist() if m.endswith(".tflite")]
            shapes = {m: input_shape(bundle.read(m)) for m in members}
    except (zipfile.BadZipFile, OSError) as exc:
        raise HandstreamError(f"{path}: not a readable .task bundle ({exc})") from None
    wanted = PALM_INPUT_SHAPE if palm else INPUT_SHAPE
    found = [m for m in members if shapes[m] == wanted]
    if not found:
        listed = ", ".join(f"{m} ({'x'.join(map(str, shapes[m])) if shapes[m] else 'unreadable'})" for m in members)
        what = "palm detector" if palm else "hand landmark network"
        raise HandstreamError(
            f"{path}: no {what} in the bundle (a .tflite with input {'x'.join(map(str, wanted))}); it holds: "
            f"{listed or 'no .tflite file'}"
        )
    member = found[0]
    out = tmp_dir / Path(member).name
    with zipfile.ZipFile(path) as bundle:
        out.write_bytes(bundle.read(member))
    return out, f"{path}:{member}", {**source, "source_member": member, "source_member_sha256": file_sha256(out)}


def fetch_landmark_network(variant: str, tmp_dir: Path, log: Callable[[str], object] = print,
                           palm: bool = False) -> tuple[Path, str, dict]:  # fmt: skip
    """``hand_landmark_{variant}.tflite`` (``palm``: ``palm_detection_{variant}.tflite``) fetched by package name:
    the ``mediapipe`` wheel with pip (any platform's, no dependencies, not installed), else the npm package with
    ``npm pack``. Needs a registry."""
    file = f"palm_detection_{variant}.tflite" if palm else f"hand_landmark_{variant}.tflite"
    folder = PALM_WHEEL_FOLDER if palm else WHEEL_FOLDER
    out = tmp_dir / file
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--platform",
           "manylinux_2_17_x86_64", "--python-version", "3.11", "--implementation", "cp", "--abi", "cp311",
           MEDIAPIPE_WHEEL, "--dest", str(tmp_dir / "wheel"), "--quiet"]  # fmt: skip
    log(f"fetching {MEDIAPIPE_WHEEL} (about 36 MB) with pip download --no-deps ...")
    why = _run(cmd)
    wheels = sorted((tmp_dir / "wheel").glob("mediapipe-*.whl"))
    if why is None and wheels:
        with zipfile.ZipFile(wheels[0]) as wheel:
            if folder + file not in wheel.namelist():
                raise HandstreamError(f"{wheels[0].name}: holds no {folder}{file}")
            out.write_bytes(wheel.read(folder + file))
        where = f"{wheels[0].name}:{folder}{file}"
        return out, where, {"source": where, "source_package": MEDIAPIPE_WHEEL, "source_sha256": file_sha256(out)}
    if shutil.which("npm") is None:
        raise HandstreamError(f"could not fetch {MEDIAPIPE_WHEEL} with pip ({why}); pass the .tflite or .task file")
    log(f"pip failed ({why}); trying npm pack {MEDIAPIPE_NPM} ...")
    npm_why = _run(["npm", "pack", MEDIAPIPE_NPM, "--silent", "--pack-destination", str(tmp_dir)])
    packs = sorted(tmp_dir.glob("mediapipe-hands-*.tgz"))
    if npm_why is not None or not packs:
        raise HandstreamError(
            f"could not fetch {MEDIAPIPE_WHEEL} with pip ({why}) nor {MEDIAPIPE_NPM} with npm ({npm_why}); "
            "pass the .tflite or .task file"
        )
    import tarfile

    with tarfile.open(packs[0]) as tgz:
        member = tgz.extractfile(f"package/{file}")
        if member is None:
            raise HandstreamError(f"{packs[0].name}: holds no package/{file}")
        out.write_bytes(member.read())
    where = f"{packs[0].name}:package/{file}"
    return out, where, {"source": where, "source_package": MEDIAPIPE_NPM, "source_sha256": file_sha256(out)}


def _run(cmd: list[str]) -> str | None:
    """Run a fetch command; None when it worked, else its last line of output."""
    try:
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    if result.returncode == 0:
        return None
    lines = (result.stderr or result.stdout).strip().splitlines()
    return lines[-1] if lines else f"exit status {result.returncode}"


def require(module: str, where: str):
    """``import module``, or a one-line error that says how to install the importer's packages."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise HandstreamError(f"{where}: {module} not importable ({exc}); pip install 'handstream[import]'") from None


def tflite_io(buf: bytes) -> tuple[list[tuple[tuple[int, ...], int]], list[tuple[int, ...]]]:
    """(inputs as (shape, tflite type), output shapes) of a TFLite flatbuffer; every tensor and buffer is
    touched, so a truncated file raises here (``tflite`` must be importable)."""
    import tflite

    if len(buf) < 8 or buf[4:8] != b"TFL3":
        raise ValueError("no TFL3 file identifier")
    model = tflite.Model.GetRootAsModel(buf, 0)
    graph = model.Subgraphs(0)
    for i in range(graph.TensorsLength()):
        graph.Tensors(i).ShapeAsNumpy()
    sum(model.Buffers(i).DataLength() for i in range(model.BuffersLength()))
    ins = [graph.Tensors(graph.Inputs(i)) for i in range(graph.InputsLength())]
    outs = [graph.Tensors(graph.Outputs(i)) for i in range(graph.OutputsLength())]
    return [(_shape(t), t.Type()) for t in ins], [_shape(t) for t in outs]


def _shape(tensor) -> tuple[int, ...]:
    shape = tensor.ShapeAsNumpy()
    return tuple(int(v) for v in shape) if isinstance(shape, np.ndarray) else ()


def input_shape(buf: bytes) -> tuple[int, ...] | None:
    """The first input's shape of a TFLite flatbuffer, None when it is unreadable (a bundle member)."""
    try:
        ins, _ = tflite_io(buf)
    except Exception:  # flatbuffers raise struct.error, IndexError, ... on a corrupt file
        return None
    return ins[0][0] if ins else None


def convert(tflite_path: Path, onnx_path: Path, where: str):
    """tflite2onnx on one file -> (the loaded ONNX model, seconds); its log lines are kept quiet."""
    onnx, tflite2onnx = require("onnx", where), require("tflite2onnx", where)
    logger = logging.getLogger("tflite2onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)  # "float16 not supported/tested yet": parity below says whether it matters
    start = time.perf_counter()
    try:
        tflite2onnx.convert(str(tflite_path), str(onnx_path))
    except Exception as exc:  # the converter raises whatever its op handlers raise
        line = str(exc).splitlines()[0][:160] if str(exc) else ""
        raise HandstreamError(f"{where}: tflite2onnx could not convert it ({type(exc).__name__}: {line})") from None
    finally:
        logger.setLevel(level)
    return onnx.load(str(onnx_path)), time.perf_counter() - start


def tflite_interpreter(where: str, log: Callable[[str], object] = print):
    """(the TFLite ``Interpreter`` class, None), or (None, the manifest's ``parity`` saying why it is not checked)
    when ``ai_edge_litert`` is not importable (said in ``log``)."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError as exc:
        why = f"ai_edge_litert is not importable ({exc}); pip install 'handstream[import]' to compare with TFLite"
        log(f"{where}: parity not checked: {why}")
        return None, {"checked": False, "why": why}
    return Interpreter, None


def parity_image_files(folder: str | Path | None) -> tuple[list[Path], str | None, Path | None]:
    """The real images for a parity check: every ``*.jpg``/``*.png`` under ``folder`` (default
    :data:`DEFAULT_PARITY_IMAGES`; a dataset's ``images/`` only). Returns (files, why there are none or None,
    the folder); a ``folder`` given that does not exist is a one-line error."""
    if folder is None and not DEFAULT_PARITY_IMAGES.is_dir():
        return [], f"no real images ({DEFAULT_PARITY_IMAGES} not found)", None
    root = Path(folder) if folder is not None else DEFAULT_PARITY_IMAGES
    if not root.is_dir():
        raise HandstreamError(f"{root}: parity images folder not found")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    if any(p.parent.name == "images" for p in files):  # a dataset's layout: not its vis/ overlays
        files = [p for p in files if p.parent.name == "images"]
    return files, None if files else f"no readable images under {root}", root


def package_version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "?"
