"""The machinery of exercise checks: run learner code, attack it with real sockets, judge.

Rules of this file:
- It knows no exercise. ``nb01.py``, ``nb02.py``, ... say what to send and what must come
  back; this file runs the learner's function (a server through ``netlab.serve``, or a
  client function in a worker thread), provides the attacking sockets on 127.0.0.1 and
  turns what happened into a ``Verdict``.
- Every wait has a bound: each socket has a timeout, a learner's function runs in a
  thread joined with a timeout, and a server is stopped by netlab (bounded) at the end
  of every check. Nothing sleeps to synchronise: the attacker waits on the socket, on a
  condition that the learner's ``recv`` notifies, or on netlab's "server is quiet".
- A verdict is text, the same on every run: no ports, timings or paths in it.

Theory of operation. A check is a function that raises ``Failure(what, hint, sent)``
when the learner's code misbehaves. ``run_checks`` runs the checks of one exercise in
order and stops at the first failure (the others are listed as not run): the learner
fixes one thing at a time, and a broken solution does not wait for every timeout.
A stub that raises NotImplementedError gives a "not done yet" verdict, not a traceback;
so does anything else a learner's code can do: return None or a coroutine (an ``async
def``), raise, hang, spin. An exception that no check expected still becomes a failure.
On a shared machine strangers can reach any port on loopback: the check's own servers
accept only connections from sockets of this user (``accept_ours``, ``accept_from``).
"""

from __future__ import annotations

import builtins
import contextlib
import ctypes
import difflib
import dis
import importlib.util
import inspect
import ipaddress
import os
import selectors
import socket
import sys
import textwrap
import threading
import time
import traceback
from dataclasses import dataclass

from helpers import netlab
from helpers.netlab import _netlink
from helpers.netlab._output import RUNAWAY_LINES

REPLY_TIMEOUT = 3.0  # a reply that has not come within 3 s is not coming
EOF_TIMEOUT = 2.0  # after the last expected byte, the end of the stream must follow soon
CALL_TIMEOUT = 3.0  # a learner's client function gets this long to return
VERDICT_WIDTH = 90  # verdict lines wrap here (at spaces), so JupyterLab never cuts a word


# --- verdicts ---------------------------------------------------------------------------


class Failure(Exception):
    """A check failed: ``what`` happened on input ``sent``; ``hint`` says what to change."""

    def __init__(self, what: str, hint: str, sent: str | None = None):
        super().__init__(what)
        self.what = what
        self.hint = hint
        self.sent = sent


class NotDone(Exception):
    """The learner's function is still the stub (it raised NotImplementedError)."""


@dataclass
class Outcome:
    title: str
    status: str  # "pass", "fail" or "skip"
    failure: Failure | None = None


class Verdict:
    """What the checks found; shows itself as text (in a notebook: as the cell's output)."""

    def __init__(self, subject: str, outcomes: list[Outcome], not_done: bool = False):
        self.subject = subject
        self.outcomes = outcomes
        self.not_done = not_done

    @property
    def passed(self) -> bool:
        return not self.not_done and all(o.status == "pass" for o in self.outcomes)

    @property
    def failure(self) -> Failure | None:
        """The first failed check's Failure (None when every check passed)."""
        return next((o.failure for o in self.outcomes if o.failure is not None), None)

    @property
    def hint(self) -> str:
        failure = self.failure
        return failure.hint if failure else ""

    def text(self) -> str:
        if self.not_done:
            return (
                f"{self.subject}: not done yet (it raises NotImplementedError).\n"
                "Write it in the exercise cell, run that cell, then run this check again."
            )
        good = sum(o.status == "pass" for o in self.outcomes)
        if self.passed:
            lines = [f"{self.subject}: all {good} checks passed. Well done!"]
        else:
            lines = [f"{self.subject}: {good} of {len(self.outcomes)} checks passed."]
        for outcome in self.outcomes:
            if outcome.status == "pass":
                lines.extend(_wrap("✓ ", outcome.title, indent="  "))
            elif outcome.status == "skip":
                title = f"{outcome.title} (not run: fix the one above first)"
                lines.extend(_wrap("· ", title, indent="  "))
            else:
                failure = outcome.failure
                lines.extend(_wrap("✗ ", outcome.title, indent="  "))
                if failure.sent:
                    lines.extend(_wrap("input: ", failure.sent))
                lines.extend(_wrap("what happened: ", failure.what))
                lines.extend(_wrap("hint: ", failure.hint))
        return "\n".join(lines)

    __str__ = text

    def __repr__(self) -> str:
        return self.text()

    def _repr_pretty_(self, printer, cycle) -> None:
        printer.text(self.text())


