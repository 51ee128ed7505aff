"""Exercise checks of notebooks 05-07 (many clients, UDP, timeouts and errors).

    from helpers.exercises_more import nb07
    nb07.check_read_all(read_all)             # the verdict shows itself

Built on the machinery of ``helpers/exercises/_checker.py`` (verdicts, bounded calls,
netlab-run servers); ``solutions/`` holds the reference solutions the tests check.
"""
