"""The checks of notebook 08 pass the reference solutions, correct answers in other styles,
and catch realistic mistakes with the hint that fixes them; the fuzz figures the notebook
promises (10,000 mangled heads, 1,000+ traversal paths) hold for the reference solutions.
"""

import os
import re
from http import HTTPStatus
from pathlib import Path
from urllib.parse import unquote

import pytest
from exercise_asserts import (
    assert_not_done,
    assert_passes,
    cell_source,
    fails_with,
    notebook_cells,
    stored_text,
    stub,
)

from helpers.exercises import nb08
from helpers.exercises.solutions import nb08 as sol08


@pytest.mark.parametrize(
    "check, solution",
    [
        (nb08.check_parse_request_head, sol08.parse_request_head),
        (nb08.check_build_response, sol08.build_response),
        (nb08.check_safe_path, sol08.safe_path),
    ],
)
def test_nb08_solutions_pass_and_stubs_are_not_done(check, solution):
    assert_passes(check(solution))
    assert_not_done(check(stub))


# --- Exercise 1: parse_request_head ------------------------------------------------------


def parse_with_regex(head):
    match = re.fullmatch(rb"(\S+) (\S+) (HTTP/1\.[01])((?:\r\n[^\r\n]*)*)", head)
    if not match:
        raise ValueError("bad request line")
    method, target, version, rest = (part.decode("latin-1") for part in match.groups())
    headers = {}
    for line in rest.split("\r\n")[1:]:
        field = re.fullmatch(r"([!#$%&'*+.^_`|~0-9A-Za-z-]+):[ \t]*(.*?)[ \t]*", line)
        if not field:
            raise ValueError(f"bad header {line!r}")
        name = field.group(1).lower()
        if name == "host" and "host" in headers:
            raise ValueError("two Host headers")
        headers[name] = field.group(2)
    if version == "HTTP/1.1" and "host" not in headers:
        raise ValueError("no Host")
    return method, target, version, headers


def parse_as_ascii_with_list(head):
    lines = head.decode("ascii").split("\r\n")  # UnicodeDecodeError is a ValueError
    words = lines[0].split(" ")
    if len(words) != 3 or words[2] not in ("HTTP/1.0", "HTTP/1.1") or "" in words:
        raise ValueError("bad request line")
    headers = {}
    for line in lines[1:]:
        if ":" not in line:
            raise ValueError("no colon")
        name, value = line.split(":", 1)
        if name.strip() != name or not name:
            raise ValueError("space before colon")
        if name.lower() == "host" and "host" in headers:
            raise ValueError("duplicate Host")
        headers[name.lower()] = value.strip()
    if words[2] == "HTTP/1.1" and "host" not in headers:
        raise ValueError("Host missing")
    return tuple(words) + (headers,)


@pytest.mark.parametrize("alternative", [parse_with_regex, parse_as_ascii_with_list])
def test_nb08_parse_alternatives_pass(alternative):
    assert_passes(nb08.check_parse_request_head(alternative))


def _parse(head, *, split_colon=False, lower=True, newline="\r\n", need_host=True, strict=True):
    text = head.decode("latin-1")
    lines = text.split(newline)
    method, target, version = lines[0].split(" ")  # ValueError when not 3 words
    if version not in ("HTTP/1.0", "HTTP/1.1"):
        raise ValueError("version")
    headers = {}
    for line in lines[1:]:
        if split_colon:
            name, value = line.split(":")  # breaks on 127.0.0.1:5000
        else:
            name, colon, value = line.partition(":")
            if not colon:
                raise ValueError("no colon")
        if strict and name != name.strip():
            raise ValueError("space")
        key = name.lower() if lower else name
        if key.lower() == "host" and any(k.lower() == "host" for k in headers):
            raise ValueError("two")
        headers[key] = value.strip() if newline == "\r\n" else value.lstrip()
    if need_host and version == "HTTP/1.1" and "host" not in {k.lower() for k in headers}:
        raise ValueError("host")
    return method, target, version, headers