def _wrap(label: str, text: str, indent: str = "      ") -> list[str]:
    """``label`` + ``text`` as lines of at most VERDICT_WIDTH characters (when the words
    allow it), continued under the text; deterministic, and no word is ever cut."""
    return textwrap.wrap(
        text,
        width=VERDICT_WIDTH,
        initial_indent=indent + label,
        subsequent_indent=indent + " " * len(label),
        break_long_words=False,
        break_on_hyphens=False,
    ) or [indent + label.rstrip()]


HINT_COROUTINE = (
    "Your function is a coroutine function (async def): calling it only creates a "
    "coroutine, and runs none of its code. Write it with plain `def` and blocking socket "
    "calls, as the exercise asks (an `async def` needs an event loop to run it)."
)
HINT_NOT_COROUTINE = (
    "Write it as `async def handle(reader, writer):` (with `await` before reader.read() "
    "and writer.drain()): asyncio.start_server calls it and runs the coroutine it returns."
)
HINT_UNEXPECTED = (
    "Something unexpected happened while checking your function: read the exception, "
    "run your function's cell again, then this check."
)


def run_checks(subject: str, checks, function=None, coroutine: bool = False) -> Verdict:
    """Run ``checks`` (pairs of title and no-argument function) in order; judge.

    ``function`` is the learner's function: when it is (or is not, with
    ``coroutine=True``) an ``async def``, the first check fails with a hint that says so,
    instead of running checks that can only fail for another apparent reason. An
    exception that no check expected becomes a failure too: a learner always gets a
    verdict, never a traceback.
    """
    outcomes = []
    failed = False
    if function is not None and _is_coroutine_function(function) != coroutine:
        what = (
            "it is an `async def`: calling it returned a coroutine, not a result"
            if not coroutine
            else "it is a plain function, not an `async def`"
        )
        first = Failure(what, HINT_NOT_COROUTINE if coroutine else HINT_COROUTINE)
        checks = list(checks)
        return Verdict(
            subject,
            [Outcome(checks[0][0], "fail", first)]
            + [Outcome(title, "skip") for title, _ in checks[1:]],
        )
    for title, check in checks:
        if failed:
            outcomes.append(Outcome(title, "skip"))
            continue
        try:
            check()
        except NotDone:
            return Verdict(subject, [], not_done=True)
        except Failure as failure:
            outcomes.append(Outcome(title, "fail", failure))
            failed = True
        except Exception as exc:  # noqa: BLE001 - the learner gets a verdict, not a traceback
            failure = Failure(
                f"the check could not go on: {describe_exception(exc)}", HINT_UNEXPECTED
            )
            outcomes.append(Outcome(title, "fail", failure))
            failed = True
        else:
            outcomes.append(Outcome(title, "pass"))
    return Verdict(subject, outcomes)


def _is_coroutine_function(function) -> bool:
    return inspect.iscoroutinefunction(function)


# --- describing bytes and exceptions -----------------------------------------------------


def show_bytes(data, limit: int = 48) -> str:
    """``b'hello'``, or for long data ``1048576 bytes (b'abc'...)``; anything that is not
    bytes is described as what it is (``None``, ``str 'hello'``), never an exception."""
    if not isinstance(data, bytes | bytearray | memoryview):
        return describe_value(data)
    data = bytes(data)
    if len(data) <= limit:
        return repr(data)
    return f"{len(data)} bytes ({data[: limit // 2]!r}...)"


def describe_value(value, limit: int = 60) -> str:
    """What a learner's function returned, for a verdict: ``None``, ``str 'abc'``, ..."""
    if value is None:
        return "None"
    if isinstance(value, bytes | bytearray | memoryview):
        return show_bytes(value)
    text = repr(value)
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return f"{type(value).__name__} {text}"


HINT_RETURNED_NONE = (
    "A function without a `return` statement (or one that reaches its end) returns None: "
    "end it with `return` and the result."
)


def returned_none(result, sent: str | None = None) -> None:
    """Raise the "it returned None" failure (a forgotten ``return``) when ``result`` is None."""
    if result is None:
        raise Failure("it returned None", HINT_RETURNED_NONE, sent)


def describe_exception(exc: BaseException) -> str:
    """``ValueError: message`` without anything that varies between runs."""
    text = str(exc).split("\n")[0]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# --- running a learner's client function --------------------------------------------------


