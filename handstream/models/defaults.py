"""The models a fresh checkout runs: the shipped files in ``engines/`` and how a detector is paired with its
refine stage (the crop model of the tracked path, or the window refiner of the detect-every-frame path).
"""

from __future__ import annotations

from pathlib import Path

from handstream.errors import HandstreamError
from handstream.models.manifest import load_manifest, manifest_path

DEFAULT_MODEL = Path(__file__).resolve().parents[2] / "engines" / "handstream-default.onnx"
"""The shipped detector (``model.path``'s default)."""
DEFAULT_REFINER = DEFAULT_MODEL.with_name("handstream-refiner.onnx")
"""The shipped window refiner (the detect-every-frame path's refine stage)."""
DEFAULT_CROP_MODEL = DEFAULT_MODEL.with_name("handstream-crop.onnx")
"""The shipped crop model of perspective crops (the tracked path's)."""


def default_refiner(model: str | Path | None, tracking: bool = True) -> Path | None:
    """The refiner that goes with the detector ``model``: the one its manifest names (``handstream adapt``
    pairs an adapted detector with its adapted refiner; None when the manifest says to run without one),
    else the shipped one for the engine's path: the crop model of perspective crops (``tracking``, the
    default) or the window refiner of the detect-every-frame path."""
    if model is not None and Path(model).suffix != ".pt" and manifest_path(model).is_file():
        manifest, _ = load_manifest(model)
        if manifest.refiner == "":
            return None
        if manifest.refiner is not None:
            return manifest_path(model).parent / manifest.refiner
    return DEFAULT_CROP_MODEL if tracking else DEFAULT_REFINER


def refiner_option(
    value: str, model: str | Path | None = None, where: str = "--refiner", tracking: bool = True
) -> Path | None:
    """The ``--refiner`` option of serve, eval and bench (and ``model.refiner``): ``none`` -> None (no refine
    stage, no tracking), ``default`` -> :func:`default_refiner` of the detector ``model`` for the engine's path
    (``tracking``), else that path. Returned absolute; a missing file is a one-line HandstreamError that starts
    with ``where``."""
    if value.lower() == "none":
        return None
    path = default_refiner(model, tracking) if value.lower() == "default" else Path(value)
    if path is None:
        return None
    if not path.exists():
        raise HandstreamError(f"{where}: {path}: model not found (--refiner none runs without the refine stage)")
    return path.resolve()
