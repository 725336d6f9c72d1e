"""decode_heatmaps: the C++ kernel against the NumPy reference, accuracy, and the awkward maps."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from handstream import HandstreamError
from handstream.ops import decode_heatmaps, reference
from tests.scenes import gaussian_heatmaps

MODES = ["dark", "quadratic", None]


def random_maps(seed: int, n: int, h: int, w: int, noise: float = 0.02, sigma: float = 2.0) -> tuple:
    rng = np.random.default_rng(seed)
    centres = np.stack([rng.uniform(-1, w, n), rng.uniform(-1, h, n)], axis=-1)
    maps = gaussian_heatmaps(centres, h, w, sigma=sigma, peak=rng.uniform(0.2, 1.0))
    maps += rng.normal(scale=noise, size=maps.shape).astype(np.float32)
    return maps, centres


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1, 50),
    h=st.integers(1, 48),
    w=st.integers(1, 48),
    mode=st.sampled_from(MODES),
    sigma=st.sampled_from([1.0, 1.5, 2.0, 3.0]),
)
def test_matches_reference_on_fresh_random_maps(seed, n, h, w, mode, sigma):
    maps, _ = random_maps(seed, n, h, w, sigma=sigma)
    coords, conf = decode_heatmaps(maps, mode, sigma=sigma)
    ref_coords, ref_conf = reference.decode_heatmaps(maps, mode, sigma=sigma)
    np.testing.assert_array_equal(conf, ref_conf)
    np.testing.assert_allclose(coords, ref_coords, atol=2e-5, equal_nan=True)


def test_matches_reference_on_pure_noise():
    maps = np.random.default_rng().random((8, 21, 16, 20)).astype(np.float32)
    for mode in MODES:
        coords, conf = decode_heatmaps(maps, mode)
        ref_coords, ref_conf = reference.decode_heatmaps(maps, mode)
        np.testing.assert_allclose(coords, ref_coords, atol=2e-5)
        np.testing.assert_array_equal(conf, ref_conf)


@pytest.mark.parametrize(("mode", "tolerance"), [("dark", 0.02), ("quadratic", 0.2), (None, 0.71)])
def test_subpixel_accuracy_on_clean_gaussians(mode, tolerance):
    rng = np.random.default_rng()
    h = w = 64
    centres = rng.uniform(4, 59, size=(4, 42, 2))
    maps = gaussian_heatmaps(centres, h, w, sigma=2.0)
    coords, conf = decode_heatmaps(maps, mode, sigma=2.0)
    assert coords.shape == (4, 42, 2) and conf.shape == (4, 42)
    assert coords.dtype == np.float32 and conf.dtype == np.float32
    error = np.linalg.norm(coords - centres, axis=-1)
    assert error.max() < tolerance, f"{mode}: max error {error.max():.4f} px"
    np.testing.assert_allclose(conf, 1.0, atol=0.15)


def test_dark_beats_integer_argmax_under_noise():
    maps, centres = random_maps(np.random.default_rng().integers(2**32), 400, 64, 64, noise=0.01)
    inside = (centres >= 3).all(-1) & (centres[:, 0] <= 60) & (centres[:, 1] <= 60)
    err = {m: np.linalg.norm(decode_heatmaps(maps, m)[0] - centres, axis=-1)[inside].mean() for m in MODES}
    assert err["dark"] < err["quadratic"] < err[None]


def test_flat_map_has_no_peak():
    maps = np.full((3, 8, 8), 0.25, dtype=np.float32)
    maps[1] = 0.0
    for mode in MODES:
        coords, conf = decode_heatmaps(maps, mode)
        assert np.isnan(coords).all()
        np.testing.assert_array_equal(conf, [0.25, 0.0, 0.25])


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_values_give_nan_not_a_crash(bad):
    maps = gaussian_heatmaps(np.array([[10.3, 12.7], [20.0, 5.5]]), 32, 32)
    maps[0, 7, 3] = bad
    for mode in MODES:
        coords, conf = decode_heatmaps(maps, mode)
        assert np.isnan(coords[0]).all() and np.isnan(conf[0])
        assert np.isfinite(coords[1]).all() and np.isfinite(conf[1])


@pytest.mark.parametrize("corner", [(0, 0), (31, 0), (0, 23), (31, 23), (1, 1), (30, 22)])
def test_peaks_on_the_border(corner):
    maps = gaussian_heatmaps(np.array([corner], dtype=np.float64), 24, 32)
    for mode in MODES:
        coords, _ = decode_heatmaps(maps, mode)
        np.testing.assert_allclose(coords[0], corner, atol=0.3)
        ref_coords, _ = reference.decode_heatmaps(maps, mode)
        np.testing.assert_allclose(coords, ref_coords, atol=2e-5)


def test_ties_take_the_first_peak_in_row_major_order():
    maps = np.zeros((1, 10, 10), dtype=np.float32)
    maps[0, 6, 2] = maps[0, 3, 8] = maps[0, 3, 9] = 1.0
    coords, conf = decode_heatmaps(maps, None)
    np.testing.assert_array_equal(coords[0], [8, 3])
    assert conf[0] == 1.0


def test_shapes_dtypes_and_layouts():
    maps, _ = random_maps(3, 2 * 3 * 5, 12, 16)
    maps = maps.reshape(2, 3, 5, 12, 16)
    coords, conf = decode_heatmaps(maps)
    assert coords.shape == (2, 3, 5, 2) and conf.shape == (2, 3, 5)
    # float64 and non-contiguous input are converted, with the same answer
    c64, _ = decode_heatmaps(maps.astype(np.float64))
    np.testing.assert_array_equal(c64, coords)
    transposed = np.ascontiguousarray(maps.swapaxes(-1, -2)).swapaxes(-1, -2)
    assert not transposed.flags.c_contiguous
    np.testing.assert_array_equal(decode_heatmaps(transposed)[0], coords)
    single, single_conf = decode_heatmaps(maps[0, 0, 0])
    assert single.shape == (2,) and single_conf.shape == ()
    empty, empty_conf = decode_heatmaps(np.zeros((0, 42, 8, 8), np.float32))
    assert empty.shape == (0, 42, 2) and empty_conf.shape == (0, 42)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"refine": "gauss"}, "refine must be"),
        ({"sigma": 0.0}, "sigma must be"),
        ({"sigma": 50.0}, "sigma must be"),
    ],
)
def test_bad_arguments_raise_one_clear_error(kwargs, message):
    with pytest.raises(HandstreamError, match=message):
        decode_heatmaps(np.zeros((2, 8, 8), np.float32), **kwargs)


def test_bad_shapes_raise_one_clear_error():
    with pytest.raises(HandstreamError, match=r"\(\.\.\., h, w\)"):
        decode_heatmaps(np.zeros(5, np.float32))
    with pytest.raises(HandstreamError, match="h, w >= 1"):
        decode_heatmaps(np.zeros((3, 0, 4), np.float32))


def test_torch_cpu_tensors_round_trip():
    torch = pytest.importorskip("torch", reason="torch is not installed (pip install -e '.[train]')")
    maps, _ = random_maps(5, 6, 16, 16)
    coords, conf = decode_heatmaps(torch.from_numpy(maps))
    assert isinstance(coords, torch.Tensor) and isinstance(conf, torch.Tensor)
    np.testing.assert_array_equal(coords.numpy(), decode_heatmaps(maps)[0])
