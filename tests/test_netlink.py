"""helpers.netlab._netlink (netlink sock_diag) against _states (/proc/net/tcp), on loopback.

Both are asked about the same ports and must see the same sockets: (state, local, remote,
rx_queue, tx_queue) for each. The one difference is a listener's tx_queue: netlink gives
the backlog passed to listen(), /proc/net/tcp prints 0 (write_seq - snd_una); the rx_queue
of a listener is the length of its accept queue in both. ``as_proc_shows`` maps the one to
the other, and ``test_listen_tx_queue`` pins the difference down.

The two sources are read one after the other, and other programs on the machine may have
sockets on the same port numbers (a TIME_WAIT that expires, a delayed ACK): a comparison
is repeated until /proc reads the same before and after netlink, or gives up and fails.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import statistics
import struct
import threading
import time
import types

import pytest

from helpers.netlab import _netlink, _states

TIMEOUT = 5.0
ATTEMPTS = 50
pytestmark = pytest.mark.skipif(
    not (os.path.exists("/proc/net/tcp") and _netlink.available()),
    reason="needs Linux's /proc/net/tcp and netlink sock_diag",
)


# --- reading both sources ----------------------------------------------------------------


def proc_rows(ports: set[int]) -> list[tuple]:
    rows = _states._rows_on_ports("/proc/net/tcp", ports)
    rows += _states._rows_on_ports("/proc/net/tcp6", ports)
    return sorted((r.state, r.local, r.remote, r.rx_queue, r.tx_queue) for r in rows)


def netlink_rows(ports: set[int]) -> list[tuple]:
    rows = _netlink.rows_on_ports(ports)
    assert rows is not None, "netlink refused although available() said yes"
    return sorted(tuple(row)[:5] for row in rows)  # bytes_received: see its own test


def as_proc_shows(rows: list[tuple]) -> list[tuple]:
    """netlink's rows with a listener's tx_queue as /proc prints it: 0, not the backlog."""
    return sorted((s, loc, rem, rx, 0 if s == "LISTEN" else tx) for s, loc, rem, rx, tx in rows)


def pause(seconds: float) -> None:
    threading.Event().wait(seconds)


def read_both(ports: set[int], read_netlink=netlink_rows) -> tuple[list, list]:
    """(/proc rows, netlink rows) from a moment when nothing changed between the reads."""
    for _ in range(ATTEMPTS):
        before = proc_rows(ports)
        answer = read_netlink(ports)
        after = proc_rows(ports)
        if before == after == as_proc_shows(answer):
            break
        pause(0.02)
    return after, answer


def wait_until(predicate, what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not happen within {TIMEOUT} s")
        pause(0.01)


def row_of(sock: socket.socket, ports: set[int]) -> tuple | None:
    """The /proc row of ``sock`` (its two ends as the kernel prints them), if any."""
    local, remote = sock.getsockname()[:2], sock.getpeername()[:2]
    for row in proc_rows(ports):
        if row[1] == local and row[2] == remote:
            return row
    return None


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
        return True
    except OSError:
        return False


IPV6 = _ipv6_loopback()


# --- the sockets -------------------------------------------------------------------------


class Zoo:
    """Loopback sockets in the situations the tests look at. ``ports[name]`` is the port of
    the listener of each situation; every other port is picked by the kernel."""

    def __init__(self, stack: contextlib.ExitStack):
        self.stack = stack
        self.ports: dict[str, int] = {}

    def keep(self, sock: socket.socket) -> socket.socket:
        return self.stack.enter_context(sock)

    def listener(self, name, host="127.0.0.1", backlog=5, setup=None) -> socket.socket:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = self.keep(socket.socket(family, socket.SOCK_STREAM))
        if setup is not None:
            setup(sock)
        sock.bind((host, 0))
        sock.listen(backlog)
        sock.settimeout(TIMEOUT)
        self.ports[name] = sock.getsockname()[1]
        return sock

    def pair(self, listener, host="127.0.0.1") -> tuple[socket.socket, socket.socket]:
        port = listener.getsockname()[1]
        client = self.keep(socket.create_connection((host, port), timeout=TIMEOUT))
        server = self.keep(listener.accept()[0])
        server.settimeout(TIMEOUT)
        return client, server

    def build(self) -> Zoo:
        # An idle connection.
        self.pair(self.listener("idle"))

        # Data sent, acknowledged, not read by the server: its rx_queue holds it.
        listener = self.listener("unread")
        client, server = self.pair(listener)
        client.sendall(b"x" * 1000)
        ports = {self.ports["unread"]}
        wait_until(lambda: (row_of(server, ports) or (0,) * 5)[3] == 1000, "rx_queue 1000")
        wait_until(lambda: (row_of(client, ports) or (0,) * 5)[4] == 0, "the ACK")

        # The client closes first: TIME_WAIT on the client's side.
        listener = self.listener("time_wait")
        client, server = self.pair(listener)
        closed_end = (client.getsockname(), client.getpeername())
        client.close()
        assert server.recv(1) == b""  # the FIN has arrived
        server.close()
        ports = {self.ports["time_wait"]}
        wait_until(
            lambda: any(
                row[0] == "TIME_WAIT" and (row[1], row[2]) == closed_end for row in proc_rows(ports)
            ),
            "TIME_WAIT",
        )

        # A full backlog: listen(0) holds one connection that nobody accepts; the SYN of
        # the next is dropped, so that client stays in SYN_SENT (and retransmits).
        listener = self.listener("full_backlog", backlog=0)
        self.keep(socket.create_connection(("127.0.0.1", self.ports["full_backlog"])))
        pending = self.keep(socket.socket())
        pending.setblocking(False)
        assert pending.connect_ex(("127.0.0.1", self.ports["full_backlog"])) in (
            errno.EINPROGRESS,
            errno.EAGAIN,
        )
        ports = {self.ports["full_backlog"]}
        wait_until(lambda: any(row[0] == "SYN_SENT" for row in proc_rows(ports)), "SYN_SENT")

        # TCP_DEFER_ACCEPT: the server ignores the handshake's last ACK until data comes,
        # so its side stays a request socket in SYN_RECV (the client is ESTABLISHED).
        def defer(sock):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT, 30)

        listener = self.listener("half_open", setup=defer)
        self.keep(socket.create_connection(("127.0.0.1", self.ports["half_open"])))
        ports = {self.ports["half_open"]}
        wait_until(lambda: any(row[0] == "SYN_RECV" for row in proc_rows(ports)), "SYN_RECV")

        # A full receive buffer: the client's data waits in its own send queue (tx_queue)
        # while the server's receive queue is full and unread (rx_queue).
        def small_buffer(sock):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)

        listener = self.listener("zero_window", setup=small_buffer)
        client, server = self.pair(listener)
        client.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            for _ in range(10_000):
                client.send(b"y" * 65536)
        ports = {self.ports["zero_window"]}
        wait_until(
            lambda: (
                (row_of(client, ports) or (0,) * 5)[4] > 0
                and (row_of(server, ports) or (0,) * 5)[3] > 0
            ),
            "a full receive window",
        )

        if IPV6:
            listener = self.listener("ipv6", host="::1")
            client, server = self.pair(listener, host="::1")
            client.sendall(b"z" * 10)
            ports = {self.ports["ipv6"]}
            wait_until(lambda: (row_of(server, ports) or (0,) * 5)[3] == 10, "rx_queue 10")

            # An IPv6 socket bound to an IPv4-mapped address accepts IPv4 clients: its
            # rows are in /proc/net/tcp6 (::ffff:7f00:1), the client's in /proc/net/tcp.
            def dual_stack(sock):
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)

            listener = self.listener("mapped", host="::ffff:127.0.0.1", setup=dual_stack)
            self.pair(listener, host="127.0.0.1")
        return self


@pytest.fixture(scope="module")
def zoo():
    with contextlib.ExitStack() as stack:
        yield Zoo(stack).build()


SITUATIONS = ["idle", "unread", "time_wait", "full_backlog", "half_open", "zero_window"]
SITUATIONS += ["ipv6", "mapped"] if IPV6 else []


# --- (1) the same rows -------------------------------------------------------------------


@pytest.mark.parametrize("name", SITUATIONS)
def test_same_rows_as_proc(zoo, name):
    ports = {zoo.ports[name]}
    proc, answer = read_both(ports)
    assert proc, f"/proc shows no socket on port {ports}"
    assert as_proc_shows(answer) == proc


def test_same_rows_for_all_ports_at_once(zoo):
    ports = set(zoo.ports.values())
    proc, answer = read_both(ports)
    assert as_proc_shows(answer) == proc
    states = {row[0] for row in answer}
    assert {"LISTEN", "ESTABLISHED", "TIME_WAIT", "SYN_SENT", "SYN_RECV"} <= states
    assert any(row[3] > 0 for row in answer if row[0] == "ESTABLISHED")  # unread data
    assert any(row[4] > 0 for row in answer if row[0] == "ESTABLISHED")  # zero window
    if IPV6:
        assert any(row[1][0] == "::1" for row in answer)
        assert any(row[1][0] == "::ffff:7f00:1" for row in answer)  # as /proc's decoder


def test_many_ports_and_ports_without_sockets(zoo):
    free = []
    with contextlib.ExitStack() as stack:  # ports that were free a moment ago
        for _ in range(40):
            sock = stack.enter_context(socket.socket())
            sock.bind(("127.0.0.1", 0))
            free.append(sock.getsockname()[1])
    ports = set(zoo.ports.values()) | set(free)
    proc, answer = read_both(ports)
    assert as_proc_shows(answer) == proc
    assert _netlink.rows_on_ports(set()) == []
    assert _netlink.rows_on_ports({70000, -1}) == []  # not ports: no socket, no error


def test_listen_tx_queue(zoo):
    """netlink: a listener's rx is its accept queue, tx the backlog; /proc: tx is 0."""
    with contextlib.ExitStack() as stack:
        listener = stack.enter_context(socket.socket())
        listener.bind(("127.0.0.1", 0))
        listener.listen(7)
        port = listener.getsockname()[1]
        for _ in range(2):  # two connections waiting for accept()
            stack.enter_context(socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT))
        wait_until(
            lambda: ("LISTEN", ("127.0.0.1", port), ("0.0.0.0", 0), 2, 0) in proc_rows({port}),
            "two connections in the accept queue",
        )
        answer = netlink_rows({port})
        assert ("LISTEN", ("127.0.0.1", port), ("0.0.0.0", 0), 2, 7) in answer
        assert ("LISTEN", ("127.0.0.1", port), ("0.0.0.0", 0), 2, 0) in proc_rows({port})


