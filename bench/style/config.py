"""What defines a style run: its settings, the command line that makes them, and the constants of Sec. 4.1.

`StyleSettings.values` holds the profile's values after command-line overrides (bench.run.profiles.with_overrides);
`identity()` is what must be equal for `--resume` to continue a run in the same folder.
"""
from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from baselines.gatys import Init
from bench.run.errors import ArgumentError
from bench.run.options import add_progress_option, add_run_options, positive_int, run_option_values
from bench.run.profiles import (
    STYLE_CONTENT_LAYERS,
    STYLE_PROFILES,
    StyleProfile,
    check_profile,
    default_content_layer,
    default_profile,
    default_variant,
    setup_note,
    with_overrides,
)
from bench.style.measures import PAPER_TV_RANGE, TV_CRITERION, TV_PAPER_TO_OURS, TV_TOLERANCE, tv_candidates
from data.catalog import DEFAULT_TRAIN_CORPUS as CATALOG_TRAIN_CORPUS
from data.files import plain
from data.style_data import CROPS
from perceptual.losses import LossWeights
from perceptual.nets import Variant

TASK = "style"
STAGES = ("train", "fig5", "table1", "outputs", "report")
DEFAULT_STYLES = ("la_muse",)
DEFAULT_TRAIN_CORPUS = "+".join(CATALOG_TRAIN_CORPUS)  # data.catalog holds the one default (train splits only)
DEFAULT_EVAL_SET = "coco_val2017"
DEFAULT_CONTENT_SET = "content"
# The default loss weights were calibrated with content at relu2_2 (perceptual.losses.LossWeights); measured with
# the ImageNet VGG-16 at 256 px on four content photos (chicago, amber, golden_gate, tubingen), the content term keeps
# its order of magnitude at relu3_3, so the same weights are kept.
CONTENT_RELU3_3_NOTE = ("content/style weights were calibrated with content at relu2_2; at relu3_3 the content term "
                        "keeps its order of magnitude (a flat gray image vs the photo: 10-14 at relu3_3, 4-6 at "
                        "relu2_2; the Muse resized vs the photo: 33-36 and 17-19), so the same weights are used")


@dataclass
class StyleSettings:
    """A run's resolved configuration (profile values plus command-line overrides)."""

    profile: str
    styles: list[str]
    sizes: tuple[int, ...]
    out: Path
    variant: Variant
    seed: int
    device: str
    weights: LossWeights
    values: StyleProfile  # the profile's values after command-line overrides
    train_corpus: str = DEFAULT_TRAIN_CORPUS
    eval_set: str = DEFAULT_EVAL_SET
    content_set: str = DEFAULT_CONTENT_SET
    crop: Literal["center", "random"] = "center"
    style_size: int | None = None
    gatys_init: Init = "noise"
    tv_search: bool = False
    content_layer: str = "relu2_2"
    vgg_weights: Literal["imagenet", "random"] = "imagenet"
    stages: tuple[str, ...] = STAGES
    num_workers: int | None = None  # None: bench.training.loading.default_workers (0 on CPU, workers on CUDA)
    resume: bool = False
    overwrite: bool = False
    argv: tuple[str, ...] | None = None  # the arguments main() parsed (run.json's command line); not identity
    tv_weight_given: bool = False  # --tv-weight was on the command line (run.json's tv_choice says so); not identity
    path: str = "fast"  # --path (bench.training.exec_path); not identity: training checkpoints check their compute dtype
    compile: bool | str | None = "auto"  # --compile auto/on/off (bench.training.compile_policy; None/True/False: auto/on/off)
    progress: bool = True  # progress bars (--no-progress: off); not identity

    def identity(self) -> dict[str, Any]:
        """What must match for --resume to continue a run."""
        return {"profile": self.profile, "variant": self.variant, "seed": self.seed,
                "weights": self.weights.as_dict(), "profile_values": plain(asdict(self.values)),
                "train_corpus": self.train_corpus, "crop": self.crop, "style_size": self.style_size,
                "vgg_weights": self.vgg_weights, "gatys_init": self.gatys_init, "tv_search": self.tv_search,
                "content_layer": self.content_layer}

    def card_notes(self, tv_chosen: dict[str, float]) -> list[str]:
        """run.json's `notes` (the report's run card): the protocol choices a reader must know."""
        cfg = self
        return [
            "Gatys: L-BFGS (no line search, unit step) from white noise; one iteration = one VGG-16 forward+backward",
            "network objective evaluated on its output clamped to [0, 1]",
            "Fig. 5 and Table 1 use the first style; images are centre square crops of the held-out set",
            setup_note(cfg.profile, cfg.variant, cfg.content_layer),
            f"content loss at VGG-16 {cfg.content_layer} for the network and for Gatys (one objective)",
            *([CONTENT_RELU3_3_NOTE] if cfg.content_layer == "relu3_3" else []),
            self.tv_choice(tv_chosen)["note"],
        ]

    def tv_choice(self, tv_chosen: dict[str, float]) -> dict[str, Any]:
        """run.json's `tv_choice`: how the TV weight was set (searched per style, or fixed) and, once searched, what
        each style got (`tv_chosen`)."""
        cfg = self
        if not cfg.tv_search:
            why = ("--tv-weight" if cfg.tv_weight_given else
                   f"the default (the {cfg.profile} profile does not search; --tv-search turns the search on)")
            return {"mode": "fixed", "weight": cfg.weights.tv, "set_by": why,
                    "note": f"TV weight fixed at {cfg.weights.tv:g} (our units) by {why}"}
        return {"mode": "search", "candidates_paper_units": list(PAPER_TV_RANGE), "candidates": tv_candidates(),
                "mapping": f"paper value x {TV_PAPER_TO_OURS:g} (bench.style.measures.tv_candidates: the paper's TV sums "
                           f"squared 0..255 differences, ours averages [0, 1] ones; an order-of-magnitude map)",
                "criterion": TV_CRITERION,
                "iterations_per_candidate": cfg.values.tv_search_iterations,
                "n_validation_images": cfg.values.n_val_images,
                "chosen": dict(tv_chosen),
                "note": f"TV weight searched per style over {', '.join(f'{v:g}' for v in PAPER_TV_RANGE)} (paper "
                        f"units) = {', '.join(f'{v:g}' for v in tv_candidates())} (ours), "
                        f"{cfg.values.tv_search_iterations} iterations each; kept: the largest whose content + style "
                        f"objective on {cfg.values.n_val_images} held-out images is within {TV_TOLERANCE:.0%} of the "
                        f"best"}