@dataclass
class Call:
    finished: bool
    result: object = None
    error: BaseException | None = None
    sent: int = 0  # bytes the attacker had sent when the call ended (call_with_pieces)


def call_bounded(func, *args, timeout: float = CALL_TIMEOUT, on_timeout=None) -> Call:
    """Call ``func(*args)`` in a worker thread; wait at most ``timeout`` seconds.

    ``on_timeout`` (e.g. closing the socket the function reads) runs when the bound is
    hit, so that a function stuck in recv() or spinning on b'' ends instead of lingering.
    A stub's NotImplementedError becomes NotDone.
    """
    call = Call(False)

    def work():
        try:
            call.result = func(*args)
        except BaseException as exc:  # noqa: BLE001 - reported in the verdict
            call.error = exc

    worker = threading.Thread(target=work, name="exercise-call", daemon=True)
    worker.start()
    worker.join(timeout)
    call.finished = not worker.is_alive()
    if not call.finished and on_timeout is not None:
        on_timeout()
        worker.join(1.0)
    if call.finished and isinstance(call.error, NotImplementedError):
        raise NotDone()
    if inspect.iscoroutine(call.result):
        call.result.close()  # never awaited, on purpose: no "never awaited" warning later
        raise Failure(
            "it returned a coroutine (your function is an `async def`), not a result",
            HINT_COROUTINE,
        )
    return call


_READS = {"recv", "recv_into", "recvfrom", "recvfrom_into", "recvmsg", "recvmsg_into"}


class _Overran(BaseException):
    """Raised inside a learner's function that still ran after its sockets were closed."""


def _in_a_c_call(thread: threading.Thread) -> bool:
    """The thread waits inside a C function now (time.sleep, a lock, a C library).

    An exception raised in such a thread cannot land until the call returns, and while
    it waits CPython 3.11 makes every other thread check for it at each step (a check's
    own threads slowed down until verdicts said "did not return"). Python code is
    running when the innermost frame is not at a call: a call of Python code has a frame
    of its own.
    """
    frame = sys._current_frames().get(thread.ident)
    if frame is None:
        return False
    code = frame.f_code.co_code
    return 0 <= frame.f_lasti < len(code) and dis.opname[code[frame.f_lasti]] in _CALLS


_CALLS = frozenset({"CALL", "CALL_FUNCTION", "CALL_FUNCTION_EX", "CALL_METHOD", "PRECALL"})


class WatchedCall:
    """A learner's function, called so that the check sees the sockets it uses.

    While the function runs, its thread's profiler hook (``sys.setprofile`` acts on the
    calling thread only) notes every socket whose methods it calls, and the socket's
    timeout at each read. Nothing else changes: the calls are the socket module's own.
    """

    def __init__(self, func):
        self.func = func
        self.thread: threading.Thread | None = None
        self.sockets: dict[int, socket.socket] = {}  # kept alive: the check closes them
        self.read_timeouts: list[float | None] = []

    def __call__(self, *args):
        self.thread = threading.current_thread()
        previous = sys.getprofile()
        sys.setprofile(self._profile)
        try:
            return self.func(*args)
        finally:
            sys.setprofile(previous)

    def _profile(self, frame, event, arg) -> None:
        if event != "c_call":
            return
        sock = getattr(arg, "__self__", None)
        if isinstance(sock, socket.socket):
            self.sockets[id(sock)] = sock
            if getattr(arg, "__name__", "") in _READS:
                self.read_timeouts.append(sock.gettimeout())

    def end(self, port: int) -> None:
        """The function overran: close its sockets connected to ``port``.

        A shutdown wakes a recv() that waits; after the close, the next recv() of a loop
        that spins on b'' raises OSError, and the loop ends. A function that survives
        even that (it catches every error) is interrupted with an exception.
        """
        for sock in list(self.sockets.values()):
            try:
                connected_here = sock.getpeername()[1] == port
            except (OSError, IndexError, TypeError):
                continue
            if connected_here:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
        thread = self.thread
        if thread is not None and thread.is_alive():
            thread.join(0.5)
        if thread is not None and thread.is_alive() and thread.ident is not None:
            set_async_exc = getattr(
                getattr(ctypes, "pythonapi", None), "PyThreadState_SetAsyncExc", None
            )
            if set_async_exc is not None and not _in_a_c_call(thread):
                set_async_exc(ctypes.c_ulong(thread.ident), ctypes.py_object(_Overran))

    def close_all(self) -> None:
        """Close what the function left open (so Python does not warn about it later)."""
        for sock in self.sockets.values():
            with contextlib.suppress(OSError):
                sock.close()


