"""`python -m ftstudio` is the same as the `ftstudio` command."""

import sys

from ftstudio.cli import main

if __name__ == "__main__":  # not when a worker process re-imports the main module
    sys.exit(main())
