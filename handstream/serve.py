"""``handstream serve``: plan the system from a config, start and supervise its processes, stop them cleanly.

::

    plan(config)            everything checked before a process starts: rig, sources, videos vs calibration,
                            model + manifest, endpoints (one clear line per problem); then the synthetic
                            cameras' loops rendered once (cached on disk; handstream.capture.material)
    Supervisor(plan).run()  engine process + one capture process per camera (``python -m handstream.engine``
                            / ``python -m handstream.capture``, arguments as JSON on stdin); restarts a
                            process that dies, with exponential backoff; prints a live status line from the
                            engine's ``status.*`` messages and the poses it sees; SIGINT/SIGTERM -> SIGTERM to
                            every child, SIGKILL after 1.5 s, so everything is gone within 2 s.

Children also stop by themselves when the supervisor disappears (``PR_SET_PDEATHSIG`` + a parent-pid check).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from handstream.config import ServeConfig, SourceConfig
from handstream.errors import HandstreamError
from handstream.geometry import Rig
from handstream.models.defaults import refiner_option
from handstream.poses import PoseMessage
from handstream.runtime import EXIT_USER_ERROR
from handstream.transport.messages import StatusMessage
from handstream.transport.pubsub import PoseSubscriber
from handstream.transport.security import curve_config

if TYPE_CHECKING:
    from handstream.capture.material import Progress

STOP_GRACE_S = 1.5  # SIGTERM, then SIGKILL after this: everything is gone within 2 s
RECORD_GRACE_S = 30.0  # the recorder, stopped last, writes out its queue and the manifest within this
ENGINE_GIVE_UP = 5  # consecutive engine failures, each within its first seconds, before serve gives up


@dataclass
class Plan:
    """A checked, ready-to-start system.

    Attributes:
        config: the validated config.
        rig: the cameras (metres).
        preset: the synthetic preset name, when the rig is one.
        sources: one resolved source spec per capture process (``SourceConfig`` as a dict, camera named,
            paths absolute; a cached synthetic source has ``loop_dir``, its rendered loop).
        fps: nominal camera rate (for the sync tolerance and the status line).
        epoch_ns: shared time origin of playback and synthetic sources.
        record: the folder ``serve --record`` writes the session to (None: no recording).
    """

    config: ServeConfig
    rig: Rig
    preset: str | None
    sources: list[dict[str, Any]]
    fps: float
    epoch_ns: int = field(default_factory=time.time_ns)
    record: str | None = None


def _load_rig(config: ServeConfig) -> tuple[Rig, str | None, float | None]:
    r = config.rig
    if r.preset is not None:
        from handstream.synth.rigs import get_preset

        preset = get_preset(r.preset)
        rig = preset.rig
        if r.cameras:
            rig = _subset(rig, r.cameras, f"rig preset {r.preset!r}")
        return rig, r.preset, preset.fps
    from handstream.geometry.io import load_calibration

    path = config.resolve(r.calibration)
    rig = load_calibration(path, r.unit_scale)
    if r.cameras:
        rig = _subset(rig, r.cameras, path)
    return rig, None, None


def _subset(rig: Rig, names: list[str], where: str) -> Rig:
    missing = [n for n in names if n not in rig.names]
    if missing:
        raise HandstreamError(f"{where}: no camera named {missing[0]!r} (cameras: {', '.join(rig.names)})")
    return rig.subset(names)


def _check_source(spec: dict[str, Any], rig: Rig, where: str) -> float | None:
    """Open file sources once: they must exist and match their camera's calibrated size. Returns their fps."""
    import cv2

    kind, cam = spec["kind"], rig[spec["camera"]]
    if kind == "video":
        from handstream.capture.sources import VideoSource

        src = VideoSource(spec["path"], cam.name, spec.get("fps"), realtime=False)
        try:
            frame = src.read()
        finally:
            src.close()
        if frame is None:
            raise HandstreamError(f"{where}: {spec['path']}: the video has no frames")
        size = (frame.image.shape[1], frame.image.shape[0])
        fps = src.fps
    elif kind == "images":
        from handstream.capture.sources import ImageFolderSource

        src = ImageFolderSource(spec["path"], cam.name, spec.get("fps"), realtime=False)
        img = cv2.imread(str(src.files[0]), cv2.IMREAD_UNCHANGED)
        if img is None:
            raise HandstreamError(f"{where}: {src.files[0]}: cannot read as an image")
        size, fps = (img.shape[1], img.shape[0]), src.fps
    else:
        return spec.get("fps")
    if size != cam.size:
        raise HandstreamError(
            f"{where}: {spec['path']} is {size[0]}x{size[1]} but camera {cam.name!r} is calibrated at "
            f"{cam.size[0]}x{cam.size[1]}"
        )
    return fps


