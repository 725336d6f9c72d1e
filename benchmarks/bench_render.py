"""Render time of the synthetic headset: four views of two hands, against the 15 ms budget of a 30 fps stream.

    python benchmarks/bench_render.py [--rig headset4] [--frames 300] [--quick] [--json out.json]

Single core: the script sets OMP / OpenBLAS / MKL threads to 1 before importing NumPy and calls
``cv2.setNumThreads(1)``, so the figure is what one capture process gets from one core.

Timed: ``Renderer.render`` for one frame of all views (ray casting, shading, compositing over the
scene, blur, exposure, noise, and the labels with visibility), on frames of ``--sequences`` different
sequences (subjects, rooms, looks) of the seed, motion blur off. Not timed, reported separately: the
hand motion and forward kinematics of a frame, the whole ``SynthGenerator.frame`` (motion + render +
copies), the render with motion blur on, and building a sequence's scene (once per sequence).

Each call is timed with ``time.perf_counter_ns`` after warm-up calls, with the garbage collector off.
The script reports median and 90th percentile and the ratio median / 15 ms; it never fails on speed.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from handstream.machine import describe_machine  # noqa: E402
from handstream.synth.generator import SynthGenerator  # noqa: E402
from handstream.synth.rigs import PRESET_NAMES, get_preset  # noqa: E402

BUDGET_MS = 15.0


def machine_info() -> dict[str, Any]:
    """CPU, cores, versions and date of this run."""
    info = describe_machine(["handstream"])
    info.update(numpy=np.__version__, opencv=cv2.__version__, opencv_threads=cv2.getNumThreads())
    return info


def timed(fn, calls: list, warmup: int) -> np.ndarray:
    """Milliseconds of each call of ``fn(*args)`` for args in ``calls`` (after ``warmup`` untimed calls)."""
    for args in calls[:warmup]:
        fn(*args)
    out = np.empty(len(calls))
    gc.disable()
    try:
        for i, args in enumerate(calls):
            t0 = time.perf_counter_ns()
            fn(*args)
            out[i] = (time.perf_counter_ns() - t0) / 1e6
    finally:
        gc.enable()
    return out


def stats(ms: np.ndarray) -> dict[str, float]:
    return {
        "median_ms": float(np.median(ms)),
        "p90_ms": float(np.percentile(ms, 90)),
        "mean_ms": float(np.mean(ms)),
        "min_ms": float(np.min(ms)),
        "n": int(len(ms)),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rig", default="headset4", help=f"preset ({', '.join(PRESET_NAMES)}), default headset4")
    parser.add_argument("--seed", type=int, default=0, help="dataset seed of the frames (default 0)")
    parser.add_argument("--frames", type=int, default=300, help="timed frames (default 300)")
    parser.add_argument("--sequences", type=int, default=5, help="sequences the frames come from (default 5)")
    parser.add_argument("--warmup", type=int, default=10, help="untimed calls first (default 10)")
    parser.add_argument("--quick", action="store_true", help="smoke run: a few frames, not a measurement")
    parser.add_argument("--json", help="also write every figure to this JSON file")
    args = parser.parse_args(argv)
    if args.quick:
        args.frames, args.sequences, args.warmup = 6, 2, 1
    cv2.setNumThreads(1)

    preset = get_preset(args.rig)
    length = max(args.frames // args.sequences, 1)
    t0 = time.perf_counter()
    gen = SynthGenerator(preset, args.seed, sequence_length=length, motion_blur=False)
    setup_s = time.perf_counter() - t0
    indices = list(range(args.frames))

    # scenes: built once per sequence, timed on their own
    scene_ms = []
    for q in range(args.sequences):
        t0 = time.perf_counter_ns()
        gen._sequence(q)
        scene_ms.append((time.perf_counter_ns() - t0) / 1e6)

    renderer = gen.renderer
    calls = []
    for i in indices:
        q, t = gen.locate(i)
        seq = gen._sequence(q)
        hands = seq.motion.hands(t)
        calls.append((hands, seq.look, seq.scene, t, np.random.default_rng(i)))
    cost = [renderer.cast_cost(c[0]) for c in calls[: min(len(calls), 50)]]

    def render(hands, look, scene, t, rng):
        renderer.render(hands, look, scene, t, rng)

    render_ms = timed(render, calls, args.warmup)

    def motion(i):
        q, t = gen.locate(i)
        gen._sequence(q).motion.hands(t)

    motion_ms = timed(motion, [(i,) for i in indices], args.warmup)
    frame_ms = timed(lambda i: gen.frame(i), [(i,) for i in indices], args.warmup)

    blur_gen = SynthGenerator(preset, args.seed, sequence_length=length, motion_blur=True)
    blur_ms = timed(lambda i: blur_gen.frame(i), [(i,) for i in indices[: max(len(indices) // 3, 2)]], 1)

    m = machine_info()
    views = len(preset.rig)
    sizes = ", ".join(f"{c.width}x{c.height}" for c in preset.rig)
    r = stats(render_ms)
    ratio = r["median_ms"] / BUDGET_MS
    print(f"handstream synthetic render benchmark: rig {preset.name} ({views} views: {sizes}), seed {args.seed}")
    print(f"machine: {m['cpu']}, {m['cores']} cores; single core (OpenCV threads {m['opencv_threads']}, OMP 1)")
    print(f"python {m['python']}, numpy {m['numpy']}, opencv {m['opencv']}; {m['date']}")
    if args.quick:
        print("--quick: a smoke run, not a measurement")
    print(f"frames: {len(indices)} from {args.sequences} sequences, {args.warmup} warm-up calls, gc off while timing")
    print()
    print(f"{'':34s} {'median ms':>10s} {'p90 ms':>8s}")
    rows = [
        (f"render, {views} views (the figure)", r),
        ("motion + forward kinematics", stats(motion_ms)),
        ("SynthGenerator.frame (all of it)", stats(frame_ms)),
        ("frame with motion blur on", stats(blur_ms)),
        ("scene of a sequence (once per seq.)", stats(np.array(scene_ms))),
    ]
    for name, s in rows:
        print(f"{name:34s} {s['median_ms']:10.2f} {s['p90_ms']:8.2f}")
    tested = float(np.median([c[0] for c in cost]))
    hit = float(np.median([c[1] for c in cost]))
    print()
    print(f"(pixel, capsule) pairs tested per frame: median {tested:,.0f}; pixels covered by hands: {hit:,.0f}")
    verdict = "met" if ratio <= 1.0 else "NOT met"
    print(
        f"render median {r['median_ms']:.2f} ms = {ratio:.2f} x the {BUDGET_MS:.0f} ms budget "
        f"of a {views}-view frame on one core ({verdict}); setup {setup_s:.2f} s"
    )
    if args.json:
        report = {
            "machine": m,
            "settings": {
                "rig": preset.name,
                "views": views,
                "sizes": sizes,
                "seed": args.seed,
                "frames": len(indices),
                "sequences": args.sequences,
                "warmup": args.warmup,
                "quick": args.quick,
            },
            "budget_ms": BUDGET_MS,
            "results": {
                "render": r,
                "motion": stats(motion_ms),
                "frame": stats(frame_ms),
                "frame_motion_blur": stats(blur_ms),
                "scene": stats(np.array(scene_ms)),
                "pairs_tested_median": tested,
                "hand_pixels_median": hit,
            },
            "ratio": ratio,
            "met": bool(ratio <= 1.0),
        }
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(report, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
