"""The `python -m bench.style` command line: the style-transfer harness, or the subcommand a user names first.

`evaluate` scores a user's stylizer on Fig. 5 and Table 1 (bench/style/evaluate.py); `stylize` applies
a trained transform network to a user's images (bench/tools/apply.py).
Anything else runs the harness (bench/style/harness.py). The dispatch lives here, above the harness and the
tools built on it, so that neither imports the other back.
"""
from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

from bench.style.evaluate import evaluate_main
from bench.style.harness import main as harness_main
from bench.tools.apply import stylize_main

__all__ = ["SUBCOMMANDS", "main"]

SUBCOMMANDS: dict[str, Callable[[Sequence[str]], int]] = {"evaluate": evaluate_main, "stylize": stylize_main}


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m bench.style [evaluate|stylize] ARGS`: the subcommand's exit status, or the harness's."""
    given = list(sys.argv[1:] if argv is None else argv)
    if given and given[0] in SUBCOMMANDS:
        return SUBCOMMANDS[given[0]](given[1:])
    return harness_main(None if argv is None else given)
