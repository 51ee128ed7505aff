"""The standard library's own answer: ``socketserver.ThreadingTCPServer``.

    srv = netlab.serve(socketserver_echo_server)

socketserver does the accept loop and the thread per connection (``ThreadingMixIn``);
you write only ``handle()``, where ``self.request`` is the connected socket.
Bounds: a client silent (or not reading) for ``IDLE_TIMEOUT`` seconds is dropped. Out of
file descriptors, socketserver would retry ``accept()`` at once, for ever, at 100 % CPU
(``_handle_request_noblock`` ignores the OSError and the listener stays readable): our
``get_request`` pauses first (see ``resources.py``).
"""

import os
import socketserver
import time

from .resources import ACCEPT_PAUSE, AcceptGuard

IDLE_TIMEOUT = 60.0


class EchoHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        self.request.settimeout(IDLE_TIMEOUT)
        try:
            while data := self.request.recv(65536):
                self.request.sendall(data)
        except (TimeoutError, ConnectionError):
            pass


class EchoServer(socketserver.ThreadingTCPServer):
    # SO_REUSEADDR (TCPServer's default is False): a restart is not refused while old
    # connections sit in TIME_WAIT; not on Windows, where it would let another socket
    # take this port (notebook 02)
    allow_reuse_address = os.name != "nt"
    daemon_threads = True  # a client still connected does not keep the program alive
    request_queue_size = 1024  # listen() backlog

    def server_activate(self) -> None:
        super().server_activate()
        self.accept_guard = AcceptGuard("socketserver")

    def get_request(self):
        try:
            request = super().get_request()
        except OSError as exc:
            if self.accept_guard.failed(exc):
                time.sleep(ACCEPT_PAUSE)  # then serve_forever drops the error and goes on
            raise
        self.accept_guard.accepted()
        return request


def socketserver_echo_server(port: int) -> None:
    with EchoServer(("127.0.0.1", port), EchoHandler) as server:
        server.serve_forever(poll_interval=0.5)