class WatchedSocket(socket.socket):
    """A real connected socket that counts the bytes its user has received.

    The attacker sends the next piece of a message only once the learner's code has
    read everything before it, so "one byte at a time" really arrives one byte per
    ``recv`` (loopback would otherwise merge small sends).
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.received = 0
        self.read_calls = 0
        self.asked: list[int] = []  # the size of each read the user asked for
        self.waiting_all = False  # in a recv(n, MSG_WAITALL): it returns only with n bytes
        self.changed = threading.Condition()

    def _asking(self, size: int, flags: int) -> None:
        with self.changed:
            self.asked.append(size)
            if flags & getattr(socket, "MSG_WAITALL", 0):
                # Such a read waits for all it asked for: the attacker may send on at once
                # (the only way that the kernel sees "one byte at a time").
                self.waiting_all = True
                self.changed.notify_all()

    def _count(self, n: int) -> None:
        with self.changed:
            self.received += n
            self.read_calls += 1
            self.waiting_all = False
            self.changed.notify_all()

    def recv(self, bufsize, flags=0):
        self._asking(bufsize, flags)
        try:
            data = super().recv(bufsize, flags)
        except BaseException:
            self._count(0)
            raise
        self._count(len(data))
        return data

    def recv_into(self, buffer, nbytes=0, flags=0):
        self._asking(nbytes or len(buffer), flags)
        try:
            n = super().recv_into(buffer, nbytes, flags)
        except BaseException:
            self._count(0)
            raise
        self._count(n)
        return n

    def wait_received(self, total: int, timeout: float) -> bool:
        """Wait until the user has received ``total`` bytes in all (or the bound)."""
        with self.changed:
            return self.changed.wait_for(lambda: self.received >= total, timeout)


@contextlib.contextmanager
def connected_pair():
    """Yield (learner_side, attacker_side): two ends of a real TCP connection on loopback.

    The learner's end is a WatchedSocket in blocking mode; the attacker's has a timeout.
    """
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        listener.settimeout(REPLY_TIMEOUT)
        learner = WatchedSocket(socket.AF_INET, socket.SOCK_STREAM)
        attacker = None
        try:
            learner.settimeout(REPLY_TIMEOUT)
            learner.connect(listener.getsockname())
            learner.settimeout(None)
            attacker = accept_from(listener, learner.getsockname())
            attacker.settimeout(REPLY_TIMEOUT)
            yield learner, attacker
        finally:
            learner.close()
            if attacker is not None:
                attacker.close()


def feed(
    learner: WatchedSocket,
    attacker: socket.socket,
    pieces,
    call_done: threading.Event,
    progress: list | None = None,
):
    """Send ``pieces`` one after another, each only once the learner read all before it
    (or waits in a ``recv(n, MSG_WAITALL)``, which returns only once n bytes are there).
    ``progress[0]`` counts the bytes sent so far, so that a verdict says the truth."""
    total = 0
    for piece in pieces:
        if total:
            with learner.changed:
                learner.changed.wait_for(
                    lambda total=total: (
                        learner.received >= total or learner.waiting_all or call_done.is_set()
                    ),
                    REPLY_TIMEOUT,
                )
            if call_done.is_set():
                return
        attacker.sendall(piece)
        total += len(piece)
        if progress is not None:
            progress[0] = total


def call_with_pieces(
    func, learner, attacker, pieces, *args, close_after=False, timeout: float = CALL_TIMEOUT
) -> Call:
    """Run ``func(learner, *args)`` while the attacker feeds it ``pieces``."""
    done = threading.Event()
    feeder_error = []
    progress = [0]

    def feeder():
        try:
            feed(learner, attacker, pieces, done, progress)
            if close_after:
                # End of stream once everything sent was read (or the function returned).
                total = sum(len(p) for p in pieces)
                with learner.changed:
                    learner.changed.wait_for(
                        lambda: learner.received >= total or learner.waiting_all or done.is_set(),
                        REPLY_TIMEOUT,
                    )
                attacker.shutdown(socket.SHUT_WR)
        except OSError as exc:
            feeder_error.append(exc)

    thread = threading.Thread(target=feeder, name="exercise-feeder", daemon=True)
    thread.start()

    def wrapped(*call_args):
        try:
            return func(*call_args)
        finally:
            done.set()

    def unblock():
        with contextlib.suppress(OSError):
            learner.shutdown(socket.SHUT_RDWR)  # wakes a recv() blocked in another thread
        learner.close()

    try:
        call = call_bounded(wrapped, learner, *args, timeout=timeout, on_timeout=unblock)
    finally:
        done.set()
        thread.join(REPLY_TIMEOUT)
    call.sent = progress[0]
    return call


# --- running a learner's server ------------------------------------------------------------


@contextlib.contextmanager
def serving(server_func, crash_hints=None, args=()):
    """Run the learner's ``server_func(port, *args)`` with netlab for one check; yield the Server.

    Whatever the server prints stays out of the verdict. If the server crashed, the
    check fails with the exception it raised, and ``crash_hints`` (a function from the
    exception to a hint, or None) explains it in the exercise's words.
    """
    name = f"check-{getattr(server_func, '__name__', 'server')}"
    # netlab records a check's server without printing it (announce=False)
    try:
        server = netlab.serve(server_func, *args, port=None, name=name, announce=False)
    except netlab.ServerError as exc:
        cause = exc.__cause__
        if isinstance(cause, NotImplementedError):
            raise NotDone() from None
        if cause is not None:
            raise Failure(
                f"your server raised {describe_exception(cause)} before it was ready for clients",
                _crash_hint(crash_hints, cause)
                or "Read the exception: the server must bind() and listen() first.",
            ) from None
        raise Failure(
            "your server did not start listening",
            "Create the socket, bind(('127.0.0.1', port)) with the port you are given, "
            "and call listen() before accept().",
        ) from None
    failure = None
    try:
        yield server
    except Failure as exc:
        failure = exc
    except OSError as exc:
        failure = Failure(
            f"the connection broke: {describe_exception(exc)}",
            "Your server closed or reset the connection before the conversation was over.",
        )
    finally:
        server.wait_quiet(0.5)
        errors = server.errors
        server.stop()
    reason = server.stop_reason or ""
    if "it printed" in reason and "lines in one go" in reason:  # before: it names b'' too
        raise Failure(
            f"netlab stopped your server: it printed {RUNAWAY_LINES} lines in one go, "
            "without waiting for a client",
            HINT_RUNAWAY,
            failure.sent if failure else None,
        )
    if "recv() returned b''" in reason:
        raise Failure(
            "your server kept calling recv() after the client had closed "
            f"(netlab stopped it: recv() returned b'' {netlab.EOF_SPIN_LIMIT} times in a row)",
            HINT_EOF_SPIN,
            failure.sent if failure else None,
        )
    if errors:
        crash = errors[0]
        if isinstance(crash, NotImplementedError):
            raise NotDone()
        what = f"your server crashed with {describe_exception(crash)}"
        if failure is not None:
            what = f"{failure.what}; {what}"
        hint = _crash_hint(crash_hints, crash) or (
            failure.hint if failure else "Read the exception: your server must keep running."
        )
        raise Failure(what, hint, failure.sent if failure else None)
    if failure is not None:
        raise failure


HINT_RUNAWAY = (
    "A loop printed on every pass without a socket call between: either it never ends "
    "(after the client has closed, recv() returns b'' at once, every time: "
    "`if not data: break`), or it prints for every message: print less."
)

HINT_EOF_SPIN = (
    "Once the client has closed, recv() returns b'' at once, every time: a loop that does "
    "not stop there spins for ever. Check `if not data: break` (compare with b'', not '')."
)


def _crash_hint(crash_hints, exc: BaseException) -> str | None:
    if isinstance(exc, TypeError) and "after * must be an iterable" in str(exc):
        return (
            "threading.Thread(target=..., args=...) takes the arguments as a tuple: "
            "args=(conn,), with the comma. (conn) is just conn, and the thread then fails "
            "to call your function."
        )
    if isinstance(exc, TypeError) and "bytes-like" in str(exc):
        return (
            "Sockets carry bytes, not str: send text.encode() (or a b'...' literal), "
            "and decode what you receive with .decode()."
        )
    if isinstance(exc, TimeoutError) and ".accept(" in _raising_line(exc):
        return (
            "accept() raised TimeoutError: the listening socket has a timeout, so accept() "
            "gives up when no client comes for a while, and the server stops. Give the "
            "timeout to each connection instead (conn.settimeout(...) right after accept()), "
            "or catch the TimeoutError of accept() and accept again."
        )
    specific = crash_hints(exc) if crash_hints else None
    if specific is None and isinstance(exc, NameError):
        return name_error_hint(exc)
    return specific


def _raising_line(exc: BaseException) -> str:
    """The line of the learner's code where ``exc`` came from (the frames of netlab and of
    Python's own library, such as socket.py's accept(), left out)."""
    library = os.path.dirname(socket.__file__)
    frames = [
        frame
        for frame in traceback.extract_tb(exc.__traceback__)
        if "helpers/netlab" not in frame.filename.replace("\\", "/")
        and not frame.filename.startswith(library)
    ]
    return (frames[-1].line or "") if frames else ""


def name_error_hint(exc: NameError) -> str:
    """What a NameError in the learner's code most likely means: a typo (with the name
    meant), another cell's function not run again since a restart, or a missing import."""
    name = getattr(exc, "name", None)
    shown = repr(name) if name else "a name"
    close = _close_name(exc)
    if close is not None:  # a typo: Python 3.12 would say "Did you mean"
        return (
            f"A NameError: your code uses {shown}, which is defined nowhere: did you mean "
            f"{close!r}? Correct the spelling, run your function's cell, then this check."
        )
    if name and not _is_module(name):
        # a function of another cell (an earlier exercise's), not a module
        return (
            f"A NameError: your code uses {shown}, which this kernel does not know. After "
            "a (re)start only the cells you ran are defined: run the cell that defines "
            f"{name} (an earlier exercise's cell, perhaps), then your function's cell, "
            "then this check (or, if it is a misspelling, correct it)."
        )
    return (
        f"A NameError: your code uses {shown}, which this kernel "
        "does not know. Most often that is a module whose import has not run since the "
        "kernel (re)started, not a mistake in your logic: run the notebook's import cell "
        "again, then your function's cell, then this check."
    )