def test_older_comparison_codes_give_the_same_rows(zoo, monkeypatch):
    """S_GE/S_LE pairs, what the module sends to a kernel before 4.16."""
    ports = set(zoo.ports.values())
    monkeypatch.setattr(_netlink, "_equal_codes", False)
    proc, answer = read_both(ports)
    assert as_proc_shows(answer) == proc
    assert _netlink._equal_codes is False


def test_a_refused_program_falls_back_to_the_older_codes(zoo, monkeypatch):
    # The kernel audits the program: an unknown code is EINVAL, as S_EQ is before 4.16.
    with pytest.raises(OSError) as refused:
        _netlink._ask([[(99, zoo.ports["idle"])]])
    assert refused.value.errno == errno.EINVAL

    real = _netlink._port_tests

    def unknown_equal_codes(ports, equal_codes):
        if equal_codes:
            return [[(99, port)] for port in ports]
        return real(ports, equal_codes)

    monkeypatch.setattr(_netlink, "_equal_codes", True)
    monkeypatch.setattr(_netlink, "_port_tests", unknown_equal_codes)
    ports = {zoo.ports["idle"], zoo.ports["unread"]}
    proc, answer = read_both(ports)
    assert as_proc_shows(answer) == proc
    assert _netlink._equal_codes is False


