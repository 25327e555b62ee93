#!/usr/bin/env python
"""Thin driver: the same as ``python -m icdmin reproduce`` (all options are passed through).

Example: ``python scripts/reproduce.py --quick --out /tmp/icdmin-quick --only fig3,fig5``.
"""

import sys

from icdmin.cli import main

if __name__ == "__main__":
    sys.exit(main(["reproduce", *sys.argv[1:]]))
