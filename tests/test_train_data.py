"""Training data: geometry-exact augmentation, rays, targets, presence, real 2D images, loss decreases."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from handstream.capture.images2d import pinhole_for
from handstream.models.codec import HeatmapCodec
from handstream.models.kpe import ray_angles
from handstream.models.preprocess import prepare_views
from handstream.synth.dataset import write_dataset
from handstream.train.augment import AugmentConfig, HandCropConfig, InputMapping
from handstream.train.data import Images2D, SynthViews, collate
from handstream.train.items import SampleSpec
from handstream.train.loss import hand_loss

CODEC = HeatmapCodec((256, 192), 4, 2.0)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("h4") / "data"
    write_dataset(root, "headset4", 3, seed=5, sequence_length=8)
    return root


def _frame_px(item, codec):
    kp, conf = codec.decode(item["heatmaps"].numpy()[None])
    aff = item["affine"].numpy()
    return (kp[0] - aff[:, 2]) @ np.linalg.inv(aff[:, :2]).T


def test_plain_item_is_the_engine_input(tiny):
    ds = SynthViews(tiny, SampleSpec(CODEC))
    for i in range(len(ds)):
        item = ds[i]
        frame, view = divmod(i, ds.views)
        img = ds.data.image(frame, view)
        batch, (box,) = prepare_views([img], CODEC.input_size)
        np.testing.assert_array_equal(item["image"].numpy(), batch[0])
        np.testing.assert_array_equal(item["rays"].numpy(), ray_angles(ds.data.rig[view], box, 4))


def test_augmented_targets_and_rays_follow_the_geometry(tiny):
    aug = AugmentConfig(zoom=(0.7, 1.4), rotate_deg=30.0)
    for crop in (None, (160, 128)):
        ds = SynthViews(tiny, SampleSpec(CODEC, aug, crop), seed=3)
        codec = CODEC if crop is None else HeatmapCodec(crop, 4, 2.0)
        w, h = codec.input_size
        checked = 0
        for i in range(len(ds)):
            item = ds[i]
            assert item["image"].shape == (1, h, w) and item["rays"].shape == (2, h // 4, w // 4)
            aff = item["affine"].numpy()
            mapping = InputMapping((w, h), tuple(aff.ravel()))
            kp, m = item["keypoints"].numpy(), item["in_frame"].numpy()
            kin = mapping.to_input(kp)
            interior = m & (kin[..., 0] > 24) & (kin[..., 0] < w - 24) & (kin[..., 1] > 24) & (kin[..., 1] < h - 24)
            # targets decode back to the labelled frame pixels through the item's mapping
            if interior.any():
                err = np.abs(_frame_px(item, codec)[interior] - kp[interior]).max()
                assert err < 0.1
                checked += 1
            # rays: the true viewing direction of each cell's frame pixel
            cam = ds.data.rig[i % ds.views]
            ys, xs = np.mgrid[0 : h // 4, 0 : w // 4]
            cells = (np.stack([xs, ys], -1) + 0.5) * 4 - 0.5
            xy = cam.normalize(mapping.to_frame(cells))
            want = np.where(np.isfinite(xy), np.arctan(xy), 0).transpose(2, 0, 1)
            np.testing.assert_allclose(item["rays"].numpy(), want, atol=1e-5)
            # presence: >= 3 labelled joints inside the input
            inside = (
                m & (kin[..., 0] >= -0.5) & (kin[..., 0] <= w - 0.5) & (kin[..., 1] >= -0.5) & (kin[..., 1] <= h - 0.5)
            )
            np.testing.assert_array_equal(item["presence"].numpy(), (inside.sum(1) >= 3).astype(np.float32))
        assert checked > 0


def test_augmentation_is_deterministic_per_seed_and_epoch(tiny):
    spec = SampleSpec(CODEC, AugmentConfig())
    a, b = SynthViews(tiny, spec, seed=1), SynthViews(tiny, spec, seed=1)
    assert torch.equal(a[2]["image"], b[2]["image"])
    b.set_epoch(1)
    assert not torch.equal(a[2]["image"], b[2]["image"])


def test_real_images_2d(shared_data):
    folder = shared_data / "real" / "images2d" / "freihand_mmpose"
    ds = Images2D(folder, SampleSpec(CODEC, AugmentConfig()), fov_deg=40.0)
    assert len(ds) == 8
    item = ds[0]
    assert item["hand_known"] == 0 and item["weights"][21:].sum() == 0  # unknown side: right maps unsupervised
    assert item["presence"][0] == 1
    cam = pinhole_for(224, 224, 40.0)
    assert cam.K[0, 0] == pytest.approx(112 / np.tan(np.deg2rad(20)))
    plain = Images2D(folder, SampleSpec(CODEC))[0]
    kp = plain["keypoints"].numpy()[0]
    assert np.abs(_frame_px(plain, CODEC)[0] - kp).max() < 0.1


def test_unknown_side_loss_takes_the_better_assignment():
    n, hw = 2, (8, 8)
    target = torch.zeros(n, 42, *hw)
    target[:, 3, 4, 4] = 1.0  # a joint of the left slot
    weights = torch.zeros(n, 42)
    weights[:, :21] = 1.0
    pred = torch.zeros(n, 42, *hw)
    pred[:, 21 + 3, 4, 4] = 1.0  # the network put it in the right hand's map
    batch = {
        "heatmaps": target,
        "weights": weights,
        "presence": torch.tensor([[1.0, 0], [1.0, 0]]),
        "hand_known": torch.tensor([1.0, 0.0]),
    }
    logits = torch.zeros(n, 2)
    known, _ = hand_loss(pred[:1], logits[:1], {k: v[:1] for k, v in batch.items()}, sigma=2.0, presence_weight=0.0)
    unknown, _ = hand_loss(pred[1:], logits[1:], {k: v[1:] for k, v in batch.items()}, sigma=2.0, presence_weight=0.0)
    assert known > 0 and unknown == pytest.approx(0.0)


def test_a_few_training_steps_reduce_the_loss(tiny):
    from handstream.models.network import HandNet, NetConfig

    torch.manual_seed(0)
    ds = SynthViews(tiny, SampleSpec(CODEC, None, (96, 64)), seed=0)
    batch = collate([ds[i] for i in range(8)])
    net = HandNet(NetConfig(widths=(8, 16, 16, 16), depths=(1, 1, 1, 1), decoder=16, stem=8))
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    losses = []
    for _ in range(12):
        hm, logits = net(batch["image"], batch["rays"])
        loss, _ = hand_loss(hm, logits, batch, sigma=2.0)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.7 * losses[0]


def test_hand_windows_are_exact_and_cover_each_seen_hand(tiny):
    """Refiner items: one per (frame, view, hand) the frame shows; targets decode back to the labels."""
    codec = HeatmapCodec((128, 128), 4, 2.0)
    for aug in (None, AugmentConfig()):
        ds = SynthViews(tiny, SampleSpec(codec, aug, hand_crop=HandCropConfig(negatives=0.0)), seed=2)
        seen = [(f, v, h) for f, v, h in ds._hands_seen()]
        assert len(ds) == len(seen) > 0
        for i in range(len(ds)):
            item = ds[i]
            f, v, h = seen[i]
            assert item["image"].shape == (1, 128, 128) and item["rays"].shape == (2, 32, 32)
            scored = item["in_frame"].numpy()
            assert scored[h].sum() >= 3 and not scored[1 - h].any()  # validation scores the window's hand
            assert item["presence"][h] == 1
            aff = item["affine"].numpy()
            mapping = InputMapping((128, 128), tuple(aff.ravel()))
            np.testing.assert_allclose(item["rays"].numpy(), ray_angles(ds.data.rig[v], mapping, 4), atol=1e-6)
            kp = item["keypoints"].numpy()
            kin = mapping.to_input(kp)
            if aug is None:  # the engine's window: margin 1.6 around the box, every joint well inside
                assert ((kin[h][scored[h]] > 12) & (kin[h][scored[h]] < 116)).all()
            # targets decode back to the labels (away from the border, where the Gaussian is cut: as above)
            interior = scored & (kin[..., 0] > 24) & (kin[..., 0] < 104) & (kin[..., 1] > 24) & (kin[..., 1] < 104)
            err = np.abs(mapping.to_input(_frame_px(item, codec)) - kin)[interior]
            assert err.max() < 0.1, err.max()
