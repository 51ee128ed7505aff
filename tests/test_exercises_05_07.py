"""The checks of notebooks 05-07 pass the reference solutions and catch realistic mistakes.

Each wrong solution below is one a learner writes (PITFALLS.md); the test asserts the
verdict fails and gives the hint that fixes that mistake.
"""

import asyncio
import socket
import struct
import threading
import time

import pytest

from helpers.exercises import nb07
from helpers.exercises.solutions import nb07 as sol07


def stub(*args):
    raise NotImplementedError


def fails_with(verdict, hint_part: str) -> None:
    assert not verdict.passed, verdict.text()
    assert hint_part in verdict.hint, verdict.text()


# --- notebook 07 -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "check, solution",
    [
        (nb07.check_read_all, sol07.read_all),
        (nb07.check_ask, sol07.ask),
        (nb07.check_graceful_server, sol07.graceful_server),
    ],
)
def test_nb07_solutions_pass_and_stubs_are_not_done(check, solution):
    assert check(solution).passed
    verdict = check(stub)
    assert verdict.not_done and "not done yet" in verdict.text()


def read_all_one_recv(sock, timeout):
    sock.settimeout(timeout)
    return sock.recv(65536)


def read_all_no_timeout(sock, timeout):
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def read_all_str_compare(sock, timeout):
    sock.settimeout(timeout)
    data = b""
    chunk = None
    while chunk != "":  # b'' != '' : spins at the end of the stream
        chunk = sock.recv(65536)
        data += chunk
    return data


def read_all_swallows_timeout(sock, timeout):
    sock.settimeout(timeout)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except TimeoutError:
        pass
    return data


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (read_all_one_recv, "Keep calling it"),
        (read_all_no_timeout, "settimeout"),
        (read_all_str_compare, "b'' is not equal to ''"),
        (read_all_swallows_timeout, "Let TimeoutError reach the caller"),
    ],
)
def test_nb07_read_all_catches(wrong, hint):
    fails_with(nb07.check_read_all(wrong), hint)


def ask_without_shutdown(port, request):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)


def ask_close_instead_of_shutdown(port, request):
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(request)
    sock.close()
    return sock.recv(65536)


def ask_one_recv(port, request):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        sock.shutdown(socket.SHUT_WR)
        return sock.recv(65536)


def ask_shut_rdwr(port, request):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        sock.shutdown(socket.SHUT_RDWR)  # closes the reading side too
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (ask_shut_rdwr, "SHUT_RDWR): it also closes your reading side"),
        (ask_without_shutdown, "shutdown(socket.SHUT_WR)"),
        (ask_close_instead_of_shutdown, "close() ends both directions"),
        (ask_one_recv, "Keep calling it"),
    ],
)
def test_nb07_ask_catches(wrong, hint):
    fails_with(nb07.check_ask(wrong), hint)


def graceful_ignores_stop(port, stop):
    listener = socket.socket()
    listener.bind(("127.0.0.1", port))
    listener.listen()
    while True:
        conn, _ = listener.accept()
        with conn:
            while data := conn.recv(4096):
                conn.sendall(data)


def graceful_blocking_recv(port, stop):
    listener = socket.socket()
    listener.bind(("127.0.0.1", port))
    listener.listen()
    listener.settimeout(0.1)
    while not stop.is_set():
        try:
            conn, _ = listener.accept()
        except TimeoutError:
            continue
        conn.settimeout(None)  # stop is only seen between clients
        with conn:
            while data := conn.recv(4096):
                conn.sendall(data)


def graceful_forgets_clients(port, stop):
    listener = socket.socket()
    listener.bind(("127.0.0.1", port))
    listener.listen()
    listener.settimeout(0.1)
    kept = []

    def echo(conn):
        while data := conn.recv(4096):
            conn.sendall(data)

    while not stop.is_set():
        try:
            conn, _ = listener.accept()
        except TimeoutError:
            continue
        kept.append(conn)
        threading.Thread(target=echo, args=(conn,), daemon=True).start()
    listener.close()
    graceful_forgets_clients.kept = kept  # the connections live on after return


def graceful_aborts(port, stop):
    listener = socket.socket()
    listener.bind(("127.0.0.1", port))
    listener.listen()
    listener.settimeout(0.1)
    while not stop.is_set():
        try:
            conn, _ = listener.accept()
        except TimeoutError:
            continue
        conn.settimeout(0.1)
        while not stop.is_set():
            try:
                data = conn.recv(4096)
            except TimeoutError:
                continue
            if not data:
                break
            conn.sendall(data)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()


