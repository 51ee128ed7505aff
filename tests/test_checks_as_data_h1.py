"""The checks of notebooks 01, 02 and 04 are tables of cases: a new case is a few lines.

Each test appends one case to a module's table (with monkeypatch, so the table is as
before for every other test), then shows that the check runs it, under its own title,
and that a solution wrong in just that way fails on exactly that case, with its hint:
every check before it passes, every one after it is skipped. Real sockets on 127.0.0.1.
"""

import socket

from exercise_asserts import assert_passes

from helpers.exercises import _checker, nb01, nb02, nb04
from helpers.exercises.solutions import nb01 as sol01
from helpers.exercises.solutions import nb02 as sol02
from helpers.exercises.solutions import nb04 as sol04


def fails_on_exactly(verdict, title: str, hint: str) -> None:
    """Every check before ``title`` passed, ``title`` failed with ``hint``, and every
    check after it was skipped."""
    titles = [o.title for o in verdict.outcomes]
    assert title in titles, str(verdict)
    at = titles.index(title)
    statuses = [o.status for o in verdict.outcomes]
    assert statuses == ["pass"] * at + ["fail"] + ["skip"] * (len(titles) - at - 1), str(verdict)
    assert verdict.outcomes[at].failure.hint == hint, str(verdict)


# --- nb01: FETCH_CASES -----------------------------------------------------------------------

HINT_SPLIT_LETTER = "Decode once, at the end: a letter's bytes can come in two chunks."
SPLIT_LETTER = ("returns a letter split between the two parts", b"caf\xc3", b"\xa9 au lait")


def fetch_decoding_each_chunk(port):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        text = ""
        while chunk := s.recv(1024):
            text += chunk.decode(errors="replace")  # a split letter becomes two '\ufffd'
        return text


def test_nb01_a_new_fetch_case_is_one_row(monkeypatch):
    monkeypatch.setattr(
        nb01, "FETCH_CASES", [*nb01.FETCH_CASES, (*SPLIT_LETTER, HINT_SPLIT_LETTER)]
    )
    verdict = nb01.check_fetch(sol01.fetch)
    assert_passes(verdict)
    assert SPLIT_LETTER[0] in str(verdict)
    verdict = nb01.check_fetch(fetch_decoding_each_chunk)
    fails_on_exactly(verdict, SPLIT_LETTER[0], HINT_SPLIT_LETTER)
    assert verdict.failure.what == "it returned 'caf\ufffd\ufffd au lait', expected 'café au lait'"


# --- nb02: SERVER_SOCKET_CASES ---------------------------------------------------------------

HINT_BACKLOG = "Call s.listen() with no argument, or 5 or more: five clients may wait at once."
QUEUES_FIVE = "five clients wait for accept() at the same time"


def queues_five(sock, port, sent):
    """Five clients connect before any accept(): with listen(1) Linux drops the third."""
    clients = []
    try:
        for i in range(5):
            try:
                clients.append(socket.create_connection(("127.0.0.1", port), timeout=0.5))
            except OSError:
                raise _checker.Failure(
                    f"client {i + 1} could not connect", HINT_BACKLOG, sent
                ) from None
    finally:
        for client in clients:
            client.close()


def make_server_socket_listen_1(port):
    s = sol02.make_server_socket(port)
    s.listen(1)  # a second listen() sets the backlog again
    return s


def test_nb02_a_new_server_socket_case_is_one_row(monkeypatch):
    row = (QUEUES_FIVE, nb02._free_port, "five clients connect, none is accepted", queues_five)
    monkeypatch.setattr(nb02, "SERVER_SOCKET_CASES", [*nb02.SERVER_SOCKET_CASES, row])
    verdict = nb02.check_make_server_socket(sol02.make_server_socket)
    assert_passes(verdict)
    assert QUEUES_FIVE in str(verdict)
    verdict = nb02.check_make_server_socket(make_server_socket_listen_1)
    fails_on_exactly(verdict, QUEUES_FIVE, HINT_BACKLOG)
    assert verdict.failure.what == "client 3 could not connect", str(verdict)


# --- nb04: COMMAND_CASES and ECHO_CASES -----------------------------------------------------


def handle_command_ignoring_extra_numbers(line):
    words = line.split()
    if len(words) >= 3 and words[0] == "ADD" and all(w.lstrip("-").isdigit() for w in words[1:]):
        return str(int(words[1]) + int(words[2]))  # `>= 3`: 'ADD 2 3 4' gives '5'
    return sol04.handle_command(line)


def test_nb04_a_new_command_case_is_one_row(monkeypatch):
    monkeypatch.setattr(nb04, "COMMAND_CASES", [*nb04.COMMAND_CASES, ("ADD 2 3 4", "ERR")])
    verdict = nb04.check_handle_command(sol04.handle_command)
    assert_passes(verdict)
    assert "'ADD 2 3 4' gives an error reply" in str(verdict)
    verdict = nb04.check_handle_command(handle_command_ignoring_extra_numbers)
    fails_on_exactly(verdict, "'ADD 2 3 4' gives an error reply", nb04.HINT_ERR_PREFIX)
    assert verdict.failure.what == "it returned '5', expected a reply that starts with 'ERR '"


HINT_AS_IS = "An echo server sends back every byte as it came: b'\\r' too."
CRLF = nb04.Scenario(
    "b'hi\\r\\n' comes back unchanged",
    nb04._whole,
    b"hi\r\n",
    b"hi\r\n",
    "b'hi\\r\\n', then the client shut down its sending side",
    HINT_AS_IS,
)


def echo_server_with_unix_line_ends(port):
    s = socket.socket()
    s.bind(("127.0.0.1", port))
    s.listen()
    while True:
        conn, _ = s.accept()
        with conn:
            try:
                while data := conn.recv(4096):
                    conn.sendall(data.replace(b"\r\n", b"\n"))
            except ConnectionError:
                pass


def test_nb04_a_new_echo_scenario_is_one_row(monkeypatch):
    monkeypatch.setattr(nb04, "ECHO_CASES", [*nb04.ECHO_CASES[:3], CRLF])
    verdict = nb04.check_echo_server(sol04.echo_server)
    assert_passes(verdict)
    assert CRLF.title in str(verdict)
    verdict = nb04.check_echo_server(echo_server_with_unix_line_ends)
    fails_on_exactly(verdict, CRLF.title, HINT_AS_IS)
    assert verdict.failure.what == "got b'hi\\n', expected b'hi\\r\\n'", str(verdict)
