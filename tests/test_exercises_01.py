"""The checks of notebook 01 pass the reference solutions and catch realistic mistakes.

Each wrong solution below is one that a learner writes from the exercise text (or from
the tutorial's code); the test asserts that the verdict fails, with the hint that names
the mistake. Real sockets on 127.0.0.1, no mocks; every check is bounded in time.
"""

import socket
import threading
import time

import pytest

from helpers.exercises import nb01
from helpers.exercises.solutions import nb01 as sol01


def stub(*args):
    raise NotImplementedError


def assert_fails(verdict, *hint_words):
    text = str(verdict)
    assert not verdict.passed, text
    assert "✗" in text and "hint: " in text, text
    assert "Traceback" not in text, text
    for word in hint_words:
        assert word in verdict.hint, text


@pytest.mark.parametrize(
    "check, solution",
    [
        (nb01.check_hello_server, sol01.hello_server),
        (nb01.check_fetch, sol01.fetch),
    ],
)
def test_solutions_pass_and_stubs_are_not_done(check, solution):
    verdict = check(solution)
    assert verdict.passed, str(verdict)
    assert "all" in str(verdict) and "✗" not in str(verdict)
    stub_verdict = check(stub)
    assert stub_verdict.not_done and "not done yet" in str(stub_verdict)


def test_verdicts_are_the_same_on_every_run():
    texts = {str(nb01.check_hello_server(hello_sends_addr)) for _ in range(2)}
    assert len(texts) == 1, texts
    assert "<client port>" in texts.pop()


# --- Exercise 1: hello_server ------------------------------------------------------------


def hello_sends_str(port):
    s = socket.socket()
    s.bind(("127.0.0.1", port))
    s.listen(5)
    c, addr = s.accept()
    c.send(f"Hello, {addr[0]}")  # a str: TypeError
    c.close()
    s.close()


def hello_binds_everywhere(port):
    s = socket.socket()
    s.bind(("", port))  # the tutorial's '': every interface
    s.listen(5)
    c, addr = s.accept()
    c.send(f"Hello, {addr[0]}".encode())
    c.close()
    s.close()


def hello_forgets_close(port):
    s = socket.socket()
    s.bind(("127.0.0.1", port))
    s.listen(5)
    c, addr = s.accept()
    c.send(f"Hello, {addr[0]}".encode())
    while True:  # ... and waits for another client, the connection still open
        other, _ = s.accept()
        other.close()


def hello_leaves_it_to_python(port):
    s = socket.socket()
    s.bind(("127.0.0.1", port))
    s.listen(5)
    c, addr = s.accept()
    c.send(f"Hello, {addr[0]}".encode())
    s.close()  # c is never closed: Python closes it when the function returns


def hello_serves_forever(port):
    s = socket.socket()
    s.bind(("127.0.0.1", port))
    s.listen(5)
    while True:  # the loop without the tutorial's `break`
        c, addr = s.accept()
        c.send(f"Hello, {addr[0]}".encode())
        c.close()


def hello_sends_addr(port):
    s = socket.socket()
    s.bind(("127.0.0.1", port))
    s.listen(5)
    c, addr = s.accept()
    c.send(f"Hello, {addr}".encode())  # the pair (IP, port), not the IP
    c.close()
    s.close()


def hello_tutorial_text(port):
    s = socket.socket()
    s.bind(("127.0.0.1", port))
    s.listen(5)
    c, addr = s.accept()
    c.send(b"Thank you for connecting")  # the tutorial's text, not the exercise's
    c.close()
    s.close()


def hello_waits_for_the_client(port):
    s = socket.socket()
    s.bind(("127.0.0.1", port))
    s.listen(5)
    c, addr = s.accept()
    c.recv(1024)  # waits for a request that never comes
    c.send(f"Hello, {addr[0]}".encode())
    c.close()
    s.close()


def hello_addr_encode(port):
    s = socket.socket()
    s.bind(("127.0.0.1", port))
    s.listen(5)
    c, addr = s.accept()
    c.send(b"Hello, " + addr.encode())  # AttributeError: a tuple has no encode()
    c.close()
    s.close()


def hello_sends_on_the_listener(port):
    s = socket.socket()
    s.bind(("127.0.0.1", port))
    s.listen(5)
    c, addr = s.accept()
    s.send(f"Hello, {addr[0]}".encode())  # the listening socket, not c (walkthrough)
    c.close()
    s.close()


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (hello_sends_on_the_listener, "the listening socket s only accepts"),
        (hello_sends_str, "Sockets carry bytes, not str"),
        (hello_binds_everywhere, "every network interface"),
        (hello_forgets_close, "Close the connection after sending"),
        (hello_leaves_it_to_python, "Close the connection yourself, c.close()"),
        (hello_serves_forever, "break out of the loop"),
        (hello_sends_addr, "addr is a pair, (IP, port)"),
        (hello_tutorial_text, "addr[0] is the client's IP"),
        (hello_waits_for_the_client, "do not wait for it with recv()"),
        (hello_addr_encode, "addr is a pair, (IP, port)"),
    ],
)
def test_hello_server_catches(wrong, hint):
    assert_fails(nb01.check_hello_server(wrong), hint)


def hello_closes_before_sending(port):
    s = socket.socket()
    s.bind(("127.0.0.1", port))
    s.listen(5)
    c, addr = s.accept()
    c.close()  # closed before the greeting went out
    s.close()