def _render_loops(preset: str, specs: list[dict[str, Any]], progress) -> None:
    """Give each cached synthetic source its camera's loop (``loop_dir``), rendering what is not cached."""
    from handstream.capture.material import synthetic_loops
    from handstream.capture.sources import synthetic_preset

    groups: dict[tuple, list[dict[str, Any]]] = {}
    for spec in specs:
        if spec["kind"] == "synthetic" and spec["render"] == "cached":
            groups.setdefault((spec["seed"], spec["fps"], spec["loop_frames"]), []).append(spec)
    for (seed, fps, frames), group in groups.items():
        cameras = [s["camera"] for s in group]
        folders = synthetic_loops(synthetic_preset(preset, fps), cameras, seed, frames, progress=progress)
        for s in group:
            s["loop_dir"] = str(folders[s["camera"]])


def _check_record_dir(record: str | Path) -> str:
    """``--record DIR``: a new or empty folder that can be written."""
    path = Path(record).expanduser().resolve()
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise HandstreamError(f"--record: {path} exists and is not an empty folder (a recording needs a new one)")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise HandstreamError(f"--record: cannot create {path} ({exc.strerror})") from None
    if not os.access(path, os.W_OK):
        raise HandstreamError(f"--record: {path} is not writable")
    return str(path)


def _replay_origin(specs: list[dict[str, Any]]) -> None:
    """Sources that play recorded times (``timestamps``) share one origin: the earliest recorded frame."""
    stamped = [s for s in specs if s.get("timestamps")]
    if not stamped:
        return
    from handstream.capture.recorder import read_timestamps

    t0 = min(int(read_timestamps(s["timestamps"])[1][0]) for s in stamped)
    for s in stamped:
        s["t0_ns"] = t0


