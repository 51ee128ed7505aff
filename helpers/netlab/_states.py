"""Socket states read from the operating system: what ``ss -tan`` or ``netstat`` would show.

    socket_table(ports=[5000])                          # LISTEN, ESTABLISHED, TIME_WAIT ...
    wait_for_state(5000, "TIME_WAIT", timeout=2)        # returns the table once it is there

Rules of this file:
- It only reads. On Linux it parses ``/proc/net/tcp`` and ``/proc/net/tcp6``: no root
  needed, and TIME_WAIT sockets are there although no process owns them any more. The
  owning process comes from the ``socket:[inode]`` links in ``/proc/<pid>/fd``, which
  a user can read for their own processes only. Elsewhere it asks psutil, and the table
  says what the platform hides (macOS shows other processes' sockets only to root).
- Output is deterministic when asked: rows are sorted by local port, remote port and
  state; ``labels={port: "client"}`` and ``hide_ephemeral=True`` replace the numbers
  that change from run to run, so a notebook's stored output stays the same.

Why ``wait_for_state`` polls: the kernel announces no state change to a process that
does not own the socket (TIME_WAIT has no owner at all), so the only way to see one
is to look again. It looks every 10 ms, waiting on a ``threading.Event`` (not a bare
sleep), and gives up after ``timeout`` with a ``TimeoutError`` that shows the table.
"""

from __future__ import annotations

import html
import ipaddress
import os
import socket
import sys
import threading
import time
from dataclasses import dataclass, field

from ._addresses import format_address
from ._netlink import TCP_STATES, in_flight_by_netlink

STATE_NAMES = frozenset(TCP_STATES.values())

POLL_INTERVAL = 0.01
_ADDRESS_WIDTH = len("255.255.255.255:65535")

# Colours of the state badges in HTML: translucent, so they suit light and dark themes.
_STATE_COLORS = {
    "LISTEN": "rgba(47, 158, 68, 0.22)",
    "ESTABLISHED": "rgba(59, 125, 221, 0.22)",
    "TIME_WAIT": "rgba(134, 142, 150, 0.28)",
    "CLOSE_WAIT": "rgba(232, 89, 12, 0.24)",
    "FIN_WAIT1": "rgba(174, 62, 201, 0.2)",
    "FIN_WAIT2": "rgba(174, 62, 201, 0.2)",
    "LAST_ACK": "rgba(232, 89, 12, 0.18)",
    "CLOSING": "rgba(232, 89, 12, 0.18)",
    "SYN_SENT": "rgba(250, 176, 5, 0.25)",
    "SYN_RECV": "rgba(250, 176, 5, 0.25)",
}


@dataclass(frozen=True, order=False)
class SocketRow:
    """One TCP socket as the OS sees it. ``pid`` is None when unknown or ownerless."""

    proto: str  # "tcp" or "tcp6"
    local: tuple[str, int]
    remote: tuple[str, int]
    state: str
    pid: int | None = None
    # bytes sent but not yet acknowledged / received but not yet read (Linux /proc only)
    tx_queue: int = field(default=0, compare=False, repr=False)
    rx_queue: int = field(default=0, compare=False, repr=False)

    @property
    def local_port(self) -> int:
        return self.local[1]

    @property
    def remote_port(self) -> int:
        return self.remote[1]


# --- reading -----------------------------------------------------------------------------


def _decode_address(text: str) -> tuple[str, int]:
    """'0100007F:1388' -> ('127.0.0.1', 5000); the kernel prints 32-bit words in host order."""
    address, port = text.split(":")
    raw = b"".join(
        int(address[i : i + 8], 16).to_bytes(4, sys.byteorder) for i in range(0, len(address), 8)
    )
    return str(ipaddress.ip_address(raw)), int(port, 16)


