"""`python -m data`: see data/cli.py."""
import sys

from data.cli import main

sys.exit(main())
