"""Reference solutions of notebook 08 (HTTP from scratch)."""

from http import HTTPStatus
from pathlib import Path
from urllib.parse import unquote


def parse_request_head(head):
    """(method, target, version, headers) from the bytes before the blank line."""
    text = head.decode("iso-8859-1")
    request_line, *header_lines = text.split("\r\n")
    parts = request_line.split(" ")
    if len(parts) != 3 or not all(parts):
        raise ValueError(f"bad request line {request_line!r}")
    method, target, version = parts
    if version not in ("HTTP/1.0", "HTTP/1.1"):
        raise ValueError(f"unsupported version {version!r}")
    headers = {}
    for line in header_lines:
        name, colon, value = line.partition(":")
        if not colon or not name or name != name.strip():
            raise ValueError(f"bad header line {line!r}")
        name = name.lower()
        if name == "host" and name in headers:
            raise ValueError("more than one Host header")
        headers[name] = value.strip(" \t")
    if version == "HTTP/1.1" and "host" not in headers:
        raise ValueError("an HTTP/1.1 request needs a Host header")
    return method, target, version, headers


def build_response(status, body=b"", content_type="text/plain; charset=utf-8", head=False):
    """The bytes of a whole response; for HEAD the same head, without the body."""
    if isinstance(body, str):
        body = body.encode("utf-8")
    lines = [
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}",
        f"Content-Type: {content_type}",
        f"Content-Length: {len(body)}",
        "Connection: close",
    ]
    response_head = ("\r\n".join(lines) + "\r\n\r\n").encode("iso-8859-1")
    return response_head if head else response_head + body


def safe_path(root, target):
    """The file inside ``root`` that ``target`` names, or None (then: 404)."""
    path = unquote(target.split("?", 1)[0].split("#", 1)[0])
    if "\x00" in path:
        return None
    if path.endswith("/"):
        path += "index.html"
    root = Path(root).resolve()
    try:
        candidate = (root / path.lstrip("/")).resolve()
        if candidate.is_relative_to(root) and candidate.is_file():
            return candidate
    except (OSError, RuntimeError):  # a name too long, a symlink loop
        pass
    return None
