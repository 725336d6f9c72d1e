"""Crop-model items: perspective crop cameras around each hand ([hand_crop] camera = "perspective")."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from handstream.engine.crops import resample
from handstream.geometry.crop_camera import hand_crop
from handstream.models.codec import HeatmapCodec
from handstream.synth.dataset import write_dataset
from handstream.train.augment import AugmentConfig, HandCropConfig
from handstream.train.data import SynthViews, collate
from handstream.train.items import OUT_OF_FRAME, SampleSpec
from handstream.train.perspective import make_perspective_item
from tests.recipes import tiny_recipe

CODEC = HeatmapCodec((128, 128), 4, 2.0)
RULE = HandCropConfig(camera="perspective", negatives=0.0)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("h4p") / "data"
    write_dataset(root, "headset4", 3, seed=5, sequence_length=8)
    return root


def _item(ds: SynthViews, i: int, rng, hc: HandCropConfig, jitter: bool = True, status=None):
    f, v, h = (int(x) for x in ds._hands_seen()[i])
    lab = ds.data.labels(f)
    vis = lab["visibility"][v].astype(np.int64) if status is None else status
    crops: list = []
    item = make_perspective_item(
        SampleSpec(CODEC, ds.spec.augment, hand_crop=hc), ds.data.image(f, v), ds.data.rig[v], lab["joints_3d"], vis,
        rng, h, jitter=jitter, keypoints=lab["keypoints_2d"][v], out_crop=crops,
    )  # fmt: skip
    return item, crops[0], (f, v, h), lab


def test_rule_items_are_the_engine_crop(tiny):
    """Without augmentation an item is the engine's crop of the hand: the same crop camera (upright), exactly the
    engine's pixels, its rays, and labels that are the crop camera's projection of the true joints."""
    ds = SynthViews(tiny, SampleSpec(CODEC, None, hand_crop=RULE))
    assert len(ds) > 4
    for i in range(len(ds)):
        item, crop, (f, v, h), lab = _item(ds, i, None, RULE)
        cam, J = ds.data.rig[v], lab["joints_3d"]
        engine = hand_crop(cam, J[h], (128, 128), 1.6, 24.0)
        np.testing.assert_allclose(crop.rotation, engine.rotation, atol=1e-12)
        assert crop.focal == pytest.approx(engine.focal)
        np.testing.assert_array_equal(item["image"].numpy()[0], resample([ds.data.image(f, v)], [0], [engine])[0])
        np.testing.assert_allclose(item["rays"].numpy(), engine.ray_angles(4), atol=1e-7)
        assert np.allclose(item["affine"].numpy(), np.eye(3)[:2])
        uv = item["keypoints"].numpy()
        in_frame = lab["visibility"][v] < OUT_OF_FRAME
        np.testing.assert_allclose(uv[in_frame], crop.project(J)[in_frame], atol=1e-9)
        # the wrist's label is the wrist's ray in the real camera (no undistortion anywhere)
        Xc = cam.world_to_camera(J[h, 0])
        np.testing.assert_allclose(crop.rays(uv[h, 0]), Xc / np.linalg.norm(Xc), atol=1e-9)
        # upright: the wrist straight below the middle knuckle; the hand's box x 1.6 fills the crop
        assert uv[h, 0, 1] > uv[h, 9, 1] and abs(uv[h, 0, 0] - uv[h, 9, 0]) < 1e-6
        lo, hi = uv[h].min(axis=0), uv[h].max(axis=0)
        assert abs((hi - lo).max() * 1.6 - 128) < 0.5 or (hi - lo).max() * 1.6 < 128  # min_side may enlarge it
        assert item["presence"][h] == 1
        scored = item["in_frame"].numpy()
        assert not scored[1 - h].any() and (scored[h] == in_frame[h]).all()
        # the targets decode back to the labels (away from the border, where the Gaussian is cut)
        kp, _ = CODEC.decode(item["heatmaps"].numpy()[None])
        inner = in_frame & (uv > 24).all(axis=-1) & (uv < 104).all(axis=-1)
        assert np.abs(kp[0] - uv)[inner].max() < 0.1


def test_jittered_items_keep_labels_rays_and_pixels_exact(tiny):
    """Jittered crops (3D offset, roll, margin, acquisition crops): whatever the crop, the labels are its
    projection of the joints, the rays its rays, and outside the real frame the input stays 0."""
    hc = HandCropConfig(camera="perspective", negatives=0.0, roll_outliers=0.3, acquisition=0.3)
    ds = SynthViews(tiny, SampleSpec(CODEC, AugmentConfig(), hand_crop=hc), seed=3)
    rolls = []
    for i in range(len(ds)):
        for rep in range(3):
            item, crop, (f, v, h), lab = _item(ds, i, np.random.default_rng([i, rep]), hc)
            J, vis = lab["joints_3d"], lab["visibility"][v]
            uv = item["keypoints"].numpy()
            ok = vis < OUT_OF_FRAME
            np.testing.assert_allclose(uv[ok], crop.project(J)[ok], atol=1e-9)
            np.testing.assert_allclose(item["rays"].numpy(), crop.ray_angles(4), atol=1e-7)
            w = resample([np.full(ds.data.image(f, v).shape[:2], 255, np.uint8)], [0], [crop])[0]
            assert (item["image"].numpy()[0][w == 0] == 0).all()
            inside = ok & (uv >= -0.5).all(axis=-1) & (uv <= 127.5).all(axis=-1)
            assert (item["presence"].numpy() == (inside.sum(axis=1) >= 3)).all()
            d = uv[h, 9] - uv[h, 0]
            rolls.append(np.degrees(np.arctan2(d[0], -d[1])))  # 0: upright
    rolls = np.abs(np.asarray(rolls))
    assert np.median(rolls) < 20 and rolls.max() > 30  # mostly near upright, some far off


def test_out_of_frame_joints_are_known_absent_even_inside_the_crop(tiny):
    ds = SynthViews(tiny, SampleSpec(CODEC, None, hand_crop=RULE))
    f, v, h = (int(x) for x in ds._hands_seen()[0])
    vis = ds.data.labels(f)["visibility"][v].astype(np.int64).copy()
    vis[h, 8] = OUT_OF_FRAME  # say the index tip is outside the real frame (its crop pixel is inside)
    item, _, _, _ = _item(ds, 0, None, RULE, status=vis)
    k = h * 21 + 8
    assert item["heatmaps"][k].abs().max() == 0 and item["weights"][k] == 1  # zero map, weight kept
    assert not item["in_frame"][h, 8]


def test_negatives_say_no_hand_and_validation_has_fixed_ones(tiny):
    hc = HandCropConfig(camera="perspective", negatives=1.0)
    ds = SynthViews(tiny, SampleSpec(CODEC, AugmentConfig(), hand_crop=hc), seed=1)
    items = [ds[i] for i in range(len(ds))]
    for it in items:
        assert not it["in_frame"].numpy().any()  # validation scores no joint of a negative
    presence = np.stack([it["presence"].numpy() for it in items])
    assert presence.mean() < 0.2, presence.mean()
    val = SynthViews(tiny, SampleSpec(CODEC, None, hand_crop=HandCropConfig(camera="perspective", negatives=0.5)))
    a, b = [val[i] for i in range(len(val))], [val[i] for i in range(len(val))]
    for x, y in zip(a, b, strict=True):  # deterministic, epoch after epoch
        assert torch.equal(x["image"], y["image"]) and torch.equal(x["presence"], y["presence"])
    negatives = [not it["in_frame"].any() for it in a]
    assert 0 < sum(negatives) < len(a)


RECIPE = tiny_recipe(
    "crop-test",
    """