def plan(config: ServeConfig, *, progress: Progress | None = None, record: str | Path | None = None) -> Plan:
    """Check everything a start needs and resolve the sources (see :class:`Plan`); last, render the loops
    of cached synthetic cameras that are not cached yet (``progress`` hears how it goes; seconds, once).
    ``record``: the folder to record the session to (new or empty)."""
    rig, preset, preset_fps = _load_rig(config)
    specs = [asdict(s) for s in config.sources]
    if not specs:
        if preset is None:
            raise HandstreamError("no sources: give --video/--images/--device per camera, or [[sources]] in the config")
        specs = [asdict(SourceConfig(kind="synthetic", camera=name)) for name in rig.names]
    used: set[str] = set()
    fps_seen: list[float] = []
    for i, spec in enumerate(specs):
        where = f"sources[{i}]"
        if spec["camera"] is None:
            if i >= len(rig):
                raise HandstreamError(f"{where}: more sources ({len(specs)}) than cameras in the rig ({len(rig)})")
            spec["camera"] = rig.names[i]
        if spec["camera"] not in rig.names:
            raise HandstreamError(
                f"{where}.camera: no camera {spec['camera']!r} in the rig (cameras: {', '.join(rig.names)})"
            )
        if spec["camera"] in used:
            raise HandstreamError(f"{where}.camera: camera {spec['camera']!r} has two sources")
        used.add(spec["camera"])
        if spec["kind"] == "synthetic" and preset is None:
            raise HandstreamError(
                f"{where}: a synthetic source needs rig.preset (a synthetic rig), not a calibration file"
            )
        for key in ("path", "timestamps"):
            if spec.get(key):
                spec[key] = config.resolve(spec[key])
        fps = _check_source(spec, rig, where)
        if spec["kind"] == "synthetic":
            fps = spec.get("fps") or preset_fps
        if fps:
            fps_seen.append(float(fps))
    if len(specs) < 2:
        raise HandstreamError(f"{len(specs)} camera source(s): triangulation needs at least 2 cameras")
    _replay_origin(specs)
    from handstream.models.manifest import load_manifest

    model = Path(config.resolve(config.model.path))
    if model.suffix == ".onnx" or model.suffix == ".json" or model.suffix in (".engine", ".plan", ".trt"):
        if not model.exists() and model.name == "handstream-default.onnx":
            raise HandstreamError(
                f"{model}: the default model is missing from this checkout (engines/ should ship it); pass --model"
            )
        if load_manifest(model)[0].crop is not None:
            raise HandstreamError(
                f"{model}: model.path is a refiner (its manifest has a 'crop' rule); give it as model.refiner"
            )
    elif not model.is_file():
        raise HandstreamError(f"{model}: model not found")
    value = config.model.refiner or "none"
    if value.lower() not in ("default", "none"):
        value = config.resolve(value)
    # "default": the detector's own, or the shipped one for the engine's path (crop model / window refiner)
    refiner = refiner_option(value, model, where="model.refiner", tracking=config.engine.tracking)
    config.model.refiner = str(refiner) if refiner else ""  # what the engine process opens
    # a .pt checkpoint's recipe says what it is when the engine loads it; a manifest says it here
    if refiner is not None and refiner.suffix != ".pt" and load_manifest(refiner)[0].crop is None:
        raise HandstreamError(
            f"{refiner}: model.refiner is a detector (its manifest has no 'crop' rule); "
            "train a refiner with a [hand_crop] recipe"
        )
    if config.model.palm_detector:  # a bad file: one line now, not an engine that exits at its start
        from handstream.models.palm import PalmDetector

        config.model.palm_detector = config.resolve(config.model.palm_detector)
        PalmDetector(config.model.palm_detector)  # manifest, ONNX file and session: each a one-line error
        searching = refiner is not None and refiner.suffix != ".pt" and config.engine.tracking
        searching = searching and config.engine.acquire != "detector" and load_manifest(refiner)[0].kind == "landmarks"
        if not searching:
            raise HandstreamError(
                "model.palm_detector: it places the windows of acquisition by search: needs engine.tracking, a "
                "landmarks crop model as model.refiner (MediaPipe's imported network) and engine.acquire auto or search"
            )
    curve_config(config.endpoints.curve_dir)
    fps = config.engine.fps or (min(fps_seen) if fps_seen else 30.0)
    record_dir = _check_record_dir(record) if record is not None else None
    if preset is not None:
        _render_loops(preset, specs, progress)
    return Plan(config, rig, preset, specs, float(fps), record=record_dir)


# --- supervision --------------------------------------------------------------------------------------


def _recorded_poses(timestamps: str) -> str | None:
    """The poses of the recording a ``timestamps`` table belongs to (``DIR/frames/<camera>/timestamps.csv``
    -> ``DIR/poses.jsonl``), or None when the table is not in a recording."""
    from handstream.capture.recorder import POSES, is_recording

    root = Path(timestamps).resolve().parent.parent.parent
    return str(root / POSES) if is_recording(root) and (root / POSES).is_file() else None


@dataclass
class _Child:
    name: str
    module: str
    args: dict[str, Any]
    proc: subprocess.Popen | None = None
    started: float = 0.0
    failures: int = 0
    restart_at: float | None = None
    finished: bool = False
    restarts: int = 0


