"""``python -m parotidlib``: the command line (:mod:`parotidlib.run.cli`)."""

import sys

from parotidlib.run.cli import main

if __name__ == "__main__":
    sys.exit(main())
