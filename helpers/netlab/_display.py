"""Jupyter integration: server output at the end of every cell, notes on common errors.

Rules of this file: it only registers IPython hooks; outside IPython it does nothing
(plain Python calls ``srv.show()``, ``wait()`` or ``stop()``).

- A ``post_run_cell`` callback shows what servers wrote. It runs in the main thread
  while the cell is still the running one, so its output belongs to that cell on every
  ipykernel version.
- A custom exception handler explains the learner's usual mistakes where they surface,
  in the learner's own cell, without wrapping any socket call of the learner's threads:
  ConnectionRefusedError gets a note saying which server was meant, ``send(str)`` a note
  to encode, and netlab's own frames are dropped from the traceback.
"""

from __future__ import annotations

from ._tracebacks import without_netlab_frames

_installed_in = None
_NOTE_MARK = "netlab: "


def _show_all(result=None) -> None:
    from ._server import registered_servers

    servers = registered_servers()
    for server in servers:
        server.print_settle_failed = False  # a new cell: its prints wait for servers again
    interrupted = isinstance(getattr(result, "error_in_exec", None), KeyboardInterrupt)
    try:
        if interrupted:
            raise KeyboardInterrupt  # the cell itself was interrupted: do not wait either
        for server in servers:
            server.show()
    except KeyboardInterrupt:
        # The learner pressed Interrupt while netlab waited for a server to settle: show
        # what is recorded, say so, and let the notebook go on (no traceback of netlab's).
        for server in servers:
            server.show(wait=0)
        if any(server.running for server in servers):
            print(
                "(netlab: interrupted while waiting for the servers to finish what this "
                "cell caused; what they write later is shown in a later cell)"
            )


def _refused_port(tb) -> int | None:
    """The port a refused connect() was for, when a frame of the traceback names it."""
    port = None
    while tb is not None:
        local = tb.tb_frame.f_locals
        for name in ("address", "sa", "addr"):
            value = local.get(name)
            if isinstance(value, tuple) and len(value) >= 2 and isinstance(value[1], int):
                port = value[1]
        tb = tb.tb_next
    return port


def add_notes(value: BaseException, tb) -> None:
    """The notes netlab adds to an exception a learner's cell raised."""
    if any(str(n).startswith(_NOTE_MARK) for n in getattr(value, "__notes__", ())):
        return
    if isinstance(value, ConnectionRefusedError):
        from ._server import refused_hint

        value.add_note(refused_hint(_refused_port(tb)))
    elif isinstance(value, TypeError) and "bytes-like object is required, not 'str'" in str(value):
        value.add_note(
            "netlab: sockets carry bytes, not str. Encode the text first: "
            "'text'.encode() (or write a b'...' literal)."
        )


def _show_traceback(shell, etype, value, tb, tb_offset=None):
    add_notes(value, tb)
    shell.showtraceback((etype, value, without_netlab_frames(tb)), tb_offset=tb_offset)


def install() -> None:
    global _installed_in
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is None or shell is _installed_in:
        return
    shell.events.register("post_run_cell", _show_all)
    if not shell.custom_exceptions:  # never replace a handler someone else set
        shell.set_custom_exc((Exception,), _show_traceback)
    _installed_in = shell
