"""The latency benchmark: the live system end to end, the same pipeline in-process, a sweep, a peer.

``handstream bench`` and ``benchmarks/latency.py`` both call :func:`~handstream.bench.run.run_bench`. One invocation:

1. **frames**: synthetic frame sets rendered once before anything is timed (a rig of ``cameras`` views at
   ``resolution``, built from a preset by :func:`bench_rig`), or the first frames of recorded videos;
2. **live**: the real system (:class:`handstream.serve.Supervisor`: one capture process per camera playing
   those frames at ``fps`` from files, the engine process, ZeroMQ sockets) and a subscriber in this process.
   After ``warmup`` seconds it records, per pose, the end-to-end latency (receive time - capture time) and
   every stage (``PoseMessage.timings`` + transport out = receive - publish time); the status messages give
   the drops, by place; ``/proc`` (or psutil) gives CPU and memory per process;
3. **in-process**: :class:`handstream.engine.pipeline.Pipeline` on the same frames, paced at ``fps``, no
   sockets, no other process: live minus in-process is the transport's share, measured side by side; both
   engine paths (tracked, detect every frame), the live run's first, side by side with their ratio;
4. optional **sweep** over views (2, 4, 8) x resolutions (in-process, back to back, both paths, the tracked
   one once both hands are tracked), and the **MediaPipe** hand landmarker (VIDEO mode, one landmarker per
   view, views one after the other);
5. the report: a dict (written as JSON with :func:`handstream.machine.describe_machine`), a terminal
   table (:func:`print_report`) and a PNG (:func:`write_png`).

Modules, in the order of a run: :mod:`~handstream.bench.options` (the options, checked; stage names),
:mod:`~handstream.bench.inputs` (rig, model), :mod:`~handstream.bench.live`, :mod:`~handstream.bench.inprocess`
(both paths, the sweep), :mod:`~handstream.bench.peers` (MediaPipe), :mod:`~handstream.bench.report` (targets,
JSON, PNG, tables); :mod:`~handstream.bench.measure` (summaries, counters, CPU/memory) under them all and
:mod:`~handstream.bench.run` (:func:`run_bench`) over them.

Units: every time is in milliseconds (``*_ms``) unless named ``*_ns`` / ``*_s``; memory in MiB; CPU in
percent of one core (200 = two cores busy). Nothing here asserts a speed: targets are reported as met or not.
"""

from handstream.bench.inputs import bench_rig, resolve_model
from handstream.bench.live import drops_from_status, run_live
from handstream.bench.measure import ProcessMonitor, summarize
from handstream.bench.options import LIVE_STAGES, PIPELINE_STAGES, BenchOptions, parse_resolution
from handstream.bench.report import print_report, write_png
from handstream.bench.run import run_bench

__all__ = [
    "LIVE_STAGES",
    "PIPELINE_STAGES",
    "BenchOptions",
    "ProcessMonitor",
    "bench_rig",
    "drops_from_status",
    "parse_resolution",
    "print_report",
    "resolve_model",
    "run_bench",
    "run_live",
    "summarize",
    "write_png",
]