def _close_name(exc: NameError) -> str | None:
    """A name close to the missing one in the frame that raised (``adress`` for ``addr``)."""
    name, tb = getattr(exc, "name", None), exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if not name or tb is None:
        return None
    frame = tb.tb_frame
    # the function's own names first, where typos are (0.6: 'adress' for 'addr'); then,
    # stricter, the notebook's and Python's ('recv_message' is not 'recv_exactly': that
    # one is another cell's function, not run again since a restart)
    # (netlab keeps the names of a crashed server's locals: it let go of their values)
    local = getattr(exc, "netlab_local_names", None) or frame.f_locals
    for known, cutoff in ((local, 0.6), (frame.f_globals, 0.8), (dir(builtins), 0.8)):
        close = difflib.get_close_matches(name, [k for k in known if k != name], 1, cutoff)
        if close:
            return close[0]
    return None


def _is_module(name: str) -> bool:
    """True for a name that can be imported (``selectors``, ``nb04``'s helpers...)."""
    if name in sys.modules or name in getattr(sys, "stdlib_module_names", ()):
        return True
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def still_listens(server) -> bool:
    """Whether the learner's server still has a listening socket on its port.

    On a shared machine a port freed by a server that returned can be taken at once by
    another program's server: a connection to it then reaches a stranger, not the
    learner. The check trusts only what netlab knows of the learner's own sockets.
    """
    for sock in server.sockets:
        try:
            if (
                sock.type == socket.SOCK_STREAM
                and sock.family in (socket.AF_INET, socket.AF_INET6)
                and sock.getsockname()[1] == server.port
                and sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
            ):
                return True
        except OSError:
            continue
    return False


