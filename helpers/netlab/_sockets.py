"""Small socket moves that several parts need, written once."""

from __future__ import annotations

import socket
import struct

LINGER_ABORT = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends an RST


def arm_reset(sock: socket.socket) -> None:
    """Make ``sock.close()`` send an RST instead of the polite FIN (and drop unsent data)."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_ABORT)


def reset(sock: socket.socket) -> None:
    """Close ``sock`` with a reset (RST): what a peer sees when a program vanishes."""
    try:
        arm_reset(sock)
    finally:
        sock.close()