def graceful_never_closes_conn(port, stop):
    listener = socket.socket()
    listener.bind(("127.0.0.1", port))
    listener.listen()
    listener.settimeout(0.1)
    with listener:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            conn.settimeout(0.1)  # no `with conn:`: only the garbage collector closes it
            while not stop.is_set():
                try:
                    data = conn.recv(4096)
                except TimeoutError:
                    continue
                if not data:
                    break
                conn.sendall(data)


def graceful_drops_quiet_clients(port, stop):
    listener = socket.socket()
    listener.bind(("127.0.0.1", port))
    listener.listen()
    listener.settimeout(0.1)
    with listener:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            conn.settimeout(0.1)
            with conn:
                try:
                    while not stop.is_set() and (data := conn.recv(4096)):
                        conn.sendall(data)
                except TimeoutError:
                    pass  # a quiet client is dropped


def graceful_drops_quiet_clients_late(port, stop):
    # As above, but the thread runs late after its timeout, as on a busy machine where it
    # waits for a CPU: the connection is closed after the client's quiet 0.5 s has passed.
    listener = socket.socket()
    listener.bind(("127.0.0.1", port))
    listener.listen()
    listener.settimeout(0.1)
    with listener:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            conn.settimeout(0.1)
            with conn:
                try:
                    while not stop.is_set() and (data := conn.recv(4096)):
                        conn.sendall(data)
                except TimeoutError:
                    late = time.monotonic() + 0.6
                    while time.monotonic() < late:
                        pass  # runnable, not waiting: what a thread without a CPU looks like


def graceful_tests_the_event_itself(port, stop):
    with socket.socket() as listener:  # a helper session's answer
        listener.bind(("127.0.0.1", port))
        listener.listen()
        listener.settimeout(0.1)
        while not stop:  # an Event object is always true: the loop never runs
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.sendall(conn.recv(1024))


def test_nb07_a_correct_server_that_tests_the_event_for_a_default_passes():
    def graceful_server(port, stop=None):
        stop = stop or threading.Event()  # truth-tests the Event, harmlessly
        return sol07.graceful_server(port, stop)

    verdict = nb07.check_graceful_server(graceful_server)
    assert verdict.passed, str(verdict)


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (graceful_tests_the_event_itself, "`while not stop.is_set():`. `not stop` is always"),
        (graceful_never_closes_conn, "`with conn:` blocks close"),
        (graceful_drops_quiet_clients, "keep waiting (continue)"),
        (graceful_drops_quiet_clients_late, "keep waiting (continue)"),
        (graceful_ignores_stop, "never looks at `stop`"),
        (graceful_blocking_recv, "never looks at `stop`"),
        (graceful_forgets_clients, "close every client connection"),
        (graceful_aborts, "SO_LINGER 0"),
    ],
)
def test_nb07_graceful_server_catches(wrong, hint):
    fails_with(nb07.check_graceful_server(wrong), hint)


# --- notebook 05 -----------------------------------------------------------------------

from helpers.exercises import nb05  # noqa: E402
from helpers.exercises.solutions import nb05 as sol05  # noqa: E402


async def async_stub(reader, writer):
    raise NotImplementedError


@pytest.mark.parametrize(
    "check, solution, stub_function",
    [
        (nb05.check_threaded_server, sol05.threaded_server, stub),
        (nb05.check_handle, sol05.handle, async_stub),
        (nb05.check_fetch_all, sol05.fetch_all, stub),
    ],
)
def test_nb05_solutions_pass_and_stubs_are_not_done(check, solution, stub_function):
    assert check(solution).passed
    assert check(stub_function).not_done


def _echo_loop(conn):
    with conn:
        while data := conn.recv(4096):
            conn.sendall(data)


def iterative_server(port):
    listener = socket.socket()
    listener.bind(("127.0.0.1", port))
    listener.listen()
    while True:
        conn, _ = listener.accept()
        _echo_loop(conn)


def run_not_start_server(port):
    listener = socket.socket()
    listener.bind(("127.0.0.1", port))
    listener.listen()
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=_echo_loop, args=(conn,)).run()


def one_recv_server(port):
    def handle(conn):
        with conn:
            conn.sendall(conn.recv(1024))

    listener = socket.socket()
    listener.bind(("127.0.0.1", port))
    listener.listen()
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=handle, args=(conn,), daemon=True).start()