def from_this_process(peer, kind: str = "tcp", toward=None) -> bool:
    """Whether ``peer`` (an address that reached a check's own server) may be the learner's.

    On a shared machine (a JupyterHub on one host shares loopback) a stranger may connect
    to any port, and a check trusts only what the learner's code opened. The kernel's
    socket tables (/proc/net/tcp, /proc/net/udp) name the user that owns each socket, even
    one that its program has closed already: a peer socket of another user is a stranger.
    Where the tables cannot tell (not Linux, or the socket has gone), the peer is trusted
    rather than a learner failed. ``toward``: the address the peer connected to (the
    accepted socket's own), so that only that very connection's row counts.
    """
    owners = _socket_owners(peer, kind, toward)
    return not owners or os.getuid() in owners


# TCP states in /proc/net/tcp whose uid is not a user's: TIME_WAIT (the kernel keeps no
# owner, it shows 0, root) and LISTEN (a server, never the peer of a connection).
_NOT_A_PEER = {"06", "0A"}


def _socket_owners(peer, kind: str, toward=None) -> set[int]:
    """The uids owning a ``kind`` socket bound to ``peer`` (its address or a wildcard),
    connected to ``toward`` when that is given."""
    if not hasattr(os, "getuid"):
        return set()
    try:
        ip = ipaddress.ip_address(peer[0])
    except ValueError:
        return set()
    port = int(peer[1])
    if kind == "tcp":
        owners = _tcp_owners_by_netlink(ip, port, toward)
        if owners is not None:
            return owners
    owners: set[int] = set()
    for suffix in ("", "6"):
        try:
            with open(f"/proc/net/{kind}{suffix}") as table:
                lines = table.readlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 8:
                continue
            address, _, hexport = fields[1].partition(":")
            if int(hexport, 16) != port:
                continue
            if kind == "tcp" and fields[3] in _NOT_A_PEER:
                continue  # another socket on the same port number: not this peer
            if toward is not None and int(fields[2].partition(":")[2], 16) != int(toward[1]):
                continue  # the same local port, connected elsewhere (Linux allows it)
            raw = bytes.fromhex(address)
            # the table writes each 32-bit word of the address in this machine's order
            words = [
                raw[i : i + 4][::-1] if sys.byteorder == "little" else raw[i : i + 4]
                for i in range(0, len(raw), 4)
            ]
            local = ipaddress.ip_address(b"".join(words))
            if isinstance(local, ipaddress.IPv6Address) and local.ipv4_mapped:
                local = local.ipv4_mapped
            if local == ip or local.is_unspecified:
                owners.add(int(fields[7]))
    return owners


