"""Every exercise check passes its reference solution and catches realistic mistakes.

Each wrong solution below is one that learners really write (PITFALLS.md); the test
asserts that the check fails it with the hint that names the mistake. Real sockets on
127.0.0.1, no mocks; the checks wait on sockets and events, never on sleep.
"""

import socket
import struct

import pytest

from helpers.exercises import nb03
from helpers.exercises.solutions import nb03 as sol03


def stub(*args):
    raise NotImplementedError


def assert_fails(verdict, *hint_words):
    text = str(verdict)
    assert not verdict.passed, text
    assert "✗" in text, text
    for word in hint_words:
        assert word in verdict.hint, text


# --- notebook 03 -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["recv_exactly", "encode_message", "recv_message", "upper_server", "download_server"]
)
def test_nb03_solutions_pass_and_stubs_are_not_done(name):
    check = getattr(nb03, f"check_{name}")
    verdict = check(getattr(sol03, name))
    assert verdict.passed, str(verdict)
    assert "all" in str(verdict) and "✗" not in str(verdict)
    stub_verdict = check(stub)
    assert stub_verdict.not_done and "not done yet" in str(stub_verdict)


def recv_exactly_single_recv(sock, n):
    return sock.recv(n)


def recv_exactly_ignores_eof(sock, n):
    data = b""
    while len(data) < n:
        data += sock.recv(n - len(data))
    return data


def recv_exactly_over_reads(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(4096)
        if not chunk:
            raise EOFError
        data += chunk
    return data[:n]


def recv_exactly_returns_short(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            break
        data += chunk
    return data


def recv_exactly_raises_connection_error(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed")  # not the EOFError the exercise asks for
        data += chunk
    return data


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (recv_exactly_single_recv, "*up to* n bytes"),
        (recv_exactly_raises_connection_error, "Raise EOFError itself"),
        (recv_exactly_ignores_eof, "returns b'' at once, forever"),
        (recv_exactly_over_reads, "recv(n - len(data))"),
        (recv_exactly_returns_short, "raise EOFError"),
    ],
)
def test_recv_exactly_catches(wrong, hint):
    assert_fails(nb03.check_recv_exactly(wrong), hint)


def recv_exactly_asks_for_n_each_time(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n)  # after a partial read, this may take bytes beyond the n-th
        if not chunk:
            raise EOFError
        data += chunk
    return data


def recv_exactly_asks_for_n_then_cuts(sock, n):
    return recv_exactly_asks_for_n_each_time(sock, n)[:n]  # the bytes cut off are lost


def test_recv_exactly_asking_for_n_on_every_pass_is_caught():
    """The walkthrough's case: b'hel', a pause, b'lo world'; the second recv(5) takes
    b'lo wo', so the function returns 8 bytes for n = 5."""
    verdict = nb03.check_recv_exactly(recv_exactly_asks_for_n_each_time)
    assert_fails(verdict, "Ask recv only for the bytes still missing", "recv(n - len(data))")
    assert "8 bytes" in verdict.failure.what and "b'hello wo'" in verdict.failure.what, str(verdict)
    assert "b'lo world'" in verdict.failure.sent, str(verdict)


def test_recv_exactly_asking_for_n_then_cutting_loses_the_rest():
    verdict = nb03.check_recv_exactly(recv_exactly_asks_for_n_then_cuts)
    assert_fails(verdict, "recv(n - len(data))")
    assert "gone from the socket" in verdict.failure.what, str(verdict)
    assert "b'rld'" in verdict.failure.what, str(verdict)


def recv_exactly_bytearray(sock, n):
    buffer = bytearray(n)
    view = memoryview(buffer)
    got = 0
    while got < n:
        count = sock.recv_into(view[got:], n - got)
        if count == 0:
            raise EOFError("closed")
        got += count
    return bytes(buffer)


def recv_exactly_list_of_chunks(sock, n):
    chunks, missing = [], n
    while missing:
        chunk = sock.recv(min(missing, 1024))
        if chunk == b"":
            raise EOFError
        chunks.append(chunk)
        missing -= len(chunk)
    return b"".join(chunks)


@pytest.mark.parametrize("right", [recv_exactly_bytearray, recv_exactly_list_of_chunks])
def test_recv_exactly_in_other_styles_passes(right):
    verdict = nb03.check_recv_exactly(right)
    assert verdict.passed, str(verdict)


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (lambda text: struct.pack("!I", len(text)) + text.encode(), "counts characters"),
        (
            lambda text: struct.pack("<I", len(text.encode())) + text.encode(),
            "Your length is little-endian; network order is big-endian: '!I'",
        ),
        (
            lambda text: struct.pack("!H", len(text.encode())) + text.encode(),
            "Your header is 2 bytes ('!H', lengths up to 65535); the exercise asks for 4",
        ),
        (lambda text: str(len(text)) + text, "A frame is bytes"),
    ],
)
def test_encode_message_catches(wrong, hint):
    assert_fails(nb03.check_encode_message(wrong), hint)


