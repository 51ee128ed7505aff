"""Socket states read from the OS, for real sockets on loopback.

TIME_WAIT lands on the side that closed first: the tests close one side, wait (on the
socket) until the other side has seen the FIN, close that one, and then ask the OS.
``wait_for_state`` is the only polling here: the kernel announces no state change.
"""

from __future__ import annotations

import os
import socket
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

from helpers.netlab._states import (
    SocketRow,
    SocketTable,
    _decode_address,
    _read_proc,
    socket_table,
    wait_for_state,
)

SNAPSHOTS = Path(__file__).parent / "snapshots"
TIMEOUT = 5.0
linux_only = pytest.mark.skipif(
    not os.path.exists("/proc/net/tcp"), reason="reads /proc/net/tcp (Linux)"
)


class Pair:
    """A listening server, a client connected to it, and the server's accepted socket."""

    def __init__(self):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(TIMEOUT)
        self.port = self.listener.getsockname()[1]
        self.client = socket.create_connection(("127.0.0.1", self.port), timeout=TIMEOUT)
        self.client_port = self.client.getsockname()[1]
        self.server, _ = self.listener.accept()
        self.server.settimeout(TIMEOUT)

    def close(self):
        for sock in (self.client, self.server, self.listener):
            sock.close()


@pytest.fixture
def pair():
    p = Pair()
    yield p
    p.close()


def triples(table):
    return {(row.local_port, row.remote_port, row.state) for row in table}


def live(table):
    """The triples without TIME_WAIT: bind(0) may pick a port that earlier connections
    (of this run, or of another process) left in TIME_WAIT, and those rows show too."""
    return {t for t in triples(table) if t[2] != "TIME_WAIT"}


def test_decode_address_of_proc_net_tcp():
    word = int.from_bytes(socket.inet_aton("127.0.0.1"), sys.byteorder)
    assert _decode_address(f"{word:08X}:1388") == ("127.0.0.1", 5000)
    words = "".join(
        f"{int.from_bytes(socket.inet_pton(socket.AF_INET6, '::1')[i : i + 4], sys.byteorder):08X}"
        for i in range(0, 16, 4)
    )
    assert _decode_address(f"{words}:0050") == ("::1", 80)


def test_a_socket_listed_twice_by_the_kernel_is_one_row(tmp_path):
    """/proc/net/tcp is written as it is read: a socket that moves meanwhile can appear
    twice (seen: two TIME_WAIT rows for one connection). Each socket is one row."""
    header = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
    time_wait = "   0: 0100007F:9C40 0100007F:D431 06 00000000:00000000 03:00001770 00000000     0        0 0 3 0000000000000000\n"
    listen = "   1: 0100007F:9C40 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0000000000000000 100 0 0 10 0\n"
    path = tmp_path / "tcp"
    path.write_text(header + time_wait + listen + time_wait, encoding="ascii")
    rows = [row for row, _ in _read_proc(str(path), "tcp")]
    assert [(r.local_port, r.remote_port, r.state) for r in rows] == [
        (40000, 54321, "TIME_WAIT"),
        (40000, 0, "LISTEN"),
    ]


def test_listen_and_established_with_this_process(pair):
    table = socket_table(pair.port)
    assert live(table) == {
        (pair.port, 0, "LISTEN"),
        (pair.port, pair.client_port, "ESTABLISHED"),
        (pair.client_port, pair.port, "ESTABLISHED"),
    }
    assert {row.pid for row in table if row.state != "TIME_WAIT"} == {os.getpid()}
    keys = [(r.local_port, r.remote_port, r.state) for r in table]
    assert keys == sorted(keys)  # by local port, then remote port, then state
    assert "this process" in table.text()


def test_client_closes_first_client_gets_time_wait(pair):
    pair.client.close()
    assert pair.server.recv(100) == b""  # the server has seen the client's FIN
    pair.server.close()
    table = wait_for_state(pair.client_port, "TIME_WAIT", TIMEOUT, local_only=True)
    mine = [r for r in table if r.local_port == pair.client_port and r.remote_port == pair.port]
    assert [r.state for r in mine] == ["TIME_WAIT"]
    assert mine[0].pid is None  # TIME_WAIT belongs to no process
    server_side = [
        r for r in table if (r.local_port, r.remote_port) == (pair.port, pair.client_port)
    ]
    assert all(r.state != "TIME_WAIT" for r in server_side)


def test_server_closes_first_server_gets_time_wait(pair):
    pair.server.close()
    assert pair.client.recv(100) == b""  # the client has seen the server's FIN
    pair.client.close()
    table = wait_for_state(pair.port, "TIME_WAIT", TIMEOUT, local_only=True)
    server_side = [
        r for r in table if (r.local_port, r.remote_port) == (pair.port, pair.client_port)
    ]
    assert [r.state for r in server_side] == ["TIME_WAIT"]
    client_side = [
        r for r in table if (r.local_port, r.remote_port) == (pair.client_port, pair.port)
    ]
    assert all(r.state != "TIME_WAIT" for r in client_side)


def test_half_closed_close_wait_and_fin_wait2(pair):
    pair.client.close()
    assert pair.server.recv(100) == b""  # FIN received, the server has not closed yet
    table = wait_for_state(pair.client_port, "FIN_WAIT2", TIMEOUT, local_only=True)
    assert (pair.port, pair.client_port, "CLOSE_WAIT") in triples(table)
    owners = {r.state: r.pid for r in table}
    assert owners["CLOSE_WAIT"] == os.getpid()
    assert owners["FIN_WAIT2"] is None  # closed by its process: orphaned in the kernel


