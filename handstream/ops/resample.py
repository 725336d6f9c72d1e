"""resample_crops: camera frames -> perspective crop images through the real lens model (C++ or CUDA)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from handstream.errors import HandstreamError
from handstream.ops import _native

LENS_SIZE = 14
MODELS = {0: "pinhole", 1: "opencv", 2: "fisheye"}
_NAME = "resample_crops"


def resample_crops(images, source, lens, rotation, crop, out_size, out=None):
    """Resample frames into perspective crop cameras (virtual pinhole cameras at the real cameras' centres).

    Shapes (``S`` frames, ``N`` crops, ``(W, H)`` crop size):

    - ``images``: S frames, each ``(h_s, w_s)`` uint8 (sizes may differ), or all ``(h_s, w_s, 3)`` uint8 BGR; a
      list, or one ``(S, h, w)`` array.
    - ``source``: ``(N,)`` int, the frame each crop samples.
    - ``lens``: ``(N, 14)`` float64 ``[model, fx, fy, cx, cy, skew, d0..d7]``, the real camera in the pixels of
      ``images[source]``: model 0 pinhole (no coefficients), 1 opencv (``k1 k2 p1 p2 k3 k4 k5 k6``), 2 fisheye
      (``k1..k4`` in ``d0..d3``); unused entries 0. :func:`handstream.geometry.crop_camera.lens_row` makes one.
    - ``rotation``: ``(N, 3, 3)`` float64, crop frame -> camera frame (applied as given, not checked).
    - ``crop``: ``(N, 3)`` float64 ``f, ccx, ccy`` of the crop camera, crop pixels (square pixels, no skew).
    - ``out_size``: ``(W, H)`` of every crop, pixels.
    - ``out``: optional ``(>= N, H, W)`` float32 buffer to fill (the engine reuses one every frame);
      ``(>= N, 3, H, W)`` for BGR frames.

    Returns ``(N, H, W)`` float32 in [0, 1] (``out[:N]`` when given; ``(N, 3, H, W)`` planes R, G, B for BGR
    frames: one set of source pixels and bilinear weights for the three channels): crop pixel ``(u, v)`` (centres at
    integers) sees the ray ``R @ ((u - ccx)/f, (v - ccy)/f, 1)``, which goes through the lens formulas of
    :mod:`handstream.geometry.camera` and ``K`` to a frame pixel, sampled bilinearly (OpenCV pixel convention,
    neighbours outside the frame count as 0, as ``cv2.remap`` with ``BORDER_CONSTANT`` 0), divided by 255.
    Rays at or behind the camera plane give 0. Computed in float64: a crop that is the frame's own pinhole
    camera reproduces it exactly.

    NumPy input runs on the C++ kernel (CPU tensors too, returned as tensors). CUDA uint8 tensors (a list of
    ``(h_s, w_s)`` tensors or one ``(S, h, w)`` tensor, all on one device) run on the CUDA kernel on that
    device and torch's current stream, and return a CUDA float32 tensor (``out``, if given, must be one);
    ``source``, ``lens``, ``rotation`` and ``crop`` are small host arrays (CUDA tensors are copied to the
    host to be checked) sent to the device with the call.

    Raises:
        HandstreamError: naming the argument and the expected shape/dtype (wrong shapes or dtypes, non-finite
            parameters, an unknown lens model, a crop focal length <= 0, a source index outside the frames).
    """
    frames = _frames(images)
    n_images = len(frames)
    W, H = _out_size(out_size)
    source, lens, rotation, crop = _params(source, lens, rotation, crop, n_images)
    n = len(source)

    if n_images and _native.is_tensor(frames[0]):
        if any(not _native.is_tensor(f) or f.is_cuda != frames[0].is_cuda for f in frames):
            raise HandstreamError(f"{_NAME}: images must be all NumPy arrays, all CPU tensors or all CUDA tensors")
        if frames[0].is_cuda:
            return _resample_cuda(frames, source, lens, rotation, crop, W, H, n, out)
        import torch

        buffer = None
        if out is not None:
            if not (_native.is_tensor(out) and not out.is_cuda):
                raise HandstreamError(f"{_NAME}: out must be a CPU tensor when images are CPU tensors")
            buffer = out.detach().numpy()
        result = resample_crops([f.detach().numpy() for f in frames], source, lens, rotation, crop, (W, H), buffer)
        return out[:n] if out is not None else torch.from_numpy(result)

    arrays = []
    color = n_images > 0 and np.asarray(frames[0]).ndim == 3
    for s, f in enumerate(frames):
        if _native.is_tensor(f):
            raise HandstreamError(f"{_NAME}: images must be all NumPy arrays, all CPU tensors or all CUDA tensors")
        a = np.asarray(f)
        ok = a.ndim == 3 and a.shape[2] == 3 if color else a.ndim == 2
        if a.dtype != np.uint8 or not ok or a.size == 0:
            want = "(h, w, 3) uint8 (as images[0])" if color else "(h, w) uint8"
            raise HandstreamError(f"{_NAME}: images[{s}] must be {want}, got shape {a.shape} {a.dtype}")
        arrays.append(np.ascontiguousarray(a))
    plane = (3, H, W) if color else (H, W)
    if out is None:
        out = np.empty((n, *plane), np.float32)
    elif not (
        isinstance(out, np.ndarray)
        and out.dtype == np.float32
        and out.ndim == 1 + len(plane)
        and out.shape[0] >= n
        and out.shape[1:] == plane
        and out.flags.c_contiguous
        and out.flags.writeable
    ):
        want = f"a writeable C-contiguous (>= {n}, {', '.join(map(str, plane))}) float32 array"
        raise HandstreamError(f"{_NAME}: out must be {want}, got {_describe(out)}")
    result = out[:n]
    if n:
        _native.cpu().resample_crops(arrays, source, lens, rotation, crop, W, H, result)
    return result


def _describe(x) -> str:
    shape, dtype = getattr(x, "shape", None), getattr(x, "dtype", None)
    return f"shape {tuple(shape)} {dtype}" if shape is not None else type(x).__name__


def _frames(images) -> list:
    """The S frames as a list (a (S, h, w) array or tensor is split along its first axis)."""
    if isinstance(images, np.ndarray) or _native.is_tensor(images):
        if images.ndim != 3:
            want = "a list of (h, w) frames or one (S, h, w) array"
            raise HandstreamError(f"{_NAME}: images must be {want}, got shape {tuple(images.shape)}")
        return list(images)
    if not isinstance(images, Sequence) or isinstance(images, str | bytes):
        raise HandstreamError(f"{_NAME}: images must be a list of (h, w) uint8 frames, got {type(images).__name__}")
    return list(images)


def _out_size(out_size) -> tuple[int, int]:
    try:
        W, H = (int(v) for v in out_size)
        ok = W > 0 and H > 0 and (W, H) == tuple(out_size)
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise HandstreamError(f"{_NAME}: out_size must be (W, H), two positive integers, got {out_size!r}")
    return W, H


def _host_array(x, name: str, shape: tuple, dtype) -> np.ndarray:
    """``x`` (NumPy, nested lists or a tensor) as a C-contiguous array of ``dtype`` with ``shape`` (-1 = any)."""
    if _native.is_tensor(x):
        x = x.detach().cpu().numpy()
    try:
        a = np.asarray(x)
    except (TypeError, ValueError):
        a = np.asarray(None)
    text = "(" + ", ".join("N" if s == -1 else str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"
    ok_kind = a.dtype.kind in ("iu" if dtype == np.int64 else "iuf") or (a.size == 0 and a.dtype.kind in "iufb")
    if not ok_kind or a.ndim != len(shape) or any(s not in (-1, a.shape[i]) for i, s in enumerate(shape)):
        kind = "int" if dtype == np.int64 else "float64"
        raise HandstreamError(f"{_NAME}: {name} must be {text} {kind}, got shape {a.shape} {a.dtype}")
    a = np.ascontiguousarray(a, dtype=dtype)
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        raise HandstreamError(f"{_NAME}: {name} must be finite, got NaN or inf")
    return a


def _params(source, lens, rotation, crop, n_images: int):
    source = _host_array(source, "source", (-1,), np.int64)
    n = len(source)
    lens = _host_array(lens, "lens", (n, LENS_SIZE), np.float64)
    rotation = _host_array(rotation, "rotation", (n, 3, 3), np.float64)
    crop = _host_array(crop, "crop", (n, 3), np.float64)
    bad = np.flatnonzero((source < 0) | (source >= n_images))
    if bad.size:
        i = int(bad[0])
        raise HandstreamError(f"{_NAME}: source[{i}] = {source[i]} is not a frame index in [0, {n_images})")
    bad = np.flatnonzero(~np.isin(lens[:, 0], list(MODELS)))
    if bad.size:
        i = int(bad[0])
        want = "a lens model (0 pinhole, 1 opencv, 2 fisheye)"
        raise HandstreamError(f"{_NAME}: lens[{i}, 0] = {lens[i, 0]:g} is not {want}")
    bad = np.flatnonzero(~(crop[:, 0] > 0))
    if bad.size:
        i = int(bad[0])
        raise HandstreamError(f"{_NAME}: crop[{i}, 0] = {crop[i, 0]:g} must be a focal length > 0 (crop pixels)")
    return source, lens, rotation, crop


def _resample_cuda(frames, source, lens, rotation, crop, W, H, n, out):
    import torch

    module = _native.require_cuda()
    device = frames[0].device
    kept = []  # contiguous frames, alive until the call has been queued
    for s, f in enumerate(frames):
        if f.device != device or f.dtype != torch.uint8 or f.ndim != 2 or f.numel() == 0:
            got = f"shape {tuple(f.shape)} {f.dtype} on {f.device}"
            raise HandstreamError(
                f"{_NAME}: images[{s}] must be an (h, w) uint8 tensor on {device}, got {got} (the CUDA kernel samples "
                "grey frames; colour frames run on the CPU)"
            )
        kept.append(f.detach().contiguous())
    if out is None:
        out = torch.empty((n, H, W), dtype=torch.float32, device=device)
    elif not (
        _native.is_tensor(out)
        and out.device == device
        and out.dtype == torch.float32
        and out.ndim == 3
        and out.shape[0] >= n
        and tuple(out.shape[1:]) == (H, W)
        and out.is_contiguous()
    ):
        want = f"a contiguous (>= {n}, {H}, {W}) float32 tensor on {device}"
        raise HandstreamError(f"{_NAME}: out must be {want}, got {_describe(out)}")
    result = out[:n]
    if n == 0:
        return result
    S = len(kept)
    # Two host -> device copies per call: one int64 table (frame pointers | (w, h) sizes | source) and one
    # float64 table (lens | rotation | crop), both on the current stream, so the kernel sees them in order.
    ints = np.concatenate(
        [[f.data_ptr() for f in kept], np.array([(f.shape[1], f.shape[0]) for f in kept]).ravel(), source]
    ).astype(np.int64)
    floats = np.concatenate([lens.ravel(), rotation.ravel(), crop.ravel()])
    with torch.cuda.device(device):
        # non_blocking from pageable memory: the driver stages the bytes before returning, and torch does not
        # synchronize the stream (a blocking copy would wait for all the work queued before it).
        ints_d = torch.from_numpy(ints).to(device, non_blocking=True)
        floats_d = torch.from_numpy(floats).to(device, non_blocking=True)
        i0, f0 = ints_d.data_ptr(), floats_d.data_ptr()
        module.resample_crops(
            S,
            i0,
            i0 + 8 * S,
            n,
            i0 + 8 * 3 * S,
            f0,
            f0 + 8 * LENS_SIZE * n,
            f0 + 8 * (LENS_SIZE + 9) * n,
            W,
            H,
            result.data_ptr(),
            _native.stream_of(result),
        )
    return result
