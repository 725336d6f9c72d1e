"""``handstream train``: supervised training from a TOML recipe (single process or under torchrun)."""

from __future__ import annotations

from pathlib import Path

import typer

from handstream.cli.options import NoProgress


def train_command(
    recipe: Path = typer.Option(..., "--recipe", help="Training recipe (TOML), e.g. training/default.toml."),
    out: Path = typer.Option(None, "--out", help="Output folder (default: runs/<recipe name>)."),
    resume: bool = typer.Option(False, "--resume", help="Continue from OUT/checkpoint.pt."),
    no_progress: NoProgress = False,
) -> None:
    """Train the 2D estimator on synthetic and/or real 2D-labelled data.

    With --no-progress it logs one line per epoch instead of a progress bar.

    Example: handstream train --recipe training/default.toml --out runs/default
    Two processes: torchrun --nproc_per_node 2 -m handstream.cli train --recipe training/default.toml
    """
    from handstream.train.recipe import load_recipe
    from handstream.train.trainer import train

    rec = load_recipe(recipe)
    train(rec, out or Path("runs") / rec.name, resume=resume, progress=not no_progress)
