"""CUDA kernels (handstream._cuda) against the NumPy references; skipped without a GPU.

(resample_crops on CUDA is tested with its CPU tests, in tests/test_resample.py.)

The first tests run everywhere the module was built: a call on a machine without a usable GPU must
raise a clear error, never crash the interpreter.
"""

import numpy as np
import pytest

from handstream import HandstreamError
from handstream.ops import _native, decode_heatmaps, reference, triangulate
from tests.scenes import gaussian_heatmaps, hand_cloud, project, random_rig

cuda_module = _native.cuda()
needs_cuda_module = pytest.mark.skipif(cuda_module is None, reason="handstream._cuda not built (no nvcc at install)")


@needs_cuda_module
def test_module_imports_and_reports_devices_without_a_driver():
    assert cuda_module.MAX_VIEWS == 16
    assert cuda_module.device_count() >= 0


@needs_cuda_module
def test_call_without_a_device_raises_a_clear_error():
    if cuda_module.device_count() > 0:
        pytest.skip("a CUDA device is present")
    with pytest.raises(RuntimeError, match="no usable CUDA device"):
        cuda_module.decode_heatmaps(0, 4, 8, 8, 2, 2.0, 0, 0, 0)
    with pytest.raises(RuntimeError, match="no usable CUDA device"):
        cuda_module.triangulate(2, 5, 0, 0, 0, 1, 10.0, 2, 0, 0, 0, 0, 0, 0)
    with pytest.raises(RuntimeError, match="no usable CUDA device"):
        cuda_module.resample_crops(1, 0, 0, 4, 0, 0, 0, 0, 16, 16, 0, 0)


def test_cuda_tensor_without_the_module_is_a_user_error(monkeypatch):
    monkeypatch.setattr(_native, "cuda", lambda: None)
    with pytest.raises(HandstreamError, match="was not built"):
        _native.require_cuda()


@pytest.mark.needs_cuda
@pytest.mark.parametrize("mode", ["dark", "quadratic", None])
def test_decode_cuda_matches_reference(mode):
    import torch

    rng = np.random.default_rng()
    for shape in [(4, 42, 64, 64), (1, 1, 7, 5), (8, 42, 32, 48)]:
        centres = np.stack([rng.uniform(-1, shape[3], shape[:2]), rng.uniform(-1, shape[2], shape[:2])], -1)
        maps = gaussian_heatmaps(centres, shape[2], shape[3]) + rng.normal(scale=0.02, size=shape).astype(np.float32)
        maps[0, 0, 1, 1] = np.nan
        maps[-1, -1] = 0.5  # flat
        coords, conf = decode_heatmaps(torch.from_numpy(maps).cuda(), mode)
        assert coords.is_cuda and conf.is_cuda
        ref_coords, ref_conf = reference.decode_heatmaps(maps, mode)
        np.testing.assert_allclose(coords.cpu().numpy(), ref_coords, atol=2e-5, equal_nan=True)
        np.testing.assert_array_equal(conf.cpu().numpy(), ref_conf)


@pytest.mark.needs_cuda
@pytest.mark.parametrize("method", ["dlt", "ransac"])
@pytest.mark.parametrize("n_views", [2, 4, 8, 16])
def test_triangulate_cuda_matches_reference(method, n_views):
    import torch

    rng = np.random.default_rng()
    projections = random_rig(rng, n_views)
    points = hand_cloud(rng, 300)
    pixels = project(projections, points) + rng.normal(scale=1.5, size=(n_views, 300, 2))
    pixels[rng.random((n_views, 300)) < 0.1] += 60.0
    pixels[rng.random((n_views, 300)) < 0.1] = np.nan
    conf = rng.uniform(0.1, 1.0, (n_views, 300))
    for refine in (False, 5):
        result = triangulate(
            torch.from_numpy(pixels).cuda(), projections, torch.from_numpy(conf).cuda(), method=method, refine=refine
        )
        assert result.points.is_cuda
        expected = reference.triangulate(pixels, projections, conf, method=method, refine=refine)
        np.testing.assert_array_equal(result.n_views.cpu().numpy(), expected[3])
        np.testing.assert_array_equal(result.inliers.cpu().numpy(), expected[2])
        np.testing.assert_allclose(result.points.cpu().numpy(), expected[0], rtol=1e-6, atol=1e-9, equal_nan=True)
        np.testing.assert_allclose(result.reproj_error.cpu().numpy(), expected[1], rtol=1e-6, atol=1e-7, equal_nan=True)
