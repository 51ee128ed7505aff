"""Exercise checks that attack learner code with real sockets on 127.0.0.1.

    from helpers.exercises import nb03
    nb03.check_recv_exactly(recv_exactly)     # shows a verdict: ✓ and ✗ with hints

One module per notebook (``nb01`` ... ``nb07``) holds its exercises, each a
``check_<name>(function)`` returning a ``Verdict``; ``solutions/`` holds the reference
solutions that the tests run. ``_checker.py`` is the machinery shared by all.
"""

from ._checker import Failure, Verdict, run_checks

__all__ = ["Failure", "Verdict", "run_checks"]
