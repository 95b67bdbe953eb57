"""What defines an SR run: its configuration, the command line that makes it, and what run.json says about it.

`SRRunConfig.profile` holds the values the run uses (the profile after command-line overrides, bench.run.profiles), and
`identity()` is what must be equal for `--resume` to continue a run in the same folder.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from bench.run.options import (
    add_eval_protocol_option,
    add_lpips_options,
    add_output_options,
    add_run_options,
    add_save_images_option,
    lpips_of,
    non_negative_int,
    positive_int,
    run_option_values,
)
from bench.run.profiles import (
    FEAT_LAYER,
    HISTMATCH_NOTE,
    METHODS,
    PAPER_CORPUS,
    SR_PROFILES,
    SRProfile,
    check_profile,
    default_profile,
    default_variant,
    setup_note,
    with_overrides,
)
from bench.training.loading import default_workers  # CUDA: workers by default; CPU: the profile's number
from data.catalog import DEFAULT_TRAIN_CORPUS, SRCNN_TRAIN_CORPUS
from data.eval_protocol import DESCRIPTIONS, EVAL_PROTOCOLS
from perceptual.nets import Variant
from reports.results import CURVE_FILE

TASK = "sr"
SCALES = (4, 8)
CURVE_DATASET = "Set5"  # --curve-every scores this set (small: 5 images)
DEFAULT_CORPUS = "+".join(DEFAULT_TRAIN_CORPUS)  # data.catalog holds the one default (train splits only)
DEFAULT_SRCNN_CORPUS = "+".join(SRCNN_TRAIN_CORPUS)  # the default corpus + t91


@dataclass(frozen=True)
class SRRunConfig:
    """Everything that defines an SR run; `profile` holds the values it uses (overrides applied)."""

    profile: SRProfile
    scales: tuple[int, ...]
    methods: tuple[str, ...]
    datasets: tuple[str, ...]
    corpus: str
    srcnn_corpus: str
    out: Path
    variant: Variant = "common"
    seed: int = 0
    device: str = "cpu"
    tv_weight: float = 0.0
    vgg_weights: Literal["imagenet", "random"] = "imagenet"  # "random" only for tests of the mechanics
    eval_protocol: str = "standard"  # data.eval_protocol.EVAL_PROTOCOLS
    also_protocols: tuple[str, ...] = ()  # scored too, each into out/protocol-<name>/ (not identity: evaluation only)
    lpips: tuple[str, ...] = ()
    save_images: int = 0
    skip_unreadable: bool = False  # score the readable images of a --datasets set; the rest listed, means "over N of M"
    num_workers: int | None = None
    resume: bool = False
    overwrite: bool = False
    report: bool = True
    progress: bool = True
    argv: tuple[str, ...] | None = None  # the arguments main() parsed (run.json's command line); not identity
    path: str = "fast"  # --path (bench.training.exec_path); not identity: training checkpoints check their compute dtype
    compile: bool | str | None = "auto"  # --compile auto/on/off (bench.training.compile_policy; None/True/False: auto/on/off)

    @property
    def workers(self) -> int:
        return default_workers(self.device, self.num_workers, self.profile.num_workers)

    def identity(self) -> dict[str, Any]:
        """What must be equal for --resume to continue a run in the same folder (JSON-normalised)."""
        p = self.profile
        ident = {
            "task": TASK, "profile": p.name, "scales": list(self.scales), "methods": list(self.methods),
            "datasets": list(self.datasets), "variant": self.variant, "seed": self.seed,
            "iterations": p.iterations if self.needs("pixel", "feat") else None,
            "batch_size": p.batch_size, "patch_size": p.patch_size, "lr": p.lr,
            "tv_weight": self.tv_weight, "vgg_weights": self.vgg_weights if self.needs("feat") else None,
            "corpus": self.corpus if self.needs("pixel", "feat") else None,
            "srcnn_iterations": p.srcnn_iterations if self.needs("srcnn") else None,
            "srcnn_corpus": self.srcnn_corpus if self.needs("srcnn") else None,
        }
        if self.eval_protocol != "standard":  # absent = standard, so runs made before the option still resume
            ident["eval_protocol"] = self.eval_protocol
        return json.loads(json.dumps(ident))

    def needs(self, *methods: str) -> bool:
        return any(m in self.methods for m in methods)

    def describe(self) -> dict[str, Any]:
        """run.json's account of the run's protocol: methods, losses, training and evaluation settings."""
        p = self.profile
        return {
            "task": TASK,
            "status": "running",
            "identity": self.identity(),
            "eval_protocol": self.eval_protocol,
            "profile_settings": dataclasses.asdict(p),
            "scales": list(self.scales),
            "methods": [n for m in self.methods for n in METHODS[m]],
            "variant": self.variant,
            **({"caveat": p.caveat} if p.caveat else {}),
            "notes": [setup_note(p.name, self.variant), f"l_feat at VGG-16 {FEAT_LAYER}, as the paper",
                      f"histogram matching (the _histmatch rows): {HISTMATCH_NOTE}"],
            "lpips": {"requested": list(self.lpips), "ran": []},
            "loss_network": {"net": "vgg16", "weights": self.vgg_weights, "layer": FEAT_LAYER},
            "loss_weights": {"johnson_feat": {f"feat_{FEAT_LAYER}": 1.0, "tv": self.tv_weight},
                             "johnson_pixel": {"pixel": 1.0}, "srcnn": {"pixel_y": 1.0}},
            "training_settings": {
                "johnson": {"iterations": p.iterations, "batch_size": p.batch_size, "patch_size": p.patch_size,
                            "lr": p.lr, "optimizer": "Adam", "sigma": p.sigma,
                            "lr_degradation": "Gaussian blur (sigma) + MATLAB bicubic downscale, 8-bit"},
                "srcnn": {"iterations": p.srcnn_iterations, "batch_size": p.srcnn_batch_size,
                          "patch_size": p.srcnn_patch_size, "stride": p.srcnn_stride,
                          "lr": p.srcnn_lr, "last_layer_lr": p.srcnn_lr * 0.1,
                          "optimizer": "Adam", "sampling": "grid",
                          "lr_degradation": "MATLAB bicubic downscale, 8-bit, bicubic upscale; Y channel"},
            },
            "curve": ({"every": p.curve_every, "dataset": CURVE_DATASET, "file": CURVE_FILE,
                       "what": "Set5 means of each SR network after every `every` training iterations, by the run's "
                               "evaluation protocol; training runs in chunks that resume exactly"}
                      if p.curve_every and self.needs("pixel", "feat") else None),
            "evaluation": {
                "lr": f"data.eval_protocol.make_eval_lr, protocol {self.eval_protocol!r}: "
                      f"{DESCRIPTIONS[self.eval_protocol]}",
                "metrics": "bench.metrics.evaluate_pair: PSNR/SSIM on Y (BT.601), border = scale px; "
                           "LPIPS on RGB with the same crop",
                "histmatch": HISTMATCH_NOTE,
                "gray": "1-channel ground truth: networks get 3 equal channels, scored on the rounded channel mean",
                "srcnn_colour": "SRCNN Y + bicubic Cb/Cr",
            },
        }


def build_parser() -> argparse.ArgumentParser:
    table = "\n".join(
        f"  {p.name:6s} {p.iterations:>7,d} it x batch {p.batch_size} x {p.patch_size}px (lr {p.lr:g}); "
        f"SRCNN {p.srcnn_iterations:,d} it x {p.srcnn_batch_size}; eval {'/'.join(p.datasets)}; "
        f"LPIPS {'+'.join(p.lpips) or 'off'}" for p in SR_PROFILES.values())
    parser = argparse.ArgumentParser(
        prog="python -m bench.sr",
        description="Reproduce the paper's super-resolution results (Johnson et al. 2016, Sec. 4.2): train the SR "
                    "networks (feature and pixel loss) and SRCNN, evaluate them with bicubic on Set5/Set14/BSD100 "
                    "(PSNR/SSIM on Y, LPIPS), write results.csv, run.json, logs, images and an HTML report.",
        epilog=f"profiles:\n{table}\n\nThe default corpus ({DEFAULT_CORPUS}; SRCNN: {DEFAULT_SRCNN_CORPUS}) stands in "
               f"for the paper's {PAPER_CORPUS}; run.json and the report say so.\n\n"
               "subcommands (each has its own --help):\n"
               "  python -m bench.sr evaluate --outputs DIR | --model SPEC --scale 4 --name NAME --out RUN\n"
               "      score your own SR method (a folder of outputs or a network) under this protocol\n"
               "  python -m bench.sr upscale --checkpoint CKPT --out DIR IMAGES...\n"
               "      apply a trained SR network of a run to your images",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_options(
        parser, task=TASK, profiles=tuple(SR_PROFILES),
        profile_help=f"run size (default: {default_profile()} here: 'paper' with CUDA, else 'quick')",
        variant_help="SR network variant: 'common' (no normalisation, resize-conv upsampling) or 'paper' (batch "
                     "norm, transposed convs, scaled tanh) (default: paper in the paper profile, common in the "
                     "reduced ones)",
        iterations_help="training iterations per network, overriding the profile (also SRCNN's unless "
                        "--srcnn-iterations is given)",
        batch_help="SR network batch size override", lr_help="SR network learning rate override",
        workers_help="data-loading worker processes (default: the profile's)")
    parser.add_argument("--scales", type=int, nargs="+", choices=SCALES, default=None,
                        help="upscaling factors (default: the profile's: 4 8, cpu-x4: 4); SRCNN runs at x4 only, as "
                             "in the paper")
    parser.add_argument("--methods", nargs="+", choices=tuple(METHODS), default=list(METHODS),
                        help="bicubic, srcnn, pixel (-> johnson_pixel[_histmatch]), feat (-> johnson_feat[_histmatch]) "
                             "(default: all)")
    parser.add_argument("--datasets", nargs="+", default=None, metavar="NAME_OR_FOLDER",
                        help="evaluation sets: Set5 Set14 BSD100 or folders of HR images (default: the profile's; "
                             "smoke: Set5)")
    parser.add_argument("--corpus", default=DEFAULT_CORPUS,
                        help=f"training images for the SR networks: catalog names joined by + or a folder "
                             f"(default: {DEFAULT_CORPUS}; e.g. a folder of MS-COCO train2014)")
    parser.add_argument("--srcnn-corpus", default=DEFAULT_SRCNN_CORPUS,
                        help=f"training images for SRCNN (default: {DEFAULT_SRCNN_CORPUS})")
    parser.add_argument("--srcnn-iterations", type=positive_int, default=None, help="SRCNN training iterations")
    parser.add_argument("--curve-every", type=non_negative_int, default=None, metavar="N",
                        help=f"score each SR network on {CURVE_DATASET} every N training iterations into "
                             f"{CURVE_FILE} (the report plots it; 0: off; default: the profile's, 500 in cpu-x4)")
    parser.add_argument("--patch-size", type=positive_int, default=None,
                        help="HR training patch side override (a multiple of 8 works for x4 and x8)")
    parser.add_argument("--tv-weight", type=float, default=0.0,
                        help="total-variation weight added to the feature loss (default 0)")
    add_eval_protocol_option(parser, default=None,
                             default_help="the profile's: johnson2016 in cpu-x8, else standard")
    parser.add_argument("--also-protocols", nargs="*", choices=EVAL_PROTOCOLS, default=None, metavar="PROTOCOL",
                        help="also score the trained networks (and bicubic) under these protocols, each into "
                             "RUN/protocol-<name>/, a run folder of its own (default: the profile's: standard in "
                             "cpu-x8, else none)")
    add_lpips_options(parser, default_help="the profile's")
    add_save_images_option(parser, where="under images/ for the report", default_help="the profile's")
    add_output_options(parser)
    return parser


def config_from_args(args: argparse.Namespace, argv: Sequence[str] | None = None) -> SRRunConfig:
    """The run's configuration from parsed arguments (argv: the raw arguments, recorded in run.json)."""
    name = args.profile or default_profile()
    base = SR_PROFILES[name if name in SR_PROFILES else check_profile(name)]
    srcnn_iterations = args.srcnn_iterations if args.srcnn_iterations is not None else args.iterations
    profile = with_overrides(base, iterations=args.iterations, srcnn_iterations=srcnn_iterations,
                             batch_size=args.batch_size, patch_size=args.patch_size, lr=args.lr,
                             curve_every=args.curve_every)
    scales = tuple(dict.fromkeys(args.scales if args.scales is not None else profile.scales))
    run_values = run_option_values(args, argv)  # --device checked first, as before
    lpips = lpips_of(args, profile.lpips)
    protocol = args.eval_protocol or profile.eval_protocol
    also = profile.also_protocols if args.also_protocols is None else tuple(args.also_protocols)
    bad = [s for s in scales if profile.patch_size % s]
    if bad:
        raise ValueError(f"--patch-size {profile.patch_size} is not a multiple of scale(s) {bad}")
    if not (np.isfinite(args.tv_weight) and args.tv_weight >= 0):
        raise ValueError(f"--tv-weight must be a non-negative number, got {args.tv_weight}")
    return SRRunConfig(
        profile=profile, scales=scales, methods=tuple(dict.fromkeys(args.methods)),
        datasets=tuple(args.datasets or profile.datasets), corpus=args.corpus, srcnn_corpus=args.srcnn_corpus,
        out=args.out if args.out is not None else Path("runs") / TASK / profile.name,
        variant=args.variant or profile.variant or default_variant(profile.name), tv_weight=args.tv_weight,
        eval_protocol=protocol, lpips=lpips, also_protocols=tuple(p for p in dict.fromkeys(also) if p != protocol),
        skip_unreadable=args.skip_unreadable,
        save_images=args.save_images if args.save_images is not None else profile.save_images,
        report=not args.no_report, progress=not args.no_progress, **run_values)