[codec]
input_size = [64, 64]
[train]
epochs = 1
batch = 4
workers = 0
threads = 1
max_steps_per_epoch = 3
val_max_items = 8
{init}
[hand_crop]
camera = "perspective"
margin = 1.5
[export]
onnx = "{onnx}"
""",
)


def test_a_tiny_run_trains_and_exports_a_perspective_crop_model(tiny, tmp_path):
    """``handstream train`` on perspective items: runs, validates (crop px), exports a manifest whose crop rule
    says perspective; a second run starts from that exported ONNX (batch norms re-created from the data)."""
    from handstream.models.manifest import crop_camera, load_manifest
    from handstream.train.recipe import load_recipe
    from handstream.train.trainer import train

    first = tmp_path / "first.onnx"
    recipe = tmp_path / "r.toml"
    recipe.write_text(RECIPE.format(data=tiny, init="", onnx=first))
    row = train(load_recipe(recipe), tmp_path / "run1", progress=False, log=lambda *_: None)
    assert np.isfinite(row["train_loss"]) and np.isfinite(row["val_epe_px"]) and row["val_items"] > 0
    manifest, _ = load_manifest(first)
    assert manifest.crop == {"margin": 1.5, "min_side": 24.0, "camera": "perspective"}
    assert crop_camera(manifest.crop) == "perspective"
    assert "perspective crop camera" in json.loads(first.with_name(first.name + ".json").read_text())["input"]["tensor"]

    second = tmp_path / "second.onnx"
    recipe.write_text(RECIPE.format(data=tiny, init=f'init = "{first}"', onnx=second))
    logs: list[str] = []
    row = train(load_recipe(recipe), tmp_path / "run2", progress=False, log=logs.append)
    assert any("starting from the weights of" in line for line in logs) and np.isfinite(row["train_loss"])
    assert load_manifest(second)[0].crop["camera"] == "perspective"


def test_unfuse_batchnorm_gives_back_a_trainable_network_that_computes_the_same():
    from handstream.models.checkpoint import fuse_batchnorm, unfuse_batchnorm
    from handstream.models.network import HandNet, NetConfig

    torch.manual_seed(0)
    net = HandNet(NetConfig(widths=(8, 16, 16, 16), depths=(1, 1, 1, 1), decoder=16, stem=8))
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.3, 0.3)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    x, r = torch.rand(6, 1, 64, 64), torch.rand(6, 2, 16, 16) - 0.5
    fused = fuse_batchnorm(net.eval())
    back = unfuse_batchnorm(fused, [(x, r)])
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in back.modules())
    assert set(back.state_dict()) == set(HandNet(net.config).state_dict())  # loads where a checkpoint does
    with torch.no_grad():
        for a, b in zip(fused(x, r), back.eval()(x, r), strict=True):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
        for a, b in zip(fused(x, r), back.train()(x, r), strict=True):  # the calibration batch: same statistics
            torch.testing.assert_close(a, b, atol=1e-3, rtol=1e-3)


def test_collated_perspective_batch_has_the_trainer_keys(tiny):
    ds = SynthViews(tiny, SampleSpec(CODEC, AugmentConfig(), hand_crop=HandCropConfig(camera="perspective")))
    window = SynthViews(tiny, SampleSpec(CODEC, AugmentConfig(), hand_crop=HandCropConfig()))
    batch = collate([ds[i] for i in range(4)])
    assert set(batch) == set(window[0])
    assert batch["image"].shape == (4, 1, 128, 128) and batch["rays"].shape == (4, 2, 32, 32)


def test_manifest_crop_rule_camera_key():
    from handstream.errors import HandstreamError
    from handstream.models.manifest import crop_camera, crop_rule

    assert crop_rule({"margin": 1.6, "min_side": 24}, "m") == {"margin": 1.6, "min_side": 24.0}  # older manifests
    assert crop_rule({"margin": 1.6, "camera": "window"}, "m") == {"margin": 1.6, "min_side": 0.0}
    rule = crop_rule({"margin": 1.6, "min_side": 24, "camera": "perspective"}, "m")
    assert rule == {"margin": 1.6, "min_side": 24.0, "camera": "perspective"}
    assert crop_camera(rule) == "perspective" and crop_camera({"margin": 1.6}) == "window" and crop_camera(None) is None
    with pytest.raises(HandstreamError, match="'crop' must be"):
        crop_rule({"margin": 1.6, "camera": "fisheye"}, "m")
