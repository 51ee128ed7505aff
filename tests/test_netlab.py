"""Unit tests of helpers.netlab's core: real sockets on 127.0.0.1, no sleeps."""

from __future__ import annotations

import asyncio
import os
import socket
import socketserver
import struct
import subprocess
import sys
import threading
import time

import psutil
import pytest

from helpers import netlab


def seed_server(port):
    """The seed's server.py, as a function (bound to loopback)."""
    s = socket.socket()
    print("Socket creation successful")
    s.bind(("127.0.0.1", port))
    print("socket binded to %s" % (port))
    s.listen(5)
    print("socket is listening")
    while True:
        c, addr = s.accept()
        print("Got connection from", addr)
        c.send(b"Thank you for connecting")
        c.close()
        break
    s.close()


def fetch(port, host="127.0.0.1"):
    with socket.create_connection((host, port), timeout=5) as s:
        chunks = []
        while chunk := s.recv(1024):
            chunks.append(chunk)
    return b"".join(chunks)


def echo_forever(port):
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
        s.listen()
        while True:
            c, _ = s.accept()
            with c:
                while data := c.recv(1024):
                    c.sendall(data)


@pytest.fixture(autouse=True)
def _stop_servers():
    yield
    netlab.stop_all()


def test_serve_returns_once_listening_and_learner_accept_gets_the_first_client():
    srv = netlab.serve(seed_server, port=None)
    # No connection was used up by serve(): the seed's single accept() gets ours.
    assert fetch(srv.port) == b"Thank you for connecting"
    srv.wait(5)
    out = srv.output()
    assert out.startswith("Socket creation successful\nsocket binded to")
    assert "Got connection from ('127.0.0.1'," in out
    assert not srv.running


def test_readiness_is_immediate_after_serve(capsys):
    for _ in range(20):
        srv = netlab.serve(echo_forever, port=None)
        # connect right away: it must never be refused
        with socket.create_connection(srv.address, timeout=5) as c:
            c.sendall(b"ping")
            assert c.recv(4) == b"ping"
        srv.stop()


def test_server_output_is_shown_labelled_in_order(capsys):
    srv = netlab.serve(seed_server, port=None)
    startup = capsys.readouterr().out
    assert startup.splitlines()[:3] == [
        "[seed_server] Socket creation successful",
        f"[seed_server] socket binded to {srv.port}",
        "[seed_server] socket is listening",
    ]
    fetch(srv.port)
    srv.wait(5)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("[seed_server] Got connection from ('127.0.0.1', ")


def test_server_thread_output_never_reaches_stdout_directly(capfd):
    srv = netlab.serve(seed_server, port=None)
    shown_by_serve = capfd.readouterr().out
    fetch(srv.port)
    srv._finished.wait(5)
    # Finished, but nothing shown yet: the server thread itself printed nothing.
    assert capfd.readouterr().out == ""
    srv.show()
    assert "Got connection from" in capfd.readouterr().out
    assert "socket is listening" in shown_by_serve


def test_rerun_replaces_the_previous_server_on_the_same_port(capsys):
    preferred = netlab.free_port()  # stands for 5000, which other programs may hold
    first = netlab.serve(echo_forever, port=preferred)
    capsys.readouterr()
    second = netlab.serve(echo_forever, port=preferred)
    assert first.port == preferred
    assert first.state == "stopped" and second.running
    # The re-run says what happened to the old server, before the new one's start.
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == (
        f"netlab: stopped your earlier 'echo_forever' on 127.0.0.1:{preferred} first "
        "(a re-run replaces it)"
    )
    assert lines[-1].startswith("netlab: 'echo_forever' is listening on 127.0.0.1:")
    # Not when the old one had already stopped: there was nothing to stop.
    second.stop()
    second = netlab.serve(echo_forever, port=preferred)
    assert "stopped your earlier" not in capsys.readouterr().out
    assert second.port == first.port
    with socket.create_connection(second.address, timeout=5) as c:
        c.sendall(b"x")
        assert c.recv(1) == b"x"


