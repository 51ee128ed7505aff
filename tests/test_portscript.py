"""tests/portscript.py: a server process whose free port another program took first is
started again on another port, and only a process's own listening socket counts as ready."""

import socket

import pytest
from portscript import PORT, script_on_free_port

from helpers import netlab


def test_a_script_whose_port_is_taken_is_started_again_on_another():
    # What a second test run beside this one can do: bind the free port first.
    with socket.create_server(("127.0.0.1", 0)) as holder:
        held = holder.getsockname()[1]
        with script_on_free_port("-m", "helpers.servers.chat", PORT, port=held) as (process, port):
            assert process.taken == [held] and port != held
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                sock.settimeout(5)
                sock.sendall(b"ada\n")
                assert sock.makefile("rb").readline() == b"* ada joined\n"


def test_a_script_that_fails_for_another_reason_is_not_started_again():
    with pytest.raises(netlab.ProcessError, match="ZeroDivisionError"):
        with script_on_free_port("-c", "1 / 0", PORT):
            pass
