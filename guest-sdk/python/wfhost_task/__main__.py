"""``python -m wfhost_task build MODULE -o OUT``: see :mod:`wfhost_task.build`."""

import sys

from .build import main

if len(sys.argv) > 1 and sys.argv[1] == "build":
    sys.exit(main(sys.argv[2:]))
print("usage: python -m wfhost_task build MODULE [-o OUT] [-p PATH]...", file=sys.stderr)
sys.exit(2)