def test_rerun_after_server_closed_first_time_wait(capsys):
    # The seed's server closes first, leaving TIME_WAIT on its port; a re-run must bind.
    preferred = netlab.free_port()
    srv = netlab.serve(seed_server, port=preferred)
    fetch(srv.port)
    srv.wait(5)
    again = netlab.serve(seed_server, port=preferred)
    assert again.port == srv.port == preferred
    assert fetch(again.port) == b"Thank you for connecting"


def test_port_fallback_when_the_preferred_port_is_held_by_another_process(capsys):
    preferred = netlab.free_port()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import socket,sys; s=socket.socket(); s.bind(('127.0.0.1',{preferred})); s.listen()\n"
            "print('ready', flush=True); sys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ready", "could not hold the port"
        srv = netlab.serve(echo_forever, port=preferred)
        out = capsys.readouterr().out
        assert srv.port != preferred
        assert (
            f"netlab: 'echo_forever' is listening on 127.0.0.1:{srv.port} "
            f"(port {preferred} is taken by another program)" in out
        )
        with socket.create_connection(srv.address, timeout=5) as c:
            c.sendall(b"ok")
            assert c.recv(2) == b"ok"
    finally:
        holder.stdin.close()
        holder.wait(5)


def test_port_lost_between_probe_and_bind_takes_a_free_one_and_shows_no_traceback(
    capsys, monkeypatch
):
    # Another program binds the port after serve()'s probe found it free and before the
    # server's own bind(). The probe is made to answer "free" for a port held here, which
    # is that race with its window held open. serve() must take a free port and say why;
    # the failed attempt's traceback is not the learner's to see.
    from helpers.netlab import _server

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        held = holder.getsockname()[1]
        monkeypatch.setattr(_server, "choose_port", lambda port: (port, None))
        srv = netlab.serve(echo_forever, port=held)
        out, err = capsys.readouterr()
        assert srv.port != held
        assert f"(port {held} was taken by another program meanwhile)" in out
        assert "Traceback" not in out + err and "Address already in use" not in out + err
        with socket.create_connection(srv.address, timeout=5) as c:
            c.sendall(b"ok")
            assert c.recv(2) == b"ok"
        netlab.stop_all()
        out, err = capsys.readouterr()
        assert "Traceback" not in out + err


def test_port_taken_by_own_server_names_it(capsys):
    preferred = netlab.free_port()
    netlab.serve(echo_forever, name="first", port=preferred)
    srv = netlab.serve(echo_forever, name="second", port=preferred)
    out = capsys.readouterr().out
    assert srv.port != preferred
    assert f"(port {preferred} is taken by your server 'first'; stop it with its .stop())" in out


def test_exception_in_server_thread_reaches_the_main_thread(capsys):
    def crashes(port):
        s = socket.socket()
        s.bind(("127.0.0.1", port))
        s.listen()
        c, _ = s.accept()
        c.send("not bytes")

    srv = netlab.serve(crashes, port=None)
    with socket.create_connection(srv.address, timeout=5):
        pass
    with pytest.raises(netlab.ServerError) as info:
        srv.wait(5)
    assert isinstance(info.value.__cause__, TypeError)
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err
    assert 'c.send("not bytes")' in err
    assert "sockets carry bytes, not str" in err
    assert "_patches.py" not in err and "_server.py" not in err  # netlab's own frames are hidden


def test_crash_before_listen_is_reported():
    def broken(port):
        raise ValueError("oops")

    with pytest.raises(netlab.ServerError, match="crashed before it listened"):
        netlab.serve(broken, port=None)


def test_function_that_never_listens_is_reported():
    def no_listen(port):
        socket.socket().close()

    with pytest.raises(netlab.ServerError, match="returned before it called listen"):
        netlab.serve(no_listen, port=None)


