"""Entry point of the frozen app: the same as the `ftstudio` command."""

import multiprocessing
import sys

from ftstudio.cli import main

if __name__ == "__main__":
    multiprocessing.freeze_support()  # DataLoader workers re-enter this executable
    sys.exit(main())
