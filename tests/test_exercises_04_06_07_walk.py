"""The fixes of the newcomer walkthrough of notebooks 04, 06 and 07 (notes/reviews/).

Each check change is tested with the wrong answer the walkthrough met (its hint and what
happened asserted) and with correct answers in other styles, which must still pass; the
notebooks' texts are tested where the walkthrough found a wrong or missing sentence.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading

from exercise_asserts import (
    assert_passes,
    cell_source,
    fails_with,
    notebook_cells,
    stored_text,
)
from test_exercises import echo_no_try as echo_server_no_try  # §1's server, no try

from helpers.exercises import nb04, nb06, nb07
from helpers.exercises.solutions import nb04 as sol04
from helpers.exercises.solutions import nb06 as sol06
from helpers.exercises.solutions import nb07 as sol07

# --- notebook 04, Exercise 1: what happened, in words ------------------------------------


def echo_server_try_around_the_loop(port):  # the except ends the server, not one client
    s = socket.socket()
    s.bind(("127.0.0.1", port))
    s.listen()
    try:
        while True:
            conn, addr = s.accept()
            with conn:
                while data := conn.recv(4096):
                    conn.sendall(data)
    except ConnectionError:
        pass


def echo_server_closes_at_once(port):  # forgot the conversation
    s = socket.socket()
    s.bind(("127.0.0.1", port))
    s.listen()
    while True:
        conn, addr = s.accept()
        conn.close()


def test_nb04_crash_after_a_reset_says_what_the_client_did():
    verdict = nb04.check_echo_server(echo_server_no_try)
    fails_with(
        verdict,
        "except ConnectionError",
        what=["sent b'hel' and reset the connection (RST)", "crashed with ConnectionResetError"],
        absent=["after sending b''"],
    )


def test_nb04_server_that_returns_after_a_reset_is_told_so():
    verdict = nb04.check_echo_server(echo_server_try_around_the_loop)
    fails_with(
        verdict,
        "`while True:` loop",
        "inside the loop",
        what=["reset the connection (RST): your server returned"],
        absent=["crashed", "after sending b''"],
    )


def test_nb04_no_reply_at_all_is_not_called_sending_nothing():
    verdict = nb04.check_echo_server(echo_server_closes_at_once)
    fails_with(verdict, what=["the connection before replying"], absent=["sending b''"])


def echo_server_with_makefile(port):  # another style: files, flushed
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
        s.listen()
        while True:
            conn, addr = s.accept()
            conn.settimeout(10)
            with conn, conn.makefile("rb") as reader, conn.makefile("wb") as writer:
                try:
                    while data := reader.read1(4096):
                        writer.write(data)
                        writer.flush()
                except (ConnectionError, TimeoutError):
                    pass


def test_nb04_echo_server_reference_and_another_style_pass():
    assert_passes(nb04.check_echo_server(sol04.echo_server))
    assert_passes(nb04.check_echo_server(echo_server_with_makefile))


# --- notebook 04, Exercise 2: ECHO keeps everything after the first space -------------------


def handle_command_split_once(line):  # another style of the spec's "after the first space"
    words = line.split(" ", 1)
    if words[0] == "PING":
        return "PONG"
    if words[0] == "ECHO":
        return words[1] if len(words) > 1 else ""
    if words[0] == "ADD":
        try:
            a, b = words[1].split()
            return str(int(a) + int(b))
        except (IndexError, ValueError):
            return "ERR usage: ADD a b"
    if words[0] == "QUIT":
        return "BYE"
    return "ERR unknown command"


def handle_command_split_words(line):  # the misreading the walkthrough feared
    command, *args = line.split()
    if command == "ECHO":
        return " ".join(args)
    return sol04.handle_command(line)


def test_nb04_echo_as_the_spec_says_passes_and_split_words_fails():
    assert_passes(nb04.check_handle_command(handle_command_split_once))
    fails_with(
        nb04.check_handle_command(handle_command_split_words),
        "exactly as sent, spaces included",
        what=["' two spaces  '"],
    )


def test_nb04_spec_states_echo_precisely():
    texts = [cell_source(c) for c in notebook_cells("04-echo-and-protocols.ipynb")]
    spec = next(t for t in texts if t.startswith("### Exercise 2"))
    assert "everything after the first space" in spec
    assert "`'ECHO  two spaces  '` → `' two spaces  '`" in spec


# --- notebook 04: texts --------------------------------------------------------------------


def test_nb04_makefile_advice_has_no_unbuffered_shortcut():
    """makefile('wb', buffering=0) gives a raw SocketIO whose write() may write only part
    (its return value says how much): the notebook no longer offers it as a fix."""
    texts = [cell_source(c) for c in notebook_cells("04-echo-and-protocols.ipynb")]
    advice = next(t for t in texts if "Call `flush()`" in t)
    assert "buffering=0" not in advice


def test_nb04_raw_socketio_write_is_a_single_send():
    """Why buffering=0 is no fix: SocketIO.write() is one send(), which may be partial."""
    a, b = socket.socketpair()
    with a, b:
        a.settimeout(2)
        writer = a.makefile("wb", buffering=0)
        assert isinstance(writer, socket.SocketIO)
        written = writer.write(b"x" * (16 << 20))  # b never reads: the buffers fill
        assert 0 < written < 16 << 20


def test_nb04_reference_server_is_named_in_its_cell():
    cells = notebook_cells("04-echo-and-protocols.ipynb")
    cell = next(
        c
        for c in cells
        if c["cell_type"] == "code" and "reference_command_server" in cell_source(c)
    )
    assert "'reference_command_server' is listening" in stored_text(cell)
    intro = cells[cells.index(cell) - 1]
    assert "not yours" in cell_source(intro)


def test_nb04_06_07_exercise_intros_say_what_to_run_after_a_restart():
    for name in [
        "01-first-server-and-client.ipynb",
        "02-anatomy-of-a-connection.ipynb",
        "03-bytes-and-streams.ipynb",
        "04-echo-and-protocols.ipynb",
        "06-udp.ipynb",
        "07-timeouts-errors-and-shutdown.ipynb",
    ]:
        texts = [cell_source(c) for c in notebook_cells(name)]
        assert any("After a kernel restart, run the notebook's first cell" in t for t in texts)
    # notebook 05's exercises import in a cell of their own, the one right after the intro
    texts = [cell_source(c) for c in notebook_cells("05-many-clients.ipynb")]
    assert any("After a kernel\nrestart, run the next cell first" in t for t in texts)


# --- notebook 06, Exercise 1: a changed reply is named ------------------------------------


def udp_upper_echo(port):  # §1's server, as the walkthrough ran the check with it
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", port))
    while True:
        data, address = sock.recvfrom(65535)
        sock.sendto(data.upper(), address)


def udp_echo_with_newline(port):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", port))
    while True:
        data, address = sock.recvfrom(65535)
        sock.sendto(data + b"\n", address)


def udp_echo_small_buffer(port):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", port))
    while True:
        data, address = sock.recvfrom(2048)
        sock.sendto(data, address)


def test_nb06_upper_casing_reply_is_named():
    fails_with(
        nb06.check_udp_echo_server(udp_upper_echo),
        "back unchanged",
        "expected b'one', got b'ONE'",
        what=["b'ONE', expected b'one'"],
        absent=["in a loop"],
    )


def test_nb06_added_bytes_are_a_changed_reply():
    fails_with(nb06.check_udp_echo_server(udp_echo_with_newline), "back unchanged")


def test_nb06_a_cut_datagram_still_gets_the_buffer_hint():
    fails_with(
        nb06.check_udp_echo_server(udp_echo_small_buffer), "recvfrom(65535)", absent=["unchanged"]
    )


def udp_echo_with_select(port):  # another style: wait for readiness first
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", port))
        while True:
            if select.select([sock], [], [], 1.0)[0]:
                data, address = sock.recvfrom(1 << 16)
                sock.sendto(data, address)


def test_nb06_echo_reference_and_another_style_pass():
    assert_passes(nb06.check_udp_echo_server(sol06.udp_echo_server))
    assert_passes(nb06.check_udp_echo_server(udp_echo_with_select))


def test_nb06_pinger_shows_the_stale_replies_it_explains():
    cells = notebook_cells("06-udp.ipynb")
    cell = next(c for c in cells if "rtts, stale = ping(" in cell_source(c))
    shown = stored_text(cell)
    assert "stale: [b'PING 1', b'PING 1'" in shown  # the text's example
    explanation = cell_source(cells[cells.index(cell) + 1])
    assert "more stale replies than lost pings" in explanation


def test_nb06_windows_paragraph_is_short_and_its_details_are_in_further_reading():
    texts = [cell_source(c) for c in notebook_cells("06-udp.ipynb")]
    body = next(t for t in texts if "WinError 10054" in t and "Other systems" in t)
    assert "SIO_UDP_CONNRESET" not in body and "SIO_RCVALL" not in body
    reading = next(t for t in texts if t.startswith("## Summary"))
    assert "SIO_UDP_CONNRESET" in reading and "SIO_LOOPBACK_FAST_PATH" in reading


# --- notebook 07, Exercise 3: a slow reader ---------------------------------------------------


def accepting(port, stop, conversation):
    """The accept loop of the graceful servers below: 0.1 s waits, to look at ``stop``."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", port))
        listener.listen()
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                conversation(conn, stop)


