"""A verdict says in words what came back and how the wait for it ended.

Before, nb05 said "the echo was b'' (timeout)" when nothing at all had come: a learner
read b'' as the client-closed signal. ``describe_reply`` says "nothing" and the wait.
"""

import socket

from exercise_asserts import fails_with

from helpers.exercises import nb05
from helpers.exercises._checker import describe_reply


def test_each_way_a_wait_ends_has_words():
    assert describe_reply(b"hi", "done") == "b'hi'"
    assert describe_reply(b"", "timeout", 2.0) == "nothing: no byte came back within 2 s"
    assert describe_reply(b"he", "timeout", 1.5) == "b'he' (then nothing more within 1.5 s)"
    assert describe_reply(b"", "eof").startswith("nothing: your server closed the connection")
    assert describe_reply(b"he", "eof") == "b'he' (then your server closed the connection)"
    assert describe_reply(b"", "reset").startswith("nothing: the connection was reset")
    assert describe_reply(b"", "server-gone") == "nothing: your server ended before it answered"
    assert "b''" not in describe_reply(b"", "timeout")


def silent_threaded_server(port):
    """Accepts client after client in threads, reads, and never echoes."""
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", port))
    listener.listen()

    def handle(conn):
        with conn:
            while conn.recv(1024):
                pass

    while True:
        conn, _ = listener.accept()
        threading.Thread(target=handle, args=(conn,), daemon=True).start()


def test_a_server_that_never_echoes_is_told_nothing_came_within_the_wait():
    verdict = nb05.check_threaded_server(silent_threaded_server)
    fails_with(verdict, what=["nothing: no byte came back within 2 s"], absent=["(timeout)"])
