"""``python -m splitans``: the command line in ``splitans.cli``."""

import sys

from .cli import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
