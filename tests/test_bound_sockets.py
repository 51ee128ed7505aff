"""tests/bound_sockets.py, test_rerun's look at a kernel's sockets, finds what psutil finds:
this process's sockets bound beyond loopback (TCP listening, TCP bound and connected, UDP,
IPv4 and IPv6), not its loopback ones, and not another process's."""

import socket
import subprocess
import sys

import bound_sockets
import psutil
import pytest
from bound_sockets import _by_psutil, bound_beyond_loopback

ME = [psutil.Process()]


def test_finds_this_process_sockets_beyond_loopback_as_psutil_does():
    tcp = socket.create_server(("0.0.0.0", 0))
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("", 0))
    tight = socket.create_server(("127.0.0.1", 0))
    tight_udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tight_udp.bind(("127.0.0.1", 0))
    sockets = [tcp, udp, tight, tight_udp]
    expected = {
        (f"0.0.0.0:{tcp.getsockname()[1]}", "LISTEN"),
        (f"0.0.0.0:{udp.getsockname()[1]}", "udp"),
    }
    if socket.has_ipv6:
        try:
            six = socket.create_server(("::", 0), family=socket.AF_INET6)
        except OSError:  # no IPv6 on this machine: the IPv4 part still counts
            pass
        else:
            sockets.append(six)
            expected.add((f":::{six.getsockname()[1]}", "LISTEN"))
    try:
        mine = set(bound_beyond_loopback(ME))
        assert bound_sockets._netlink_works is True  # this Linux answers sock_diag
        assert expected <= mine, mine
        assert mine == set(_by_psutil(ME))
        loopback_ports = {tight.getsockname()[1], tight_udp.getsockname()[1]}
        assert not {a for a, _ in mine if int(a.rsplit(":", 1)[1]) in loopback_ports}
    finally:
        for sock in sockets:
            sock.close()
    assert not {a for a in bound_beyond_loopback(ME) if a in expected}


def test_another_process_socket_is_not_this_one():
    code = (
        "import socket,sys; s=socket.create_server(('0.0.0.0',0)); "
        "print(s.getsockname()[1], flush=True); sys.stdin.read()"
    )
    other = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        port = int(other.stdout.readline())
        theirs = bound_beyond_loopback([psutil.Process(other.pid)])
        assert (f"0.0.0.0:{port}", "LISTEN") in theirs
        assert not [a for a, _ in bound_beyond_loopback(ME) if a == f"0.0.0.0:{port}"]
    finally:
        other.stdin.close()
        other.wait(10)


@pytest.mark.parametrize(
    "ip, loopback",
    [
        ("127.0.0.1", True),
        ("127.0.1.1", True),
        ("::1", True),
        ("0.0.0.0", False),
        ("::", False),
        ("fe80::1%lo", False),
    ],
)
def test_on_loopback(ip, loopback):
    assert bound_sockets.on_loopback(ip) is loopback