def recv_message_one_recv(sock):
    data = sock.recv(65536)
    (length,) = struct.unpack("!I", data[:4])
    return data[4 : 4 + length].decode()


def recv_message_decodes_chunks(sock):
    (length,) = struct.unpack("!I", sol03.recv_exactly(sock, 4))
    text = ""
    got = 0
    while got < length:
        chunk = sock.recv(length - got)
        if not chunk:
            raise EOFError
        got += len(chunk)
        text += chunk.decode()
    return text


def recv_message_reads_too_much(sock):
    (length,) = struct.unpack("!I", sol03.recv_exactly(sock, 4))
    data = b""
    while len(data) < length:
        chunk = sock.recv(4096)
        if not chunk:
            raise EOFError
        data += chunk
    return data.decode()


def recv_message_returns_bytes(sock):
    (length,) = struct.unpack("!I", sol03.recv_exactly(sock, 4))
    return sol03.recv_exactly(sock, length)  # forgot .decode()


def recv_message_turns_eof_into_connection_error(sock):
    try:
        (length,) = struct.unpack("!I", sol03.recv_exactly(sock, 4))
        return sol03.recv_exactly(sock, length).decode()
    except EOFError as exc:  # a helper session's answer: the task asks for EOFError
        raise ConnectionError("peer closed mid-frame") from exc


def recv_message_raises_its_own_error(sock):
    (length,) = struct.unpack("!I", sol03.recv_exactly(sock, 4))
    data = b""
    while len(data) < length:
        chunk = sock.recv(length - len(data))
        if not chunk:
            raise RuntimeError("incomplete message")
        data += chunk
    return data.decode()


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (recv_message_turns_eof_into_connection_error, "The task asks for EOFError"),
        (recv_message_raises_its_own_error, "The task asks for EOFError"),
        (recv_message_returns_bytes, "Decode the body before returning it"),
        (recv_message_one_recv, "Read the header with recv_exactly"),
        (recv_message_decodes_chunks, "decode the whole message"),
        (recv_message_reads_too_much, "swallows the start of the next message"),
    ],
)
def test_recv_message_catches(wrong, hint):
    assert_fails(nb03.check_recv_message(wrong), hint)


def recv_message_on_a_recv_n_recv_exactly(sock):
    header = recv_exactly_asks_for_n_each_time(sock, 4)
    (length,) = struct.unpack("!I", header)
    return recv_exactly_asks_for_n_each_time(sock, length).decode("utf-8")


def test_recv_message_on_a_recv_exactly_that_reads_past_n_is_caught():
    """Exercise 3 built on the buggy recv_exactly of Exercise 1 (recv(n) on every pass):
    the body arrives in two pieces, the next frame behind the second."""
    verdict = nb03.check_recv_message(recv_message_on_a_recv_n_recv_exactly)
    assert_fails(verdict, "only for the bytes still missing, recv(n - len(data))")
    assert "'hello\\x00\\x00'" in verdict.failure.what, str(verdict)
    assert "read into the next message" in verdict.failure.what, str(verdict)


def recv_message_with_recv_into(sock):
    (length,) = struct.unpack("!I", recv_exactly_bytearray(sock, 4))
    return recv_exactly_bytearray(sock, length).decode()


def test_recv_message_in_another_style_passes():
    verdict = nb03.check_recv_message(recv_message_with_recv_into)
    assert verdict.passed, str(verdict)


