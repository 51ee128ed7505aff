"""Tracebacks as a learner should read them: without netlab's frames or machine paths.

The one frame filter of netlab (``is_netlab_frame``), used for tracebacks of server
threads (``format_traceback``) and, in IPython, for the learner's own cells
(``without_netlab_frames``, see ``_display.py``).
"""

from __future__ import annotations

import linecache
import os
import traceback
import types

_HERE = os.path.dirname(os.path.abspath(__file__))


def is_netlab_frame(filename: str) -> bool:
    return os.path.dirname(os.path.abspath(filename)) == _HERE


def _frame_file(filename: str) -> str:
    """A frame's file as a learner should read it: "Cell In[3]" or "socket.py".

    IPython names a cell's code ``<ipython-input-N-...>`` or a temporary file that its
    public ``compile.format_code_name`` turns into "Cell In[N]".
    """
    try:
        from IPython import get_ipython

        shell = get_ipython()
        if shell is not None:
            named = shell.compile.format_code_name(filename)
            if named is not None:
                return f"{named[0]} {named[1]}"
    except (ImportError, AttributeError, TypeError, ValueError):
        pass
    return os.path.basename(filename)


def format_traceback(exc: BaseException) -> str:
    """The traceback of ``exc`` without netlab's own frames and without machine paths."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if not is_netlab_frame(f.filename)]
    lines = ["Traceback (most recent call last):"]
    for frame in frames:
        lines.append(
            f'  File "{_frame_file(frame.filename)}", line {frame.lineno}, in {frame.name}'
        )
        if frame.line:
            lines.append(f"    {frame.line.strip()}")
    lines.extend(traceback.format_exception_only(exc))
    return "\n".join(line.rstrip("\n") for line in lines)


def without_netlab_frames(tb: types.TracebackType | None) -> types.TracebackType | None:
    """The same traceback chain, minus the frames of code in helpers/netlab."""
    frames = []
    while tb is not None:
        if not is_netlab_frame(tb.tb_frame.f_code.co_filename):
            frames.append(tb)
        tb = tb.tb_next
    rebuilt = None
    for old in reversed(frames):
        rebuilt = types.TracebackType(rebuilt, old.tb_frame, old.tb_lasti, old.tb_lineno)
    return rebuilt


_STDLIB = os.path.dirname(os.path.abspath(os.__file__))


def where(frame) -> str:
    """Where a thread is, in the learner's words: "in server(), at `while True: pass`".

    The innermost frame of the learner's code (not netlab's, not the standard library's);
    else the innermost one that is not netlab's.
    """
    fallback = None
    while frame is not None:
        name = frame.f_code.co_filename
        if not is_netlab_frame(name):
            if not os.path.abspath(name).startswith(_STDLIB):
                break
            fallback = fallback or frame
        frame = frame.f_back
    found = frame or fallback
    if found is None:
        return ""
    line = linecache.getline(found.f_code.co_filename, found.f_lineno).strip()
    return f"in {found.f_code.co_name}(), at `{line}`" if line else f"in {found.f_code.co_name}()"
