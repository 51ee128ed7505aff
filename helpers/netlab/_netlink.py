"""TCP sockets on some ports, asked of the kernel over netlink (``sock_diag``), not /proc.

    rows_on_ports({5000})   # [Row(state='LISTEN', local=('127.0.0.1', 5000), ...), ...]
    in_flight({5000})       # the rule of _states.in_flight; None when netlink is refused

Why: ``_states.in_flight`` runs at the end of every notebook cell and reads the whole of
``/proc/net/tcp`` and ``/proc/net/tcp6``, which the kernel formats as text for every
socket of the machine (thousands of TIME_WAIT lines on a busy one) before Python throws
nearly all of them away. Here the kernel gets a small filter program
(``INET_DIAG_REQ_BYTECODE``: "source port == p or destination port == p" for each ``p``)
and sends back the matching sockets only, as binary ``struct inet_diag_msg`` records.

What is asked (Linux ``include/uapi/linux/inet_diag.h``, ``sock_diag(7)``):
- one ``SOCK_DIAG_BY_FAMILY`` dump request (``struct inet_diag_req_v2``) for AF_INET and
  one for AF_INET6, protocol TCP, on a ``NETLINK_SOCK_DIAG`` socket that lives for one
  call; AF_INET6 covers IPv4-mapped addresses, as ``/proc/net/tcp6`` does;
- states: every state of ``_states.TCP_STATES``, 1 to 12. Bit 12 (TCP_NEW_SYN_RECV) is
  what brings the request sockets of half-open connections; the kernel reports them as
  SYN_RECV (state 3), as ``/proc/net/tcp`` does. TIME_WAIT sockets come with their
  sub-state, as in /proc. Bit 13 (TCP_BOUND_INACTIVE, bound but neither listening nor
  connected) is left out: /proc does not show those either;
- the filter: for each port a ``INET_DIAG_BC_S_EQ`` and a ``INET_DIAG_BC_D_EQ`` test,
  joined by ``INET_DIAG_BC_JMP`` the way ``ss`` joins "or". A kernel older than 4.16
  refuses those two codes (EINVAL): the module then sends ``S_GE``/``S_LE`` pairs instead.

What comes back differs from /proc in one column only: for a LISTEN socket the kernel's
``idiag_wqueue`` is the backlog given to ``listen()`` (``sk_max_ack_backlog``, what ``ss``
shows as Send-Q), where /proc/net/tcp prints ``write_seq - snd_una``, 0 for a listener.
``rx_queue`` of a listener is the number of connections waiting for ``accept()`` in both.
``in_flight`` never looks at a listener's queues, so the difference does not matter to it.

Rules of this file: standard library only; it only reads; every netlink call has a
timeout (``TIMEOUT``); it never raises because a kernel, a container (seccomp, gVisor)
or a platform refuses: ``rows_on_ports`` and ``in_flight`` return None, and the caller
reads /proc instead.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
import struct
import sys
import time
from typing import NamedTuple

# Linux include/net/tcp_states.h; psutil uses the same names.
TCP_STATES = {
    1: "ESTABLISHED",
    2: "SYN_SENT",
    3: "SYN_RECV",
    4: "FIN_WAIT1",
    5: "FIN_WAIT2",
    6: "TIME_WAIT",
    7: "CLOSE",
    8: "CLOSE_WAIT",
    9: "LAST_ACK",
    10: "LISTEN",
    11: "CLOSING",
    12: "NEW_SYN_RECV",
}

TIMEOUT = 0.5  # seconds for one whole call; the kernel answers in microseconds

# include/uapi/linux/netlink.h, sock_diag.h, inet_diag.h
_NETLINK_SOCK_DIAG = 4
_SOCK_DIAG_BY_FAMILY = 20
_NLM_F_REQUEST = 0x01
_NLM_F_DUMP = 0x300  # NLM_F_ROOT | NLM_F_MATCH
_NLMSG_ERROR = 2
_NLMSG_DONE = 3
_INET_DIAG_REQ_BYTECODE = 1
_BC_JMP = 1
_BC_S_GE, _BC_S_LE, _BC_D_GE, _BC_D_LE = 2, 3, 4, 5
_BC_S_EQ, _BC_D_EQ = 11, 12

_ALL_STATES = sum(1 << state for state in TCP_STATES)  # 1..12, NEW_SYN_RECV included
_OPENING = frozenset({"SYN_SENT", "SYN_RECV", "NEW_SYN_RECV"})

_NLMSGHDR = struct.Struct("=IHHII")  # len, type, flags, seq, pid
_NLATTR = struct.Struct("=HH")  # len, type
_REQ_V2 = struct.Struct("=BBBxI48x")  # family, protocol, ext, pad, states, sockid (all 0)
_BC_OP = struct.Struct("=BBH")  # code, yes, no
# struct inet_diag_msg: family, state, timer, retrans, then inet_diag_sockid (ports in
# network order, 16 bytes of source and destination address, ifindex, cookie), then
# expires, rqueue, wqueue, uid, inode.
_MSG_HEAD = struct.Struct("=BB2x")
_MSG_PORTS = struct.Struct("!HH")
_MSG_QUEUES = struct.Struct("=II")
_MSG_UID = struct.Struct("=I")
_MSG_SIZE = 72
# idiag_ext asks for INET_DIAG_INFO (attribute 2): the socket's struct tcp_info, whose
# tcpi_bytes_received (RFC 4898's HCThruOctetsReceived, Linux 4.1+) sits at offset 128.
_INET_DIAG_INFO = 2
_EXT_INFO = 1 << (_INET_DIAG_INFO - 1)
_BYTES_RECEIVED = struct.Struct("=Q")
_BYTES_RECEIVED_AT = 128
_PORTS_AT, _SRC_AT, _DST_AT, _QUEUES_AT, _UID_AT = 4, 8, 24, 56, 64

_BUFSIZE = 65536  # more than the kernel puts in one dump message (at most 32 KiB)
_MAX_BYTECODE = 65535 - _NLATTR.size  # an nlattr's length is 16 bits


class Row(NamedTuple):
    """One TCP socket: a tuple (state, local, remote, rx_queue, tx_queue)."""

    state: str  # a value of _states.TCP_STATES
    local: tuple[str, int]
    remote: tuple[str, int]
    rx_queue: int  # idiag_rqueue
    tx_queue: int  # idiag_wqueue (a listener's backlog for LISTEN, see the module text)
    bytes_received: int | None = None  # tcpi_bytes_received: all bytes that arrived, ever
    uid: int | None = None  # idiag_uid: the user owning the socket (0 for TIME_WAIT)


class _Refused(Exception):
    """The kernel, or the platform, does not answer sock_diag requests."""


# --- the filter program ----------------------------------------------------------------


def _program(tests: list[list[tuple[int, int]]]) -> bytes:
    """Bytecode accepting a socket when all the (code, port) of one of ``tests`` hold.

    Layout, as ``ss`` compiles "A or B": each test's port comparisons (8 bytes each:
    the op, then an op whose ``no`` holds the port), then, unless it is the last test,
    a 4-byte JMP. A comparison that holds goes on to the next 8 bytes (yes = 8); one
    that fails jumps to the byte after this test's JMP: the start of the next test, or,
    for the last test, 4 bytes past the end, which the kernel takes as "reject". The JMP
    is reached when every comparison of its test held, and jumps to the end: "accept".
    The kernel's audit (inet_diag_bc_audit) wants every offset a multiple of 4, at most
    4 past the end, and every jump target on an op boundary: all hold here.
    """
    ends, length = [], 0
    for i, test in enumerate(tests):
        length += 8 * len(test)
        ends.append(length)
        if i < len(tests) - 1:
            length += 4
    parts = []
    offset = 0
    for i, test in enumerate(tests):
        for code, port in test:
            parts.append(_BC_OP.pack(code, 8, ends[i] + 4 - offset))
            parts.append(_BC_OP.pack(0, 0, port))
            offset += 8
        if i < len(tests) - 1:
            parts.append(_BC_OP.pack(_BC_JMP, 4, length - offset))
            offset += 4
    return b"".join(parts)


def _port_tests(ports, equal_codes: bool) -> list[list[tuple[int, int]]]:
    tests = []
    for port in sorted(ports):
        if equal_codes:
            tests += [[(_BC_S_EQ, port)], [(_BC_D_EQ, port)]]
        else:  # kernels before 4.16
            tests += [[(_BC_S_GE, port), (_BC_S_LE, port)], [(_BC_D_GE, port), (_BC_D_LE, port)]]
    return tests


# --- one netlink conversation ----------------------------------------------------------


def _request(family: int, seq: int, bytecode: bytes) -> bytes:
    body = _REQ_V2.pack(family, socket.IPPROTO_TCP, _EXT_INFO, _ALL_STATES)
    body += _NLATTR.pack(_NLATTR.size + len(bytecode), _INET_DIAG_REQ_BYTECODE) + bytecode
    flags = _NLM_F_REQUEST | _NLM_F_DUMP
    return _NLMSGHDR.pack(_NLMSGHDR.size + len(body), _SOCK_DIAG_BY_FAMILY, flags, seq, 0) + body


def _address(raw: bytes) -> str:
    # The same text as _states._decode_address gives for the same bytes.
    return str(ipaddress.ip_address(raw))


def _dump(nl: socket.socket, family: int, seq: int, bytecode: bytes, deadline: float, rows):
    """Send one dump request and append a Row per answer until NLMSG_DONE."""
    nl.settimeout(max(deadline - time.monotonic(), 0.001))
    nl.sendto(_request(family, seq, bytecode), (0, 0))
    address_size = 4 if family == socket.AF_INET else 16
    header = _NLMSGHDR.size
    while True:
        nl.settimeout(max(deadline - time.monotonic(), 0.001))
        data = nl.recv(_BUFSIZE)
        if not data:
            raise _Refused("netlink socket closed")
        offset = 0
        while offset + header <= len(data):
            length, kind, _flags, answer_seq, _pid = _NLMSGHDR.unpack_from(data, offset)
            if length < header or offset + length > len(data):
                raise _Refused("malformed netlink answer")
            body = offset + header
            if answer_seq != seq:
                pass  # not an answer to this request
            elif kind == _NLMSG_DONE:
                if length >= header + 4 and struct.unpack_from("=i", data, body)[0] < 0:
                    code = -struct.unpack_from("=i", data, body)[0]
                    raise OSError(code, f"sock_diag dump: {errno.errorcode.get(code, code)}")
                return
            elif kind == _NLMSG_ERROR:
                code = -struct.unpack_from("=i", data, body)[0] if length >= header + 4 else 0
                if code:
                    raise OSError(code, f"sock_diag: {errno.errorcode.get(code, code)}")
            elif kind == _SOCK_DIAG_BY_FAMILY and length >= header + _MSG_SIZE:
                _family, state = _MSG_HEAD.unpack_from(data, body)
                sport, dport = _MSG_PORTS.unpack_from(data, body + _PORTS_AT)
                src = data[body + _SRC_AT : body + _SRC_AT + address_size]
                dst = data[body + _DST_AT : body + _DST_AT + address_size]
                rqueue, wqueue = _MSG_QUEUES.unpack_from(data, body + _QUEUES_AT)
                rows.append(
                    Row(
                        TCP_STATES.get(state, f"0x{state:02X}"),
                        (_address(src), sport),
                        (_address(dst), dport),
                        rqueue,
                        wqueue,
                        _bytes_received(data, body + _MSG_SIZE, offset + length),
                        _MSG_UID.unpack_from(data, body + _UID_AT)[0],
                    )
                )
            offset += (length + 3) & ~3


def _bytes_received(data: bytes, at: int, end: int) -> int | None:
    """tcpi_bytes_received from the INET_DIAG_INFO attribute between ``at`` and ``end``."""
    while at + _NLATTR.size <= end:
        length, kind = _NLATTR.unpack_from(data, at)
        if length < _NLATTR.size:
            return None
        if kind == _INET_DIAG_INFO and length - _NLATTR.size >= _BYTES_RECEIVED_AT + 8:
            return _BYTES_RECEIVED.unpack_from(data, at + _NLATTR.size + _BYTES_RECEIVED_AT)[0]
        at += (length + 3) & ~3
    return None


def _ask(tests: list[list[tuple[int, int]]]) -> list[Row]:
    """Rows of both families accepted by the program of ``tests``; raises on refusal."""
    bytecode = _program(tests)
    if len(bytecode) > _MAX_BYTECODE:
        raise _Refused("too many ports for one filter program")
    deadline = time.monotonic() + TIMEOUT
    rows: list[Row] = []
    nl = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, _NETLINK_SOCK_DIAG)
    with nl:
        _dump(nl, socket.AF_INET, 1, bytecode, deadline, rows)
        _dump(nl, socket.AF_INET6, 2, bytecode, deadline, rows)
    return rows


# --- the interface ---------------------------------------------------------------------

_available: bool | None = None  # None: not probed yet
_equal_codes = True  # False once the kernel has refused INET_DIAG_BC_S_EQ / D_EQ


def _query(ports) -> list[Row]:
    """Rows on ``ports``; picks the older comparison codes if the kernel wants them."""
    global _equal_codes
    try:
        return _ask(_port_tests(ports, _equal_codes))
    except OSError as error:
        if not (_equal_codes and error.errno == errno.EINVAL):
            raise
    _equal_codes = False  # EINVAL from the filter audit: a kernel before 4.16
    return _ask(_port_tests(ports, False))


def available() -> bool:
    """True when this kernel answers sock_diag requests for TCP (probed once)."""
    global _available
    if _available is None:
        if not sys.platform.startswith("linux") or not hasattr(socket, "AF_NETLINK"):
            _available = False
        else:
            try:
                _query({0})  # port 0: the remote end of listeners only, a short answer
                _available = True
            except TimeoutError:
                return False  # too busy to tell now: ask again next time
            except (OSError, _Refused, struct.error, ValueError):
                _available = False
    return _available


def rows_on_ports(ports: set[int]) -> list[Row] | None:
    """The TCP sockets (IPv4 and IPv6) whose local or remote port is in ``ports``, as
    ``Row(state, local, remote, rx_queue, tx_queue)``; None when netlink is unavailable
    or the kernel did not answer within ``TIMEOUT``."""
    wanted = {int(port) for port in ports}
    wanted = {port for port in wanted if 0 <= port <= 0xFFFF}
    if not available():
        return None
    if not wanted:
        return []
    try:
        return _query(wanted)
    except (OSError, _Refused, struct.error, ValueError):
        return None


def in_flight(ports: set[int]) -> bool | None:
    """``_states.in_flight``'s rule on netlink's rows; None when netlink is unavailable.

    True when a socket on these ports is opening (SYN_SENT, SYN_RECV), or when a
    socket that is not listening has bytes (or a FIN) sent and not acknowledged while
    its peer (the row with the two ends swapped) is missing or has nothing in its
    receive queue: on their way, not yet arrived. No ports: False, as in _states.

    As in _states, a peer is found by its ends' text: an IPv4 client of an IPv6 socket
    bound to ``::ffff:127.0.0.1`` (or ``::``) has no peer row ("127.0.0.1" on one side,
    "::ffff:7f00:1" on the other), so its unacknowledged bytes count as on their way.
    """
    if not ports:
        return False
    rows = rows_on_ports(ports)
    if rows is None:
        return None
    by_ends = {(row.local, row.remote): row for row in rows}  # a row's peer uses the same ports
    for row in rows:
        if row.state in _OPENING:
            return True
        if row.state == "LISTEN":
            continue  # netlink reports a listener's backlog as tx_queue
        if row.tx_queue:
            peer = by_ends.get((row.remote, row.local))
            if peer is None or peer.rx_queue == 0:
                return True  # not arrived yet (data waiting in a full peer buffer is not)
    return False


in_flight_by_netlink = in_flight
