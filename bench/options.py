"""The command-line options both harnesses share, declared once, and the argparse types that parse numbers.

Each option means the same in `python -m bench.sr` and `python -m bench.style`; a harness passes only the words
that differ (its profile names, its default folder, what its variant and iterations are). argparse prefixes a type's
message with "argument --option:", so every refused value names its option.
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path

from bench.compile_policy import COMPILE_MODES
from bench.steps import PATHS
from perceptual.nets import VARIANTS

DEFAULT_ESTIMATE_STEPS = 2  # --estimate-steps: training steps timed per network by a dry run


def positive_int(text: str) -> int:
    """An integer >= 1 (iterations, batch sizes, image sizes)."""
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def non_negative_int(text: str) -> int:
    """An integer >= 0 (worker counts, image counts where 0 means none)."""
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def positive_float(text: str) -> float:
    """A finite number > 0 (learning rates, loss weights)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None


def add_run_options(parser: argparse.ArgumentParser, *, task: str, profiles: tuple[str, ...], profile_help: str,
                    variant_help: str, iterations_help: str, batch_help: str, lr_help: str,
                    workers_help: str) -> None:
    """--profile --out --variant --seed --device --iterations --batch-size --lr --vgg-weights --num-workers
    --resume/--overwrite, the dry run (bench.plan) and the execution path (bench.fastpath)."""
    from bench.profiles import default_device

    parser.add_argument("--profile", choices=profiles, default=None, help=profile_help)
    parser.add_argument("--out", type=Path, default=None,
                        help=f"run folder (default: runs/{task}/<profile>); a folder holding a different run is "
                             f"refused")
    parser.add_argument("--variant", choices=VARIANTS, default=None, help=variant_help)
    parser.add_argument("--seed", type=int, default=0,
                        help="seed for initialisation, data order and sampling (default 0)")
    parser.add_argument("--seeds", type=int, nargs="+", default=None, metavar="SEED",
                        help="run the profile once per seed into OUT/seeds/seed-<k>/ and write mean and spread per "
                             "value (OUT/seeds.csv; results.csv holds the means); needs --out")
    parser.add_argument("--device", default=None, help=f"torch device: cpu, cuda, cuda:1, ... (default: "
                                                       f"{default_device()} here)")
    parser.add_argument("--iterations", type=positive_int, default=None, help=iterations_help)
    parser.add_argument("--batch-size", type=positive_int, default=None,
                        help=f"{batch_help}: the GLOBAL batch (under torchrun each of N ranks takes batch / N; must "
                             f"divide)")
    parser.add_argument("--lr", type=positive_float, default=None,
                        help=f"{lr_help} (Adam; not scaled with the number of ranks)")
    parser.add_argument("--vgg-weights", choices=("imagenet", "random"), default="imagenet",
                        help="loss network weights; `random` only for tests of the mechanics")
    parser.add_argument("--num-workers", type=non_negative_int, default=None, help=workers_help)
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--resume", action="store_true",
                       help="continue the run already in --out (same settings; trainings resume from their "
                            "checkpoints, finished stages are kept)")
    group.add_argument("--overwrite", action="store_true",
                       help="delete the run already in --out (its own files only) and start over")
    add_dry_run_options(parser)
    add_path_arguments(parser)


def add_dry_run_options(parser: argparse.ArgumentParser) -> None:
    """--dry-run and --estimate-steps, the same on both harnesses."""
    parser.add_argument("--dry-run", action="store_true",
                        help="resolve and print the full plan (setup, schedule, corpora, evaluation, claims, "
                             "estimated wall time) and exit 0 without creating or writing anything")
    parser.add_argument("--estimate-steps", type=non_negative_int, default=DEFAULT_ESTIMATE_STEPS,
                        help=f"with --dry-run: training steps timed per network (after one warm-up) for the "
                             f"wall-time estimate; 0 skips the timing (default {DEFAULT_ESTIMATE_STEPS})")


def add_path_arguments(parser: argparse.ArgumentParser) -> None:
    """--path and --compile, with the same help in both harnesses."""
    parser.add_argument("--path", choices=PATHS, default="fast",
                        help="execution path: fast (perceptual.fast with the device's best config; on a CPU the "
                             "same arithmetic as reference) or reference (plain eager fp32). Default fast")
    parser.add_argument("--compile", nargs="?", const="on", default="auto", choices=COMPILE_MODES,
                        help="torch.compile the fast path's training steps and forward passes: auto (default) "
                             "compiles a training or a forward use when its planned steps or images pass the "
                             "measured break-even on this device (CPU: SR ~40 steps at 4 x 288 px, more for smaller "
                             "patches; docs/training.md), never for the smoke profile; run.json records each "
                             "decision and why. `--compile` alone = on")
    parser.add_argument("--no-compile", dest="compile", action="store_const", const="off",
                        help="never compile (= --compile off)")
