"""``python -m icdmin``: see :mod:`icdmin.cli`."""

from .cli import main

raise SystemExit(main())