def test_stop_is_idempotent_and_bounded_with_a_client_stuck_mid_connection():
    def reads_forever(port):
        s = socket.socket()
        s.bind(("127.0.0.1", port))
        s.listen()
        c, _ = s.accept()
        c.recv(1024)  # the client never sends: blocked here

    srv = netlab.serve(reads_forever, port=None)
    client = socket.create_connection(srv.address, timeout=5)
    try:
        start = time.monotonic()
        srv.stop()
        srv.stop()
        assert time.monotonic() - start < 3
        assert not srv.running
        assert netlab.is_free(srv.port)
    finally:
        client.close()


def test_stop_reports_a_thread_it_cannot_interrupt(capsys):
    lock = threading.Lock()
    lock.acquire()

    def stuck(port):
        s = socket.socket()
        s.bind(("127.0.0.1", port))
        s.listen()
        s.accept()
        inside.set()
        lock.acquire(timeout=10)  # a plain Lock: netlab can neither see nor wake it

    inside = threading.Event()
    srv = netlab.serve(stuck, port=None)
    socket.create_connection(srv.address, timeout=5).close()
    assert inside.wait(5)
    srv.stop(timeout=0.5)
    lock.release()
    assert "did not stop within 0.5 s" in capsys.readouterr().err
    assert netlab.is_free(srv.port)


@pytest.mark.parametrize("wait", ["event", "queue", "sleep", "condition", "join"])
def test_stop_wakes_waits_that_are_not_socket_calls(wait):
    import queue

    def waits(port):
        s = socket.socket()
        s.bind(("127.0.0.1", port))
        s.listen()
        if wait == "event":
            threading.Event().wait()
        elif wait == "queue":
            queue.Queue().get()
        elif wait == "sleep":
            time.sleep(30)
        elif wait == "condition":
            cond = threading.Condition()
            with cond:
                cond.wait()
        else:
            t = threading.Thread(target=threading.Event().wait)
            t.start()
            t.join()

    srv = netlab.serve(waits, announce=False, port=None)
    assert srv.wait_quiet(5)
    started = time.monotonic()
    srv.stop(timeout=2)
    assert srv.state == "stopped" and not srv.threads
    assert time.monotonic() - started < 1.5  # woken, not left to time out
    assert "did not stop" not in srv.output()


def _notes(info) -> str:
    """The notes netlab's IPython exception handler adds (a learner's own cell)."""
    netlab._display.add_notes(info.value, info.tb)
    return "\n".join(getattr(info.value, "__notes__", []))


def test_refused_connection_explains_what_to_do():
    # A port no server of this process ever had: for one an earlier test's server had (a
    # free port can be handed out again), the note rightly names that server instead.
    from helpers.netlab._server import registered_servers

    used = {server.port for server in registered_servers()}
    port = next(p for p in iter(netlab.free_port, None) if p not in used)
    with pytest.raises(ConnectionRefusedError) as info:
        socket.create_connection(("127.0.0.1", port), timeout=5)
    assert "nothing listens at that address. Start the server first" in _notes(info)


def test_refused_after_server_finished_says_so():
    srv = netlab.serve(seed_server, port=None)
    fetch(srv.port)
    srv.wait(5)
    with pytest.raises(ConnectionRefusedError) as info:
        socket.create_connection(srv.address, timeout=5)
    assert f"nothing listens on port {srv.port} any more" in _notes(info)
    assert "has finished" in _notes(info)


def test_refused_after_server_crashed_says_it_crashed(capsys):
    def crashes_after_one(port):
        s = socket.socket()
        s.bind(("127.0.0.1", port))
        s.listen()
        c, _ = s.accept()
        c.close()
        s.close()
        raise RuntimeError("boom")

    srv = netlab.serve(crashes_after_one, port=None)
    socket.create_connection(srv.address, timeout=5).close()
    with pytest.raises(netlab.ServerError):
        srv.wait(5)
    with pytest.raises(ConnectionRefusedError) as info:
        socket.create_connection(srv.address, timeout=5)
    assert "crashed (its traceback is above)" in _notes(info)
    assert "its function returned" not in _notes(info)