def _tcp_owners_by_netlink(ip, port: int, toward=None) -> set[int] | None:
    """``_socket_owners`` for TCP, asked of the kernel for the sockets on ``port`` only
    (netlab's sock_diag query), instead of reading every socket of the machine from
    /proc/net/tcp: on a busy shared host that is tens of thousands of lines per accepted
    connection. None when netlink does not answer (the caller reads /proc then)."""
    rows = _netlink.rows_on_ports({port})
    if rows is None:
        return None
    owners: set[int] = set()
    for row in rows:
        if row.local[1] != port or row.state in ("LISTEN", "TIME_WAIT") or row.uid is None:
            continue  # the other end of a connection to this port, or not a peer
        if toward is not None and row.remote[1] != int(toward[1]):
            continue  # the same local port, connected elsewhere (Linux allows it)
        local = ipaddress.ip_address(row.local[0])
        if isinstance(local, ipaddress.IPv6Address) and local.ipv4_mapped:
            local = local.ipv4_mapped
        if local == ip or local.is_unspecified:
            owners.add(row.uid)
    return owners


def accept_from(listener: socket.socket, address) -> socket.socket:
    """Accept the connection that comes from ``address`` (a socket the check opened);
    any other (a stranger's, on a shared machine) is closed. Bounded by the listener's
    timeout."""
    while True:
        conn, peer = listener.accept()
        if tuple(peer[:2]) == tuple(address[:2]):
            return conn
        conn.close()


def accept_ours(listener: socket.socket):
    """``listener.accept()``, but a connection from another process is closed and skipped
    (see ``from_this_process``). Raises what accept() raises (e.g. TimeoutError)."""
    while True:
        conn, peer = listener.accept()
        if from_this_process(peer, toward=conn.getsockname()):
            return conn, peer
        conn.close()


def connect(server, timeout: float = REPLY_TIMEOUT) -> socket.socket:
    """A client socket connected to the learner's server (with a timeout)."""
    try:
        # Settled first: a server that is returning (one client only) has then closed
        # its listening socket, instead of taking this connection into a backlog that
        # dies with it a moment later.
        server.wait_quiet(timeout, deadlines=False)
        if not still_listens(server):
            raise ConnectionRefusedError  # whoever answers on that port now is not the learner
        return socket.create_connection(("127.0.0.1", server.port), timeout=timeout)
    except ConnectionRefusedError:
        raise Failure(
            "the connection was refused: your server no longer listened",
            "A server serves client after client: put accept() and the conversation in a "
            "`while True:` loop, and do not close the listening socket after one client.",
        ) from None
    except TimeoutError:
        raise Failure(
            "connecting timed out: your server's queue of waiting connections was full",
            "Call listen() once, then accept() clients one after another in a loop.",
        ) from None


def server_side(server, sock: socket.socket) -> socket.socket | None:
    """The learner's end of the connection ``sock`` (the socket its accept() returned).

    netlab remembers every socket a server's threads create (accepted ones included), so
    a check can see what the learner did to the connection, e.g. ``gettimeout()``.
    None when that socket is closed or gone.
    """
    try:
        mine = sock.getsockname()
    except OSError:
        return None
    for candidate in server.sockets:
        try:
            if candidate.fileno() != -1 and candidate.getpeername() == mine:
                return candidate
        except OSError:
            continue  # closed, or a listening socket (no peer)
    return None