@dataclass
class LiveStats:
    """What the status line shows, from the supervisor's own subscription to the pose socket."""

    poses: deque = field(default_factory=lambda: deque(maxlen=2000))  # (receive monotonic, latency ms)
    engine: dict[str, Any] = field(default_factory=dict)
    captures: dict[str, dict[str, Any]] = field(default_factory=dict)

    def add_pose(self, msg: PoseMessage) -> None:
        self.poses.append((time.monotonic(), (time.time_ns() - msg.t_capture_ns) * 1e-6))

    def line(self, cameras: list[str]) -> str:
        now = time.monotonic()
        recent = [lat for t, lat in self.poses if now - t <= 2.0]
        rate = len(recent) / 2.0
        fps = " ".join(f"{c[-8:]}:{self.captures.get(c, {}).get('fps', 0):.0f}" for c in cameras)
        lat = (
            f"p50 {np.percentile(recent, 50):.1f} p99 {np.percentile(recent, 99):.1f} ms"
            if recent
            else "p50 - p99 - ms"
        )
        dropped = sum(int(s.get("dropped", 0)) for s in self.captures.values())
        recv = self.engine.get("receiver", {})
        sync = self.engine.get("sync", {})
        dropped += (
            sum(int(v) for v in recv.get("dropped", {}).values())
            + int(sync.get("stale", 0))
            + int(sync.get("unmatched", 0))
        )
        return f"fps {fps} | poses {rate:.1f}/s | latency {lat} | drops {dropped}"


