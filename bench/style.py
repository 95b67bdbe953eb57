"""`reproduce-style` (`python -m bench.style`): the paper's style-transfer experiments, end to end, on any device.

What it does, in the paper's order (Johnson et al., ECCV 2016, Sec. 4.1; DESIGN.md section 2):

1. train  - one transform network per style (`--styles`, default The Muse) on a folder of photographs resized and
            centre-cropped to 256x256, batch 4, Adam 1e-3, 40,000 iterations (`paper`), minimising Eq. 5
            (content relu3_3 in `paper` as the ECCV text, relu2_2 in the reduced profiles and with
            `--content-layer relu2_2` as arXiv v1; style relu1_2/2_2/3_3/4_3, TV) with
            `perceptual.losses.PerceptualObjective`. The TV weight is searched per style in `paper` (`--tv-search`,
            off in smoke/quick; `--tv-weight` fixes it): one shortened training per value of the paper's range,
            kept by the rule in `choose_tv`. `paper` trains the `paper` network variant, the others `common`.
2. fig5   - for the first style, N held-out images (coco_val2017, first N by name; the paper: 50 COCO val images)
            at each of `--sizes`: Gatys et al.'s L-BFGS from white noise on the *same objective object* (one trace
            per image), the network's objective on the same images (its output clamped to [0, 1], the image it
            shows), and the content image's own objective; mean/std per iteration, and the first iteration / wall
            time at which the mean Gatys objective is at or below the network's mean objective (inf = "never within
            K iterations").
3. table1 - seconds for 100/300/500 L-BFGS iterations, read off the fig5 traces (median over images of the trace's
            synchronised wall time at that iteration: one evaluation = one VGG-16 forward+backward per iteration),
            and one feed-forward pass (batch 1, warm-up, median of several synchronised runs; perceptual.speed), and
            speedup_vs_500. Where the traces stop before 300/500 iterations (smaller profiles), those rows are
            written as `seconds_extrapolated` / `ratio_extrapolated` (linear in iterations, from the measured
            per-iteration time), never as measured `seconds`.
4. outputs - every style applied to the `content` photos by the network, beside Gatys' result on the same objective.
5. report - reports.build.build_report([out], None, out/"report") when importable (its failure loses nothing).

Profiles (one table, PROFILES below; every value can be overridden on the command line):

| profile | train size | batch | iterations | corpus cap | Fig. 5 sizes | N images | L-BFGS iters | outputs        |
|---------|-----------:|------:|-----------:|-----------:|--------------|---------:|-------------:|----------------|
| smoke   | 64         | 2     | 3          | 16         | 64           | 2        | 6            | 2 @ 64, 3 it   |
| quick   | 128        | 4     | 200        | all        | 128 256      | 4        | 100          | 3 @ 256, 50 it |
| paper   | 256        | 4     | 40,000     | all        | 256 512 1024 | 50       | 500          | 6 @ 512, 500 it|

`smoke` runs in about a minute on CPU (CI). `quick` was sized for ~20-30 minutes on a 2-core CPU and measured alone
on one (2026-11-26, results/runs/style-quick-cpu): 1099 s in all, training 481 s, Fig. 5 92 s (128 px) + 353 s (256
px), Table 1 3 s, outputs 159 s. It is a smoke test of the science, not the protocol: 200 iterations at 128 px train
a network that has learnt the palette, not the paper's network. `paper` is the protocol, meant for CUDA (about 40
minutes per style on an H100 by DESIGN.md's anchors: 12-15 min training, ~25 min of Gatys traces for 50 images at
three sizes).

Training corpus default: coco_train2017 + bsds500_train (408 photographs from the data mirror) standing in for the
paper's ~80k MS-COCO train2014 images; pass `--train-corpus DIR` to use COCO train2014. coco_val2017 is the held-out
Fig. 5 set and is never trained on (data.corpus refuses it).

Results follow the suite's contract (task=style, dataset = image size): results.csv, run.json, traces/gatys_<size>_<image>.csv,
logs/train_<style>.csv, images/style/<style>/<content>_{network,gatys}.png. Each stage's rows are kept in
parts/<stage>.csv (Fig. 5 and Table 1 are one stage per size: `fig5:256`, `table1:256`, ...), so a failed stage
(e.g. out of memory at 1024 px) leaves the others' results, and `--resume` skips the stages already done (and
the per-image traces already written; training resumes from its last checkpoint).
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import logging
import math
import shutil
import statistics
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any, Literal, cast

import torch

from baselines.gatys import GatysConfig, Init, read_trace, stylise, write_trace
from bench.errors import (
    ArgumentError,
    RunFolderError,
    checked_device,
    describe_failure,
    non_negative_int,
    positive_float,
    positive_int,
)
from bench.errors import naming_option as _argument
from bench.fastpath import PATHS, ExecPath, add_path_arguments
from bench.loading import default_workers
from bench.plan import add_dry_run_options
from bench.profiles import PROFILES as PROFILE_NAMES
from bench.profiles import (
    STYLE_CONTENT_LAYERS,
    check_profile,
    default_content_layer,
    default_device,
    default_profile,
    default_variant,
    setup_note,
)
from bench.runinfo import command_line, environment, file_hashes, file_list_digest
from data.catalog import DEFAULT_TRAIN_CORPUS as CATALOG_TRAIN_CORPUS
from data.files import atomic_write, atomic_write_json, atomic_write_text, plain
from data.style_data import CROPS, StyleTrainingSet, center_square, crop_to_multiple, resize_shorter_side
from perceptual.device import configure as configure_device
from perceptual.fast import fast_style_loss_fn
from perceptual.losses import LossWeights, PerceptualObjective
from perceptual.nets import VARIANTS, TransformNet, Variant
from perceptual.speed import time_fn, time_forward

log = logging.getLogger("bench.style")

TASK = "style"
MEAN = "__mean__"
RESULT_COLUMNS = ("task", "dataset", "scale", "method", "image", "metric", "value")
TABLE1_ITERATIONS = (100, 300, 500)
INFERENCE_BATCH = 4  # fast path: network outputs for Fig. 5 and the outputs stage in batches of same-size images
TABLE1_OTHER_PATH_ITERATIONS = 100  # Table 1's second path: L-BFGS iterations timed (one image; longer extrapolated)
DEFAULT_STYLES = ("la_muse",)
DEFAULT_TRAIN_CORPUS = "+".join(CATALOG_TRAIN_CORPUS)  # data.catalog holds the one default (train splits only)
DEFAULT_EVAL_SET = "coco_val2017"
DEFAULT_CONTENT_SET = "content"
# The paper's TV search range, [1e-6, 1e-4] for its sum-over-0..255-pixels TV, in this suite's units (mean over [0, 1]
# pixels relative to a CHW-mean content loss): see TV_PAPER_TO_OURS.
PAPER_TV_RANGE = (1e-6, 1e-5, 1e-4)
TV_PAPER_TO_OURS = 2e6
TV_TOLERANCE = 0.05
# The default loss weights were calibrated with content at relu2_2 (perceptual.losses.LossWeights); measured with
# the ImageNet VGG-16 at 256 px on four content photos (chicago, amber, golden_gate, tubingen), the content term keeps
# its order of magnitude at relu3_3, so the same weights are kept.
CONTENT_RELU3_3_NOTE = ("content/style weights were calibrated with content at relu2_2; at relu3_3 the content term "
                        "keeps its order of magnitude (a flat gray image vs the photo: 10-14 at relu3_3, 4-6 at "
                        "relu2_2; the Muse resized vs the photo: 33-36 and 17-19), so the same weights are used")
TV_CRITERION = (f"the largest TV weight whose network's unregularised objective (content + style terms, TV excluded) "
                f"on held-out validation images is within {TV_TOLERANCE:.0%} of the best candidate's")


@dataclass(frozen=True)
class StyleProfile:
    """Every size and count a run uses; PROFILES holds the three named ones (see the module docstring's table)."""

    train_size: int
    batch_size: int
    iterations: int
    lr: float
    max_train_images: int | None
    sizes: tuple[int, ...]
    n_images: int
    gatys_iterations: int
    feedforward_repeats: int
    output_size: int
    n_outputs: int
    output_gatys_iterations: int
    checkpoint_every: int
    log_every: int
    tv_search_iterations: int
    n_val_images: int


PROFILES: dict[str, StyleProfile] = {
    "smoke": StyleProfile(train_size=64, batch_size=2, iterations=3, lr=1e-3, max_train_images=16, sizes=(64,),
                          n_images=2, gatys_iterations=6, feedforward_repeats=3, output_size=64, n_outputs=2,
                          output_gatys_iterations=3, checkpoint_every=2, log_every=1, tv_search_iterations=2,
                          n_val_images=1),
    "quick": StyleProfile(train_size=128, batch_size=4, iterations=200, lr=1e-3, max_train_images=None,
                          sizes=(128, 256), n_images=4, gatys_iterations=100, feedforward_repeats=5,
                          output_size=256, n_outputs=3, output_gatys_iterations=50, checkpoint_every=50,
                          log_every=5, tv_search_iterations=50, n_val_images=2),
    "paper": StyleProfile(train_size=256, batch_size=4, iterations=40_000, lr=1e-3, max_train_images=None,
                          sizes=(256, 512, 1024), n_images=50, gatys_iterations=500, feedforward_repeats=20,
                          output_size=512, n_outputs=6, output_gatys_iterations=500, checkpoint_every=1000,
                          log_every=20, tv_search_iterations=5_000, n_val_images=8),
}


class StageSkipped(Exception):
    """Raised inside a stage that cannot run here (not an error of the run), e.g. no report builder installed."""


# ----------------------------------------------------------------------------------------------------- results


def result_row(dataset: str | int, method: str, image: str, metric: str, value: float) -> dict[str, Any]:
    """One long-form results row (task=style, scale empty, dataset = image size as a string)."""
    return {"task": TASK, "dataset": str(dataset), "scale": "", "method": method, "image": image,
            "metric": metric, "value": float(value)}


def rows_csv(rows: Iterable[dict[str, Any]]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(RESULT_COLUMNS), lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: (repr(float(r[k])) if k == "value" else r[k]) for k in RESULT_COLUMNS})
    return buf.getvalue()


