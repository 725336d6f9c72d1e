"""``handstream train`` end to end: 2 CPU processes under torchrun (DDP, gloo), then --resume in one."""

from __future__ import annotations

import csv
import os
import subprocess
import sys

import pytest
import torch

from handstream.synth.dataset import write_dataset
from tests.recipes import tiny_recipe

RECIPE = tiny_recipe(
    "ddp-test",
    """
[train]
epochs = {epochs}
batch = 2
workers = 0
threads = 1
crop = [64, 64]
full_size_epochs = 0
max_steps_per_epoch = 2
val_max_items = 4
""",
)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp") / "data"
    write_dataset(root, "stereo", 4, seed=11, sequence_length=4)
    return root


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_torchrun_two_processes_then_resume(tmp_path, data):
    recipe = tmp_path / "r.toml"
    recipe.write_text(RECIPE.format(data=data, epochs=1))
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "handstream.cli", "train", "--recipe", str(recipe), "--out", str(out), "--no-progress"]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = _rows(out / "metrics.csv")
    assert len(rows) == 1
    assert int(rows[0]["samples"]) == 2 * 2 * 2  # 2 steps x batch 2 x 2 processes
    assert float(rows[0]["val_epe_px"]) >= 0 and int(rows[0]["val_items"]) == 4
    ckpt = torch.load(out / "checkpoint.pt", weights_only=True)
    assert ckpt["epoch"] == 0 and ckpt["network"]["widths"] == [8, 16, 16, 16]
    assert (out / "recipe.toml").is_file() and (out / "model.pt").is_file()

    # one more epoch in a single process, continuing the checkpoint
    recipe.write_text(RECIPE.format(data=data, epochs=2))
    from handstream.cli import main

    assert main(["train", "--recipe", str(recipe), "--out", str(out), "--resume", "--no-progress"]) == 0
    rows = _rows(out / "metrics.csv")
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert torch.load(out / "checkpoint.pt", weights_only=True)["epoch"] == 1


def test_init_starts_from_another_runs_weights(tmp_path, data, capsys):
    from handstream.cli import main

    first = tmp_path / "first"
    recipe = tmp_path / "r.toml"
    recipe.write_text(RECIPE.format(data=data, epochs=1))
    assert main(["train", "--recipe", str(recipe), "--out", str(first), "--no-progress"]) == 0
    start = torch.load(first / "model.pt", weights_only=True)["model"]

    # train.init loads those weights: with lr ~0 the second run ends where the first one did
    init = f'[train]\ninit = "{first / "model.pt"}"\nlr = 1e-12\n'
    text = RECIPE.format(data=data, epochs=1).replace("[train]\n", init)
    recipe.write_text(text)
    assert main(["train", "--recipe", str(recipe), "--out", str(tmp_path / "second"), "--no-progress"]) == 0
    after = torch.load(tmp_path / "second" / "model.pt", weights_only=True)["model"]
    conv = [k for k in start if k.endswith("weight") and start[k].ndim == 4]
    for k in conv:
        torch.testing.assert_close(after[k], start[k], atol=1e-6, rtol=0)

    # a missing file or another network: one line naming train.init, exit 2, before any data is read
    recipe.write_text(text.replace(str(first / "model.pt"), str(tmp_path / "nope.pt")))
    assert main(["train", "--recipe", str(recipe), "--out", str(tmp_path / "third"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "train.init" in err[0] and "nope.pt" in err[0]
    recipe.write_text(text.replace("widths = [8, 16, 16, 16]", "widths = [8, 16, 16, 24]"))
    assert main(["train", "--recipe", str(recipe), "--out", str(tmp_path / "third"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "train.init" in err[0] and "another network" in err[0]
