"""Frame material: frames made before a run, so that capture processes play them instead of rendering or
decoding them live.

* :class:`FrameSets`, :func:`render_frames`, :func:`read_video_frames`: frame sets held in memory (the
  benchmark's material: ``handstream bench`` renders or decodes them once, then times the system on them).
* :func:`write_image_folders`: frame sets -> one folder of lossless PGM (mono) / PPM (BGR) files per
  camera, which ``images`` sources play in a loop (netpbm decoding is a copy, so a capture costs about
  what a camera driver does).
* :func:`synthetic_loops`: the seamless loop of a synthetic rig that ``handstream serve --demo`` plays,
  rendered once per camera into the same kind of folder and cached on disk (below).

The synthetic loop cache
------------------------
Each camera's loop is one folder ``$HANDSTREAM_CACHE/loops/<preset>/<camera>-<w>x<h>-seed<s>-<n>f-<fps>fps-<digest>``
(``$HANDSTREAM_CACHE`` defaults to ``~/.cache/handstream``) with ``00000.pgm`` ... and a ``manifest.json``
written last. The digest covers everything the pixels depend on (:func:`loop_key`: the camera's calibration,
the preset's fps, colour and workspace, the seed, the frame count, and the renderer's version: a digest
of the renderer's source files and numpy's version), so a changed renderer renders again and replaces
the loop it made before. A folder is used only when its manifest matches and every frame file has
its exact size and the first and last have a valid header (:func:`check_loop`); anything else (a
truncated file, a render that was interrupted, a garbled manifest) is rendered again, never fatal. A
render goes to a ``.partial-<pid>`` folder first and is renamed into place when complete, so two
``serve`` starting at once cannot see half a loop.

The frames are those of :func:`handstream.synth.generator.camera_generator` with ``loop_frames``: the
images a capture process rendering that camera live would make, byte for byte.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from handstream.errors import HandstreamError

DEFAULT_LOOP_FRAMES = 300
"""Frames of the synthetic loop ``serve`` plays by default (10 s at the presets' 30 fps)."""

LOOP_FORMAT = "handstream-synthetic-loop"
LOOP_VERSION = 1
MANIFEST = "manifest.json"
_RENDERER_SOURCES = (
    "synth/generator.py", "synth/motion.py", "synth/hand.py", "synth/render.py", "synth/raster.py",
    "synth/scene.py", "synth/rigs.py", "geometry/camera.py",
)  # fmt: skip
"""Files whose code decides the pixels of a synthetic frame (relative to the package): their digest is
the renderer version of :func:`loop_key`."""

Progress = Callable[[int, int, str], None]
"""``progress(done, total, what)``: frames rendered so far of ``total`` (camera frames), and one line saying
what is rendered where. Called with ``done = 0`` first and ``done = total`` last."""


# --- frame sets in memory (the benchmark's material) ---------------------------------------------------


@dataclass
class FrameSets:
    """Frame sets held in memory.

    Attributes:
        cameras: camera names, view order.
        images: ``images[i][v]``: frame set ``i``, view ``v``: (h, w) uint8 mono or (h, w, 3) uint8 BGR.
        fps: the rate they were captured / rendered at, frames/s.
    """

    cameras: list[str]
    images: list[list[np.ndarray]]
    fps: float

    def __len__(self) -> int:
        return len(self.images)

    def frames(self, i: int) -> dict[str, np.ndarray]:
        """Frame set ``i % len(self)`` as camera -> image."""
        return dict(zip(self.cameras, self.images[i % len(self.images)], strict=True))


def render_frames(preset, count: int, seed: int = 0) -> FrameSets:
    """``count`` consecutive synthetic frame sets of a rig preset (rendered, not timed)."""
    from handstream.synth.source import SyntheticSource

    src = SyntheticSource(preset, seed, realtime=False)
    images = [list(src.read().images) for _ in range(count)]
    return FrameSets(list(src.cameras), images, src.fps)


def read_video_frames(paths: Sequence[str | Path], cameras: Sequence[str], count: int) -> FrameSets:
    """The first ``count`` frames of each video (fewer when a video is shorter: all are cut to the shortest)."""
    per_cam, fps = [], 30.0
    for p in paths:
        cap = cv2.VideoCapture(str(p), cv2.CAP_FFMPEG)
        if not cap.isOpened():
            raise HandstreamError(f"--video: {p}: cannot open as a video")
        f = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        fps = f if 0 < f <= 1000 else fps
        frames = []
        while len(frames) < count:
            ok, img = cap.read()
            if not ok:
                break
            frames.append(img)
        cap.release()
        if not frames:
            raise HandstreamError(f"--video: {p}: the video has no frames")
        per_cam.append(frames)
    n = min(len(f) for f in per_cam)
    return FrameSets(list(cameras), [[f[i] for f in per_cam] for i in range(n)], fps)


def frame_file(folder: Path, index: int, image: np.ndarray) -> Path:
    """Where frame ``index`` of a camera goes in its folder: ``00042.pgm`` (mono) / ``00042.ppm`` (BGR)."""
    return folder / f"{index:05d}{'.pgm' if image.ndim == 2 else '.ppm'}"


def write_frame(folder: Path, index: int, image: np.ndarray) -> int:
    """Write one frame as :func:`frame_file` says; returns its size in bytes."""
    path = frame_file(folder, index, image)
    if not cv2.imwrite(str(path), image):
        raise HandstreamError(f"{folder}: cannot write frame files")
    return path.stat().st_size


def write_image_folders(frames: FrameSets, folder: Path) -> dict[str, Path]:
    """One folder of lossless PGM (mono) / PPM (BGR) files per camera: the captures read these in a loop
    (netpbm decoding is a copy, so a capture costs about what a camera driver does)."""
    out = {}
    for v, cam in enumerate(frames.cameras):
        d = folder / cam
        d.mkdir(parents=True, exist_ok=True)
        for i, imgs in enumerate(frames.images):
            write_frame(d, i, imgs[v])
        out[cam] = d
    return out


# --- the synthetic loop, cached on disk -----------------------------------------------------------------


def loop_cache_root() -> Path:
    """Where synthetic loops are cached: ``$HANDSTREAM_CACHE/loops`` (default ``~/.cache/handstream/loops``)."""
    return Path(os.environ.get("HANDSTREAM_CACHE") or "~/.cache/handstream").expanduser() / "loops"


@cache
def renderer_version() -> str:
    """A digest of the renderer's source files (:data:`_RENDERER_SOURCES`) and numpy's version: what makes
    the same scene give other pixels."""
    package = Path(__file__).resolve().parents[1]
    h = hashlib.sha256(f"numpy {np.__version__}".encode())
    for rel in _RENDERER_SOURCES:
        path = package / rel
        h.update(rel.encode())
        h.update(path.read_bytes() if path.is_file() else b"(missing)")
    return h.hexdigest()[:16]


def loop_key(preset, camera: str, seed: int, frames: int) -> dict[str, Any]:
    """Everything the pixels of one camera's loop depend on (plain data; equal keys, equal frames)."""
    cam = preset.rig[camera]
    ws = preset.workspace
    return {
        "format": LOOP_FORMAT,
        "version": LOOP_VERSION,
        "renderer": renderer_version(),
        "preset": preset.name,
        "camera": json.loads(json.dumps(cam.to_dict(), default=_plain)),
        "fps": float(preset.fps),
        "color": preset.color,
        "workspace": json.loads(json.dumps(dataclasses.asdict(ws), default=_plain)),
        "seed": int(seed),
        "frames": int(frames),
        "motion_blur": False,
    }


def _plain(x: Any) -> Any:
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, np.generic):
        return x.item()
    raise TypeError(f"not plain data: {type(x).__name__}")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(text)).strip("._")[-48:] or "rig"


