"""CURVE security of the live path: key files, key generation, and the keys on a socket.

CURVE is ZeroMQ's elliptic-curve encryption and authentication (libzmq built with libsodium:
``zmq.has("curve")``). The *server* is the binding side (the engine's frame and pose sockets), the
*client* the connecting side (captures, subscribers); docs/wire-protocol.md, "Security", says which host
needs which file.

* :class:`CurveConfig`: where the certificates are; :func:`generate_keys` makes a set,
  :func:`curve_config` reads the folder ``handstream keys`` writes.
* :func:`make_curve_server` / :func:`make_curve_client`: put the keys on a socket before it binds /
  connects (the socket wrappers in :mod:`handstream.transport.pubsub` call them).
* With ``authorized_clients_dir``, a ``zmq.auth`` ZAP handler (one per ZeroMQ context, shared by that
  context's CURVE server sockets, stopped with the last of them: :func:`release_zap`) admits only the
  clients whose public certificate is in that directory.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zmq
import zmq.auth

from handstream.errors import HandstreamError
from handstream.transport.topics import check_name


@dataclass(frozen=True)
class CurveConfig:
    """CURVE (encryption + authentication) key files, in ``zmq.auth`` certificate format.

    The *server* is the binding side (the engine's frame and pose sockets), the *client* the connecting
    side (captures, subscribers). Each side reads only its own fields, so one object made by
    :func:`generate_keys` works on both sides of a test; on real hosts give each side only its files.

    Attributes:
        server_public_key_file: the server's public certificate (``server.key``); both sides.
        server_secret_key_file: the server's secret certificate (``server.key_secret``); server only.
        client_secret_key_file: the client's secret certificate (``client.key_secret``, holds both of
            its keys); client only.
        authorized_clients_dir: server only: directory of client *public* certificates (``*.key``)
            allowed to connect (checked by a ``zmq.auth`` ZAP handler). ``None`` accepts any client that
            knows the server's public key (traffic is still encrypted and the server authenticated).
    """

    server_public_key_file: str | Path
    server_secret_key_file: str | Path | None = None
    client_secret_key_file: str | Path | None = None
    authorized_clients_dir: str | Path | None = None


def _require_curve() -> None:
    if not zmq.has("curve"):
        raise HandstreamError("CURVE was requested but this libzmq was built without CURVE (zmq.has('curve') is False)")


def _load_cert(path: str | Path | None, what: str, need_secret: bool) -> tuple[bytes, bytes | None]:
    """(public, secret) key of one certificate file; ``what`` names the :class:`CurveConfig` field."""
    if path is None:
        raise HandstreamError(f"CurveConfig.{what} is required on this side of the connection")
    try:
        public, secret = zmq.auth.load_certificate(os.fspath(path))
    except (OSError, ValueError) as e:
        raise HandstreamError(f"{path}: cannot read CURVE certificate ({what}): {e}") from None
    if need_secret and not secret:
        raise HandstreamError(f"{path}: no secret key in this certificate ({what} must be a .key_secret file)")
    return public, secret


def generate_keys(directory: str | Path, server: str = "server", client: str = "client") -> CurveConfig:
    """Create a CURVE key pair for the server and one for a client in ``directory``; return their config.

    Writes ``<server>.key`` / ``<server>.key_secret``, ``<client>.key`` / ``<client>.key_secret``
    (secret files mode 0600) and ``authorized_clients/<client>.key``. Copy ``<server>.key`` and
    ``<client>.key_secret`` to the client host; add more clients by creating their certificates
    (``zmq.auth.create_certificates``) and copying their ``.key`` into ``authorized_clients/``.
    """
    _require_curve()
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    server_pub, server_sec = zmq.auth.create_certificates(d, check_name(server, "server"))
    client_pub, client_sec = zmq.auth.create_certificates(d, check_name(client, "client"))
    for secret in (server_sec, client_sec):
        os.chmod(secret, 0o600)
    authorized = d / "authorized_clients"
    authorized.mkdir(exist_ok=True)
    shutil.copy(client_pub, authorized / Path(client_pub).name)
    return CurveConfig(
        server_public_key_file=Path(server_pub),
        server_secret_key_file=Path(server_sec),
        client_secret_key_file=Path(client_sec),
        authorized_clients_dir=authorized,
    )


def curve_config(curve_dir: str | Path | None) -> CurveConfig | None:
    """CURVE keys from a folder made by ``handstream keys`` (:func:`generate_keys`):
    ``server.key``, ``server.key_secret``, ``client.key_secret``, ``authorized_clients/``. Each side uses
    the files it needs; on a client host only ``server.key`` and ``client.key_secret`` must be present."""
    if not curve_dir:
        return None
    d = Path(curve_dir)
    if not (d / "server.key").is_file():
        raise HandstreamError(f"{d}: no server.key in the CURVE key folder (create one with `handstream keys {d}`)")

    def opt(name: str) -> Path | None:
        return d / name if (d / name).exists() else None

    return CurveConfig(d / "server.key", opt("server.key_secret"), opt("client.key_secret"), opt("authorized_clients"))


def make_curve_server(socket: zmq.Socket, context: zmq.Context, curve: CurveConfig) -> bool:
    """Make ``socket`` (not yet bound) a CURVE server with the server's secret certificate.

    With ``curve.authorized_clients_dir``, also starts (or shares) the ZAP handler of ``context`` and
    returns True: call :func:`release_zap` once the socket is closed. Returns False without one.
    Raises :class:`HandstreamError` for a libzmq without CURVE or an unreadable certificate.
    """
    _require_curve()
    public, secret = _load_cert(curve.server_secret_key_file, "server_secret_key_file", True)
    socket.curve_publickey = public
    socket.curve_secretkey = secret
    socket.curve_server = True
    if curve.authorized_clients_dir is None:
        return False
    _Zap.acquire(context, Path(curve.authorized_clients_dir))
    return True


def make_curve_client(socket: zmq.Socket, curve: CurveConfig) -> None:
    """Give ``socket`` (not yet connected) the server's public key and the client's key pair.

    Raises :class:`HandstreamError` for a libzmq without CURVE or an unreadable certificate.
    """
    _require_curve()
    server_public, _ = _load_cert(curve.server_public_key_file, "server_public_key_file", False)
    public, secret = _load_cert(curve.client_secret_key_file, "client_secret_key_file", True)
    socket.curve_serverkey = server_public
    socket.curve_publickey = public
    socket.curve_secretkey = secret


def release_zap(context: zmq.Context) -> None:
    """Give back one hold on ``context``'s ZAP handler (:func:`make_curve_server`); the last stops it."""
    _Zap.release(context)


