"""The latency benchmark (handstream/bench.py): a short real run writes every field with sane values.

No assertion on speed: speed is the benchmark's job (docs/performance.md), not the tests'.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from handstream.bench import (
    LIVE_STAGES,
    PIPELINE_STAGES,
    BenchOptions,
    bench_rig,
    drops_from_status,
    parse_resolution,
    print_report,
    run_bench,
    summarize,
)
from handstream.cli import main
from handstream.errors import HandstreamError

STATS = ("n", "mean", "p50", "p90", "p99", "max", "min")
PATH_STAGES = ("acquire", "refine")  # present on one path only (tracked: acquire frame sets; detect: refine)


def _ordered(s: dict) -> None:
    assert set(STATS) <= set(s), s
    assert s["n"] > 0, s
    assert s["min"] <= s["p50"] <= s["p90"] <= s["p99"] <= s["max"], s
    assert all(math.isfinite(s[k]) for k in STATS), s


def _no_nan(x) -> None:
    if isinstance(x, dict):
        for v in x.values():
            _no_nan(v)
    elif isinstance(x, list):
        for v in x:
            _no_nan(v)
    elif isinstance(x, float):
        assert math.isfinite(x)


def test_short_run_writes_every_field(tmp_path, random_model, capsys):
    opts = BenchOptions(
        seconds=2.5, warmup=0.5, cameras=2, resolution=(320, 240), fps=30.0, model=str(random_model), threads=1,
        loop_frames=12, inprocess_seconds=1.0, sweep=True, sweep_views=(4, 8), sweep_resolutions=((160, 120),),
        sweep_calls=2, sweep_settle=1, compare=("mediapipe",), compare_frames=2, out=str(tmp_path / "out"),
        thumbnails=True,
    )  # fmt: skip
    result = run_bench(opts, log=lambda s: None, argv=["test"])
    path = tmp_path / "out" / "latency.json"
    data = json.loads(path.read_text())  # strict JSON: NaN would be written as null
    _no_nan(data)
    keys = ("schema", "handstream", "command", "machine", "config", "live", "inprocess", "transport_overhead_ms",
            "compare", "sweep", "sweep_ratios", "targets", "files", "background_busy_cores_before",
            "background_busy_cores_after", "paths", "inprocess_detect_every_frame")  # fmt: skip
    for key in keys:
        assert key in data, key
    assert {"cpu", "cores", "python", "date", "onnxruntime"} <= set(data["machine"])
    cfg = data["config"]
    assert cfg["cameras"] == 2 and cfg["resolution"] == [320, 240] and cfg["fps"] == 30.0
    assert cfg["backend_used"] == "onnxruntime"
    assert cfg["tracking"] is True and cfg["live_path"] == "tracked" and cfg["max_views_per_hand"] == 2
    assert cfg["crop_model"] and cfg["detect_refiner"]

    live = data["live"]
    assert live["poses"] > 0 and 0 < live["pose_rate"] <= 2 * cfg["fps"]
    assert 0 <= live["complete_sets"] <= 1 and 1 <= live["mean_views"] <= 2
    assert live["window_s"] >= 2.5
    for stage in ("end_to_end", *LIVE_STAGES, "outside_pipeline"):
        if stage in PATH_STAGES and live["latency_ms"][stage]["n"] == 0:
            continue  # a stage of the other path (refine), or no acquisition in the window
        _ordered(live["latency_ms"][stage])
        assert live["latency_ms"][stage]["min"] >= -1.0, stage  # clocks of one machine: no negative durations
    lat = live["latency_ms"]
    # (random weights track no hand: the crop model may never run, so infer can be 0; the detector's acquisitions
    # run on every frame set then)
    assert lat["end_to_end"]["p50"] >= max(lat["infer"]["p50"], lat["acquire"]["p50"] or 0.0) > 0
    assert lat["end_to_end"]["max"] < 10_000
    assert len(live["samples"]["end_to_end_ms"]) == live["poses"] == len(live["samples"]["infer_ms"])

    drops = live["drops"]
    for key in ("capture_queue_full", "capture_skipped", "capture_sent", "capture_fps"):
        assert set(drops[key]) == set(cfg["camera_names"]), key
    assert all(v >= 0 for v in drops["capture_queue_full"].values())
    assert sum(drops["capture_sent"].values()) > 0
    for key in ("engine_superseded", "receiver_missed", "frames_dropped", "frames_skipped_by_captures"):
        assert isinstance(drops[key], int) and drops[key] >= 0, key
    assert set(drops["sync"]) == {"sets", "stale", "unmatched", "late", "incomplete"} and drops["sync"]["sets"] > 0
    assert live["subscriber_missed"] >= 0
    # the subscriber asked for frame.*: the engine's thumbnails came (engine.thumbnail_fps, default 5 per camera)
    assert live["thumbnails"]["received"] > 0 and live["thumbnails"]["rate"] <= 2 * cfg["fps"]

    procs = live["processes"]
    names = {"engine", *(f"capture-{c}" for c in cfg["camera_names"])}
    assert names <= set(procs)
    for name in names:
        p = procs[name]
        assert p["pid"] > 0 and p["cpu_percent"] >= 0 and p["rss_mb_max"] > 1 and not p["restarted"], (name, p)
    assert procs["engine"]["cpu_percent"] > 0

    inproc = data["inprocess"]
    assert inproc["calls"] >= 10 and inproc["capacity_fps"] > 0
    for stage in ("total", *PIPELINE_STAGES):
        if stage in PATH_STAGES and inproc["latency_ms"][stage]["n"] == 0:
            continue
        _ordered(inproc["latency_ms"][stage])
    tr = inproc["tracking"]  # the tracked path (default) and its counters
    assert inproc["path"] == "tracked"
    assert tr["frame_sets"] >= inproc["calls"] and 0 <= tr["acquisition_rate"] <= 1 and tr["crops_per_frame_set"] >= 0
    det = data["inprocess_detect_every_frame"]  # the detect-every-frame path on the same frames
    assert det["path"] == "detect_every_frame" and det["tracking"] is None
    assert det["calls"] == inproc["calls"] and det["capacity_fps"] > 0 and det["ratio_capacity_tracked_over_detect"] > 0
    if det["latency_ms"]["refine"]["n"]:
        _ordered(det["latency_ms"]["refine"])
    paths = data["paths"]  # both paths side by side
    assert paths["live"] == "tracked" and paths["ratio_capacity_tracked_over_detect"] > 0
    for name in ("tracked", "detect_every_frame"):
        p = paths[name]
        assert p["calls"] == inproc["calls"] and p["capacity_fps"] > 0 and p["p50_ms"] <= p["p90_ms"] <= p["p99_ms"]
    assert 0 <= paths["tracked"]["acquisition_rate"] <= 1 and paths["tracked"]["crops_per_frame_set"] >= 0
    assert paths["detect_every_frame"]["acquisition_rate"] == 1.0 and paths["detect_every_frame"]["lost"] is None
    assert set(tr["lost"]) == set(paths["tracked"]["lost"])
    status_tr = live["engine_status"]["tracking"]  # status.engine: since start; live.tracking: the window
    assert status_tr["frame_sets"] >= live["tracking"]["frame_sets"] > 0
    assert 0 <= live["tracking"]["acquisition_rate"] <= 1 and live["tracking"]["crops_per_frame_set"] >= 0
    assert paths["live_tracking"] == live["tracking"]
    assert inproc["latency_ms"]["total"]["p50"] >= inproc["latency_ms"]["infer"]["p50"]
    ov = data["transport_overhead_ms"]
    for key in ("difference_p50", "difference_p90", "difference_p99", "per_pose_p50", "transport_stages_p50"):
        assert isinstance(ov[key], float), key

    assert [(r["views"], r["resolution"]) for r in data["sweep"]] == [(4, [160, 120]), (8, [160, 120])]
    for r in data["sweep"]:  # both paths per view count, the tracked one after the settling frame sets
        assert r["path"] == "tracked" and r["calls"] == 2
        _ordered(r["latency_ms"]["total"])
        _ordered(r["detect_every_frame"]["latency_ms"]["total"])
        assert r["detect_every_frame"]["capacity_fps"] > 0
        assert 3 <= r["skipped_frame_sets"] <= 3 + 1 and isinstance(r["settled"], bool)
        assert r["tracking"]["frame_sets"] == 2 and r["tracking"]["crops_per_frame_set"] >= 0
        assert 0 <= r["tracking"]["acquisitions"] <= 2 and 0 <= r["skipped_acquisitions"] <= r["skipped_frame_sets"]
        assert 0 <= r["both_tracked"]["calls"] <= 2
    (ratio,) = data["sweep_ratios"]
    assert ratio["resolution"] == [160, 120] and ratio["views"] == [8, 4]
    assert ratio["detect_every_frame"] > 0 and ratio["tracked_all_calls"] > 0
    assert ratio["tracked"] is None or ratio["tracked"] > 0  # (random weights may never track both hands)

    mp = data["compare"]["mediapipe"]
    if mp["available"]:
        _ordered(mp["per_frame_ms"])
        assert mp["views"] == 2 and mp["ratio"] > 0
    else:
        assert mp["reason"] and "\n" not in mp["reason"]

    assert {t["name"] for t in data["targets"]} >= {
        "sustained, no drops",
        "p99 end-to-end latency",
        "transport overhead (median)",
    }
    png = tmp_path / "out" / "latency.png"
    assert data["files"] == {"json": str(path), "png": str(png)}
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000

    print_report(result)
    shown = capsys.readouterr().out
    assert "end to end" in shown and "targets" in shown
    assert "engine paths" in shown and "crops per frame set" in shown and "detector runs" in shown
    assert "sweep" in shown and "8 views / 4 views" in shown


@pytest.mark.parametrize(
    "args, where",
    [
        (["--cameras", "1"], "--cameras"),
        (["--resolution", "640x"], "--resolution"),
        (["--model", "no/such/model.onnx"], "--model"),
        (["--source", "video"], "--video"),
        (["--source", "video", "--video", "a.mp4", "--video", "b.mp4", "--calibration", "c.toml"], "--video"),
        (["--backend", "tflite"], "--backend"),
        (["--compare", "openpose"], "--compare"),
        (["--live-render", "--resolution", "640x480"], "--live-render"),
        (["--max-views-per-hand", "1"], "--max-views-per-hand"),
        (["--max-views-per-hand", "17"], "--max-views-per-hand"),
        (["--sweep-settle", "-1"], "--sweep-settle"),
        (["--sweep-views", "2,0"], "--sweep-views"),
    ],
)
def test_user_errors_are_one_line_and_exit_2(args, where, capsys, tmp_path):
    code = main(["bench", "--out", str(tmp_path), "--seconds", "1", *args])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith("handstream: error:") and where in err and "\n" not in err, err


def test_parse_resolution():
    assert parse_resolution("640x480") == (640, 480)
    assert parse_resolution("HD") == (1280, 720)
    assert parse_resolution("native") is None
    for bad in ("640", "0x480", "axb", "640x480x3"):
        with pytest.raises(HandstreamError, match="--resolution"):
            parse_resolution(bad)


def test_summarize_ignores_nan_and_handles_empty():
    s = summarize([3.0, float("nan"), 1.0, 2.0])
    assert s["n"] == 3 and s["p50"] == 2.0 and s["max"] == 3.0 and s["min"] == 1.0
    assert summarize([])["p50"] is None


def test_drops_are_deltas_by_place():
    start = {
        "engine": {"receiver": {"superseded": 2, "missed": 0, "dropped": {"version": 1}},
                   "sync": {"sets": 10, "stale": 1}, "dropped_frames": {"size": 0, "error": 0}},
        "cam0": {"camera": "cam0", "sent": 10, "dropped": 1, "skipped": 0, "fps": 30.0},
    }  # fmt: skip
    end = {
        "engine": {"receiver": {"superseded": 5, "missed": 1, "dropped": {"version": 1, "shape": 2}},
                   "sync": {"sets": 40, "stale": 1, "unmatched": 3, "late": 0, "incomplete": 4},
                   "dropped_frames": {"size": 1, "error": 0}},
        "cam0": {"camera": "cam0", "sent": 40, "dropped": 3, "skipped": 2, "fps": 29.5},
    }  # fmt: skip
    d = drops_from_status(start, end, 1.0)
    assert (
        d["capture_queue_full"] == {"cam0": 2}
        and d["capture_skipped"] == {"cam0": 2}
        and d["capture_sent"] == {"cam0": 30}
    )
    assert (
        d["engine_superseded"] == 3
        and d["receiver_invalid"] == {"version": 0, "shape": 2}
        and d["receiver_missed"] == 1
    )
    assert d["sync"] == {"sets": 30, "stale": 0, "unmatched": 3, "late": 0, "incomplete": 4}
    assert d["frames_dropped"] == 2 + 3 + 2 + 1 + 3 + 1


def test_bench_rig_views_and_resolution():
    from handstream.synth.rigs import get_preset

    native = get_preset("headset4")
    preset = bench_rig(8, (1280, 720))
    rig = preset.rig
    assert len(rig) == 8 and len(set(rig.names)) == 8 and all(c.size == (1280, 720) for c in rig)
    centers = np.stack([c.center for c in rig])
    assert len({tuple(np.round(c, 6)) for c in centers}) == 8  # 8 distinct cameras
    target = preset.workspace.center
    for cam in rig:  # the hands' workspace is in front of every camera
        assert (cam.R @ target + cam.t)[2] > 0, cam.name
    # resizing scales the image, nothing else: the same point lands on the same place of the picture
    s = np.array([1280 / 636, 720 / 480])
    for cam, ref in zip(rig, native.rig, strict=False):
        uv, uv0 = cam.project(target[None])[0], ref.project(target[None])[0]
        np.testing.assert_allclose(uv, (uv0 + 0.5) * s - 0.5, atol=1e-6)
    assert [c.size for c in bench_rig(4, None).rig] == [(636, 480)] * 4
