"""A test's server process on a free port, started again on another if the port was taken.

``netlab.free_port()`` chooses a port that is free *now*; the process binds it a moment
later, and on a busy machine (a second test run beside this one) another program can bind
it in between. Then the script fails with "Address already in use" and is started again
on another port. ``wait_listening`` asks the OS whether *this* process listens, so a port
someone else holds is never mistaken for ready.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from helpers import netlab

ROOT = Path(__file__).resolve().parents[1]
PORT = "{port}"  # stands for the port in a script's arguments


@contextlib.contextmanager
def script_on_free_port(*args, cwd=ROOT, port=None, attempts=5, timeout=10.0):
    """Run ``python args`` with PORT replaced by a free port; yield (process, port) once it
    listens there (on ``port`` first, if given). ``process.taken`` lists ports lost first."""
    taken: list[int] = []
    for _ in range(attempts):
        chosen = netlab.free_port() if port is None or taken else port
        argv = [str(chosen) if a == PORT else a for a in args]
        process = netlab.start_script(*argv, cwd=cwd, listen_port=None)
        try:
            process.wait_listening(chosen, timeout=timeout)
        except netlab.ProcessError:
            process.stop()
            if "Address already in use" in process.output:
                taken.append(chosen)
                continue
            raise
        process.taken = taken
        try:
            yield process, chosen
        finally:
            process.stop()
        return
    raise AssertionError(f"{' '.join(args)}: its port was taken {attempts} times: {taken}")