def _read_proc(path: str, proto: str, ports: set[int] | None = None) -> list[tuple[SocketRow, int]]:
    """(row, inode) for every line of /proc/net/tcp or tcp6; a missing file gives none.

    With ``ports``, only the lines on those ports, picked before decoding: this runs at
    the end of notebook cells, and the file can hold thousands of TIME_WAIT lines.

    The kernel writes the file in pieces as it is read, so a socket that moves in the
    kernel's tables meanwhile can be listed twice (seen: one TIME_WAIT socket as two
    rows). A socket is its addresses, state and inode; each is kept once.
    """
    rows = []
    seen = set()
    try:
        with open(path, encoding="ascii") as file:
            lines = file.readlines()[1:]
    except OSError:
        return rows  # tcp6 is absent when IPv6 is disabled
    needles = [f":{port:04X} " for port in ports] if ports is not None else None
    for line in lines:
        if needles is not None and not any(needle in line for needle in needles):
            continue
        fields = line.split()
        if len(fields) < 10:
            continue
        if ports is not None and not (
            int(fields[1][-4:], 16) in ports or int(fields[2][-4:], 16) in ports
        ):
            continue
        key = (fields[1], fields[2], fields[3], fields[9])
        if key in seen:
            continue
        seen.add(key)
        state = TCP_STATES.get(int(fields[3], 16), f"0x{fields[3]}")
        tx_queue, rx_queue = (int(n, 16) for n in fields[4].split(":"))
        row = SocketRow(
            proto,
            _decode_address(fields[1]),
            _decode_address(fields[2]),
            state,
            tx_queue=tx_queue,
            rx_queue=rx_queue,
        )
        rows.append((row, int(fields[9])))
    return rows


_OPENING = frozenset({"SYN_SENT", "SYN_RECV", "NEW_SYN_RECV"})


def _rows_on_ports(path: str, ports: set[int]) -> list[SocketRow]:
    """The rows of one /proc file on ``ports`` (see _read_proc)."""
    return [row for row, _inode in _read_proc(path, "tcp", ports)]


def table_source() -> str:
    """Where netlab reads socket states: ``"proc"`` (Linux's /proc/net/tcp), ``"psutil"``
    (elsewhere), or what ``NETLAB_OS_TABLE`` says (``proc``, ``psutil`` or ``none``).

    What each can see: ``proc`` sees every socket of the machine with its queues, so
    ``in_flight`` can tell data that a sender has sent but the receiver's socket has not
    yet got; ``psutil`` sees states, not queues (and, on macOS, other users' sockets only
    as root); ``none`` sees nothing (the tests use it to stand in for macOS and Windows).
    """
    chosen = os.environ.get("NETLAB_OS_TABLE", "").strip().lower()
    if chosen in ("proc", "psutil", "none"):
        return chosen
    return "proc" if os.path.exists("/proc/net/tcp") else "psutil"


def in_flight(ports: set[int]) -> bool:
    """True when the kernel is still moving something on these ports (``proc`` only).

    A handshake not yet complete, or bytes (a FIN counts as one) sent but neither
    acknowledged nor waiting in the peer's receive queue. On loopback the kernel usually
    delivers within the sender's own call, but under load it may finish that work a
    moment after connect(), sendall() or close() has returned in the sender, and until
    then the receiving server thread cannot see it coming. netlab's quiet check
    (``_server.py``) asks this before it trusts "settled". Other sources cannot see
    queues and answer False: there netlab relies on loopback's delivery in the call.
    """
    if not ports or table_source() != "proc":
        return False
    answer = in_flight_by_netlink(ports)  # the same rule, asked in ~0.5 ms, not ~15 ms
    if answer is not None:
        return answer
    mine = _rows_on_ports("/proc/net/tcp", ports) + _rows_on_ports("/proc/net/tcp6", ports)
    by_ends = {(r.local, r.remote): r for r in mine}  # a row's peer uses the same ports
    for row in mine:
        if row.state in _OPENING:
            return True
        if row.state == "LISTEN":
            continue  # nothing is in flight to a listener (its queues count connections)
        if row.tx_queue:
            peer = by_ends.get((row.remote, row.local))
            if peer is None or peer.rx_queue == 0:
                return True  # not arrived yet (data waiting in a full peer buffer is not)
    return False


