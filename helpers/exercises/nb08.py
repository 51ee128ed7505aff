"""Exercises of notebook 08, HTTP from scratch: each ``check_<name>(function)`` attacks it.

    from helpers.exercises import nb08
    nb08.check_parse_request_head(parse_request_head)

Rules of this file:
- The cases are data: ``HEAD_CASES`` (request heads and what must come of them),
  ``RESPONSE_CASES`` (calls of build_response and what the bytes must say), and the
  folder of ``_site`` with the attack paths of ``traversal_paths()``. One small engine
  per exercise runs them.
- The learner's pure functions are called first, bytes in and bytes out (h11's lesson:
  protocol logic apart from I/O); then the same function serves real clients (curl,
  urllib, raw sockets) through a small server of this file run by netlab.
- A verdict never shows a port, a time or a temporary path: paths are shown relative
  to the served folder.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
import random
import shutil
import socket
import subprocess
import tempfile
import urllib.error
import urllib.request
from http import HTTPStatus
from pathlib import Path

from ._checker import (
    REPLY_TIMEOUT,
    Failure,
    call_bounded,
    describe_exception,
    run_checks,
    serving,
    show_bytes,
)

CURL_TIMEOUT = 5  # seconds curl may take for one request (--max-time)
# urllib as a browser would use it on loopback: never through a proxy set in the environment
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))

# --- Exercise 1: parse_request_head -----------------------------------------------------

HINT_PARTITION = (
    "Split each header line at its first colon only, with line.partition(':'): a value "
    "may contain colons itself (Host: 127.0.0.1:5000)."
)
HINT_NAMES = (
    "Field names are case-insensitive (RFC 9110, section 5.1): store them lower-cased, "
    "name.lower(); strip the spaces and tabs around the value, value.strip(' \\t')."
)
HINT_CRLF = (
    "Lines of an HTTP head end with b'\\r\\n': split the decoded text at '\\r\\n' "
    "(not at '\\n', which leaves a '\\r' at the end of every line)."
)
HINT_TUPLE = (
    "Return a tuple of four: (method, target, version, headers), headers a dict "
    "{lower-case name: value}, all str (decode the bytes with 'iso-8859-1')."
)
HINT_RAISE = (
    "A server answers bad input with 400 Bad Request: raise ValueError (any ValueError, "
    "with a message) for it, and let nothing else escape."
)

# (head, expected, hint when wrong, what the case shows); expected None: ValueError due
HEAD_CASES = [
    (
        b"GET / HTTP/1.1\r\nHost: example.com",
        ("GET", "/", "HTTP/1.1", {"host": "example.com"}),
        HINT_TUPLE,
        "the smallest HTTP/1.1 request",
    ),
    (
        b"GET /hello.txt?x=1 HTTP/1.1\r\nHost: 127.0.0.1:5000\r\nUser-Agent: curl/7.88.1"
        b"\r\nAccept: */*",
        (
            "GET",
            "/hello.txt?x=1",
            "HTTP/1.1",
            {"host": "127.0.0.1:5000", "user-agent": "curl/7.88.1", "accept": "*/*"},
        ),
        HINT_PARTITION,
        "what curl sends (a Host with a colon in it)",
    ),
    (
        b"POST /api HTTP/1.1\r\nHOST:example.com\r\nContent-Length: \t 5 \t",
        ("POST", "/api", "HTTP/1.1", {"host": "example.com", "content-length": "5"}),
        HINT_NAMES,
        "names in capitals, values with spaces and tabs around them",
    ),
    (
        b"HEAD /index.html HTTP/1.0",
        ("HEAD", "/index.html", "HTTP/1.0", {}),
        "HTTP/1.0 has no Host header: it is required for HTTP/1.1 only (RFC 9112, 3.2).",
        "HTTP/1.0 without Host",
    ),
    (b"", None, HINT_RAISE, "nothing at all"),
    (b"GET /", None, HINT_RAISE, "a request line of two words"),
    (b"GET / HTTP/1.1 please\r\nHost: x", None, HINT_RAISE, "a request line of four words"),
    (b"GET / FTP/1.1\r\nHost: x", None, HINT_RAISE, "a version that is not HTTP/1.x"),
    (
        b"GET / HTTP/1.1\r\nAccept: */*",
        None,
        "RFC 9112 (3.2): a server MUST answer 400 to an HTTP/1.1 request without Host: "
        "raise ValueError when the version is HTTP/1.1 and there is no host header.",
        "HTTP/1.1 without Host",
    ),
    (
        b"GET / HTTP/1.1\r\nHost: a.example\r\nhost: b.example",
        None,
        "Two Host headers make the request ambiguous (RFC 9112, 3.2: answer 400): raise "
        "ValueError when a second host header comes.",
        "two Host headers",
    ),
    (
        b"GET / HTTP/1.1\r\nHost: x\r\nthis line has no colon",
        None,
        "A header line without ':' is not a header: raise ValueError.",
        "a header line without a colon",
    ),
    (
        b"GET / HTTP/1.1\r\nHost: x\r\nAccept : */*",
        None,
        "RFC 9112 (5.1): no whitespace is allowed between a field name and the colon, and "
        "a server MUST answer such a request with 400: raise ValueError when "
        "name != name.strip().",
        "a space between the name and the colon",
    ),
]
FUZZ_HEADS = 2000  # mangled heads per check (the tests try 10,000)


def fuzzed_heads(count: int, seed: int = 8) -> list[bytes]:
    """``count`` request heads mangled at random (cut, doubled, bytes flipped), fixed seed."""
    rng = random.Random(seed)
    seeds = [case[0] for case in HEAD_CASES if case[0]] + [
        b"GET /a%20b HTTP/1.1\r\nHost: h\r\nX: \xff\xfe\r\nCookie: a=b; c=d",
        b"OPTIONS * HTTP/1.1\r\nHost: h",
    ]
    alphabet = b" :\r\n\t/\x00\xffHTTP1.GET"
    heads = []
    for _ in range(count):
        head = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 6)):
            move = rng.randrange(4)
            at = rng.randint(0, len(head))
            if move == 0:
                head[at:at] = bytes(rng.choice(alphabet) for _ in range(rng.randint(1, 4)))
            elif move == 1:
                del head[at : at + rng.randint(1, 5)]
            elif move == 2 and head:
                head[min(at, len(head) - 1)] = rng.randrange(256)
            else:
                head[at:at] = head[: rng.randint(0, len(head))]
        heads.append(bytes(head))
    return heads


def _same_result(result, expected) -> bool:
    if not isinstance(result, (tuple, list)) or len(result) != 4:
        return False
    method, target, version, headers = result
    try:
        headers = dict(headers)
    except (TypeError, ValueError):
        return False
    return (method, target, version, headers) == expected


def _splits_at_lf(func, head: bytes) -> bool:
    """Whether ``func`` parses the head once its CRLFs are bare LFs (it splits at '\\n')."""
    if b"\r\n" not in head:
        return False
    call = call_bounded(func, head.replace(b"\r\n", b"\n"))
    return call.finished and call.error is None


def _diagnose(result, hint: str) -> str:
    """The hint for a wrong parse, from what it returned."""
    if "\\r" in repr(result):
        return HINT_CRLF
    if isinstance(result, (tuple, list)) and len(result) == 4 and isinstance(result[3], dict):
        names = [name for name in result[3] if isinstance(name, str)]
        if any(name != name.lower() for name in names):
            return HINT_NAMES
        values = [v for v in result[3].values() if isinstance(v, str)]
        if any(v != v.strip(" \t") for v in values):
            return HINT_NAMES
    return hint


def _head_case(func, head, expected, hint):
    def check():
        sent = f"parse_request_head({head!r})"
        call = call_bounded(func, head)
        if not call.finished:
            raise Failure("it did not return within 3 s", "Look for a loop that never ends.", sent)
        if expected is None:
            if call.error is None:
                raise Failure(f"it returned {call.result!r:.80} instead of raising", hint, sent)
            if not isinstance(call.error, ValueError):
                raise Failure(
                    f"it raised {describe_exception(call.error)}, not a ValueError",
                    HINT_RAISE,
                    sent,
                )
            return
        if call.error is not None:
            raise Failure(
                f"it raised {describe_exception(call.error)}",
                HINT_CRLF
                if _splits_at_lf(func, head)
                else "This head is correct (raise only for bad input). " + hint,
                sent,
            )
        if not _same_result(call.result, expected):
            raise Failure(
                f"it returned {call.result!r:.120}, expected {expected!r}",
                _diagnose(call.result, hint),
                sent,
            )

    return check


def _fuzz(func, count):
    def check():
        heads = fuzzed_heads(count)

        def parse_all():
            for head in heads:
                try:
                    func(head)
                except ValueError:
                    continue
                except NotImplementedError:
                    raise
                except Exception as exc:  # noqa: BLE001 - this is what the check looks for
                    return head, exc
            return None

        call = call_bounded(parse_all, timeout=10.0)
        if not call.finished:
            raise Failure(
                f"{count} heads were not parsed within 10 s", "Look for a loop that never ends."
            )
        if call.error is not None:
            raise Failure(f"it raised {describe_exception(call.error)}", HINT_RAISE)
        if call.result is not None:
            head, exc = call.result
            raise Failure(
                f"it raised {describe_exception(exc)}, not a ValueError",
                HINT_RAISE,
                f"parse_request_head({show_bytes(head, 80)})",
            )

    return check


def check_parse_request_head(parse_request_head) -> object:
    """Check ``parse_request_head(head) -> (method, target, version, headers)``."""
    checks = []
    for head, expected, hint, what in HEAD_CASES:
        title = f"{what}: {'ValueError' if expected is None else 'parsed'}"
        checks.append((title, _head_case(parse_request_head, head, expected, hint)))
    checks.append(
        (
            f"{FUZZ_HEADS} mangled heads: parsed or ValueError, nothing else",
            _fuzz(parse_request_head, FUZZ_HEADS),
        )
    )
    checks.append(("the head curl really sends", _curl_head(parse_request_head)))
    return run_checks("parse_request_head", checks)


def _capture_one_head(port: int, heads: list) -> None:
    """A server that keeps the head of one request and answers 204 (run by netlab)."""
    with socket.create_server(("127.0.0.1", port)) as listener:
        conn, _ = listener.accept()
        with conn:
            conn.settimeout(REPLY_TIMEOUT)
            data = b""
            while b"\r\n\r\n" not in data and len(data) < 65536:
                chunk = conn.recv(4096)
                if not chunk:
                    break
                data += chunk
            heads.append(data.partition(b"\r\n\r\n")[0])
            conn.sendall(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")


def _curl(*args) -> subprocess.CompletedProcess:
    if shutil.which("curl") is None:
        raise Failure(
            "curl is not installed",
            "Install it (Debian: sudo apt-get install curl; make system-tools does it).",
        )
    return subprocess.run(
        ["curl", "-sS", "--noproxy", "*", "--max-time", str(CURL_TIMEOUT), *args],
        capture_output=True,
        timeout=CURL_TIMEOUT + 5,
    )


def _curl_head(func):
    def check():
        heads: list = []
        with serving(_capture_one_head, args=(heads,)) as server:
            _curl(f"http://127.0.0.1:{server.port}/hello.txt?x=1")
        if not heads:
            raise Failure("curl's request never arrived", "Run the check again.")
        sent = "the head of: curl http://127.0.0.1:PORT/hello.txt?x=1"
        call = call_bounded(func, heads[0])
        if call.error is not None:
            raise Failure(f"it raised {describe_exception(call.error)}", HINT_TUPLE, sent)
        result = call.result
        ok = (
            isinstance(result, (tuple, list))
            and len(result) == 4
            and tuple(result[:3]) == ("GET", "/hello.txt?x=1", "HTTP/1.1")
            and isinstance(result[3], dict)
            and str(result[3].get("user-agent", "")).startswith("curl/")
            and str(result[3].get("host", "")).startswith("127.0.0.1:")
        )
        if not ok:
            raise Failure(f"it returned {result!r:.120}", HINT_TUPLE, sent)

    return check


# --- Exercise 2: build_response ------------------------------------------------------------

HINT_CONTENT_LENGTH = (
    "Content-Length counts the bytes of the body, not the characters: encode a str body "
    "first (body.encode('utf-8')), then len() of the bytes."
)
HINT_STATUS_LINE = (
    "The first line is 'HTTP/1.1 <status> <reason>\\r\\n', the reason from "
    "http.HTTPStatus(status).phrase (200 OK, 404 Not Found, 405 Method Not Allowed)."
)
HINT_BLANK = (
    "Every line of the head ends with '\\r\\n', and one more '\\r\\n' (an empty line) "
    "ends the head; the body follows right after it."
)
HINT_CRLF_RESPONSE = (
    "HTTP lines end with '\\r\\n' (CRLF), not '\\n': join the lines with '\\r\\n' and "
    "end the head with '\\r\\n\\r\\n'."
)
HINT_HEAD = (
    "A response to HEAD is the head a GET would get, without the body (RFC 9110, 9.3.2): "
    "the same Content-Length, and no body bytes after the blank line."
)
HINT_TYPE = "Send the content type you are given: a header line 'Content-Type: <content_type>'."

JSON_BODY = json.dumps({"course": "sockets", "notebook": 8, "ok": True}).encode()

# (arguments, keyword arguments, status, body that must come, content type, what it shows)
RESPONSE_CASES = [
    ((200, b"hello"), {}, 200, b"hello", None, "200 with a bytes body"),
    (
        (200, "h\u00e9llo w\u00f6rld \u2713"),
        {},
        200,
        "h\u00e9llo w\u00f6rld \u2713".encode(),
        None,
        "a str body with non-ASCII letters",
    ),  # fmt: skip
    ((404, "not found\n"), {}, 404, b"not found\n", None, "404 Not Found"),
    ((405, b""), {}, 405, b"", None, "405 Method Not Allowed, empty body"),
    (
        (200, JSON_BODY, "application/json"),
        {},
        200,
        JSON_BODY,
        "application/json",
        "JSON with its content type",
    ),  # fmt: skip
    (
        (200, b"<h1>hi</h1>", "text/html; charset=utf-8"),
        {"head": True},
        200,
        None,
        "text/html; charset=utf-8",
        "HEAD: the head without the body",
    ),  # fmt: skip
]


def split_response(data: bytes, sent: str):
    """(status line, {lower-case name: value}, body) of a response; Failure if malformed."""
    if not isinstance(data, (bytes, bytearray)):
        raise Failure(
            f"it returned {type(data).__name__}, not bytes",
            "Return bytes: build the text of the head, .encode() it, add the body bytes.",
            sent,
        )
    data = bytes(data)
    head, blank, body = data.partition(b"\r\n\r\n")
    if not blank:
        hint = HINT_CRLF_RESPONSE if b"\n\n" in data else HINT_BLANK
        raise Failure(f"no blank line b'\\r\\n\\r\\n' in {show_bytes(data, 80)}", hint, sent)
    lines = head.split(b"\r\n")
    if any(b"\n" in line for line in lines):
        raise Failure(f"a bare b'\\n' in the head {show_bytes(head, 80)}", HINT_CRLF_RESPONSE, sent)
    headers = {}
    for line in lines[1:]:
        name, colon, value = line.decode("iso-8859-1").partition(":")
        if not colon:
            raise Failure(f"the header line {line!r} has no colon", HINT_BLANK, sent)
        headers[name.strip().lower()] = value.strip()
    return lines[0], headers, body


def _response_case(func, args, kwargs, status, body, content_type, expected_length):
    def check():
        shown = ", ".join([*map(repr, args), *(f"{k}={v!r}" for k, v in kwargs.items())])
        sent = f"build_response({shown})"
        call = call_bounded(functools.partial(func, **kwargs), *args)
        if call.error is not None:
            raise Failure(f"it raised {describe_exception(call.error)}", HINT_STATUS_LINE, sent)
        status_line, headers, got_body = split_response(call.result, sent)
        want_line = f"HTTP/1.1 {status} {HTTPStatus(status).phrase}".encode()
        if status_line != want_line:
            raise Failure(
                f"the status line is {status_line!r}, expected {want_line!r}",
                HINT_STATUS_LINE,
                sent,
            )
        if content_type is not None and headers.get("content-type") != content_type:
            raise Failure(
                f"Content-Type is {headers.get('content-type')!r}, expected {content_type!r}",
                HINT_TYPE,
                sent,
            )
        if "content-type" not in headers:
            raise Failure("there is no Content-Type header", HINT_TYPE, sent)
        length = headers.get("content-length")
        if body is None:  # HEAD
            if got_body:
                raise Failure(f"the body {show_bytes(got_body)} came too", HINT_HEAD, sent)
            if length is not None and length != str(expected_length):
                raise Failure(
                    f"Content-Length is {length!r}, a GET would get {expected_length}",
                    HINT_HEAD,
                    sent,
                )
            return
        if length is None:
            raise Failure(
                "there is no Content-Length header",
                "Say how long the body is: 'Content-Length: <number of bytes>'. Without it "
                "a client on a kept-alive connection cannot know where the body ends.",
                sent,
            )
        if length != str(len(body)):
            raise Failure(
                f"Content-Length is {length!r}, but the body is {len(body)} bytes",
                HINT_CONTENT_LENGTH,
                sent,
            )
        if got_body != body:
            raise Failure(
                f"the body is {show_bytes(got_body)}, expected {show_bytes(body)}",
                HINT_CONTENT_LENGTH,
                sent,
            )

    return check


def _read_head(conn) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data and len(data) < 65536:
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def _json_server(port: int, build_response) -> None:
    """Answer every request with build_response(200, JSON_BODY, 'application/json'), then
    keep the connection open until the client closes it (keep-alive: no end of stream
    tells the client where the body ends, only Content-Length does)."""
    with socket.create_server(("127.0.0.1", port)) as listener:
        while True:
            conn, _ = listener.accept()
            with conn:
                conn.settimeout(REPLY_TIMEOUT + 1)
                try:
                    head = _read_head(conn)
                    method = head.split(b" ", 1)[0]
                    conn.sendall(
                        build_response(200, JSON_BODY, "application/json", head=method == b"HEAD")
                    )
                    while conn.recv(4096):  # until the client closes
                        pass
                except OSError:
                    pass


def _real_clients(func):
    def check():
        with serving(_json_server, args=(func,)) as server:
            url = f"http://127.0.0.1:{server.port}/api/status"
            sent = "urllib.request.urlopen(url) (the server keeps the connection open)"
            try:
                with NO_PROXY.open(url, timeout=REPLY_TIMEOUT) as response:
                    data = response.read()
                    kind = response.headers.get("Content-Type")
            except TimeoutError:
                raise Failure(
                    f"urllib still waited for the end of the body after {REPLY_TIMEOUT:g} s",
                    HINT_CONTENT_LENGTH,
                    sent,
                ) from None
            except (OSError, urllib.error.URLError, ValueError) as exc:
                raise Failure(
                    f"urllib failed: {describe_exception(exc)}", HINT_STATUS_LINE, sent
                ) from None
            if data != JSON_BODY or kind != "application/json":
                raise Failure(
                    f"urllib got {show_bytes(data)} as {kind!r}", HINT_CONTENT_LENGTH, sent
                )
            done = _curl("-o", "-", "-w", "\n%{http_code}", url)
            sent = "curl -sS URL (the server keeps the connection open)"
            if done.returncode != 0:
                error = done.stderr.decode(errors="replace").strip()
                error = error.replace(str(server.port), "PORT")
                raise Failure(
                    f"curl failed (exit {done.returncode}): {error}", HINT_CONTENT_LENGTH, sent
                )
            if done.stdout != JSON_BODY + b"\n200":
                raise Failure(f"curl printed {show_bytes(done.stdout)}", HINT_CONTENT_LENGTH, sent)
            done = _curl("-I", url)
            sent = "curl -sS -I URL (a HEAD request)"
            if done.returncode != 0 or not done.stdout.startswith(b"HTTP/1.1 200 OK\r\n"):
                raise Failure(f"curl -I printed {show_bytes(done.stdout)}", HINT_HEAD, sent)

    return check


def check_build_response(build_response) -> object:
    """Check ``build_response(status, body, content_type, head=False) -> bytes``."""
    checks = []
    for args, kwargs, status, body, content_type, what in RESPONSE_CASES:
        get_body = args[1] if len(args) > 1 else b""
        length = len(get_body.encode() if isinstance(get_body, str) else get_body)
        checks.append(
            (what, _response_case(build_response, args, kwargs, status, body, content_type, length))
        )
    checks.append(
        ("urllib, curl and curl -I on a kept-alive connection", _real_clients(build_response))
    )
    return run_checks("build_response", checks)


# --- Exercise 3: safe_path -----------------------------------------------------------------

SECRET = b"the secret outside the folder\n"
HINT_CONTAIN = (
    "Join, then resolve: candidate = (root / path.lstrip('/')).resolve(); serve it only "
    "if candidate.is_relative_to(root.resolve()) and candidate.is_file(). '..' segments, "
    "absolute paths and symlinks all show up in the resolved path."
)
HINT_STARTSWITH = (
    "str(candidate).startswith(str(root)) lets '/site-private/...' through (same first "
    "letters, another folder): compare whole path parts with candidate.is_relative_to(root)."
)
HINT_SYMLINK = (
    "os.path.normpath and abspath do not follow symlinks: a link inside the folder can "
    "point outside. Path.resolve() (or os.path.realpath) follows them: check the resolved path."
)
HINT_DECODE_FIRST = (
    "Browsers and curl encode bytes as %XX: percent-decode the path first "
    "(urllib.parse.unquote), then resolve and check it; a check done before decoding "
    "misses %2e%2e (that is '..')."
)
HINT_NEVER_RAISE = (
    "Any path can come: a NUL byte (%00) makes os functions raise ValueError, a very long "
    "name raises OSError. Return None for them (catch ValueError and OSError, or test "
    "for '\\x00' first)."
)
HINT_FILES = (
    "Strip the query ('?...') first, percent-decode with urllib.parse.unquote, map a path "
    "that ends with '/' to its index.html, and return the Path of the file inside root."
)
HINT_MISSING = "A file that does not exist (or a folder) gives None: the server answers 404."

SITE = {
    "site/index.html": b"<h1>home</h1>\n",
    "site/hello.txt": b"hello\n",
    "site/with space.txt": b"spaced\n",
    "site/sub/index.html": b"<h1>sub</h1>\n",
    "site/sub/page.html": b"<p>page</p>\n",
    "site-private/key.txt": SECRET,
    "secret.txt": SECRET,
}
# (target, file due inside site/ or None, hint when wrong)
GOOD_TARGETS = [
    ("/hello.txt", "hello.txt", HINT_FILES),
    ("/", "index.html", HINT_FILES),
    ("/sub/page.html", "sub/page.html", HINT_FILES),
    ("/sub/", "sub/index.html", HINT_FILES),
    ("/with%20space.txt", "with space.txt", HINT_FILES),
    ("/hello.txt?download=1", "hello.txt", HINT_FILES),
    ("/nothing-here.txt", None, HINT_MISSING),
    ("/sub", None, HINT_MISSING),
]


@contextlib.contextmanager
def _site():
    """A temporary folder: site/ to serve, secrets beside it, symlinks leading out."""
    with tempfile.TemporaryDirectory(prefix="nb08-") as tmp:
        base = Path(tmp).resolve()
        for name, data in SITE.items():
            path = base / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        site = base / "site"
        links = [
            (site / "link-out.txt", base / "secret.txt"),
            (site / "dir-out", base),
            (site / "sub" / "up", Path("..")),  # a link that stays inside
        ]
        for link, target in links:
            # Windows without Developer Mode may refuse: those attacks then find no link
            with contextlib.suppress(OSError):
                link.symlink_to(target, target_is_directory=target.suffix != ".txt")
        yield base, site


def traversal_paths(base: Path) -> list[str]:
    """The attack targets, generated: dot segments in every spelling and separator,
    absolute paths, symlinks leading out, NUL bytes, very long paths, a sibling folder
    whose name starts like the served one. More than 1,000, each once, in a fixed order."""
    dots = ["..", "%2e%2e", "%2E%2E", ".%2e", "%2e.", "....", ".../", "..%00", "%252e%252e"]
    seps = ["/", "%2f", "%2F", "\\", "%5c", "//", "/./"]
    prefixes = ["/", "/sub/", "/./", "//", "/sub/./"]
    goals = ["secret.txt", "site-private/key.txt", "site-private%2fkey.txt"]
    paths = []
    for prefix, dot, sep, depth, goal in itertools.product(prefixes, dots, seps, (1, 2, 3), goals):
        paths.append(prefix + (dot + sep) * depth + goal)
    paths += [
        "/../secret.txt",
        "/..%2fsecret.txt",
        "/%2e%2e/secret.txt",
        "/....//secret.txt",
        "/..././secret.txt",
        "/link-out.txt",
        "/dir-out/secret.txt",
        "/dir-out/site-private/key.txt",
        "/dir-out%2fsecret.txt",
        "/sub/up/up/secret.txt",
        "/sub/up/../secret.txt",
        "/sub/up/dir-out/secret.txt",
        "/%2fetc%2fpasswd",
        "//etc/passwd",
        "/etc/passwd",
        "/" + str(base / "secret.txt"),
        "/" + str(base / "secret.txt").replace("/", "%2f"),
        "/" + "%2f".join(str(base / "site-private" / "key.txt").split("/")),
        "/hello.txt%00.html",
        "/%00",
        "/hello.txt\x00",
        "/" + "a/" * 3000 + "secret.txt",
        "/" + "x" * 5000,
        "/" + "../" * 200 + "secret.txt",
        "/?/../../secret.txt",
        "/#/../secret.txt",
    ]
    return list(dict.fromkeys(paths))  # each once, in order


def _inside(result, site: Path) -> bool:
    """Whether what safe_path returned is a file inside the served folder."""
    try:
        path = Path(result).resolve()
        return path.is_relative_to(site) and path.is_file()
    except (OSError, TypeError, ValueError, RuntimeError):
        return False


def _show_path(result, site: Path) -> str:
    """A result as the verdict shows it: relative to the served folder, never a temp path."""
    if result is None:
        return "None"
    try:
        path = Path(result).resolve()
    except (OSError, TypeError, ValueError, RuntimeError):
        return f"a {type(result).__name__}"
    if path.is_relative_to(site):
        return repr(str(path.relative_to(site)) or ".")
    if path.is_relative_to(site.parent):
        return f"{str(path.relative_to(site.parent))!r} (outside the folder!)"
    return f"{path.name!r} (a file outside the folder!)"


def _good_targets(func):
    def check():
        with _site() as (base, site):
            for target, due, hint in GOOD_TARGETS:
                sent = f"safe_path(root, {target!r})"
                call = call_bounded(func, site, target)
                if call.error is not None:
                    raise Failure(f"it raised {describe_exception(call.error)}", hint, sent)
                result = call.result
                if due is None:
                    if result is not None:
                        raise Failure(
                            f"it returned {_show_path(result, site)}, not None", hint, sent
                        )
                    continue
                if result is None or not _inside(result, site):
                    raise Failure(
                        f"it returned {_show_path(result, site)}, not the file {due!r}", hint, sent
                    )
                if Path(result).resolve() != (site / due).resolve():
                    raise Failure(
                        f"it returned {_show_path(result, site)}, not {due!r}", hint, sent
                    )

    return check


def _hint_for_escape(target: str) -> str:
    if "site-private" in target:
        return HINT_STARTSWITH
    if "link-out" in target or "dir-out" in target or "/up/" in target:
        return HINT_SYMLINK
    if "%" in target and ".." not in target.replace("%2e", "").replace("%2E", ""):
        return HINT_DECODE_FIRST
    return HINT_CONTAIN


def _traversal(func):
    def check():
        with _site() as (base, site):
            paths = traversal_paths(base)

            def attack():
                escapes, raised = [], []
                for target in paths:
                    try:
                        result = func(site, target)
                    except NotImplementedError:
                        raise
                    except Exception as exc:  # noqa: BLE001 - the check reports it
                        raised.append((target, exc))
                        continue
                    if result is not None and not _inside(result, site):
                        escapes.append((target, result))
                return escapes, raised

            call = call_bounded(attack, timeout=20.0)
            if not call.finished:
                raise Failure(
                    f"{len(paths)} paths were not checked within 20 s",
                    "Look for a loop that never ends.",
                )
            if call.error is not None:
                raise Failure(f"it raised {describe_exception(call.error)}", HINT_NEVER_RAISE)
            escapes, raised = call.result
            if escapes:
                target, result = escapes[0]
                shown = target.replace(str(base), "<folder of site>")
                raise Failure(
                    f"{len(escapes)} of {len(paths)} attack paths escaped the folder; the first "
                    f"returned {_show_path(result, site)}",
                    _hint_for_escape(shown),
                    f"safe_path(root, {shown[:90]!r})",
                )
            if raised:
                target, exc = raised[0]
                shown = target.replace(str(base), "<folder of site>")
                raise Failure(
                    f"{len(raised)} of {len(paths)} attack paths made it raise "
                    f"{describe_exception(exc)[:80]}",
                    HINT_NEVER_RAISE,
                    f"safe_path(root, {shown[:90]!r})",
                )

    return check


def _file_server(port: int, root: Path, safe_path) -> None:
    """The smallest file server around the learner's safe_path (run by netlab)."""
    with socket.create_server(("127.0.0.1", port)) as listener:
        while True:
            conn, _ = listener.accept()
            with conn:
                conn.settimeout(REPLY_TIMEOUT)
                try:
                    head = _read_head(conn)
                    parts = head.split(b"\r\n", 1)[0].split(b" ")
                    target = parts[1].decode("iso-8859-1") if len(parts) == 3 else ""
                    try:
                        path = safe_path(root, target) if target else None
                    except Exception:  # noqa: BLE001 - the pure checks report it
                        path = None
                    body = Path(path).read_bytes() if path is not None else b"not found\n"
                    status = b"200 OK" if path is not None else b"404 Not Found"
                    conn.sendall(
                        b"HTTP/1.1 " + status + b"\r\nContent-Length: %d\r\n" % len(body)
                        + b"Connection: close\r\n\r\n" + body
                    )  # fmt: skip
                except OSError:
                    pass