def no_accept_loop_server(port):
    listener = socket.socket()
    listener.bind(("127.0.0.1", port))
    listener.listen()
    conn, _ = listener.accept()  # one client, then the function returns
    threading.Thread(target=_echo_loop, args=(conn,)).start()


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (no_accept_loop_server, "in a `while True:` loop"),
        (iterative_server, "one client at a time"),
        (run_not_start_server, "Not .run()"),
        (one_recv_server, "loop on recv()"),
    ],
)
def test_nb05_threaded_server_catches(wrong, hint):
    fails_with(nb05.check_threaded_server(wrong), hint)


async def handle_read_all(reader, writer):
    data = await reader.read()  # waits for the end of the stream
    writer.write(data)
    await writer.drain()
    writer.close()


async def handle_once(reader, writer):
    writer.write(await reader.read(65536))
    await writer.drain()
    writer.close()


async def handle_never_closes(reader, writer):
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()


async def handle_no_await(reader, writer):
    while data := reader.read(65536):  # a coroutine, not bytes
        writer.write(data)
        await writer.drain()
    writer.close()


async def handle_asyncio_run(reader, writer):
    while data := asyncio.run(reader.read(65536)):
        writer.write(data)
    writer.close()


async def handle_drain_not_awaited(reader, writer):
    try:
        while data := await reader.read(65536):
            writer.write(data)
            writer.drain()
    finally:
        writer.close()
        await writer.wait_closed()


async def handle_no_drain(reader, writer):
    try:
        while data := await reader.read(65536):
            writer.write(data)  # no drain(): the buffer grows while the client does not read
    finally:
        writer.close()
        await writer.wait_closed()


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (handle_no_drain, "`await writer.drain()`: it waits"),
        (handle_no_await, "without await gives a coroutine"),
        (handle_asyncio_run, "do not call asyncio.run()"),
        (handle_drain_not_awaited, "`await writer.drain()`"),
        (handle_read_all, "without a size waits"),
        (handle_once, "Loop"),
        (handle_never_closes, "writer.close()"),
    ],
)
def test_nb05_handle_catches(wrong, hint):
    fails_with(nb05.check_handle(wrong), hint)


def fetch_one_by_one(port, requests):
    return [sol05.fetch_all(port, [request])[0] for request in requests]


def fetch_in_finishing_order(port, requests):
    replies = []
    lock = threading.Lock()

    def fetch(request):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(request)
            sock.shutdown(socket.SHUT_WR)
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        with lock:
            replies.append(b"".join(chunks))

    threads = [threading.Thread(target=fetch, args=(r,)) for r in requests]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    return replies


def fetch_one_recv(port, requests):
    replies = [None] * len(requests)

    def fetch(index, request):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(request)
            sock.shutdown(socket.SHUT_WR)
            replies[index] = sock.recv(65536)

    threads = [threading.Thread(target=fetch, args=(i, r)) for i, r in enumerate(requests)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    return replies


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (fetch_one_by_one, "Open every connection before waiting"),
        (fetch_in_finishing_order, "Store each reply at its request's index"),
        (fetch_one_recv, "recv() in a loop"),
    ],
)
def test_nb05_fetch_all_catches(wrong, hint):
    fails_with(nb05.check_fetch_all(wrong), hint)


def fetch_no_shutdown(port, requests):
    replies = [None] * len(requests)

    def fetch(index, request):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(request)  # no shutdown(SHUT_WR): the server waits for more
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
            replies[index] = b"".join(chunks)

    threads = [threading.Thread(target=fetch, args=(i, r)) for i, r in enumerate(requests)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    return replies


def fetch_no_join(port, requests):
    replies = [None] * len(requests)

    def fetch(index, request):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(request)
            sock.shutdown(socket.SHUT_WR)
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
            replies[index] = b"".join(chunks)

    for i, r in enumerate(requests):
        threading.Thread(target=fetch, args=(i, r)).start()
    return replies  # the threads are still fetching


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (fetch_no_shutdown, "shutdown(socket.SHUT_WR)"),
        (fetch_no_join, "join() every thread"),
    ],
)
def test_nb05_fetch_all_catches_half_close_and_join(wrong, hint, capsys):
    fails_with(nb05.check_fetch_all(wrong), hint)
    assert "Traceback" not in capsys.readouterr().err


# --- notebook 06 -----------------------------------------------------------------------

from helpers.exercises import nb06  # noqa: E402
from helpers.exercises.solutions import nb06 as sol06  # noqa: E402