def read_rows(path: Path) -> list[dict[str, Any]]:
    with open(path, newline="", encoding="utf-8") as f:
        return [dict(r, value=float(r["value"])) for r in csv.DictReader(f)]


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and population standard deviation (0 for a single value)."""
    vals = [float(v) for v in values]
    return statistics.fmean(vals), (statistics.pstdev(vals) if len(vals) > 1 else 0.0)


# ----------------------------------------------------------------------------------------------------- Fig. 5 maths


def first_at_or_below(curve: Sequence[float], level: float) -> int | None:
    """Index of the first value <= level, or None if the curve never gets there."""
    for k, v in enumerate(curve):
        if v <= level:
            return k
    return None


def match_statistics(traces: dict[str, list[dict[str, float]]], network: dict[str, float]) -> dict[str, Any]:
    """Fig. 5's comparison for one size: per image, the first L-BFGS iteration (and its wall time) whose objective is at
    or below the network's objective on that image; for the mean, the first iteration at which the mean-over-images
    Gatys objective is at or below the network's mean objective, and the mean over images of the wall time at that
    iteration. Never matched: inf. Also returns the mean and std curves."""
    names = sorted(traces)
    n_iter = min(len(traces[n]) for n in names)
    totals = [[traces[n][k]["total"] for n in names] for k in range(n_iter)]
    times = [[traces[n][k]["wall_time_s"] for n in names] for k in range(n_iter)]
    mean_curve = [statistics.fmean(t) for t in totals]
    std_curve = [statistics.pstdev(t) if len(t) > 1 else 0.0 for t in totals]
    net_mean = statistics.fmean(network[n] for n in names)
    per_image = {}
    for n in names:
        k = first_at_or_below([r["total"] for r in traces[n]], network[n])
        per_image[n] = (math.inf, math.inf) if k is None else (k, traces[n][k]["wall_time_s"])
    k = first_at_or_below(mean_curve, net_mean)
    mean_match = (math.inf, math.inf) if k is None else (k, statistics.fmean(times[k]))
    return {"per_image": per_image, "mean": mean_match, "mean_curve": mean_curve, "std_curve": std_curve,
            "network_mean": net_mean, "iterations": n_iter - 1}


def table1_gatys_seconds(traces: Sequence[list[dict[str, float]]], n: int) -> tuple[float, bool]:
    """Seconds for n L-BFGS iterations: the median over images of wall_time_s at iteration n (measured=True), or, if the
    traces stop earlier, t_0 + n * (median seconds per iteration) extrapolated from them (measured=False)."""
    last = int(min(t[-1]["iteration"] for t in traces))
    if n <= last:
        return statistics.median(t[n]["wall_time_s"] for t in traces), True
    if last < 1:
        raise ValueError("cannot extrapolate L-BFGS timings from traces without any iteration")
    per_iter = statistics.median((t[last]["wall_time_s"] - t[0]["wall_time_s"]) / last for t in traces)
    t0 = statistics.median(t[0]["wall_time_s"] for t in traces)
    return t0 + n * per_iter, False


# ----------------------------------------------------------------------------------------------------- TV search


def tv_candidates(paper_values: Sequence[float] = PAPER_TV_RANGE) -> list[float]:
    """The paper's TV search values mapped to this suite's TV units.

    The paper's TV (fast-neural-style's TotalVariation) is strength/2 * sum over all pixels of squared neighbour
    differences in 0..255 units, next to a content loss on Caffe-VGG features; ours is a mean over [0, 1] pixels next to
    a content loss on torchvision-VGG features. At 256x256: 255^2 * 3 * 256^2 / 2 ~ 6.4e9, divided by the content
    loss's scale ratio (Caffe features are ~57.6x torchvision's, squared ~3.3e3) ~ 1.9e6; we use TV_PAPER_TO_OURS = 2e6,
    a rough order-of-magnitude mapping (the two VGGs differ), which is why the search exists.
    """
    return [v * TV_PAPER_TO_OURS for v in paper_values]


def choose_tv(candidates: dict[float, float], tolerance: float = TV_TOLERANCE) -> float:
    """The TV search's rule: the *largest* TV weight whose network's unregularised objective (content + style terms) on
    held-out validation images is within `tolerance` (5%) of the best candidate's. TV exists to remove high-frequency
    artifacts; this keeps the smoothest network that gives up almost nothing of the perceptual objective."""
    best = min(candidates.values())
    ok = [tv for tv, value in candidates.items() if value <= best * (1 + tolerance)]
    return max(ok)


# ----------------------------------------------------------------------------------------------------- training


def time_feedforward(net: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, warmup: int, repeats: int) -> Any:
    """Table 1's feed-forward seconds: bench.speed.time_forward for a module (the reference path), the same
    synchronised median for a FastStylizer (the fast path; it is already in eval mode, without autograd)."""
    if isinstance(net, torch.nn.Module):
        return time_forward(net, x, warmup=warmup, repeats=repeats)
    return time_fn(lambda: net(x), x.device, warmup=warmup, repeats=repeats)


def style_loss_fn(objective: PerceptualObjective) -> Callable[[torch.nn.Module, torch.Tensor], dict[str, torch.Tensor]]:
    """The training loss handed to the shared loop (bench.train.train): Eq. 5 of `objective`, per image.

    For a batch of photos y_c: content targets phi(y_c) at the objective's content layer (no grad), y^ = net(y_c), and the objective's
    terms {total, content, style, tv} for y^, each of shape (N,); the loop optimises the batch mean of `total`.
    """
    def loss(model: torch.nn.Module, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        return objective(model(batch), objective.content_targets(batch))

    return loss


# ----------------------------------------------------------------------------------------------------- the run


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
    p: StyleProfile
    train_corpus: str = DEFAULT_TRAIN_CORPUS
    eval_set: str = DEFAULT_EVAL_SET
    content_set: str = DEFAULT_CONTENT_SET
    crop: Literal["center", "random"] = "center"
    style_size: int | None = None
    gatys_init: Init = "noise"
    tv_search: bool = False
    content_layer: str = "relu2_2"
    vgg_weights: Literal["imagenet", "random"] = "imagenet"
    stages: tuple[str, ...] = ("train", "fig5", "table1", "outputs", "report")
    num_workers: int | None = None  # None: bench.loading.default_workers (0 on CPU, workers on CUDA)
    resume: bool = False
    overwrite: bool = False
    argv: tuple[str, ...] | None = None  # the arguments main() parsed (run.json's command line); not identity
    tv_weight_given: bool = False  # --tv-weight was on the command line (run.json's tv_choice says so); not identity
    path: str = "fast"  # --path (bench.fastpath); not identity: training checkpoints check their compute dtype
    compile: bool | None = None  # --compile / --no-compile (None: the device's default)

    def identity(self) -> dict[str, Any]:
        """What must match for --resume to continue a run."""
        return {"profile": self.profile, "variant": self.variant, "seed": self.seed,
                "weights": self.weights.as_dict(), "profile_values": plain(asdict(self.p)),
                "train_corpus": self.train_corpus, "crop": self.crop, "style_size": self.style_size,
                "vgg_weights": self.vgg_weights, "gatys_init": self.gatys_init, "tv_search": self.tv_search,
                "content_layer": self.content_layer}


STAGE_OK, STAGE_FAILED, STAGE_SKIPPED = "ok", "failed", "skipped"
OWNED_PATHS = ("results.csv", "run.json", "parts", "traces", "logs", "images/style", "checkpoints", "models", "report")


class StyleRun:
    """One invocation: holds the shared loss network, one PerceptualObjective per style (used by training, Fig. 5,
    Table 1 and the outputs alike) and the trained networks; writes the contract files as it goes."""

    def __init__(self, s: StyleSettings):
        self.s = s
        self.out = s.out
        self.device = torch.device(s.device)
        self.exec = ExecPath(s.path, self.device, s.compile)
        self.stages: dict[str, dict[str, Any]] = {}
        self.info: dict[str, Any] = {}
        self.objectives: dict[str, PerceptualObjective] = {}
        self.networks: dict[str, TransformNet] = {}
        self.style_paths: dict[str, Path] = {}
        self.style_images: dict[str, torch.Tensor] = {}
        self.tv_chosen: dict[str, float] = {}  # --tv-search results, per style
        self.identity = plain(s.identity())
        self._loss_net: torch.nn.Module | None = None
        self._previous: dict[str, Any] = {}
        self.t0 = time.time()

    # -- folder and bookkeeping ---------------------------------------------------------------------------------
    def prepare_folder(self) -> None:
        """Refuse a folder holding another run unless --resume (same settings) or --overwrite (remove our files)."""
        run_json = self.out / "run.json"
        if self.out.exists() and not self.out.is_dir():
            raise RunFolderError(f"--out {self.out} exists and is not a folder; choose another --out")
        if self.out.is_dir() and any(self.out.iterdir()) and not run_json.exists():
            raise RunFolderError(f"--out {self.out} is not empty and holds no run.json, so it is not a run folder of "
                                 f"this suite; refusing to write into it. Choose a new or empty --out")
        if run_json.exists():
            if self.s.overwrite:
                for name in OWNED_PATHS:
                    p = self.out / name
                    if p.is_dir():
                        shutil.rmtree(p)
                    elif p.exists():
                        p.unlink()
            elif self.s.resume:
                prev = json.loads(run_json.read_text(encoding="utf-8"))
                if prev.get("task") != TASK or prev.get("identity") != self.identity:
                    raise RunFolderError(f"{self.out} holds a run with different settings; --resume needs the same "
                                         f"profile, variant, seed, weights and corpus (or use --overwrite)")
                self._previous = prev.get("stages", {})
                for key in ("training", "corpus", "fig5", "table1"):
                    if key in prev:
                        self.info[key] = prev[key]
                for name, summary in prev.get("training", {}).items():
                    if "tv_search" in summary:
                        self.tv_chosen[name] = float(summary["tv_search"]["chosen"])
            else:
                raise RunFolderError(f"{self.out} already holds a run (run.json). Pass --resume to continue it, "
                                     f"--overwrite to replace it, or choose another --out.")
        self.out.mkdir(parents=True, exist_ok=True)

    def write_run_json(self) -> None:
        s = self.s
        from perceptual.weights import weights_manifest

        doc = environment(s.device, s.seed, s.profile, command_line("bench.style", s.argv)) | {
            "task": TASK,
            "identity": self.identity,
            "variant": s.variant,
            "content_layer": s.content_layer,
            "tv_choice": self.tv_choice(),
            "loss_weights": s.weights.as_dict(),
            "loss_weights_per_style": {self.style_name(k): v.weights.as_dict() for k, v in self.objectives.items()},
            "styles": {k: str(v) for k, v in self.style_paths.items()},
            "sizes": list(s.sizes),
            "iterations": {"train": s.p.iterations, "gatys_lbfgs": s.p.gatys_iterations,
                           "outputs_gatys_lbfgs": s.p.output_gatys_iterations},
            "profile_values": plain(asdict(s.p)),
            "stages": self.stages,
            "wall_time_s": time.time() - self.t0,
            "vgg_weights": s.vgg_weights,
            "weights_files": weights_manifest(),
        } | self.exec.run_json() | self.info
        atomic_write_json(self.out / "run.json", doc)

    def write_results(self) -> None:
        rows: list[dict[str, Any]] = []
        parts = self.out / "parts"
        for name in self.stages:
            path = parts / f"{_safe(name)}.csv"
            if self.stages[name]["status"] == STAGE_OK and path.exists():
                rows.extend(read_rows(path))
        atomic_write_text(self.out / "results.csv", rows_csv(rows))

    def stage(self, name: str, fn: Callable[[], list[dict[str, Any]] | None], needs: Sequence[str] = ()) -> bool:
        """Run one stage: skip it when resuming and it finished before, or when a stage it needs did not succeed;
        record wall time and status; keep its rows in parts/<stage>.csv; a failure never stops the other stages."""
        part = self.out / "parts" / f"{_safe(name)}.csv"
        prev = self._previous.get(name, {})
        if prev.get("status") == STAGE_OK and (part.exists() or not prev.get("rows")):
            self.stages[name] = dict(prev, resumed=True)
            log.info("stage %s: done in a previous run, skipped", name)
            self.write_results()
            return True
        missing = [n for n in needs  # a stage done in the run being resumed counts even when not rerun now
                   if self.stages.get(n, self._previous.get(n, {})).get("status") != STAGE_OK]
        if missing:
            self.stages[name] = {"status": STAGE_SKIPPED, "wall_time_s": 0.0,
                                 "error": f"needs {', '.join(missing)}, which did not succeed"}
            log.warning("stage %s skipped: needs %s", name, ", ".join(missing))
            self.write_run_json()
            return False
        log.info("stage %s: start", name)
        t = time.time()
        try:
            rows = fn()
        except StageSkipped as e:
            self.stages[name] = {"status": STAGE_SKIPPED, "wall_time_s": time.time() - t, "error": str(e)}
            log.warning("stage %s skipped: %s", name, e)
            self.write_run_json()
            return False
        except Exception as e:  # noqa: BLE001 - any failure is recorded and the run goes on
            self.stages[name] = {"status": STAGE_FAILED, "wall_time_s": time.time() - t,
                                 "error": describe_failure(e, f"stage {name}")}
            log.error("stage %s failed: %s: %s\n%s", name, type(e).__name__, e, traceback.format_exc())
            self.write_run_json()
            return False
        if rows is not None:
            atomic_write_text(part, rows_csv(rows))
        self.stages[name] = {"status": STAGE_OK, "wall_time_s": time.time() - t, "error": None,
                             "rows": len(rows or [])}
        log.info("stage %s: ok in %.1f s", name, time.time() - t)
        self.write_results()
        self.write_run_json()
        return True

    # -- shared pieces ------------------------------------------------------------------------------------------
    @property
    def loss_net(self) -> torch.nn.Module:
        if self._loss_net is None:
            from bench.train import seeded_init
            from perceptual.vgg import LossNetwork

            with seeded_init(self.s.seed):  # `random` weights: the same network for the same seed, in any process
                self._loss_net = LossNetwork(weights=self.s.vgg_weights, device=self.device)
        return self._loss_net

    def style_image(self, style: str) -> torch.Tensor:
        """The style image (1, 3, h, w) on the device, shorter side --style-size (default: the training size)."""
        if style not in self.style_images:
            from data.fetch import style_image
            from data.images import load_image

            path = self.style_paths.get(style) or style_image(style)
            self.style_paths[style] = path
            size = self.s.style_size or self.s.p.train_size
            self.style_images[style] = resize_shorter_side(load_image(path), size).unsqueeze(0).to(self.device)
        return self.style_images[style]

    def weights(self, style: str) -> LossWeights:
        tv = self.tv_chosen.get(self.style_name(style))
        return self.s.weights if tv is None else replace(self.s.weights, tv=tv)

    def objective(self, style: str) -> PerceptualObjective:
        """The ONE Eq. 5 objective of `style`: built once, used to train its network, by Gatys, and for scoring."""
        if style not in self.objectives or self.objectives[style].weights != self.weights(style):
            self.objectives[style] = PerceptualObjective(self.loss_net, self.style_image(style), self.weights(style),
                                                         content_layer=self.s.content_layer).to(self.device)
        return self.objectives[style]

    def style_name(self, style: str) -> str:
        """A file-system-safe short name for a style given as a catalog name or an image path."""
        return _safe(Path(style).stem if ("/" in style or "." in Path(style).name) else style)

    def load_eval_images(self, spec: str, n: int | None, size: int, square: bool) -> list[tuple[str, torch.Tensor]]:
        """(stem, (1, 3, H, W)) for the first n images of `spec` in name order: centre square crops of `size` (Fig. 5)
        or, with square=False, resized so the shorter side is `size` and cropped to multiples of 4 (outputs)."""
        from data.fetch import resolve_images
        from data.images import load_image

        _, files = resolve_images(spec)
        files = sorted(files, key=lambda p: p.name)[:n] if n else sorted(files, key=lambda p: p.name)
        out = []
        for f in files:
            img = load_image(f)
            img = center_square(img, size) if square else crop_to_multiple(resize_shorter_side(img, size), 4)
            out.append((_safe(f.stem), img.unsqueeze(0)))
        return out

    # -- stages -------------------------------------------------------------------------------------------------
    def train(self, style: str, tv_weight: float | None = None, iterations: int | None = None,
              tag: str = "") -> tuple[TransformNet, dict[str, Any]]:
        """Train (or resume) the transform network of `style` on its objective (or, for the TV search, on the same
        objective with another TV weight); returns it and the loop's summary."""
        from bench.train import TrainConfig
        from bench.train import train as train_loop

        s, name = self.s, self.style_name(style)
        objective = self.objective(style)
        if tv_weight is not None and tv_weight != objective.weights.tv:
            objective = PerceptualObjective(self.loss_net, self.style_image(style),
                                            replace(objective.weights, tv=tv_weight),
                                            content_layer=s.content_layer).to(self.device)
        corpus = self.corpus()
        files = corpus.files[: s.p.max_train_images] if s.p.max_train_images else corpus.files
        data = StyleTrainingSet(files, size=s.p.train_size, crop=s.crop, seed=s.seed)
        torch.manual_seed(s.seed)
        net = TransformNet(s.variant).to(self.device)
        fast = self.exec.config("train")
        cfg = TrainConfig(iterations=s.p.iterations if iterations is None else iterations, batch_size=s.p.batch_size,
                          lr=s.p.lr, checkpoint_every=s.p.checkpoint_every, log_every=s.p.log_every, seed=s.seed,
                          num_workers=default_workers(self.device, s.num_workers, 0), path=s.path, fast=fast)
        meta = {"task": TASK, "style": style, "variant": s.variant, "loss_weights": objective.weights.as_dict(),
                "train_size": s.p.train_size, "crop": s.crop, "style_size": s.style_size or s.p.train_size,
                "corpus": s.train_corpus, "n_train_images": len(files), "vgg_weights": s.vgg_weights}
        loss = style_loss_fn(objective) if fast is None else fast_style_loss_fn(objective, fast)
        result = train_loop(net, loss, data, cfg, name=f"{name}{tag}", out_dir=self.out,
                            device=self.device, resume=s.resume, meta=meta)
        net.eval()
        summary = result.as_dict() | {"n_train_images": len(files), "loss_weights": objective.weights.as_dict(),
                                      "n_unreadable_substituted": len(data.unreadable)}
        return net, summary

    def corpus(self) -> Any:
        if not hasattr(self, "_corpus"):
            from data.corpus import ImageFolderCorpus

            self._corpus = ImageFolderCorpus(self.s.train_corpus, min_size=None, check="header")
            summary = self._corpus.summary()
            n = self.s.p.max_train_images
            summary["n_images_used"] = min(n, self._corpus.n_images) if n else self._corpus.n_images
            used = self._corpus.files[:summary["n_images_used"]]
            summary["file_list_digest"] = file_list_digest(used)
            summary |= self._note_small_images(used, self._corpus.sizes[:len(used)])
            summary["note"] = ("stands in for the paper's ~80k MS-COCO train2014 images"
                               if self.s.train_corpus == DEFAULT_TRAIN_CORPUS else "user-supplied corpus")
            self.info["corpus"] = summary | {"n_images": summary["n_images_used"]}
        return self._corpus

    def _note_small_images(self, files: Sequence[Path], sizes: Sequence[tuple[int, int]]) -> dict[str, Any]:
        """Training images whose shorter side is under the training size are upscaled to it, not skipped (the paper
        resized every COCO image to 256x256): each is logged, and run.json's corpus block counts them."""
        size = self.s.p.train_size
        small = [(f, w, h) for f, (w, h) in zip(files, sizes) if min(w, h) < size]
        for f, w, h in small:
            log.info("training image %s (%dx%d) is smaller than the %d px training crop: upscaled (shorter side to "
                     "%d px), as the paper resized every training image to its crop size", f, w, h, size, size)
        if small:
            log.warning("%d of %d training images are smaller than the %d px crop and are upscaled (see the log)",
                        len(small), len(files), size)
        return {"n_upscaled_smaller_than_crop": len(small), "upscaled_files": [str(f) for f, _, _ in small][:50],
                "small_image_policy": f"shorter side < {size} px: upscaled to {size} px (bilinear, antialiased)"}

    def check_inputs(self) -> None:
        """Every name and file the requested stages need, checked before --out is touched, so a bad --styles,
        --train-corpus, --eval-set or --content-set is an argument error (exit 2, nothing written). Records what the
        run reads and the sha256 of each file it reads directly (style, Fig. 5 and content images) for run.json."""
        from data.checks import check_eval_images, problems_message
        from data.fetch import resolve_images, style_image
        from data.images import check_decodable

        s = self.s
        seen: dict[str, str] = {}
        for style in s.styles:
            with _argument("--styles", style):
                path = style_image(style)
                check_decodable(path)
            for key in (f"the style name {self.style_name(style)!r}", f"the image {path}"):
                if key in seen:
                    raise ArgumentError(f"--styles {seen[key]} and {style} both give {key}; give each style once")
                seen[key] = style
            self.style_paths[style] = path
        self.info["style_images"] = {self.style_name(k): {"path": str(v), "sha256": file_hashes([v])[v.name]}
                                     for k, v in self.style_paths.items()}
        if "train" in s.stages:
            with _argument("--train-corpus", s.train_corpus):
                self.corpus()
        sets: dict[str, tuple[str, str, int]] = {}
        if "fig5" in s.stages or (s.tv_search and "train" in s.stages):
            n = s.p.n_images + (s.p.n_val_images if s.tv_search else 0)
            sets["fig5"] = ("--eval-set", s.eval_set, n)
        if "outputs" in s.stages:
            sets["outputs"] = ("--content-set", s.content_set, s.p.n_outputs)
        datasets: dict[str, Any] = {}
        problems: list[str] = []
        for role, (option, spec, n) in sets.items():
            with _argument(option, spec):
                label, files = resolve_images(spec)
                files = sorted(files, key=lambda p: p.name)[:n]
            # the images are scored: every file of every set is decoded first, and all problems stop the run in one
            # message (a user with four broken files learns of all four at once)
            bad = check_eval_images(files, None)[1]
            if bad:
                problems.append(f"{option} {spec}: " + problems_message(bad, f"the images it reads ({label})", ""))
                continue
            datasets[role] = {"name": label, "spec": spec, "n_images": len(files), "path": str(files[0].parent),
                              "sha256": file_hashes(files)}
        if problems:
            raise ArgumentError("\n".join(problems) + "\nFix or remove these files (the run reads the first images of "
                                "each set in name order), or point the option at another folder")
        self.info["datasets"] = datasets

    def stage_train(self, style: str) -> list[dict[str, Any]]:
        s, name = self.s, self.style_name(style)
        info: dict[str, Any] = {}
        if s.tv_search:
            info["tv_search"] = self.tv_search(style)
            self.tv_chosen[name] = info["tv_search"]["chosen"]
        net, summary = self.train(style)
        model = {"model": net.state_dict(), "variant": s.variant, "style": style,
                 "loss_weights": self.objective(style).weights.as_dict()}
        atomic_write(self.out / "models" / f"{name}.pt", lambda tmp: torch.save(model, tmp))
        self.networks[style] = net
        self.info.setdefault("training", {})[name] = summary | info
        return []

    def tv_search(self, style: str) -> dict[str, Any]:
        """Train one shortened network per TV candidate; pick by choose_tv on held-out validation images (coco_val2017
        images after the Fig. 5 ones, so neither training nor Fig. 5 images)."""
        s = self.s
        val = self.load_eval_images(s.eval_set, s.p.n_images + s.p.n_val_images, s.p.train_size, square=True)
        val = val[s.p.n_images:]
        scores: dict[float, float] = {}
        for tv in tv_candidates():
            net, _ = self.train(style, tv_weight=tv, iterations=s.p.tv_search_iterations, tag=f"_tv{tv:g}")
            objective = self.objective(style)
            vals = []
            with torch.no_grad():
                for _, x in val:
                    x = x.to(self.device)
                    terms = objective(net(x).clamp(0, 1), objective.content_targets(x))
                    vals.append(float(terms["content"].sum() + terms["style"].sum()))
            scores[tv] = statistics.fmean(vals)
        chosen = choose_tv(scores)
        return {"candidates_paper_units": list(PAPER_TV_RANGE), "candidates": list(scores), "validation_objective":
                {f"{k:g}": v for k, v in scores.items()}, "chosen": chosen, "iterations": s.p.tv_search_iterations,
                "criterion": TV_CRITERION,
                "validation_images": [n for n, _ in val]}

    def card_notes(self) -> list[str]:
        """run.json's `notes` (the report's run card): the protocol choices a reader must know."""
        s = self.s
        return [
            "Gatys: L-BFGS (no line search, unit step) from white noise; one iteration = one VGG-16 forward+backward",
            "network objective evaluated on its output clamped to [0, 1]",
            "Fig. 5 and Table 1 use the first style; images are centre square crops of the held-out set",
            setup_note(s.profile, s.variant, s.content_layer),
            f"content loss at VGG-16 {s.content_layer} for the network and for Gatys (one objective)",
            *([CONTENT_RELU3_3_NOTE] if s.content_layer == "relu3_3" else []),
            self.tv_choice()["note"],
        ]

    def tv_choice(self) -> dict[str, Any]:
        """run.json's `tv_choice`: how the TV weight was set (searched per style, or fixed) and, once searched, what
        each style got."""
        s = self.s
        if not s.tv_search:
            why = ("--tv-weight" if s.tv_weight_given else
                   f"the default (the {s.profile} profile does not search; --tv-search turns the search on)")
            return {"mode": "fixed", "weight": s.weights.tv, "set_by": why,
                    "note": f"TV weight fixed at {s.weights.tv:g} (our units) by {why}"}
        return {"mode": "search", "candidates_paper_units": list(PAPER_TV_RANGE), "candidates": tv_candidates(),
                "mapping": f"paper value x {TV_PAPER_TO_OURS:g} (bench.style.tv_candidates: the paper's TV sums "
                           f"squared 0..255 differences, ours averages [0, 1] ones; an order-of-magnitude map)",
                "criterion": TV_CRITERION,
                "iterations_per_candidate": s.p.tv_search_iterations, "n_validation_images": s.p.n_val_images,
                "chosen": dict(self.tv_chosen),
                "note": f"TV weight searched per style over {', '.join(f'{v:g}' for v in PAPER_TV_RANGE)} (paper "
                        f"units) = {', '.join(f'{v:g}' for v in tv_candidates())} (ours), "
                        f"{s.p.tv_search_iterations} iterations each; kept: the largest whose content + style "
                        f"objective on {s.p.n_val_images} held-out images is within {TV_TOLERANCE:.0%} of the best"}

    def network(self, style: str) -> TransformNet:
        if style not in self.networks:
            path = self.out / "models" / f"{self.style_name(style)}.pt"
            ck = torch.load(path, map_location=self.device, weights_only=True)
            net = TransformNet(ck["variant"])
            net.load_state_dict(ck["model"])
            self.networks[style] = net.to(self.device).eval()
        return self.networks[style].eval()

    def scoring_objective(self, style: str, path: str | None = None) -> PerceptualObjective:
        """The objective Gatys minimises and the network is scored on: `objective(style)` itself on the reference
        path, the same objective on the fast loss network (perceptual.fast.fast_objective) on the fast path."""
        ex = self.exec if path is None else ExecPath(path, self.device, self.s.compile)
        objective = self.objective(style)
        if not ex.fast:
            return objective
        from perceptual.fast import fast_objective

        key = (style, id(objective))
        cache = self.__dict__.setdefault("_fast_objectives", {})
        if key not in cache:  # PerceptualObjective's interface on the fast loss network (perceptual.fast)
            cache[key] = cast(PerceptualObjective, fast_objective(objective, ex.config("gatys")))
        return cache[key]

    def stylizer(self, style: str, path: str | None = None,
                 timed: bool = False) -> Callable[[torch.Tensor], torch.Tensor]:
        """The trained network as a function: itself on the reference path, a FastStylizer on the fast path (with
        the device's inference config when `timed`, Table 1's repeated shape; else ExecPath.eval_config)."""
        ex = self.exec if path is None else ExecPath(path, self.device, self.s.compile)
        net = self.network(style)
        if not ex.fast:
            return net
        from perceptual.fast import FastStylizer

        key = (style, id(net), ex.path, timed)
        cache = self.__dict__.setdefault("_stylizers", {})
        if key not in cache:
            cache[key] = FastStylizer(net, self.device, config=ex.config("inference") if timed else ex.eval_config())
        return cache[key]

    @torch.no_grad()
    def network_outputs(self, style: str, xs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """The network's outputs for images (1, 3, H, W) on the device: batched by size on the fast path
        (FastStylizer.stylize_many; bit-identical to one by one on a CPU), one by one on the reference path."""
        net = self.stylizer(style)
        if isinstance(net, torch.nn.Module):
            return [net(x) for x in xs]
        from perceptual.fast import FastStylizer

        assert isinstance(net, FastStylizer)
        return net.stylize_many(list(xs), batch_size=INFERENCE_BATCH)

    @torch.no_grad()
    def network_objective(self, style: str, x: torch.Tensor,
                          y: torch.Tensor | None = None) -> tuple[dict[str, float], torch.Tensor]:
        """The objective of the network's output on x (clamped to [0, 1]: the image it shows, in Gatys' box);
        `y`: that output when already computed (network_outputs)."""
        objective = self.scoring_objective(style)
        y = (self.stylizer(style)(x) if y is None else y).clamp(0.0, 1.0)
        terms = objective(y, objective.content_targets(x))
        return {k: float(v.sum()) for k, v in terms.items()}, y

    def gatys(self, style: str, x: torch.Tensor, iterations: int, seed: int, trace_path: Path | None,
              desc: str) -> tuple[list[dict[str, float]], torch.Tensor | None]:
        """Gatys' L-BFGS on the style's objective; reuses a complete trace on --resume (image then not kept)."""
        if trace_path is not None and self.s.resume and trace_path.exists():
            trace = read_trace(trace_path)
            if trace and int(trace[-1]["iteration"]) == iterations:
                return trace, None
        result = self.run_gatys(style, x, iterations, seed, desc)
        if trace_path is not None:
            write_trace(trace_path, result.trace)
        return result.trace, result.image

    def run_gatys(self, style: str, x: torch.Tensor, iterations: int, seed: int, desc: str,
                  path: str | None = None) -> Any:
        """One Gatys optimisation on `path` (default: the run's): its objective and its L-BFGS (the device one where
        the path's config says so)."""
        from tqdm.auto import tqdm

        ex = self.exec if path is None else ExecPath(path, self.device, self.s.compile)
        gcfg = ex.config("gatys")
        cfg = GatysConfig(iterations=iterations, init=self.s.gatys_init, seed=seed,
                          lbfgs="device" if gcfg is not None and gcfg.device_lbfgs else "torch")
        with tqdm(total=iterations, desc=desc, disable=None, leave=False) as bar:
            return stylise(self.scoring_objective(style, ex.path), x, cfg,
                           progress=lambda k, row: bar.update(1 if k else 0))

    def stage_fig5(self, style: str, size: int) -> list[dict[str, Any]]:
        """Fig. 5 at one size (its own stage, so a failure at 1024 px keeps the 256 and 512 px results)."""
        s, rows = self.s, []
        summary: dict[str, Any] = self.info.setdefault("fig5", {})
        summary.update({"style": style, "eval_set": s.eval_set, "gatys_init": s.gatys_init,
                        "gatys_iterations": s.p.gatys_iterations})
        summary.setdefault("sizes", {})
        images = self.load_eval_images(s.eval_set, s.p.n_images, size, square=True)
        network, content, traces = {}, {}, {}
        outputs = self.network_outputs(style, [x.to(self.device) for _, x in images])
        for i, (stem, x) in enumerate(images):
            x = x.to(self.device)
            network[stem] = self.network_objective(style, x, outputs[i])[0]["total"]
            objective = self.scoring_objective(style)
            with torch.no_grad():
                content[stem] = float(objective(x, objective.content_targets(x))["total"].sum())
            traces[stem], _ = self.gatys(style, x, s.p.gatys_iterations, s.seed + i,
                                         self.out / "traces" / f"gatys_{size}_{stem}.csv",
                                         desc=f"gatys {size}px {stem}")
        m = match_statistics(traces, network)
        for method, values in (("johnson_network", network), ("content_image", content)):
            rows += [result_row(size, method, k, "objective", v) for k, v in values.items()]
            mean, std = mean_std(list(values.values()))
            rows += [result_row(size, method, MEAN, "objective", mean),
                     result_row(size, method, MEAN, "objective_std", std)]
        finals = {k: t[-1]["total"] for k, t in traces.items()}
        rows += [result_row(size, "gatys_lbfgs", k, "objective_final", v) for k, v in finals.items()]
        mean, std = mean_std(list(finals.values()))
        rows += [result_row(size, "gatys_lbfgs", MEAN, "objective_final", mean),
                 result_row(size, "gatys_lbfgs", MEAN, "objective_std", std)]
        for k, (it, sec) in m["per_image"].items():
            rows += [result_row(size, "gatys_lbfgs", k, "iters_to_match", it),
                     result_row(size, "gatys_lbfgs", k, "seconds_to_match", sec)]
        rows += [result_row(size, "gatys_lbfgs", MEAN, "iters_to_match", m["mean"][0]),
                 result_row(size, "gatys_lbfgs", MEAN, "seconds_to_match", m["mean"][1])]
        self.write_fig5_curve(size, traces, m, content)
        never = not math.isfinite(m["mean"][0])
        summary["sizes"][str(size)] = {
            "images": list(network), "network_mean": m["network_mean"],
            "iters_to_match_mean": None if never else m["mean"][0],
            "seconds_to_match_mean": None if never else m["mean"][1],
            "match": (f"never within {m['iterations']} iterations" if never
                      else f"iteration {m['mean'][0]} ({m['mean'][1]:.3g} s)"),
        }
        self._traces[size] = traces
        return rows

    def write_fig5_curve(self, size: int, traces: dict[str, list[dict[str, float]]], m: dict[str, Any],
                         content: dict[str, float]) -> Path:
        """traces/fig5_<size>.csv: per iteration, the mean and std over images of the Gatys objective and the mean
        wall time, beside the network's and the content image's mean objective (Fig. 5's curves, ready to plot)."""
        names = sorted(traces)
        content_mean = statistics.fmean(content[n] for n in names)
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["iteration", "mean_total", "std_total", "mean_wall_time_s", "network_mean", "content_image_mean",
                    "n_images"])
        for k, (mean, std) in enumerate(zip(m["mean_curve"], m["std_curve"])):
            wall = statistics.fmean(traces[n][k]["wall_time_s"] for n in names)
            w.writerow([k, repr(mean), repr(std), repr(wall), repr(m["network_mean"]), repr(content_mean), len(names)])
        return atomic_write_text(self.out / "traces" / f"fig5_{size}.csv", buf.getvalue())

    def stage_table1(self, style: str, size: int) -> list[dict[str, Any]]:
        """Table 1 at one size: the feed-forward time measured here, the L-BFGS times read from fig5's traces."""
        s, rows = self.s, []
        detail: dict[str, Any] = self.info.setdefault("table1", {})
        detail.update({"gatys_source": "fig5 traces: median over images of wall_time_s at the iteration",
                       "feedforward": "batch 1, eval mode, inference_mode; median of repeats after warm-up, "
                                      "synchronised (perceptual.speed.time_forward)"})
        detail.setdefault("sizes", {})
        detail["paths"] = ("both paths timed: rows <method>_<path> (fast, reference); the unsuffixed rows are the "
                           f"run's own path ({s.path}). The other path's L-BFGS times come from one image, "
                           f"{TABLE1_OTHER_PATH_ITERATIONS} iterations at most (longer counts extrapolated, labelled)")
        traces = self._traces.get(size) or self._read_traces(size)
        if not traces:
            raise RuntimeError(f"no Gatys traces at {size} px: Table 1's L-BFGS times come from the fig5 stage")
        x = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(s.seed)).to(self.device)
        d: dict[str, Any] = {"n_traces": len(traces), "paths": {}}
        for path in (s.path, *[p for p in PATHS if p != s.path]):
            if path == s.path:
                path_traces = list(traces.values())
            else:  # the other path: one Fig. 5 image, a shorter run
                _, img = self.load_eval_images(s.eval_set, 1, size, square=True)[0]
                its = min(s.p.gatys_iterations, TABLE1_OTHER_PATH_ITERATIONS)
                path_traces = [self.run_gatys(style, img.to(self.device), its, s.seed, f"table1 {path} {size}px",
                                              path=path).trace]
            ff = time_feedforward(self.stylizer(style, path, timed=True), x, warmup=3, repeats=s.p.feedforward_repeats)
            pd: dict[str, Any] = {"feedforward": ff.as_dict(), "n_traces": len(path_traces)}
            methods = [("johnson_feedforward", "seconds", ff.median_s)]
            for n in TABLE1_ITERATIONS:
                sec, measured = table1_gatys_seconds(path_traces, n)
                methods.append((f"gatys_lbfgs_{n}", "seconds" if measured else "seconds_extrapolated", sec))
                pd[f"gatys_lbfgs_{n}"] = {"seconds": sec, "measured": measured}
                if n == 500:
                    methods.append(("speedup_vs_500", "ratio" if measured else "ratio_extrapolated", sec / ff.median_s))
            rows += [result_row(size, f"{m}_{path}", MEAN, metric, v) for m, metric, v in methods]
            if path == s.path:
                rows += [result_row(size, m, MEAN, metric, v) for m, metric, v in methods]
                d |= {k: v for k, v in pd.items() if k != "n_traces"}
            d["paths"][path] = pd
        detail["sizes"][str(size)] = d
        return rows

    def _read_traces(self, size: int) -> dict[str, list[dict[str, float]]]:
        return {p.stem.split("_", 2)[2]: read_trace(p)
                for p in sorted((self.out / "traces").glob(f"gatys_{size}_*.csv"))}

    def stage_outputs(self, style: str) -> list[dict[str, Any]]:
        from data.images import save_image

        s, name = self.s, self.style_name(style)
        folder = self.out / "images" / "style" / name
        save_image(self.style_image(style), folder / "style.png")
        images = self.load_eval_images(s.content_set, s.p.n_outputs, s.p.output_size, square=False)
        outputs = self.network_outputs(style, [x.to(self.device) for _, x in images])
        for i, (stem, x) in enumerate(images):
            x = x.to(self.device)
            _, y = self.network_objective(style, x, outputs[i])
            save_image(x, folder / f"{stem}_content.png")
            save_image(y, folder / f"{stem}_network.png")
            _, g = self.gatys(style, x, s.p.output_gatys_iterations, s.seed + i, None, desc=f"gatys {stem}")
            assert g is not None  # without a trace path nothing is reused: the image is always returned
            save_image(g, folder / f"{stem}_gatys.png")
        return []

    # -- the whole run ------------------------------------------------------------------------------------------
    def run(self) -> int:
        s = self.s
        self.check_inputs()
        self.prepare_folder()
        self.info["device_settings"] = configure_device(self.device)  # TF32 / cuDNN flags, also for Gatys
        self._traces: dict[int, dict[str, list[dict[str, float]]]] = {}
        self.info["notes"] = self.card_notes()
        self.write_run_json()
        first = s.styles[0]
        for style in s.styles:
            name = self.style_name(style)
            if "train" in s.stages:
                self.stage(f"train:{name}", partial(self.stage_train, style))
            elif (self.out / "models" / f"{name}.pt").exists():
                self.stages[f"train:{name}"] = {"status": STAGE_OK, "wall_time_s": 0.0, "error": None,
                                                "note": "model loaded from models/"}
        fname = self.style_name(first)
        for size in s.sizes:  # one stage per size: a failure (e.g. out of memory at 1024 px) keeps the others
            if "fig5" in s.stages:
                self.stage(f"fig5:{size}", partial(self.stage_fig5, first, size), needs=[f"train:{fname}"])
            if "table1" in s.stages:
                self.stage(f"table1:{size}", partial(self.stage_table1, first, size),
                           needs=[f"train:{fname}", f"fig5:{size}"])
        if "outputs" in s.stages:
            for style in s.styles:
                name = self.style_name(style)
                self.stage(f"outputs:{name}", partial(self.stage_outputs, style), needs=[f"train:{name}"])
        self.write_results()
        self.write_run_json()
        if "report" in s.stages:
            self.stage("report", self.stage_report)
        failed = [n for n, st in self.stages.items() if st["status"] == STAGE_FAILED]
        log.info("run folder %s: %d stages, failed: %s", self.out, len(self.stages), ", ".join(failed) or "none")
        return 1 if failed else 0

    def stage_report(self) -> None:
        try:
            from reports.build import build_report
        except ImportError as e:
            raise StageSkipped(f"the report builder is not importable ({e})") from e
        build_report([self.out], None, self.out / "report")


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