def test_encode_message_failure_shows_the_header_as_a_number():
    verdict = nb03.check_encode_message(lambda text: struct.pack("!I", len(text)) + text.encode())
    assert_fails(verdict, "counts characters")
    assert "header 00:00:00:07 = 7" in verdict.failure.what, str(verdict)
    assert "header 00:00:00:0a = 10" in verdict.failure.what, str(verdict)


def upper_one_recv(port):
    s = socket.socket()
    s.bind(("127.0.0.1", port))
    s.listen()
    while True:
        conn, addr = s.accept()
        with conn:
            conn.sendall(conn.recv(1024).decode().upper().encode())


def upper_decodes_chunks(port):
    s = socket.socket()
    s.bind(("127.0.0.1", port))
    s.listen()
    while True:
        conn, addr = s.accept()
        with conn:
            text = ""
            while chunk := conn.recv(1024):
                text += chunk.decode()
            conn.sendall(text.upper().encode())


def upper_compares_with_str(port):
    s = socket.socket()
    s.bind(("127.0.0.1", port))
    s.listen()
    while True:
        conn, addr = s.accept()
        conn.settimeout(5)
        with conn:
            data = b""
            chunk = None
            while chunk != "":  # b'' != '' is always true: this never ends
                chunk = conn.recv(1024)
                data += chunk
            conn.sendall(data.decode().upper().encode())


def upper_forgets_close(port):
    s = socket.socket()
    s.bind(("127.0.0.1", port))
    s.listen()
    kept = []
    while True:
        conn, addr = s.accept()
        kept.append(conn)
        data = b""
        while chunk := conn.recv(1024):
            data += chunk
        conn.sendall(data.decode().upper().encode())


def upper_sends_str(port):
    s = socket.socket()
    s.bind(("127.0.0.1", port))
    s.listen()
    while True:
        conn, addr = s.accept()
        with conn:
            data = b""
            while chunk := conn.recv(1024):
                data += chunk
            conn.sendall(data.decode().upper())


def upper_bytes_upper(port):
    s = socket.socket()
    s.bind(("127.0.0.1", port))
    s.listen()
    while True:
        conn, addr = s.accept()
        with conn:
            data = b""
            while chunk := conn.recv(1024):
                data += chunk
            conn.sendall(data.upper())  # ASCII letters only: b'\xc3\xa9' (é) stays


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (upper_one_recv, "one recv is not the whole message"),
        (upper_bytes_upper, "bytes.upper() changes only the ASCII letters"),
        (upper_decodes_chunks, "decode the whole message"),
        (upper_compares_with_str, "compare with b''"),
        (upper_forgets_close, "conn.close()"),
        (upper_sends_str, "Sockets carry bytes"),
    ],
)
def test_upper_server_catches(wrong, hint):
    assert_fails(nb03.check_upper_server(wrong), hint)


def test_upper_server_that_crashes_says_it_never_replied():
    verdict = nb03.check_upper_server(upper_decodes_chunks)
    assert_fails(verdict, "decode the whole message")
    what = verdict.failure.what
    assert "UnicodeDecodeError" in what, str(verdict)
    assert "before any reply came" in what or "before replying" in what, str(verdict)
    assert "after replying b''" not in what and "the reply was b''" not in what, str(verdict)


def test_upper_bytes_upper_is_not_blamed_on_recv():
    verdict = nb03.check_upper_server(upper_bytes_upper)
    assert_fails(verdict, "str.upper()")
    assert "one recv" not in verdict.hint, str(verdict)


def test_upper_of_bytes_only():
    request = "héllo wörld".encode()
    expected = "HÉLLO WÖRLD".encode()
    assert nb03.upper_of_bytes_only(request.upper(), request, expected)
    assert nb03.upper_of_bytes_only("HéLLO WÖRLD".encode(), request, expected)
    assert not nb03.upper_of_bytes_only(b"H", request, expected)  # one recv
    assert not nb03.upper_of_bytes_only("hÉLLO WÖRLD".encode(), request, expected)


def download_with_send(port, data):
    s = socket.socket()
    s.bind(("127.0.0.1", port))
    s.listen()
    while True:
        conn, addr = s.accept()
        conn.settimeout(5)  # with a timeout, send() returns as soon as the buffer is full
        with conn:
            conn.send(data)