@linux_only
def test_psutil_source_agrees_with_proc(pair):
    assert live(socket_table(pair.port, source="psutil")) == live(socket_table(pair.port))


def test_pid_filter_hides_time_wait_and_says_so(pair):
    pair.server.close()
    assert pair.client.recv(100) == b""
    pair.client.close()
    wait_for_state(pair.port, "TIME_WAIT", TIMEOUT, local_only=True)
    mine = socket_table(pair.port, pid=os.getpid())
    assert triples(mine) == {(pair.port, 0, "LISTEN")}
    assert any("TIME_WAIT" in note for note in mine.notes)
    assert len(socket_table(pair.port, pid=1)) == 0  # not our sockets


def test_labels_and_hidden_ephemeral_ports_make_output_stable(pair):
    labelled = socket_table(pair.port, labels={pair.client_port: "client"}).text()
    assert f"127.0.0.1:{pair.port}" in labelled
    assert "127.0.0.1:<client>" in labelled and str(pair.client_port) not in labelled
    hidden = socket_table(pair.port, hide_ephemeral=True).text()
    assert "127.0.0.1:<ephemeral>" in hidden and str(pair.client_port) not in hidden
    assert f"127.0.0.1:{pair.port}" in hidden  # a listening port is not ephemeral


def test_wait_for_state_says_what_it_saw(pair):
    # CLOSE_WAIT, not TIME_WAIT: bind(0) may pick a port with TIME_WAIT rows left by
    # earlier connections, and those would end the wait (a flake seen once in 10 runs)
    with pytest.raises(TimeoutError, match="reached CLOSE_WAIT within 0.05 s") as caught:
        wait_for_state(pair.port, "close_wait", timeout=0.05)
    assert "ESTABLISHED" in str(caught.value)  # the table it saw
    with pytest.raises(ValueError, match="unknown TCP state"):
        wait_for_state(pair.port, "HALF_OPEN")


def test_bound_socket_is_not_listed_and_empty_table_says_so():
    with socket.socket() as bound:  # bound, not listening, not connected
        bound.bind(("127.0.0.1", 0))
        port = bound.getsockname()[1]
        # bind(0) may pick a port that old connections left in TIME_WAIT: only those show
        assert {row.state for row in socket_table(port)} <= {"TIME_WAIT"}
    assert SocketTable([], ports={port}).text() == f"no TCP socket uses port {port}"
    assert SocketTable([]).text() == "no TCP socket found"


# --- rendering ----------------------------------------------------------------------------

ME = os.getpid()
ROWS = [
    SocketRow("tcp", ("127.0.0.1", 51000), ("127.0.0.1", 5000), "TIME_WAIT", None),
    SocketRow("tcp", ("127.0.0.1", 5000), ("127.0.0.1", 52000), "ESTABLISHED", ME),
    SocketRow("tcp", ("127.0.0.1", 5000), ("0.0.0.0", 0), "LISTEN", ME),
    SocketRow("tcp", ("127.0.0.1", 52000), ("127.0.0.1", 5000), "ESTABLISHED", 12345),
    SocketRow("tcp6", ("::1", 5000), ("::", 0), "LISTEN", 12345),
    SocketRow("tcp", ("127.0.0.1", 5000), ("127.0.0.1", 51000), "CLOSE_WAIT", ME),
]


def stable_table():
    return SocketTable(
        ROWS,
        ["an example note"],
        ports={5000},
        labels={52000: "client"},
        hide_ephemeral=True,
        listening={5000},
    )


def test_text_table_matches_snapshot():
    text = stable_table().text()
    path = SNAPSHOTS / "states_table.txt"
    if os.environ.get("UPDATE_SNAPSHOTS"):
        path.write_text(text + "\n", encoding="utf-8")
    assert text + "\n" == path.read_text(encoding="utf-8")


def test_rows_sorted_by_local_port_remote_port_state():
    table = SocketTable(ROWS)
    assert [(r.local_port, r.remote_port, r.state) for r in table] == [
        (5000, 0, "LISTEN"),
        (5000, 0, "LISTEN"),
        (5000, 51000, "CLOSE_WAIT"),
        (5000, 52000, "ESTABLISHED"),
        (51000, 5000, "TIME_WAIT"),
        (52000, 5000, "ESTABLISHED"),
    ]
    assert [r.proto for r in table][:2] == ["tcp", "tcp6"]


class Cells(HTMLParser):
    def __init__(self, source):
        super().__init__()
        self.stack, self.errors, self.cells = [], [], []
        self.feed(source)
        self.close()
        if self.stack:
            self.errors.append(f"not closed: {self.stack}")

    def handle_starttag(self, tag, attrs):
        self.stack.append(tag)
        if tag in ("td", "th", "p"):
            self.cells.append("")

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
        else:
            self.stack.pop()

    def handle_data(self, data):
        if self.cells:
            self.cells[-1] += data


def test_html_table_is_valid_and_has_every_cell():
    table = stable_table()
    parsed = Cells(table._repr_html_())
    assert parsed.errors == []
    cells = [cell.strip() for cell in parsed.cells]
    for row in [table.columns, *table.cells()]:
        for value in row:
            assert value in cells
    assert "note: an example note" in cells
    assert repr(table) == str(table) == table.text()
