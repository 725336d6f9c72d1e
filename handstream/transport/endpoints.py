"""Endpoints of the live path: the defaults, and what may be bound or connected to.

* The engine binds both sockets; captures and subscribers connect. The default endpoints are on
  127.0.0.1 (:data:`DEFAULT_FRAME_ENDPOINT`, :data:`DEFAULT_POSE_ENDPOINT`).
* Endpoints are ``tcp://HOST:PORT``, ``ipc://PATH`` (at most 107 bytes) or ``inproc://NAME``.
  :func:`check_bind_endpoint` refuses a tcp address other hosts can reach (``*``, ``0.0.0.0``, a LAN
  address) unless ``allow_remote`` is given, and such a socket should use CURVE
  (:mod:`handstream.transport.security`).
* :class:`Endpoints`: the engine's two endpoints and their CURVE keys, validated on construction.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from handstream.errors import HandstreamError
from handstream.transport.security import CurveConfig

DEFAULT_FRAME_ENDPOINT = "tcp://127.0.0.1:5555"
"""Where the engine binds its frame socket (captures connect here)."""

DEFAULT_POSE_ENDPOINT = "tcp://127.0.0.1:5556"
"""Where the engine binds its pose socket (subscribers connect here)."""

_SCHEMES = ("tcp", "ipc", "inproc")
_IPC_MAX_PATH = 107  # sun_path is 108 bytes on Linux, including the terminating NUL


def _split_endpoint(endpoint: Any) -> tuple[str, str]:
    if type(endpoint) is not str:
        raise HandstreamError(f"endpoint must be a string, got {type(endpoint).__name__}")
    scheme, sep, rest = endpoint.partition("://")
    if not sep or scheme not in _SCHEMES or not rest:
        raise HandstreamError(f"endpoint {endpoint!r}: expected tcp://HOST:PORT, ipc://PATH or inproc://NAME")
    return scheme, rest


def _tcp_host_port(endpoint: str, rest: str) -> tuple[str, str]:
    host, sep, port = rest.rpartition(":")
    if not sep or not host or not (port == "*" or (port.isdigit() and 0 < int(port) < 65536)):
        raise HandstreamError(f"endpoint {endpoint!r}: expected tcp://HOST:PORT with PORT in 1..65535 or '*'")
    return host, port


def is_loopback_host(host: str) -> bool:
    """True for ``localhost``, ``127.0.0.0/8`` and ``[::1]``: addresses only this machine can reach."""
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # '*', 0.0.0.0, interface names, host names: reachable from elsewhere (or unknown)


def check_bind_endpoint(endpoint: str, allow_remote: bool = False) -> str:
    """Validate an endpoint to bind; return it unchanged.

    ``ipc://PATH`` (PATH <= 107 bytes), ``inproc://NAME`` and ``tcp://`` on a loopback address
    (``127.0.0.1``, ``localhost``, ``[::1]``) are always allowed. Any other tcp address (``*``,
    ``0.0.0.0``, a LAN address, an interface name) raises :class:`HandstreamError` unless
    ``allow_remote`` is true. The port may be ``*`` (an ephemeral port; read it back from ``.endpoint``).
    """
    scheme, rest = _split_endpoint(endpoint)
    if scheme == "tcp":
        host, _ = _tcp_host_port(endpoint, rest)
        if not allow_remote and not is_loopback_host(host):
            raise HandstreamError(
                f"refusing to bind {endpoint}: it would accept connections from other hosts. "
                "Bind a loopback address (tcp://127.0.0.1:PORT, the default) or ipc://, or set "
                "allow_remote = true explicitly and configure CURVE keys (docs/wire-protocol.md, Security)"
            )
    elif scheme == "ipc" and len(rest.encode()) > _IPC_MAX_PATH:
        raise HandstreamError(f"endpoint {endpoint!r}: ipc path longer than {_IPC_MAX_PATH} bytes")
    return endpoint


def check_connect_endpoint(endpoint: str) -> str:
    """Validate an endpoint to connect to (``tcp://HOST:PORT``, ``ipc://PATH``, ``inproc://NAME``)."""
    scheme, rest = _split_endpoint(endpoint)
    if scheme == "tcp":
        _, port = _tcp_host_port(endpoint, rest)
        if port == "*":
            raise HandstreamError(f"endpoint {endpoint!r}: cannot connect to port '*'")
    elif scheme == "ipc" and len(rest.encode()) > _IPC_MAX_PATH:
        raise HandstreamError(f"endpoint {endpoint!r}: ipc path longer than {_IPC_MAX_PATH} bytes")
    return endpoint


def is_ipv6_tcp(endpoint: str) -> bool:
    """True for ``tcp://[ADDRESS]:PORT``: the socket needs ``ZMQ_IPV6`` to bind or connect it."""
    scheme, rest = _split_endpoint(endpoint)
    return scheme == "tcp" and rest.startswith("[")


def is_remote_tcp(endpoint: str) -> bool:
    """True for a tcp endpoint on an address other hosts can reach (not loopback)."""
    scheme, rest = _split_endpoint(endpoint)
    return scheme == "tcp" and not is_loopback_host(_tcp_host_port(endpoint, rest)[0])


@dataclass(frozen=True)
class Endpoints:
    """Where the engine binds its two sockets (and where captures/subscribers connect).

    Validated on construction: binding anything but loopback / ipc / inproc needs ``allow_remote``.

    Attributes:
        frames: frame socket (engine binds PULL; captures connect PUSH).
        poses: pose socket (engine binds PUB; subscribers connect SUB).
        allow_remote: permit binding non-loopback tcp addresses (e.g. ``tcp://0.0.0.0:5555``).
        curve: CURVE keys for both sockets, or None for plain ZMTP (fine on loopback / ipc).
    """

    frames: str = DEFAULT_FRAME_ENDPOINT
    poses: str = DEFAULT_POSE_ENDPOINT
    allow_remote: bool = False
    curve: CurveConfig | None = None

    def __post_init__(self) -> None:
        check_bind_endpoint(self.frames, self.allow_remote)
        check_bind_endpoint(self.poses, self.allow_remote)

    @classmethod
    def ipc(cls, directory: str | Path) -> Endpoints:
        """Unix-domain sockets ``<directory>/frames.sock`` and ``<directory>/poses.sock`` (one host only)."""
        d = Path(directory)
        return cls(frames=f"ipc://{d / 'frames.sock'}", poses=f"ipc://{d / 'poses.sock'}")


__all__ = [
    "DEFAULT_FRAME_ENDPOINT",
    "DEFAULT_POSE_ENDPOINT",
    "Endpoints",
    "check_bind_endpoint",
    "check_connect_endpoint",
    "is_ipv6_tcp",
    "is_loopback_host",
    "is_remote_tcp",
]
