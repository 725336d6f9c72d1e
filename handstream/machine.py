"""Describe the machine a measurement ran on (benchmarks record it next to every figure)."""

from __future__ import annotations

import datetime
import importlib.metadata
import os
import platform
from collections.abc import Iterable
from typing import Any


def describe_machine(packages: Iterable[str] = ()) -> dict[str, Any]:
    """CPU model, cores, platform, Python, the versions of ``packages`` (None if absent) and the date (UTC)."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        usable = os.cpu_count()
    info: dict[str, Any] = {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "cores_usable": usable,
        "platform": platform.platform(),
        "python": platform.python_version(),
    }
    for dist in packages:
        try:
            info[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            info[dist] = None
    info["date"] = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    return info
