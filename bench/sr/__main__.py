"""`python -m bench.sr` (and `torchrun ... -m bench.sr`): the command line of bench/sr/cli.py."""
import sys

from bench.sr.cli import main

if __name__ == "__main__":
    sys.exit(main())
