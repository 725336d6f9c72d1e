"""2D precision of crop networks on the same hands, in frame pixels (the figures of this record's README).

For every (frame, view, hand) of a synthetic split with >= 3 joints in the frame (at most ``--max-items``, evenly
spread), each crop placed by the engine's rule from the truth (no tracker or detector error):

* ``refiner/window``: the window refiner on its affine window (``handstream.models.crop``, 2D labels, margin 1.6);
* ``<model>/perspective``: a crop network on the perspective crop camera (``hand_crop`` from the 3D joints),
  decoded keypoints taken to frame pixels through the crop camera and the real lens (``CropCamera.to_frame``);
* the same with a tracker-like error (``--jitter``: the training draw of the recipe's ``[hand_crop]``).

Scored over the crop's own hand's joints inside the frame: EPE / median (frame px), PCK@0.2 of the hand's box
(frame px), EPE in crop px (perspective), ``presence_rate``: presence > 0.5 of the crop's hand. And
``<model>/negatives``: the recipe's negative crops (a lost track 15-40 cm away, a random direction), where
``false_presence`` is the rate of presence > 0.5 for hands the crop does not show (label presence 0).

    python training/records/handstream-crop/compare_crops.py --data data/h4-test \\
        --model engines/handstream-crop.onnx --model engines/handstream-refiner.onnx --json out.json
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from handstream.models.checkpoint import load_network
from handstream.models.codec import HeatmapCodec
from handstream.train.augment import AugmentConfig, HandCropConfig
from handstream.train.data import OUT_OF_FRAME, SampleSpec, SynthViews, make_crop_item, make_perspective_item


def _scores(pred: np.ndarray, gt: np.ndarray, box: np.ndarray, pres: np.ndarray, crop_err=None) -> dict:
    err = np.linalg.norm(pred - gt, axis=-1)  # (M,) per joint; NaN where not decoded
    ok = np.isfinite(err)
    out = {
        "epe_frame_px": float(err[ok].mean()),
        "median_frame_px": float(np.median(err[ok])),
        "pck02": float((err[ok] <= 0.2 * box[ok]).mean()),
        "coverage": float(ok.mean()),
        "presence_rate": float(pres.mean()),
        "joints": int(ok.sum()),
    }
    if crop_err is not None:
        out["epe_crop_px"] = float(np.nanmean(crop_err))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--model", action="append", required=True, help="crop networks to run on perspective crops")
    ap.add_argument("--refiner", default="engines/handstream-refiner.onnx", help="the window refiner")
    ap.add_argument("--recipe", default="training/crop-model.toml", help="[hand_crop] of the perspective crops")
    ap.add_argument("--max-items", type=int, default=1200)
    ap.add_argument("--json")
    args = ap.parse_args()
    torch.set_num_threads(1)
    from handstream.train.recipe import load_recipe

    hc = replace(load_recipe(args.recipe).hand_crop, negatives=0.0)
    codec = HeatmapCodec((128, 128), 4, 2.0)
    ds = SynthViews(args.data, SampleSpec(codec, None, hand_crop=hc))
    seen = ds._hands_seen()
    pick = np.unique(np.linspace(0, len(seen) - 1, min(args.max_items, len(seen))).astype(int))
    nets = {"refiner/window": load_network(args.refiner)[0]}
    for m in args.model:
        nets[f"{Path(m).stem}/perspective"] = load_network(m)[0]
        nets[f"{Path(m).stem}/perspective-jitter"] = nets[f"{Path(m).stem}/perspective"]
    window_spec = SampleSpec(codec, None, hand_crop=HandCropConfig(negatives=0.0))
    persp_spec = SampleSpec(codec, None, hand_crop=hc)
    jitter_spec = SampleSpec(codec, AugmentConfig(enabled=False), hand_crop=hc)
    negative_spec = SampleSpec(codec, AugmentConfig(enabled=False), hand_crop=replace(hc, negatives=1.0))
    rows: dict[str, list] = {k: [] for k in nets}
    false_presence: dict[str, list] = {m: [] for m in args.model}
    for n, i in enumerate(pick):
        f, v, h = (int(x) for x in seen[i])
        lab = ds.data.labels(f)
        img, cam = ds.data.image(f, v), ds.data.rig[v]
        kp, vis = lab["keypoints_2d"][v], lab["visibility"][v].astype(np.int64)
        ok = (vis[h] < OUT_OF_FRAME) & np.isfinite(kp[h]).all(axis=-1)
        box = float((kp[h][ok].max(axis=0) - kp[h][ok].min(axis=0)).max())
        items = {}
        items["window"] = (make_crop_item(window_spec, img, cam, kp, vis, None, h), None)
        crops: list = []
        items["perspective"] = (make_perspective_item(persp_spec, img, cam, lab["joints_3d"], vis, None, h,
                                                      out_crop=crops), crops[-1])  # fmt: skip
        rng = np.random.default_rng([7, int(i)])
        items["perspective-jitter"] = (make_perspective_item(jitter_spec, img, cam, lab["joints_3d"], vis, rng, h,
                                                             keypoints=kp, out_crop=crops), crops[-1])  # fmt: skip
        rng = np.random.default_rng([9, int(i)])
        negative = make_perspective_item(negative_spec, img, cam, lab["joints_3d"], vis, rng, h)
        absent = negative["presence"].numpy() < 0.5
        for m in args.model:
            with torch.no_grad():
                _, logit = nets[f"{Path(m).stem}/perspective"](negative["image"][None], negative["rays"][None])
            false_presence[m] += list((torch.sigmoid(logit)[0].numpy() > 0.5)[absent])
        for name, net in nets.items():
            item, crop = items[name.split("/")[1]]
            with torch.no_grad():
                hm, logit = net(item["image"][None], item["rays"][None])
            uv, _ = codec.decode(hm.numpy())  # (1, H, K, 2) crop px
            uv = uv[0, h]
            if crop is None:  # affine window: input -> frame
                aff = item["affine"].numpy()
                frame = (uv - aff[:, 2]) @ np.linalg.inv(aff[:, :2]).T
                crop_err = None
            else:
                assert item["in_frame"][h].any(), "the rule gave no crop for a hand in the frame"
                frame = crop.to_frame(uv)
                crop_err = np.linalg.norm(uv - item["keypoints"].numpy()[h], axis=-1)[item["in_frame"].numpy()[h]]
            rows[name].append((frame[ok], kp[h][ok], np.full(ok.sum(), box), float(torch.sigmoid(logit)[0, h]) > 0.5,
                               crop_err))  # fmt: skip
        if n % 200 == 0:
            print(f"{n}/{len(pick)}", flush=True)
    result = {"data": str(args.data), "items": int(len(pick)), "metrics": {}}
    for name, r in rows.items():
        pred, gt, box = (np.concatenate([x[j] for x in r]) for j in range(3))
        pres = np.array([x[3] for x in r], np.float64)
        crop_err = None if r[0][4] is None else np.concatenate([x[4] for x in r])
        result["metrics"][name] = _scores(pred, gt, box, pres, crop_err)
    for m, fp in false_presence.items():
        result["metrics"][f"{Path(m).stem}/negatives"] = {"false_presence": float(np.mean(fp)), "hands": len(fp)}
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