def test_send_str_gets_a_hint():
    a, b = socket.socketpair()
    with a, b, pytest.raises(TypeError) as info:
        a.send("hi")
    assert "encode()" in _notes(info)


def test_a_client_socket_is_a_plain_socket():
    """Threads that no server owns pay nothing: their sockets are not even wrapped."""
    srv = netlab.serve(echo_forever, announce=False, port=None)
    with socket.create_connection(srv.address, timeout=5) as client:
        assert type(client) is socket.socket
    assert all(type(s) is not socket.socket for s in srv.sockets)


def test_quiet_waits_for_output_written_after_the_client_got_its_reply(capsys):
    def talks_after_reply(port):
        s = socket.socket()
        s.bind(("127.0.0.1", port))
        s.listen()
        c, _ = s.accept()
        c.sendall(b"hi")
        for i in range(200):
            print("after reply", i)
        c.close()
        s.accept()  # then waits for the next client: quiet

    srv = netlab.serve(talks_after_reply, port=None)
    capsys.readouterr()
    assert fetch(srv.port) == b"hi"
    srv.show()  # must wait until the 200 lines are written
    assert capsys.readouterr().out.count("after reply") == 200


def test_trace_records_socket_calls():
    srv = netlab.serve(seed_server, trace=True, port=None)
    fetch(srv.port)
    srv.wait(5)
    out = srv.output()
    assert "  . accept() -> connection from 127.0.0.1:" in out
    assert "  . send(24 bytes: b'Thank you for connecting') -> 24" in out


def test_bind_everywhere_gets_a_note():
    def everywhere(port):
        s = socket.socket()
        s.bind(("", port))
        s.listen()
        s.accept()

    srv = netlab.serve(everywhere, port=None)
    assert "listens on every network interface" in srv.output()
    assert srv.host == "127.0.0.1"


def test_thread_per_client_output_is_adopted():
    def threaded(port):
        s = socket.socket()
        s.bind(("127.0.0.1", port))
        s.listen()

        def handle(c):
            with c:
                print("handling", c.recv(10))
                c.sendall(b"done")

        while True:
            c, _ = s.accept()
            threading.Thread(target=handle, args=(c,)).start()

    srv = netlab.serve(threaded, port=None)
    for _ in range(3):
        with socket.create_connection(srv.address, timeout=5) as c:
            c.sendall(b"job")
            assert c.recv(4) == b"done"
    assert srv.wait_quiet(5)
    assert srv.output().count("handling b'job'") == 3
    srv.stop()
    assert not srv.running


def test_asyncio_server_runs_in_its_own_loop():
    async def aserver(port):
        async def handle(reader, writer):
            data = await reader.readline()
            print("got", data)
            writer.write(data.upper())
            await writer.drain()
            writer.close()
            await writer.wait_closed()

        server = await asyncio.start_server(handle, "127.0.0.1", port)
        async with server:
            await server.serve_forever()

    srv = netlab.serve(aserver, port=None)
    with socket.create_connection(srv.address, timeout=5) as c:
        c.sendall(b"hello\n")
        assert c.recv(100) == b"HELLO\n"
    srv.stop()
    assert not srv.running
    assert "got b'hello\\n'" in srv.output()


def test_socketserver_stops():
    class Handler(socketserver.StreamRequestHandler):
        def handle(self):
            self.wfile.write(self.rfile.readline())

    def ss(port):
        with socketserver.ThreadingTCPServer(("127.0.0.1", port), Handler) as server:
            server.serve_forever()

    srv = netlab.serve(ss, port=None)
    with socket.create_connection(srv.address, timeout=5) as c:
        c.sendall(b"line\n")
        assert c.recv(10) == b"line\n"
    start = time.monotonic()
    srv.stop()
    assert time.monotonic() - start < 3
    assert not srv.running


