"""Reference solutions of notebook 06's exercises (the notebook's hidden cells)."""

import socket
import time


def udp_echo_server(port):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", port))
    while True:
        data, address = sock.recvfrom(65535)
        sock.sendto(data, address)


def request(address, request_id, payload, timeout=0.2, retries=5):
    prefix = f"{request_id}:".encode()  # the colon too: b'70:' starts with b'7'
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for _attempt in range(retries):
            sock.sendto(prefix + payload, address)
            deadline = time.monotonic() + timeout  # stale replies must not extend the wait
            try:
                while (remaining := deadline - time.monotonic()) > 0:
                    sock.settimeout(remaining)
                    data, _ = sock.recvfrom(65535)
                    if data.startswith(prefix):
                        return data[len(prefix) :]
            except TimeoutError:
                pass
    raise TimeoutError(f"no reply to request {request_id} after {retries} attempts")


def analyse(received, count):
    seen, duplicated, late, highest = set(), set(), 0, -1
    for number in received:
        if number in seen:
            duplicated.add(number)
        elif number < highest:
            late += 1
        seen.add(number)
        highest = max(highest, number)
    return {
        "lost": sorted(set(range(count)) - seen),
        "duplicated": sorted(duplicated),
        "late": late,
    }
