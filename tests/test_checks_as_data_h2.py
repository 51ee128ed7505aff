"""The checks of notebooks 03, 06 and 07 are tables of cases: a new case is a few lines.

Each test appends one case to a check's table (monkeypatch: the table is restored after
the test) and shows that the check then runs it: the reference solution passes it (its
title is in the verdict), and a solution that passes the table as it is, being wrong only
for the new case, fails on exactly that case, with the case's hint, after passing every
case before it.
"""

import socket

from helpers.exercises import nb03, nb06, nb07
from helpers.exercises.solutions import nb03 as sol03
from helpers.exercises.solutions import nb06 as sol06
from helpers.exercises.solutions import nb07 as sol07


def passes_with(verdict, title: str) -> None:
    """The verdict passed, and ``title`` is one of its checks (shown with a ✓)."""
    assert verdict.passed, verdict.text()
    assert title in [outcome.title for outcome in verdict.outcomes], verdict.text()
    assert f"✓ {title}" in verdict.text()


def fails_on(verdict, title: str, hint: str) -> None:
    """Every check before ``title`` passed, ``title`` failed with ``hint``, the rest did not run."""
    statuses = [(outcome.title, outcome.status) for outcome in verdict.outcomes]
    titles = [t for t, _ in statuses]
    assert title in titles, verdict.text()
    index = titles.index(title)
    assert [s for _, s in statuses[:index]] == ["pass"] * index, verdict.text()
    assert statuses[index][1] == "fail", verdict.text()
    assert all(s == "skip" for _, s in statuses[index + 1 :]), verdict.text()
    assert verdict.hint == hint, verdict.text()
    assert f"✗ {title}" in verdict.text()


def test_the_checks_run_their_tables_in_order():
    verdict = nb03.check_encode_message(sol03.encode_message)
    assert [o.title for o in verdict.outcomes] == [title for title, _ in nb03.ENCODE_CASES]
    verdict = nb06.check_analyse(sol06.analyse)
    assert [o.title for o in verdict.outcomes] == [title for title, *_ in nb06.ANALYSE_CASES]


# --- notebook 03 ------------------------------------------------------------------------

NEW_TEXT = "y" * 300
NEW_ENCODE = ("a message of 300 characters", NEW_TEXT)


def encode_with_short_header_for_300(text):
    """Right, except that a 300-byte message gets a 2-byte header ('!H')."""
    frame = sol03.encode_message(text)
    return frame[2:] if len(text) == 300 else frame


def test_nb03_a_new_encode_case_is_one_line(monkeypatch):
    assert nb03.check_encode_message(encode_with_short_header_for_300).passed
    monkeypatch.setattr(nb03, "ENCODE_CASES", [*nb03.ENCODE_CASES, NEW_ENCODE])
    passes_with(nb03.check_encode_message(sol03.encode_message), NEW_ENCODE[0])
    verdict = nb03.check_encode_message(encode_with_short_header_for_300)
    fails_on(verdict, NEW_ENCODE[0], nb03.HINT_TWO_BYTE_HEADER)
    assert f"encode_message({NEW_TEXT!r:.40})" in verdict.text()


NEW_EXACTLY = ("10 bytes in two sends", [b"01234", b"56789"], 10, "b'01234', then b'56789'")


def recv_exactly_one_recv_for_10(sock, n):
    """Right, except that for n = 10 it calls recv once."""
    return sock.recv(n) if n == 10 else sol03.recv_exactly(sock, n)


def test_nb03_a_new_recv_exactly_case_is_one_line(monkeypatch):
    assert nb03.check_recv_exactly(recv_exactly_one_recv_for_10).passed
    monkeypatch.setattr(nb03, "EXACTLY_CASES", [*nb03.EXACTLY_CASES, NEW_EXACTLY])
    passes_with(nb03.check_recv_exactly(sol03.recv_exactly), NEW_EXACTLY[0])
    verdict = nb03.check_recv_exactly(recv_exactly_one_recv_for_10)
    fails_on(verdict, NEW_EXACTLY[0], nb03.HINT_ONE_RECV)
    assert NEW_EXACTLY[3] in verdict.text()


# --- notebook 06 ------------------------------------------------------------------------

NEW_ANALYSE = ("[1, 0], count 4: the last two never came", [1, 0], 4)


def analyse_up_to_max_for_4(received, count):
    """Right, except that with count 4 it looks for losses only up to max(received)."""
    result = sol06.analyse(received, count)
    if count == 4:
        result["lost"] = sorted(set(range(max(received) + 1)) - set(received))
    return result