def download_one_client(port, data):
    s = socket.socket()
    s.bind(("127.0.0.1", port))
    s.listen()
    conn, addr = s.accept()
    with conn:
        conn.sendall(data)


def download_forgets_close(port, data):
    s = socket.socket()
    s.bind(("127.0.0.1", port))
    s.listen()
    kept = []
    while True:
        conn, addr = s.accept()
        kept.append(conn)
        conn.sendall(data)


def download_send_no_timeout(port, data):
    s = socket.socket()
    s.bind(("127.0.0.1", port))
    s.listen()
    while True:
        conn, addr = s.accept()
        with conn:  # no timeout: a blocking send() sends everything, or blocks forever
            conn.send(data)


def download_timeout_on_listener(port, data):
    s = socket.socket()
    s.bind(("127.0.0.1", port))
    s.listen()
    s.settimeout(60)  # the listening socket's timeout is not the connection's
    while True:
        conn, addr = s.accept()
        with conn:
            conn.sendall(data)


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (download_with_send, "sendall()"),
        (download_send_no_timeout, "conn.settimeout(5)"),
        (download_timeout_on_listener, "conn.settimeout(5)"),
        (download_one_client, "`while True:` loop"),
        (download_forgets_close, "conn.close()"),
    ],
)
def test_download_server_catches(wrong, hint):
    assert_fails(nb03.check_download_server(wrong), hint)


def test_download_server_timeout_check_names_the_connection_socket():
    verdict = nb03.check_download_server(download_send_no_timeout)
    assert_fails(verdict, "conn.settimeout(5)")
    assert "the connection socket that accept() returned" in verdict.failure.what, str(verdict)
    assert "the connection socket accept() returned has a timeout" in str(verdict)


# --- notebook 02 -------------------------------------------------------------------------

from helpers.exercises import nb02, nb04  # noqa: E402
from helpers.exercises.solutions import nb02 as sol02  # noqa: E402
from helpers.exercises.solutions import nb04 as sol04  # noqa: E402


@pytest.mark.parametrize(
    "module, solutions, name",
    [
        (nb02, sol02, "port_is_open"),
        (nb02, sol02, "make_server_socket"),
        (nb02, sol02, "hello_server"),
        (nb04, sol04, "echo_server"),
        (nb04, sol04, "handle_command"),
        (nb04, sol04, "command_server"),
    ],
)
def test_nb02_nb04_solutions_pass_and_stubs_are_not_done(module, solutions, name):
    check = getattr(module, f"check_{name}")
    verdict = check(getattr(solutions, name))
    assert verdict.passed, str(verdict)
    assert check(stub).not_done


def port_is_open_no_except(port):
    with socket.create_connection(("127.0.0.1", port), timeout=1):
        return True


def port_is_open_no_timeout(port):
    try:
        with socket.create_connection(("127.0.0.1", port)):
            return True
    except ConnectionRefusedError:
        return False


def port_is_open_no_close(port):
    s = socket.socket()
    s.settimeout(1)
    try:
        s.connect(("127.0.0.1", port))
        return True
    except OSError:
        return False


def port_is_open_catches_refused_only(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except ConnectionRefusedError:
        return False


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (port_is_open_no_except, "ConnectionRefusedError: catch it"),
        (port_is_open_no_timeout, "Give it a timeout"),
        (port_is_open_catches_refused_only, "catch OSError"),
        (port_is_open_no_close, "Close the socket"),
    ],
)
def test_port_is_open_catches(wrong, hint):
    assert_fails(nb02.check_port_is_open(wrong), hint)


def server_socket_every_interface(port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("", port))
    s.listen()
    return s


def server_socket_no_reuseaddr(port):
    s = socket.socket()
    s.bind(("127.0.0.1", port))
    s.listen()
    return s


def server_socket_reuseaddr_after_bind(port):
    s = socket.socket()
    s.bind(("127.0.0.1", port))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.listen()
    return s


def server_socket_no_listen(port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    return s


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (server_socket_every_interface, "other computers"),
        (server_socket_no_reuseaddr, "SO_REUSEADDR before bind()"),
        (server_socket_reuseaddr_after_bind, "You set SO_REUSEADDR after bind()"),
        (server_socket_no_listen, "listen()"),
    ],
)
def test_make_server_socket_catches(wrong, hint):
    assert_fails(nb02.check_make_server_socket(wrong), hint)


