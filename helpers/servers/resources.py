"""What a server does when the system runs out of file descriptors.

Every connection is a file descriptor, and a process may have only so many
(``ulimit -n``: often 1,024). When they are all in use, ``accept()`` raises
``OSError: [Errno 24] Too many open files`` (EMFILE; ENFILE when the whole system is
out). That is not a bug in the server and must not end it: the client waits in the
listen backlog, and as soon as another client leaves, a descriptor is free again.

The rule: log it once (not once per attempt: that would be thousands of lines), stop
accepting for ``ACCEPT_PAUSE`` seconds (retrying at once would spin at 100 % CPU,
because the listening socket stays readable), then try again.
"""

import errno
import logging

ACCEPT_PAUSE = 0.1  # seconds without accept() after it failed for lack of resources
OUT_OF_RESOURCES = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})

log = logging.getLogger("helpers.servers")


class AcceptGuard:
    """Counts failed ``accept()`` calls; logs the first of each episode and its end.

    >>> guard = AcceptGuard("selector")
    >>> guard.failed(OSError(errno.EMFILE, "Too many open files"))  # pause, then retry
    True
    """

    def __init__(self, name: str, pause: float = ACCEPT_PAUSE):
        self.name = name
        self.pause = pause  # what the caller waits before it tries again (for the log)
        self.failures = 0  # failed accept() calls in the current episode

    def failed(self, exc: OSError) -> bool:
        """True if ``exc`` means "out of descriptors or memory": pause, then retry.
        False for any other error, which the caller should raise."""
        if exc.errno not in OUT_OF_RESOURCES:
            return False
        if self.failures == 0:
            log.warning(
                "%s: accept() failed: %s; pausing accept() %.1f s at a time until a "
                "descriptor is free (clients wait in the backlog meanwhile)",
                self.name,
                exc.strerror or exc,
                self.pause,
            )
        self.failures += 1
        return True

    def accepted(self) -> None:
        """An accept() worked: if an episode of failures is over, say so once."""
        if self.failures:
            log.warning(
                "%s: accepting again (%d accept() calls had failed)", self.name, self.failures
            )
            self.failures = 0
