"""The report: targets met or not, the JSON file, the PNG figure and the terminal tables."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from handstream.bench.inprocess import stage_mean_per_frame
from handstream.bench.measure import fmt
from handstream.bench.options import LIVE_STAGES, PIPELINE_STAGES, SHORT_LABELS, STAGE_LABELS, SWEEP_WARMUP_CALLS


def evaluate_targets(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets against this run: ``name``, ``target``, ``measured``, ``met`` (None: not measured),
    ``applies`` (False when this run's configuration is not the one the target is stated for)."""
    cfg, live = result["config"], result.get("live")
    fps = cfg["fps"]
    interval = 1000.0 / fps if fps else None
    target_cfg = (
        cfg["cameras"] == 4
        and tuple(cfg["resolution"] or ()) in ((640, 480), (636, 480))
        and fps
        and abs(fps - 30) < 0.5
    )
    out = []
    if live:
        rate = live["pose_rate"] or 0.0
        drops = live["drops"]["frames_dropped"] + live["drops"]["frames_skipped_by_captures"]
        out.append({
            "name": "sustained, no drops",
            "target": f"poses/s >= 0.98 x {fps:g} fps and 0 frames dropped in steady state",
            "measured": f"{rate:.2f} poses/s, {drops} frames dropped or skipped",
            "met": bool(rate >= 0.98 * fps and drops == 0),
            "applies": bool(target_cfg),
        })  # fmt: skip
        p99 = live["latency_ms"]["end_to_end"]["p99"]
        out.append({
            "name": "p99 end-to-end latency",
            "target": f"< {interval:.1f} ms (one frame interval)",
            "measured": None if p99 is None else f"{p99:.1f} ms",
            "met": None if p99 is None else bool(p99 < interval),
            "applies": bool(target_cfg),
        })  # fmt: skip
    ov = result.get("transport_overhead_ms")
    if ov and ov.get("per_pose_p50") is not None:
        out.append({
            "name": "transport overhead (median)",
            "target": "< 1 ms (per pose: live end to end - its pipeline stages, vs in-process)",
            "measured": f"{ov['per_pose_p50']:.2f} ms (side by side, difference of medians: "
            f"{fmt(ov['difference_p50'], 2)} ms)",
            "met": bool(ov["per_pose_p50"] < 1.0),
            "applies": True,
        })  # fmt: skip
    for q in result.get("sweep_ratios") or []:
        if q["tracked"] is None:
            continue
        w, h = q["resolution"]
        out.append({
            "name": f"tracked cost, {q['views'][0]} views / {q['views'][1]} views ({w}x{h})",
            "target": "<= 1.5x (p50 per frame set, both hands tracked, in process)",
            "measured": f"{q['tracked']:.2f}x (detect every frame: {fmt(q['detect_every_frame'], 2)}x)",
            "met": bool(q["tracked"] <= 1.5),
            "applies": True,
        })  # fmt: skip
    mp_ = (result.get("compare") or {}).get("mediapipe")
    if mp_ and mp_.get("available") and mp_.get("ratio") is not None:
        out.append({
            "name": "faster than MediaPipe view by view",
            "target": "MediaPipe per multi-view frame / handstream per multi-view frame > 1",
            "measured": f"{mp_['ratio']:.2f}x",
            "met": bool(mp_["ratio"] > 1.0),
            "applies": True,
        })  # fmt: skip
    return out


_COLORS = {
    "transport_in": "#8c564b", "sync": "#bcbd22", "preprocess": "#1f77b4", "infer": "#ff7f0e",
    "decode": "#2ca02c", "refine": "#17becf", "acquire": "#393b79", "triangulate": "#d62728", "smooth": "#9467bd",
    "transport_out": "#e377c2", "residual": "#7f7f7f",
}  # fmt: skip