def _owners(inodes: set[int], only_pid: int | None = None) -> dict[int, int]:
    """inode -> pid, from the ``socket:[inode]`` links of the processes we may read."""
    found: dict[int, int] = {}
    if not inodes:
        return found
    if only_pid is not None:
        pids = [only_pid]
    else:
        me = os.getpid()
        pids = sorted((int(p) for p in os.listdir("/proc") if p.isdigit()), key=lambda p: p != me)
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue  # another user's process, or gone
        for fd in fds:
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if link.startswith("socket:["):
                inode = int(link[8:-1])
                if inode in inodes:
                    found.setdefault(inode, pid)
        if len(found) == len(inodes):
            break
    return found


def _rows_from_proc(ports: set[int] | None, pid: int | None):
    """(rows, notes, listening ports) from /proc/net."""
    entries = _read_proc("/proc/net/tcp", "tcp") + _read_proc("/proc/net/tcp6", "tcp6")
    listening = {r.local_port for r, _ in entries if r.state == "LISTEN"}
    if ports is not None:
        entries = [(r, i) for r, i in entries if r.local_port in ports or r.remote_port in ports]
    owners = _owners({inode for _, inode in entries if inode}, pid)
    rows, notes, hidden = [], [], 0
    for row, inode in entries:
        owner = owners.get(inode)
        if pid is not None and owner != pid:
            continue
        if inode and owner is None:
            hidden += 1
        rows.append(SocketRow(row.proto, row.local, row.remote, row.state, owner))
    if hidden:
        notes.append(
            f"{hidden} socket(s) belong to processes of another user: their process is not "
            "shown (root sees it)."
        )
    if pid is not None:
        notes.append(
            "Filtered by process: TIME_WAIT sockets belong to no process, so they are not "
            "shown; filter by port to see them."
        )
    return rows, notes, listening


def _rows_from_psutil(ports: set[int] | None, pid: int | None):
    """(rows, notes, listening ports) from psutil."""
    import psutil

    notes = []
    try:
        if pid is None:
            connections = psutil.net_connections(kind="tcp")
        else:
            connections = [
                c._replace(pid=pid) for c in psutil.Process(pid).net_connections(kind="tcp")
            ]
    except psutil.AccessDenied:
        own = os.getpid() if pid is None else pid
        connections = [c._replace(pid=own) for c in psutil.Process(own).net_connections("tcp")]
        notes.append(
            f"{sys.platform} shows the sockets of other processes only to root: this table "
            f"shows those of process {own} only, and no TIME_WAIT socket (it has no process)."
        )
    rows, listening = [], set()
    for c in dict.fromkeys(connections):  # psutil reads /proc too: once each (_read_proc)
        proto = "tcp6" if c.family == socket.AF_INET6 else "tcp"
        anywhere = ("::", 0) if proto == "tcp6" else ("0.0.0.0", 0)
        local = tuple(c.laddr) if c.laddr else anywhere
        remote = tuple(c.raddr) if c.raddr else anywhere
        state = "CLOSE" if c.status == "NONE" else c.status
        row = SocketRow(proto, (local[0], local[1]), (remote[0], remote[1]), state, c.pid)
        if state == "LISTEN":
            listening.add(row.local_port)
        if ports is not None and row.local_port not in ports and row.remote_port not in ports:
            continue
        rows.append(row)
    if any(r.state == "TIME_WAIT" for r in rows):
        notes.append("TIME_WAIT sockets belong to no process any more: no pid for them.")
    return rows, notes, listening


# --- showing -----------------------------------------------------------------------------


def _ephemeral_range() -> range:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as file:
            low, high = map(int, file.read().split())
        return range(low, high + 1)
    except (OSError, ValueError):
        return range(49152, 65536)  # IANA's range: macOS and Windows use it