def parse_index_error(head):
    lines = head.decode("latin-1").split("\r\n")
    words = lines[0].split(" ")
    version = words[2]  # IndexError on short lines, before any check
    if len(words) != 3 or version not in ("HTTP/1.0", "HTTP/1.1"):
        raise ValueError("bad")
    return sol08.parse_request_head(head)


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (lambda h: _parse(h, split_colon=True), "partition(':')"),
        (lambda h: _parse(h, lower=False), "case-insensitive"),
        (lambda h: _parse(h, newline="\n"), "split the decoded text at '\\r\\n'"),
        (lambda h: _parse(h, need_host=False), "without Host"),
        (lambda h: _parse(h, strict=False), "no whitespace is allowed"),
        (parse_index_error, "raise ValueError"),
    ],
    ids=["split-colon", "no-lower", "bare-lf", "no-host-check", "space-before-colon", "index"],
)
def test_nb08_parse_catches(wrong, hint):
    fails_with(nb08.check_parse_request_head(wrong), hint)


def test_nb08_ten_thousand_fuzzed_heads_never_crash_the_reference():
    heads = nb08.fuzzed_heads(10_000, seed=2026)
    assert len(set(heads)) > 5_000  # really different heads
    parsed = 0
    for head in heads:
        try:
            method, target, version, headers = sol08.parse_request_head(head)
        except ValueError:
            continue
        parsed += 1
        assert version in ("HTTP/1.0", "HTTP/1.1") and isinstance(headers, dict)
    assert 0 < parsed < len(heads)  # the fuzz reaches both outcomes


# --- Exercise 2: build_response ----------------------------------------------------------


def build_with_fstring(status, body=b"", content_type="text/plain; charset=utf-8", head=False):
    data = body.encode() if isinstance(body, str) else bytes(body)
    reason = HTTPStatus(status).phrase
    top = f"HTTP/1.1 {status} {reason}\r\nContent-Length: {len(data)}\r\n"
    top += f"Content-Type: {content_type}\r\n\r\n"
    return top.encode() + (b"" if head else data)


def build_head_without_length(status, body=b"", content_type="text/plain", head=False):
    data = body.encode("utf-8") if isinstance(body, str) else body
    out = bytearray(b"HTTP/1.1 %d %s\r\n" % (status, HTTPStatus(status).phrase.encode()))
    out += b"Content-Type: " + content_type.encode() + b"\r\n"
    if not head:
        out += b"Content-Length: %d\r\n" % len(data)
    out += b"\r\n"
    if not head:
        out += data
    return bytes(out)


@pytest.mark.parametrize("alternative", [build_with_fstring, build_head_without_length])
def test_nb08_build_alternatives_pass(alternative):
    assert_passes(nb08.check_build_response(alternative))


def _build(status, body=b"", content_type="text/plain; charset=utf-8", head=False, **wrong):
    text_len = len(body)  # characters when body is a str
    data = body.encode() if isinstance(body, str) else body
    reason = "OK" if wrong.get("always_ok") else HTTPStatus(status).phrase
    lines = [f"HTTP/1.1 {status} {reason}", f"Content-Type: {content_type}"]
    if not wrong.get("no_length"):
        lines.append(f"Content-Length: {text_len if wrong.get('str_len') else len(data)}")
    newline = "\n" if wrong.get("lf") else "\r\n"
    top = (newline.join(lines) + newline + newline).encode()
    return top if head and not wrong.get("head_body") else top + data


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (lambda *a, **k: _build(*a, **k, str_len=True), "counts the bytes"),
        (lambda *a, **k: _build(*a, **k, lf=True), "not '\\n'"),
        (lambda *a, **k: _build(*a, **k, no_length=True), "Content-Length: <number of bytes>"),
        (lambda *a, **k: _build(*a, **k, always_ok=True), "HTTPStatus(status).phrase"),
        (lambda *a, **k: _build(*a, **k, head_body=True), "without the body"),
    ],
    ids=["len-of-str", "bare-lf", "no-content-length", "always-ok", "head-with-body"],
)
def test_nb08_build_catches(wrong, hint):
    fails_with(nb08.check_build_response(wrong), hint)