# ----------------------------------------------------------------------------------------------------- CLI


def _size(text: str) -> int:
    """An image side the transform network maps to itself: positive and a multiple of 4 (it halves twice)."""
    v = positive_int(text)
    if v % 4:
        raise argparse.ArgumentTypeError(f"{v} is not a multiple of 4 (the transform network halves twice); "
                                         f"use e.g. {v + 4 - v % 4}")
    return v


def profile_table() -> str:
    """PROFILES as a plain-text table (for --help; the module docstring's table is checked against it in the tests)."""
    cols = ("train_size", "batch_size", "iterations", "max_train_images", "sizes", "n_images", "gatys_iterations",
            "output_size", "n_outputs", "output_gatys_iterations")
    lines = ["  " + "profile".ljust(8) + " ".join(c.ljust(12) for c in cols)]
    for name, prof in PROFILES.items():
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
    p.add_argument("--profile", choices=PROFILE_NAMES, default=None,
                   help="smoke (CI, seconds), quick (CPU, ~30 min), paper (the protocol, CUDA). Default: paper with "
                        "CUDA, else quick")
    p.add_argument("--styles", nargs="+", default=list(DEFAULT_STYLES),
                   help="style images: catalog names (la_muse, starry_night_crop, composition_vii, wave_crop, candy, "
                        "...) or image paths. Fig. 5 and Table 1 use the first. Default: la_muse (The Muse)")
    p.add_argument("--sizes", nargs="+", type=_size, default=None,
                   help="Fig. 5 / Table 1 image sizes (multiples of 4). Default per profile (paper: 256 512 1024)")
    p.add_argument("--out", type=Path, default=None, help="run folder (default runs/style/<profile>)")
    p.add_argument("--variant", choices=VARIANTS, default=None,
                   help="transform network: common (instance norm, upsample+conv) or paper (batch norm, "
                        "transposed convs). Default: paper in the paper profile, common in smoke/quick")
    p.add_argument("--content-layer", choices=STYLE_CONTENT_LAYERS, default=None,
                   help="VGG-16 layer of the content (feature reconstruction) loss, for the network and Gatys alike: "
                        "relu3_3 (the ECCV text) or relu2_2 (arXiv v1). Default: relu3_3 in the paper profile, "
                        "relu2_2 in smoke/quick (as their committed runs)")
    p.add_argument("--seed", type=int, default=0, help="seed for network init, data order and Gatys noise (0)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default cuda when available)")
    p.add_argument("--iterations", type=positive_int, default=None,
                   help="training iterations per style (paper: 40000)")
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
    p.add_argument("--train-size", type=_size, default=None, help="training crop size (paper: 256)")
    p.add_argument("--batch-size", type=positive_int, default=None,
                   help="batch size (paper: 4): the GLOBAL batch (under torchrun each of N ranks takes batch / N; "
                        "must divide)")
    p.add_argument("--lr", type=positive_float, default=None,
                   help="Adam learning rate (paper: 1e-3; not scaled with the number of ranks)")
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
    p.add_argument("--stages", nargs="+", default=list(StyleSettings.stages),
                   choices=("train", "fig5", "table1", "outputs", "report"), help="stages to run (default: all)")
    p.add_argument("--vgg-weights", choices=("imagenet", "random"), default="imagenet",
                   help="loss network weights; `random` only for tests of the mechanics")
    p.add_argument("--num-workers", type=non_negative_int, default=None,
                   help="data-loading worker processes (0: in process; default 0 on CPU, up to 4 on CUDA)")
    add_dry_run_options(p)
    add_path_arguments(p)
    g = p.add_mutually_exclusive_group()
    g.add_argument("--resume", action="store_true", help="continue the run in --out (same settings)")
    g.add_argument("--overwrite", action="store_true", help="replace the run in --out")
    return p


