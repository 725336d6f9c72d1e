"""Latency of the estimator with ONNX Runtime on CPU: V views of one frame as one batch.

    python benchmarks/bench_estimator.py [--model engines/handstream-default.onnx] [--views 4] [--threads 2]

Prints the median and p90 of ``session.run`` over ``--runs`` calls (after warm-up) and the frame rate it
allows; the live budget is 33 ms per 4-view frame at 30 fps (docs/performance.md).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import onnxruntime as ort

from handstream.machine import describe_machine
from handstream.models.manifest import load_manifest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="engines/handstream-default.onnx")
    ap.add_argument("--views", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=100)
    args = ap.parse_args()
    manifest, artifact = load_manifest(args.model)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = args.threads
    session = ort.InferenceSession(str(artifact), opts, providers=["CPUExecutionProvider"])
    w, h = manifest.input_size
    rng = np.random.default_rng(0)
    feeds = {"image": rng.random((args.views, 1, h, w), dtype=np.float32)}
    if manifest.kpe:
        hw = (h // manifest.stride, w // manifest.stride)
        feeds["rays"] = rng.random((args.views, 2, *hw), dtype=np.float32) - 0.5
    for _ in range(10):
        session.run(None, feeds)
    times = []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        session.run(None, feeds)
        times.append(time.perf_counter() - t0)
    ms = 1000 * np.array(times)
    print(describe_machine(["onnxruntime"]))
    print(
        f"{artifact.name}: {args.views} views {w}x{h}, {args.threads} threads, onnxruntime {ort.__version__}: "
        f"median {np.median(ms):.2f} ms, p90 {np.percentile(ms, 90):.2f} ms -> {1000 / np.median(ms):.0f} frames/s"
    )


if __name__ == "__main__":
    main()