# --- refusals: None, never an exception --------------------------------------------------


def _socket_module(factory):
    """A stand-in for the socket module as _netlink sees it, with another socket()."""
    fake = types.SimpleNamespace(**{k: getattr(socket, k) for k in dir(socket) if k.isupper()})
    fake.socket = factory
    return fake


class _FakeNetlink:
    def __init__(self, answer):
        self.answer = answer

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def settimeout(self, seconds):
        assert 0 < seconds <= _netlink.TIMEOUT

    def sendto(self, data, address):
        self.seq = struct.unpack_from("=I", data, 8)[0]

    def recv(self, size):
        return self.answer(self)


def _error_answer(code):
    def answer(fake):
        return struct.pack("=IHHIIi16x", 36, 2, 0, fake.seq, 0, -code)

    return answer


def _timeout_answer(fake):
    raise TimeoutError("timed out")


def _refuse(*args):
    raise PermissionError(errno.EPERM, "Operation not permitted")  # seccomp


def _no_protocol(*args):
    raise OSError(errno.EPROTONOSUPPORT, "Protocol not supported")  # gVisor, old kernels


@pytest.mark.parametrize(
    "factory",
    [
        _refuse,
        _no_protocol,
        lambda *a: _FakeNetlink(_error_answer(errno.ENOENT)),  # no inet_diag module
        lambda *a: _FakeNetlink(_error_answer(errno.EPERM)),
        lambda *a: _FakeNetlink(lambda fake: b""),
        lambda *a: _FakeNetlink(lambda fake: b"\x00" * 20),  # a message of length 0
    ],
    ids=["EPERM", "EPROTONOSUPPORT", "ENOENT", "answer EPERM", "closed", "malformed"],
)
def test_refused_gives_none(monkeypatch, factory):
    monkeypatch.setattr(_netlink, "_available", None)
    monkeypatch.setattr(_netlink, "socket", _socket_module(factory))
    assert _netlink.available() is False
    assert _netlink.rows_on_ports({5000}) is None
    assert _netlink.in_flight({5000}) is None