def image_size(text: str) -> int:
    """An image side the transform network maps to itself: positive and a multiple of 4 (it halves twice)."""
    v = positive_int(text)
    if v % 4:
        raise argparse.ArgumentTypeError(f"{v} is not a multiple of 4 (the transform network halves twice); "
                                         f"use e.g. {v + 4 - v % 4}")
    return v


def profile_table() -> str:
    """STYLE_PROFILES as a plain-text table (for --help; docs/profiles.md has the same table, checked by a test)."""
    cols = ("train_size", "batch_size", "iterations", "max_train_images", "sizes", "n_images", "gatys_iterations",
            "output_size", "n_outputs", "output_gatys_iterations")
    lines = ["  " + "profile".ljust(8) + " ".join(c.ljust(12) for c in cols)]
    for name, prof in STYLE_PROFILES.items():
        vals = [" ".join(map(str, v)) if isinstance(v, tuple) else ("all" if v is None else str(v))
                for v in (getattr(prof, c) for c in cols)]
        lines.append("  " + name.ljust(8) + " ".join(v.ljust(12) for v in vals))
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="reproduce-style", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Reproduce the paper's style-transfer results: train transform networks, run the Gatys L-BFGS "
                    "baseline on the same objective, and write Fig. 5, Table 1 and stylised outputs.",
        epilog="profiles (override any value with the options above):\n" + profile_table() + "\n\n"
               "subcommands (each has its own --help):\n"
               "  python -m bench.style evaluate --model SPEC --styles STYLE --name NAME --out RUN\n"
               "      score your own stylizer on the paper's objective (Fig. 5) and its speed (Table 1)\n"
               "  python -m bench.style stylize --checkpoint CKPT --out DIR IMAGES...\n"
               "      apply a trained transform network of a run to your images")
    add_run_options(
        p, task=TASK, profiles=tuple(STYLE_PROFILES),
        profile_help="smoke (CI, seconds), quick (CPU, ~30 min), paper (the protocol, CUDA), trend-128 (one "
                     "training at 128 px, Fig. 5 at 250-4000 iterations; CPU, ~45 min). Default: paper with CUDA, else "
                     "quick",
        variant_help="transform network: common (instance norm, upsample+conv) or paper (batch norm, transposed "
                     "convs). Default: paper in the paper profile, common in smoke/quick",
        iterations_help="training iterations per style (paper: 40000)", batch_help="batch size (paper: 4)",
        lr_help="learning rate (paper: 1e-3)",
        workers_help="data-loading worker processes (0: in process; default 0 on CPU, up to 4 on CUDA)")
    add_progress_option(p)
    p.add_argument("--styles", nargs="+", default=list(DEFAULT_STYLES),
                   help="style images: catalog names (la_muse, starry_night_crop, composition_vii, wave_crop, candy, "
                        "...) or image paths. Fig. 5 and Table 1 use the first. Default: la_muse (The Muse)")
    p.add_argument("--sizes", nargs="+", type=image_size, default=None,
                   help="Fig. 5 / Table 1 image sizes (multiples of 4). Default per profile (paper: 256 512 1024)")
    p.add_argument("--content-layer", choices=STYLE_CONTENT_LAYERS, default=None,
                   help="VGG-16 layer of the content (feature reconstruction) loss, for the network and Gatys alike: "
                        "relu3_3 (the ECCV text) or relu2_2 (arXiv v1). Default: relu3_3 in the paper profile, "
                        "relu2_2 in smoke/quick (as their committed runs)")
    p.add_argument("--gatys-iterations", type=positive_int, default=None,
                   help="L-BFGS iterations per Fig. 5 image (paper: 500)")
    p.add_argument("--n-images", type=positive_int, default=None,
                   help="held-out images for Fig. 5 (paper: 50)")
    p.add_argument("--train-corpus", default=DEFAULT_TRAIN_CORPUS,
                   help=f"training images: catalog name(s) joined by + or a folder (e.g. COCO train2014). "
                        f"Default {DEFAULT_TRAIN_CORPUS}")
    p.add_argument("--eval-set", default=DEFAULT_EVAL_SET, help=f"Fig. 5 images (default {DEFAULT_EVAL_SET})")
    p.add_argument("--content-set", default=DEFAULT_CONTENT_SET,
                   help="photos the styles are applied to for the report (default: the catalog's `content`)")
    p.add_argument("--train-size", type=image_size, default=None, help="training crop size (paper: 256)")
    p.add_argument("--crop", choices=CROPS, default="center", help="training crop: center (default) or random")
    p.add_argument("--style-size", type=positive_int, default=None,
                   help="shorter side of the style image for its Gram targets (default: the training size)")
    d = LossWeights()
    p.add_argument("--content-weight", type=float, default=d.content, help=f"lambda_c (default {d.content:g})")
    p.add_argument("--style-weight", type=float, default=d.style, help=f"lambda_s (default {d.style:g})")
    p.add_argument("--tv-weight", type=float, default=None,
                   help=f"lambda_TV, fixed by hand (turns the TV search off; default {d.tv:g} where no search runs)")
    p.add_argument("--tv-search", action=argparse.BooleanOptionalAction, default=None,
                   help="the paper's per-style TV search: one shortened training per value of [1e-6, 1e-5, 1e-4] "
                        "(paper units, x 2e6 in ours), keep the largest within 5%% of the best validation "
                        "objective. Default: on in the paper profile, off in smoke/quick")
    p.add_argument("--gatys-init", choices=("noise", "content"), default="noise",
                   help="Gatys start image (paper's Fig. 5: noise)")
    p.add_argument("--stages", nargs="+", default=list(STAGES), choices=STAGES, help="stages to run (default: all)")
    p.add_argument("--trend", nargs="+", type=positive_int, default=None, metavar="ITERATIONS",
                   help="train the first style's network once, to the longest of these lengths, and measure Fig. 5 "
                        "(network objective, L-BFGS iterations to match) at each length as the training goes on, "
                        "into trend.csv (the L-BFGS curve is computed once; resumable). Default: the profile's "
                        "(trend-128: 250 500 1000 2000 4000; others: off)")
    return p