def test_udp_server_is_ready_once_bound():
    def udp(port):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", port))
        data, addr = s.recvfrom(100)
        s.sendto(data[::-1], addr)

    srv = netlab.serve(udp, port=None)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:
        c.settimeout(5)
        c.sendto(b"abc", srv.address)
        assert c.recvfrom(100)[0] == b"cba"
    srv.wait(5)


def test_no_thread_or_fd_leak_after_200_cycles():
    proc = psutil.Process()

    def cycle():
        with netlab.serve(echo_forever, port=None) as srv:
            with socket.create_connection(srv.address, timeout=5) as c:
                c.sendall(b"x")
                assert c.recv(1) == b"x"

    cycle()  # warm up lazily created objects
    threads, fds = threading.active_count(), proc.num_fds()
    for _ in range(200):
        cycle()
    assert threading.active_count() == threads
    assert proc.num_fds() <= fds


def test_works_from_plain_python_in_a_subprocess():
    code = (
        "import socket\n"
        "from helpers import netlab\n"
        "def server(port):\n"
        "    s = socket.socket(); s.bind(('127.0.0.1', port)); s.listen(5)\n"
        "    print('listening')\n"
        "    c, a = s.accept(); c.sendall(b'hi'); c.close()\n"
        "with netlab.serve(server, port=None) as srv:\n"
        "    print(socket.create_connection(srv.address, timeout=5).recv(2))\n"
        "    srv.wait(5)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    lines = out.splitlines()
    assert lines[0] == "[server] listening"
    assert lines[1].startswith("netlab: 'server' is listening on 127.0.0.1:")
    assert lines[2:] == ["b'hi'"]


def test_run_script_as_two_processes(tmp_path):
    (tmp_path / "server.py").write_text(
        "import socket, sys\n"
        "port = int(sys.argv[1])\n"
        "s = socket.socket(); s.bind(('127.0.0.1', port)); s.listen(5)\n"
        "print('socket is listening')\n"
        "c, addr = s.accept(); c.send(b'Thank you for connecting'); c.close()\n"
    )
    (tmp_path / "client.py").write_text(
        "import socket, sys\n"
        "s = socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=5)\n"
        "print(s.recv(1024).decode())\n"
    )
    port = netlab.free_port()
    with netlab.start_script("server.py", port, listen_port=port, cwd=tmp_path) as server:
        client = netlab.run_script("client.py", port, cwd=tmp_path)
        assert client.output == "Thank you for connecting\n"
        assert server.wait(5) == 0
    assert server.output == "socket is listening\n"


def test_script_that_fails_to_listen_reports_its_output(tmp_path):
    (tmp_path / "bad.py").write_text("raise SystemExit('cannot start')\n")
    with pytest.raises(netlab.ProcessError, match="cannot start"):
        netlab.start_script("bad.py", listen_port=netlab.free_port(), cwd=tmp_path)


def test_linger_zero_client_does_not_crash_the_server_silently(capsys):
    def reader(port):
        s = socket.socket()
        s.bind(("127.0.0.1", port))
        s.listen()
        c, _ = s.accept()
        c.recv(10)

    srv = netlab.serve(reader, port=None)
    c = socket.create_connection(srv.address, timeout=5)
    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    c.close()  # RST
    with pytest.raises(netlab.ServerError) as info:
        srv.wait(5)
    assert isinstance(info.value.__cause__, ConnectionResetError)


@pytest.mark.skipif(os.name == "nt", reason="SO_REUSEADDR means something else on Windows")
def test_netlab_sets_reuseaddr_on_server_sockets():
    seen = {}

    def probe(port):
        s = socket.socket()
        s.bind(("127.0.0.1", port))
        seen["reuse"] = s.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR)
        s.listen()
        s.accept()

    netlab.serve(probe, port=None)
    assert seen["reuse"] != 0


