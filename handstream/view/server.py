"""The viewer's server: the page's files over HTTP and the live data over a WebSocket, on one port (the
``websockets`` library's asyncio server; its ``process_request`` answers the plain HTTP requests).

::

    GET /            index.html (and /view.js, /view.css: handstream/view/static/, shipped in the package)
    GET /state       JSON: what each connected page reports about itself (its ``window.handstreamView``)
    WS  /ws          server -> page: {"type": "scene"} on connect and when the cameras become known,
                     {"type": "status"} twice a second, {"type": "pose"} per pose (the websocket bridge's JSON
                     object, :func:`handstream.bridges.formats.pose_json`, plus "type", "views" and, with
                     --include-2d, "views2d"), {"type": "thumbnail"} per camera image with --include-2d
                     (:func:`handstream.view.scene.thumbnail_message`: a JPEG and the joints of its own pose);
                     page -> server: {"type": "state", ...} (stored for GET /state)

The engine side is the websocket bridge's: a ZeroMQ subscriber (pose and ``status.*`` topics; with --include-2d
also the engine's thumbnails, ``frame.*``, ``engine.thumbnail_fps``) in its own thread encodes each newest pose
and each newest thumbnail once and hands them to the event loop; every page has a latest-message slot per kind
(scene, status, pose, one per camera's thumbnail) that its own sender task empties, so a pose that arrives while
the previous one has not left replaces it (a drop, counted for that page) and a slow page never slows the engine
or another page. ZeroMQ reconnects by itself, so the viewer outlives an engine restart; the page reconnects to the
viewer by itself.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from handstream.bridges.deps import require
from handstream.bridges.formats import pose_json
from handstream.bridges.websocket import serve_until
from handstream.errors import HandstreamError
from handstream.geometry import Rig
from handstream.poses import PoseMessage
from handstream.runtime import StopFlag
from handstream.transport.endpoints import check_connect_endpoint, is_loopback_host
from handstream.transport.messages import FrameMessage
from handstream.transport.pubsub import PoseSubscriber
from handstream.transport.security import curve_config
from handstream.view.scene import preset_for_cameras, project_views, scene_message, thumbnail_message

STATIC = Path(__file__).resolve().parent / "static"
"""The page's files (package data)."""
CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                 ".css": "text/css; charset=utf-8", ".png": "image/png", ".svg": "image/svg+xml"}  # fmt: skip
SNDBUF = 64 << 10
"""Kernel send buffer per page, bytes (as the websocket bridge's)."""
STATUS_PERIOD_S = 0.5
"""How often each page gets a status message."""
STALE_STATUS_S = 5.0
"""A process whose last status is older than this is shown as silent (the engine sends one per second)."""
SLOTS = ("scene", "status", "pose")
"""A page's message kinds, in the order its sender sends what is pending (then the thumbnails, ``thumb.<camera>``)."""
RECENT_POSES = 64
"""Poses kept by seq for the thumbnails that follow them (the engine sends a set's thumbnails after its pose)."""
MAX_THUMBNAIL_FPS = 10.0
"""Thumbnails per camera and second forwarded at most, whatever the engine sends (also capped at its own rate)."""


def check_view_options(host: str, port: int, allow_remote: bool) -> tuple[str, int]:
    """``(host, port)`` to listen on, checked: a loopback host unless ``allow_remote`` (then the default host
    becomes 0.0.0.0), port 0..65535 (0: any free port). Raises HandstreamError (one line)."""
    if not isinstance(port, int) or not 0 <= port <= 65535:
        raise HandstreamError(f"view: --port: expected 0..65535 (0: any free port), got {port}")
    if not is_loopback_host(host) and not allow_remote:
        raise HandstreamError(
            f"view: --host {host}: not a loopback address; add --allow-remote to accept connections from other "
            "machines (anyone who can reach the port then sees your cameras' poses)"
        )
    if allow_remote and host == "127.0.0.1":
        host = "0.0.0.0"
    return host, port


def static_files(root: Path = STATIC) -> dict[str, tuple[Path, str]]:
    """URL path -> (file, content type) for every file of ``root`` with a known type; ``/`` is index.html.
    Only these paths are served (nothing is looked up from a request's path)."""
    out = {}
    for p in sorted(root.iterdir()):
        if p.is_file() and p.suffix in CONTENT_TYPES:
            out["/" + p.name] = (p, CONTENT_TYPES[p.suffix])
    if "/index.html" in out:
        out["/"] = out["/index.html"]
    return out