def test_refused_later_gives_none(monkeypatch):
    monkeypatch.setattr(_netlink, "_available", True)
    for factory in (_refuse, lambda *a: _FakeNetlink(_timeout_answer)):
        monkeypatch.setattr(_netlink, "socket", _socket_module(factory))
        assert _netlink.rows_on_ports({5000}) is None
        assert _netlink.in_flight({5000}) is None


def test_a_timeout_while_probing_is_asked_again(monkeypatch):
    monkeypatch.setattr(_netlink, "_available", None)
    monkeypatch.setattr(
        _netlink, "socket", _socket_module(lambda *a: _FakeNetlink(_timeout_answer))
    )
    assert _netlink.available() is False
    assert _netlink._available is None


def test_not_linux(monkeypatch):
    monkeypatch.setattr(_netlink, "_available", None)
    monkeypatch.setattr(_netlink, "sys", types.SimpleNamespace(platform="darwin"))
    assert _netlink.available() is False
    assert _netlink.rows_on_ports({5000}) is None
    assert _netlink.in_flight({5000}) is None


# --- (2) in_flight agrees ----------------------------------------------------------------

EXPECTED = {
    "idle": False,
    "unread": False,  # arrived: waiting in the server's receive queue
    "time_wait": False,
    "full_backlog": True,  # SYN_SENT
    "half_open": True,  # SYN_RECV
    "zero_window": False,  # waits for room in a full peer buffer: not "on its way"
    "ipv6": False,
    # The client's row is IPv4 (127.0.0.1), the server's IPv6 (::ffff:7f00:1): the rule's
    # peer lookup does not pair them, so bytes in the client's tx_queue would count as in
    # flight. The client has none here.
    "mapped": False,
}


@pytest.mark.parametrize("name", SITUATIONS)
def test_in_flight_agrees(zoo, monkeypatch, name):
    monkeypatch.delenv("NETLAB_OS_TABLE", raising=False)
    ports = {zoo.ports[name]}
    assert _states.in_flight(ports) is EXPECTED[name]
    assert _netlink.in_flight(ports) is EXPECTED[name]


def test_in_flight_agrees_on_all_ports_and_none(zoo, monkeypatch):
    monkeypatch.delenv("NETLAB_OS_TABLE", raising=False)
    ports = set(zoo.ports.values())
    assert _states.in_flight(ports) is _netlink.in_flight(ports) is True
    quiet = {zoo.ports[name] for name in ("idle", "unread", "time_wait", "zero_window")}
    assert _states.in_flight(quiet) is _netlink.in_flight(quiet) is False
    assert _states.in_flight(set()) is _netlink.in_flight(set()) is False


A, B, WILD = ("127.0.0.1", 40001), ("127.0.0.1", 40002), ("0.0.0.0", 0)
# Situations a test cannot make happen on purpose (loopback delivers within the sender's
# call): rows as each source would report them, the listener's tx_queue as each reports it.
RULE_CASES = {
    "sent, peer missing": ([("ESTABLISHED", A, B, 0, 5)], True),
    "sent, not arrived": ([("ESTABLISHED", A, B, 0, 5), ("ESTABLISHED", B, A, 0, 0)], True),
    "sent, arrived": ([("ESTABLISHED", A, B, 0, 5), ("ESTABLISHED", B, A, 5, 0)], False),
    "FIN not acknowledged": ([("FIN_WAIT1", A, B, 0, 1), ("CLOSE_WAIT", B, A, 0, 0)], True),
    "listener with backlog": ([("LISTEN", A, WILD, 3, 128)], False),
    "NEW_SYN_RECV": ([("NEW_SYN_RECV", A, B, 0, 0)], True),
}