def write_png(result: dict[str, Any], path: str | Path) -> None:
    """Latency distribution (histogram + CDF, live vs in-process) and stacked bars of mean stage times per
    configuration (live, in-process, MediaPipe, the sweep). Matplotlib, Agg canvas (no display needed)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    cfg, live, inproc = result["config"], result.get("live"), result.get("inprocess")
    sweep = result.get("sweep") or []
    fig = Figure(figsize=(14, 9.5), dpi=110)
    FigureCanvasAgg(fig)
    gs = fig.add_gridspec(2, 2, height_ratios=[1, 1.1], hspace=0.35, wspace=0.35)
    m = result["machine"]
    w, h = cfg["resolution"]
    title = (f"handstream bench: {cfg['cameras']} cameras {w}x{h} @ {cfg['fps']:g} fps, "
             f"{cfg.get('backend_used') or cfg['backend']}, {m.get('cpu', '')} ({m.get('cores_usable')} cores), "
             f"{(m.get('date') or '')[:10]}")  # fmt: skip
    fig.suptitle(title, fontsize=10)
    interval = 1000.0 / cfg["fps"]
    series = []
    if live:
        series.append(("live end to end", np.asarray(live["samples"]["end_to_end_ms"], float), "#1f77b4"))
    if inproc:
        series.append((f"in-process, {_path_label(inproc)}", np.asarray(inproc["samples"]["total_ms"], float),
                       "#ff7f0e"))  # fmt: skip
    other = _other_path_run(result)
    if other:
        series.append((f"in-process, {_path_label(other)}", np.asarray(other["samples"]["total_ms"], float),
                       "#2ca02c"))  # fmt: skip
    ax = fig.add_subplot(gs[0, 0])
    finite = [s[1][np.isfinite(s[1])] for s in series]
    hi = max([float(np.percentile(a, 99.5)) for a in finite if a.size] + [interval * 1.1])
    bins = np.linspace(0, hi * 1.05, 60)
    for (name, _, color), a in zip(series, finite, strict=True):
        if a.size:
            ax.hist(np.clip(a, 0, bins[-1]), bins=bins, alpha=0.55, color=color, label=f"{name} (n={a.size})")
    ax.axvline(interval, color="k", ls="--", lw=1, label=f"one frame interval ({interval:.1f} ms)")
    ax.set_xlabel("latency, ms")
    ax.set_ylabel("frame sets")
    ax.set_title("latency distribution", fontsize=10)
    ax.legend(fontsize=8)
    ax = fig.add_subplot(gs[0, 1])
    for k, ((name, _, color), a) in enumerate(zip(series, finite, strict=True)):
        if a.size:
            xs = np.sort(a)
            ax.plot(xs, np.arange(1, xs.size + 1) / xs.size, color=color, label=name)
            for q, mk in ((50, "o"), (99, "^")):
                v = float(np.percentile(a, q))
                ax.plot([v], [q / 100], mk, color=color)
                ax.annotate(
                    f"p{q} {v:.1f}",
                    (v, q / 100),
                    textcoords="offset points",
                    xytext=(6, -12 - 11 * k if q == 50 else 4 - 11 * k),
                    fontsize=8,
                    color=color,
                )
    ax.axvline(interval, color="k", ls="--", lw=1)
    ax.set_xlabel("latency, ms")
    ax.set_ylabel("fraction of frame sets")
    ax.set_ylim(0, 1.02)
    ax.set_title("cumulative distribution", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")

    # stacked bars: mean ms per stage (means add up; medians do not)
    ax = fig.add_subplot(gs[1, 0] if sweep else gs[1, :])
    bars: list[tuple[str, dict[str, float]]] = []
    if live:
        lm = {s: stage_mean_per_frame(live["latency_ms"][s], live["poses"]) for s in LIVE_STAGES}
        lm["residual"] = max(0.0, live["latency_ms"]["residual"]["mean"] or 0.0)
        bars.append((f"live, end to end\n({_path_label(inproc) if inproc else cfg.get('live_path', '')})", lm))
    for run in (inproc, other):
        if run:
            bars.append((f"in-process,\n{_path_label(run)}",
                         {s: stage_mean_per_frame(run["latency_ms"][s], run["calls"]) for s in PIPELINE_STAGES}))
    mp_ = (result.get("compare") or {}).get("mediapipe")
    if mp_ and mp_.get("available"):
        bars.append((f"MediaPipe, {mp_['views']} views\n(2D only)", {"mediapipe": mp_["per_frame_ms"]["mean"] or 0.0}))
    handles = _stacked(ax, bars, interval)
    ax.set_title("where the time goes: mean ms per multi-view frame", fontsize=10)
    if sweep:
        _plot_sweep(fig.add_subplot(gs[1, 1]), sweep, interval)
    order = [s for s in (*LIVE_STAGES, "residual", "mediapipe") if s in handles]
    fig.legend([handles[s] for s in order], [STAGE_LABELS.get(s, "MediaPipe hand landmarker") for s in order],
               loc="lower center", ncol=min(5, len(order)), fontsize=8, frameon=False)  # fmt: skip
    fig.subplots_adjust(bottom=0.12, left=0.13)
    fig.savefig(str(path))


def _path_label(run: dict[str, Any]) -> str:
    return "tracked" if run.get("path", "tracked") == "tracked" and run.get("tracking") is not None else (
        "detect every frame")  # fmt: skip


def _other_path_run(result: dict[str, Any]) -> dict[str, Any] | None:
    """The in-process run of the path the live run did not use (None when it was not measured)."""
    return result.get("inprocess_detect_every_frame") or result.get("inprocess_tracked")


def _plot_sweep(ax, sweep: list[dict[str, Any]], interval: float) -> None:
    """Cost per frame set against views, per resolution: tracked (both hands tracked) solid, detect every frame
    dashed; markers at p50, bars up to p90."""
    colors = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"]
    for k, res in enumerate(dict.fromkeys(tuple(r["resolution"]) for r in sweep)):
        rows = sorted((r for r in sweep if tuple(r["resolution"]) == res), key=lambda r: r["views"])
        color = colors[k % len(colors)]
        for label, get, ls in (
            ("tracked", lambda r: (r.get("both_tracked") or {}).get("total") if r.get("path", "tracked") ==
             "tracked" else None, "-"),
            ("detect every frame", lambda r: (r.get("detect_every_frame") or {}).get("latency_ms", {}).get("total")
             if r.get("path", "tracked") == "tracked" else r["latency_ms"]["total"], "--"),
        ):  # fmt: skip
            pts = [(r["views"], get(r)) for r in rows]
            pts = [(v, s) for v, s in pts if s and s.get("p50") is not None]
            if not pts:
                continue
            xs = np.array([v for v, _ in pts], float)
            p50 = np.array([s["p50"] for _, s in pts])
            p90 = np.array([s["p90"] for _, s in pts])
            ax.errorbar(xs, p50, yerr=[np.zeros_like(p50), np.maximum(p90 - p50, 0)], color=color, ls=ls,
                        marker="o" if ls == "-" else "s", ms=4, capsize=3, lw=1.2,
                        label=f"{res[0]}x{res[1]} {label}")  # fmt: skip
    ax.axhline(interval, color="k", ls=":", lw=1)
    views = sorted({r["views"] for r in sweep})
    ax.set_xscale("log", base=2)
    ax.set_xticks(views, [str(v) for v in views])
    ax.set_xlabel("views")
    ax.set_ylabel("ms per frame set (p50, bar to p90)")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title("sweep, in process, back to back: tracked (solid) vs detect every frame (dashed)", fontsize=9)


def _stacked(ax, bars: list[tuple[str, dict[str, float]]], interval: float, fontsize: int = 8) -> dict[str, Any]:
    """Horizontal stacked bars, first configuration on top; returns stage -> legend handle."""
    y = np.arange(len(bars))[::-1]
    handles: dict[str, Any] = {}
    for i, (_, parts) in enumerate(bars):
        left = 0.0
        for stage, v in parts.items():
            h = ax.barh(y[i], v, left=left, color=_COLORS.get(stage, "#17becf"), height=0.6)
            handles.setdefault(stage, h)
            left += v
        ax.text(left, y[i], f" {left:.1f}", ha="left", va="center", fontsize=fontsize)
    ax.axvline(interval, color="k", ls="--", lw=1)
    ax.set_yticks(y, [b[0] for b in bars], fontsize=fontsize)
    ax.set_xlabel("ms (dashed: one frame interval)")
    ax.margins(x=0.12)
    return handles


def print_report(result: dict[str, Any], console=None) -> None:
    """The report as rich tables: latency by stage (live and in-process), throughput and drops, processes,
    sweep, peers and targets."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console(width=None if sys.stdout.isatty() else 120)
    cfg, live, inproc = result["config"], result.get("live"), result.get("inprocess")
    m = result["machine"]
    console.print(
        f"[bold]handstream bench[/bold]: {cfg['cameras']} cameras {cfg['resolution'][0]}x{cfg['resolution'][1]} "
        f"@ {cfg['fps']:g} fps, "
        f"{cfg['source']} ({cfg['frames']}), backend {cfg.get('backend_used') or cfg['backend']}, model {cfg['model']}"
    )
    console.print(f"machine: {m.get('cpu')}, {m.get('cores_usable')} cores, {m.get('date')}; other load before/after: "
                  f"{fmt(result.get('background_busy_cores_before'), 2)} / "
                  f"{fmt(result.get('background_busy_cores_after'), 2)} busy cores")  # fmt: skip
    t = Table(
        title=f"latency, ms (live: {live['poses']} poses in {live['window_s']:.1f} s; "
        f"in-process: {inproc['calls']} frame sets)"
    )
    t.add_column("stage")
    for col in ("live p50", "p90", "p99", "max", "mean", "in-proc p50", "p90", "p99"):
        t.add_column(col, justify="right")
    lp, ip = live["latency_ms"], inproc["latency_ms"]
    order = [
        ("end_to_end", "total"),
        *[(s, s if s in PIPELINE_STAGES else None) for s in LIVE_STAGES],
        ("residual", None),
    ]
    for ls, is_ in order:
        a = lp[ls]
        b = ip.get(is_) if is_ else None
        row = [SHORT_LABELS[ls]]
        row += [fmt(a[q]) for q in ("p50", "p90", "p99", "max", "mean")]
        row += [fmt(b[q]) if b else "" for q in ("p50", "p90", "p99")]
        t.add_row(*row, style="bold" if ls == "end_to_end" else None)
    console.print(t)
    console.print(
        "[dim]end to end: subscriber receive - capture time (in-process: the Pipeline.process call); transport in: "
        "engine receive - capture send, incl. queueing while the engine is busy; publish + out: subscriber receive "
        "- publish stamp; residual: end to end - the stages (capture read, engine loop)[/dim]"
    )
    ov = result["transport_overhead_ms"]
    console.print(
        f"transport overhead: per pose (live end to end minus that pose's pipeline stages, minus the same in-process) "
        f"p50 {fmt(ov['per_pose_p50'], 2)} ms; side by side (live end to end - in-process total): "
        f"p50 {fmt(ov['difference_p50'], 2)} ms, p90 {fmt(ov['difference_p90'], 2)}, "
        f"p99 {fmt(ov['difference_p99'], 2)}; transport stages alone (in + out) p50 "
        f"{fmt(ov['transport_stages_p50'], 2)} ms; compute live {fmt(ov['live_compute_mean'], 2)} vs in-process "
        f"{fmt(ov['inprocess_compute_mean'], 2)} ms (mean); in-process capacity "
        f"{fmt(inproc['capacity_fps'])} frame sets/s"
    )
    print_paths(result, console)
    d = live["drops"]
    t = Table(title="throughput and drops (measurement window)")
    t.add_column("what")
    t.add_column("value", justify="right")
    t.add_row("poses / s (camera rate)", f"{fmt(live['pose_rate'], 2)} ({cfg['fps']:g})")
    t.add_row("frame sets with every view", f"{100 * (live['complete_sets'] or 0):.1f} %")
    t.add_row("capture fps", " ".join(f"{fmt(v)}" for v in d["capture_fps"].values()))
    t.add_row("frames dropped (total)", str(d["frames_dropped"]))
    t.add_row("  capture queue full", str(sum(d["capture_queue_full"].values())))
    t.add_row("  superseded before the engine took them", str(d["engine_superseded"]))
    t.add_row(
        "  invalid at the engine (by reason)",
        ", ".join(f"{k} {v}" for k, v in d["receiver_invalid"].items() if v) or "0",
    )
    t.add_row("  lost in transit (sequence gaps)", str(d["receiver_missed"]))
    t.add_row(
        "  sync: stale / unmatched / late", f"{d['sync']['stale']} / {d['sync']['unmatched']} / {d['sync']['late']}"
    )
    t.add_row(
        "  engine: wrong size / error",
        f"{d['engine_dropped_frames'].get('size', 0)} / {d['engine_dropped_frames'].get('error', 0)}",
    )
    t.add_row("frames skipped by captures (reader late)", str(d["frames_skipped_by_captures"]))
    t.add_row("incomplete frame sets (sync)", str(d["sync"]["incomplete"]))
    t.add_row("poses missed by the subscriber", str(live["subscriber_missed"]))
    if live.get("thumbnails"):
        t.add_row("camera thumbnails received / s (frame.*)", fmt(live["thumbnails"]["rate"], 2))
    console.print(t)
    t = Table(title="processes (CPU % of one core, RSS MiB)")
    for col in ("process", "pid", "CPU %", "RSS mean", "RSS max"):
        t.add_column(col, justify="right" if col != "process" else "left")
    for name, p in live["processes"].items():
        t.add_row(
            name + (" (restarted)" if p.get("restarted") else ""),
            str(p["pid"]),
            fmt(p["cpu_percent"]),
            fmt(p["rss_mb_mean"]),
            fmt(p["rss_mb_max"]),
        )
    mc = live["machine"]
    busy = None if mc["busy_cores"] is None else 100 * mc["busy_cores"]
    t.add_row("[dim]whole machine / other work[/dim]", "", f"{fmt(busy)} / "
              f"{fmt(None if mc['other_busy_cores'] is None else 100 * mc['other_busy_cores'])}", "", "")  # fmt: skip
    console.print(t)
    if result.get("sweep"):
        print_sweep(result, console)
    mp_ = (result.get("compare") or {}).get("mediapipe")
    if mp_ is not None:
        if mp_.get("available"):
            console.print(
                f"MediaPipe {mp_['version']} hand landmarker, {mp_['views']} views one after another: "
                f"{fmt(mp_['per_frame_ms']['p50'])} ms per multi-view frame (p50; {fmt(mp_['per_view_ms']['p50'])} "
                f"per view, {fmt(mp_['hands_per_view'], 2)} hands found per view) vs handstream "
                f"{fmt(mp_['handstream_per_frame_ms'])} ms with 3D: [bold]{fmt(mp_['ratio'], 2)}x[/bold]"
            )
        else:
            console.print(f"MediaPipe: not compared: {mp_['reason']}")
    t = Table(title="targets (docs/performance.md)")
    for col in ("target", "wanted", "measured", "met"):
        t.add_column(col)
    for tg in result["targets"]:
        met = "-" if tg["met"] is None else ("yes" if tg["met"] else "no")
        if not tg["applies"]:
            met += " (other config)"
        t.add_row(tg["name"], tg["target"], tg["measured"] or "-", met)
    console.print(t)
    files = result.get("files") or {}
    if files:
        console.print(f"wrote {files.get('json')}" + (f" and {files['png']}" if files.get("png") else ""))


