"""Super-resolution reproduction (Johnson et al. 2016, Sec. 4.2, Fig. 8): `python -m bench.sr` / `reproduce-sr`.

The harness follows the paper's protocol, in this order:
1. Bicubic (MATLAB imresize) on every evaluation set: needs no training, and checks the protocol first.
2. Per scale (x4, x8): train the paper's SR network (perceptual.nets.SRNet) twice on the same patches, once with the
   feature-reconstruction loss at VGG-16 relu2_2 (`feat`) and once with the per-pixel loss (`pixel`); HR patches
   come from a photo corpus, the LR input is Gaussian blur (sigma 1.0) + MATLAB bicubic downsampling, rounded to
   8 bits; Adam, lr 1e-3, batch 4, 200k iterations of 288x288 patches in the `paper` profile, which trains the
   paper's network variant (smoke/quick keep `common`, as their committed runs; `--variant` overrides both).
   SRCNN (baselines.srcnn, 9-1-5, Y channel) is retrained at x4 only, as the paper compares it: 33x33 Y sub-images
   on a stride-14 grid, LR by plain bicubic (its own protocol), Adam 1e-4 (1e-5 for the last layer, Dong et al.'s
   per-layer rates), batch 128.
3. Evaluate on Set5, Set14, BSD100 (or folders of HR images): HR modcropped to the scale, LR = MATLAB bicubic
   downscale rounded to 8 bits (data.degrade.make_lr; `--eval-protocol johnson2016` makes the x8 HR/LR pairs and
   the bicubic baseline by the paper's own x8 recipe instead, data.eval_protocol), every output clamped and rounded to 8 bits, then PSNR and
   SSIM on Y (BT.601) with `scale` border pixels cropped (bench.metrics.evaluate_pair) and LPIPS (VGG, AlexNet) on
   RGB with the same crop. The networks' outputs are reported raw and histogram-matched to the LR input
   (skimage.exposure.match_histograms, channel-wise: the paper's post-processing) as `johnson_*_histmatch`.
   SRCNN's RGB output is its Y with bicubic Cb/Cr. A 1-channel ground truth (Set14 bridge) is fed to the networks
   as three equal channels and scored on the rounded mean of the output's channels (gray values, as MATLAB does).
4. Write the results contract (results.csv per image + `__mean__`, run.json, logs/train_<name>.csv,
   images/sr/x<s>/<dataset>/<image>_<method>.png and <image>_hr.png) and the HTML report (reports.build).

A failure in one method (training or evaluation) is recorded in run.json's stages and the others carry on;
results.csv is rewritten atomically after every image, so what finished is on disk whatever happens later.
Training checkpoints (checkpoints/<name>.pt) make `--resume` continue an interrupted run exactly.

Training corpus: the paper used 10k MS-COCO training images, which this machine does not have. The default is the
mirror's coco_train2017 + bsds500_train (408 photographs; + t91 for SRCNN); pass `--corpus` with a folder (e.g.
MS-COCO train2014) to use the paper's data. coco_val2017 (the held-out Fig. 5 set) and the evaluation sets are
refused as training data (data.corpus). run.json records the corpus, its image count and that it is a substitute.
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import json
import logging
import shutil
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from baselines.bicubic import eval_bicubic_upscale
from baselines.srcnn import SRCNN, srcnn_loss, srcnn_upscale
from bench.errors import (
    RunFolderError,
    checked_device,
    describe_failure,
    non_negative_int,
    positive_float,
    positive_int,
)
from bench.errors import naming_option as _argument
from bench.fastpath import ExecPath, add_path_arguments
from bench.metrics import evaluate_pair, to_uint8
from bench.plan import add_dry_run_options
from bench.profiles import (
    FEAT_LAYER,
    HISTMATCH_NOTE,
    METHODS,
    PAPER_CORPUS,
    PROFILES,
    SRCNN_SCALES,
    check_profile,
    default_device,
    default_profile,
    default_variant,
    setup_note,
)
from bench.runinfo import command_line, environment, file_list_digest
from bench.train import TrainConfig, TrainResult, seeded_init, train
from data.catalog import DEFAULT_TRAIN_CORPUS, SRCNN_TRAIN_CORPUS, UnknownDatasetError
from data.eval_protocol import DESCRIPTIONS, EVAL_PROTOCOLS, make_eval_lr
from data.fetch import FetchError
from data.files import HashMismatchError, atomic_write_json, atomic_write_text, sha256_file
from data.histmatch import histmatch
from data.images import load_image_uint8, save_image
from perceptual.device import configure as configure_device
from perceptual.lpips_offline import lpips_distance
from perceptual.nets import VARIANTS, SRNet, Variant
from reports.runs import CURVE_COLUMNS, CURVE_FILE

log = logging.getLogger("bench.sr")

TASK = "sr"
RESULT_COLUMNS = ("task", "dataset", "scale", "method", "image", "metric", "value")
MEAN = "__mean__"
SCALES = (4, 8)
CURVE_DATASET = "Set5"  # --curve-every scores this set (small: 5 images)
DEFAULT_CORPUS = "+".join(DEFAULT_TRAIN_CORPUS)  # data.catalog holds the one default (train splits only)
DEFAULT_SRCNN_CORPUS = "+".join(SRCNN_TRAIN_CORPUS)  # the default corpus + t91
LPIPS_NETS = ("vgg", "alex")


# --------------------------------------------------------------------------------------------------- profiles


@dataclass(frozen=True)
class SRProfile:
    """One profile's numbers. `paper` is the paper's schedule; the others are labelled reduced in every report.

    iterations / batch_size / patch_size / lr: each SR network (one per scale and loss); patch_size is the HR side
    (LR side = patch_size / scale). srcnn_*: SRCNN's own schedule (33x33 Y sub-images, stride 14). lpips: the LPIPS
    networks run by default (LPIPS-VGG costs ~1-2 s per image pair on a CPU). save_images: images per dataset and
    scale saved for the report's grids. num_workers: data-loading processes.
    """

    name: str
    iterations: int
    batch_size: int
    patch_size: int
    lr: float
    srcnn_iterations: int
    srcnn_batch_size: int
    srcnn_lr: float
    datasets: tuple[str, ...]
    lpips: tuple[str, ...]
    save_images: int
    checkpoint_every: int
    log_every: int
    num_workers: int
    srcnn_patch_size: int = 33
    srcnn_stride: int = 14
    sigma: float = 1.0  # training blur (the paper's sigma 1.0)
    note: str = ""
    scales: tuple[int, ...] = (4, 8)  # default --scales
    curve_every: int = 0  # every N iterations, score the networks on Set5 into curve.csv (0: off)


PROFILE_TABLE: dict[str, SRProfile] = {
    # CI: seconds of training per network on a CPU; Set5 only; the numbers mean nothing beyond "it runs".
    "smoke": SRProfile("smoke", iterations=4, batch_size=2, patch_size=64, lr=1e-3,
                       srcnn_iterations=4, srcnn_batch_size=4, srcnn_lr=1e-4,
                       datasets=("Set5",), lpips=(), save_images=2, checkpoint_every=2, log_every=1, num_workers=0,
                       note="smoke test: a handful of iterations, Set5 only, no LPIPS"),
    # <= ~30 minutes on a 2-core CPU for x4 and x8 with all four methods: full evaluation, reduced training.
    # Measured alone on one (2026-11-26, results/runs/sr-quick-cpu): 1171 s; per stage in its run.json.
    # Sized from single-thread CPU time per step (a conservative stand-in for wall time on 2 busy cores):
    # SRNet, batch 4 of 72x72 patches: pixel 0.45 s (x4) / 0.51 s (x8), feat 0.71 s / 0.74 s; SRCNN, batch 64:
    # 0.23 s. Evaluation (~13 min): SRNet forward ~1.0 s per 480x320 output, LPIPS-AlexNet 0.14 s per pair,
    # LPIPS-VGG 3.6 s per pair (hence off by default). 300 x 2.4 s + 600 x 0.23 s ~ 14.5 min of training.
    # 72 px patches (not 96): more updates for the same pixels; the LR side stays > 8 px, which the paper
    # variant's 8 px reflection pad needs at x8. SRCNN uses lr 1e-3 here (1e-4 in `paper`): at 1e-4 it is still
    # ~2.4 dB under bicubic on Set5 after 300 iterations, at 1e-3 it is at bicubic level.
    "quick": SRProfile("quick", iterations=300, batch_size=4, patch_size=72, lr=1e-3,
                       srcnn_iterations=600, srcnn_batch_size=64, srcnn_lr=1e-3,
                       datasets=("Set5", "Set14", "BSD100"), lpips=("alex",), save_images=3, checkpoint_every=100,
                       log_every=10, num_workers=1,
                       note="reduced training (300 iterations of 4 x 72x72 patches per network, SRCNN 600 x 64 "
                            "at lr 1e-3); full evaluation sets; LPIPS-AlexNet only by default"),
    # The paper's protocol (Sec. 4.2): 288x288 patches, batch 4, 200k iterations, Adam 1e-3, l_feat at relu2_2.
    "paper": SRProfile("paper", iterations=200_000, batch_size=4, patch_size=288, lr=1e-3,
                       srcnn_iterations=200_000, srcnn_batch_size=128, srcnn_lr=1e-4,
                       datasets=("Set5", "Set14", "BSD100"), lpips=LPIPS_NETS, save_images=5,
                       checkpoint_every=5000, log_every=100, num_workers=4,
                       note="the paper's schedule; SRCNN schedule is ours (Adam; Dong et al. used SGD)"),
}
# CPU-scale evidence for the paper's x4 *relative* claims (issue 15): x4 only, l_pixel, l_feat and SRCNN long
# enough to see where each is heading, a Set5 curve every 500 iterations. Sized from the quick profile's measured
# single-thread step times (pixel 0.45 s, feat 0.71 s, SRCNN 0.23 s per step): 5000 x (0.45 + 0.71) + 2000 x 0.23
# ~ 104 min of training, plus ~7 min of x4 evaluation with LPIPS-AlexNet. Measured (results/runs/sr-cpu-x4,
# 2026-12-02, 2 threads, the machine shared with other jobs): 58 min (steps 0.32 s pixel, 0.21 s feat, 0.33 s SRCNN),
# so twice these lengths would still fit about 2 hours.
PROFILE_TABLE["cpu-x4"] = SRProfile(
    "cpu-x4", iterations=5000, batch_size=4, patch_size=72, lr=1e-3,
    srcnn_iterations=2000, srcnn_batch_size=64, srcnn_lr=1e-3,
    datasets=("Set5", "Set14", "BSD100"), lpips=("alex",), save_images=3, checkpoint_every=250, log_every=10,
    num_workers=1, scales=(4,), curve_every=500,
    note="reduced training for CPU-scale evidence (x4 only: 5000 iterations of 4 x 72x72 patches per network = 2.5% "
         "of the paper's 200k, SRCNN 2000 x 64 at lr 1e-3); full evaluation sets; LPIPS-AlexNet; Set5 curve every "
         "500 iterations")
SR_PROFILES = tuple(PROFILE_TABLE)
assert set(PROFILES) <= set(PROFILE_TABLE)


# ---------------------------------------------------------------------------------------------------- errors


class _Failed(RuntimeError):
    """A stage failure already recorded (used to skip dependants)."""


# --------------------------------------------------------------------------------------------- results table


class ResultsTable:
    """results.csv in the contract's long form, held in memory and rewritten atomically after each change."""

    def __init__(self, path: Path, keep_existing: bool):
        self.path = path
        self.rows: dict[tuple[str, str, str, str, str], float] = {}
        if keep_existing and path.is_file():
            with open(path, newline="", encoding="utf-8") as f:
                for row in csv.DictReader(f):
                    if row.get("task") == TASK:
                        key = (row["dataset"], row["scale"], row["method"], row["image"], row["metric"])
                        self.rows[key] = float(row["value"])

    def drop(self, dataset: str, scale: int, method: str) -> None:
        for key in [k for k in self.rows if k[:3] == (dataset, str(scale), method)]:
            del self.rows[key]

    def add(self, dataset: str, scale: int, method: str, image: str, metrics: dict[str, float]) -> None:
        for metric, value in metrics.items():
            self.rows[(dataset, str(scale), method, image, metric)] = float(value)

    def add_means(self, dataset: str, scale: int, method: str) -> dict[str, float]:
        per_metric: dict[str, list[float]] = {}
        for (d, s, m, image, metric), value in self.rows.items():
            if (d, s, m) == (dataset, str(scale), method) and image != MEAN:
                per_metric.setdefault(metric, []).append(value)
        means = {metric: float(np.mean(values)) for metric, values in per_metric.items()}
        self.add(dataset, scale, method, MEAN, means)
        return means

    def mean(self, dataset: str, scale: int, method: str, metric: str) -> float | None:
        return self.rows.get((dataset, str(scale), method, MEAN, metric))

    def save(self) -> Path:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(RESULT_COLUMNS)
        for (dataset, scale, method, image, metric), value in self.rows.items():
            writer.writerow([TASK, dataset, scale, method, image, metric, repr(value)])
        return atomic_write_text(self.path, buf.getvalue())


