"""The command-line options both harnesses share, declared once, and the argparse types that parse numbers.

Each option means the same in `python -m bench.sr` and `python -m bench.style`; a harness passes only the words
that differ (its profile names, its default folder, what its variant and iterations are). argparse prefixes a type's
message with "argument --option:", so every refused value names its option.
"""
from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from bench.run.errors import ArgumentError
from bench.run.profiles import LPIPS_NETS, default_device
from bench.training.compile_policy import COMPILE_MODES
from bench.training.steps import PATHS
from data.eval_protocol import EVAL_PROTOCOLS
from perceptual.nets import VARIANTS

DEFAULT_ESTIMATE_STEPS = 2  # --estimate-steps: training steps timed per network by a dry run
ALL_IMAGES = 2**31 - 1  # --save-images given without a number: every image


def add_device_option(parser: argparse.ArgumentParser, *, what: str = "", **overrides: Any) -> None:
    """--device, declared here for every parser of the package (harnesses, evaluate, apply, GPU tools); `what` says
    what runs on it; `overrides` (required=True, choices=..., help=...) narrow it for the GPU tools, which check
    the device themselves (a missing GPU is a result they report)."""
    help_text = (f"torch device{' for ' + what if what else ''}: cpu, cuda, cuda:1, ... (default: "
                 f"{default_device()} here)")
    parser.add_argument("--device", **({"default": None, "help": help_text} | overrides))


def device_of(args: argparse.Namespace) -> str:
    """The device a parsed command runs on, checked once: --device (torch can parse it and, for CUDA, a GPU is
    there; ArgumentError naming the option and the fix otherwise) or default_device()."""
    if args.device is None:
        return default_device()
    try:
        dev = torch.device(args.device)
    except RuntimeError as e:
        raise ArgumentError(f"--device {args.device!r} is not a torch device ({e}); use cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ArgumentError(f"--device {args.device}: CUDA is not available here; use --device cpu")
    return args.device


def add_lpips_options(parser: argparse.ArgumentParser, *, default_help: str) -> None:
    """--lpips NET... and --no-lpips, the same in the harness and in `evaluate`."""
    parser.add_argument("--lpips", nargs="+", choices=LPIPS_NETS, default=None, metavar="NET",
                        help=f"LPIPS networks to score with: vgg alex (default: {default_help})")
    parser.add_argument("--no-lpips", action="store_true", help="skip LPIPS (slow on a CPU); run.json records it")


def lpips_of(args: argparse.Namespace, default: tuple[str, ...]) -> tuple[str, ...]:
    """The LPIPS networks a parsed command scores with: none with --no-lpips, else --lpips or `default`."""
    if args.no_lpips:
        return ()
    return tuple(args.lpips) if args.lpips is not None else tuple(default)


def add_save_images_option(parser: argparse.ArgumentParser, *, where: str, default_help: str) -> None:
    """--save-images [N]: N images per dataset and scale are saved (`where`); without N every image."""
    parser.add_argument("--save-images", type=non_negative_int, nargs="?", const=ALL_IMAGES, default=None,
                        metavar="N", help=f"images per dataset and scale saved {where} (default: {default_help}; "
                                          f"--save-images alone: every image)")


def add_eval_protocol_option(parser: argparse.ArgumentParser, default: str | None = "standard",
                             default_help: str = "standard") -> None:
    """--eval-protocol, the same in the SR harness (default: its profile's) and in `bench.sr evaluate`."""
    parser.add_argument("--eval-protocol", choices=EVAL_PROTOCOLS, default=default,
                        help="how test HR/LR pairs are made: 'standard' (MATLAB bicubic, what later papers use) or "
                             "'johnson2016' (the paper's own x8 LR recipe; x4 stays standard); see "
                             "docs/x8-protocol.md. Outputs scored with `evaluate --outputs` must come from the LR "
                             f"images of the same protocol (default: {default_help})")


def add_output_options(parser: argparse.ArgumentParser) -> None:
    """--skip-unreadable, --no-report, --no-progress: the same in the harness and in `evaluate`."""
    parser.add_argument("--skip-unreadable", action="store_true",
                        help="score the readable images of each --datasets set and skip unreadable/too-small ones "
                             "(listed in the log, run.json and the report; means are then over N of M images)")
    parser.add_argument("--no-report", action="store_true", help="do not build the HTML report")
    add_progress_option(parser)


def add_progress_option(parser: argparse.ArgumentParser) -> None:
    """--no-progress, the same in every harness and in `evaluate`."""
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


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
    --resume/--overwrite, the dry run (bench.run.plan) and the execution path (bench.training.exec_path)."""
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
    add_device_option(parser)
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


def run_option_values(args: argparse.Namespace, argv: Sequence[str] | None) -> dict[str, Any]:
    """The configuration fields add_run_options gives both harnesses, by their field names in SRRunConfig and
    StyleSettings (--device checked by device_of; argv: the raw arguments run.json records)."""
    return {"seed": args.seed, "device": device_of(args), "vgg_weights": args.vgg_weights,
            "num_workers": args.num_workers, "resume": args.resume, "overwrite": args.overwrite,
            "argv": None if argv is None else tuple(argv), "path": args.path, "compile": args.compile}


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