def settings_from_args(args: argparse.Namespace, argv: Sequence[str] | None = None) -> StyleSettings:
    """The run's settings from parsed arguments (argv: the raw arguments, recorded in run.json)."""
    profile = check_profile(args.profile or default_profile())
    base = PROFILES[profile]
    over = {k: v for k, v in {"iterations": args.iterations, "gatys_iterations": args.gatys_iterations,
                              "n_images": args.n_images, "train_size": args.train_size,
                              "batch_size": args.batch_size, "lr": args.lr}.items() if v is not None}
    p = replace(base, **over)
    device = checked_device(args.device or default_device())
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
        out=args.out or Path("runs") / "style" / profile, variant=args.variant or default_variant(profile),
        seed=args.seed, device=device, content_layer=args.content_layer or default_content_layer(profile),
        weights=LossWeights(content=args.content_weight, style=args.style_weight, tv=tv), p=p,
        train_corpus=args.train_corpus, eval_set=args.eval_set, content_set=args.content_set, crop=args.crop,
        style_size=args.style_size, gatys_init=args.gatys_init, tv_search=tv_search,
        tv_weight_given=args.tv_weight is not None,
        vgg_weights=args.vgg_weights, stages=tuple(args.stages), num_workers=args.num_workers, resume=args.resume,
        overwrite=args.overwrite, argv=None if argv is None else tuple(argv), path=args.path, compile=args.compile)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse, check every argument (exit status 2 and nothing written when one is unusable), run; 1 when a stage
    failed."""
    given = sys.argv[1:] if argv is None else argv
    if given and given[0] in ("evaluate", "stylize"):  # issue 14: score your own network / apply a trained one
        from bench.apply import stylize_main
        from bench.own_style import evaluate_main

        return (evaluate_main if given[0] == "evaluate" else stylize_main)(list(given[1:]))
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        settings = settings_from_args(args, argv)
        if args.dry_run:
            from bench.plan import style_dry_run

            return style_dry_run(StyleRun(settings), args)
        log.info("profile %s on %s: styles %s, sizes %s, out %s", settings.profile, settings.device,
                 settings.styles, settings.sizes, settings.out)
        from bench.distributed import run_harness  # alone, or one rank of a torchrun job (issue 7)

        return run_harness(StyleRun(settings))
    except (RunFolderError, ArgumentError) as e:
        print(f"reproduce-style: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
