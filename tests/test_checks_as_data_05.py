"""Notebook 05's checks are data: each exercise's cases are a table
(``THREADED_SCENARIOS``, ``HANDLE_SCENARIOS``, ``FETCH_CASES``, ``SELECTOR_SCENARIOS``)
that one engine runs. A new case is a few lines: these tests add one and watch the
check run it, pass the reference solution and catch a mistake the table did not."""

from __future__ import annotations

import socket
import time

from exercise_asserts import assert_passes, fails_with

from helpers.exercises import nb05
from helpers.exercises.solutions import nb05 as sol05


def _failed_case(verdict) -> str:
    return next(line for line in str(verdict).splitlines() if "✗" in line)


def test_a_fetch_all_case_is_one_row(monkeypatch):
    twelve = [f"request {i}".encode() for i in range(12)]
    monkeypatch.setattr(
        nb05,
        "FETCH_CASES",
        [*nb05.FETCH_CASES, ("12 requests at once", twelve, "12 requests")],
    )
    verdict = nb05.check_fetch_all(sol05.fetch_all)
    assert_passes(verdict)
    assert "12 requests at once" in str(verdict), str(verdict)

    def five_at_a_time(port, requests):
        """Right for five requests; more wait for a batch to finish (a pool of 5)."""
        replies = []
        for start in range(0, len(requests), 5):
            replies += sol05.fetch_all(port, requests[start : start + 5])
        return replies

    verdict = nb05.check_fetch_all(five_at_a_time)
    fails_with(verdict, "Open every connection before waiting", what=("only 5 of 12",))
    assert "12 requests at once" in _failed_case(verdict), str(verdict)


def _three_in_turn(threaded_server):
    with nb05.serving(threaded_server) as srv:
        for index in range(3):
            with nb05.connect(srv) as client:
                sent = f"3 clients one after another; client {index + 1}"
                nb05._echo(srv, client, b"turn %d" % index, sent, nb05.HINT_ACCEPT_LOOP)


def test_a_threaded_server_scenario_is_a_few_lines(monkeypatch):
    monkeypatch.setattr(
        nb05,
        "THREADED_SCENARIOS",
        [("echoes 3 clients one after another", _three_in_turn), *nb05.THREADED_SCENARIOS],
    )
    verdict = nb05.check_threaded_server(sol05.threaded_server)
    assert_passes(verdict)
    assert "echoes 3 clients one after another" in str(verdict)

    def one_client_only(port):
        with socket.socket() as listener:
            listener.bind(("127.0.0.1", port))
            listener.listen()
            conn, _ = listener.accept()
        with conn:
            while data := conn.recv(65536):
                conn.sendall(data)

    verdict = nb05.check_threaded_server(one_client_only)
    fails_with(verdict, "while True")
    assert "echoes 3 clients one after another" in _failed_case(verdict), str(verdict)


def _handle_three_words(judge, srv):
    with nb05.connect(srv) as client:
        for word in (b"one", b"two", b"three"):
            nb05._echo(srv, client, word, "b'one', b'two', b'three'", nb05.HINT_LOOP)


def _selector_three_words(server, srv):
    with nb05.connect(srv) as client:
        for word in (b"one", b"two", b"three"):
            nb05._echo_once(srv, client, word, "b'one', b'two', b'three'", nb05.HINT_LOOP)


def test_handle_and_selector_scenarios_are_rows_too(monkeypatch):
    monkeypatch.setattr(nb05, "HANDLE_SCENARIOS", [("echoes three words", _handle_three_words)])
    verdict = nb05.check_handle(sol05.handle)
    assert_passes(verdict)
    assert "echoes three words" in str(verdict)

    async def answers_once(reader, writer):
        writer.write(await reader.read(65536))
        await writer.drain()
        await reader.read(65536)  # then it reads on, and never echoes again
        writer.close()

    verdict = nb05.check_handle(answers_once)
    fails_with(verdict, "Keep the conversation going")
    assert "echoes three words" in _failed_case(verdict), str(verdict)

    monkeypatch.setattr(nb05, "SELECTOR_SCENARIOS", [("echoes three words", _selector_three_words)])
    verdict = nb05.check_selector_server(sol05.selector_server)
    assert_passes(verdict)
    assert "echoes three words" in str(verdict)


def test_one_slow_step_on_a_busy_machine_does_not_hide_the_real_mistake(monkeypatch):
    """In a loaded make test, the event loop's thread got no CPU for over 0.5 s while a
    handler that echoes only once was judged: the verdict blamed a blocked event loop
    instead of the missing loop. A slow step is judged again, and that run's verdict
    counts. Here the busy machine is made certain: the first call stalls the loop."""
    monkeypatch.setattr(nb05, "HANDLE_SCENARIOS", [("echoes three words", _handle_three_words)])
    calls = []

    async def answers_once_on_a_busy_machine(reader, writer):
        calls.append(1)
        if len(calls) == 1:
            time.sleep(nb05.BLOCKED_LOOP + 0.2)  # what a starved thread looks like to asyncio
        writer.write(await reader.read(65536))
        await writer.drain()
        await reader.read(65536)  # then it reads on, and never echoes again
        writer.close()

    verdict = nb05.check_handle(answers_once_on_a_busy_machine)
    fails_with(verdict, "Keep the conversation going", absent=["event loop"])
    assert len(calls) == 2, str(verdict)

    async def blocks_every_time(reader, writer):
        time.sleep(nb05.BLOCKED_LOOP + 0.2)  # a real mistake blocks on the second run too
        writer.write(await reader.read(65536))
        await writer.drain()
        await reader.read(65536)
        writer.close()

    fails_with(nb05.check_handle(blocks_every_time), "event loop")
