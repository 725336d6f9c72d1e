"""Smoke test of benchmarks/bench_ops.py: its --quick run completes and writes every figure.

Nothing here asserts on speed (benchmarks report, tests do not time); the aniposelib peers run only
where aniposelib is installed, and are reported as skipped otherwise.
"""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest

pytest.importorskip("handstream._C", reason="handstream's compiled kernels are not built")

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_ops.py"

ROWS = {
    "resample_numpy_maps",
    "resample_opencv_maps",
    "resample_remap_only",
    "triangulate_dlt",
    "triangulate_dlt_2views",
    "triangulate_ransac",
    "triangulate_dlt_outliers",
    "decode_dark",
    "decode_quadratic",
    "decode_none",
}
ANIPOSELIB_ROWS = {"triangulate_dlt", "triangulate_ransac", "triangulate_dlt_outliers"}
TIMING_KEYS = {"median_us", "p90_us", "mean_us", "min_us", "n", "error"}


def load_script():
    spec = importlib.util.spec_from_file_location("bench_ops", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_ops"] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    return module


def check_timing(stats: dict) -> None:
    assert TIMING_KEYS <= stats.keys()
    for key in ("median_us", "p90_us", "mean_us", "min_us"):
        assert math.isfinite(stats[key]) and stats[key] > 0, (key, stats[key])
    assert stats["p90_us"] >= stats["median_us"] >= stats["min_us"]
    assert stats["n"] >= 1


def test_quick_run_writes_every_figure(tmp_path, capsys):
    bench = load_script()
    out = tmp_path / "bench.json"
    assert bench.main(["--quick", "--seed", "1234", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "handstream kernels vs peers" in printed and "seed 1234" in printed

    report = json.loads(out.read_text())
    assert {"machine", "settings", "targets", "results", "notes"} <= report.keys()
    for key in ("cpu", "cores", "python", "numpy", "opencv", "aniposelib", "date"):
        assert key in report["machine"]
    assert report["settings"]["seed"] == 1234 and report["settings"]["quick"] is True
    assert report["settings"]["heatmap"] == [4, 42, 64, 64]

    results = report["results"]
    assert set(results) == ROWS
    with_aniposelib = results["triangulate_dlt"]["peer"] is not None
    for name, r in results.items():
        assert {"operation", "handstream", "peer_name", "peer", "ratio", "target_ratio", "met"} <= r.keys()
        check_timing(r["handstream"])
        if name in ANIPOSELIB_ROWS and not with_aniposelib:
            assert r["peer"] is None and r["ratio"] is None and r["met"] is None
            continue
        check_timing(r["peer"])
        assert math.isfinite(r["ratio"]) and r["ratio"] > 0
        if r["target_ratio"] is not None:
            assert isinstance(r["met"], bool)

    # handstream's errors are those of a working triangulation / peak finder (1.5 px noise, ~0.25-0.6 m)
    dlt = results["triangulate_dlt"]["handstream"]["error"]
    assert dlt["failed_points"] == 0 and 0 < dlt["mean_mm"] < 30
    two = results["triangulate_dlt_2views"]
    assert two["handstream"]["error"]["failed_points"] == 0 and 0 < two["handstream"]["error"]["mean_mm"] < 60
    # handstream and OpenCV solve the same 2-view DLT: their errors are close
    assert two["handstream"]["error"]["mean_mm"] == pytest.approx(two["peer"]["error"]["mean_mm"], rel=0.1)
    ransac = results["triangulate_ransac"]["handstream"]["error"]
    assert 0 < ransac["median_mm"] < 30  # the mean can be pulled up by points with 2 of 4 views outliers

    limits = {"decode_dark": 0.1, "decode_quadratic": 0.3, "decode_none": 0.75}  # heatmap px
    for name, limit in limits.items():
        hs_err = results[name]["handstream"]["error"]
        ref_err = results[name]["peer"]["error"]
        assert hs_err["failed_maps"] == 0 and 0 <= hs_err["mean_px"] < limit
        # the C++ kernel agrees with the NumPy reference
        assert hs_err["mean_px"] == pytest.approx(ref_err["mean_px"], abs=1e-3)
    assert results["decode_dark"]["error_ok"] is True