@pytest.mark.parametrize(
    "wrong", [hello_sends_addr, hello_tutorial_text, hello_addr_encode, hello_closes_before_sending]
)
def test_hello_server_hint_keeps_its_code_on_one_line(wrong):
    """The verdict wraps at spaces, and the greeting's code has one: a hint that puts the
    code first keeps it whole on one line, so that it still runs when copied."""
    verdict = nb01.check_hello_server(wrong)
    assert_fails(verdict, nb01.SEND_GREETING)
    lines = str(verdict).splitlines()
    assert any(nb01.SEND_GREETING in line for line in lines), str(verdict)


# --- Exercise 2: fetch ---------------------------------------------------------------------


def tutorial_fetch(port):  # the notebook's own wrong answer: one recv
    s = socket.socket()
    s.settimeout(5)
    s.connect(("127.0.0.1", port))
    reply = s.recv(1024).decode()
    s.close()
    return reply


def fetch_spins_on_eof(port):
    s = socket.socket()
    s.settimeout(5)
    s.connect(("127.0.0.1", port))
    received = b""
    while True:  # no break: recv() returns b'' for ever once the server has closed
        received += s.recv(1024)


def fetch_compares_with_str(port):
    s = socket.socket()
    s.settimeout(5)
    s.connect(("127.0.0.1", port))
    received = b""
    while True:
        chunk = s.recv(1024)
        if chunk == "":  # b'' is never equal to ''
            break
        received += chunk
    s.close()
    return received.decode()


def fetch_no_timeout(port):
    s = socket.socket()
    s.connect(("127.0.0.1", port))
    received = b""
    while chunk := s.recv(1024):
        received += chunk
    s.close()
    return received.decode()


def fetch_returns_bytes(port):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        received = b""
        while chunk := s.recv(1024):
            received += chunk
        return received


def fetch_str_buffer(port):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        received = ""
        while chunk := s.recv(1024):
            received += chunk  # TypeError: str + bytes
        return received


def fetch_str_of_bytes(port):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        received = b""
        while chunk := s.recv(1024):
            received += chunk
        return str(received)


def fetch_short_timeout(port):
    with socket.create_connection(("127.0.0.1", port), timeout=0.2) as s:
        received = b""
        while chunk := s.recv(1024):
            received += chunk
        return received.decode()


def fetch_wrong_port(port):
    with socket.create_connection(("127.0.0.1", 1), timeout=5) as s:  # not the given port
        return s.recv(1024).decode()


def fetch_forgets_return(port):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        received = b""
        while chunk := s.recv(1024):
            received += chunk
        print(received.decode())


def fetch_closes_too_early(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    received = s.recv(1024)
    s.close()
    while chunk := s.recv(1024):  # OSError: the socket is closed
        received += chunk
    return received.decode()


def fetch_swallows_errors(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    received = b""
    while True:  # spins on b'', and catches the error that closing its socket causes
        try:
            received += s.recv(1024)
        except OSError:
            pass


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (tutorial_fetch, "call recv() in a loop"),
        (fetch_spins_on_eof, "break out of the loop when recv() returns b''"),
        (fetch_compares_with_str, "compare with b'', not ''"),
        (fetch_no_timeout, "settimeout(5)"),
        (fetch_returns_bytes, "decode()"),
        (fetch_str_buffer, "received = b''"),
        (fetch_str_of_bytes, "data.decode()"),
        (fetch_short_timeout, "your timeout was shorter"),
        (fetch_wrong_port, "the port that fetch is given"),
        (fetch_forgets_return, "returns None"),
        (fetch_closes_too_early, "after close()"),
        (fetch_swallows_errors, "break out of the loop"),
    ],
)
def test_fetch_catches(wrong, hint):
    assert_fails(nb01.check_fetch(wrong), hint)


def test_fetch_that_overruns_is_ended():
    """A fetch that spins on b'' is stopped (its sockets closed), not left running."""
    before = {t for t in threading.enumerate() if t.name == "exercise-call"}
    started = time.monotonic()
    verdict = nb01.check_fetch(fetch_spins_on_eof)
    assert not verdict.passed
    assert time.monotonic() - started < nb01.FETCH_TIMEOUT + 3.0
    left = [t for t in threading.enumerate() if t.name == "exercise-call" and t not in before]
    for thread in left:
        thread.join(2.0)
    assert not any(t.is_alive() for t in left)


def test_fetch_check_touches_only_its_own_connection():
    """Sockets of the caller (the notebook's own client, say) are left open."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        mine = socket.create_connection(listener.getsockname(), timeout=2)
        with mine:
            nb01.check_fetch(fetch_spins_on_eof)
            assert mine.fileno() != -1


class Unequal(str):
    def __eq__(self, other):
        raise RuntimeError("no comparing me")

    __hash__ = str.__hash__


@pytest.mark.parametrize(
    "check, wrong",
    [
        (nb01.check_hello_server, None),
        (nb01.check_hello_server, lambda: None),  # takes no port
        (nb01.check_fetch, None),
        (nb01.check_fetch, lambda: "Thank you for connecting"),  # takes no port
        (nb01.check_fetch, lambda port: Unequal(sol01.fetch(port))),
    ],
)
def test_odd_answers_get_a_verdict_not_a_traceback(check, wrong):
    assert_fails(check(wrong))
