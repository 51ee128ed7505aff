"""Sequence diagrams: text snapshots, valid HTML that says all the text says, a live relay.

The text renderings are compared exactly with ``tests/snapshots/diagram_*.txt``. After
an intended change, rewrite them with ``UPDATE_SNAPSHOTS=1 pytest tests/test_diagram.py``
and read the diff before committing it.
"""

from __future__ import annotations

import os
import re
import socket
import threading
from html.parser import HTMLParser
from pathlib import Path

import pytest

from helpers.netlab._diagram import Diagram, format_preview, sequence_diagram
from helpers.netlab._relay import CLIENT_TO_SERVER, SERVER_TO_CLIENT, Connection, Event, Relay

C2S, S2C = CLIENT_TO_SERVER, SERVER_TO_CLIENT
SNAPSHOTS = Path(__file__).parent / "snapshots"
TIMEOUT = 5.0


def make_connection(number, events, *, closed=True, client_port=50001) -> Connection:
    """A Connection as the relay would record it, with totals computed from ``events``."""
    size = dict.fromkeys((C2S, S2C), 0)
    chunks = dict.fromkeys((C2S, S2C), 0)
    ended = dict.fromkeys((C2S, S2C))
    for e in events:
        if e.kind == "data":
            size[e.direction] += e.size
            chunks[e.direction] += 1
        elif e.kind == "omitted":
            size[e.direction] += e.size
            chunks[e.direction] += e.count
        elif e.kind == "fin":
            ended[e.direction] = "FIN"
        elif e.kind in ("reset", "refused"):
            ended = {d: ended[d] or "RST" for d in ended}
    return Connection(
        number=number,
        client=("127.0.0.1", client_port),
        server=("127.0.0.1", 5000),
        upstream=("127.0.0.1", 40000 + number),
        events=tuple(events),
        bytes=size,
        chunks=chunks,
        ended=ended,
        closed=closed,
    )


SEED = make_connection(
    1,
    [
        Event("open", 0.0),
        Event("data", 0.0004, S2C, 24, b"Thank you for connecting"),
        Event("fin", 0.0005, S2C),
        Event("fin", 0.0009, C2S),
        Event("close", 0.001),
    ],
)

HTTP = make_connection(
    2,
    [
        Event("open", 0.0),
        Event("data", 0.0012, C2S, 16, b"GET / HTTP/1.1\r\n"),
        Event("data", 0.0051, C2S, 24, b'Host: "x"\\y\r\n\tAccept: */*'[:24]),
        Event("data", 0.0058, C2S, 2, b"\r\n"),
        Event("fin", 0.0060, C2S),
        Event(
            "data",
            0.0072,
            S2C,
            1200,
            b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 1135\r\n\r\n"[:64],
        ),
        Event("data", 0.0080, S2C, 5, bytes([0, 1, 2, 254, 255])),
        Event("data", 1.2345, S2C, 70000, bytes(range(64))),
        Event("fin", 1.2351, S2C),
        Event("close", 1.2352),
    ],
)

RESET = make_connection(
    3,
    [
        Event("open", 0.0),
        Event("data", 0.001, C2S, 5, b"hello"),
        Event("reset", 0.002, C2S, note="ConnectionResetError"),
        Event("close", 0.0021),
    ],
)

MANY = make_connection(
    4,
    [Event("open", 0.0)]
    + [
        Event(
            "data",
            0.001 * i,
            C2S,
            1000,
            b"chunk %02d of 50: " % i + b"abcdefghijklmnopqrstuvwxyz" * 2,
        )
        for i in range(50)
    ]
    + [Event("fin", 0.06, C2S)]
    + [Event("data", 0.07 + 0.001 * i, S2C, 10 + i, b"ok %d\n" % i) for i in range(3)]
    + [Event("omitted", 0.08, S2C, size=123456, count=7), Event("fin", 0.09, S2C)]
    + [Event("close", 0.091)],
)

REFUSED = make_connection(
    5,
    [
        Event("refused", 0.0003, note="ConnectionRefusedError: Connection refused"),
        Event("close", 0.0004),
    ],
)

STILL_OPEN = make_connection(
    6, [Event("open", 0.0), Event("data", 0.25, C2S, 1, b"a")], closed=False
)

CASES = {
    "seed": (SEED, {}),
    "seed_addresses": (SEED, {"addresses": True}),
    "http": (HTTP, {}),
    "http_times": (HTTP, {"times": True}),
    "reset": (RESET, {}),
    "many": (MANY, {}),
    "refused": (REFUSED, {}),
    "still_open": (STILL_OPEN, {}),
    "two": ([SEED, RESET], {}),
    "empty": ([], {}),
}


def check_snapshot(name: str, text: str) -> None:
    path = SNAPSHOTS / f"diagram_{name}.txt"
    if os.environ.get("UPDATE_SNAPSHOTS"):
        path.parent.mkdir(exist_ok=True)
        path.write_text(text + "\n", encoding="utf-8")
    expected = path.read_text(encoding="utf-8")
    assert text + "\n" == expected, f"the text differs from {path}"


@pytest.mark.parametrize("name", CASES)
def test_text_matches_snapshot(name):
    what, options = CASES[name]
    check_snapshot(name, sequence_diagram(what, **options).text())


# --- what the text shows -----------------------------------------------------------------


def test_one_arrow_per_chunk_and_the_cap():
    text = sequence_diagram(MANY).text()
    assert text.count("1000 bytes") == 40  # the default limit
    assert "... 10 more chunks client->server (10000 bytes)" in text
    # after the client's FIN: the 3 server chunks are beyond the limit, with the 7 omitted
    assert "... 10 more chunks server->client (123489 bytes)" in text
    lines = text.splitlines()
    first_more = next(i for i, line in enumerate(lines) if "... 10 more" in line)
    assert "FIN" in lines[first_more + 1]  # the summary stands where the chunks were
    assert sequence_diagram(MANY, limit=100).text().count("1000 bytes") == 50