def echo_with_a_short_timeout(conn, stop):
    conn.settimeout(0.2)  # to look at stop often; but it bounds sendall() too
    while not stop.is_set():
        try:
            data = conn.recv(4096)
        except TimeoutError:
            continue
        if not data:
            break
        conn.sendall(data)


def graceful_short_conn_timeout(port, stop):  # the walkthrough's gap: it passed before
    accepting(port, stop, echo_with_a_short_timeout)


def graceful_drops_slow_readers(port, stop):  # survives, but cuts the slow client off
    def conversation(conn, stop):
        try:
            echo_with_a_short_timeout(conn, stop)
        except (ConnectionError, TimeoutError):
            pass

    accepting(port, stop, conversation)


def test_nb07_short_timeout_crashes_on_a_slow_reader():
    fails_with(
        nb07.check_graceful_server(graceful_short_conn_timeout),
        "reads slowly",
        "conn.settimeout(5)",
        what=["the slow client got", "crashed with TimeoutError"],
    )


def test_nb07_dropping_a_slow_reader_fails():
    fails_with(
        nb07.check_graceful_server(graceful_drops_slow_readers),
        "cuts the client off",
        what=["the slow client got"],
        absent=["crashed"],
    )


def graceful_switches_timeouts(port, stop):  # another style: short for recv, long for sendall
    def conversation(conn, stop):
        try:
            while not stop.is_set():
                conn.settimeout(0.1)
                try:
                    data = conn.recv(4096)
                except TimeoutError:
                    continue
                if not data:
                    break
                conn.settimeout(5)
                conn.sendall(data)
            conn.setblocking(False)
            while conn.recv(4096):
                pass
        except (BlockingIOError, ConnectionError, TimeoutError):
            pass

    accepting(port, stop, conversation)