def _raw_get(port: int, target: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=REPLY_TIMEOUT) as sock:
        sock.sendall(b"GET " + target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
        return data


CURL_ATTACKS = [
    "/../secret.txt",
    "/%2e%2e/secret.txt",
    "/..%2fsecret.txt",
    "/link-out.txt",
    "/dir-out/site-private/key.txt",
]
RAW_ATTACKS = [b"/..\\secret.txt", b"/sub/../../secret.txt", b"../secret.txt"]


def _over_the_wire(func):
    def check():
        with _site() as (base, site), serving(_file_server, args=(site, func)) as server:
            url = f"http://127.0.0.1:{server.port}"
            done = _curl("-o", "-", f"{url}/hello.txt")
            if done.stdout != SITE["site/hello.txt"]:
                raise Failure(
                    f"curl got {show_bytes(done.stdout)}",
                    HINT_FILES,
                    "curl http://127.0.0.1:PORT/hello.txt",
                )
            for target in CURL_ATTACKS:
                done = _curl("--path-as-is", "-o", "-", url + target)
                if SECRET in done.stdout:
                    raise Failure(
                        "curl got the secret file",
                        _hint_for_escape(target),
                        f"curl --path-as-is http://127.0.0.1:PORT{target}",
                    )
            for target in [*RAW_ATTACKS, b"/" + str(base / "secret.txt").encode()]:
                reply = _raw_get(server.port, target)
                if SECRET in reply:
                    shown = target.replace(str(base).encode(), b"<folder of site>")
                    raise Failure(
                        "a raw socket got the secret file",
                        HINT_CONTAIN,
                        f"GET {shown.decode()} HTTP/1.1 on a raw socket",
                    )

    return check


def check_safe_path(safe_path) -> object:
    """Check ``safe_path(root, target) -> Path | None`` with files, attacks and real clients."""
    return run_checks(
        "safe_path",
        [
            ("the folder's files are found; missing ones give None", _good_targets(safe_path)),
            (
                f"{len(traversal_paths(Path('/folder')))} generated attack paths: 0 escapes, "
                "0 exceptions",
                _traversal(safe_path),
            ),
            (
                "curl --path-as-is and raw sockets against a server using it",
                _over_the_wire(safe_path),
            ),
        ],
    )
