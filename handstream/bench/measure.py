"""Measurement helpers: summaries of samples (ms), counters between two status snapshots, CPU and memory of processes
(``/proc`` or psutil), the load of other processes.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


def summarize(values: Sequence[float] | np.ndarray) -> dict[str, float | int | None]:
    """``n``, ``mean``, ``p50``, ``p90``, ``p99``, ``max``, ``min`` of finite values (None when there are none)."""
    a = np.asarray(values, dtype=float)
    a = a[np.isfinite(a)]
    if a.size == 0:
        return {"n": 0, "mean": None, "p50": None, "p90": None, "p99": None, "max": None, "min": None}
    p50, p90, p99 = np.percentile(a, [50, 90, 99])
    return {
        "n": int(a.size),
        "mean": round(float(a.mean()), 4),
        "p50": round(float(p50), 4),
        "p90": round(float(p90), 4),
        "p99": round(float(p99), 4),
        "max": round(float(a.max()), 4),
        "min": round(float(a.min()), 4),
    }


def free_tcp_port() -> int:
    """A free port on 127.0.0.1 (the OS's choice)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def process_sample(pid: int) -> dict[str, float] | None:
    """CPU time (``cpu_s``, user + system, s) and resident memory (``rss_mb``, MiB) of a process, from psutil
    when installed, else ``/proc/<pid>/stat`` and ``/proc/<pid>/status``; None when it is gone/unreadable."""
    try:
        import psutil  # optional
    except ImportError:
        psutil = None
    if psutil is not None:
        try:
            p = psutil.Process(pid)
            t = p.cpu_times()
            return {"cpu_s": float(t.user + t.system), "rss_mb": p.memory_info().rss / 2**20}
        except psutil.Error:
            return None
    try:
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        cpu = (int(stat[11]) + int(stat[12])) / _TICK  # fields 14, 15: utime, stime
        rss = 0.0
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) / 1024.0
                break
        return {"cpu_s": cpu, "rss_mb": rss}
    except (OSError, IndexError, ValueError):
        return None


def machine_cpu_sample() -> tuple[float, float] | None:
    """(busy, total) CPU seconds of the whole machine since boot, all cores (``/proc/stat``); None if unavailable."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError, IndexError):
        return None
    total = sum(fields[:8])  # user nice system idle iowait irq softirq steal (guest is inside user)
    idle = fields[3] + fields[4]
    return (total - idle) / _TICK, total / _TICK


class ProcessMonitor:
    """CPU% and RSS of named processes over a window: :meth:`start`, :meth:`sample` (every ~0.5 s), :meth:`stop`."""

    def __init__(self) -> None:
        self.first: dict[str, tuple[int, dict[str, float], float]] = {}
        self.last: dict[str, tuple[int, dict[str, float], float]] = {}
        self.rss: dict[str, list[float]] = {}
        self.machine0: tuple[float, float] | None = None
        self.machine1: tuple[float, float] | None = None
        self.restarted: set[str] = set()

    def sample(self, pids: dict[str, int]) -> None:
        now = time.monotonic()
        for name, pid in pids.items():
            s = process_sample(pid)
            if s is None:
                continue
            if name not in self.first:
                self.first[name] = (pid, s, now)
            elif self.first[name][0] != pid:
                self.restarted.add(name)
                self.first[name] = (pid, s, now)
            self.last[name] = (pid, s, now)
            self.rss.setdefault(name, []).append(s["rss_mb"])

    def start(self, pids: dict[str, int]) -> None:
        self.machine0 = machine_cpu_sample()
        self.sample(pids)

    def stop(self, pids: dict[str, int]) -> None:
        self.sample(pids)
        self.machine1 = machine_cpu_sample()

    def report(self) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
        """(per process: pid, cpu_percent (of one core), rss_mb_mean, rss_mb_max, window_s; machine: busy
        cores, cores busy with other work)."""
        procs: dict[str, dict[str, Any]] = {}
        ours = 0.0
        for name, (_, s0, t0) in self.first.items():
            pid1, s1, t1 = self.last[name]
            dt = t1 - t0
            cpu = 100.0 * (s1["cpu_s"] - s0["cpu_s"]) / dt if dt > 0 else None
            ours += (cpu or 0.0) / 100.0
            rss = self.rss.get(name, [])
            procs[name] = {
                "pid": pid1,
                "cpu_percent": None if cpu is None else round(cpu, 1),
                "rss_mb_mean": round(float(np.mean(rss)), 1) if rss else None,
                "rss_mb_max": round(float(np.max(rss)), 1) if rss else None,
                "window_s": round(dt, 2),
                "restarted": name in self.restarted,
            }
        machine: dict[str, Any] = {"busy_cores": None, "other_busy_cores": None}
        if self.machine0 and self.machine1:
            busy = self.machine1[0] - self.machine0[0]
            total = self.machine1[1] - self.machine0[1]
            cores = os.cpu_count() or 1
            if total > 0:
                busy_cores = cores * busy / total
                machine = {
                    "busy_cores": round(busy_cores, 2),
                    "other_busy_cores": round(max(0.0, busy_cores - ours), 2),
                }
        return procs, machine


def other_load_now(seconds: float = 1.0) -> float | None:
    """Cores busy on this machine over ``seconds`` (nothing of ours running): the background load."""
    a = machine_cpu_sample()
    time.sleep(seconds)
    b = machine_cpu_sample()
    if a is None or b is None or b[1] <= a[1]:
        return None
    return round((os.cpu_count() or 1) * (b[0] - a[0]) / (b[1] - a[1]), 2)


def counter_delta(a: Any, b: Any) -> Any:
    """b - a for nested dicts of counters (keys missing in ``a`` count from 0)."""
    if isinstance(b, dict):
        a = a if isinstance(a, dict) else {}
        return {k: counter_delta(a.get(k), v) for k, v in b.items()}
    if isinstance(b, (int, float)) and not isinstance(b, bool):
        return b - (a if isinstance(a, (int, float)) and not isinstance(a, bool) else 0)
    return b


def tracking_delta(a: dict[str, Any] | None, b: dict[str, Any] | None) -> dict[str, Any] | None:
    """The tracker's counters (``TrackStats.as_dict()``) between two snapshots ``a`` -> ``b``, rates recomputed
    over that span (``a`` None: since start); None when ``b`` is None (no tracker)."""
    if b is None:
        return None
    d = counter_delta(a or {}, b)
    n = max(int(d.get("frame_sets", 0)), 1)
    d["acquisition_rate"] = round(d.get("acquisitions", 0) / n, 4)
    d["crops_per_frame_set"] = round(d.get("crops", 0) / n, 3)
    return d


def fmt(v: Any, digits: int = 1) -> str:
    return "-" if v is None else f"{v:.{digits}f}"