class SocketTable:
    """Rows of ``SocketRow``; ``repr()`` is a text table, Jupyter shows an HTML table.

    ``labels`` maps port numbers to names shown instead (``{port: "client"}`` shows
    ``127.0.0.1:<client>``). ``hide_ephemeral=True`` shows ``<ephemeral>`` for every other
    port in the OS's ephemeral range, except the ``ports`` asked for and the ports a
    socket listens on (so a server's port stays, even one picked by ``bind(0)``), and
    ``another process`` for other processes' pids: the numbers that change between runs.
    """

    columns = ("proto", "local address", "remote address", "state", "process")

    def __init__(
        self,
        rows,
        notes=(),
        *,
        ports=None,
        labels: dict[int, str] | None = None,
        hide_ephemeral: bool = False,
        listening=(),
    ):
        self.ports = None if ports is None else frozenset(ports)
        self.listening = frozenset(listening)
        self.labels = dict(labels or {})
        self.hide_ephemeral = hide_ephemeral
        self.notes = list(notes)
        self.rows = sorted(rows, key=self._sort_key)

    # the numbers a reader sees, and the order they are sorted in
    def _port_text(self, port: int) -> str:
        if port == 0:
            return "*"
        if port in self.labels:
            return f"<{self.labels[port]}>"
        if self.hide_ephemeral and self._is_ephemeral(port):
            return "<ephemeral>"
        return str(port)

    def _is_ephemeral(self, port: int) -> bool:
        if port in self.listening or (self.ports is not None and port in self.ports):
            return False
        return port in _ephemeral_range()

    def _port_key(self, port: int):
        if port == 0:
            return (-1, 0, "")  # a listener's remote end first
        text = self._port_text(port)
        return (0, port, "") if text == str(port) else (1, 0, text)

    def _sort_key(self, row: SocketRow):
        return (
            self._port_key(row.local_port),
            self._port_key(row.remote_port),
            row.state,
            row.proto,
            self.address_text(row.local),
            self.address_text(row.remote),
        )

    def address_text(self, address: tuple[str, int]) -> str:
        host, port = address
        return format_address((host, self._port_text(port)))

    def process_text(self, pid: int | None) -> str:
        if pid is None:
            return "-"
        if pid == os.getpid():
            return "this process"
        return "another process" if self.hide_ephemeral else f"pid {pid}"

    def cells(self) -> list[tuple[str, str, str, str, str]]:
        return [
            (
                r.proto,
                self.address_text(r.local),
                self.address_text(r.remote),
                r.state,
                self.process_text(r.pid),
            )
            for r in self.rows
        ]

    # --- container ---
    def __iter__(self):
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index):
        return self.rows[index]

    def states(self) -> list[str]:
        return [row.state for row in self.rows]

    # --- rendering ---
    def _empty_message(self) -> str:
        if self.ports:
            listed = ", ".join(map(str, sorted(self.ports)))
            return f"no TCP socket uses port {listed}"
        return "no TCP socket found"

    def text(self) -> str:
        cells = self.cells()
        if not cells:
            lines = [self._empty_message()]
        else:
            widths = [max(len(row[i]) for row in [self.columns, *cells]) for i in range(5)]
            # Address columns at least as wide as "255.255.255.255:65535": a 4-digit and a
            # 5-digit port give the same layout, so a stored notebook output stays valid.
            widths[1] = max(widths[1], _ADDRESS_WIDTH)
            widths[2] = max(widths[2], _ADDRESS_WIDTH)
            lines = [
                "  ".join(
                    value.ljust(width) for value, width in zip(row, widths, strict=True)
                ).rstrip()
                for row in [self.columns, *cells]
            ]
        lines += [f"note: {note}" for note in self.notes]
        return "\n".join(lines)

    def html(self) -> str:
        e = html.escape
        mono = "font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace"
        parts = ['<div class="netlab-states">']
        if not self.rows:
            parts.append(f"<p>{e(self._empty_message())}</p>")
        else:
            parts.append('<table style="border-collapse: collapse; margin: 4px 0">')
            parts.append("<thead><tr>")
            for name in self.columns:
                parts.append(
                    f'<th style="text-align: left; padding: 3px 12px 3px 0; '
                    f'border-bottom: 1px solid currentColor">{e(name)}</th>'
                )
            parts.append("</tr></thead><tbody>")
            for proto, local, remote, state, process in self.cells():
                color = _STATE_COLORS.get(state, "rgba(134, 142, 150, 0.18)")
                parts.append(
                    "<tr>"
                    f'<td style="padding: 2px 12px 2px 0">{e(proto)}</td>'
                    f'<td style="padding: 2px 12px 2px 0; {mono}">{e(local)}</td>'
                    f'<td style="padding: 2px 12px 2px 0; {mono}">{e(remote)}</td>'
                    f'<td style="padding: 2px 12px 2px 0"><span style="background: {color}; '
                    f'border-radius: 4px; padding: 1px 6px; {mono}">{e(state)}</span></td>'
                    f'<td style="padding: 2px 12px 2px 0">{e(process)}</td>'
                    "</tr>"
                )
            parts.append("</tbody></table>")
        for note in self.notes:
            parts.append(f'<p style="margin: 2px 0; opacity: 0.8">note: {e(note)}</p>')
        parts.append("</div>")
        return "".join(parts)

    def __repr__(self) -> str:
        return self.text()

    __str__ = __repr__

    def _repr_html_(self) -> str:
        return self.html()


