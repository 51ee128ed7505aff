"""The course's servers, as reference code a learner can read in one sitting.

One small module per design, each with an echo server ``xxx_echo_server(port)`` that
``netlab.serve`` runs (or ``python -m helpers.servers DESIGN PORT`` as a process):

    threaded.py        one thread per connection (notebook 05)
    selector.py        one thread, a selectors event loop; WRITE only when data waits
    asyncio_server.py  asyncio streams, with drain() and wait_closed()
    socketserver_server.py  the standard library's ThreadingTCPServer
    framing.py         length + CRC-32 messages (pure functions on bytes, no sockets)
    load.py            an asyncio pool of clients that checks every byte came back
    lossy_udp.py       a UDP relay that drops, duplicates and reorders, seeded (notebook 06)

Every server binds 127.0.0.1 and echoes bytes exactly as they arrive: it knows nothing
of messages, so the same server works with nc, telnet and the load clients.
"""

from .asyncio_server import asyncio_echo_server
from .selector import selector_echo_server
from .socketserver_server import socketserver_echo_server
from .threaded import threaded_echo_server

DESIGNS = {
    "threaded": threaded_echo_server,
    "selector": selector_echo_server,
    "asyncio": asyncio_echo_server,
    "socketserver": socketserver_echo_server,
}

__all__ = [
    "DESIGNS",
    "asyncio_echo_server",
    "selector_echo_server",
    "socketserver_echo_server",
    "threaded_echo_server",
]
