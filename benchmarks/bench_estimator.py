"""Latency of the estimator with ONNX Runtime on CPU: V views of one frame as one batch, then the refiner
on 2 x V hand windows (both hands in every view: the most the refine stage ever runs).

    python benchmarks/bench_estimator.py [--model engines/handstream-default.onnx]
        [--refiner engines/handstream-refiner.onnx | none] [--views 4] [--threads 2]

Prints the median and p90 of ``session.run`` over ``--runs`` calls (after warm-up) for the detector, the
refiner and both, the frame rate each allows, and the cost of the refine stage as a ratio to the detector
measured in the same run; the live budget is 33 ms per 4-view frame at 30 fps (docs/performance.md).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import onnxruntime as ort

from handstream.machine import describe_machine
from handstream.models.manifest import load_manifest


def _session(model: str, threads: int, batch: int):
    manifest, artifact = load_manifest(model)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    session = ort.InferenceSession(str(artifact), opts, providers=["CPUExecutionProvider"])
    w, h = manifest.input_size
    rng = np.random.default_rng(0)
    feeds = {"image": rng.random((batch, 1, h, w), dtype=np.float32)}
    if manifest.kpe:
        hw = (h // manifest.stride, w // manifest.stride)
        feeds["rays"] = rng.random((batch, 2, *hw), dtype=np.float32) - 0.5
    for _ in range(10):
        session.run(None, feeds)
    return artifact, (w, h), session, feeds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="engines/handstream-default.onnx")
    ap.add_argument("--refiner", default="engines/handstream-refiner.onnx", help="a refiner, or 'none'")
    ap.add_argument("--views", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=100)
    args = ap.parse_args()
    runs = [("detector", *_session(args.model, args.threads, args.views))]
    if args.refiner.lower() != "none":
        runs.append(("refiner", *_session(args.refiner, args.threads, 2 * args.views)))
    times = {name: [] for name, *_ in runs}
    for _ in range(args.runs):  # interleaved, so both see the same background load
        for name, _, _, session, feeds in runs:
            t0 = time.perf_counter()
            session.run(None, feeds)
            times[name].append(1000 * (time.perf_counter() - t0))
    print(describe_machine(["onnxruntime"]))
    for name, artifact, (w, h), _, feeds in runs:
        ms = np.array(times[name])
        n = len(feeds["image"])
        print(
            f"{name} {artifact.name}: {n} x {w}x{h}, {args.threads} threads, onnxruntime {ort.__version__}: "
            f"median {np.median(ms):.2f} ms, p90 {np.percentile(ms, 90):.2f} ms -> {1000 / np.median(ms):.0f} frames/s"
        )
    if len(runs) == 2:
        both = np.array(times["detector"]) + np.array(times["refiner"])
        ratio = np.median(np.array(times["refiner"]) / np.array(times["detector"]))
        print(
            f"detector + refiner ({args.views} views, {2 * args.views} windows): median {np.median(both):.2f} ms, "
            f"p90 {np.percentile(both, 90):.2f} ms -> {1000 / np.median(both):.0f} frames/s; "
            f"refiner / detector = {ratio:.2f}"
        )


if __name__ == "__main__":
    main()
