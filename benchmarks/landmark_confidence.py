"""Does the engine's per-joint confidence rank joints by accuracy, for a landmarks crop model on real video?

There is no 3D truth on the real stereo clip, so the reference is a second, independent network: MediaPipe's
full landmark network run on the same crops the tracker made for the tracked (e.g. lite) network. Each tracked
3D joint is reprojected into each view and compared with the reference's 2D joint; joints are split in thirds
by their confidence (``engine/triangulation.py::agreement_confidence``).

    python benchmarks/landmark_confidence.py --tracked engines/mediapipe-lite.onnx --reference engines/mediapipe-full.onnx

Prints, per confidence third, the mean and median pixel distance to the reference, and the rank correlation.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
CLIP = REPO.parent / "shared" / "data" / "real" / "stereo_clip"


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tracked", required=True, help="the landmarks crop model the engine tracks with (.onnx)")
    p.add_argument("--reference", required=True, help="the landmarks model taken as the 2D reference (.onnx)")
    p.add_argument("--clip", default=str(CLIP), help="folder with cam0.mp4, cam1.mp4, calibration.toml")
    p.add_argument("--unit-scale", type=float, default=0.04, help="metres per calibration unit (the clip: 0.04)")
    args = p.parse_args(argv)

    from handstream.config import EngineConfig, FilterConfig
    from handstream.engine.backends import open_backend
    from handstream.engine.crops import resample
    from handstream.engine.pipeline import Pipeline
    from handstream.geometry import load_calibration
    from handstream.models.defaults import DEFAULT_MODEL

    clip = Path(args.clip)
    rig = load_calibration(clip / "calibration.toml", args.unit_scale)
    caps = [cv2.VideoCapture(str(clip / f"{n}.mp4")) for n in rig.names]
    det = open_backend(DEFAULT_MODEL, "onnxruntime", threads=1)
    tracked = open_backend(args.tracked, "onnxruntime", threads=1)
    reference = open_backend(args.reference, "onnxruntime", threads=1)
    pipe = Pipeline(rig, det, EngineConfig(), FilterConfig(enabled=False), refiner=tracked)
    conf, err = [], []
    i = 0
    while True:
        frames = [c.read()[1] for c in caps]
        if any(f is None for f in frames):
            break
        msg = pipe.process(dict(zip(rig.names, frames, strict=True)), int(i * 1e9 / 30), {})
        i += 1
        for side_index, hand in enumerate(msg.hands):
            if not np.isfinite(hand.joints).any():
                continue
            for h, name, crop in pipe.tracker.crops:
                if h != side_index:
                    continue
                v = rig.names.index(name)
                out = reference.infer_landmarks(resample([frames[v]], [0], [crop], color="rgb"))
                if out.presence[0] < 0.5:
                    continue
                e = np.linalg.norm(rig[v].project(hand.joints.astype(np.float64)) - crop.to_frame(out.keypoints[0]),
                                   axis=-1)  # fmt: skip
                ok = np.isfinite(e) & np.isfinite(hand.conf)
                conf += list(hand.conf[ok])
                err += list(e[ok])
    conf, err = np.array(conf), np.array(err)
    if not len(err):
        print("no tracked joint with a reference: nothing to compare")
        return 1
    print(f"{i} frame sets, {len(err)} joint-views")
    q = np.quantile(conf, [0, 1 / 3, 2 / 3, 1])
    for a, b in zip(q[:-1], q[1:], strict=True):
        s = (conf >= a) & (conf <= b)
        print(f"confidence {a:.2f}-{b:.2f}: {s.sum()} joint-views, px to the reference: mean {err[s].mean():.2f}, "
              f"median {np.median(err[s]):.2f}")  # fmt: skip
    rank = np.corrcoef(np.argsort(np.argsort(conf)), np.argsort(np.argsort(err)))[0, 1]
    print(f"rank correlation (Spearman) of confidence and error: {rank:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