@pytest.mark.parametrize(
    "check, solution",
    [
        (nb06.check_udp_echo_server, sol06.udp_echo_server),
        (nb06.check_request, sol06.request),
        (nb06.check_analyse, sol06.analyse),
    ],
)
def test_nb06_solutions_pass_and_stubs_are_not_done(check, solution):
    assert check(solution).passed
    assert check(stub).not_done


def udp_small_buffer(port):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", port))
    while True:
        data, address = sock.recvfrom(1024)
        sock.sendto(data, address)


def udp_stops_on_empty(port):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", port))
    while True:
        data, address = sock.recvfrom(65535)
        if not data:  # TCP habit: b'' meant "closed"
            break
        sock.sendto(data, address)


def udp_first_client_only(port):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", port))
    first = None
    while True:
        data, address = sock.recvfrom(65535)
        first = first or address
        sock.sendto(data, first)


def udp_buffer_4096(port):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", port))
    while True:
        data, address = sock.recvfrom(4096)
        sock.sendto(data, address)


def udp_with_tcp_socket(port):
    listener = socket.socket()  # SOCK_STREAM: TCP
    listener.bind(("127.0.0.1", port))
    listener.listen()
    while True:
        conn, _ = listener.accept()
        with conn:
            conn.sendall(conn.recv(65535))


def udp_every_interface(port):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("", port))
    while True:
        data, address = sock.recvfrom(65535)
        sock.sendto(data, address)


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (udp_buffer_4096, "recvfrom(65535)"),
        (udp_with_tcp_socket, "SOCK_DGRAM"),
        (udp_every_interface, "every interface"),
        (udp_small_buffer, "recvfrom(65535)"),
        (udp_stops_on_empty, "empty datagram b'' is a valid datagram"),
        (udp_first_client_only, "address recvfrom() returned"),
    ],
)
def test_nb06_udp_echo_server_catches(wrong, hint):
    fails_with(nb06.check_udp_echo_server(wrong), hint)


def request_no_retry(address, request_id, payload, timeout=0.2, retries=5):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.sendto(f"{request_id}:".encode() + payload, address)
        return sock.recvfrom(65535)[0].partition(b":")[2]


def request_any_reply(address, request_id, payload, timeout=0.2, retries=5):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        for _ in range(retries):
            sock.sendto(f"{request_id}:".encode() + payload, address)
            try:
                return sock.recvfrom(65535)[0].partition(b":")[2]
            except TimeoutError:
                continue
    raise TimeoutError


def request_forever(address, request_id, payload, timeout=0.2, retries=5):
    prefix = f"{request_id}:".encode()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        while True:
            sock.sendto(prefix + payload, address)
            try:
                data, _ = sock.recvfrom(65535)
            except TimeoutError:
                continue
            if data.startswith(prefix):
                return data[len(prefix) :]


def request_one_send_too_many(address, request_id, payload, timeout=0.2, retries=5):
    prefix = f"{request_id}:".encode()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        for _attempt in range(retries + 1):  # the first send plus `retries` re-sends
            sock.sendto(prefix + payload, address)
            try:
                while True:
                    data, _ = sock.recvfrom(65535)
                    if data.startswith(prefix):
                        return data[len(prefix) :]
            except TimeoutError:
                continue
    raise TimeoutError


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (request_one_send_too_many, "at most `retries` times in all"),
        (request_no_retry, "send the request again"),
        (request_any_reply, "Check the id"),
        (request_forever, "Give up after"),
    ],
)
def test_nb06_request_catches(wrong, hint):
    fails_with(nb06.check_request(wrong), hint)


def analyse_previous_only(received, count):
    result = sol06.analyse(received, count)
    result["late"] = sum(1 for a, b in zip(received, received[1:], strict=False) if b < a)
    return result


def analyse_repeats_duplicates(received, count):
    result = sol06.analyse(received, count)
    result["duplicated"] = sorted(n for i, n in enumerate(received) if n in received[:i])
    return result


def analyse_up_to_max(received, count):
    result = sol06.analyse(received, count)
    result["lost"] = sorted(set(range(max(received) + 1)) - set(received))
    return result


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (analyse_previous_only, "highest so far"),
        (analyse_repeats_duplicates, "listed once"),
        (analyse_up_to_max, "do not stop at max(received)"),
    ],
)
def test_nb06_analyse_catches(wrong, hint):
    fails_with(nb06.check_analyse(wrong), hint)
