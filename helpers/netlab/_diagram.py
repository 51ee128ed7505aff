"""Sequence diagrams of what a relay recorded: one arrow per chunk, as text and as SVG.

    diagram = sequence_diagram(relay.connections)   # or relay.diagram()
    diagram                                         # Jupyter: a picture; Python: text

Rules of this file:
- It draws, it never touches a socket: the input is the relay's ``Connection``
  snapshots (``_relay.py``), so everything here is tested with plain data.
- One arrow per recorded chunk, never merged: a learner must see that one ``send``
  can arrive as several ``recv`` results and several sends as one. Above ``limit``
  arrows, the chunks that follow are summed up in a "... N more chunks (M bytes)"
  line placed where they happened, between the FIN and RST marks.
- Both renderings come from the same list of rows (``_rows``), so the HTML shows
  every fact the text shows, and the text is deterministic: times are hidden unless
  ``times=True`` (then rounded to milliseconds), addresses unless ``addresses=True``.
- The SVG uses ``currentColor`` for neutral ink, so it follows JupyterLab's light and
  dark themes, and two colours that read on both for the two directions.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

from ._addresses import format_address
from ._wire import CLIENT_TO_SERVER, DIRECTIONS, SERVER_TO_CLIENT, Connection

WIDTH = 72
LIMIT = 40
PREVIEW_CHARS = 40

_PRINTABLE = set(range(32, 127))
_ESCAPES = {9: "\\t", 10: "\\n", 13: "\\r", 34: '\\"', 92: "\\\\"}


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def format_preview(data: bytes, size: int | None = None, max_chars: int = PREVIEW_CHARS) -> str:
    """Bytes as a reader wants them: a quoted string if printable ASCII, else hex.

    ``size`` is the chunk's full size (the relay keeps only the first bytes): '...'
    marks that more bytes followed, as it marks a preview cut to ``max_chars``.

        >>> format_preview(b"Hi\\r\\n")
        '"Hi\\\\r\\\\n"'
        >>> format_preview(b"\\x00\\xff")
        '00 ff'
    """
    size = len(data) if size is None else size
    text = all(b in _PRINTABLE or b in _ESCAPES for b in data)
    if text:
        tokens = [_ESCAPES.get(b, chr(b)) for b in data]
        opening, closing, separator = '"', '"', ""
    else:
        tokens = [f"{b:02x}" for b in data]
        opening, closing, separator = "", "", " "
    more = size > len(data)
    shown: list[str] = []
    length = len(opening) + len(closing)
    for token in tokens:
        extra = len(token) + (len(separator) if shown else 0)
        if length + extra > max_chars - 3:
            more = True
            break
        shown.append(token)
        length += extra
    body = opening + separator.join(shown) + closing
    if more:
        body += "..." if text else " ..."
    return body


@dataclass(frozen=True)
class Row:
    """One line of a diagram. ``kind``: open, data, fin, reset, more, refused, error, close."""

    kind: str
    direction: str | None
    time: float | None
    label: str  # what the arrow or mark says, the same in text and HTML
    size: str = ""  # data rows: "24 bytes"
    preview: str = ""  # data rows: the formatted preview
    detail: str = ""  # HTML tooltip: the whole preview, the note


def _size_text(size: int) -> str:
    return _plural(size, "byte")


def _more_row(skipped: list[tuple[str | None, int, int]], time: float | None) -> Row:
    chunks = sum(count for _, count, _ in skipped)
    size = sum(nbytes for _, _, nbytes in skipped)
    directions = {d for d, _, _ in skipped}
    direction = next(iter(directions)) if len(directions) == 1 else None
    where = f" {direction}" if direction else ""
    label = f"... {chunks} more chunk{'s' if chunks != 1 else ''}{where} ({_size_text(size)})"
    return Row("more", direction, time, label)


def _rows(connection: Connection, limit: int, preview_chars: int) -> list[Row]:
    rows: list[Row] = []
    shown = 0
    skipped: list[tuple[str | None, int, int]] = []
    skipped_time = None
    for event in connection.events:
        if event.kind in ("data", "omitted"):
            if event.kind == "data" and shown < limit:
                shown += 1
                size = _size_text(event.size)
                preview = format_preview(event.preview, event.size, preview_chars)
                # no time in the tooltip either: stored notebook outputs must not change
                detail = (
                    f"{size} {event.direction}; first "
                    f"{len(event.preview)}: {format_preview(event.preview, event.size, 10_000)}"
                )
                rows.append(
                    Row(
                        "data",
                        event.direction,
                        event.time,
                        f"{size} {preview}",
                        size,
                        preview,
                        detail,
                    )
                )
                continue
            count = 1 if event.kind == "data" else event.count
            skipped.append((event.direction, count, event.size))
            skipped_time = event.time if skipped_time is None else skipped_time
            continue
        if skipped:
            rows.append(_more_row(skipped, skipped_time))
            skipped, skipped_time = [], None
        if event.kind == "open":
            rows.append(Row("open", None, event.time, "open"))
        elif event.kind == "fin":
            # a FIN ends one direction: by close() or by shutdown(SHUT_WR) (a half-close)
            detail = "done sending: this side sends no more; the other may still send"
            rows.append(Row("fin", event.direction, event.time, "FIN", detail=detail))
        elif event.kind == "reset":
            rows.append(Row("reset", event.direction, event.time, "RST", detail=event.note))
        elif event.kind == "refused":
            rows.append(Row("refused", None, event.time, "server unreachable", detail=event.note))
        elif event.kind == "error":
            rows.append(Row("error", None, event.time, "relay error", detail=event.note))
        elif event.kind == "close":
            label = "closed" + (f" ({event.note})" if event.note else "")
            rows.append(Row("close", None, event.time, label))
    if skipped:
        rows.append(_more_row(skipped, skipped_time))
    return rows


def _totals(connection: Connection) -> list[tuple[str, str]]:
    lines = []
    for direction in DIRECTIONS:
        ended = connection.ended.get(direction)
        how = {
            None: "still open",
            "FIN": "ended by FIN",
            "RST": "ended by RST",
            "stopped": "relay stopped",
        }.get(ended, ended)
        lines.append(
            (
                direction,
                f"{direction}: {_size_text(connection.bytes[direction])} in "
                f"{_plural(connection.chunks[direction], 'chunk')}, {how}",
            )
        )
    return lines


def _title(connection: Connection) -> str:
    title = f"connection {connection.number}"
    if connection.state != "closed":
        title += f" ({connection.state})"
    return title


def _lane_names(connection: Connection, addresses: bool) -> tuple[str, str]:
    if not addresses:
        return "client", "server"

    return (
        f"client {format_address(connection.client)}",
        f"server {format_address(connection.server)}",
    )


# --- text ------------------------------------------------------------------------------


def _arrow(label: str, width: int, direction: str | None, fill: str) -> str:
    """``width`` characters: a line of ``fill`` with ``label`` in the middle and a head."""
    inner = f" {label} " if label else ""
    room = width if direction is None else width - 3
    if len(inner) > room:  # a long error message, or a diagram narrower than usual
        inner = inner[: room - 4] + "... "
    if direction is None:
        left = (width - len(inner)) // 2
        return fill * left + inner + fill * (width - left - len(inner))
    body = width - 1
    left = (body - len(inner)) // 2
    line = fill * left + inner + fill * (body - left - len(inner))
    return line + ">" if direction == CLIENT_TO_SERVER else "<" + line


def render_text(
    connections: list[Connection],
    *,
    times: bool = False,
    limit: int = LIMIT,
    width: int = WIDTH,
    addresses: bool = False,
) -> str:
    if not connections:
        return "no connections recorded yet"
    blocks = []
    for connection in connections:
        time_width = max((len(_ms(e.time)) for e in connection.events), default=0)
        margin = (time_width + 1 if times else 0) + 3
        inner = width - margin - 5  # the right lane is 3 columns from the right edge
        # room for "262144 bytes ", the spaces around the label and the arrow's ends
        rows = _rows(connection, limit, max(12, min(PREVIEW_CHARS, inner - 18)))
        left_name, right_name = _lane_names(connection, addresses)
        lines = [_title(connection)]
        header = " " * (margin - 3) + left_name
        header += " " * max(1, width - len(header) - len(right_name)) + right_name
        lines.append(header)
        blank = " " * margin + "|" + " " * inner + "|"
        lines.append(blank)
        for row in rows:
            if row.kind in ("data", "fin"):
                body = _arrow(row.label, inner, row.direction, "-")
            elif row.kind == "reset":
                body = _arrow(row.label, inner, row.direction, "=")
            elif row.kind in ("open", "close"):
                body = _arrow(row.label, inner, None, ".")
            elif row.kind in ("refused", "error"):
                body = _arrow(f"{row.label}: {row.detail}", inner, None, " ")
            else:
                body = _arrow(row.label, inner, None, " ")
            stamp = _ms(row.time).rjust(time_width) + " " if times else ""
            lines.append(stamp + " " * (margin - len(stamp)) + "|" + body + "|")
        lines.append(blank)
        lines.extend(text for _, text in _totals(connection))
        blocks.append("\n".join(line.rstrip() for line in lines))
    return "\n\n".join(blocks)


def _ms(time: float | None) -> str:
    return "" if time is None else f"{time * 1000:.0f} ms"


# --- SVG -------------------------------------------------------------------------------

_COLORS = {CLIENT_TO_SERVER: "#3b7ddd", SERVER_TO_CLIENT: "#e8590c", None: "currentColor"}
_RESET_COLOR = "#e03131"
_SANS = "system-ui, -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif"
_MONO = "ui-monospace, SFMono-Regular, Menlo, Consolas, 'DejaVu Sans Mono', monospace"
_ROW = 34


def _e(text: str) -> str:
    return html.escape(text, quote=True)


def _svg(connection: Connection, *, times: bool, limit: int, addresses: bool) -> str:
    rows = _rows(connection, limit, PREVIEW_CHARS)
    totals = _totals(connection)
    left_pad = 78 if times else 20
    lane_l = left_pad + 70
    lane_r = lane_l + 560
    width = lane_r + 90
    top = 92
    height = top + _ROW * len(rows) + 20 + 20 * len(totals) + 10
    out: list[str] = []
    add = out.append
    add(
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" font-family="{_SANS}" font-size="13" '
        f'style="max-width:100%;height:auto;color:inherit">'
    )
    add(f"<title>{_e(_title(connection))}: sequence diagram recorded by the relay</title>")
    add(
        f'<text x="{left_pad}" y="20" font-weight="600" font-size="14" fill="currentColor">'
        f"{_e(_title(connection))}</text>"
    )
    left_name, right_name = _lane_names(connection, addresses)
    bottom = top + _ROW * len(rows) - 4
    for x, name, direction in (
        (lane_l, left_name, CLIENT_TO_SERVER),
        (lane_r, right_name, SERVER_TO_CLIENT),
    ):
        color = _COLORS[direction]
        box = max(96, 8 * len(name) + 20)
        add(
            f'<line x1="{x}" y1="64" x2="{x}" y2="{bottom}" stroke="currentColor" '
            f'stroke-opacity="0.35" stroke-width="1.5" stroke-dasharray="4 4"/>'
        )
        add(
            f'<rect x="{x - box / 2}" y="34" width="{box}" height="30" rx="8" fill="{color}" '
            f'fill-opacity="0.14" stroke="{color}" stroke-width="1.5"/>'
        )
        add(
            f'<text x="{x}" y="54" text-anchor="middle" font-weight="600" fill="currentColor">'
            f"{_e(name)}</text>"
        )
    middle = (lane_l + lane_r) / 2
    for index, row in enumerate(rows):
        y = top + _ROW * index  # the arrow's line; its label sits above it
        add("<g>")
        if row.detail:
            add(f"<title>{_e(row.detail)}</title>")
        if times:  # level with the arrow, or with the text of a mark
            ty = y + 4 if row.kind in ("data", "fin", "reset") else y - 2
            add(
                f'<text x="{left_pad + 40}" y="{ty}" text-anchor="end" font-family="{_MONO}" '
                f'font-size="11" fill="currentColor" fill-opacity="0.6">{_e(_ms(row.time))}</text>'
            )
        if row.kind in ("data", "fin", "reset"):
            color = _RESET_COLOR if row.kind == "reset" else _COLORS[row.direction]
            dash = ' stroke-dasharray="7 5"' if row.kind == "fin" else ""
            thick = 2.5 if row.kind == "reset" else 1.8
            add(_arrow_svg(lane_l, lane_r, y, row.direction, color, thick, dash))
            if row.kind == "data":
                add(
                    f'<text x="{middle}" y="{y - 6}" text-anchor="middle">'
                    f'<tspan font-weight="600" fill="{color}">{_e(row.size)}</tspan>'
                    f'<tspan dx="8" font-family="{_MONO}" font-size="12.5" fill="currentColor">'
                    f"{_e(row.preview)}</tspan></text>"
                )
            else:
                extra = " (done sending)" if row.kind == "fin" else " (connection reset)"
                add(
                    f'<text x="{middle}" y="{y - 6}" text-anchor="middle" fill="{color}">'
                    f'<tspan font-weight="700">{_e(row.label)}</tspan>'
                    f'<tspan font-size="11.5" fill-opacity="0.85">{_e(extra)}</tspan></text>'
                )
        elif row.kind in ("open", "close"):
            pill = 8 * len(row.label) + 28
            add(
                f'<rect x="{middle - pill / 2}" y="{y - 17}" width="{pill}" height="22" rx="11" '
                f'fill="currentColor" fill-opacity="0.08" stroke="currentColor" '
                f'stroke-opacity="0.3"/>'
            )
            add(
                f'<text x="{middle}" y="{y - 2}" text-anchor="middle" fill="currentColor" '
                f'fill-opacity="0.8">{_e(row.label)}</text>'
            )
        elif row.kind == "more":
            color = _COLORS[row.direction]
            add(
                f'<text x="{middle}" y="{y - 2}" text-anchor="middle" font-style="italic" '
                f'fill="{color}" fill-opacity="0.9">{_e(row.label)}</text>'
            )
        else:  # refused, error
            add(
                f'<text x="{middle}" y="{y - 2}" text-anchor="middle" fill="{_RESET_COLOR}" '
                f'font-weight="600">{_e(row.label)}<tspan font-weight="400" '
                f'font-family="{_MONO}" font-size="11.5">: {_e(row.detail)}</tspan></text>'
            )
        add("</g>")
    y = top + _ROW * len(rows) + 16
    for direction, text in totals:
        add(
            f'<text x="{left_pad}" y="{y}" font-size="12.5" fill="{_COLORS[direction]}">'
            f"{_e(text)}</text>"
        )
        y += 20
    add("</svg>")
    return "".join(out)


def _arrow_svg(x1, x2, y, direction, color, thick, dash) -> str:
    start, end = (x1, x2) if direction == CLIENT_TO_SERVER else (x2, x1)
    tip = end - 2 if direction == CLIENT_TO_SERVER else end + 2
    back = 11 if direction == CLIENT_TO_SERVER else -11
    line_end = tip - back + (2 if direction == CLIENT_TO_SERVER else -2)
    return (
        f'<circle cx="{start}" cy="{y}" r="3" fill="{color}"/>'
        f'<line x1="{start}" y1="{y}" x2="{line_end}" y2="{y}" stroke="{color}" '
        f'stroke-width="{thick}"{dash}/>'
        f'<polygon points="{tip},{y} {tip - back},{y - 5} {tip - back},{y + 5}" fill="{color}"/>'
    )


def render_html(
    connections: list[Connection],
    *,
    times: bool = False,
    limit: int = LIMIT,
    addresses: bool = False,
) -> str:
    if not connections:
        return '<div class="netlab-diagram"><p>no connections recorded yet</p></div>'
    parts = [
        f'<div class="netlab-diagram" style="margin:4px 0">'
        f"{_svg(c, times=times, limit=limit, addresses=addresses)}</div>"
        for c in connections
    ]
    return "".join(parts)


class Diagram:
    """A sequence diagram: ``str()`` and ``repr()`` give text, Jupyter shows the SVG."""

    def __init__(
        self,
        connections,
        *,
        times: bool = False,
        limit: int = LIMIT,
        width: int = WIDTH,
        addresses: bool = False,
    ):
        self.connections = list(connections)
        self.times = times
        self.limit = limit
        self.width = width
        self.addresses = addresses

    def text(self) -> str:
        return render_text(
            self.connections,
            times=self.times,
            limit=self.limit,
            width=self.width,
            addresses=self.addresses,
        )

    def html(self) -> str:
        return render_html(
            self.connections, times=self.times, limit=self.limit, addresses=self.addresses
        )

    def __str__(self) -> str:
        return self.text()

    __repr__ = __str__

    def _repr_html_(self) -> str:
        return self.html()

    def save(self, path: str) -> None:
        """Write a standalone HTML page (to open in a browser)."""
        with open(path, "w", encoding="utf-8") as file:
            file.write(
                '<!doctype html><html><head><meta charset="utf-8"><title>netlab diagram</title>'
                "</head><body>" + self.html() + "</body></html>\n"
            )


def sequence_diagram(
    what,
    *,
    times: bool = False,
    limit: int = LIMIT,
    width: int = WIDTH,
    addresses: bool = False,
) -> Diagram:
    """A diagram of one ``Connection``, a list of them, or everything a ``Relay`` recorded.

    sequence_diagram(relay.connection(1))
    sequence_diagram(relay, times=True)
    """
    if isinstance(what, Connection):
        connections = [what]
    elif hasattr(what, "connections") and not isinstance(what, (list, tuple)):
        connections = what.connections
    else:
        connections = list(what)
    return Diagram(connections, times=times, limit=limit, width=width, addresses=addresses)
