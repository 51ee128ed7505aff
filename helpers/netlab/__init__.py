"""netlab: run socket servers inside a notebook, see what they do, check exercises.

    from helpers import netlab

    def server(port):                  # the seed's server.py, as a function
        s = socket.socket()
        s.bind(("127.0.0.1", port))
        s.listen(5)
        c, addr = s.accept()
        ...

    srv = netlab.serve(server)         # returns once it listens; srv.port is its port
    ...                                # your client connects to ("127.0.0.1", srv.port)
    srv.stop()

The parts, one module each (each imports only those listed above it):
    _waits.py      what each server thread waits on, and until when (exact "settled")
    _addresses.py  addresses as people read them
    _tracebacks.py tracebacks without netlab's frames or machine paths
    _output.py     server threads' output: recorded, bounded, shown in order
    _ports.py      port 5000 when free, else a free port
    _states.py     socket states read from the operating system (what `ss` shows)
    _patches.py    how netlab learns what server threads do (server sockets, waits)
    _server.py     serve(), the Server handle and its lifecycle, the registry
    _display.py    Jupyter: show servers' output at the end of each cell, error notes
    _sockets.py    small socket moves written once (a reset instead of a FIN)
    _process.py    scripts as separate processes (the seed's "two terminals")
    _relay.py      a recording relay between a client and a server: every chunk, FIN, RST
    _diagram.py    sequence diagrams of what the relay recorded (SVG in Jupyter, text elsewhere)
"""

from . import _display, _output, _patches
from ._addresses import format_address
from ._diagram import Diagram, sequence_diagram
from ._patches import EOF_SPIN_LIMIT
from ._ports import choose_port, free_port, is_free, preferred_port, unused_port
from ._process import Process, ProcessError, run_script, scratch_dir, start_script
from ._relay import CLIENT_TO_SERVER, SERVER_TO_CLIENT, Connection, Relay
from ._server import LifecycleError, Server, ServerError, State, running_servers, serve, stop_all
from ._sockets import reset
from ._states import SocketTable, socket_table, table_source, wait_for_state
from ._waits import ServerStopped

# Installed at import, not at the first serve(): a client cell run before any server
# must already get netlab's note on ConnectionRefusedError (an IPython exception
# handler). The patches change nothing for threads that no netlab server owns.
_patches.install()
_output.route_output()
_display.install()

__all__ = [
    "CLIENT_TO_SERVER",
    "EOF_SPIN_LIMIT",
    "SERVER_TO_CLIENT",
    "Connection",
    "Diagram",
    "Relay",
    "SocketTable",
    "sequence_diagram",
    "socket_table",
    "wait_for_state",
    "Process",
    "ProcessError",
    "LifecycleError",
    "Server",
    "ServerError",
    "ServerStopped",
    "State",
    "format_address",
    "reset",
    "table_source",
    "choose_port",
    "free_port",
    "is_free",
    "preferred_port",
    "run_script",
    "running_servers",
    "scratch_dir",
    "serve",
    "start_script",
    "stop_all",
    "unused_port",
]