# --------------------------------------------------------------------------------------------- run record


class RunRecord:
    """run.json, rewritten atomically whenever a stage starts or ends."""

    def __init__(self, path: Path, info: dict[str, Any]):
        self.path, self.info = path, info
        self.info.setdefault("stages", {})

    def save(self) -> None:
        atomic_write_json(self.path, self.info)

    def stage(self, name: str) -> _Stage:
        return _Stage(self, name)

    def skip(self, name: str, reason: str) -> None:
        self.info["stages"][name] = {"status": "skipped", "wall_time_s": 0.0, "error": None, "reason": reason}
        self.save()

    def failed(self) -> dict[str, str]:
        return {k: v.get("error") or "" for k, v in self.info["stages"].items() if v.get("status") == "failed"}


class _Stage:
    """Times a stage; an exception marks it failed (with the error) and is swallowed so other stages carry on."""

    def __init__(self, record: RunRecord, name: str):
        self.record, self.name = record, name
        self.entry: dict[str, Any] = {"status": "running", "wall_time_s": None, "error": None}

    def __enter__(self) -> dict[str, Any]:
        self.t0 = time.perf_counter()
        self.record.info["stages"][self.name] = self.entry
        self.record.save()
        return self.entry

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> bool:
        self.entry["wall_time_s"] = round(time.perf_counter() - self.t0, 3)
        if exc is None:
            if self.entry["status"] == "running":
                self.entry["status"] = "ok"
        elif isinstance(exc, Exception):
            self.entry["status"] = "failed"
            self.entry["error"] = describe_failure(exc, f"stage {self.name}")
            if not isinstance(exc, _Failed):
                log.error("stage %s failed: %s\n%s", self.name, self.entry["error"],
                          "".join(traceback.format_exception(exc_type, exc, tb)[-6:]))
        else:  # KeyboardInterrupt / SystemExit: record and let it through
            self.entry["status"] = "failed"
            self.entry["error"] = f"interrupted ({type(exc).__name__})"
        self.record.save()
        return isinstance(exc, Exception)


