"""What a recording relay saw on one connection: its events, as plain data.

``_relay.py`` records them; ``_diagram.py`` draws them. Both import this module and
nothing imports back.
"""

from __future__ import annotations

from dataclasses import dataclass, field

CLIENT_TO_SERVER = "client->server"
SERVER_TO_CLIENT = "server->client"
DIRECTIONS = (CLIENT_TO_SERVER, SERVER_TO_CLIENT)


@dataclass(frozen=True)
class Event:
    """One thing the relay saw on a connection.

    ``kind`` is one of:
      open     the relay has connected the client to the server (time 0)
      data     one ``recv`` returned ``size`` bytes, sent by ``direction``'s sender;
               ``preview`` holds the first bytes
      fin      the sender of ``direction`` half-closed (``recv`` returned ``b''``)
      reset    the sender of ``direction`` reset the connection (RST)
      omitted  ``count`` chunks of ``size`` bytes in all, counted but not kept
               (more than ``max_chunks``); ``direction`` is None when both directions
      refused  the relay could not connect to the server (``note`` says why)
      error    an unexpected error in the relay (``note`` has it)
      close    both directions have ended and the relay has closed its sockets
    ``time`` is in seconds since the connection opened.
    """

    kind: str
    time: float
    direction: str | None = None
    size: int = 0
    preview: bytes = b""
    count: int = 0
    note: str = ""


@dataclass(frozen=True)
class Connection:
    """A snapshot of one relayed connection: what the relay recorded up to now.

    ``client`` is the client's address, ``server`` the target's, ``upstream`` the
    relay's own address on its connection to the server (what the server sees as its
    client). ``bytes`` and ``chunks`` are exact totals per direction; ``ended`` says
    per direction how it ended: None (still open), 'FIN', 'RST' or 'stopped'.
    """

    number: int
    client: tuple
    server: tuple
    upstream: tuple | None
    events: tuple[Event, ...]
    bytes: dict = field(default_factory=dict)
    chunks: dict = field(default_factory=dict)
    ended: dict = field(default_factory=dict)
    closed: bool = False

    @property
    def state(self) -> str:
        if self.closed:
            return "closed"
        return "open" if self.upstream is not None else "connecting"

    def __str__(self) -> str:
        parts = [
            f"{d}: {self.bytes[d]} bytes in {self.chunks[d]} chunk"
            + ("" if self.chunks[d] == 1 else "s")
            + (f", {self.ended[d]}" if self.ended[d] else "")
            for d in DIRECTIONS
        ]
        return f"connection {self.number} ({self.state}): " + "; ".join(parts)