@pytest.mark.parametrize("name", RULE_CASES)
def test_in_flight_rule_on_given_rows(monkeypatch, name):
    rows, expected = RULE_CASES[name]

    def proc_version(path, ports):
        if not path.endswith("tcp"):
            return []
        return [
            _states.SocketRow("tcp", loc, rem, s, tx_queue=0 if s == "LISTEN" else tx, rx_queue=rx)
            for s, loc, rem, rx, tx in rows
        ]

    monkeypatch.delenv("NETLAB_OS_TABLE", raising=False)
    monkeypatch.setattr(_states, "_rows_on_ports", proc_version)
    monkeypatch.setattr(_netlink, "rows_on_ports", lambda ports: [_netlink.Row(*r) for r in rows])
    assert _states.in_flight({40001}) is expected
    assert _netlink.in_flight({40001}) is expected


# --- (3) what each costs -----------------------------------------------------------------


def _median_microseconds(call, times=200) -> float:
    spent = []
    for _ in range(times):
        start = time.perf_counter()
        call()
        spent.append(time.perf_counter() - start)
    return statistics.median(spent) * 1e6


def test_benchmark(zoo, monkeypatch):
    """Prints the medians of 200 calls; asserts nothing about time."""
    monkeypatch.delenv("NETLAB_OS_TABLE", raising=False)
    ports = {zoo.ports["idle"], zoo.ports["unread"]}
    assert _states.in_flight(ports) is _netlink.in_flight(ports) is False
    lines = 0
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(path, encoding="ascii") as file:
            lines += len(file.readlines()) - 1
    costs = {
        "_states.in_flight (/proc)": _median_microseconds(lambda: _states.in_flight(ports)),
        "_netlink.in_flight (netlink)": _median_microseconds(lambda: _netlink.in_flight(ports)),
        "_states._rows_on_ports x2": _median_microseconds(lambda: proc_rows(ports)),
        "_netlink.rows_on_ports": _median_microseconds(lambda: _netlink.rows_on_ports(ports)),
    }
    print(f"\n{lines} sockets in /proc/net/tcp and tcp6; median of 200 calls:")
    for name, cost in costs.items():
        print(f"  {name:30} {cost:9.1f} us")
    proc, answer = costs["_states.in_flight (/proc)"], costs["_netlink.in_flight (netlink)"]
    print(f"  netlink / proc: {answer / proc:.3f}")


def test_bytes_received_counts_what_arrived_read_or_not():
    """netlab's order of lines uses it: bytes a client has read = received - rx_queue."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
            server, _ = listener.accept()
            with server:
                server.sendall(b"x" * 1000)
                while len(client.recv(1000, socket.MSG_PEEK)) < 1000:
                    pass  # until all 1000 bytes have arrived (each peek waits for more)
                got = b""
                while len(got) < 400:
                    got += client.recv(400 - len(got))
                rows = _netlink.rows_on_ports({port})
                mine = client.getsockname()[:2]
                row = next(r for r in rows if r.local == mine)
                assert row.bytes_received == 1000
                assert row.bytes_received - row.rx_queue == 400


def test_uid_is_the_owner_of_each_socket_as_in_proc():
    """The checks' from_this_process asks netlink for the owner of a peer (one port's
    sockets, not the whole table): each row's uid is /proc/net/tcp's, this user's."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
            server, _ = listener.accept()
            with server:
                ours = {
                    (listener.getsockname(), ("0.0.0.0", 0)),
                    (server.getsockname(), server.getpeername()),
                    (client.getsockname(), client.getpeername()),
                }
                # only our sockets: on a busy host, another run's TIME_WAIT may share the
                # port number (an old connection whose ephemeral port it was)
                rows = [r for r in _netlink.rows_on_ports({port}) if (r.local, r.remote) in ours]
                assert {row.state for row in rows} == {"LISTEN", "ESTABLISHED"}, rows
                assert {row.uid for row in rows} == {os.getuid()}, rows
                proc = {}
                with open("/proc/net/tcp") as table:
                    for line in table.readlines()[1:]:
                        fields = line.split()
                        proc[(int(fields[1].split(":")[1], 16), fields[3])] = int(fields[7])
                for row in rows:
                    assert proc[(row.local[1], {"LISTEN": "0A"}.get(row.state, "01"))] == row.uid
