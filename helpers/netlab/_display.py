"""Jupyter integration: server output at the end of every cell, tidy tracebacks.

Rules of this file: it only registers IPython hooks; outside IPython it does nothing
(plain Python calls ``srv.show()``, ``wait()`` or ``stop()``).

- A ``post_run_cell`` callback shows what servers wrote. It runs in the main thread
  while the cell is still the running one, so its output belongs to that cell on every
  ipykernel version.
- A custom exception handler drops netlab's own frames from tracebacks: netlab adds
  notes to a few exceptions (ConnectionRefusedError, TypeError from send), so the last
  frame of such a traceback is netlab's wrapper, with a path of this machine in it.
  IPython never hides a traceback's last frame, even with ``__tracebackhide__``.
"""

from __future__ import annotations

import os
import types

_HERE = os.path.dirname(os.path.abspath(__file__))
_installed_in = None


def _show_all(result=None) -> None:
    from ._server import registered_servers

    for server in registered_servers():
        server.show()


def without_netlab_frames(tb: types.TracebackType | None) -> types.TracebackType | None:
    """The same traceback chain, minus the frames of code in helpers/netlab."""
    frames = []
    while tb is not None:
        if os.path.dirname(os.path.abspath(tb.tb_frame.f_code.co_filename)) != _HERE:
            frames.append(tb)
        tb = tb.tb_next
    rebuilt = None
    for old in reversed(frames):
        rebuilt = types.TracebackType(rebuilt, old.tb_frame, old.tb_lasti, old.tb_lineno)
    return rebuilt


def _show_traceback(shell, etype, value, tb, tb_offset=None):
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
