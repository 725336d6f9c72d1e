"""Synthetic datasets on disk, their reader, the torch wrapper, the live source, the ``handstream synth`` commands."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import pytest

from handstream.errors import HandstreamError
from handstream.synth.dataset import ARRAYS, SynthDataset, iter_frames, write_dataset
from handstream.synth.generator import SynthGenerator
from handstream.synth.rigs import get_preset
from handstream.synth.source import SyntheticSource
from tests.cli_run import assert_one_line_error
from tests.cli_run import run_cli as run


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "ds"
    write_dataset(out, get_preset("headset4"), frames=5, seed=9, shard_size=3, sequence_length=4)
    return out


def test_dataset_layout_and_manifest(dataset):
    manifest = json.loads((dataset / "manifest.json").read_text())
    assert manifest["format"] == "handstream-synth" and manifest["version"] == 1 and manifest["complete"]
    assert manifest["frames"] == 5 and manifest["seed"] == 9 and manifest["preset"] == "headset4"
    assert [s["frames"] for s in manifest["shards"]] == [3, 2]
    assert manifest["visibility_codes"]["2"] == "occluded_by_other_hand"
    assert (dataset / "calibration.toml").is_file()
    assert sorted(p.name for p in (dataset / "shard_00001").iterdir())[:4] == [
        "0000003_v0.png",
        "0000003_v1.png",
        "0000003_v2.png",
        "0000003_v3.png",
    ]
    with np.load(dataset / "shard_00000.npz", allow_pickle=False) as data:
        assert set(data.files) == set(ARRAYS)
        assert data["keypoints_2d"].shape == (3, 4, 2, 21, 2) and data["visibility"].dtype == np.uint8
        assert data["joints_3d"].shape == (3, 2, 21, 3) and data["angles"].shape == (3, 2, 22)


def test_reader_returns_what_the_generator_rendered(dataset):
    ds = SynthDataset(dataset)
    assert len(ds) == 5 and ds.num_views == 4 and ds.rig.names == get_preset("headset4").rig.names
    gen = SynthGenerator(get_preset("headset4"), 9, sequence_length=4)
    for i in (0, 4):
        sample, frame = ds[i], gen.frame(i)
        assert sample.index == i and sample.sequence == i // 4
        for a, b in zip(sample.images, frame.images, strict=True):
            np.testing.assert_array_equal(a, b)  # PNG is lossless
        np.testing.assert_array_equal(sample.keypoints_2d, frame.labels.keypoints_2d)
        np.testing.assert_array_equal(sample.visibility, frame.labels.visibility)
        np.testing.assert_array_equal(sample.joints_3d, frame.labels.joints_3d)
    assert [s.index for s in iter_frames(dataset)] == [0, 1, 2, 3, 4]
    assert ds[-1].index == 4
    with pytest.raises(HandstreamError, match="out of range"):
        ds[5]


def test_shard_size_does_not_change_the_frames(dataset, tmp_path):
    other = tmp_path / "other"
    write_dataset(other, get_preset("headset4"), frames=5, seed=9, shard_size=2, sequence_length=4)
    a, b = SynthDataset(dataset), SynthDataset(other)
    for i in range(5):
        assert a.image_path(i, 2).read_bytes() == b.image_path(i, 2).read_bytes()
        for key, value in a.labels(i).items():
            np.testing.assert_array_equal(value, b.labels(i)[key])


def test_writer_refuses_bad_arguments_and_folders(dataset, tmp_path):
    with pytest.raises(HandstreamError, match="not empty"):
        write_dataset(dataset, get_preset("stereo"), frames=1)
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(HandstreamError, match="no manifest.json"):
        write_dataset(tmp_path, get_preset("stereo"), frames=1, overwrite=True)
    with pytest.raises(HandstreamError, match="frames"):
        write_dataset(tmp_path / "x", get_preset("stereo"), frames=0)
    with pytest.raises(HandstreamError, match="manifest.json: not found"):
        SynthDataset(tmp_path)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "manifest.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(HandstreamError, match="format"):
        SynthDataset(bad)


def test_overwrite_replaces_a_dataset(tmp_path):
    out = tmp_path / "ds"
    write_dataset(out, get_preset("stereo"), frames=3, seed=1, shard_size=2)
    write_dataset(out, get_preset("stereo"), frames=1, seed=2, overwrite=True)
    ds = SynthDataset(out)
    assert len(ds) == 1 and ds.manifest["seed"] == 2 and not (out / "shard_00001").exists()


def test_torch_dataset(dataset):
    torch = pytest.importorskip("torch")
    from handstream.synth.torch_dataset import SynthTorchDataset

    frames = SynthTorchDataset(dataset)
    item = frames[1]
    assert item["images"].shape == (4, 1, 480, 636) and item["images"].dtype == torch.uint8
    assert item["keypoints_2d"].shape == (4, 2, 21, 2) and item["keypoints_2d"].dtype == torch.float32
    views = SynthTorchDataset(dataset, per_view=True)
    assert len(views) == 20
    v = views[7]  # frame 1, view 3
    assert v["image"].shape == (1, 480, 636) and v["view"] == 3 and v["index"] == 1
    np.testing.assert_array_equal(v["keypoints_2d"].numpy(), item["keypoints_2d"][3].numpy())
    assert v["K"].shape == (3, 3)
    loader = torch.utils.data.DataLoader(views, batch_size=4)
    batch = next(iter(loader))
    assert batch["image"].shape == (4, 1, 480, 636) and batch["visibility"].shape == (4, 2, 21)


def test_synth_import_does_not_import_torch():
    code = "import sys, handstream.synth, handstream.cli; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.strip() == "False"


# --- live source ---------------------------------------------------------------------------------------


def test_synthetic_source_offline_timestamps_and_content():
    with SyntheticSource("stereo", seed=4, fps=50, realtime=False, max_frames=3, start_ns=1000) as source:
        bundles = list(source)
    assert [b.seq for b in bundles] == [0, 1, 2]
    assert [b.t_capture_ns for b in bundles] == [1000, 1000 + 20_000_000, 1000 + 40_000_000]
    assert bundles[0].cameras == ("left", "right")
    assert all(img.shape == (480, 640, 3) and img.dtype == np.uint8 for img in bundles[2].images)
    gen = SynthGenerator(source.preset, 4, sequence_length=None, motion_blur=False)
    np.testing.assert_array_equal(bundles[2].images[0], gen.frame(2).images[0])
    np.testing.assert_array_equal(bundles[1].labels.joints_3d, gen.frame(1).labels.joints_3d)


def test_synthetic_source_paces_in_real_time():
    source = SyntheticSource("stereo", seed=0, fps=20, realtime=True, max_frames=4)
    start = time.time_ns()
    bundles = list(source)
    elapsed = time.time_ns() - start
    assert len(bundles) == 4
    assert elapsed >= 3 * 50_000_000 * 0.9  # 4 frames at 20 fps: at least 3 intervals
    stamps = np.diff([b.t_capture_ns for b in bundles])
    assert np.all(stamps % 50_000_000 == 0) and np.all(stamps > 0)
    assert abs(bundles[0].t_capture_ns - start) < 1e9
    with pytest.raises(HandstreamError, match="fps"):
        SyntheticSource("stereo", fps=0)


# --- the commands --------------------------------------------------------------------------------------


def test_cli_render_and_preview(tmp_path):
    out = tmp_path / "cli_ds"
    result = run("synth", "render", "--rig", "stereo", "--frames", "2", "--out", str(out), "--seed", "3")
    assert result.returncode == 0, result.stderr
    assert "wrote 2 frames" in result.stdout and "frame" in result.stderr  # the progress bar
    assert len(SynthDataset(out)) == 2
    assert_one_line_error(
        run("synth", "render", "--rig", "stereo", "--frames", "2", "--out", str(out)), "not empty", "--overwrite"
    )
    assert_one_line_error(
        run("synth", "render", "--rig", "quad", "--frames", "2", "--out", str(tmp_path / "q")), "quad"
    )
    assert_one_line_error(run("synth", "render", "--frames", "0", "--out", str(tmp_path / "z")), "--frames")
    sheet = tmp_path / "sheet.png"
    result = run("synth", "preview", "--rig", "stereo", "--frames", "2", "--out", str(sheet))
    assert result.returncode == 0, result.stderr
    import cv2

    image = cv2.imread(str(sheet))
    assert image is not None and image.shape[1] > 2 * 420  # two views and the zoomed hands
    assert_one_line_error(run("synth", "preview", "--rig", "stereo", "--out", str(tmp_path / "s.gif")), ".png")


def test_cli_renders_your_own_rig_from_its_calibration_file(tmp_path):
    from handstream.geometry import save_calibration
    from handstream.synth.rigs import get_preset

    calib = tmp_path / "my-rig.toml"
    stereo = get_preset("stereo").rig
    save_calibration(stereo.scaled(1 / 0.04), calib)  # lengths in 4 cm board squares, as calibrations often are
    out = tmp_path / "mine"
    result = run("synth", "render", "--rig", str(calib), "--unit-scale", "0.04", "--frames", "3", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "file:my-rig.toml" in result.stdout
    ds = SynthDataset(out)
    assert len(ds) == 3 and ds.manifest["preset"] == "file:my-rig.toml" and len(ds.rig) == 2
    baseline = np.linalg.norm(ds.rig.centers[0] - ds.rig.centers[1])
    assert baseline == pytest.approx(0.08, abs=1e-9)  # in metres, whatever the file's unit
    assert_one_line_error(
        run(
            "synth", "render", "--rig", "stereo", "--unit-scale", "0.04", "--frames", "2", "--out", str(tmp_path / "u")
        ),
        "--unit-scale",
    )
    assert_one_line_error(
        run("synth", "preview", "--rig", str(tmp_path / "none.toml"), "--out", str(tmp_path / "p.png")), "none.toml"
    )