def test_make_server_socket_without_the_option_is_not_told_it_set_it_late():
    verdict = nb02.check_make_server_socket(server_socket_no_reuseaddr)
    assert_fails(verdict, "Set SO_REUSEADDR before bind()")
    assert "after bind()" not in verdict.hint, str(verdict)


def server_socket_reuseaddr_true(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, True)
    s.bind(("127.0.0.1", port))
    s.listen(5)
    return s


def test_make_server_socket_in_another_style_passes():
    verdict = nb02.check_make_server_socket(server_socket_reuseaddr_true)
    assert verdict.passed, str(verdict)


def hello_seed_as_is(port):  # the seed: one client, str, no close
    s = socket.socket()
    s.bind(("127.0.0.1", port))
    s.listen(5)
    c, addr = s.accept()
    c.send("Thank you for connecting")


def hello_one_client(port):
    s = socket.socket()
    s.bind(("127.0.0.1", port))
    s.listen(5)
    c, addr = s.accept()
    c.sendall(b"Thank you for connecting\n")
    c.close()


def hello_no_close(port):
    s = socket.socket()
    s.bind(("127.0.0.1", port))
    s.listen(5)
    clients = []
    while True:
        c, addr = s.accept()
        clients.append(c)
        c.sendall(b"Thank you for connecting\n")


def hello_every_interface(port):
    s = socket.socket()
    s.bind(("", port))
    s.listen(5)
    while True:
        c, addr = s.accept()
        with c:
            c.sendall(b"Thank you for connecting\n")


def hello_waits_for_the_client(port):
    s = socket.socket()
    s.bind(("127.0.0.1", port))
    s.listen(5)
    while True:
        c, addr = s.accept()
        with c:
            c.recv(1024)  # deadlock: the client waits for the greeting
            c.sendall(b"Thank you for connecting\n")


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (hello_waits_for_the_client, "this protocol's server speaks first"),
        (hello_seed_as_is, "Sockets carry bytes"),
        (hello_one_client, "`while True:` loop"),
        (hello_no_close, "c.close()"),
        (hello_every_interface, "every interface"),
    ],
)
def test_hello_server_catches(wrong, hint):
    assert_fails(nb02.check_hello_server(wrong), hint)


# --- notebook 04 -------------------------------------------------------------------------


def echo_single_recv(port):
    s = socket.socket()
    s.bind(("127.0.0.1", port))
    s.listen()
    while True:
        conn, addr = s.accept()
        with conn:
            conn.sendall(conn.recv(1024))


def echo_decodes(port):
    s = socket.socket()
    s.bind(("127.0.0.1", port))
    s.listen()
    while True:
        conn, addr = s.accept()
        with conn:
            while data := conn.recv(1024):
                conn.sendall(data.decode().encode())


def echo_ignores_eof(port):
    s = socket.socket()
    s.bind(("127.0.0.1", port))
    s.listen()
    while True:
        conn, addr = s.accept()
        with conn:
            while True:
                conn.sendall(conn.recv(1024))


def echo_no_try(port):
    s = socket.socket()
    s.bind(("127.0.0.1", port))
    s.listen()
    while True:
        conn, addr = s.accept()
        with conn:
            while data := conn.recv(1024):
                conn.sendall(data)


def echo_one_client(port):
    s = socket.socket()
    s.bind(("127.0.0.1", port))
    s.listen()
    conn, addr = s.accept()
    with conn:
        try:
            while data := conn.recv(1024):
                conn.sendall(data)
        except ConnectionError:
            pass


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (echo_single_recv, "One recv is not one message"),
        (echo_decodes, "without decoding"),
        (echo_ignores_eof, "if not data: break"),
        (echo_no_try, "except ConnectionError"),
        (echo_one_client, "`while True:` loop"),
    ],
)
def test_echo_server_catches(wrong, hint):
    assert_fails(nb04.check_echo_server(wrong), hint)


def handle_command_crashes_on_bad_numbers(line):
    command, _, rest = line.partition(" ")
    if command == "ADD":
        a, b = rest.split()
        return str(int(a) + int(b))
    return sol04.handle_command(line)