class Supervisor:
    """Starts, watches, restarts and stops the processes of a :class:`Plan`.

    Args:
        plan: the checked system.
        on_status: called with one status line about twice a second (None: quiet).
        seconds: stop after this long (None: until a signal, or until every playback source ended).
        bridges: ``(kind, options)`` per bridge child (:mod:`handstream.bridges`; an ``lsl`` bridge without a
            ``rate`` gets the camera rate).
    """

    def __init__(
        self,
        plan: Plan,
        on_status: Callable[[str], None] | None = None,
        seconds: float | None = None,
        bridges: Sequence[tuple[str, dict[str, Any]]] = (),
    ):
        self.plan = plan
        self.on_status = on_status
        self.seconds = seconds
        self.stats = LiveStats()
        self._stop = False
        cfg = plan.config
        parent = os.getpid()
        engine_args = {
            "config": cfg.to_dict(),
            "rig": [cam.to_dict() for cam in plan.rig],
            "fps": plan.fps,
            "parent_pid": parent,
        }
        self.children = [_Child("engine", "handstream.engine", engine_args)]
        self._tmp = tempfile.mkdtemp(prefix="hs-serve-")  # the recorder's socket, the lock-step barrier
        self._recorder_ready: str | None = None
        record_endpoint = None
        if plan.record is not None:  # first: its socket is bound before a capture sends (handstream.record)
            record_endpoint = f"ipc://{self._tmp}/record.sock"
            self._recorder_ready = f"{self._tmp}/recorder-ready"  # the recorder hears the engine: captures go
            rec_args = {"root": plan.record, "config": cfg.to_dict(), "rig": engine_args["rig"], "fps": plan.fps,
                        "sources": plan.sources, "record_endpoint": record_endpoint, "parent_pid": parent,
                        "ready_file": self._recorder_ready}  # fmt: skip
            self.children.insert(0, _Child("recorder", "handstream.record", rec_args))
        for spec in plan.sources:
            args = {
                "source": spec,
                "endpoint": cfg.endpoints.frames,
                "preset": plan.preset,
                "epoch_ns": plan.epoch_ns,
                "curve_dir": cfg.endpoints.curve_dir,
                "parent_pid": parent,
                "record_endpoint": record_endpoint,
            }
            if spec.get("timestamps"):  # a replay: cameras start together; --fast: one frame set at a time
                args["lockstep"] = {"poses_endpoint": cfg.endpoints.poses, "barrier_dir": f"{self._tmp}/barrier",
                                    "cameras": [s["camera"] for s in plan.sources],
                                    "tolerance_ns": int(0.5e9 / plan.fps),
                                    "timestamps": [s["timestamps"] for s in plan.sources],
                                    "poses": _recorded_poses(spec["timestamps"]),
                                    "step": not spec.get("realtime", True)}  # fmt: skip
            self.children.append(_Child(f"capture-{spec['camera']}", "handstream.capture", args))
        for i, (kind, options) in enumerate(bridges):  # python -m handstream.bridges: see handstream.bridges
            if kind == "lsl" and not options.get("rate"):
                options = {**options, "rate": plan.fps}
            args = {"kind": kind, "options": options, "endpoint": cfg.endpoints.poses,
                    "curve_dir": cfg.endpoints.curve_dir, "parent_pid": parent}  # fmt: skip
            name = f"bridge-{kind}" + (f"-{i}" if sum(k == kind for k, _ in bridges) > 1 else "")
            self.children.append(_Child(name, "handstream.bridges", args))

    # -- processes ---------------------------------------------------------------------------------

    def _spawn(self, child: _Child) -> None:
        child.proc = subprocess.Popen(
            [sys.executable, "-m", child.module], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
        )
        assert child.proc.stdin is not None
        child.proc.stdin.write(json.dumps(child.args) + "\n")
        child.proc.stdin.close()
        child.started = time.monotonic()
        child.restart_at = None

    def pids(self) -> dict[str, int]:
        """Current process ids by child name (for tests and tools)."""
        return {c.name: c.proc.pid for c in self.children if c.proc is not None and c.proc.poll() is None}

    def _watch(self) -> int | None:
        """Restart what died; returns an exit code when serve should end."""
        sv = self.plan.config.supervisor
        now = time.monotonic()
        for child in self.children:
            if child.finished:
                continue
            if child.proc is None:
                if child.restart_at is not None and now >= child.restart_at:
                    self._spawn(child)
                    child.restarts += 1
                continue
            code = child.proc.poll()
            if code is None:
                if now - child.started >= sv.stable_s:
                    child.failures = 0
                continue
            child.proc = None
            if code == 0 and child.module == "handstream.capture":
                child.finished = True  # the video / image folder ended
                continue
            if child.module == "handstream.record":  # not restarted: a second one would start the files again
                child.finished = True
                print(f"handstream serve: error: the recorder exited with code {code}", file=sys.stderr)
                continue
            if child.module == "handstream.bridges" and (code == EXIT_USER_ERROR or not sv.restart):
                child.finished = True  # a bridge's own error (e.g. its port): say so, keep the engine serving
                print(f"handstream serve: {child.name} exited with code {code}; not restarted", file=sys.stderr)
                continue
            ran = now - child.started
            if child.name == "engine" and code == EXIT_USER_ERROR and child.restarts == 0 and ran < sv.stable_s:
                # its own one-line error at its first start (a model ONNX Runtime cannot load, ...): a restart
                # would print it again, and a short --seconds or a finite video would then end serve with 0
                print("handstream serve: error: the engine stopped at its start (see above); not restarted",
                      file=sys.stderr)
                return EXIT_USER_ERROR
            child.failures = child.failures + 1 if ran < sv.stable_s else 1
            if child.name == "engine" and child.failures >= ENGINE_GIVE_UP and ran < 5.0:
                print(
                    f"handstream serve: error: the engine failed {child.failures} times in a row; giving up",
                    file=sys.stderr,
                )
                return 2
            if not sv.restart:
                print(f"handstream serve: error: {child.name} exited with code {code}", file=sys.stderr)
                return 1
            delay = min(sv.backoff_s * 2 ** (child.failures - 1), sv.backoff_max_s)
            child.restart_at = now + delay
            print(
                f"handstream serve: {child.name} exited with code {code}; restarting in {delay:.1f} s",
                file=sys.stderr,
                flush=True,
            )
        captures = [c for c in self.children if c.module == "handstream.capture"]
        if captures and all(c.finished for c in captures):
            return 0
        return None

    def _wait_for_recorder(self, timeout_s: float = 30.0) -> None:
        """``--record``: the captures start once the recorder hears the engine (its first status), so the
        recording has the engine's first pose too (a subscriber that connects late misses what came before)."""
        t0 = time.monotonic()
        while not self._stop and not os.path.exists(self._recorder_ready) and time.monotonic() - t0 < timeout_s:
            time.sleep(0.05)
        self._recorder_ready = None  # once

    def stop(self) -> None:
        """Ask the run loop to end (safe from a signal handler)."""
        self._stop = True

    def _terminate_all(self) -> None:
        # the recorder last, and given longer: it records until the others are gone, then writes out its queue
        recorder = [c for c in self.children if c.module == "handstream.record"]
        others = [c for c in self.children if c.module != "handstream.record"]
        for group, grace in ((others, STOP_GRACE_S), (recorder, RECORD_GRACE_S)):
            procs = [c.proc for c in group if c.proc is not None and c.proc.poll() is None]
            for p in procs:
                try:
                    p.send_signal(signal.SIGTERM)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + grace
            for p in procs:
                try:
                    p.wait(timeout=max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(timeout=1.0)
        for c in self.children:
            c.proc = None
        shutil.rmtree(self._tmp, ignore_errors=True)

    # -- the loop ----------------------------------------------------------------------------------

    def run(self) -> int:
        """Start everything and supervise until stopped; returns the exit code."""
        cfg = self.plan.config
        sub = PoseSubscriber(cfg.endpoints.poses, curve=curve_config(cfg.endpoints.curve_dir), status=True)
        code: int | None = None
        t0 = time.monotonic()
        t_line = t0
        try:
            for child in self.children:
                if child.module == "handstream.capture" and self._recorder_ready is not None:
                    self._wait_for_recorder()
                self._spawn(child)
            while not self._stop:
                msg = sub.recv(timeout_ms=50)
                while msg is not None:
                    if isinstance(msg, PoseMessage):
                        self.stats.add_pose(msg)
                    elif isinstance(msg, StatusMessage):
                        if msg.process == "engine":
                            self.stats.engine = msg.data
                        elif "camera" in msg.data:
                            self.stats.captures[str(msg.data["camera"])] = msg.data
                    msg = sub.recv(timeout_ms=0)
                code = self._watch()
                if code is not None:
                    if code == 0:
                        time.sleep(0.3)  # let the engine finish the last frame set
                    break
                now = time.monotonic()
                if self.on_status is not None and now - t_line >= 0.5:
                    self.on_status(self.stats.line(list(self.plan.rig.names)))
                    t_line = now
                if self.seconds is not None and now - t0 >= self.seconds:
                    break
        finally:
            self._terminate_all()
            sub.close()
        return 0 if code is None else code


def serve(
    config: ServeConfig,
    *,
    seconds: float | None = None,
    on_status: Callable[[str], None] | None = None,
    on_start: Callable[[Plan], None] | None = None,
    progress: Progress | None = None,
    bridges: Sequence[tuple[str, dict[str, Any]]] = (),
    record: str | Path | None = None,
) -> int:
    """Plan, start and supervise the system until SIGINT/SIGTERM (or ``seconds``); returns the exit code.
    ``on_start(plan)`` is called once everything has been checked, before any process starts; ``progress``
    hears how the render of synthetic loops goes (:func:`plan`); ``record``: a new or empty folder the session is
    recorded to (:mod:`handstream.record`); ``bridges`` are ``(kind, options)`` pairs, each
    started as a supervised child (``python -m handstream.bridges``, restarted like the captures; one that exits
    with code 2 is not restarted and never stops the engine)."""
    def interrupt(*_) -> None:
        raise KeyboardInterrupt

    before = signal.signal(signal.SIGTERM, interrupt)  # while plan() renders: stop it, clean up after it
    try:
        p = plan(config, progress=progress, record=record)
    finally:
        signal.signal(signal.SIGTERM, before)
    if on_start is not None:
        on_start(p)
    sup = Supervisor(p, on_status=on_status, seconds=seconds, bridges=bridges)
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    for s in previous:
        signal.signal(s, lambda *_: sup.stop())
    try:
        return sup.run()
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