def test_unused_port_has_no_socket_at_all():
    port = netlab.unused_port()
    assert netlab.is_free(port)
    assert netlab.socket_table(port).rows == []


def test_netlab_keeps_no_socket_of_a_stopped_server_alive():
    """Nothing leaks: after stop(), the sockets the server made are freed (netlab holds
    them weakly), so Python's unclosed-socket warning and close() work as without it."""
    import gc
    import weakref

    srv = netlab.serve(echo_forever, port=None, announce=False)
    with socket.create_connection(srv.address, timeout=5) as client:
        client.sendall(b"hi")
        assert client.recv(10) == b"hi"
        refs = [weakref.ref(s) for s in srv.sockets]
        assert len(refs) == 2  # the listening socket and the accepted one
    srv.stop()
    gc.collect()
    assert [r() for r in refs] == [None, None]


def test_a_learners_own_asyncio_run_is_stopped_and_its_wake_up_pipe_is_no_client(capsys):
    """A plain function that calls asyncio.run() itself (netlab did not start that loop)
    with a server on two addresses: stop() must cancel the loop's tasks, and the loop's
    own wake-up socketpair, which reads b'' once stop() has shut it, is not a client
    whose b'' a loop keeps reading (found by an independent attempt at notebook 11)."""

    async def handle(reader, writer):
        while data := await reader.read(4096):
            writer.write(data)
            await writer.drain()
        writer.close()

    async def main(port):
        server = await asyncio.start_server(handle, host=["127.0.0.1", "127.0.0.2"], port=port)
        async with server:
            await server.serve_forever()

    def two_address_server(port):
        asyncio.run(main(port))

    for _ in range(5):
        srv = netlab.serve(two_address_server, port=None, announce=False)
        for host in ("127.0.0.1", "127.0.0.2"):
            with socket.create_connection((host, srv.port), timeout=5) as c:
                c.sendall(b"hi")
                assert c.recv(10) == b"hi"
        srv.stop()
        assert srv.state == "stopped" and srv.stop_reason is None
        assert [t for t in srv.threads if t.is_alive()] == []
        out = srv.output() + capsys.readouterr().err
        assert "did not stop" not in out and "returned b''" not in out, out


def test_server_socket_calls_keep_their_semantics():
    """netlab splits a server's blocking calls in two (wait, then a call that does not
    block); what the call returns must not change: MSG_WAITALL still waits for all,
    a blocking send() still sends everything, a timeout is still TimeoutError."""
    results = {}

    def server(port):
        s = socket.socket()
        s.bind(("127.0.0.1", port))
        s.listen()
        c, _ = s.accept()
        with c:
            results["waitall"] = c.recv(10, socket.MSG_WAITALL)
            buffer = bytearray(5)
            results["into"] = (c.recv_into(buffer, 5, socket.MSG_WAITALL), bytes(buffer))
            results["sent"] = c.send(b"x" * 4_000_000)  # more than the buffers hold
            c.settimeout(0.2)
            try:
                c.recv(1)
            except TimeoutError as exc:
                results["timeout"] = str(exc)
            c.settimeout(5)  # not 0.2 s: the client's last bytes may take longer to come
            results["eof"] = c.recv(10, socket.MSG_WAITALL)

    srv = netlab.serve(server, port=None, announce=False)
    with socket.create_connection(srv.address, timeout=5) as client:
        for byte in b"0123456789abcde":
            client.sendall(bytes([byte]))
            assert srv.wait_quiet(5)  # the server has taken it and waits for more
        received = 0
        while received < 4_000_000:
            received += len(client.recv(1 << 20))
        assert srv.wait_quiet(5)  # past the 0.2 s timeout: waits in the last recv
        client.sendall(b"XY")
    srv.wait(5)
    assert results == {
        "waitall": b"0123456789",
        "into": (5, b"abcde"),
        "sent": 4_000_000,
        "timeout": "timed out",
        "eof": b"XY",
    }


