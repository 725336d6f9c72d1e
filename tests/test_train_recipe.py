"""Recipes: the shipped ones parse; every user mistake is one line naming the file and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from handstream.cli import main
from handstream.errors import HandstreamError
from handstream.train.recipe import load_recipe

ROOT = Path(__file__).resolve().parents[1]

GOOD = """
name = "t"
[[data.train]]
preset = "headset4"
seed = 1
frames = 10
"""


def test_shipped_recipes_parse():
    rec = load_recipe(ROOT / "training" / "default.toml")
    assert rec.name == "handstream-default"
    assert rec.codec.input_size == (256, 192)
    seeds = {s.seed for s in rec.train_sources}
    assert {s.seed for s in rec.val_sources}.isdisjoint(seeds)
    assert 9001 not in seeds  # the record's test split
    stage2 = load_recipe(ROOT / "training" / "default-stage2.toml")  # continues stage 1 on the same data
    assert stage2.train.init and stage2.network == rec.network
    assert [s.seed for s in stage2.train_sources] == [s.seed for s in rec.train_sources]
    refiner = load_recipe(ROOT / "training" / "refiner.toml")  # the refiner starts from the detector's weights
    assert refiner.hand_crop is not None and refiner.hand_crop.margin == 1.6 and refiner.train.crop is None
    assert refiner.network == rec.network and refiner.train.init.endswith("handstream-default-stage2/model.pt")
    assert {s.seed for s in refiner.val_sources}.isdisjoint({s.seed for s in refiner.train_sources})
    crop = load_recipe(ROOT / "training" / "crop-model.toml")  # the tracking engine's crop model, from the refiner
    assert crop.hand_crop is not None and crop.hand_crop.perspective
    assert crop.hand_crop.rule()["camera"] == "perspective"
    assert crop.network == refiner.network and crop.codec == refiner.codec
    assert crop.train.init.endswith("engines/handstream-refiner.onnx")
    assert crop.export_onnx.endswith("handstream-crop.onnx")
    assert {s.seed for s in crop.val_sources}.isdisjoint({s.seed for s in crop.train_sources} | {9001})


@pytest.mark.parametrize(
    "text, field",
    [
        ("name = 'x'", "data"),
        (GOOD + "[train]\nlr = -1\n", "train.lr"),
        (GOOD + "[train]\nepochs = 'ten'\n", "train.epochs"),
        (GOOD + "[train]\nschedule = 'linear'\n", "train.schedule"),
        (GOOD + "[train]\ncrop = [100, 64]\n", "train.crop"),
        (GOOD + "[train]\nbogus = 1\n", "train.bogus"),
        (GOOD + "[augment]\nzoom = [1.5, 1.0]\n", "augment.zoom"),
        (GOOD + "[codec]\ninput_size = [250, 192]\n", "codec.input_size"),
        (GOOD + "[network]\nwidths = [8, 16]\n", "network"),
        (GOOD + "[network]\nwidth = [8, 16, 16, 16]\n", "network"),
        (GOOD.replace("headset4", "octopus"), "data.train[0].preset"),
        (GOOD.replace("frames = 10", "frames = 0"), "data.train[0].frames"),
        (GOOD + "[[data.train]]\nkind = 'images2d'\n", "data.train[1].path"),
        (GOOD + "[export]\nonnx = 'model.pt'\n", "export.onnx"),
        ("name = 'x'\n[[data.train]\n", "not valid TOML"),
        (GOOD + "[hand_crop]\nmargin = 3.0\n", "hand_crop"),
        (GOOD + "[hand_crop]\nnegatives = 2.0\n", "hand_crop.negatives"),
        (GOOD + "[hand_crop]\nzoom = 2.0\n", "hand_crop.zoom"),
        (GOOD + "[train]\ncrop = [96, 64]\n[hand_crop]\n", "train.crop"),
        (GOOD + "[hand_crop]\ncamera = 'fisheye'\n", "hand_crop.camera"),
        (GOOD + "[hand_crop]\ncamera = 'perspective'\nroll_outliers = 1.5\n", "hand_crop.roll_outliers"),
        (GOOD + "[[data.train]]\nkind = 'images2d'\npath = 'x'\n[hand_crop]\ncamera = 'perspective'\n",
         "data.train[1]"),
    ],
)
def test_recipe_errors_are_one_line_naming_the_field(tmp_path, capsys, text, field):
    path = tmp_path / "r.toml"
    path.write_text(text)
    with pytest.raises(HandstreamError) as info:
        load_recipe(path)
    msg = str(info.value)
    assert "\n" not in msg and str(path) in msg and field in msg
    assert main(["train", "--recipe", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and field in err[0]


def test_missing_recipe_and_missing_checkpoint(tmp_path, capsys):
    assert main(["train", "--recipe", str(tmp_path / "nope.toml")]) == 2
    assert "recipe not found" in capsys.readouterr().err
    src = tmp_path / "data"
    from handstream.synth.dataset import write_dataset

    write_dataset(src, "stereo", 2, seed=3)
    path = tmp_path / "r.toml"
    path.write_text(f'name = "t"\n[[data.train]]\npath = "{src}"\n[train]\nbatch = 2\n')
    assert main(["train", "--recipe", str(path), "--out", str(tmp_path / "out"), "--resume"]) == 2
    assert "no checkpoint to resume from" in capsys.readouterr().err