# -------------------------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class SRRunConfig:
    """Everything that defines an SR run (the `identity` part must match to resume into the same folder)."""

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
    iterations: int | None = None
    srcnn_iterations: int | None = None
    curve_iterations: int | None = None  # --curve-every (None: the profile's; 0: off)
    batch_size: int | None = None
    patch_size: int | None = None
    lr: float | None = None
    tv_weight: float = 0.0
    vgg_weights: Literal["imagenet", "random"] = "imagenet"  # "random" only for tests of the mechanics
    eval_protocol: str = "standard"  # data.eval_protocol.EVAL_PROTOCOLS
    lpips: tuple[str, ...] = ()
    save_images: int = 0
    skip_unreadable: bool = False  # score the readable images of a --datasets set; the rest listed, means "over N of M"
    num_workers: int | None = None
    resume: bool = False
    overwrite: bool = False
    report: bool = True
    progress: bool = True
    argv: tuple[str, ...] | None = None  # the arguments main() parsed (run.json's command line); not identity
    path: str = "fast"  # --path (bench.fastpath); not identity: training checkpoints check their compute dtype
    compile: bool | None = None  # --compile / --no-compile (None: the device's default)

    # effective numbers (overrides win over the profile)
    @property
    def n_iterations(self) -> int:
        return self.iterations if self.iterations is not None else self.profile.iterations

    @property
    def n_srcnn_iterations(self) -> int:
        if self.srcnn_iterations is not None:
            return self.srcnn_iterations
        return self.iterations if self.iterations is not None else self.profile.srcnn_iterations

    @property
    def batch(self) -> int:
        return self.batch_size if self.batch_size is not None else self.profile.batch_size

    @property
    def patch(self) -> int:
        return self.patch_size if self.patch_size is not None else self.profile.patch_size

    @property
    def curve_every(self) -> int:
        return self.curve_iterations if self.curve_iterations is not None else self.profile.curve_every

    @property
    def learning_rate(self) -> float:
        return self.lr if self.lr is not None else self.profile.lr

    @property
    def workers(self) -> int:
        from bench.loading import default_workers  # CUDA: workers by default; CPU: the profile's number

        return default_workers(self.device, self.num_workers, self.profile.num_workers)

    def identity(self) -> dict[str, Any]:
        """What must be equal for --resume to continue a run in the same folder (JSON-normalised)."""
        ident = {
            "task": TASK, "profile": self.profile.name, "scales": list(self.scales), "methods": list(self.methods),
            "datasets": list(self.datasets), "variant": self.variant, "seed": self.seed,
            "iterations": self.n_iterations if self.needs("pixel", "feat") else None,
            "batch_size": self.batch, "patch_size": self.patch, "lr": self.learning_rate,
            "tv_weight": self.tv_weight, "vgg_weights": self.vgg_weights if self.needs("feat") else None,
            "corpus": self.corpus if self.needs("pixel", "feat") else None,
            "srcnn_iterations": self.n_srcnn_iterations if self.needs("srcnn") else None,
            "srcnn_corpus": self.srcnn_corpus if self.needs("srcnn") else None,
        }
        if self.eval_protocol != "standard":  # absent = standard, so runs made before the option still resume
            ident["eval_protocol"] = self.eval_protocol
        return json.loads(json.dumps(ident))

    def needs(self, *methods: str) -> bool:
        return any(m in self.methods for m in methods)


# ------------------------------------------------------------------------------------------------ out folder

_ARTEFACTS = ("results.csv", "run.json", "logs", "images", "checkpoints", "report")


def prepare_out(out: Path, identity: dict[str, Any], resume: bool, overwrite: bool) -> bool:
    """Check --out before anything is written; returns True when an existing run is being resumed.

    Empty or missing folder: a fresh run. A folder holding a run: the same run continues only with --resume;
    --overwrite deletes that run's artefacts (and nothing else) first; otherwise refused. A non-empty folder that
    holds no run.json is never touched.
    """
    if not out.exists() or (out.is_dir() and not any(out.iterdir())):
        return False
    if not out.is_dir():
        raise RunFolderError(f"--out {out} exists and is not a folder; choose another --out")
    run_json = out / "run.json"
    if not run_json.is_file():
        raise RunFolderError(f"--out {out} is not empty and holds no run.json, so it is not a run folder of this "
                             f"suite; refusing to write into it. Choose a new or empty --out")
    try:
        old = json.loads(run_json.read_text(encoding="utf-8"))
        old_identity = old.get("identity") if isinstance(old, dict) else None
    except (json.JSONDecodeError, UnicodeDecodeError):
        old_identity = None
    if overwrite:
        for name in _ARTEFACTS:
            target = out / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
        return False
    if old_identity == identity:
        if resume:
            return True
        raise RunFolderError(f"--out {out} already holds this run (same settings); pass --resume to continue it, "
                             f"--overwrite to start it again, or choose another --out")
    if old_identity is None:
        diff = "its run.json is unreadable or has no identity"
    else:
        keys = sorted(set(old_identity) | set(identity))
        diff = "; ".join(f"{k}: {old_identity.get(k)!r} there, {identity.get(k)!r} now" for k in keys
                         if old_identity.get(k) != identity.get(k))
    raise RunFolderError(f"--out {out} holds a different run ({diff}). Refusing to mix runs: pass --overwrite to "
                         f"replace it, or choose another --out")


# --------------------------------------------------------------------------------------------------- methods


def _lr_tensor(lr_rgb: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(lr_rgb)).permute(2, 0, 1)[None].to(device).float() / 255.0


class Family:
    """One CLI method: makes its contract-named outputs (uint8 HxWx3, or HxW for bicubic on gray) from an LR image."""

    def __init__(self, cli: str, scale: int, run: Callable[[np.ndarray, torch.Tensor], dict[str, np.ndarray]]):
        self.cli, self.scale, self.run, self.names = cli, scale, run, METHODS[cli]