def test_nb06_a_new_analyse_case_is_one_line(monkeypatch):
    assert nb06.check_analyse(analyse_up_to_max_for_4).passed
    monkeypatch.setattr(nb06, "ANALYSE_CASES", [*nb06.ANALYSE_CASES, NEW_ANALYSE])
    passes_with(nb06.check_analyse(sol06.analyse), NEW_ANALYSE[0])
    verdict = nb06.check_analyse(analyse_up_to_max_for_4)
    lost_hint = dict(nb06.ANALYSE_KEYS)["lost"]
    fails_on(verdict, NEW_ANALYSE[0], lost_hint)
    assert "received [1, 0], count 4" in verdict.text()


NEW_REQUEST = nb06.Request(
    "retries when the first three requests are lost",
    "request 7, b'hello'; the server ignores the first 3",
    nb06.HINT_RETRY,
    drop=3,
)


def request_three_tries(address, request_id, payload, timeout=0.2, retries=5):
    """Right, except that it gives up after 3 attempts whatever `retries` says."""
    return sol06.request(address, request_id, payload, timeout, min(retries, 3))


def test_nb06_a_new_request_case_is_a_few_lines(monkeypatch):
    assert nb06.check_request(request_three_tries).passed
    monkeypatch.setattr(nb06, "REQUEST_CASES", [*nb06.REQUEST_CASES, NEW_REQUEST])
    passes_with(nb06.check_request(sol06.request), NEW_REQUEST.title)
    verdict = nb06.check_request(request_three_tries)
    fails_on(verdict, NEW_REQUEST.title, nb06.HINT_RETRY)
    assert NEW_REQUEST.sent in verdict.text()


NEW_ECHO = nb06.UdpCase(
    "replies to three clients, each at its own address",
    datagrams=((0, b"from A"), (1, b"from B"), (2, b"from C")),
    sent="clients A, B and C send one datagram each",
    hint=nb06.HINT_EACH_CLIENT,
)


def udp_echo_two_clients_only(port):
    """Right for two clients; a third one's replies go to the first client."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", port))
    clients = []
    while True:
        data, address = sock.recvfrom(65535)
        if address not in clients:
            clients.append(address)
        sock.sendto(data, address if clients.index(address) < 2 else clients[0])


def test_nb06_a_new_udp_echo_case_is_a_few_lines(monkeypatch):
    assert nb06.check_udp_echo_server(udp_echo_two_clients_only).passed
    monkeypatch.setattr(nb06, "UDP_ECHO_CASES", [*nb06.UDP_ECHO_CASES, NEW_ECHO])
    passes_with(nb06.check_udp_echo_server(sol06.udp_echo_server), NEW_ECHO.title)
    verdict = nb06.check_udp_echo_server(udp_echo_two_clients_only)
    fails_on(verdict, NEW_ECHO.title, nb06.HINT_EACH_CLIENT)
    assert "came within 1 s" in verdict.text() and "no reply to b" in verdict.text()


# --- notebook 07 ------------------------------------------------------------------------

NEW_READ_ALL = (
    "a reply with a CRLF in it is read whole",
    [b"line\r\n", b"rest"],
    b"line\r\nrest",
    "b'line\\r\\n', b'rest' then the peer closes",
)


def read_all_first_line(sock, timeout):
    """Reads until EOF, but returns only up to the first b'\\r\\n' (as if a line were all)."""
    head, end, _ = sol07.read_all(sock, timeout).partition(b"\r\n")
    return head + end


def test_nb07_a_new_read_all_case_is_one_line(monkeypatch):
    assert nb07.check_read_all(read_all_first_line).passed
    monkeypatch.setattr(nb07, "READ_ALL_CASES", [*nb07.READ_ALL_CASES, NEW_READ_ALL])
    passes_with(nb07.check_read_all(sol07.read_all), NEW_READ_ALL[0])
    verdict = nb07.check_read_all(read_all_first_line)
    fails_on(verdict, NEW_READ_ALL[0], nb07.HINT_LOOP)
    assert "it returned b'line\\r\\n'" in verdict.text()


def test_nb07_a_new_graceful_scenario_is_a_function_and_a_line(monkeypatch):
    ran = []

    def echoes_twice(srv, stop):
        nb07._echoes(srv, stop)
        nb07._echoes(srv, stop)
        ran.append(srv.port)

    title = "echoes two clients, one after the other"
    monkeypatch.setattr(
        nb07, "GRACEFUL_SCENARIOS", [*nb07.GRACEFUL_SCENARIOS, (title, echoes_twice)]
    )
    passes_with(nb07.check_graceful_server(sol07.graceful_server), title)
    assert len(ran) == 1