def test_a_polling_server_shows_its_line_and_idle_polls_cost_nothing(capsys):
    """A server that polls with timeouts (accept and recv with 1 s / 0.8 s timeouts, in a
    loop) still shows what a client caused before show() returns, while its idle polls
    (and an asyncio ticker's) do not make show() wait for their deadlines."""

    def polling(port):
        s = socket.socket()
        s.bind(("127.0.0.1", port))
        s.listen()
        s.settimeout(1.0)
        conns = []
        while True:
            try:
                c, _ = s.accept()
                c.settimeout(0.8)
                conns.append(c)
            except TimeoutError:
                pass
            for c in list(conns):
                try:
                    data = c.recv(100)
                except TimeoutError:
                    continue
                if not data:
                    conns.remove(c)
                    c.close()
                    continue
                print("got", data)

    async def ticker(port):
        async def tick():
            while True:
                await asyncio.sleep(0.7)

        asyncio.ensure_future(tick())
        server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", port)
        await server.serve_forever()

    srv = netlab.serve(polling, port=None, announce=False)
    ticks = netlab.serve(ticker, port=None, announce=False)
    with socket.create_connection(srv.address, timeout=5) as client:
        for i in range(3):
            client.sendall(b"m%d" % i)
            srv.show()
            assert f"got b'm{i}'" in srv.output()
        for server in (srv, ticks):
            started = time.monotonic()
            server.show()
            assert time.monotonic() - started < 0.5  # no 0.7-1 s deadline awaited


def test_wait_timeout_names_the_learners_variable(monkeypatch, capsys):
    # The hint of a server still running names the variable the learner holds it in.
    import IPython

    def waits_for_a_client(port):
        with socket.create_server(("127.0.0.1", port)) as listener:
            listener.accept()

    namespace = {}
    shell = type("Shell", (), {"user_ns": namespace})()
    monkeypatch.setattr(IPython, "get_ipython", lambda: shell)
    echo = netlab.serve(waits_for_a_client, port=netlab.free_port())
    namespace["echo"] = echo
    try:
        with pytest.raises(TimeoutError, match=r"Use echo\.stop\(\) to stop it"):
            echo.wait(0.2)
        del namespace["echo"]
        with pytest.raises(TimeoutError, match=r"Use srv\.stop\(\) to stop it"):
            echo.wait(0.2)
    finally:
        echo.stop()


def test_waits_ended_tells_a_select_spin_from_an_idle_loop():
    """Server.waits_ended counts the waits its threads finished: an idle select() loop
    ends one per timeout, a loop whose select() returns at once (a connection registered
    for EVENT_WRITE) thousands, without any CPU clock (nb05's busy-loop check uses it)."""
    import selectors

    def loop(events):
        def server(port):
            with selectors.DefaultSelector() as selector:
                listener = socket.create_server(("127.0.0.1", port))
                selector.register(listener, selectors.EVENT_READ)
                while True:
                    for key, _ in selector.select(timeout=0.1):
                        if key.fileobj is listener:
                            conn, _ = listener.accept()
                            selector.register(conn, events)

        return server

    counts = {}
    for name, events in (("idle", selectors.EVENT_READ), ("spin", selectors.EVENT_WRITE)):
        srv = netlab.serve(loop(events), name=name, port=netlab.free_port())
        try:
            with socket.create_connection(("127.0.0.1", srv.port), timeout=5):
                start, begun = srv.waits_ended, time.monotonic()
                # 0.5 s by the clock, however the machine is loaded
                threading.Event().wait(0.5)
                counts[name] = (srv.waits_ended - start) / (time.monotonic() - begun)
        finally:
            srv.stop()
    assert counts["idle"] <= 30, counts  # about 10 a second: one per 0.1 s timeout
    assert counts["spin"] > 1000, counts