def bicubic_family(scale: int, protocol: str = "standard") -> Family:
    return Family("bicubic", scale, lambda lr, lr_t: {"bicubic": eval_bicubic_upscale(lr, scale, protocol)})


def srcnn_family(model: nn.Module, scale: int) -> Family:
    def run(lr: np.ndarray, lr_t: torch.Tensor) -> dict[str, np.ndarray]:
        return {"srcnn": to_uint8(srcnn_upscale(model, lr_t, scale))}
    return Family("srcnn", scale, run)


def johnson_family(cli: str, model: Callable[[torch.Tensor], torch.Tensor], scale: int) -> Family:
    raw, matched = METHODS[cli]

    def run(lr: np.ndarray, lr_t: torch.Tensor) -> dict[str, np.ndarray]:
        with torch.inference_mode():
            sr = to_uint8(model(lr_t).clamp(0, 1))
        lr_rgb = lr if lr.ndim == 3 else np.repeat(lr[..., None], 3, axis=2)
        return {raw: sr, matched: histmatch(sr, lr_rgb)}
    return Family(cli, scale, run)


def _scoring_view(sr: np.ndarray, gray: bool) -> np.ndarray:
    """What is scored: the output itself, or for a 1-channel ground truth the rounded mean of its channels."""
    if not gray or sr.ndim == 2:
        return sr
    return np.floor(sr.astype(np.float64).mean(axis=2) + 0.5).astype(np.uint8)


# ---------------------------------------------------------------------------------------------------- harness


def _sha_list(paths: Sequence[Path]) -> dict[str, str]:
    return {p.name: sha256_file(p) for p in paths}


