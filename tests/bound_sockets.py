"""The inet sockets of some processes, for test_rerun's look "is anything bound beyond
loopback?" taken every few milliseconds while a notebook runs.

``psutil.Process.net_connections`` answers that, but it parses every line of
``/proc/<pid>/net/{tcp,tcp6,udp,udp6}`` in Python (every socket of the machine, thousands
of TIME_WAIT lines on a busy one) and reads each fd link, for each process, at every look:
measured, test_rerun's looks then cost more CPU than the notebooks they watch. Here one
``sock_diag`` dump per family and protocol (``sock_diag(7)``; the request and message
layout are those of ``helpers/netlab/_netlink.py``) returns the sockets as binary records
with their inode; only when one of them is bound beyond loopback are the processes' fds
read, to see whether it is theirs. What counts is the same as psutil's: TCP sockets in
every state but TIME_WAIT and SYN_RECV (those belong to no process: inode 0) and every UDP
socket. Where netlink is refused (not Linux, a sandbox), psutil answers instead.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import struct
import time

import psutil

from helpers.netlab import _netlink as nl

_TCP_STATES = sum(
    1 << s
    for s, name in nl.TCP_STATES.items()
    if name not in {"TIME_WAIT", "SYN_RECV", "NEW_SYN_RECV"}
)
_UDP_STATES = nl._ALL_STATES
_INODE = struct.Struct("=I")
_INODE_AT = 68


def on_loopback(ip: str) -> bool:
    return ipaddress.ip_address(ip.split("%")[0]).is_loopback


def _request(family: int, protocol: int, states: int, seq: int) -> bytes:
    body = nl._REQ_V2.pack(family, protocol, 0, states)
    flags = nl._NLM_F_REQUEST | nl._NLM_F_DUMP
    return (
        nl._NLMSGHDR.pack(nl._NLMSGHDR.size + len(body), nl._SOCK_DIAG_BY_FAMILY, flags, seq, 0)
        + body
    )


def _dump(
    sock, family: int, protocol: int, states: int, seq: int, deadline: float, found: list
) -> None:
    """Append (inode, "ip:port", kind) for each socket bound beyond loopback."""
    sock.settimeout(max(deadline - time.monotonic(), 0.001))
    sock.sendto(_request(family, protocol, states, seq), (0, 0))
    size = 4 if family == socket.AF_INET else 16
    header = nl._NLMSGHDR.size
    while True:
        sock.settimeout(max(deadline - time.monotonic(), 0.001))
        data = sock.recv(nl._BUFSIZE)
        if not data:
            raise OSError("netlink socket closed")
        offset = 0
        while offset + header <= len(data):
            length, kind, _flags, answer_seq, _pid = nl._NLMSGHDR.unpack_from(data, offset)
            if length < header or offset + length > len(data):
                raise OSError("malformed netlink answer")
            body = offset + header
            if answer_seq == seq:
                if kind == nl._NLMSG_DONE:
                    return
                if kind == nl._NLMSG_ERROR:
                    code = -struct.unpack_from("=i", data, body)[0] if length >= header + 4 else 0
                    if code:
                        raise OSError(code, "sock_diag refused")
                elif kind == nl._SOCK_DIAG_BY_FAMILY and length >= header + nl._MSG_SIZE:
                    raw = data[body + nl._SRC_AT : body + nl._SRC_AT + size]
                    ip = str(ipaddress.ip_address(raw))
                    if not on_loopback(ip):
                        _family, state = nl._MSG_HEAD.unpack_from(data, body)
                        sport, _dport = nl._MSG_PORTS.unpack_from(data, body + nl._PORTS_AT)
                        what = (
                            "udp"
                            if protocol == socket.IPPROTO_UDP
                            else nl.TCP_STATES.get(state, str(state))
                        )
                        (inode,) = _INODE.unpack_from(data, body + _INODE_AT)
                        found.append((inode, f"{ip}:{sport}", what))
            offset += (length + 3) & ~3


def _beyond_loopback_by_netlink() -> list[tuple[int, str, str]]:
    found: list[tuple[int, str, str]] = []
    deadline = time.monotonic() + nl.TIMEOUT
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, nl._NETLINK_SOCK_DIAG) as sock:
        seq = 0
        for protocol, states in (
            (socket.IPPROTO_TCP, _TCP_STATES),
            (socket.IPPROTO_UDP, _UDP_STATES),
        ):
            for family in (socket.AF_INET, socket.AF_INET6):
                seq += 1
                _dump(sock, family, protocol, states, seq, deadline, found)
    return found


def _socket_inodes(process: psutil.Process) -> set[int]:
    inodes = set()
    folder = f"/proc/{process.pid}/fd"
    try:
        names = os.listdir(folder)
    except OSError:
        return inodes
    for name in names:
        try:
            link = os.readlink(f"{folder}/{name}")
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(int(link[8:-1]))
    return inodes


_netlink_works: bool | None = None


def bound_beyond_loopback(processes: list[psutil.Process]) -> list[tuple[str, str]]:
    """("ip:port", kind) of each inet socket of ``processes`` bound beyond loopback; kind
    is "udp" or the TCP state (psutil's names)."""
    global _netlink_works
    if _netlink_works is not False and hasattr(socket, "AF_NETLINK"):
        try:
            candidates = _beyond_loopback_by_netlink()
            _netlink_works = True
        except OSError:
            if _netlink_works is None:
                _netlink_works = False
            candidates = None  # busy now (a timeout): ask psutil this time
        if candidates is not None:
            if not candidates:
                return []
            theirs = set().union(*(_socket_inodes(p) for p in processes))
            return [(address, kind) for inode, address, kind in candidates if inode in theirs]
    return _by_psutil(processes)


def _by_psutil(processes: list[psutil.Process]) -> list[tuple[str, str]]:
    found = []
    for process in processes:
        try:
            connections = process.net_connections(kind="inet")
        except (psutil.NoSuchProcess, psutil.AccessDenied, FileNotFoundError):
            continue
        for conn in connections:
            if conn.laddr and not on_loopback(conn.laddr.ip):
                kind = "udp" if conn.type == socket.SOCK_DGRAM else conn.status
                found.append((f"{conn.laddr.ip}:{conn.laddr.port}", kind))
    return found
