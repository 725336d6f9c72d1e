"""``handstream import-model mediapipe``: MediaPipe's hand landmark network -> a handstream crop model (ONNX +
manifest) on this machine. The work is :func:`handstream.models.importer.import_mediapipe`."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.console import Console

from handstream.errors import HandstreamError

SOURCES = ("mediapipe",)


def import_model_command(
    source: str = typer.Argument(..., help="Whose network: mediapipe."),
    path: Path = typer.Argument(
        None,
        help="Google's hand_landmarker.task, or a hand_landmark_full/lite.tflite; none: fetch mediapipe==0.10.14 by "
        "package name (pip, else npm) and take the network out of it.",
    ),
    out: Path = typer.Option(..., "--out", help="Output path without suffix, e.g. engines/mediapipe-lite."),
    variant: str = typer.Option(
        None, "--variant", help="full | lite: which network to take from a bundle or package (default: full)."
    ),
    palm: bool = typer.Option(
        False, "--palm", help="Take the palm detector out of the bundle or package (a .tflite says what it is itself)."
    ),
    no_parity: bool = typer.Option(False, "--no-parity", help="Skip the check against the TFLite interpreter."),
    parity_images: Path = typer.Option(
        None, "--parity-images", help="Folder of real hand images for the parity check (default: shared data)."
    ),
) -> None:
    """Import MediaPipe's hand landmark network as a crop model of the tracked engine, or its palm detector.

    Converts it to ONNX (tflite2onnx, no TensorFlow), checks it against the TFLite interpreter on real crops
    (parity into the manifest) and writes OUT.onnx + OUT.onnx.json. The weights are MediaPipe's (Apache-2.0):
    keep its licence with them; they are not handstream's to ship. Serve with it as model.refiner (or --refiner):
    it runs on RGB cameras, finds hands by itself (engine.acquire = auto) and needs pip install 'handstream[import]'
    only to import. A palm detector (palm_detection_*.tflite, or --palm) is for model.palm_detector
    (--palm-detector): acquisition on RGB cameras then looks where it finds palms before it sweeps.

    Examples:
      handstream import-model mediapipe hand_landmarker.task --out engines/mediapipe-full
      handstream import-model mediapipe --variant lite --out engines/mediapipe-lite
      handstream import-model mediapipe --palm --variant lite --out engines/mediapipe-palm-lite
      handstream serve --video cam0.mp4 --video cam1.mp4 --calibration calib.toml --refiner engines/mediapipe-lite.onnx
    """
    from handstream.models.importer import import_mediapipe

    if source.lower() not in SOURCES:
        raise HandstreamError(f"import-model: expected a source among {', '.join(SOURCES)}, got {source!r}")
    if variant is not None and variant not in ("full", "lite"):
        raise HandstreamError(f"--variant: expected full or lite, got {variant!r}")
    out = Path(out)
    name = out.name[: -len(".onnx")] if out.name.endswith(".onnx") else out.name
    if not name:
        raise HandstreamError(f"--out: expected a path without suffix like engines/mediapipe-lite, got {str(out)!r}")
    paths = import_mediapipe(
        path, out.parent, variant=variant, name=name, check_parity=not no_parity, parity_images=parity_images,
        palm=palm, log=lambda s: print(s, file=sys.stderr, flush=True),
    )  # fmt: skip
    for p in paths:
        Console().print(f"wrote {p}", markup=False, highlight=False)
