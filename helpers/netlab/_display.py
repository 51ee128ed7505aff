"""Show servers' output in Jupyter at the end of every cell, from the main thread.

Rules of this file: it only registers an IPython ``post_run_cell`` callback; outside
IPython it does nothing (plain Python calls ``srv.show()``, ``wait()`` or ``stop()``).
The callback runs in the main thread while the cell is still the running one, so what
it prints belongs to that cell on every ipykernel version.
"""

from __future__ import annotations

_installed_in = None


def _show_all(result=None) -> None:
    from ._server import registered_servers

    for server in registered_servers():
        server.show()


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
    _installed_in = shell