def handle_command_crashes_on_empty(line):
    words = line.split()
    if words[0] == "PING":
        return "PONG"
    return sol04.handle_command(line)


def handle_command_echo_loses_spaces(line):
    words = line.split()
    if words and words[0] == "ECHO":
        return words[1]
    return sol04.handle_command(line)


def handle_command_error_without_prefix(line):
    reply = sol04.handle_command(line)
    return "ERROR" if reply.startswith("ERR ") else reply


def handle_command_forgets_return(line):
    if line.startswith("ADD"):
        print(sol04.handle_command(line))  # prints instead of returning
        return None
    return sol04.handle_command(line)


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (handle_command_crashes_on_bad_numbers, "never crash"),
        (handle_command_error_without_prefix, "An error reply must start with 'ERR '"),
        (handle_command_forgets_return, "Return the reply as a str"),
        (handle_command_crashes_on_empty, "never crash"),
        (handle_command_echo_loses_spaces, "Split the line"),
    ],
)
def test_handle_command_catches(wrong, hint):
    assert_fails(nb04.check_handle_command(wrong), hint)


def command_server_with(conversation):
    def command_server(port):
        s = socket.socket()
        s.bind(("127.0.0.1", port))
        s.listen()
        while True:
            conn, addr = s.accept()
            with conn:
                try:
                    conversation(conn)
                except ConnectionError:
                    pass

    return command_server


def one_recv_one_command(conn):
    while data := conn.recv(1024):
        reply = sol04.handle_command(data.decode().strip())
        conn.sendall(reply.encode() + b"\n")
        if reply == "BYE":
            return


def no_carriage_return_strip(conn):
    buffer = b""
    while True:
        while b"\n" not in buffer:
            chunk = conn.recv(1024)
            if not chunk:
                return
            buffer += chunk
        line, _, buffer = buffer.partition(b"\n")
        reply = sol04.handle_command(line.decode())
        conn.sendall(reply.encode() + b"\n")
        if reply == "BYE":
            return


def decodes_without_care(conn):
    buffer = b""
    while True:
        while b"\n" not in buffer:
            chunk = conn.recv(1024)
            if not chunk:
                return
            buffer += chunk
        line, _, buffer = buffer.partition(b"\n")
        reply = sol04.handle_command(line.rstrip(b"\r").decode())
        conn.sendall(reply.encode() + b"\n")
        if reply == "BYE":
            return


def answers_after_eof(conn):
    data = b""
    while chunk := conn.recv(1024):  # waits for the client's end before any answer
        data += chunk
    for line in data.split(b"\n")[:-1]:
        try:
            reply = sol04.handle_command(line.rstrip(b"\r").decode())
        except UnicodeDecodeError:
            reply = "ERR not UTF-8"
        conn.sendall(reply.encode() + b"\n")
        if reply == "BYE":
            return


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (command_server_with(one_recv_one_command), "One recv is not one line"),
        (command_server_with(no_carriage_return_strip), "line.rstrip(b'\\r\\n')"),
        (command_server_with(answers_after_eof), "answer it at once"),
        (command_server_with(decodes_without_care), "'ERR ...' to bad bytes"),
    ],
)
def test_command_server_catches(wrong, hint):
    verdict = nb04.check_command_server(wrong)
    assert_fails(verdict, hint)
    # A line protocol answers each line as it arrives: never "read until b''".
    assert "until recv returns b''" not in verdict.hint, str(verdict)


# --- verdict text --------------------------------------------------------------------------


def test_verdict_lines_are_short_and_the_hint_has_its_own_lines():
    verdict = nb04.check_command_server(command_server_with(no_carriage_return_strip))
    lines = str(verdict).splitlines()
    assert all(len(line) <= 90 for line in lines), str(verdict)
    hint_at = next(i for i, line in enumerate(lines) if line.strip().startswith("hint: "))
    assert lines[hint_at].startswith("      hint: telnet"), str(verdict)
    assert lines[hint_at + 1].startswith(" " * 12), str(verdict)  # continued, indented
    assert str(verdict) == str(
        nb04.check_command_server(command_server_with(no_carriage_return_strip))
    )
