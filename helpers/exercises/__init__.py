"""Exercise checks that attack learner code with real sockets on 127.0.0.1.

    from helpers.exercises import nb03
    nb03.check_recv_exactly(recv_exactly)     # shows a verdict: ✓ and ✗ with hints

One module per notebook (``nb01`` ... ``nb13``) holds its exercises, each a
``check_<name>(function)`` returning a ``Verdict``; in nb01-nb09 and nb13, a few lines
that build the checks from the exercise's table of cases (module-level, run by an engine
per kind of case);
``solutions/`` holds the reference solutions that the tests run. ``_checker.py`` is the
machinery shared by all.
"""

from ._checker import Failure, Verdict, run_checks

__all__ = ["Failure", "Verdict", "run_checks"]