def _pct(rate: float | None) -> str:
    return "-" if rate is None else f"{100 * rate:.1f} %"


def print_paths(result: dict[str, Any], console) -> None:
    """The two engine paths side by side (in process, same frames, paced the same) and the ratio."""
    from rich.table import Table

    paths = result.get("paths")
    if not paths:
        return
    tr, de = paths["tracked"], paths["detect_every_frame"]
    calls = (tr or de)["calls"]
    t = Table(title=f"engine paths, in process ({calls} frame sets each, same frames, paced at the camera rate; "
                    f"the live run: {paths['live'].replace('_', '-')})")  # fmt: skip
    t.add_column("figure")
    t.add_column("tracked", justify="right")
    t.add_column("detect every frame", justify="right")

    def row(label: str, show: Callable[[dict[str, Any]], str]) -> None:
        t.add_row(label, *("not measured" if p is None else show(p) for p in (tr, de)))

    def lost(p: dict[str, Any]) -> str:
        return "-" if p["lost"] is None else (", ".join(f"{k} {n}" for k, n in p["lost"].items() if n) or "none")

    row("per frame set p50 / p90 / p99 ms",
        lambda p: f"{fmt(p['p50_ms'], 2)} / {fmt(p['p90_ms'], 2)} / {fmt(p['p99_ms'], 2)}")  # fmt: skip
    row("capacity, frame sets/s", lambda p: fmt(p["capacity_fps"]))
    row("detector runs (acquisitions), % of frame sets", lambda p: _pct(p["acquisition_rate"]))
    row("detector (acquire) p50 ms, when it runs", lambda p: fmt(p["acquire_p50_ms"], 2))
    row("crops per frame set", lambda p: fmt(p["crops_per_frame_set"], 2))
    row("tracks lost (by reason)", lost)
    live = paths.get("live_tracking")
    if live is not None:
        t.add_row("live engine (window): detector runs, % of frame sets", _pct(live["acquisition_rate"]), "")
        t.add_row("live engine (window): crops per frame set", fmt(live["crops_per_frame_set"], 2), "")
    console.print(t)
    ratio = paths.get("ratio_capacity_tracked_over_detect")
    if ratio is not None:
        console.print(f"tracked capacity / detect-every-frame capacity (in process): [bold]{ratio:.2f}x[/bold]")