@dataclass(eq=False)
class _Page:
    """One connected page: its latest-message slots and counters."""

    address: str
    pending: dict[str, Any] = field(default_factory=dict)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    sent: int = 0
    dropped: int = 0
    state: dict[str, Any] = field(default_factory=dict)

    def offer(self, kind: str, data: str) -> None:
        if kind == "pose" and "pose" in self.pending:
            self.dropped += 1
        self.pending[kind] = data
        self.ready.set()

    def take(self) -> list[tuple[str, str]]:
        kinds = [k for k in SLOTS if k in self.pending] + sorted(k for k in self.pending if k not in SLOTS)
        out = [(k, self.pending.pop(k)) for k in kinds]
        self.ready.clear()
        return out

    def counters(self) -> dict[str, Any]:
        return {"address": self.address, "poses_sent": self.sent, "poses_dropped": self.dropped, "state": self.state}


class ViewServer:
    """The server's state (used from the event loop's thread only, except :meth:`post` and friends, which the
    subscriber thread calls through ``loop.call_soon_threadsafe``)."""

    def __init__(self, scene: dict[str, Any], files: dict[str, tuple[Path, str]] | None = None):
        self.pages: set[_Page] = set()
        self.scene = json.dumps(scene, separators=(",", ":"))
        self.files = static_files() if files is None else files
        self.received = 0
        self.t_last_pose: float | None = None
        self.statuses: dict[str, tuple[float, dict[str, Any]]] = {}  # process -> (monotonic time, data)
        self.subscriber: dict[str, Any] = {}  # the ZeroMQ subscriber's counters (received, missed, ...)
        self.thumbnails: dict[str, str] = {}  # camera -> its newest thumbnail message (a new page gets them)
        self.thumbnails_received = 0

    # -- from the subscriber thread -------------------------------------------------------------------------

    def set_scene(self, scene: dict[str, Any]) -> None:
        self.scene = json.dumps(scene, separators=(",", ":"))
        for p in self.pages:
            p.offer("scene", self.scene)

    def offer_pose(self, text: str) -> None:
        self.received += 1
        self.t_last_pose = time.monotonic()
        for p in self.pages:
            p.offer("pose", text)

    def offer_thumbnail(self, camera: str, text: str) -> None:
        self.thumbnails_received += 1
        self.thumbnails[camera] = text
        for p in self.pages:
            p.offer(f"thumb.{camera}", text)

    def set_statuses(self, statuses: dict[str, dict[str, Any]], counters: dict[str, Any]) -> None:
        now = time.monotonic()
        for name, data in statuses.items():
            self.statuses[name] = (now, data)
        self.subscriber = counters

    # -- to the pages ---------------------------------------------------------------------------------------

    def status(self, page: _Page | None = None) -> dict[str, Any]:
        """The status message: the engine's and the captures' own status (``status.*``, newest each, with its
        age in s), the viewer's subscriber counters and, for ``page``, its own sent/dropped counts."""
        now = time.monotonic()
        processes = {name: {"age_s": round(now - t, 2), "stale": now - t > STALE_STATUS_S, "data": data}
                     for name, (t, data) in sorted(self.statuses.items())}  # fmt: skip
        age = None if self.t_last_pose is None else round(now - self.t_last_pose, 2)
        viewer = {"received": self.received, "subscriber": self.subscriber, "pages": len(self.pages),
                  "last_pose_age_s": age, "thumbnails_received": self.thumbnails_received}  # fmt: skip
        if page is not None:
            viewer["poses_sent"], viewer["poses_dropped"] = page.sent, page.dropped
        return {"type": "status", "processes": processes, "viewer": viewer}

    def send_statuses(self) -> None:
        for p in self.pages:
            p.offer("status", json.dumps(self.status(p), separators=(",", ":")))

    async def handler(self, connection) -> None:
        page = _Page(f"{connection.remote_address[0]}:{connection.remote_address[1]}")
        sock = connection.transport.get_extra_info("socket")
        if sock is not None:  # a bounded kernel backlog: a stalled page gets fresh poses, not old ones
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SNDBUF)
        self.pages.add(page)
        page.offer("scene", self.scene)
        page.offer("status", json.dumps(self.status(page), separators=(",", ":")))
        for camera, text in self.thumbnails.items():
            page.offer(f"thumb.{camera}", text)
        reader = asyncio.ensure_future(self._read(connection, page))
        try:
            while not reader.done():
                waiter = asyncio.ensure_future(page.ready.wait())
                await asyncio.wait({waiter, reader}, return_when=asyncio.FIRST_COMPLETED)
                if not waiter.done():
                    waiter.cancel()
                    break
                for kind, data in page.take():
                    try:
                        await connection.send(data)
                    except Exception:  # the page went away mid-send (ConnectionClosed and friends)
                        return
                    page.sent += kind == "pose"
        finally:
            reader.cancel()
            self.pages.discard(page)

    @staticmethod
    async def _read(connection, page: _Page) -> None:
        """The page's own state reports (anything else it sends is ignored); returns when it disconnects."""
        try:
            async for message in connection:
                try:
                    d = json.loads(message)
                except (TypeError, ValueError):
                    continue
                if isinstance(d, dict) and d.get("type") == "state":
                    page.state = d
        except Exception:  # ConnectionClosedError: the page is gone either way
            return

    def process_request(self, connection, request):
        """Files and ``/state`` over plain HTTP; ``/ws`` goes on to the WebSocket handshake."""
        from websockets.datastructures import Headers
        from websockets.http11 import Response

        path = urlsplit(request.path).path
        if path == "/ws":
            return None
        if path == "/state":
            body = json.dumps({"received": self.received, "pages": [p.counters() for p in self.pages]}).encode()
            kind = "application/json"
        elif path in self.files:
            file, kind = self.files[path]
            body = file.read_bytes()
        else:
            return connection.respond(HTTPStatus.NOT_FOUND, f"handstream view: no {path} here\n")
        headers = Headers([("Content-Type", kind), ("Content-Length", str(len(body))), ("Cache-Control", "no-store")])
        return Response(HTTPStatus.OK, "OK", headers, body)