class _Zap:
    """One ``zmq.auth.ThreadAuthenticator`` per context (ZeroMQ allows one ZAP handler per context),
    shared by the CURVE server sockets of that context and stopped with the last of them."""

    _lock = threading.Lock()
    _entries: dict[int, list[Any]] = {}  # id(context) -> [context, authenticator, location, refs]

    @classmethod
    def acquire(cls, context: zmq.Context, location: Path) -> None:
        from zmq.auth.thread import ThreadAuthenticator

        location = location.resolve()
        if not location.is_dir():
            raise HandstreamError(f"{location}: CurveConfig.authorized_clients_dir is not a directory")
        with cls._lock:
            entry = cls._entries.get(id(context))
            if entry is None:
                auth = ThreadAuthenticator(context, log=logging.getLogger("handstream.transport.zap"))
                auth.start()
                auth.configure_curve(domain="*", location=os.fspath(location))
                cls._entries[id(context)] = entry = [context, auth, location, 0]
            elif entry[2] != location:
                raise HandstreamError(
                    f"{location}: another socket of this process already authorizes clients from {entry[2]}; "
                    "use one authorized_clients_dir per process (or separate zmq contexts)"
                )
            entry[3] += 1

    @classmethod
    def release(cls, context: zmq.Context) -> None:
        with cls._lock:
            entry = cls._entries.get(id(context))
            if entry is None:
                return
            entry[3] -= 1
            if entry[3] <= 0:
                del cls._entries[id(context)]
                entry[1].stop()


__all__ = [
    "CurveConfig",
    "curve_config",
    "generate_keys",
    "make_curve_client",
    "make_curve_server",
    "release_zap",
]
