"""``python -m icdmin``: see :mod:`icdmin.cli`."""

import signal

from .cli import main

rc = main()
if rc == 130:  # interrupted, partial results already written: a further Ctrl-C must not break the exit itself
    signal.signal(signal.SIGINT, signal.SIG_IGN)
raise SystemExit(rc)