def build_length_too_large(status, body=b"", content_type="text/plain", head=False):
    data = sol08.build_response(status, body, content_type, head)
    if status == 200 and content_type == "application/json" and not head:
        return data.replace(
            b"Content-Length: %d" % len(body), b"Content-Length: %d" % (len(body) + 5)
        )
    return data


def test_nb08_build_a_length_that_real_clients_wait_for_is_caught():
    """Only the real clients see it (the table's JSON case is right): urllib waits."""
    calls = []

    def wrong(status, body=b"", content_type="text/plain", head=False):
        calls.append(status)
        data = sol08.build_response(status, body, content_type, head)
        if len(calls) > len(nb08.RESPONSE_CASES):  # from the server, not the table
            return data.replace(b"Content-Length: ", b"Content-Length: 1")
        return data

    fails_with(nb08.check_build_response(wrong), "Content-Length counts the bytes")


# --- Exercise 3: safe_path -----------------------------------------------------------------


def safe_with_realpath(root, target):
    path = unquote(target.partition("?")[0])
    if path.endswith("/"):
        path += "index.html"
    try:
        real_root = os.path.realpath(root)
        real = os.path.realpath(os.path.join(real_root, path.lstrip("/")))
        if os.path.commonpath([real_root, real]) == real_root and os.path.isfile(real):
            return real  # a str is fine too
    except (ValueError, OSError):
        pass
    return None


def safe_with_parts(root, target):
    path = unquote(target.split("?")[0].split("#")[0])
    if "\0" in path or len(path) > 1024:
        return None
    root = Path(root).resolve()
    candidate = root.joinpath(*[p for p in path.split("/") if p])
    if path.endswith("/"):
        candidate = candidate / "index.html"
    try:
        candidate = candidate.resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    if root in candidate.parents and candidate.is_file():
        return candidate
    return None


@pytest.mark.parametrize("alternative", [safe_with_realpath, safe_with_parts])
def test_nb08_safe_path_alternatives_pass(alternative):
    assert_passes(nb08.check_safe_path(alternative))


def _decoded(target):
    path = unquote(target.split("?")[0].split("#")[0])
    return path + "index.html" if path.endswith("/") else path


def safe_naive(root, target):
    candidate = Path(root) / _decoded(target).lstrip("/")
    try:
        return candidate if candidate.is_file() else None
    except (OSError, ValueError):
        return None


def safe_startswith(root, target):
    try:
        candidate = (Path(root) / _decoded(target).lstrip("/")).resolve()
        if str(candidate).startswith(str(Path(root).resolve())) and candidate.is_file():
            return candidate
    except (OSError, ValueError, RuntimeError):
        pass
    return None


def safe_normpath(root, target):
    root = os.path.abspath(root)
    try:
        candidate = os.path.normpath(os.path.join(root, _decoded(target).lstrip("/")))
        if candidate.startswith(root + os.sep) and os.path.isfile(candidate):
            return candidate
    except (OSError, ValueError):
        pass
    return None


def safe_checks_before_decoding(root, target):
    if ".." in target:
        return None
    return safe_naive(root, target)


def safe_raises_on_nul(root, target):
    candidate = (Path(root) / _decoded(target).lstrip("/")).resolve()
    if candidate.is_relative_to(Path(root).resolve()) and candidate.is_file():
        return candidate
    return None


def safe_without_unquote(root, target):
    return sol08.safe_path(root, target.replace("%", "%25"))


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (safe_naive, "Join, then resolve"),
        (safe_startswith, "is_relative_to(root)"),
        (safe_normpath, "do not follow symlinks"),
        (safe_checks_before_decoding, "percent-decode the path first"),
        (safe_raises_on_nul, "catch ValueError and OSError"),
        (safe_without_unquote, "percent-decode with urllib.parse.unquote"),
    ],
    ids=["naive", "startswith", "normpath", "before-decoding", "nul", "no-unquote"],
)
def test_nb08_safe_path_catches(wrong, hint):
    fails_with(nb08.check_safe_path(wrong), hint)


