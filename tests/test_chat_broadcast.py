"""The course's broadcast server (helpers/servers/chat.py) under churn, with real clients.

100 clients join and leave (by /quit, a close, a reset after joining, a reset right after
the nickname) while 3 others talk: those 3 lose no message, see every churner that joined
also leave, and the server's threads never crash (no RuntimeError: the broadcaster alone
owns the room). nc, a real line client, joins the same room. Every wait is bounded.
"""

import shutil
import socket
import subprocess
import threading
from pathlib import Path

import pytest
from portscript import PORT, script_on_free_port

from helpers import netlab
from helpers.exercises import nb09
from helpers.servers import chat

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("round_", range(3))
def test_100_clients_come_and_go_while_3_talk_and_nothing_is_lost(round_):
    srv = netlab.serve(chat.chat_server, port=None, announce=False)
    try:
        result = nb09.churn(srv.port, stayers=3, churners=100)
        errors = list(srv.errors)
    finally:
        srv.stop()
    assert not result.get("not_ready"), result
    assert not result["stalled"], result
    assert all(count >= 50 for count in result["sent"].values()), result["sent"]
    assert result["missing"] == {f"stayer{i}": [] for i in range(3)}
    assert not result["disorder"], result["disorder"]
    assert result["unleft"] == {f"stayer{i}": [] for i in range(3)}
    assert not result["churn_errors"], [f.what for f in result["churn_errors"]]
    assert errors == [], errors


def test_the_scenario_catches_a_broadcast_over_the_live_dict():
    """The same scenario against the notebook's first design (readers change the dict the
    broadcaster goes through) makes PITFALLS row 15 happen: the broadcaster thread dies
    with the RuntimeError and messages are lost. Run until it shows (at most 5 rounds)."""
    import queue

    def naive_room(port):
        members, events = {}, queue.Queue()

        def broadcaster():
            while True:
                data = (events.get() + "\n").encode()
                for conn in members:  # the live dict
                    try:
                        conn.sendall(data)
                    except OSError:
                        pass

        def reader(conn):
            nick = None
            try:
                for line in chat.lines_of(conn):
                    if nick is None:
                        nick = line
                        members[conn] = nick
                        events.put(f"* {nick} joined")
                    elif line == "/quit":
                        break
                    else:
                        events.put(f"{nick}: {line}")
            except OSError:
                pass
            members.pop(conn, None)
            if nick is not None:
                events.put(f"* {nick} left")
            conn.close()

        threading.Thread(target=broadcaster, daemon=True).start()
        with socket.create_server(("127.0.0.1", port)) as listener:
            while True:
                conn, _ = listener.accept()
                threading.Thread(target=reader, args=(conn,), daemon=True).start()

    seen = []
    for _ in range(5):
        srv = netlab.serve(naive_room, port=None, announce=False)
        try:
            result = nb09.churn(srv.port, stayers=3, churners=100, min_messages=20)
            seen = [repr(e) for e in srv.errors]
        finally:
            srv.stop()
        if seen:
            break
    # CPython says "keys changed" when a join and a leave left the size as it was
    messages = ("dictionary changed size during iteration", "dictionary keys changed during")
    assert any(m in e for e in seen for m in messages), seen
    # a crashed broadcaster loses messages, or the room never got ready (churn then
    # returns {"not_ready": True} and nothing else: the crash came before the stayers)
    lost = any(result.get("missing", {}).values()) or result.get("stalled")
    assert lost or result.get("not_ready"), result


def test_nc_joins_the_room():
    assert shutil.which("nc"), "nc is missing: make system-tools (netcat-openbsd)"
    srv = netlab.serve(chat.chat_server, port=None, announce=False)
    try:
        with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as alice:
            alice.sendall(b"alice\n")
            stream = alice.makefile("rb")
            assert stream.readline() == b"* alice joined\n"
            done = subprocess.run(
                ["nc", "-N", "-w", "5", "127.0.0.1", str(srv.port)],
                input="shell-user\nhello from nc, ünïcode\n/quit\n".encode(),
                capture_output=True,
                timeout=15,
            )
            seen_by_alice = [stream.readline() for _ in range(3)]
    finally:
        srv.stop()
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode().splitlines() == [
        "* shell-user joined",
        "shell-user: hello from nc, ünïcode",
    ]
    assert seen_by_alice == [
        b"* shell-user joined\n",
        "shell-user: hello from nc, ünïcode\n".encode(),
        b"* shell-user left\n",
    ]


def test_chat_module_runs_as_a_process():
    """python -m helpers.servers.chat PORT serves the same room (the module docstring)."""
    with script_on_free_port("-m", "helpers.servers.chat", PORT) as (_, port):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(b"zo\xc3\xab\n")
            assert sock.makefile("rb").readline() == "* zoë joined\n".encode()