def graceful_with_a_thread_per_client(port, stop):  # another style: threads, joined
    def echo(conn):
        with conn:
            conn.settimeout(5)
            try:
                while not stop.is_set():
                    if not select.select([conn], [], [], 0.1)[0]:
                        continue
                    data = conn.recv(4096)
                    if not data:
                        return
                    conn.sendall(data)
                conn.setblocking(False)
                while conn.recv(4096):
                    pass
            except (BlockingIOError, ConnectionError, TimeoutError):
                pass

    threads = []
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", port))
        listener.listen()
        while not stop.is_set():
            if select.select([listener], [], [], 0.1)[0]:
                conn, _ = listener.accept()
                thread = threading.Thread(target=echo, args=(conn,))
                thread.start()
                threads.append(thread)
    for thread in threads:
        thread.join(2)


def test_nb07_graceful_reference_and_other_styles_pass():
    assert_passes(nb07.check_graceful_server(sol07.graceful_server))
    assert_passes(nb07.check_graceful_server(graceful_switches_timeouts))
    assert_passes(nb07.check_graceful_server(graceful_with_a_thread_per_client))


# --- notebook 07: texts ---------------------------------------------------------------------


def test_nb07_exercise_3_states_the_bound_the_check_uses():
    texts = [cell_source(c) for c in notebook_cells("07-timeouts-errors-and-shutdown.ipynb")]
    spec = next(t for t in texts if t.startswith("### Exercise 3"))
    assert "1.5 s" in spec and "within a second" not in spec
    assert "reads\nslowly" in spec or "reads slowly" in spec