class SRHarness:
    """Runs one SR reproduction into `cfg.out` (see the module doc for the protocol)."""

    def __init__(self, cfg: SRRunConfig):
        self.cfg = cfg
        self.out = cfg.out
        self.device = torch.device(cfg.device)
        self.exec = ExecPath(cfg.path, self.device, cfg.compile)
        self.lpips_models: dict[str, Any] = {}
        self.loss_net: nn.Module | None = None

    # -- setup ------------------------------------------------------------------------------------------------
    def _resolve_datasets(self) -> dict[str, list[Path]]:
        from data.fetch import resolve_images

        resolved: dict[str, list[Path]] = {}
        for spec in self.cfg.datasets:
            with _argument("--datasets", spec):
                label, files = resolve_images(spec)
                if label in resolved:
                    raise ValueError(f"names {label!r} twice; give each evaluation set once")
            resolved[label] = sorted(files, key=lambda p: p.name)
        # an evaluation set is scored whole (its mean is compared with published numbers): every unreadable or too
        # small image of every set stops the run here, in one message, before anything is written
        from data.checks import FolderCheckError, check_eval_images

        checked = {label: check_eval_images(files, max(self.cfg.scales))[1] for label, files in resolved.items()}
        problems = [pr for bad in checked.values() for pr in bad]
        if problems and not self.cfg.skip_unreadable:
            raise FolderCheckError(problems, "the evaluation sets (--datasets)",
                                   "Fix or remove these files, or pass --skip-unreadable to score the rest (what is "
                                   "skipped is listed in the log, run.json and the report)")
        # --skip-unreadable: score the rest; the skipped files go to the log, run.json (skipped_files) and the report
        self.dataset_totals = {label: len(files) for label, files in resolved.items()}
        self.skipped_files = [pr.as_dict() | {"dataset": label} for label, bad in checked.items() for pr in bad]
        for label, bad in checked.items():
            gone = {pr.path for pr in bad}
            resolved[label] = [f for f in resolved[label] if f not in gone]
            if not resolved[label]:
                raise FolderCheckError(bad, f"--datasets {label}", "No image is left to score: fix these files")
        for skipped in self.skipped_files:
            log.warning("skipped %s (%s): %s", skipped["file"], skipped["kind"], skipped["reason"])
        return resolved

    def mean_over(self, dataset: str) -> str:
        """How many images a dataset mean is over: "over all M images" or, after --skip-unreadable, "over N of M"."""
        n, m = len(self.datasets[dataset]), getattr(self, "dataset_totals", {}).get(dataset, len(self.datasets[dataset]))
        return f"over {n} of {m} images" if n != m else f"over all {m} images"

    def _start_record(self, resumed: bool) -> None:
        cfg = self.cfg
        info: dict[str, Any] = {}
        if resumed:
            try:
                info = json.loads((self.out / "run.json").read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError):
                info = {}
        previous_sessions = info.get("sessions", [])
        env = environment(self.device, cfg.seed, cfg.profile.name, command_line("bench.sr", cfg.argv))
        info.update(env)
        info.update({
            "task": TASK,
            "status": "running",
            "identity": cfg.identity(),
            "eval_protocol": cfg.eval_protocol,
            "profile_settings": dataclasses.asdict(cfg.profile),
            "scales": list(cfg.scales),
            "methods": [n for m in cfg.methods for n in METHODS[m]],
            "variant": cfg.variant,
            "notes": [setup_note(cfg.profile.name, cfg.variant), f"l_feat at VGG-16 {FEAT_LAYER}, as the paper",
                      f"histogram matching (the _histmatch rows): {HISTMATCH_NOTE}"],
            "lpips": {"requested": list(cfg.lpips), "ran": []},
            "loss_network": {"net": "vgg16", "weights": cfg.vgg_weights, "layer": FEAT_LAYER},
            "loss_weights": {"johnson_feat": {f"feat_{FEAT_LAYER}": 1.0, "tv": cfg.tv_weight},
                             "johnson_pixel": {"pixel": 1.0}, "srcnn": {"pixel_y": 1.0}},
            "training_settings": {
                "johnson": {"iterations": cfg.n_iterations, "batch_size": cfg.batch, "patch_size": cfg.patch,
                            "lr": cfg.learning_rate, "optimizer": "Adam", "sigma": cfg.profile.sigma,
                            "lr_degradation": "Gaussian blur (sigma) + MATLAB bicubic downscale, 8-bit"},
                "srcnn": {"iterations": cfg.n_srcnn_iterations, "batch_size": cfg.profile.srcnn_batch_size,
                          "patch_size": cfg.profile.srcnn_patch_size, "stride": cfg.profile.srcnn_stride,
                          "lr": cfg.profile.srcnn_lr, "last_layer_lr": cfg.profile.srcnn_lr * 0.1,
                          "optimizer": "Adam", "sampling": "grid",
                          "lr_degradation": "MATLAB bicubic downscale, 8-bit, bicubic upscale; Y channel"},
            },
            "curve": ({"every": cfg.curve_every, "dataset": CURVE_DATASET, "file": CURVE_FILE,
                       "what": "Set5 means of each SR network after every `every` training iterations, by the run's "
                               "evaluation protocol; training runs in chunks that resume exactly"}
                      if cfg.curve_every and cfg.needs("pixel", "feat") else None),
            "evaluation": {
                "lr": f"data.eval_protocol.make_eval_lr, protocol {cfg.eval_protocol!r}: "
                      f"{DESCRIPTIONS[cfg.eval_protocol]}",
                "metrics": "bench.metrics.evaluate_pair: PSNR/SSIM on Y (BT.601), border = scale px; "
                           "LPIPS on RGB with the same crop",
                "histmatch": HISTMATCH_NOTE,
                "gray": "1-channel ground truth: networks get 3 equal channels, scored on the rounded channel mean",
                "srcnn_colour": "SRCNN Y + bicubic Cb/Cr",
            },
            "device_settings": configure_device(self.device),  # the one place that sets TF32 / cuDNN flags
            **self.exec.run_json(),
            "iterations": info.get("iterations", {}),
            "training": info.get("training", {}),
            "stages": info.get("stages", {}),
            "sessions": [*previous_sessions, {"date": env["date"], "argv": env["argv"], "resumed": resumed}],
        })
        self.record = RunRecord(self.out / "run.json", info)
        self.record.save()

    # -- data ---------------------------------------------------------------------------------------------------
    def _build_corpora(self) -> None:
        """Scan the training corpora up front (a bad --corpus is an argument error, reported before any work)."""
        from data.corpus import ImageFolderCorpus

        cfg, p = self.cfg, self.cfg.profile
        self.corpus = self.srcnn_corpus = None
        if cfg.needs("pixel", "feat"):
            with _argument("--corpus", cfg.corpus):
                self.corpus = ImageFolderCorpus(cfg.corpus, min_size=cfg.patch)
        if cfg.needs("srcnn") and any(s in SRCNN_SCALES for s in cfg.scales):
            scale = max(s for s in cfg.scales if s in SRCNN_SCALES)
            with _argument("--srcnn-corpus", cfg.srcnn_corpus):
                self.srcnn_corpus = ImageFolderCorpus(cfg.srcnn_corpus,
                                                      min_size=scale * -(-p.srcnn_patch_size // scale))

    def _record_inputs(self) -> None:
        info = self.record.info
        info["datasets"] = {name: {"n_images": len(files), "path": str(files[0].parent), "sha256": _sha_list(files)}
                            for name, files in self.datasets.items()}
        if self.cfg.skip_unreadable:
            skipped = getattr(self, "skipped_files", [])
            info["skipped_files"] = skipped
            for name, entry in info["datasets"].items():
                entry["n_images_total"] = self.dataset_totals[name]
                entry["mean_over"] = self.mean_over(name)
                gone = [s["file"] for s in skipped if s["dataset"] == name]
                if gone:
                    info["notes"].append(f"{name}: means {self.mean_over(name)}; skipped (--skip-unreadable): "
                                         f"{', '.join(gone)}")
        for key, corpus, what in (("corpus", self.corpus, PAPER_CORPUS),
                                  ("srcnn_corpus", self.srcnn_corpus,
                                   "SRCNN's 91-image training set (Dong et al.); this corpus includes it")):
            if corpus is None:
                continue
            summary = corpus.summary()
            skipped = summary.pop("skipped", [])
            summary["skipped_files"] = [s["path"] for s in skipped][:50]
            summary["substitutes_for"] = what
            summary["file_list_digest"] = file_list_digest(corpus.files)
            info[key] = summary
        if self.corpus is None and self.srcnn_corpus is not None:
            info["corpus"] = info["srcnn_corpus"]  # the report's corpus column: what was trained on
        self.record.save()

    # -- training -----------------------------------------------------------------------------------------------
    def _train_cfg(self, iterations: int, batch: int, lr: float, cadence_of: int | None = None) -> TrainConfig:
        """cadence_of: the training's full length when `iterations` is one chunk of it (--curve-every), so that every
        chunk logs and checkpoints on the same cadence as an unchunked training (and may resume the previous one)."""
        p = self.cfg.profile
        every = min(p.checkpoint_every, cadence_of or iterations)
        log_every = min(p.log_every, every)
        every -= every % log_every
        return TrainConfig(iterations=iterations, batch_size=batch, lr=lr, checkpoint_every=every,
                           log_every=log_every, seed=self.cfg.seed, num_workers=self.cfg.workers,
                           progress=self.cfg.progress, path=self.cfg.path, fast=self.exec.config("train"))

    def _note_training(self, result: TrainResult) -> None:
        self.record.info["iterations"][result.name] = result.iterations
        self.record.info["training"][result.name] = result.as_dict()

    def train_johnson(self, cli: str, scale: int) -> nn.Module:
        from data.patches import SRPatchDataset
        from perceptual.losses import FeatureReconstructionLoss, PixelLoss

        cfg, name = self.cfg, f"{METHODS[cli][0]}_x{scale}"
        corpus = self.corpus
        assert corpus is not None  # _build_corpora scans it when pixel or feat is asked for
        stream = SRPatchDataset(corpus, scale, cfg.patch, sigma=cfg.profile.sigma, seed=cfg.seed)
        torch.manual_seed(cfg.seed)
        model = SRNet(scale, cfg.variant).to(self.device)
        if cli == "feat":
            if self.loss_net is None:
                from perceptual.vgg import LossNetwork

                with seeded_init(cfg.seed):  # `random` weights: the same network for the same seed
                    self.loss_net = LossNetwork((FEAT_LAYER,), weights=cfg.vgg_weights, device=self.device)
            criterion: nn.Module = FeatureReconstructionLoss(self.loss_net, FEAT_LAYER, tv_weight=cfg.tv_weight)
            fast = self.exec.config("train")
            if fast is not None:
                from perceptual.fast import fast_feature_loss

                criterion = fast_feature_loss(criterion, fast)
        else:
            criterion = PixelLoss()

        def loss_fn(net: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> dict[str, torch.Tensor]:
            lr, hr = batch
            return criterion(net(lr), hr)

        meta = {"method": METHODS[cli][0], "scale": scale, "variant": cfg.variant, "data": stream.describe()["kind"],
                "patch_size": cfg.patch, "sigma": cfg.profile.sigma, "corpus_digest": file_list_digest(corpus.files),
                "tv_weight": cfg.tv_weight if cli == "feat" else 0.0}

        def run_training(iterations: int, resume: bool) -> TrainResult:
            return train(model, loss_fn, stream,
                         self._train_cfg(iterations, cfg.batch, cfg.learning_rate, cadence_of=cfg.n_iterations),
                         name=name, out_dir=self.out, device=self.device, resume=resume, meta=meta)

        if cfg.curve_every:
            result = self._train_with_curve(cli, scale, run_training, model)
        else:
            result = run_training(cfg.n_iterations, self.resuming)
        self._note_training(result)
        return model.eval()

    def train_srcnn(self, scale: int) -> nn.Module:
        from data.patches import SRCNNPatchDataset

        cfg, p, name = self.cfg, self.cfg.profile, f"srcnn_x{scale}"
        corpus = self.srcnn_corpus
        assert corpus is not None  # _build_corpora scans it when srcnn is asked for at a scale it runs
        stream = SRCNNPatchDataset(corpus, scale, p.srcnn_patch_size, p.srcnn_stride, mode="grid", sigma=0.0,
                                   seed=cfg.seed)
        torch.manual_seed(cfg.seed)
        model = SRCNN().to(self.device)
        meta = {"method": "srcnn", "scale": scale, "data": stream.describe()["kind"],
                "patch_size": p.srcnn_patch_size, "stride": p.srcnn_stride, "corpus_digest": file_list_digest(corpus.files)}
        result = train(model, partial(srcnn_loss, border=model.border), stream,
                       self._train_cfg(cfg.n_srcnn_iterations, p.srcnn_batch_size, p.srcnn_lr),
                       name=name, out_dir=self.out, device=self.device, resume=self.resuming,
                       param_groups=model.param_groups(p.srcnn_lr), meta=meta)
        self._note_training(result)
        return model.eval()

    # -- evaluation ---------------------------------------------------------------------------------------------
    def inference(self, model: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
        """The trained network as evaluated: itself on the reference path, a FastStylizer on the fast path."""
        fast = self.exec.eval_config()
        if fast is None:
            return model
        from perceptual.fast import FastStylizer

        return FastStylizer(model, self.device, config=fast)

    def _load_lpips(self) -> None:
        from perceptual.lpips_offline import lpips_model

        for net in self.cfg.lpips:
            if net in self.lpips_models:
                continue
            with self.record.stage(f"lpips_{net}_weights"):
                self.lpips_models[net] = lpips_model(net, self.device)
        self.record.info["lpips"]["ran"] = sorted(self.lpips_models)

    def evaluate(self, families: list[Family], scale: int) -> None:
        """Score every family on every dataset at `scale`; each family succeeds or fails on its own."""
        if not families:
            return
        spent = {f.cli: 0.0 for f in families}
        errors: dict[str, str] = {}
        for dataset, files in self.datasets.items():
            live = [f for f in families if f.cli not in errors]
            for fam in live:
                for name in fam.names:
                    self.results.drop(dataset, scale, name)
            img_dir = self.out / "images" / "sr" / f"x{scale}" / dataset
            for index, path in enumerate(files):
                live = [f for f in live if f.cli not in errors]
                if not live:
                    break
                hr, lr, lr_t = self._eval_pair(path, scale)
                save = index < self.cfg.save_images
                self.image = (dataset, path)  # the image being scored (read by bench.own_sr's families)
                if save:
                    save_image(hr, img_dir / f"{path.stem}_hr.png")
                for fam in live:
                    t = time.perf_counter()
                    try:
                        for method, (view, metrics) in self._score(fam, lr, lr_t, hr, scale).items():
                            self.results.add(dataset, scale, method, path.stem, metrics)
                            if save:
                                save_image(view, img_dir / f"{path.stem}_{method}.png")
                    except Exception as e:  # noqa: BLE001 - one method's failure must not stop the others
                        errors[fam.cli] = describe_failure(
                            e, f"{dataset}/{path.name} ({hr.shape[1]}x{hr.shape[0]} px HR, x{scale})")
                        log.error("evaluating %s x%d failed on %s/%s: %s\n%s", fam.cli, scale, dataset, path.name,
                                  e, traceback.format_exc(limit=-4))
                        for name in fam.names:
                            self.results.drop(dataset, scale, name)
                    spent[fam.cli] += time.perf_counter() - t
                self.results.save()
            for fam in live:
                if fam.cli not in errors:
                    for name in fam.names:
                        self.results.add_means(dataset, scale, name)
            self.results.save()
        for fam in families:
            self.record.info["stages"][f"eval_{fam.cli}_x{scale}"] = {
                "status": "failed" if fam.cli in errors else "ok", "wall_time_s": round(spent[fam.cli], 3),
                "error": errors.get(fam.cli)}
        self.record.save()

    def _eval_pair(self, path: Path, scale: int) -> tuple[np.ndarray, np.ndarray, torch.Tensor]:
        """One evaluation image by the run's protocol: HR ground truth, 8-bit LR (gray stays 2-D), and the LR as a
        float RGB batch of one on the run's device (a gray LR as three equal channels)."""
        hr, lr = make_eval_lr(load_image_uint8(path, keep_gray=True), scale, self.cfg.eval_protocol)
        lr_rgb = lr if lr.ndim == 3 else np.repeat(lr[..., None], 3, axis=2)
        return hr, lr, _lr_tensor(lr_rgb, self.device)

    def _score(self, fam: Family, lr: np.ndarray, lr_t: torch.Tensor, hr: np.ndarray,
               scale: int) -> dict[str, tuple[np.ndarray, dict[str, float]]]:
        """One LR image through one family, each output scored against `hr` by the protocol (and LPIPS)."""
        gray = hr.ndim == 2  # a 1-channel file (Set14 bridge): scored on its gray values
        scored = {}
        for method, sr in fam.run(lr, lr_t).items():
            view = _scoring_view(sr, gray)
            metrics = evaluate_pair(view, hr, scale, gray)
            for net, model in self.lpips_models.items():
                metrics[f"lpips_{net}"] = lpips_distance(model, view, hr, crop=scale)
            scored[method] = (view, metrics)
        return scored

    # -- quality during training (--curve-every) -----------------------------------------------------------------
    def _curve_files(self) -> list[Path]:
        if CURVE_DATASET in self.datasets:
            return self.datasets[CURVE_DATASET]
        from data.fetch import resolve_images

        return sorted(resolve_images(CURVE_DATASET)[1], key=lambda p: p.name)

    def _curve_points(self, scale: int, method: str) -> set[int]:
        """Iterations already scored for `method` at `scale` (a resumed run does not repeat them)."""
        path = self.out / CURVE_FILE
        if not path.is_file():
            return set()
        with path.open(newline="") as f:
            return {int(r["iteration"]) for r in csv.DictReader(f)
                    if r["scale"] == str(scale) and r["method"] == method}

    def _curve_point(self, cli: str, scale: int, model: nn.Module, iteration: int) -> None:
        """Score `model` (after `iteration` training steps) on Set5 by the evaluation protocol; append the means to
        curve.csv (atomically: a row per scale, dataset, method, iteration and metric)."""
        fam = johnson_family(cli, model.eval(), scale)
        sums: dict[str, dict[str, list[float]]] = {name: {} for name in fam.names}
        with torch.no_grad():
            for path in self._curve_files():
                hr, lr, lr_t = self._eval_pair(path, scale)
                for method, (_, metrics) in self._score(fam, lr, lr_t, hr, scale).items():
                    for metric, value in metrics.items():
                        sums[method].setdefault(metric, []).append(float(value))
        model.train()
        path = self.out / CURVE_FILE
        rows: list[dict[str, str]] = []
        if path.is_file():
            with path.open(newline="") as f:
                rows = [r for r in csv.DictReader(f)
                        if not (r["scale"] == str(scale) and r["method"] in fam.names
                                and int(r["iteration"]) == iteration)]
        for method, per_metric in sums.items():
            for metric, values in per_metric.items():
                rows.append({"scale": str(scale), "dataset": CURVE_DATASET, "method": method,
                             "iteration": str(iteration), "metric": metric, "value": repr(float(np.mean(values)))})
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=CURVE_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_text(path, buf.getvalue())
        log.info("curve %s x%d at %d iterations: %s", cli, scale, iteration, ", ".join(
            f"{m} {np.mean(v):.4f}" for m, v in sums[fam.names[0]].items()))

    def _train_with_curve(self, cli: str, scale: int, run_training: Callable[[int, bool], TrainResult],
                          model: nn.Module) -> TrainResult:
        """Train to the end in chunks of `curve_every` iterations, scoring Set5 after each chunk. Each chunk resumes
        from the previous chunk's final checkpoint, which the training loop restores exactly (same samples, RNG and
        optimiser state), so the trained network is the one an uninterrupted training gives."""
        every, total = self.cfg.curve_every, self.cfg.n_iterations
        ends = [*range(every, total, every), total]
        done = self._curve_points(scale, METHODS[cli][0])
        first: TrainResult | None = None
        result: TrainResult | None = None
        session = 0.0
        for end in ends:
            if end in done and end != total:
                continue  # scored in an earlier session; the checkpoint is at least this far
            result = run_training(end, self.resuming or first is not None or bool(done))
            first = first or result
            session += result.session_time_s
            if end not in done:
                self._curve_point(cli, scale, model, end)
        assert first is not None and result is not None
        return dataclasses.replace(result, start_iteration=first.start_iteration, resumed=first.resumed,
                                   session_time_s=session)

    # -- the run ------------------------------------------------------------------------------------------------
    def run(self) -> int:
        cfg = self.cfg
        t_start = time.perf_counter()
        # arguments that name data are checked before --out is touched
        self.datasets = self._resolve_datasets()
        self._build_corpora()
        self.resuming = prepare_out(self.out, cfg.identity(), cfg.resume, cfg.overwrite)
        self.out.mkdir(parents=True, exist_ok=True)
        self._start_record(self.resuming)
        self._record_inputs()
        self.results = ResultsTable(self.out / "results.csv", keep_existing=self.resuming)
        self.results.save()
        if cfg.lpips:
            self._load_lpips()

        # 1. bicubic: no training; the protocol check comes first
        if "bicubic" in cfg.methods:
            for scale in cfg.scales:
                self.evaluate([bicubic_family(scale, cfg.eval_protocol)], scale)

        # 2./3. per scale: train the learned methods, then evaluate them
        for scale in cfg.scales:
            families: list[Family] = []
            for cli in ("srcnn", "pixel", "feat"):
                if cli not in cfg.methods:
                    continue
                if cli == "srcnn" and scale not in SRCNN_SCALES:
                    self.record.skip(f"eval_srcnn_x{scale}", "SRCNN is retrained and compared at x4 only, as in "
                                                             "the paper")
                    continue
                name = f"{METHODS[cli][0]}_x{scale}"
                model = None
                with self.record.stage(f"train_{name}"):
                    model = self.train_srcnn(scale) if cli == "srcnn" else self.train_johnson(cli, scale)
                if model is None:
                    self.record.skip(f"eval_{cli}_x{scale}", f"training {name} failed")
                    continue
                families.append(srcnn_family(model, scale) if cli == "srcnn"
                                else johnson_family(cli, self.inference(model), scale))
            self.evaluate(families, scale)
            del families

        # 4. the report
        self._report_stage()
        return self._finish(t_start)

    def _report_stage(self) -> None:
        """The run folder's HTML report (its failure loses nothing: results are on disk)."""
        if not self.cfg.report:
            return
        try:
            from reports.build import build_report
        except ImportError as e:
            self.record.skip("report", f"reports.build is not importable ({e}); rebuild it later with "
                                       f"`python -m reports.build {self.out}`")
        else:
            with self.record.stage("report"):
                html = build_report([self.out], None, self.out / "report")
                self.record.info["report"] = str(html)

    def _close_record(self, t_start: float) -> dict[str, str]:
        """Status, wall time and the weights used into run.json (saved); returns the failed stages."""
        failed = self.record.failed()
        self.record.info["status"] = "partial" if failed else "ok"
        self.record.info["wall_time_s"] = round(time.perf_counter() - t_start, 3)
        try:
            from perceptual.weights import weights_manifest

            self.record.info["weights"] = weights_manifest()
        except Exception as e:  # noqa: BLE001 - provenance must not fail a finished run
            self.record.info["weights"] = {"error": str(e)}
        self.record.save()
        return failed

    def _finish(self, t_start: float) -> int:
        failed = self._close_record(t_start)
        _print_summary(self.results, self.cfg, failed)
        for dataset in {s["dataset"]: None for s in getattr(self, "skipped_files", [])}:
            print(f"  {dataset}: means {self.mean_over(dataset)} (--skip-unreadable; skipped files in run.json)",
                  flush=True)
        return 1 if failed else 0


def _print_summary(results: ResultsTable, cfg: SRRunConfig, failed: dict[str, str]) -> None:
    lines = [f"SR results ({cfg.profile.name} profile, {cfg.device}) in {cfg.out}:"]
    methods = [n for m in cfg.methods for n in METHODS[m]]
    for scale in cfg.scales:
        for dataset in sorted({k[0] for k in results.rows if k[1] == str(scale)}):
            for method in methods:
                p = results.mean(dataset, scale, method, "psnr_y")
                s = results.mean(dataset, scale, method, "ssim_y")
                if p is not None:
                    extra = "".join(f"  lpips_{n} {v:.4f}" for n in LPIPS_NETS
                                    if (v := results.mean(dataset, scale, method, f"lpips_{n}")) is not None)
                    lines.append(f"  x{scale} {dataset:8s} {method:24s} PSNR-Y {p:6.3f}  SSIM-Y {s:.4f}{extra}")
    for name, error in failed.items():
        lines.append(f"  FAILED {name}: {error}")
    print("\n".join(lines), flush=True)


# -------------------------------------------------------------------------------------------------------- CLI


def build_parser() -> argparse.ArgumentParser:
    table = "\n".join(
        f"  {p.name:6s} {p.iterations:>7,d} it x batch {p.batch_size} x {p.patch_size}px (lr {p.lr:g}); "
        f"SRCNN {p.srcnn_iterations:,d} it x {p.srcnn_batch_size}; eval {'/'.join(p.datasets)}; "
        f"LPIPS {'+'.join(p.lpips) or 'off'}" for p in PROFILE_TABLE.values())
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
    parser.add_argument("--profile", choices=SR_PROFILES, default=None,
                        help=f"run size (default: {default_profile()} here: 'paper' with CUDA, else 'quick')")
    parser.add_argument("--scales", type=int, nargs="+", choices=SCALES, default=None,
                        help="upscaling factors (default: the profile's: 4 8, cpu-x4: 4); SRCNN runs at x4 only, as "
                             "in the paper")
    parser.add_argument("--methods", nargs="+", choices=tuple(METHODS), default=list(METHODS),
                        help="bicubic, srcnn, pixel (-> johnson_pixel[_histmatch]), feat (-> johnson_feat[_histmatch]) "
                             "(default: all)")
    parser.add_argument("--datasets", nargs="+", default=None, metavar="NAME_OR_FOLDER",
                        help="evaluation sets: Set5 Set14 BSD100 or folders of HR images (default: the profile's; "
                             "smoke: Set5)")
    parser.add_argument("--out", type=Path, default=None,
                        help="run folder (default: runs/sr/<profile>); a folder holding a different run is refused")
    parser.add_argument("--corpus", default=DEFAULT_CORPUS,
                        help=f"training images for the SR networks: catalog names joined by + or a folder "
                             f"(default: {DEFAULT_CORPUS}; e.g. a folder of MS-COCO train2014)")
    parser.add_argument("--srcnn-corpus", default=DEFAULT_SRCNN_CORPUS,
                        help=f"training images for SRCNN (default: {DEFAULT_SRCNN_CORPUS})")
    parser.add_argument("--variant", choices=VARIANTS, default=None,
                        help="SR network variant: 'common' (no normalisation, resize-conv upsampling) or 'paper' "
                             "(batch norm, transposed convs, scaled tanh) (default: paper in the paper profile, "
                             "common in the reduced ones)")
    parser.add_argument("--seed", type=int, default=0, help="seed for initialisation and patch sampling (default 0)")
    parser.add_argument("--device", default=None, help=f"torch device (default: {default_device()})")
    parser.add_argument("--iterations", type=positive_int, default=None,
                        help="training iterations per network, overriding the profile (also SRCNN's unless "
                             "--srcnn-iterations is given)")
    parser.add_argument("--srcnn-iterations", type=positive_int, default=None, help="SRCNN training iterations")
    parser.add_argument("--curve-every", type=non_negative_int, default=None, metavar="N",
                        help=f"score each SR network on {CURVE_DATASET} every N training iterations into "
                             f"{CURVE_FILE} (the report plots it; 0: off; default: the profile's, 500 in cpu-x4)")
    parser.add_argument("--batch-size", type=positive_int, default=None,
                        help="SR network batch size override: the GLOBAL batch (under torchrun each of N ranks "
                             "takes batch / N; must divide)")
    parser.add_argument("--patch-size", type=positive_int, default=None,
                        help="HR training patch side override (a multiple of 8 works for x4 and x8)")
    parser.add_argument("--lr", type=positive_float, default=None,
                        help="SR network learning rate override (Adam; not scaled with the number of ranks)")
    parser.add_argument("--tv-weight", type=float, default=0.0,
                        help="total-variation weight added to the feature loss (default 0)")
    parser.add_argument("--eval-protocol", choices=EVAL_PROTOCOLS, default="standard",
                        help="how test LR images are made: 'standard' (MATLAB bicubic, what later papers use) or "
                             "'johnson2016' (the paper's own x8 recipe; x4 stays standard); see docs/x8-protocol.md")
    parser.add_argument("--vgg-weights", choices=("imagenet", "random"), default="imagenet",
                        help="loss network weights for `feat`; `random` only for tests of the mechanics")
    parser.add_argument("--lpips", nargs="+", choices=LPIPS_NETS, default=None, metavar="NET",
                        help="LPIPS networks to score with: vgg alex (default: the profile's)")
    parser.add_argument("--no-lpips", action="store_true", help="skip LPIPS (slow on a CPU); run.json records it")
    parser.add_argument("--save-images", type=non_negative_int, default=None,
                        help="images per dataset and scale saved under images/ for the report (default: profile's)")
    parser.add_argument("--num-workers", type=non_negative_int, default=None,
                        help="data-loading worker processes (default: the profile's)")
    parser.add_argument("--skip-unreadable", action="store_true",
                        help="score the readable images of each --datasets set and skip unreadable/too-small ones "
                             "(listed in the log, run.json and the report; means are then over N of M images)")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--resume", action="store_true",
                       help="continue the run already in --out (training resumes from its checkpoints)")
    group.add_argument("--overwrite", action="store_true",
                       help="delete the run already in --out (its results, logs, images, checkpoints) and start over")
    parser.add_argument("--no-report", action="store_true", help="do not build the HTML report")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_dry_run_options(parser)
    add_path_arguments(parser)
    return parser


def config_from_args(args: argparse.Namespace, argv: Sequence[str] | None = None) -> SRRunConfig:
    """The run's configuration from parsed arguments (argv: the raw arguments, recorded in run.json)."""
    name = args.profile or default_profile()
    profile = PROFILE_TABLE[name if name in PROFILE_TABLE else check_profile(name)]
    if args.scales is None:
        args.scales = list(profile.scales)
    device = checked_device(args.device or default_device())
    lpips = () if args.no_lpips else tuple(args.lpips if args.lpips is not None else profile.lpips)
    patch = args.patch_size if args.patch_size is not None else profile.patch_size
    bad = [s for s in args.scales if patch % s]
    if bad:
        raise ValueError(f"--patch-size {patch} is not a multiple of scale(s) {bad}")
    if not (np.isfinite(args.tv_weight) and args.tv_weight >= 0):
        raise ValueError(f"--tv-weight must be a non-negative number, got {args.tv_weight}")
    out = args.out if args.out is not None else Path("runs") / "sr" / profile.name
    return SRRunConfig(
        profile=profile, scales=tuple(dict.fromkeys(args.scales)), methods=tuple(dict.fromkeys(args.methods)),
        datasets=tuple(args.datasets or profile.datasets), corpus=args.corpus, srcnn_corpus=args.srcnn_corpus,
        out=out, variant=args.variant or default_variant(profile.name), seed=args.seed, device=device,
        iterations=args.iterations, curve_iterations=args.curve_every,
        srcnn_iterations=args.srcnn_iterations, batch_size=args.batch_size, patch_size=args.patch_size, lr=args.lr,
        tv_weight=args.tv_weight, vgg_weights=args.vgg_weights, eval_protocol=args.eval_protocol, lpips=lpips,
        skip_unreadable=args.skip_unreadable,
        save_images=args.save_images if args.save_images is not None else profile.save_images,
        num_workers=args.num_workers, resume=args.resume, overwrite=args.overwrite, report=not args.no_report,
        progress=not args.no_progress, argv=None if argv is None else tuple(argv), path=args.path,
        compile=args.compile)


def run(cfg: SRRunConfig) -> int:
    """Run the SR reproduction described by `cfg`; returns the exit status (1 when any stage failed)."""
    from bench.distributed import run_harness  # alone, or one rank of a torchrun job (issue 7)

    return run_harness(SRHarness(cfg))


def main(argv: list[str] | None = None) -> int:
    given = sys.argv[1:] if argv is None else argv
    if given and given[0] in ("evaluate", "upscale"):  # issue 14: score your own method / apply a trained network
        from bench.apply import upscale_main
        from bench.own_sr import evaluate_main

        return (evaluate_main if given[0] == "evaluate" else upscale_main)(given[1:])
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        cfg = config_from_args(args, argv)
        if args.dry_run:
            from bench.plan import sr_dry_run

            return sr_dry_run(SRHarness(cfg), args)
        return run(cfg)
    except (RunFolderError, ValueError, FileNotFoundError, PermissionError, UnknownDatasetError,
            HashMismatchError, FetchError) as e:
        print(f"reproduce-sr: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
