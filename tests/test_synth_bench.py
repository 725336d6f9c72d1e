"""Smoke test of benchmarks/bench_render.py: its --quick run completes and writes its figures (no timing asserted)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_render.py"


def test_quick_run_writes_its_figures(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("bench_render", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_render"] = module
    spec.loader.exec_module(module)
    out = tmp_path / "render.json"
    assert module.main(["--quick", "--rig", "stereo", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "x the 15 ms budget" in printed and "single core" in printed
    report = json.loads(out.read_text())
    assert report["settings"]["rig"] == "stereo" and report["settings"]["views"] == 2
    for key in ("render", "motion", "frame", "frame_motion_blur", "scene"):
        stats = report["results"][key]
        assert stats["median_ms"] > 0 and stats["p90_ms"] >= stats["median_ms"] >= stats["min_ms"]
    assert report["ratio"] == report["results"]["render"]["median_ms"] / 15.0