def queued(sock, request_name: str) -> int | None:
    """Bytes in ``sock``'s receive queue (FIONREAD) or send queue (TIOCOUTQ), as the
    kernel counts them; None where the ioctl does not exist (Windows) or fails."""
    try:
        import fcntl
        import termios

        request = getattr(termios, request_name)
        raw = fcntl.ioctl(sock.fileno(), request, b"\0\0\0\0")
    except (ImportError, AttributeError, OSError, ValueError):
        return None
    return int.from_bytes(raw, "little" if sys.byteorder == "little" else "big", signed=True)


def read_reply(sock, server, until, limit: int = 64 * 1024 * 1024, timeout=REPLY_TIMEOUT):
    """Read from ``sock`` until ``until(data)`` is true, the peer closes, or a bound.

    Returns (data, how) with how in "done", "eof", "reset", "timeout", "server-gone".
    Waits on the socket itself in short slices so that a server that has crashed
    (netlab knows) ends the wait at once instead of after the whole timeout.
    """
    data = bytearray()
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(sock, selectors.EVENT_READ)
        while not until(data):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return bytes(data), "timeout"
            if not selector.select(min(remaining, 0.1)):
                if server is not None and not server.running:
                    return bytes(data), "server-gone"
                continue
            try:
                chunk = sock.recv(min(1 << 20, limit - len(data)) or 1)
            except ConnectionError:
                return bytes(data), "reset"
            except TimeoutError:
                return bytes(data), "timeout"
            if not chunk:
                return bytes(data), "eof"
            data += chunk
    return bytes(data), "done"


def describe_reply(data, how: str, timeout: float = REPLY_TIMEOUT) -> str:
    """What came back, and how the wait ended, in words: for "the echo was ..."."""
    if how == "done":
        return show_bytes(data)
    if not data:
        return {
            "timeout": f"nothing: no byte came back within {timeout:g} s",
            "eof": "nothing: your server closed the connection without sending a byte",
            "reset": "nothing: the connection was reset (your server's socket closed)",
            "server-gone": "nothing: your server ended before it answered",
        }.get(how, f"nothing ({how})")
    then = {
        "timeout": f"then nothing more within {timeout:g} s",
        "eof": "then your server closed the connection",
        "reset": "then the connection was reset",
        "server-gone": "then your server ended",
    }.get(how, how)
    return f"{show_bytes(data)} ({then})"


def read_to_eof(sock, server, timeout=REPLY_TIMEOUT):
    """Read until the server closes the connection (or a bound); return (data, how)."""
    return read_reply(sock, server, lambda data: False, timeout=timeout)


def abort(sock: socket.socket) -> None:
    """Close with a reset (RST) instead of the polite FIN: a client that vanishes."""
    netlab.reset(sock)


def send_in_background(sock: socket.socket, data: bytes, shut: bool = True) -> threading.Thread:
    """sendall ``data`` in a thread (so the attacker can read replies meanwhile)."""

    def send():
        try:
            sock.sendall(data)
            if shut:
                sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the reader sees what went wrong

    thread = threading.Thread(target=send, name="exercise-sender", daemon=True)
    thread.start()
    return thread


def many_clients(count: int, conversation, timeout: float = 15.0) -> list:
    """Run ``conversation(index)`` for ``count`` clients at once; return their results.

    A result is whatever the conversation returned, or the Failure it raised; clients
    that did not finish within ``timeout`` give a Failure too. Results are in client
    order, so the verdict names the lowest-numbered failing client on every run.
    """
    results: list = [None] * count
    start = threading.Barrier(count, timeout=REPLY_TIMEOUT)

    def run(index):
        try:
            start.wait()
        except threading.BrokenBarrierError:
            pass
        try:
            results[index] = conversation(index)
        except Failure as failure:
            results[index] = failure
        except OSError as exc:
            results[index] = Failure(f"client {index + 1} got {describe_exception(exc)}", "")

    threads = [
        threading.Thread(target=run, args=(i,), name=f"exercise-client-{i}", daemon=True)
        for i in range(count)
    ]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout
    for index, thread in enumerate(threads):
        thread.join(max(0.0, deadline - time.monotonic()))
        if thread.is_alive():
            results[index] = Failure(
                f"client {index + 1} had no complete answer after {timeout:g} s", ""
            )
    return results
