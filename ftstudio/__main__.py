"""`python -m ftstudio` is the same as the `ftstudio` command."""

import sys

from ftstudio.cli import main

if __name__ == "__main__":  # not when a worker process re-imports the main module
    code = main()
    from ftstudio.core.distributed.torchrun import leave_worker, world_size

    if world_size() > 1:  # a torchrun worker: ends without finalization (see leave_worker)
        leave_worker(code)
    sys.exit(code)
