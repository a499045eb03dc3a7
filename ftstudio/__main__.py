"""`python -m ftstudio` is the same as the `ftstudio` command."""

import sys

from ftstudio.cli import main

sys.exit(main())