def _subscribe(endpoint: str, curve, rig: Rig | None, include_2d: bool, scene_args: dict[str, Any],
               loop: asyncio.AbstractEventLoop, server: ViewServer, done: threading.Event,
               failed: list) -> None:  # fmt: skip
    """The ZeroMQ side, in its own thread: newest pose (encoded once) and the status messages -> the event loop.
    Without a calibration, the demo's cameras are recognised by the names in the engine's status. An exception
    goes into ``failed`` (the server then stops with it: a viewer that silently shows nothing is worse)."""
    try:
        sub = PoseSubscriber(endpoint, status=True, curve=curve, frames=include_2d)
    except Exception as exc:  # noqa: BLE001 - handed to the main thread
        failed.append(exc)
        return
    detect = rig is None
    recent: dict[int, PoseMessage] = {}  # seq -> pose, for the thumbnails of its frame set
    t_thumb: dict[str, float] = {}  # camera -> when its last thumbnail was forwarded (monotonic s)
    min_interval = 1.0 / MAX_THUMBNAIL_FPS
    try:
        while not done.is_set():
            newest, frames = _drain(sub, recent)
            if sub.statuses:
                statuses = {name: st.data for name, st in sub.statuses.items()}
                sub.statuses.clear()
                engine = statuses.get("engine", {})
                thumbs = engine.get("thumbnails")
                fps = thumbs.get("fps") if isinstance(thumbs, dict) else None
                if isinstance(fps, (int, float)) and fps > 0:  # cap at the engine's own rate (a little slack)
                    min_interval = max(1.0 / MAX_THUMBNAIL_FPS, 0.8 / fps)
                if detect and isinstance(engine.get("fps_in"), dict):
                    detect = False  # once: the engine's cameras do not change while it runs
                    found = preset_for_cameras(list(engine["fps_in"]))
                    if found is not None:
                        rig = found[1]
                        source = f"synthetic preset {found[0]} (recognised by the engine's camera names)"
                        loop.call_soon_threadsafe(server.set_scene, scene_message(rig, source, **scene_args))
                loop.call_soon_threadsafe(server.set_statuses, statuses, sub.counters.as_dict())
            if newest is not None:
                payload = {"type": "pose", **pose_json(newest), "views": list(newest.views)}
                if include_2d and rig is not None:
                    payload["views2d"] = project_views(rig, newest)
                loop.call_soon_threadsafe(server.offer_pose, json.dumps(payload, separators=(",", ":")))
            now = time.monotonic()
            for cam, frame in frames.items():
                if now - t_thumb.get(cam, -1e9) < min_interval:
                    continue
                t_thumb[cam] = now
                msg = thumbnail_message(frame, rig, recent.get(frame.meta.get("pose_seq", -1)))
                loop.call_soon_threadsafe(server.offer_thumbnail, cam, json.dumps(msg, separators=(",", ":")))
    except Exception as exc:  # noqa: BLE001 - handed to the main thread
        failed.append(exc)
    finally:
        sub.close()