def _stem(key: dict[str, Any]) -> str:
    """The readable part of a loop folder's name (the digest follows it)."""
    cam = key["camera"]
    w, h = cam["size"]
    return f"{_slug(cam['name'])}-{w}x{h}-seed{key['seed']}-{key['frames']}f-{key['fps']:g}fps"


def loop_folder(key: dict[str, Any], root: Path | None = None) -> Path:
    """The cache folder of a loop key (:func:`loop_key`)."""
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    return (root or loop_cache_root()) / _slug(key["preset"]) / f"{_stem(key)}-{digest}"


def _expected_bytes(key: dict[str, Any]) -> int:
    w, h = key["camera"]["size"]
    channels = 1 if key["color"] == "mono" else 3
    header = f"P{5 if channels == 1 else 6}\n{w} {h}\n255\n"
    return len(header) + w * h * channels


def check_loop(folder: Path, key: dict[str, Any]) -> str | None:
    """None when ``folder`` holds the complete loop of ``key``, else why not (one phrase)."""
    manifest = folder / MANIFEST
    if not manifest.is_file():
        return "no manifest (not rendered, or the render was interrupted)"
    try:
        data = json.loads(manifest.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return "unreadable manifest"
    if not isinstance(data, dict) or data.get("key") != key or not data.get("complete"):
        return "the manifest is for another loop"
    suffix = ".pgm" if key["color"] == "mono" else ".ppm"
    size = data.get("file_bytes")
    try:
        names = sorted(p.name for p in folder.iterdir() if p.suffix == suffix)
    except OSError:
        return "unreadable folder"
    if names != [f"{i:05d}{suffix}" for i in range(key["frames"])]:
        return f"{len(names)} of {key['frames']} frame files"
    for name in names:
        try:
            if (folder / name).stat().st_size != size:
                return f"{name} has the wrong size (truncated?)"
        except OSError:
            return f"{name} unreadable"
    for name in (names[0], names[-1]):
        img = cv2.imread(str(folder / name), cv2.IMREAD_UNCHANGED)
        w, h = key["camera"]["size"]
        if img is None or img.shape[:2] != (h, w):
            return f"{name} is not a {w}x{h} image"
    return None


def _write_manifest(folder: Path, key: dict[str, Any], file_bytes: int, seconds: float) -> None:
    data = {"key": key, "complete": True, "file_bytes": file_bytes, "render_seconds": round(seconds, 2),
            "written": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}  # fmt: skip
    (folder / MANIFEST).write_text(json.dumps(data, indent=1) + "\n")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _clean_partials(parent: Path) -> None:
    """Remove ``.partial-<pid>`` folders of renders whose process is gone."""
    if not parent.is_dir():
        return
    for p in parent.iterdir():
        m = re.search(r"\.partial-(\d+)$", p.name)
        if m and p.is_dir() and not _pid_alive(int(m.group(1))):
            shutil.rmtree(p, ignore_errors=True)


def _render_camera(preset, camera: str, seed: int, frames: int, folder: Path, tick: Callable[[], None]) -> int:
    """Render one camera's loop into ``folder`` (which exists); returns the size of each frame file."""
    from handstream.synth.generator import camera_generator

    gen = camera_generator(preset, camera, seed, loop_frames=frames)
    size = 0
    for i in range(frames):
        size = write_frame(folder, i, gen.frame(i).images[0])
        tick()
    return size


def _preset_to_dict(preset) -> dict[str, Any]:
    return {
        "name": preset.name,
        "rig": [json.loads(json.dumps(cam.to_dict(), default=_plain)) for cam in preset.rig],
        "fps": float(preset.fps),
        "color": preset.color,
        "workspace": json.loads(json.dumps(dataclasses.asdict(preset.workspace), default=_plain)),
        "description": preset.description,
    }


def _preset_from_dict(data: dict[str, Any]):
    from handstream.geometry import Camera, Rig
    from handstream.synth.rigs import RigPreset, Workspace

    ws = {k: tuple(tuple(x) if isinstance(x, list) else x for x in v) if isinstance(v, list) else v
          for k, v in data["workspace"].items()}  # fmt: skip
    rig = Rig([Camera.from_dict(c) for c in data["rig"]])
    return RigPreset(data["name"], rig, data["fps"], data["color"], Workspace(**ws), data["description"])


def render_main() -> None:
    """A render process (:func:`synthetic_loops` starts one per core): its arguments as one JSON object on
    stdin (``preset``, ``seed``, ``frames``, ``jobs``: [camera, folder] pairs, ``parent_pid``); renders its
    cameras one after the other and reports on stdout, one JSON object a line: ``{"frame": camera}``,
    ``{"done": camera, "bytes": n}``, or ``{"error": message}``."""
    import sys

    from handstream.runtime import child_main

    args = json.loads(sys.stdin.readline())

    def say(**msg: Any) -> None:
        sys.stdout.write(json.dumps(msg) + "\n")
        sys.stdout.flush()

    def body(stop) -> int:
        camera = ""

        def tick() -> None:
            if stop.is_set():  # SIGTERM from the parent, or the parent is gone
                raise KeyboardInterrupt
            say(frame=camera)

        try:
            preset = _preset_from_dict(args["preset"])
            for camera, folder in args["jobs"]:
                size = _render_camera(preset, camera, args["seed"], args["frames"], Path(folder), tick)
                say(done=camera, bytes=size)
        except (KeyboardInterrupt, BrokenPipeError):
            return 0
        except HandstreamError as exc:
            say(error=f"camera {camera!r}: {exc}")
            return 2
        except Exception as exc:  # noqa: BLE001 (the parent reports it in one line)
            say(error=f"camera {camera!r}: {type(exc).__name__}: {exc}")
            return 2
        return 0

    child_main("render", body, args.get("parent_pid"))


def _render_parallel(preset, todo: dict[str, Path], seed: int, frames: int, workers: int,
                     tick: Callable[[int], None], finish: Callable[[str, int], None]) -> None:  # fmt: skip
    """Render the cameras of ``todo`` in ``workers`` processes (``python -c ...render_main()``, arguments as
    JSON: no pickle, no re-import of the caller's main module); the cameras are split among them, so a
    camera's setup (its pixel rays and room, ~0.6 s) is paid once."""
    import selectors
    import subprocess
    import sys

    cams = list(todo)
    groups = [[[c, str(todo[c])] for c in cams[k::workers]] for k in range(workers)]
    code = "from handstream.capture.material import render_main; render_main()"
    procs: list[subprocess.Popen] = []
    sel = selectors.DefaultSelector()
    try:
        for g in groups:
            if not g:
                continue
            proc = subprocess.Popen(
                [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0,
                start_new_session=True,  # a Ctrl-C is the parent's to handle: it stops these
            )  # fmt: skip
            args = {"preset": _preset_to_dict(preset), "seed": int(seed), "frames": int(frames), "jobs": g,
                    "parent_pid": os.getpid()}  # fmt: skip
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.write((json.dumps(args) + "\n").encode())
            proc.stdin.close()
            procs.append(proc)
            sel.register(proc.stdout, selectors.EVENT_READ, bytearray())
        left = set(cams)
        open_pipes = len(procs)
        while left and open_pipes:
            for key, _ in sel.select(timeout=1.0):
                chunk = os.read(key.fd, 1 << 16)
                if not chunk:
                    sel.unregister(key.fileobj)
                    open_pipes -= 1
                    continue
                buf: bytearray = key.data
                buf += chunk
                *lines, rest = buf.split(b"\n")
                buf[:] = rest
                for line in lines:
                    msg = json.loads(line)
                    if "frame" in msg:
                        tick(1)
                    elif "done" in msg:
                        left.discard(msg["done"])
                        finish(msg["done"], int(msg["bytes"]))
                    elif "error" in msg:
                        raise HandstreamError(f"rendering the synthetic loop: {msg['error']}")
        if left:
            codes = ", ".join(str(p.wait()) for p in procs)
            raise HandstreamError(f"rendering the synthetic loop: a render process died (exit codes {codes})")
    finally:
        sel.close()
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            if p.stdout is not None:
                p.stdout.close()


def synthetic_loops(
    preset,
    cameras: Sequence[str] | None = None,
    seed: int = 0,
    frames: int = DEFAULT_LOOP_FRAMES,
    *,
    root: Path | None = None,
    progress: Progress | None = None,
    workers: int | None = None,
) -> dict[str, Path]:
    """The cached loop of each camera, rendered now where it is missing or damaged (see the module doc).

    Args:
        preset: the rig preset (:class:`~handstream.synth.rigs.RigPreset`, at the fps to play).
        cameras: camera names (None: all of the preset's).
        seed: the scene seed; ``frames``: frames of the loop (``frames / preset.fps`` seconds).
        root: the cache folder (None: :func:`loop_cache_root`).
        progress: told how the render goes (see :data:`Progress`); not called when everything is cached.
        workers: render processes (None: one per core, at most one per camera, and none for a small job).
    Returns:
        camera -> folder of ``frames`` frame files (``00000.pgm`` ...), in the order of ``cameras``.
    Raises:
        HandstreamError: the cache cannot be written (no space, no permission: one line naming the folder).
    """
    if isinstance(frames, bool) or not isinstance(frames, int | np.integer) or frames < 1:
        raise HandstreamError(f"synthetic loop: frames: expected a positive integer, got {frames!r}")
    frames = int(frames)
    cameras = list(preset.rig.names if cameras is None else cameras)
    keys = {c: loop_key(preset, c, seed, frames) for c in cameras}
    folders = {c: loop_folder(keys[c], root) for c in cameras}
    todo = {c: f for c, f in folders.items() if check_loop(f, keys[c]) is not None}
    if not todo:
        return folders
    parent = next(iter(todo.values())).parent
    need = sum(_expected_bytes(keys[c]) for c in todo) * frames
    try:
        parent.mkdir(parents=True, exist_ok=True)
        _clean_partials(parent)
        free = shutil.disk_usage(parent).free
    except OSError as exc:
        raise HandstreamError(
            f"{parent}: cannot create the synthetic loop cache ({exc.strerror}); set HANDSTREAM_CACHE to a "
            "writable folder, or render live (serve --live-render)"
        ) from None
    if free < need + (64 << 20):
        raise HandstreamError(
            f"{parent}: the synthetic loop needs {need / 2**20:.0f} MiB and {free / 2**20:.0f} MiB are free; set "
            "HANDSTREAM_CACHE to another folder, use fewer loop_frames, or render live (serve --live-render)"
        )
    total = len(todo) * frames
    w, h = preset.rig[cameras[0]].size
    what = (f"rendering the {preset.name} loop once ({len(todo)} camera{'s' * (len(todo) > 1)} x {frames} frames, "
            f"{frames / preset.fps:g} s at {preset.fps:g} fps, {w}x{h}) into {parent}")  # fmt: skip
    done = [0]

    def tick(n: int = 1) -> None:
        done[0] += n
        if progress is not None and (done[0] == total or done[0] % 4 == 0):
            progress(min(done[0], total - 1), total, what)  # the last call comes when everything is in place

    partial = {c: f.with_name(f"{f.name}.partial-{os.getpid()}") for c, f in todo.items()}
    t0 = time.monotonic()

    def finish(camera: str, size: int) -> None:
        final, tmp = todo[camera], partial[camera]
        if final.exists():
            if check_loop(final, keys[camera]) is None:  # another serve finished it meanwhile (and may play it)
                shutil.rmtree(tmp, ignore_errors=True)
                return
            shutil.rmtree(final, ignore_errors=True)
        _write_manifest(tmp, keys[camera], size, time.monotonic() - t0)
        try:
            tmp.rename(final)
        except OSError:
            if check_loop(final, keys[camera]) is not None:  # not another serve that finished it first
                raise
            shutil.rmtree(tmp, ignore_errors=True)
        stem = _stem(keys[camera]) + "-"
        for old in final.parent.iterdir():  # the loops an older renderer made of the same camera and scene
            if old != final and old.name.startswith(stem) and ".partial-" not in old.name and old.is_dir():
                shutil.rmtree(old, ignore_errors=True)

    if progress is not None:
        progress(0, total, what)
    if workers is None:
        workers = 1 if total < 200 else min(os.cpu_count() or 1, len(todo))
    workers = max(1, min(int(workers), len(todo)))
    try:
        for tmp in partial.values():
            if tmp.exists():
                shutil.rmtree(tmp)
            tmp.mkdir(parents=True)
        if workers == 1:
            for c in todo:
                finish(c, _render_camera(preset, c, seed, frames, partial[c], tick))
        else:
            _render_parallel(preset, partial, seed, frames, workers, tick, finish)
    except OSError as exc:
        raise HandstreamError(
            f"{parent}: cannot write the synthetic loop ({exc.strerror or exc}); set HANDSTREAM_CACHE to a "
            "writable folder with space, or render live (serve --live-render)"
        ) from None
    finally:
        for tmp in partial.values():
            shutil.rmtree(tmp, ignore_errors=True)
    if progress is not None:
        progress(total, total, what)
    return folders