def test_nb07_troubleshooting_table_says_which_row_was_not_provoked():
    texts = [cell_source(c) for c in notebook_cells("07-timeouts-errors-and-shutdown.ipynb")]
    table = next(t for t in texts if "## 8. Troubleshooting table" in t)
    assert "Every row but `ConnectionAbortedError`" in table
    assert "a closed socket |" not in table  # the vague wording
    assert "that is `EBADF`" in table


def test_nb07_socketserver_shutdown_cells_show_the_queued_client():
    cells = notebook_cells("07-timeouts-errors-and-shutdown.ipynb")
    sources = [cell_source(c) for c in cells]
    assert not any("echo_server = srv.socketserver" in s for s in sources)
    late = next(c for c in cells if cell_source(c).startswith("late = socket.create_connection"))
    assert "TimeoutError" in stored_text(late)
    closing = next(c for c in cells if "echo_tcp_server.server_close()" in cell_source(c))
    shown = stored_text(closing)
    assert "the queued client: ConnectionResetError" in shown
    assert "a new client: ConnectionRefusedError" in shown
    assert not any("The server no longer accepts" in s for s in sources)


def test_nb07_broken_pipe_cell_makes_its_own_connection():
    """Re-running the second BrokenPipeError cell must not need the cell above again."""
    cells = notebook_cells("07-timeouts-errors-and-shutdown.ipynb")
    cell = next(c for c in cells if "poller.register(client, 0)" in cell_source(c))
    assert cell_source(cell).startswith("with closed_by_the_server() as client:")
    assert "second send -> BrokenPipeError" in stored_text(cell)


def walk06_late_counts_repeats(received, count):
    """A walkthrough's analyse: late counts every arrival below the highest, repeats too."""
    seen, highest, late = set(), -1, 0
    for number in received:
        late += number < highest
        highest = max(highest, number)
        seen.add(number)
    duplicated = sorted({n for n in received if received.count(n) > 1})
    return {"lost": sorted(set(range(count)) - seen), "duplicated": duplicated, "late": late}


def walk06_late_is_a_list(received, count):
    seen, highest, late = set(), -1, []
    for number in received:
        if number not in seen and number < highest:
            late.append(number)
        highest = max(highest, number)
        seen.add(number)
    duplicated = sorted({n for n in received if received.count(n) > 1})
    return {"lost": sorted(set(range(count)) - seen), "duplicated": duplicated, "late": late}


def test_nb06_late_hints_name_repeats_and_the_list():
    verdict = nb06.check_analyse(walk06_late_counts_repeats)
    assert not verdict.passed and "A repeat is not late" in verdict.hint, str(verdict)
    verdict = nb06.check_analyse(walk06_late_is_a_list)
    assert not verdict.passed and "late is a number, an int" in verdict.hint, str(verdict)


def graceful_inner_loop_ignores_stop(port, stop):
    """The walkthrough's: recv() with a 0.2 s timeout, in a loop that never looks at stop."""

    def conversation(conn, stop):
        conn.settimeout(0.2)
        with contextlib.suppress(ConnectionError):
            while True:
                try:
                    data = conn.recv(4096)
                except TimeoutError:
                    continue  # stop is never looked at here
                if not data:
                    break
                conn.sendall(data)

    accepting(port, stop, conversation)


def test_nb07_an_inner_loop_deaf_to_stop_is_named():
    verdict = nb07.check_graceful_server(graceful_inner_loop_ignores_stop)
    assert not verdict.passed, str(verdict)
    assert "the loop around it goes on after each timeout" in verdict.hint, str(verdict)
