"""Addresses as people read them, and the address a client can connect to."""

from __future__ import annotations

_WILDCARDS = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}


def format_address(address) -> str:
    """``('127.0.0.1', 5000)`` -> ``127.0.0.1:5000``; IPv6 in brackets; ``''`` -> ``0.0.0.0``.

    Anything that is not a (host, port, ...) tuple (a UNIX path, say) is shown as str().
    """
    if isinstance(address, tuple) and len(address) >= 2:
        host = address[0] or "0.0.0.0"
        return f"[{host}]:{address[1]}" if ":" in host else f"{host}:{address[1]}"
    return str(address)


def connectable(host: str) -> str:
    """The host a client on this machine uses for a server bound to ``host``."""
    return _WILDCARDS.get(host, host)


def is_wildcard(host) -> bool:
    return host in _WILDCARDS
