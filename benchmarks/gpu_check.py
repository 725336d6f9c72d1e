"""GPU verification and timing of the engine's device path: kernels, backends, and each stage of a step.

    python benchmarks/gpu_check.py [--model PATH] [--engine PATH] [--views 1,2,4,8] [--repeats 300]
                                   [--warmup 30] [--frame 640x480] [--json gpu_check.json] [--seed S]
                                   [--no-build | --rebuild]

Run it on a machine with an NVIDIA GPU and driver, torch with CUDA, and the CUDA toolkit (nvcc) if
``handstream._cuda`` is not built yet. Without a GPU it exits at once with code 2 and one line.

1. **Extension.** Imports ``handstream._cuda``; when it is missing (or with ``--rebuild``) it builds it
   (``pip install -e . -C cmake.define.HANDSTREAM_CUDA=ON``, which needs nvcc) and restarts itself.
2. **Kernels against the NumPy references** (``handstream/ops/reference.py``) on fresh random inputs
   (the seed is printed): ``decode_heatmaps`` (dark, quadratic, none) on ``(V, 42, h, w)`` Gaussian
   maps with noise plus NaN, inf and flat maps, and ``triangulate`` (dlt, ransac; 0 and 5 refinement
   steps) on 2-16 random pinhole views of a hand-sized point cloud with noise, outliers and missing
   observations. The raw ``_cuda`` entry points are called on output buffers first filled with a
   sentinel (-7777, and 0xAB in the bytes of the boolean ``inliers``), so an output element the kernel
   never wrote is caught. Reported: the normwise relative error ``max|gpu - ref| / max|ref|`` over the
   finite entries, identical NaN patterns, exact ``conf``/``inliers``/``n_views``.
3. **Backends.** The torch backend on CUDA (CUDA graphs, and eager) against ONNX Runtime on the CPU on
   the default model (``engines/handstream-default.onnx`` if present, else a random-init export),
   on rendered headset frames through the engine's preprocessing and on random inputs: max abs
   difference of heatmaps and presence, and of the decoded keypoints. With ``--engine`` the TensorRT
   engine is checked the same way.
4. **Timing** with CUDA events (median of ``--repeats`` runs after ``--warmup``), for each view count:
   ``preprocess`` (host, letterbox of V ``--frame`` frames into pinned memory), ``upload`` (pinned ->
   device: image and rays), ``infer`` (backend; for torch a device-to-device copy into the graph's
   input and one graph replay), ``decode`` (``_cuda``, heatmaps on the device), ``triangulate``
   (``_cuda`` RANSAC of 2 hands x 21 joints over V views; V >= 2), ``download`` (3D joints, reprojection
   errors, view counts, 2D keypoints, confidences and presence -> pinned host), and the whole step from
   upload to download both on CUDA events and on the host clock. The triangulation is fed the
   projections of a synthetic hand with noise and outliers (the same shapes as the decoded keypoints),
   because a random-init model's detections would leave almost every joint untriangulated and make the
   stage look faster than it is; the decode runs on the model's real heatmaps.

Prints one table and writes every figure to ``--json``. Exit code: 0 when every check passes, 1 when
a correctness check fails, 2 when the machine cannot run it (no GPU, no torch, no nvcc to build).
Timings are reported, never judged.

NOTE: no machine of this project had a GPU when this script was written; it has been run only up to
its "no GPU" exit (see docs/gpu.md).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from handstream import records

REPO = Path(__file__).resolve().parents[1]
DEFAULT_MODEL = REPO / "engines" / "handstream-default.onnx"
SENTINEL = -7777.0
BOOL_SENTINEL = 0xAB
REFINE_MODES = {"dark": 2, "quadratic": 1, None: 0}
N_POINTS = 42  # 2 hands x 21 joints
# Correctness limits (normwise relative errors; the CPU/CUDA kernels share their per-item math).
DECODE_REL = 1e-6
TRIANGULATE_REL = 1e-6
REPROJ_REL = 1e-5
# torch CUDA vs ONNX Runtime CPU: cuDNN may use TF32 convolutions (Ampere and newer), ~1e-3 relative.
BACKEND_ABS = 1e-2
BACKEND_KEYPOINT_PX = 0.1


class Unrunnable(Exception):
    """This machine cannot run the check (exit code 2)."""


def fail(msg: str) -> None:
    print(f"gpu_check: {msg}", file=sys.stderr, flush=True)
    sys.exit(2)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------------
# 0-1: the machine and the extension
# ---------------------------------------------------------------------------------------------------
def require_gpu():
    """torch with a usable CUDA device, or Unrunnable with one line."""
    try:
        import torch
    except ImportError:
        raise Unrunnable("torch is not installed (pip install torch with CUDA, then pip install -e '.[train]')") from None
    if not torch.cuda.is_available():
        why = "this torch is a CPU build" if torch.version.cuda is None else "no NVIDIA GPU or driver is visible"
        raise Unrunnable(f"no CUDA GPU ({why}; torch {torch.__version__}); run this on a machine with an NVIDIA GPU")
    return torch


def ensure_extension(args: argparse.Namespace, argv: list[str]) -> Any:
    """``handstream._cuda`` with a usable device; builds it (and restarts) when missing."""
    from handstream.ops import _native

    module = _native.cuda()
    if module is not None and not args.rebuild:
        if module.device_count() < 1:
            raise Unrunnable("handstream._cuda is built but sees no usable CUDA device")
        return module
    if args.no_build:
        raise Unrunnable("handstream._cuda is not built and --no-build was given")
    nvcc = shutil.which("nvcc") or next(
        (str(p) for p in (Path(os.environ.get("CUDA_HOME", "/usr/local/cuda")) / "bin" / "nvcc",) if p.is_file()), None
    )
    if nvcc is None:
        raise Unrunnable("handstream._cuda is not built and nvcc is not on PATH: install the CUDA toolkit and rerun")
    cmd = [sys.executable, "-m", "pip", "install", "--no-deps", "-e", str(REPO), "-C", "cmake.define.HANDSTREAM_CUDA=ON"]
    try:
        import pybind11  # noqa: F401
        import scikit_build_core  # noqa: F401

        cmd.insert(4, "--no-build-isolation")  # build requirements present: no index needed
    except ImportError:
        pass
    log(f"building handstream._cuda with {nvcc} (a few minutes): {' '.join(cmd)}")
    env = dict(os.environ, CUDACXX=nvcc)
    result = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
    if result.returncode != 0:
        last = (result.stderr.strip() or result.stdout.strip() or "no output").splitlines()[-1]
        raise Unrunnable(f"building handstream._cuda failed: {last}")
    rest = [a for a in argv if a != "--rebuild"]
    os.execv(sys.executable, [sys.executable, str(Path(__file__).resolve()), *rest, "--no-build"])


# ---------------------------------------------------------------------------------------------------
# 2: kernels against the references
# ---------------------------------------------------------------------------------------------------
def normwise_rel(got: np.ndarray, ref: np.ndarray) -> float:
    """max |got - ref| / max |ref| over entries finite in both (0 when there are none)."""
    mask = np.isfinite(got) & np.isfinite(ref)
    if not mask.any():
        return 0.0
    scale = max(float(np.abs(ref[mask]).max()), 1e-300)
    return float(np.abs(got[mask] - ref[mask]).max()) / scale


def random_heatmaps(rng: np.random.Generator, shape: tuple[int, int, int, int]) -> np.ndarray:
    """(V, K, h, w) float32: one Gaussian (sigma 2) per map at a random sub-pixel centre (some off the
    map), peak 0.3-1, noise 0.02; map [0, 0] holds a NaN, map [-1, -1] is flat, map [-1, 0] holds +inf."""
    V, K, h, w = shape
    cx = rng.uniform(-2, w + 1, (V, K))[..., None, None]
    cy = rng.uniform(-2, h + 1, (V, K))[..., None, None]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    peak = rng.uniform(0.3, 1.0, (V, K))[..., None, None]
    maps = peak * np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / 8.0) + rng.normal(scale=0.02, size=shape)
    maps = maps.astype(np.float32)
    maps[0, 0, rng.integers(h), rng.integers(w)] = np.nan
    maps[-1, -1] = 0.5
    if K > 1:
        maps[-1, 0, rng.integers(h), rng.integers(w)] = np.inf
    return maps


def check_decode(torch, module, rng: np.random.Generator, shapes: list[tuple[int, int, int, int]]) -> list[dict]:
    """Every refine mode on every shape, through the raw _cuda entry point on sentinel-filled outputs."""
    from handstream.ops import reference

    rows = []
    for shape in shapes:
        maps = random_heatmaps(rng, shape)
        V, K, h, w = shape
        dev = torch.from_numpy(maps).cuda()
        for mode, code in REFINE_MODES.items():
            coords = torch.full((V, K, 2), SENTINEL, dtype=torch.float32, device="cuda")
            conf = torch.full((V, K), SENTINEL, dtype=torch.float32, device="cuda")
            stream = torch.cuda.current_stream().cuda_stream
            module.decode_heatmaps(dev.data_ptr(), V * K, h, w, code, 2.0, coords.data_ptr(), conf.data_ptr(), stream)
            torch.cuda.synchronize()
            got_c, got_k = coords.cpu().numpy(), conf.cpu().numpy()
            ref_c, ref_k = reference.decode_heatmaps(maps, mode, 2.0)
            unwritten = int((got_c == SENTINEL).sum() + (got_k == SENTINEL).sum())
            nan_ok = bool(np.array_equal(np.isnan(got_c), np.isnan(ref_c)) and np.array_equal(np.isnan(got_k), np.isnan(ref_k)))
            rel = normwise_rel(got_c, ref_c)
            conf_exact = bool(np.array_equal(got_k, ref_k, equal_nan=True))
            ok = unwritten == 0 and nan_ok and rel <= DECODE_REL and conf_exact
            rows.append({"op": "decode_heatmaps", "refine": str(mode), "shape": list(shape), "unwritten": unwritten,
                         "nan_pattern_equal": nan_ok, "coords_rel_err": rel, "conf_exact": conf_exact, "ok": ok})  # fmt: skip
    return rows


def random_scene(rng: np.random.Generator, n_views: int, n_points: int, outliers: float = 0.1, missing: float = 0.1):
    """Projections (V, 3, 4) of pinhole 640x480 cameras 0.3-0.8 m around a hand-sized cloud, and its
    pixels (V, P, 2) with 1.5 px noise, ``outliers`` displaced by 60 px, ``missing`` set to NaN; conf (V, P)."""
    projections = []
    for _ in range(n_views):
        d = rng.uniform(0.3, 0.8)
        centre = rng.normal(size=3)
        centre *= d / np.linalg.norm(centre)
        z = rng.normal(scale=0.02, size=3) - centre
        z /= np.linalg.norm(z)
        x = np.cross(rng.normal(size=3), z)
        x /= np.linalg.norm(x)
        R = np.stack([x, np.cross(z, x), z])
        f = rng.uniform(300, 600)
        K = np.array([[f, 0, 320 + rng.normal(scale=5)], [0, f, 240], [0, 0, 1]])
        projections.append(K @ np.hstack([R, (-R @ centre)[:, None]]))
    P = np.array(projections)
    points = rng.normal(scale=0.04, size=(n_points, 3))
    uvw = np.einsum("vij,pj->vpi", P, np.hstack([points, np.ones((n_points, 1))]))
    pixels = uvw[..., :2] / uvw[..., 2:] + rng.normal(scale=1.5, size=(n_views, n_points, 2))
    pixels[rng.random((n_views, n_points)) < outliers] += 60.0
    pixels[rng.random((n_views, n_points)) < missing] = np.nan
    conf = rng.uniform(0.1, 1.0, (n_views, n_points))
    return P, pixels, conf


def check_triangulate(torch, module, rng: np.random.Generator, views: list[int], n_points: int = 200) -> list[dict]:
    """dlt and ransac, 0 and 5 refinement steps, through the raw _cuda entry point on sentinel-filled outputs."""
    from handstream.ops import reference
    from handstream.ops.triangulate import METHODS

    rows = []
    for V in views:
        P, pixels, conf = random_scene(rng, V, n_points)
        pts_d = torch.from_numpy(pixels).cuda()
        conf_d = torch.from_numpy(conf).cuda()
        proj_d = torch.from_numpy(P).cuda()
        for method in ("dlt", "ransac"):
            for refine in (0, 5):
                points = torch.full((n_points, 3), SENTINEL, dtype=torch.float64, device="cuda")
                errors = torch.full((n_points,), SENTINEL, dtype=torch.float64, device="cuda")
                inliers = torch.full((V, n_points), BOOL_SENTINEL, dtype=torch.uint8, device="cuda")
                n_views = torch.full((n_points,), -1, dtype=torch.int32, device="cuda")
                module.triangulate(
                    V, n_points, pts_d.data_ptr(), conf_d.data_ptr(), proj_d.data_ptr(), METHODS[method], 12.0, 2, refine,
                    points.data_ptr(), errors.data_ptr(), inliers.data_ptr(), n_views.data_ptr(),
                    torch.cuda.current_stream().cuda_stream,
                )  # fmt: skip
                torch.cuda.synchronize()
                g_pts, g_err = points.cpu().numpy(), errors.cpu().numpy()
                g_inl, g_n = inliers.cpu().numpy(), n_views.cpu().numpy()
                r_pts, r_err, r_inl, r_n = reference.triangulate(pixels, P, conf, method=method, threshold_px=12.0, min_views=2, refine=refine)
                unwritten = int((g_pts == SENTINEL).sum() + (g_err == SENTINEL).sum() + (g_n == -1).sum())
                unwritten += int((~np.isin(g_inl, (0, 1))).sum())
                nan_ok = bool(np.array_equal(np.isnan(g_pts), np.isnan(r_pts)) and np.array_equal(np.isnan(g_err), np.isnan(r_err)))
                same_inliers = bool(np.array_equal(g_inl.astype(bool), r_inl))
                same_n = bool(np.array_equal(g_n, r_n))
                rel_p, rel_e = normwise_rel(g_pts, r_pts), normwise_rel(g_err, r_err)
                ok = unwritten == 0 and nan_ok and same_inliers and same_n and rel_p <= TRIANGULATE_REL and rel_e <= REPROJ_REL
                rows.append({"op": "triangulate", "method": method, "refine": refine, "views": V, "points": n_points,
                             "unwritten": unwritten, "nan_pattern_equal": nan_ok, "inliers_equal": same_inliers,
                             "n_views_equal": same_n, "points_rel_err": rel_p, "reproj_rel_err": rel_e, "ok": ok})  # fmt: skip
    return rows


# ---------------------------------------------------------------------------------------------------
# 3: backends against ONNX Runtime on the CPU
# ---------------------------------------------------------------------------------------------------
def default_model(path: str | None, workdir: Path) -> tuple[Path, str]:
    """The model to check: --model, engines/handstream-default.onnx, or a random-init HandNet export."""
    if path:
        return Path(path), "given"
    if DEFAULT_MODEL.is_file():
        return DEFAULT_MODEL, "shipped default"
    import torch

    from handstream.export import export_onnx
    from handstream.models.network import HandNet

    torch.manual_seed(0)
    out = workdir / "random-init.onnx"
    log(f"{DEFAULT_MODEL} not found: exporting a random-init HandNet to {out}")
    export_onnx(HandNet(), out, name="random-init")
    return out, "random-init (no shipped model)"


def check_backends(model: Path, engine: str | None, views: list[int]) -> list[dict]:
    from handstream.engine.backends.onnxruntime import OnnxRuntimeBackend
    from handstream.engine.backends.torch import TorchBackend
    from handstream.export import compare_outputs, real_parity_inputs

    cpu = OnnxRuntimeBackend(model)
    m = cpu.manifest
    rng = np.random.default_rng(1)
    w, h = m.input_size
    hh, hw = -(-h // m.stride), -(-w // m.stride)
    cases = [("real", im, ry) for im, ry in real_parity_inputs(m.input_size, m.stride, m.kpe, frames=2)]
    cases += [("random", rng.random((v, 1, h, w), dtype=np.float32),
               rng.uniform(-1, 1, (v, 2, hh, hw)).astype(np.float32) if m.kpe else None) for v in views]  # fmt: skip
    candidates: list[tuple[str, Any]] = [
        ("torch cuda (graphs)", TorchBackend(model, device="cuda")),
        ("torch cuda (eager)", TorchBackend(model, device="cuda", cuda_graphs=False)),
    ]
    if engine:
        from handstream.engine.backends.tensorrt import TensorRTBackend

        candidates.append((f"tensorrt {Path(engine).name}", TensorRTBackend(engine)))
    rows = []
    for name, backend in candidates:
        usable = [c for c in cases if c[1].shape[0] <= getattr(backend, "max_views", 1 << 30)]
        figures = compare_outputs(usable, backend.infer, cpu.infer, m.codec)
        worst = max(figures["max_abs_diff"].values())
        kp = figures["keypoints_px"]
        ok = worst <= BACKEND_ABS and (kp is None or kp <= BACKEND_KEYPOINT_PX)
        rows.append({"backend": name, "reference": "onnxruntime CPU", **figures, "ok": ok})
    return rows


# ---------------------------------------------------------------------------------------------------
# 4: timing
# ---------------------------------------------------------------------------------------------------
STAGES = ("upload", "infer", "decode", "triangulate", "download")


def time_step(torch, backend, views: int, frame_size: tuple[int, int], repeats: int, warmup: int, rng) -> dict[str, Any]:
    """Median stage times (ms) of one engine step on ``views`` frames, CUDA events + host clock."""
    from handstream.geometry.camera import Camera
    from handstream.models.kpe import ray_angles
    from handstream.models.preprocess import Letterbox, prepare_views
    from handstream.ops import triangulate

    m = backend.manifest
    codec = m.codec
    w, h = m.input_size
    fw, fh = frame_size
    frames = [rng.integers(0, 256, (fh, fw), dtype=np.uint8) for _ in range(views)]
    K = np.array([[0.8 * fw, 0, (fw - 1) / 2], [0, 0.8 * fw, (fh - 1) / 2], [0, 0, 1]])
    box = Letterbox.fit((fw, fh), (w, h))
    rays_np = np.stack([ray_angles(Camera(f"c{i}", (fw, fh), K), box, m.stride) for i in range(views)])
    image_host = torch.empty((views, 1, h, w), dtype=torch.float32, pin_memory=True)
    rays_host = torch.from_numpy(rays_np).pin_memory()
    image_dev = torch.empty(image_host.shape, device="cuda")
    rays_dev = torch.empty(rays_host.shape, device="cuda")
    scale = torch.tensor(box.scale, device="cuda", dtype=torch.float32)
    tri = None
    if views >= 2:
        P, pixels, conf = random_scene(rng, views, N_POINTS, outliers=0.1, missing=0.05)
        tri = (torch.from_numpy(P).cuda(), torch.from_numpy(pixels).cuda(), torch.from_numpy(conf).cuda())
    down = {k: torch.empty(s, dtype=d, pin_memory=True) for k, s, d in (
        ("points", (N_POINTS, 3), torch.float64), ("errors", (N_POINTS,), torch.float64), ("n_views", (N_POINTS,), torch.int32),
        ("keypoints", (views, 2, 21, 2), torch.float32), ("conf", (views, 2, 21), torch.float32), ("presence", (views, 2), torch.float32),
    )}  # fmt: skip
    events = [torch.cuda.Event(enable_timing=True) for _ in range(len(STAGES) + 1)]
    samples: dict[str, list[float]] = {s: [] for s in (*STAGES, "step_gpu", "step_wall", "preprocess_host", "decode_triangulate")}
    stream = torch.cuda.current_stream()
    for it in range(warmup + repeats):
        t0 = time.perf_counter()
        prepare_views(frames, (w, h), out=image_host.numpy())
        t1 = time.perf_counter()
        events[0].record(stream)
        image_dev.copy_(image_host, non_blocking=True)
        rays_dev.copy_(rays_host, non_blocking=True)
        events[1].record(stream)
        heatmaps, presence = backend.infer(image_dev, rays_dev if m.kpe else None)
        events[2].record(stream)
        kp, conf = codec.decode(heatmaps)  # (V, 2, 21, 2) input px, (V, 2, 21) on the device
        events[3].record(stream)
        if tri is not None:
            frame_kp = (kp + 0.5) / scale - 0.5  # letterbox -> frame pixels, as the host does it
            result = triangulate(tri[1], tri[0], tri[2], method="ransac", threshold_px=12.0, min_views=2)
        events[4].record(stream)
        if tri is not None:
            down["points"].copy_(result.points, non_blocking=True)
            down["errors"].copy_(result.reproj_error, non_blocking=True)
            down["n_views"].copy_(result.n_views, non_blocking=True)
            down["keypoints"].copy_(frame_kp, non_blocking=True)
        else:
            down["keypoints"].copy_(kp, non_blocking=True)
        down["conf"].copy_(conf, non_blocking=True)
        down["presence"].copy_(presence, non_blocking=True)
        events[5].record(stream)
        events[5].synchronize()
        t2 = time.perf_counter()
        if it < warmup:
            continue
        for i, stage in enumerate(STAGES):
            samples[stage].append(events[i].elapsed_time(events[i + 1]))
        samples["step_gpu"].append(events[0].elapsed_time(events[5]))
        samples["step_wall"].append((t2 - t1) * 1e3)
        samples["preprocess_host"].append((t1 - t0) * 1e3)
        samples["decode_triangulate"].append(events[2].elapsed_time(events[4]))
    out = {k: float(np.median(v)) for k, v in samples.items()}
    out["p90_step_wall"] = float(np.percentile(samples["step_wall"], 90))
    if tri is None:
        out["triangulate"] = None
    return out


def time_onnxruntime(model: Path, views: int, repeats: int, rng) -> float:
    """Median host time (ms) of ONNX Runtime CPU inference on ``views`` inputs, for contrast."""
    from handstream.engine.backends.onnxruntime import OnnxRuntimeBackend

    backend = OnnxRuntimeBackend(model)
    m = backend.manifest
    w, h = m.input_size
    image = rng.random((views, 1, h, w), dtype=np.float32)
    rays = rng.uniform(-1, 1, (views, 2, -(-h // m.stride), -(-w // m.stride))).astype(np.float32)
    for _ in range(3):
        backend.infer(image, rays)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        backend.infer(image, rays)
        times.append((time.perf_counter() - t) * 1e3)
    return float(np.median(times))


# ---------------------------------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------------------------------
def _ms(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def print_report(report: dict[str, Any]) -> None:
    dev = report["device"]
    print(f"\ngpu_check {report['date']}: {dev['gpu']} (sm {dev['compute_capability']}), torch {dev['torch']} "
          f"CUDA {dev['cuda']}, model {report['model']['path']} ({report['model']['kind']}), seed {report['seed']}")  # fmt: skip
    bad = [r for r in report["kernels"] if not r["ok"]]
    n = len(report["kernels"])
    worst_d = max((r["coords_rel_err"] for r in report["kernels"] if r["op"] == "decode_heatmaps"), default=0.0)
    worst_t = max((r["points_rel_err"] for r in report["kernels"] if r["op"] == "triangulate"), default=0.0)
    print(f"kernels vs NumPy reference: {n - len(bad)}/{n} cases pass; worst rel err decode {worst_d:.1e}, "
          f"triangulate {worst_t:.1e}; every output written: {all(r['unwritten'] == 0 for r in report['kernels'])}")  # fmt: skip
    for r in bad:
        print(f"  FAIL {json.dumps(r)}")
    for r in report["backends"]:
        d = r["max_abs_diff"]
        kp = "-" if r["keypoints_px"] is None else f"{r['keypoints_px']:.1e} px ({r['keypoints_compared']} joints)"
        print(f"{r['backend']} vs {r['reference']}: heatmaps {d['heatmaps']:.1e}, presence {d['presence']:.1e}, "
              f"keypoints {kp} on {', '.join(r['inputs'])}: {'ok' if r['ok'] else 'FAIL'}")  # fmt: skip
    cols = ("backend", "V", "prep(host)", "upload", "infer", "decode", "triang.", "download", "dec+tri us", "step GPU", "step wall", "p90 wall", "ORT CPU")
    rows = []
    for t in report["timing"]:
        rows.append((t["backend"], str(t["views"]), _ms(t["preprocess_host"]), _ms(t["upload"]), _ms(t["infer"]),
                     _ms(t["decode"]), _ms(t["triangulate"]), _ms(t["download"]), f"{t['decode_triangulate'] * 1e3:.1f}",
                     _ms(t["step_gpu"]), _ms(t["step_wall"]), _ms(t["p90_step_wall"]), _ms(t.get("onnxruntime_cpu"))))  # fmt: skip
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(cols)] if rows else [len(c) for c in cols]
    print(f"\nmedian ms per stage ({report['repeats']} runs after {report['warmup']} warm-up; frames {report['frame']}):")
    print("  ".join(c.rjust(wd) for c, wd in zip(cols, widths, strict=True)))
    for r in rows:
        print("  ".join(v.rjust(wd) for v, wd in zip(r, widths, strict=True)))


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="ONNX model (default: engines/handstream-default.onnx, else a random-init export)")
    p.add_argument("--engine", help="also check and time this TensorRT engine (.engine with its manifest)")
    p.add_argument("--views", default="1,2,4,8", help="view counts to time (default 1,2,4,8)")
    p.add_argument("--repeats", type=int, default=300, help="timed runs per view count (default 300)")
    p.add_argument("--warmup", type=int, default=30, help="untimed runs first (default 30)")
    p.add_argument("--frame", default="640x480", help="camera frame WIDTHxHEIGHT (default 640x480)")
    p.add_argument("--json", default="gpu_check.json", help="write every figure here (default gpu_check.json)")
    p.add_argument("--seed", type=int, default=None, help="seed of the random inputs (default: fresh, printed)")
    p.add_argument("--no-build", action="store_true", help="never build handstream._cuda")
    p.add_argument("--rebuild", action="store_true", help="rebuild handstream._cuda first")
    args = p.parse_args(argv)
    try:
        args.views = sorted({int(v) for v in args.views.split(",")})
        fw, fh = (int(v) for v in args.frame.lower().split("x"))
        args.frame = (fw, fh)
    except ValueError:
        p.error("--views: comma-separated integers; --frame: WIDTHxHEIGHT")
    if not args.views or min(args.views) < 1 or max(args.views) > 16:
        p.error("--views: between 1 and 16")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    try:
        torch = require_gpu()
        module = ensure_extension(args, argv)
    except Unrunnable as exc:
        fail(str(exc))
    from handstream.machine import describe_machine

    seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(4), "little")
    log(f"gpu_check: seed {seed}")
    rng = np.random.default_rng(seed)
    major, minor = torch.cuda.get_device_capability()
    report: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "seed": seed,
        "machine": describe_machine(["torch", "onnxruntime", "tensorrt", "numpy"]),
        "device": {"gpu": torch.cuda.get_device_name(), "compute_capability": f"{major}.{minor}", "torch": torch.__version__,
                   "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version()},  # fmt: skip
        "repeats": args.repeats,
        "warmup": args.warmup,
        "frame": f"{args.frame[0]}x{args.frame[1]}",
    }
    with tempfile.TemporaryDirectory() as tmp:
        log("kernels: decode_heatmaps and triangulate against the NumPy references ...")
        model, kind = default_model(args.model, Path(tmp))
        from handstream.models.manifest import load_manifest

        manifest, _ = load_manifest(model)
        w, h = manifest.input_size
        hh, hw = -(-h // manifest.stride), -(-w // manifest.stride)
        shapes = [(v, 42, hh, hw) for v in args.views] + [(1, 1, 7, 5), (3, 42, 33, 47)]
        report["model"] = {"path": str(model), "kind": kind, "input_size": [w, h]}
        report["kernels"] = check_decode(torch, module, rng, shapes) + check_triangulate(torch, module, rng, [2, 4, 8, 16])
        log("backends: torch CUDA (graphs, eager)" + (" and TensorRT" if args.engine else "") + " against onnxruntime CPU ...")
        report["backends"] = check_backends(model, args.engine, args.views)
        log("timing ...")
        from handstream.engine.backends.torch import TorchBackend

        timed = [("torch cuda graphs", TorchBackend(model, device="cuda"))]
        if args.engine:
            from handstream.engine.backends.tensorrt import TensorRTBackend

            timed.append((f"tensorrt {Path(args.engine).name}", TensorRTBackend(args.engine)))
        report["timing"] = []
        ort_ms = {v: time_onnxruntime(model, v, max(5, args.repeats // 20), rng) for v in args.views}
        for name, backend in timed:
            for v in args.views:
                if v > getattr(backend, "max_views", 1 << 30):
                    continue
                row = time_step(torch, backend, v, args.frame, args.repeats, args.warmup, rng)
                report["timing"].append({"backend": name, "views": v, **row, "onnxruntime_cpu": ort_ms[v]})
    print_report(report)
    records.write_json(report, args.json)  # NaN as null
    print(f"wrote {args.json}")
    ok = all(r["ok"] for r in report["kernels"]) and all(r["ok"] for r in report["backends"])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
