"""``handstream synth``: render synthetic datasets and preview them.

Thin wrappers: parse, call :mod:`handstream.synth`, print. Bad arguments raise
:class:`~handstream.errors.HandstreamError`, which :func:`handstream.cli.main` prints as one line (exit 2).
"""

from __future__ import annotations

import time
from pathlib import Path

import typer

from handstream.cli.options import Color, Rig, RigSeed, Seed, UnitScale
from handstream.errors import HandstreamError

synth_app = typer.Typer(
    help="Synthetic egocentric hands: render datasets, preview rigs.",
    no_args_is_help=True,
)


def _preset(rig: str, rig_seed: int, color: str | None, unit_scale: float | None = None):
    from handstream.synth.rigs import get_preset

    if color is not None and color not in ("mono", "rgb"):
        raise HandstreamError(f"--color: expected 'mono' or 'rgb', got {color!r}")
    return get_preset(rig, rig_seed, color=color, unit_scale=unit_scale)  # it checks --unit-scale


@synth_app.command("render")
def render(
    rig: Rig = "headset4",
    frames: int = typer.Option(..., "--frames", help="Number of frames to render."),
    out: Path = typer.Option(..., "--out", help="Dataset folder to create (must be empty, or use --overwrite)."),
    seed: Seed = 0,
    shard_size: int = typer.Option(500, "--shard-size", help="Frames per annotation file / image folder."),
    sequence_length: int = typer.Option(64, "--sequence-length", help="Frames per sequence (continuous motion)."),
    rig_seed: RigSeed = 0,
    color: Color = None,
    unit_scale: UnitScale = None,
    motion_blur: bool = typer.Option(None, "--motion-blur/--no-motion-blur", help="Force motion blur on or off."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a dataset already in --out."),
) -> None:
    """Render a synthetic multi-view hand dataset (images + annotations, see docs/synthetic-data.md).

    The same --seed gives the same bytes. --unit-scale: with a calibration file as --rig.

    Examples:

        handstream synth render --rig headset4 --frames 3000 --out data/synth --seed 0

        handstream synth render --rig random --rig-seed 7 --frames 500 --out data/unseen --seed 1

        handstream synth render --rig my-rig/calibration.toml --frames 500 --out data/my-rig   (your cameras)
    """
    from tqdm import tqdm

    from handstream.synth.dataset import check_output_folder, write_dataset

    if frames <= 0:
        raise HandstreamError(f"--frames: expected a positive number of frames, got {frames}")
    if seed < 0:
        raise HandstreamError(f"--seed: expected a non-negative integer, got {seed}")
    for name, value in (("--shard-size", shard_size), ("--sequence-length", sequence_length)):
        if value <= 0:
            raise HandstreamError(f"{name}: expected a positive integer, got {value}")
    preset = _preset(rig, rig_seed, color, unit_scale)
    check_output_folder(out, overwrite)
    typer.echo(f"{preset.name}: {preset.description}")
    start = time.perf_counter()
    with tqdm(total=frames, unit="frame", desc=f"synth {preset.name}", dynamic_ncols=True) as bar:
        manifest = write_dataset(
            out,
            preset,
            frames,
            seed,
            shard_size=shard_size,
            sequence_length=sequence_length,
            motion_blur=motion_blur,
            overwrite=overwrite,
            progress=bar.update,
            rig_seed=rig_seed,
        )
    elapsed = time.perf_counter() - start
    typer.echo(f"wrote {frames} frames x {len(preset.rig)} views to {out} ({elapsed:.1f} s); manifest: {manifest}")


@synth_app.command("preview")
def preview(
    rig: Rig = "headset4",
    out: Path = typer.Option(Path("preview.png"), "--out", help="Image to write (.png or .jpg)."),
    seed: Seed = 0,
    frames: int = typer.Option(3, "--frames", help="Frames (rows) on the sheet."),
    rig_seed: RigSeed = 0,
    color: Color = None,
    unit_scale: UnitScale = None,
    tile_width: int = typer.Option(420, "--tile-width", help="Width of each view's tile, pixels."),
) -> None:
    """Write a contact sheet of a few frames (rows) from every camera (columns), ground truth drawn.

    --unit-scale: with a calibration file as --rig.

    Examples:

        handstream synth preview --rig headset4 --out preview.png

        handstream synth preview --rig stereo --frames 4 --seed 3 --out stereo.png

        handstream synth preview --rig my-rig/calibration.toml --out my-rig.png
    """
    import cv2

    from handstream.synth.generator import SynthGenerator
    from handstream.synth.preview import preview as make_preview

    if frames <= 0 or frames > 64:
        raise HandstreamError(f"--frames: expected 1 to 64 rows, got {frames}")
    if seed < 0:
        raise HandstreamError(f"--seed: expected a non-negative integer, got {seed}")
    if not 64 <= tile_width <= 2000:
        raise HandstreamError(f"--tile-width: expected 64 to 2000 pixels, got {tile_width}")
    if out.suffix.lower() not in (".png", ".jpg", ".jpeg"):
        raise HandstreamError(f"--out: expected a .png or .jpg file name, got {out}")
    if not out.parent.is_dir():
        raise HandstreamError(f"--out: folder {out.parent} does not exist")
    preset = _preset(rig, rig_seed, color, unit_scale)
    gen = SynthGenerator(preset, seed)
    sheet = make_preview(gen, frames, tile_width)
    if not cv2.imwrite(str(out), sheet):
        raise HandstreamError(f"{out}: cannot write the image")
    typer.echo(f"wrote {out} ({sheet.shape[1]}x{sheet.shape[0]}, {len(preset.rig)} views x {frames} frames)")
