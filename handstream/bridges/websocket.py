"""The websocket bridge: a WebSocket server (the ``websockets`` library, asyncio) that sends every pose to every
connected client, in the format each client chose when it connected.

``ws://127.0.0.1:8765/?format=json`` (default) or ``?format=binary``; ``&openxr=1`` adds OpenXR's 26 joints
(:mod:`handstream.bridges.formats`). ``GET /status`` (plain HTTP) answers JSON with the counters: poses received,
and per client its address, format, poses sent and dropped.

A slow or absent consumer never slows the engine or the other clients: the ZeroMQ subscriber runs in its own
thread (PUB drops for it if even that falls behind), each client's socket has a bounded kernel send buffer
(:data:`SNDBUF`), and each client has a latest-pose slot of size 1 that its own sender task empties; a pose that
arrives while the slot is still full replaces the old one, which counts as a drop for that client. A client whose
TCP buffers are full only stalls its own sender task.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlsplit

from handstream.bridges.deps import require
from handstream.bridges.formats import pose_binary, pose_json
from handstream.bridges.stream import latest_poses
from handstream.errors import HandstreamError
from handstream.poses import PoseMessage
from handstream.runtime import StopFlag
from handstream.transport.pubsub import PoseSubscriber
from handstream.transport.security import curve_config

FORMATS = ("json", "binary")
SNDBUF = 64 << 10
"""Kernel send buffer per client, bytes (Linux doubles it): with the library's 32 KiB write buffer, at most
about 160 KiB (some tens of poses) wait for a client that stopped reading; after that its poses are dropped."""


def parse_query(path: str) -> tuple[str, bool]:
    """``(format, openxr)`` from a request path such as ``/?format=binary&openxr=1``; raises ValueError."""
    q = parse_qs(urlsplit(path).query)
    fmt = q.get("format", ["json"])[-1].lower()
    if fmt not in FORMATS:
        raise ValueError(f"format: expected json or binary, got {fmt!r}")
    ox = q.get("openxr", ["0"])[-1].lower()
    if ox not in ("0", "1", "true", "false"):
        raise ValueError(f"openxr: expected 0 or 1, got {ox!r}")
    return fmt, ox in ("1", "true")


@dataclass(eq=False)
class _Client:
    address: str
    format: str
    openxr: bool
    pending: Any = None
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    sent: int = 0
    dropped: int = 0

    def offer(self, data: Any) -> None:
        if self.pending is not None:
            self.dropped += 1
        self.pending = data
        self.ready.set()

    def counters(self) -> dict[str, Any]:
        return {"address": self.address, "format": self.format, "openxr": self.openxr, "sent": self.sent,
                "dropped": self.dropped}  # fmt: skip


class WebSocketBridge:
    """The server's state: the connected clients and the counters (used from the event loop's thread only)."""

    def __init__(self) -> None:
        self.clients: set[_Client] = set()
        self.received = 0
        self.finished: list[dict[str, Any]] = []  # counters of clients that left (the last 100)

    def broadcast(self, msg: PoseMessage) -> None:
        """Offer one pose to every client (encoded once per format)."""
        self.received += 1
        cache: dict[tuple[str, bool], Any] = {}
        for c in self.clients:
            key = (c.format, c.openxr)
            if key not in cache:
                cache[key] = (
                    pose_binary(msg, c.openxr)
                    if c.format == "binary"
                    else json.dumps(pose_json(msg, c.openxr), separators=(",", ":"))
                )
            c.offer(cache[key])

    def status(self) -> dict[str, Any]:
        """Counters as plain data (what ``GET /status`` answers)."""
        return {"received": self.received, "clients": [c.counters() for c in self.clients],
                "finished": self.finished}  # fmt: skip

    async def handler(self, connection) -> None:
        fmt, openxr = parse_query(connection.request.path)  # checked in process_request already
        client = _Client(f"{connection.remote_address[0]}:{connection.remote_address[1]}", fmt, openxr)
        sock = connection.transport.get_extra_info("socket")
        if sock is not None:  # a bounded kernel backlog per client: a stalled one gets fresh poses, not old ones
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SNDBUF)
        self.clients.add(client)
        closed = asyncio.ensure_future(connection.wait_closed())
        try:
            while not closed.done():
                waiter = asyncio.ensure_future(client.ready.wait())
                await asyncio.wait({waiter, closed}, return_when=asyncio.FIRST_COMPLETED)
                if not waiter.done():
                    waiter.cancel()
                    break
                client.ready.clear()
                data, client.pending = client.pending, None
                if data is None:
                    continue
                try:
                    await connection.send(data)
                except Exception:  # the client went away mid-send (ConnectionClosed and friends)
                    break
                client.sent += 1
        finally:
            closed.cancel()
            self.clients.discard(client)
            self.finished = (self.finished + [client.counters()])[-100:]

    def process_request(self, connection, request):
        """``/status`` answers the counters; a bad query string is refused with 400 and the reason."""
        path = urlsplit(request.path).path
        if path == "/status":
            return connection.respond(HTTPStatus.OK, json.dumps(self.status()) + "\n")
        try:
            parse_query(request.path)
        except ValueError as exc:
            return connection.respond(HTTPStatus.BAD_REQUEST, f"handstream websocket bridge: {exc}\n")
        return None


def _subscribe(endpoint: str, curve_dir: str | None, loop: asyncio.AbstractEventLoop, bridge: WebSocketBridge,
               done: threading.Event) -> None:  # fmt: skip
    """The ZeroMQ side, in its own thread: newest pose -> the event loop."""
    sub = PoseSubscriber(endpoint, curve=curve_config(curve_dir))
    try:
        for msg in latest_poses(sub, done):
            loop.call_soon_threadsafe(bridge.broadcast, msg)
    finally:
        sub.close()


def run_websocket(opts: dict[str, Any], stop: StopFlag, *, endpoint: str, curve_dir: str | None, on_ready=None) -> int:
    """Serve until ``stop`` is set (``opts``: ``host``, ``port``, ``allow_remote``). Returns 0."""
    require("websockets")
    from websockets.asyncio.server import serve

    bridge = WebSocketBridge()

    async def main() -> None:
        try:
            server = await serve(bridge.handler, opts["host"], opts["port"], process_request=bridge.process_request,
                                 max_size=4096, compression=None)  # fmt: skip
        except OSError as exc:
            raise HandstreamError(
                f"websocket bridge: --port {opts['port']}: cannot listen on {opts['host']} ({exc.strerror})"
            ) from None
        done = threading.Event()
        thread = threading.Thread(
            target=_subscribe, args=(endpoint, curve_dir, asyncio.get_running_loop(), bridge, done), daemon=True
        )
        thread.start()
        if on_ready is not None:
            on_ready(f"ws://{opts['host']}:{opts['port']}/?format=json|binary (poses from {endpoint})")
        await serve_until(stop, server, thread, done)

    asyncio.run(main())
    return 0


async def serve_until(stop: StopFlag, server, thread: threading.Thread, done: threading.Event, tick=None) -> None:
    """Keep ``server`` (a websockets server) up until ``stop`` is set, calling ``tick()`` (if given) every 0.1 s
    (it may raise to end the run); then tell the subscriber ``thread`` to end (``done``), close the server and wait
    for both (the thread at most 2 s). The websocket bridge and ``handstream view`` end the same way."""
    try:
        while not stop.is_set():
            await asyncio.sleep(0.1)
            if tick is not None:
                tick()
    finally:
        done.set()
        server.close()
        await server.wait_closed()
        thread.join(2.0)