def test_times_are_hidden_by_default_and_rounded_to_ms():
    assert " ms" not in sequence_diagram(HTTP).text()
    text = sequence_diagram(HTTP, times=True).text()
    assert re.search(r"^\s*1235 ms\s+\|<-", text, re.M)  # 1.2345 s -> 1235 ms (rounded)


def test_lines_have_the_fixed_width():
    for what, options in CASES.values():
        text = sequence_diagram(what, **options).text()
        assert max(map(len, text.splitlines())) <= 72
        assert text == sequence_diagram(what, **options).text()  # deterministic
    assert max(map(len, sequence_diagram(HTTP, width=100).text().splitlines())) <= 100


@pytest.mark.parametrize(
    ("data", "size", "expected"),
    [
        (b"Thank you", None, '"Thank you"'),
        (b'GET / HTTP/1.1\r\n\t"\\', None, '"GET / HTTP/1.1\\r\\n\\t\\"\\\\"'),
        (b"\x00\x01\xfe\xff", None, "00 01 fe ff"),
        (b"caf\xc3\xa9", None, "63 61 66 c3 a9"),  # not ASCII: bytes, as they travel
        (b"abc", 10, '"abc"...'),  # the relay kept the first 3 of 10 bytes
        (b"x" * 100, None, '"' + "x" * 35 + '"...'),
        (bytes(20), None, "00 " * 12 + "..."),
    ],
)
def test_format_preview(data, size, expected):
    assert format_preview(data, size) == expected
    assert len(format_preview(data, size)) <= 40


# --- HTML ----------------------------------------------------------------------------------


class HTMLChecker(HTMLParser):
    """Collects the visible text and every nesting error of a piece of HTML."""

    VOID = {"br", "hr", "img", "input", "link", "meta", "col", "area", "base", "wbr"}

    def __init__(self, source: str):
        super().__init__()
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.texts: list[str] = []
        self.svgs = 0
        self.feed(source)
        self.close()
        if self.stack:
            self.errors.append(f"not closed: {self.stack}")

    def handle_starttag(self, tag, attrs):
        if tag in ("text", "p", "td", "th"):
            self.texts.append("")  # one piece of text: its tspans join without spaces
        if tag == "svg":
            self.svgs += 1
            assert ("xmlns", "http://www.w3.org/2000/svg") in attrs
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
        else:
            self.stack.pop()

    def handle_data(self, data):
        if "title" in self.stack:  # tooltips do not count as shown
            return
        if self.texts and self.stack and self.stack[-1] in ("text", "tspan", "p", "td", "th"):
            self.texts[-1] += data
        else:
            self.texts.append(data)

    @property
    def text(self) -> str:
        return " ".join(" ".join(self.texts).split())


def facts(line: str) -> list[str]:
    """The words of a text line, without the lanes and the arrows' ink."""
    return [word for word in line.strip().strip("|<>-=. ").split() if word.strip("|<>-=.")]


@pytest.mark.parametrize("name", CASES)
def test_html_is_valid_and_says_everything_the_text_says(name):
    what, options = CASES[name]
    diagram = sequence_diagram(what, **options)
    checker = HTMLChecker(diagram.html())
    assert checker.errors == []
    connections = what if isinstance(what, list) else [what]
    assert checker.svgs == len(connections)
    for line in diagram.text().splitlines():
        for word in facts(line):
            assert word in checker.text, f"{word!r} of {line!r} is not in the HTML"


def test_html_marks_directions_fin_and_rst_apart():
    html = sequence_diagram([HTTP, RESET]).html()
    assert 'stroke-dasharray="7 5"' in html  # FIN: dashed
    assert "#e03131" in html  # RST: red
    assert "#3b7ddd" in html and "#e8590c" in html  # the two directions' colours
    assert "currentColor" in html  # neutral ink follows the (dark) theme


def test_diagram_object_text_for_python_html_for_jupyter(tmp_path):
    diagram = sequence_diagram(SEED)
    assert isinstance(diagram, Diagram)
    assert str(diagram) == repr(diagram) == diagram.text()
    assert diagram._repr_html_() == diagram.html()
    assert diagram.html().startswith('<div class="netlab-diagram"')
    path = tmp_path / "seed.html"
    diagram.save(str(path))
    assert HTMLChecker(path.read_text(encoding="utf-8")).errors == []


# --- a live relay ---------------------------------------------------------------------------


def test_live_relay_draws_the_seed_exchange_exactly():
    """The seed's server.py and client.py, through a relay: the same text as SEED."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(TIMEOUT)
        errors = []

        def server():
            try:
                conn, _ = listener.accept()
                with conn:
                    conn.sendall(b"Thank you for connecting")
            except OSError as exc:
                errors.append(exc)

        thread = threading.Thread(target=server, daemon=True)
        thread.start()
        with Relay("127.0.0.1", listener.getsockname()[1]) as relay:
            with socket.create_connection(("127.0.0.1", relay.port), timeout=TIMEOUT) as client:
                received = b""
                while chunk := client.recv(1024):
                    received += chunk
            relay.wait_closed(1, TIMEOUT)
            diagram = relay.diagram()
            one = relay.diagram(1, times=True)
        thread.join(TIMEOUT)
    assert errors == [] and received == b"Thank you for connecting"
    check_snapshot("seed", diagram.text())
    assert "0 ms" in one.text()
    assert HTMLChecker(diagram.html()).errors == []