def _drain(sub: PoseSubscriber, recent: dict[int, PoseMessage]) -> tuple[PoseMessage | None, dict[str, FrameMessage]]:
    """Everything queued (waiting up to 100 ms for the first message): the newest pose (older ones count as
    superseded) and the newest thumbnail per camera; every pose goes into ``recent`` (its last RECENT_POSES), so a
    thumbnail finds the pose of its own frame set even when a newer pose came in the same drain."""
    newest, frames = None, {}
    msg = sub.recv(timeout_ms=100)
    for _ in range(4096):
        if msg is None:
            break
        if isinstance(msg, PoseMessage):
            if newest is not None:
                sub.counters.superseded += 1
            newest = recent[msg.seq] = msg
            while len(recent) > RECENT_POSES:
                del recent[next(iter(recent))]
        elif isinstance(msg, FrameMessage):
            frames[msg.camera] = msg
        msg = sub.recv(timeout_ms=0)
    return newest, frames


def run_view(opts: dict[str, Any], stop: StopFlag, *, endpoint: str, curve_dir: str | None = None,
             rig: Rig | None = None, source: str = "", on_ready=None) -> int:  # fmt: skip
    """Serve the viewer until ``stop`` is set. Returns 0.

    Args:
        opts: ``host``, ``port`` (checked by :func:`check_view_options`; port 0 picks a free one), ``include_2d``.
        endpoint: the engine's pose socket; curve_dir: its CURVE keys (None: none).
        rig: the calibration's cameras (None: recognise the demo's from the engine's status, else none).
        source: where ``rig`` came from, as the page shows it.
        on_ready: called with the page's URL once the server listens.
    Raises:
        HandstreamError: the port cannot be bound; websockets is not installed (names the extra).
    """
    require("websockets")
    from websockets.asyncio.server import serve

    check_connect_endpoint(endpoint)
    curve = curve_config(curve_dir)  # a bad key folder: one line now, not a silent thread later
    include_2d = bool(opts.get("include_2d"))
    scene_args = {"include_2d": include_2d, "endpoint": endpoint}
    if rig is None:
        source = source or "none: no --calibration given, and the engine's cameras are not a known preset"
    server_state = ViewServer(scene_message(rig, source, **scene_args))

    async def main() -> None:
        try:
            server = await serve(server_state.handler, opts["host"], opts["port"], max_size=8192, compression=None,
                                 process_request=server_state.process_request)  # fmt: skip
        except OSError as exc:
            where = f"--port {opts['port']}: cannot listen on {opts['host']}"
            raise HandstreamError(f"view: {where} ({exc.strerror})") from None
        port = server.sockets[0].getsockname()[1]
        done, failed = threading.Event(), []
        thread = threading.Thread(
            target=_subscribe,
            args=(endpoint, curve, rig, include_2d, scene_args, asyncio.get_running_loop(), server_state, done, failed),
            daemon=True,
        )
        thread.start()
        if on_ready is not None:
            host = "127.0.0.1" if opts["host"] in ("0.0.0.0", "::") else opts["host"]
            on_ready(f"http://{host}:{port}/")
        t_status = [0.0]

        def tick() -> None:
            if failed:
                raise HandstreamError(f"view: the pose subscriber stopped: {failed[0]}")
            if time.monotonic() - t_status[0] >= STATUS_PERIOD_S:
                t_status[0] = time.monotonic()
                server_state.send_statuses()

        await serve_until(stop, server, thread, done, tick)

    asyncio.run(main())
    return 0
