"""Choosing a port: the seed's 5000 when it is free, else a free one, saying why.

This file never starts a server; it only probes with a socket that it closes at once.

Where several people (or test runs) share one machine's loopback, one 5000 for all
would let one learner's client reach another learner's server. ``preferred_port()``
is 5000 unless ``NETLAB_PORT`` names another (a hub administrator can set it per user;
the tests set one per checkout and worker), and on a JupyterHub (``JUPYTERHUB_USER``
set) each user gets a port of their own, the same on every run.
"""

from __future__ import annotations

import os
import socket
import zlib

from ._waits import IS_WINDOWS

PREFERRED_PORT = 5000  # the seed's
_HUB_PORTS = range(20000, 30000)  # below Linux's ephemeral ports (32768-60999)


def preferred_port() -> int:
    """The port a server gets when it is free: 5000, ``NETLAB_PORT``, or a hub user's."""
    named = os.environ.get("NETLAB_PORT", "").strip()
    if named.isdigit() and 0 < int(named) < 65536:
        return int(named)
    user = os.environ.get("JUPYTERHUB_USER")
    if user:
        return _HUB_PORTS.start + zlib.crc32(user.encode()) % len(_HUB_PORTS)
    return PREFERRED_PORT


def preferred_reason() -> str | None:
    """Why the preferred port is not 5000, in a few words (None when it is 5000)."""
    if os.environ.get("NETLAB_PORT", "").strip().isdigit():
        if os.environ.get("NETLAB_PORT_FROM") == "conftest.py":
            return None  # the tests' own port per checkout: their outputs name no reason
        return f"NETLAB_PORT gives you port {preferred_port()} instead of 5000"
    if os.environ.get("JUPYTERHUB_USER"):
        return (
            f"on this shared JupyterHub your own port is {preferred_port()} instead of "
            "everyone's 5000"
        )
    return None


def _probe(host: str, port: int, kind=socket.SOCK_STREAM) -> int:
    """Bind a throwaway socket to (host, port) and return the port it got."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, kind) as probe:
        if kind == socket.SOCK_STREAM and not IS_WINDOWS:
            # The servers netlab runs use SO_REUSEADDR too (see _server.py), so a port
            # whose only users are connections in TIME_WAIT counts as free.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((host, port))
        return probe.getsockname()[1]


def is_free(port: int, host: str = "127.0.0.1", kind=None) -> bool:
    """True when a server could bind (host, port) right now (``kind=None``: TCP and UDP)."""
    kinds = (socket.SOCK_STREAM, socket.SOCK_DGRAM) if kind is None else (kind,)
    try:
        for each in kinds:
            _probe(host, port, each)
    except OSError:
        return False
    return True


def free_port(host: str = "127.0.0.1", kind=socket.SOCK_STREAM) -> int:
    """A port that nothing uses now, chosen by the operating system."""
    return _probe(host, 0, kind)


def choose_port(
    preferred: int | None = PREFERRED_PORT, host: str = "127.0.0.1", kind=None
) -> tuple[int, str | None]:
    """Return (port, why): ``preferred`` when free, else a free port and the reason.

    5000, the default, stands for ``preferred_port()`` (5000 on most machines).

    >>> port, why = choose_port()      # (5000, None) on most machines
    """
    if preferred == PREFERRED_PORT:
        preferred = preferred_port()
    if preferred in (None, 0):
        return free_port(host, kind or socket.SOCK_STREAM), None
    if is_free(preferred, host, kind):
        return preferred, None
    return free_port(host, kind or socket.SOCK_STREAM), f"port {preferred} is taken"


def unused_port(host: str = "127.0.0.1", attempts: int = 50) -> int:
    """A free port that no socket uses at all, not even a closing one (TIME_WAIT).

    ``free_port()`` may return a port that old connections still hold in TIME_WAIT:
    Linux reuses such ports. A demonstration that reads the socket table and wants to
    see only its own connection binds its client to this port instead.
    """
    from ._states import socket_table

    for _ in range(attempts):
        port = free_port(host)
        if not socket_table(port).rows:
            return port
    raise RuntimeError(f"netlab: no port without old connections found in {attempts} tries")