def settings_from_args(args: argparse.Namespace, argv: Sequence[str] | None = None) -> StyleSettings:
    """The run's settings from parsed arguments (argv: the raw arguments, recorded in run.json)."""
    profile = args.profile or default_profile()
    base = STYLE_PROFILES[profile if profile in STYLE_PROFILES else check_profile(profile)]
    trend = base.trend if args.trend is None else tuple(sorted(set(args.trend)))
    iterations = args.iterations
    if trend:
        if args.iterations is not None and args.iterations != max(trend):
            raise ArgumentError(f"--iterations {args.iterations} and --trend {' '.join(map(str, trend))}: the trend "
                                f"trains to its longest length ({max(trend)}); give one of them")
        iterations = max(trend)
    values = with_overrides(base, iterations=iterations, gatys_iterations=args.gatys_iterations,
                            n_images=args.n_images, train_size=args.train_size, batch_size=args.batch_size,
                            lr=args.lr, trend=trend)
    run_values = run_option_values(args, argv)  # --device checked first, as before
    if args.tv_weight is not None and not (math.isfinite(args.tv_weight) and args.tv_weight >= 0):
        raise ArgumentError(f"--tv-weight must be a non-negative number, got {args.tv_weight}")
    if args.tv_search and args.tv_weight is not None:
        raise ArgumentError(f"--tv-weight {args.tv_weight:g} fixes the TV weight and --tv-search chooses it: give "
                            f"one of them")
    tv_search = args.tv_search if args.tv_search is not None else (profile == "paper" and args.tv_weight is None)
    d = LossWeights()
    tv = d.tv if args.tv_weight is None else args.tv_weight
    return StyleSettings(
        profile=profile, styles=list(args.styles), sizes=tuple(args.sizes or base.sizes),
        out=args.out or Path("runs") / TASK / profile, variant=args.variant or default_variant(profile),
        content_layer=args.content_layer or default_content_layer(profile),
        weights=LossWeights(content=args.content_weight, style=args.style_weight, tv=tv), values=values,
        train_corpus=args.train_corpus, eval_set=args.eval_set, content_set=args.content_set, crop=args.crop,
        style_size=args.style_size, gatys_init=args.gatys_init, tv_search=tv_search,
        tv_weight_given=args.tv_weight is not None, stages=tuple(args.stages), progress=not args.no_progress,
        **run_values)