def _as_ports(ports) -> set[int] | None:
    if ports is None:
        return None
    if isinstance(ports, int):
        return {ports}
    return {int(p) for p in ports}


def socket_table(
    ports=None,
    pid: int | None = None,
    *,
    labels: dict[int, str] | None = None,
    hide_ephemeral: bool = False,
    source: str | None = None,
) -> SocketTable:
    """The TCP sockets whose local or remote port is in ``ports`` (an int or several).

    ``pid`` keeps the sockets of that process only. ``source`` is ``"proc"`` (Linux,
    the default there) or ``"psutil"`` (the default elsewhere).

        socket_table(5000, labels={client_port: "client"})
    """
    wanted = _as_ports(ports)
    if source is None:
        source = table_source()
        if source == "none":
            source = "psutil"
    if source == "proc":
        rows, notes, listening = _rows_from_proc(wanted, pid)
    elif source == "psutil":
        rows, notes, listening = _rows_from_psutil(wanted, pid)
    else:
        raise ValueError(f"source must be 'proc' or 'psutil', not {source!r}")
    return SocketTable(
        rows,
        notes,
        ports=wanted,
        labels=labels,
        hide_ephemeral=hide_ephemeral,
        listening=listening,
    )


def wait_for_state(
    port: int,
    state: str,
    timeout: float = 2.0,
    *,
    local_only: bool = False,
    **table_options,
) -> SocketTable:
    """Wait until a socket on ``port`` is in ``state``; return the table that shows it.

    ``local_only=True`` looks only at sockets whose *local* port is ``port`` (the
    server's own sockets, when ``port`` is the server's). Raises ``TimeoutError`` with
    the current table when the state does not appear within ``timeout`` seconds.

        wait_for_state(client_port, "TIME_WAIT", local_only=True)
    """
    state = state.upper()
    if state not in STATE_NAMES:
        raise ValueError(
            f"unknown TCP state {state!r}: use one of {', '.join(sorted(STATE_NAMES))}"
        )
    tick = threading.Event()  # never set: its wait() is the bounded pause between looks
    deadline = time.monotonic() + timeout
    while True:
        table = socket_table(port, **table_options)
        if any(row.state == state and (row.local_port == port or not local_only) for row in table):
            return table
        left = deadline - time.monotonic()
        if left <= 0:
            where = f"with local port {port}" if local_only else f"on port {port}"
            raise TimeoutError(
                f"no socket {where} reached {state} within {timeout} s. "
                f"What the OS shows now:\n{table.text()}"
            )
        tick.wait(min(POLL_INTERVAL, left))
