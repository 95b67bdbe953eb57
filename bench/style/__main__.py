"""`python -m bench.style` (and `torchrun ... -m bench.style`): the command line of bench/style/cli.py."""
import sys

from bench.style.cli import main

if __name__ == "__main__":
    sys.exit(main())