def test_nb08_traversal_fuzz_is_big_and_the_reference_has_no_escape():
    with nb08._site() as (base, site):
        paths = nb08.traversal_paths(base)
        assert len(paths) >= 1000 and len(set(paths)) == len(paths)
        for needle in ("%2e%2e", "..%2f", "%5c", "\\", "\x00", "link-out", "site-private"):
            assert any(needle in p for p in paths), needle
        assert any(p.startswith("/" + str(base)) for p in paths)  # absolute paths
        escapes = [
            p
            for p in paths
            if (r := sol08.safe_path(site, p)) is not None and not nb08._inside(r, site)
        ]
        assert escapes == []
        # and the naive version really escapes through many of them
        naive = [p for p in paths if (r := safe_naive(site, p)) is not None]
        assert len(naive) > 100, len(naive)


def test_nb08_notebook_shows_solutions_and_not_done_verdicts():
    """Three solutions in <details> blocks (tests/test_solution_text.py checks that they are
    the reference ones); each stored check output is the "not done yet" a learner first sees."""
    cells = notebook_cells("08-http-from-scratch.ipynb")
    shown = [c for c in cells if c["cell_type"] == "markdown" and "<details>" in cell_source(c)]
    assert len(shown) == 3
    checks = [c for c in cells if c["cell_type"] == "code" and "nb08.check_" in cell_source(c)]
    assert len(checks) == 3
    for cell in checks:
        assert "not done yet" in stored_text(cell), stored_text(cell)


# --- the course's own server (the notebook's site_server) ----------------------------------


def notebook_server_namespace():
    """The notebook's imports and server cells, run here (without the cells' serve() lines)."""
    cells = [
        cell_source(c)
        for c in notebook_cells("08-http-from-scratch.ipynb")
        if c["cell_type"] == "code"
    ]
    namespace: dict = {}
    wanted = [cells[0]] + [c for c in cells if "def read_head" in c or "def handle(" in c]
    for source in wanted:
        lines = [line for line in source.splitlines() if not line.startswith(("srv =", "base ="))]
        exec("\n".join(lines), namespace)  # noqa: S102 - the notebook's own code
    return namespace


def test_nb08_course_server_parse_survives_ten_thousand_fuzzed_heads():
    ns = notebook_server_namespace()
    for head in nb08.fuzzed_heads(10_000, seed=9):
        try:
            ns["parse"](head)
        except ns["HTTPError"] as error:
            assert error.status == 400
    # and it agrees with the RFC on the heads the exercise table says are bad
    for head, expected, _, _ in nb08.HEAD_CASES:
        if expected is None and head and b"FTP" not in head and b"Host: a" not in head:
            with pytest.raises(ns["HTTPError"]):
                ns["parse"](head)


def test_nb08_course_server_answers_fuzzed_requests_and_never_crashes(tmp_path):
    """300 mangled heads over real sockets, 20 at a time: every one gets an HTTP answer
    (or a close), the server never raises, and it still serves a file afterwards."""
    import socket
    from concurrent.futures import ThreadPoolExecutor

    from helpers import netlab

    ns = notebook_server_namespace()
    site = tmp_path / "site"
    site.mkdir()
    (site / "hello.txt").write_text("hello\n")
    heads = nb08.fuzzed_heads(300, seed=10)

    def ask(head):
        with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as sock:
            sock.sendall(head + b"\r\n\r\n")
            reply = b""
            try:
                while chunk := sock.recv(65536):
                    reply += chunk
            except ConnectionResetError:
                pass
            return reply

    with netlab.serve(ns["site_server"], site, port=None, announce=False) as srv:
        with ThreadPoolExecutor(20) as pool:
            replies = list(pool.map(ask, heads))
        srv.wait_quiet(5)
        assert srv.errors == [], srv.errors
        assert all(r == b"" or r.startswith(b"HTTP/1.1 ") for r in replies)
        statuses = {r.split(b" ")[1] for r in replies if r}
        assert b"400" in statuses and b"500" not in statuses, statuses
        ok = ask(b"GET /hello.txt HTTP/1.1\r\nHost: x")
        assert ok.endswith(b"\r\n\r\nhello\n"), ok
