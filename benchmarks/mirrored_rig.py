"""A real two-hand, four-camera scene made from the one-hand stereo clip and its mirror image.

The stereo clip (../shared/data/real/stereo_clip) shows one right hand to two cameras. Flipping every frame left
to right is exactly what a mirrored camera sees of a mirrored world, so the clip's mirror image is a second,
geometrically exact stereo clip of a *left* hand. This script writes both into one calibration: the original
cameras, and the mirrored cameras of the world reflected through a plane ``--offset`` metres beyond the hand (the
mirrored hand and its cameras are twice that far away, out of the original cameras' view and the other way
round). The result is one consistent scene with a right hand seen by cam0/cam1 and a left hand seen by
cam0m/cam1m: two tracked hands, two views each, four crops per frame set, four capture streams.

The mirrored cameras come from :func:`handstream.geometry.mirror.mirror_camera` (the formulas are in its module);
the script checks on random points, before it writes anything, that they reproduce the flipped images.

    python benchmarks/mirrored_rig.py --out /tmp/two_hands
    handstream bench --source video --calibration /tmp/two_hands/calibration.toml --unit-scale 0.04 \\
        --video /tmp/two_hands/cam0.avi --video /tmp/two_hands/cam1.avi \\
        --video /tmp/two_hands/cam0m.avi --video /tmp/two_hands/cam1m.avi --refiner engines/mediapipe-lite.onnx \\
        --loop-frames 250

The videos are MJPEG at quality 98 (43 dB PSNR against the clip's frames, 1 ms a frame to decode here), all four
re-encoded the same way so that they decode alike; ``--lossless`` writes FFV1 instead (the exact pixels, but
6.4 ms a frame to decode: four such captures alone take most of two cores, which measures the decoder).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

from handstream.geometry.mirror import reflect_points

REPO = Path(__file__).resolve().parents[1]
CLIP = REPO.parent / "shared" / "data" / "real" / "stereo_clip"


def convergence_point(rig) -> np.ndarray:
    """(3,) the least-squares meeting point of the cameras' optical axes, rig units: where the hand is."""
    lhs, rhs = np.zeros((3, 3)), np.zeros(3)
    for cam in rig:
        c, d = np.asarray(cam.center), np.asarray(cam.R)[2]  # the optical axis in world coordinates
        P = np.eye(3) - np.outer(d, d)
        lhs += P
        rhs += P @ c
    return np.linalg.solve(lhs, rhs)


def check(cam, mcam, n: np.ndarray, d: float, around: np.ndarray, scale: float) -> float:
    """Max |flipped projection - mirrored camera's projection of the reflected point|, px, on random points."""
    rng = np.random.default_rng(0)
    pts = around + rng.normal(scale=scale, size=(500, 3))
    uv = cam.project(pts)
    ok = np.all((uv >= 0) & (uv < np.asarray(cam.size)), axis=1)
    uvm = mcam.project(reflect_points(pts, n, d))
    flipped = np.stack([cam.size[0] - 1 - uv[:, 0], uv[:, 1]], axis=1)
    return float(np.abs(uvm[ok] - flipped[ok]).max())


def write_video(src: Path, dst: Path, flip: bool, codec: str) -> int:
    """Copy ``src`` to ``dst`` (flipped left-right if asked) as ``codec`` (MJPG or FFV1). Returns the frames."""
    cap = cv2.VideoCapture(str(src))
    fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
    w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    out = cv2.VideoWriter(str(dst), cv2.VideoWriter_fourcc(*codec), fps, (w, h))
    if not out.isOpened():
        raise SystemExit(f"{dst}: OpenCV cannot write {codec} here")
    if codec == "MJPG":
        out.set(cv2.VIDEOWRITER_PROP_QUALITY, 98)
    n = 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        out.write(cv2.flip(frame, 1) if flip else frame)
        n += 1
    out.release()
    cap.release()
    return n


def main(argv: list[str]) -> int:
    from handstream.geometry import Rig, load_calibration, save_calibration
    from handstream.geometry.mirror import mirror_camera

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clip", default=str(CLIP), help="folder with cam0.mp4, cam1.mp4, calibration.toml")
    p.add_argument("--out", required=True, help="folder for the four videos and calibration.toml")
    p.add_argument("--unit-scale", type=float, default=0.04, help="metres per calibration unit of the clip")
    p.add_argument("--offset", type=float, default=1.5, help="metres from the hand to the mirror plane")
    p.add_argument("--lossless", action="store_true", help="FFV1 (.mkv) instead of MJPEG (.avi)")
    a = p.parse_args(argv)
    clip, out = Path(a.clip), Path(a.out)
    if not (clip / "calibration.toml").is_file():
        print(f"{clip}: no calibration.toml (the stereo clip is in ../shared/data/real/stereo_clip)", file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    rig = load_calibration(clip / "calibration.toml")  # in the clip's own units (board squares)
    hand = convergence_point(rig)
    n = np.array([1.0, 0.0, 0.0])  # the board's x axis: the mirror stands beside the hand, not in front of it
    d = float(n @ hand) + a.offset / a.unit_scale
    cams = list(rig)
    mcams = [mirror_camera(c, n, d) for c in cams]
    worst = max(check(c, m, n, d, hand, 3.0) for c, m in zip(cams, mcams, strict=True))
    if worst > 1e-6:
        print(f"mirrored cameras do not reproduce the flipped images: {worst:.2e} px", file=sys.stderr)
        return 1
    save_calibration(Rig(cams + mcams), out / "calibration.toml")
    codec, ext = ("FFV1", "mkv") if a.lossless else ("MJPG", "avi")
    for c in cams:
        frames = write_video(clip / f"{c.name}.mp4", out / f"{c.name}.{ext}", False, codec)
        write_video(clip / f"{c.name}.mp4", out / f"{c.name}m.{ext}", True, codec)
    print(f"{out}: 4 cameras ({', '.join(c.name for c in cams + mcams)}), {frames} frames each ({codec}); "
          f"mirror plane {a.offset} m beyond the hand; mirrored projections match the flipped images to {worst:.1e} px")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