def print_sweep(result: dict[str, Any], console) -> None:
    """The sweep: cost per frame set of both paths for each views x resolution, and the 8/4-view ratios."""
    from rich.table import Table

    rows = result["sweep"]
    t = Table(title=f"sweep, in process, back to back: cost per frame set, ms ({rows[0]['calls']} calls each; "
                    "tracked: once both hands are tracked)")  # fmt: skip
    for col in ("views", "size", "skipped", "n", "tracked p50", "p90", "sets/s", "acq.", "crops",
                "detect p50", "p90 ", "sets/s ", "ratio"):  # fmt: skip
        t.add_column(col, justify="right")
    for r in rows:
        lat, trk, dr, bt = r["latency_ms"], r.get("tracking"), r.get("detect_every_frame"), r.get("both_tracked")
        if r.get("path", "tracked") != "tracked":  # no crop model: the detect-every-frame path alone
            dr, bt = {"latency_ms": lat, "capacity_fps": r["capacity_fps"]}, None
        dtot = dr["latency_ms"]["total"] if dr else None
        ratio = bt["capacity_fps"] / dr["capacity_fps"] if bt and dr and bt["capacity_fps"] and dr["capacity_fps"] \
            else None  # fmt: skip
        skipped = "-" if r.get("settled") is None else f"{r['skipped_frame_sets']}" + ("" if r["settled"] else "*")
        t.add_row(
            str(r["views"]), f"{r['resolution'][0]}x{r['resolution'][1]}", skipped, "-" if not bt else str(bt["calls"]),
            "-" if not bt else fmt(bt["total"]["p50"], 2), "-" if not bt else fmt(bt["total"]["p90"], 2),
            "-" if not bt else fmt(bt["capacity_fps"]),
            "-" if trk is None else f"{trk['acquisitions']}/{trk['frame_sets']}",
            "-" if trk is None else fmt(trk["crops_per_frame_set"], 2),
            "-" if dtot is None else fmt(dtot["p50"], 2), "-" if dtot is None else fmt(dtot["p90"], 2),
            "-" if dr is None else fmt(dr["capacity_fps"]), "-" if ratio is None else f"{ratio:.2f}x",
        )  # fmt: skip
    console.print(t)
    console.print(
        f"[dim]skipped: frame sets processed untimed before the window ({SWEEP_WARMUP_CALLS} warm-up, then the "
        "acquisitions until both hands were tracked; * = not both tracked within --sweep-settle); n, tracked "
        "p50/p90/sets/s: the window's calls that began with both hands tracked (no detector); acq.: window calls "
        "where the detector ran (a hand lost in the window is acquired again); crops: per frame set; "
        "ratio: tracked / detect frame sets per second[/dim]"
    )
    for q in result.get("sweep_ratios") or []:
        w, h = q["resolution"]
        console.print(
            f"{w}x{h}, cost of {q['views'][0]} views / {q['views'][1]} views (p50 per frame set): tracked "
            f"[bold]{fmt(q['tracked'], 2)}x[/bold] (target <= 1.5x; {fmt(q['tracked_all_calls'], 2)}x over every "
            f"call of the window), detect every frame {fmt(q['detect_every_frame'], 2)}x"
        )
