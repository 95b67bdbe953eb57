"""Style-transfer reproduction (Johnson et al. 2016, Sec. 4.1, Fig. 5, Table 1): `python -m bench.style`.

It reads like the paper's section: train one transform network per style (with the TV search in `paper`), then
Fig. 5 (Gatys' L-BFGS against the network on the *same* objective object, per image size), Table 1 (feed-forward
seconds beside L-BFGS seconds), the stylised outputs, and the report. Each stage keeps its rows in
parts/<stage>.csv, so a failed stage (e.g. out of memory at 1024 px) leaves the others' results, and `--resume`
skips what finished. The protocol in full, with its reasons: docs/style.md.
"""
from __future__ import annotations

import logging
import math
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, replace
from functools import partial
from pathlib import Path
from typing import Any, cast

import torch

from baselines.gatys import GatysConfig, read_trace, stylise, write_trace
from bench.run.errors import ArgumentError, RunFolderError
from bench.run.folder import OK, RunRecord, StageRows, prepare_out, report_stage
from bench.run.inputs import image_sets, small_images_note, style_images, training_corpus
from bench.run.plan import style_dry_run
from bench.run.provenance import command_line, environment, file_hashes, file_list_digest
from bench.run.seeds import multi_seed_main
from bench.style.config import (
    DEFAULT_TRAIN_CORPUS,
    TASK,
    StyleSettings,
    build_parser,
    settings_from_args,
)
from bench.style.config import STAGES as STYLE_STAGES
from bench.style.measures import (
    PAPER_TV_RANGE,
    TABLE1_ITERATIONS,
    TV_CRITERION,
    choose_tv,
    fig5_rows,
    match_statistics,
    style_row,
    table1_gatys_seconds,
    time_feedforward,
    tv_candidates,
    write_fig5_curve,
)
from bench.style.trend import train_with_trend
from bench.tools.export import export_network
from bench.training.distributed import run_harness  # alone, or one rank of a torchrun job
from bench.training.exec_path import PATHS, ExecPath
from bench.training.loading import default_workers
from bench.training.loop import TrainConfig, seeded_loss_network
from bench.training.loop import train as train_loop
from data.files import atomic_write, plain, safe_name
from data.style_data import StyleTrainingSet, center_square, crop_to_multiple, resize_shorter_side
from perceptual.device import configure as configure_device
from perceptual.fast import fast_style_loss_fn
from perceptual.losses import LossWeights, PerceptualObjective
from perceptual.nets import TransformNet
from reports.results import MEAN, RESULTS_FILE, gatys_trace_path, gatys_traces

__all__ = ["MEAN", "TASK", "StyleRun", "StyleSettings", "build_parser", "main", "settings_from_args"]
log = logging.getLogger("bench.style")
INFERENCE_BATCH = 4  # fast path: network outputs for Fig. 5 and the outputs stage in batches of same-size images
TABLE1_OTHER_PATH_ITERATIONS = 100  # Table 1's second path: L-BFGS iterations timed (one image; longer extrapolated)
OWNED = (RESULTS_FILE, "run.json", "parts", "traces", "logs", "images/style", "checkpoints", "models", "report",
         "weights", "trend.csv")


def style_loss_fn(objective: PerceptualObjective) -> Callable[[torch.nn.Module, torch.Tensor], dict[str, torch.Tensor]]:
    """The training loss handed to the shared loop (bench.training.loop.train): Eq. 5 of `objective`, per image: content
    targets phi(y_c) at the objective's content layer (no grad), y^ = net(y_c), and the objective's terms {total,
    content, style, tv} for y^, each of shape (N,); the loop optimises the batch mean of `total`."""
    def loss(model: torch.nn.Module, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        return objective(model(batch), objective.content_targets(batch))

    return loss


class StyleRun:
    """One invocation: holds the shared loss network, one PerceptualObjective per style (used by training, Fig. 5,
    Table 1 and the outputs alike) and the trained networks; writes the contract files as it goes."""

    def __init__(self, cfg: StyleSettings):
        self.cfg = cfg
        self.out = cfg.out
        self.device = torch.device(cfg.device)
        # the process's backend flags (TF32, cuDNN autotuning; also for Gatys), set here once on every rank
        self.device_settings = configure_device(self.device)
        self.exec = ExecPath(cfg.path, self.device, cfg.compile, cfg.profile)
        self.record = RunRecord(self.out / "run.json", {})  # saved once prepare_folder has checked --out
        self.stages = self.record.stages
        self.parts = StageRows(self.record, self.out, {}, self.write_run_json)  # the stages' rows, resumable
        self.info: dict[str, Any] = {}
        self.objectives: dict[str, PerceptualObjective] = {}
        self.networks: dict[str, TransformNet] = {}
        self.style_paths: dict[str, Path] = {}
        self.style_images: dict[str, torch.Tensor] = {}
        self.tv_chosen: dict[str, float] = {}  # --tv-search results, per style
        self.identity = plain(cfg.identity())
        self._loss_net: torch.nn.Module | None = None
        self.t0 = time.time()

    # -- folder and bookkeeping ---------------------------------------------------------------------------------
    def prepare_folder(self) -> None:
        """--out by the suite's rules (bench.run.folder); on --resume, what the previous session finished."""
        prev = prepare_out(self.out, TASK, self.identity, self.cfg.resume, self.cfg.overwrite, OWNED) or {}
        self.parts.previous = prev.get("stages", {})
        for key in ("training", "corpus", "fig5", "table1"):
            if key in prev:
                self.info[key] = prev[key]
        for name, summary in prev.get("training", {}).items():
            if "tv_search" in summary:
                self.tv_chosen[name] = float(summary["tv_search"]["chosen"])

    def write_run_json(self) -> None:
        cfg = self.cfg
        from perceptual.weights import weights_manifest

        self.record.info.update(environment(cfg.device, cfg.seed, cfg.profile, command_line("bench.style", cfg.argv)) | {
            "task": TASK,
            "identity": self.identity,
            "variant": cfg.variant,
            "content_layer": cfg.content_layer,
            "tv_choice": self.tv_choice(),
            "loss_weights": cfg.weights.as_dict(),
            "loss_weights_per_style": {self.style_name(k): v.weights.as_dict() for k, v in self.objectives.items()},
            "styles": {k: str(v) for k, v in self.style_paths.items()},
            "sizes": list(cfg.sizes),
            "iterations": {"train": cfg.values.iterations, "gatys_lbfgs": cfg.values.gatys_iterations,
                           "outputs_gatys_lbfgs": cfg.values.output_gatys_iterations},
            "profile_values": plain(asdict(cfg.values)),
            "wall_time_s": time.time() - self.t0,
            "vgg_weights": cfg.vgg_weights,
            "weights_files": weights_manifest(),
        } | self.exec.run_json() | self.info)
        self.record.save()

    # -- shared pieces ------------------------------------------------------------------------------------------
    @property
    def loss_net(self) -> torch.nn.Module:
        if self._loss_net is None:
            self._loss_net = seeded_loss_network(self.cfg.seed, self.cfg.vgg_weights, self.device)
        return self._loss_net

    def style_image(self, style: str) -> torch.Tensor:
        """The style image (1, 3, h, w) on the device, shorter side --style-size (default: the training size)."""
        if style not in self.style_images:
            from data.fetch import style_image
            from data.images import load_image

            path = self.style_paths.get(style) or style_image(style)
            self.style_paths[style] = path
            size = self.cfg.style_size or self.cfg.values.train_size
            self.style_images[style] = resize_shorter_side(load_image(path), size).unsqueeze(0).to(self.device)
        return self.style_images[style]

    def weights(self, style: str) -> LossWeights:
        tv = self.tv_chosen.get(self.style_name(style))
        return self.cfg.weights if tv is None else replace(self.cfg.weights, tv=tv)

    def objective(self, style: str) -> PerceptualObjective:
        """The ONE Eq. 5 objective of `style`: built once, used to train its network, by Gatys, and for scoring."""
        if style not in self.objectives or self.objectives[style].weights != self.weights(style):
            self.objectives[style] = PerceptualObjective(self.loss_net, self.style_image(style), self.weights(style),
                                                         content_layer=self.cfg.content_layer).to(self.device)
        return self.objectives[style]

    def style_name(self, style: str) -> str:
        """A file-system-safe short name for a style given as a catalog name or an image path."""
        return safe_name(Path(style).stem if ("/" in style or "." in Path(style).name) else style)

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
            out.append((safe_name(f.stem), img.unsqueeze(0)))
        return out

    # -- stages -------------------------------------------------------------------------------------------------
    def train(self, style: str, tv_weight: float | None = None, iterations: int | None = None,
              tag: str = "", resume: bool | None = None) -> tuple[TransformNet, dict[str, Any]]:
        """Train (or resume) the transform network of `style` on its objective (or, for the TV search, on the same
        objective with another TV weight); returns it and the loop's summary. resume: continue from the training's
        checkpoint (default: --resume; the trend's later chunks always do)."""
        cfg, name = self.cfg, self.style_name(style)
        objective = self.objective(style)
        if tv_weight is not None and tv_weight != objective.weights.tv:
            objective = PerceptualObjective(self.loss_net, self.style_image(style),
                                            replace(objective.weights, tv=tv_weight),
                                            content_layer=cfg.content_layer).to(self.device)
        corpus = self.corpus()
        files = corpus.files[: cfg.values.max_train_images] if cfg.values.max_train_images else corpus.files
        data = StyleTrainingSet(files, size=cfg.values.train_size, crop=cfg.crop, seed=cfg.seed)
        torch.manual_seed(cfg.seed)
        net = TransformNet(cfg.variant).to(self.device)
        v = cfg.values
        steps = v.iterations if iterations is None else iterations
        fast = self.exec.train_config(f"{name}{tag}", "style", steps, v.batch_size * v.train_size ** 2)
        loop = TrainConfig(iterations=steps, batch_size=v.batch_size,
                           lr=v.lr, checkpoint_every=v.checkpoint_every, log_every=v.log_every, seed=cfg.seed,
                           num_workers=default_workers(self.device, cfg.num_workers, 0), path=cfg.path, fast=fast,
                           progress=cfg.progress)
        meta = {"task": TASK, "style": style, "variant": cfg.variant, "loss_weights": objective.weights.as_dict(),
                "train_size": cfg.values.train_size, "crop": cfg.crop, "style_size": cfg.style_size or cfg.values.train_size,
                "corpus": cfg.train_corpus, "n_train_images": len(files), "vgg_weights": cfg.vgg_weights}
        loss = style_loss_fn(objective) if fast is None else fast_style_loss_fn(objective, fast)
        result = train_loop(net, loss, data, loop, name=f"{name}{tag}", out_dir=self.out,
                            device=self.device, resume=cfg.resume if resume is None else resume, meta=meta)
        net.eval()
        summary = result.as_dict() | {"n_train_images": len(files), "loss_weights": objective.weights.as_dict(),
                                      "n_unreadable_substituted": len(data.unreadable)}
        decision = self.exec.decision("training", f"{name}{tag}")
        if decision is not None:
            summary["compile"] = decision.as_dict()
        return net, summary

    def corpus(self) -> Any:
        if not hasattr(self, "_corpus"):
            cfg = self.cfg
            self._corpus = training_corpus("--train-corpus", cfg.train_corpus, min_size=None, check="header")
            summary = self._corpus.summary()
            n = cfg.values.max_train_images
            summary["n_images_used"] = min(n, self._corpus.n_images) if n else self._corpus.n_images
            used = self._corpus.files[:summary["n_images_used"]]
            summary["file_list_digest"] = file_list_digest(used)
            summary |= small_images_note(used, self._corpus.sizes[:len(used)], cfg.values.train_size)
            summary["note"] = ("stands in for the paper's ~80k MS-COCO train2014 images"
                               if cfg.train_corpus == DEFAULT_TRAIN_CORPUS else "user-supplied corpus")
            self.info["corpus"] = summary | {"n_images": summary["n_images_used"]}
        return self._corpus

    def check_inputs(self) -> None:
        """Every name and file the requested stages need, checked before --out is touched (bench.run.inputs), and what
        the run reads, with the sha256 of each file it reads directly, for run.json."""
        cfg = self.cfg
        self.style_paths.update(style_images(cfg.styles, self.style_name))
        self.info["style_images"] = {self.style_name(k): {"path": str(v), "sha256": file_hashes([v])[v.name]}
                                     for k, v in self.style_paths.items()}
        if "train" in cfg.stages:
            self.corpus()
        sets: dict[str, tuple[str, str, int]] = {}
        if "fig5" in cfg.stages or (cfg.tv_search and "train" in cfg.stages):
            n = cfg.values.n_images + (cfg.values.n_val_images if cfg.tv_search else 0)
            sets["fig5"] = ("--eval-set", cfg.eval_set, n)
        if "outputs" in cfg.stages:
            sets["outputs"] = ("--content-set", cfg.content_set, cfg.values.n_outputs)
        self.info["datasets"] = image_sets(sets)
        if cfg.tv_search and "train" in cfg.stages:
            self.check_validation_images(self.info["datasets"]["fig5"]["n_images"])

    def stage_train(self, style: str) -> list[dict[str, Any]]:
        cfg, name = self.cfg, self.style_name(style)
        info: dict[str, Any] = {}
        if cfg.tv_search:
            info["tv_search"] = self.tv_search(style)
            self.tv_chosen[name] = info["tv_search"]["chosen"]
        if cfg.values.trend and style == cfg.styles[0]:  # the trend: Fig. 5 measured as this training goes on
            net, summary = train_with_trend(self, style)
        else:
            net, summary = self.train(style)
        model = {"model": net.state_dict(), "variant": cfg.variant, "style": style,
                 "loss_weights": self.objective(style).weights.as_dict()}
        atomic_write(self.out / "models" / f"{name}.pt", lambda tmp: torch.save(model, tmp))
        self.networks[style] = net
        summary["export"] = self.export(name, style, net, summary["iterations"])
        self.info.setdefault("training", {})[name] = summary | info
        return []

    def check_validation_images(self, available: int) -> None:
        """The TV search scores each candidate on the eval set's images after the first --n-images; refuse a set
        with none left (before any training), naming the fix."""
        cfg = self.cfg
        if available <= cfg.values.n_images:
            raise ArgumentError(
                f"--eval-set {cfg.eval_set}: the TV search needs held-out validation images after the first "
                f"--n-images {cfg.values.n_images} (up to {cfg.values.n_val_images}), but the set has {available}; "
                f"give a larger set, a smaller --n-images, or fix the TV weight (--tv-weight W or --no-tv-search)")

    def export(self, name: str, style: str, net: TransformNet, iterations: int) -> str:
        """The trained network as RUN/weights/<name>.safetensors + .json (bench.tools.export); returns its path in RUN."""
        cfg = self.cfg
        path = export_network(net, self.out, name, "style", {
            "variant": cfg.variant, "style": style, "train_size": cfg.values.train_size, "profile": cfg.profile,
            "iterations": int(iterations), "seed": cfg.seed, "commit": (self.record.info.get("git") or {}).get("commit"),
            "source": f"models/{name}.pt"})
        return str(path.relative_to(self.out))

    def tv_search(self, style: str) -> dict[str, Any]:
        """Train one shortened network per TV candidate; pick by choose_tv on held-out validation images (coco_val2017
        images after the Fig. 5 ones, so neither training nor Fig. 5 images)."""
        cfg = self.cfg
        val = self.load_eval_images(cfg.eval_set, cfg.values.n_images + cfg.values.n_val_images, cfg.values.train_size, square=True)
        val = val[cfg.values.n_images:]
        self.check_validation_images(cfg.values.n_images + len(val))
        scores: dict[float, float] = {}
        for tv in tv_candidates():
            net, _ = self.train(style, tv_weight=tv, iterations=cfg.values.tv_search_iterations, tag=f"_tv{tv:g}")
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
                {f"{k:g}": v for k, v in scores.items()}, "chosen": chosen, "iterations": cfg.values.tv_search_iterations,
                "criterion": TV_CRITERION,
                "validation_images": [n for n, _ in val]}

    def tv_choice(self) -> dict[str, Any]:
        return self.cfg.tv_choice(self.tv_chosen)

    def card_notes(self) -> list[str]:
        return self.cfg.card_notes(self.tv_chosen)

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
        ex = self.exec if path is None else self.exec.on(path)
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
        ex = self.exec if path is None else self.exec.on(path)
        net = self.network(style)
        if not ex.fast:
            return net
        from perceptual.fast import FastStylizer

        key = (style, id(net), ex.path, timed)
        cache = self.__dict__.setdefault("_stylizers", {})
        if key not in cache:
            cache[key] = FastStylizer(net, self.device, config=self.forward_config(ex, timed))
        return cache[key]

    def forward_config(self, ex: ExecPath, timed: bool) -> Any:
        """The FastConfig of the network's forward passes on `ex`'s path: Table 1's timed forward (`timed`: warm-up and
        repeats at each size) or every other use (Fig. 5 images at each size, the outputs), with the compile decision
        counted over the images that use sees."""
        v = self.cfg.values
        if timed:
            shapes = [(s, s) for s in self.cfg.sizes for _ in range(3 + v.feedforward_repeats)]
            return ex.forward_config(f"table1_{ex.path}", "style", shapes, timed=True)
        shapes = [(s, s) for s in self.cfg.sizes for _ in range(v.n_images)]
        shapes += [(v.output_size, v.output_size + i) for i in range(v.n_outputs)]  # outputs: each its own shape
        return ex.forward_config(f"network_outputs_{ex.path}", "style", shapes)

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
              desc: str, reuse: bool = False) -> tuple[list[dict[str, float]], torch.Tensor | None]:
        """Gatys' L-BFGS on the style's objective; reuses a complete trace on --resume, when `reuse`, and in a trend
        run (whose traces are computed once, before the fig5 stage) (image then not kept)."""
        reuse = reuse or self.cfg.resume or bool(self.cfg.values.trend)
        if trace_path is not None and reuse and trace_path.exists():
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

        ex = self.exec if path is None else self.exec.on(path)
        gcfg = ex.config("gatys")
        gatys_cfg = GatysConfig(iterations=iterations, init=self.cfg.gatys_init, seed=seed,
                                lbfgs="device" if gcfg is not None and gcfg.device_lbfgs else "torch")
        with tqdm(total=iterations, desc=desc, disable=None if self.cfg.progress else True, leave=False) as bar:
            return stylise(self.scoring_objective(style, ex.path), x, gatys_cfg,
                           progress=lambda k, row: bar.update(1 if k else 0))

    def stage_fig5(self, style: str, size: int) -> list[dict[str, Any]]:
        """Fig. 5 at one size (its own stage, so a failure at 1024 px keeps the 256 and 512 px results)."""
        cfg = self.cfg
        summary: dict[str, Any] = self.info.setdefault("fig5", {})
        summary.update({"style": style, "eval_set": cfg.eval_set, "gatys_init": cfg.gatys_init,
                        "gatys_iterations": cfg.values.gatys_iterations})
        summary.setdefault("sizes", {})
        images = self.load_eval_images(cfg.eval_set, cfg.values.n_images, size, square=True)
        network, content, traces = {}, {}, {}
        outputs = self.network_outputs(style, [x.to(self.device) for _, x in images])
        for i, (stem, x) in enumerate(images):
            x = x.to(self.device)
            network[stem] = self.network_objective(style, x, outputs[i])[0]["total"]
            objective = self.scoring_objective(style)
            with torch.no_grad():
                content[stem] = float(objective(x, objective.content_targets(x))["total"].sum())
            traces[stem], _ = self.gatys(style, x, cfg.values.gatys_iterations, cfg.seed + i,
                                         gatys_trace_path(self.out, size, stem),
                                         desc=f"gatys {size}px {stem}")
        m = match_statistics(traces, network)
        rows = fig5_rows(size, network, content, traces, m)
        write_fig5_curve(self.out, size, traces, m, content)
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

    def stage_table1(self, style: str, size: int) -> list[dict[str, Any]]:
        """Table 1 at one size: the feed-forward time measured here, the L-BFGS times read from fig5's traces."""
        cfg, rows = self.cfg, []
        detail: dict[str, Any] = self.info.setdefault("table1", {})
        detail.update({"gatys_source": "fig5 traces: median over images of wall_time_s at the iteration",
                       "feedforward": "batch 1, eval mode, inference_mode; median of repeats after warm-up, "
                                      "synchronised (perceptual.speed.time_forward)"})
        detail.setdefault("sizes", {})
        detail["paths"] = ("both paths timed: rows <method>_<path> (fast, reference); the unsuffixed rows are the "
                           f"run's own path ({cfg.path}). The other path's L-BFGS times come from one image, "
                           f"{TABLE1_OTHER_PATH_ITERATIONS} iterations at most (longer counts extrapolated, labelled)")
        traces = self._traces.get(size) or {image: read_trace(p) for (_, image), p in gatys_traces(self.out, size).items()}
        if not traces:
            raise RuntimeError(f"no Gatys traces at {size} px: Table 1's L-BFGS times come from the fig5 stage")
        x = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(cfg.seed)).to(self.device)
        d: dict[str, Any] = {"n_traces": len(traces), "paths": {}}
        for path in (cfg.path, *[p for p in PATHS if p != cfg.path]):
            if path == cfg.path:
                path_traces = list(traces.values())
            else:  # the other path: one Fig. 5 image, a shorter run
                _, img = self.load_eval_images(cfg.eval_set, 1, size, square=True)[0]
                its = min(cfg.values.gatys_iterations, TABLE1_OTHER_PATH_ITERATIONS)
                path_traces = [self.run_gatys(style, img.to(self.device), its, cfg.seed, f"table1 {path} {size}px",
                                              path=path).trace]
            ff = time_feedforward(self.stylizer(style, path, timed=True), x, warmup=3, repeats=cfg.values.feedforward_repeats)
            pd: dict[str, Any] = {"feedforward": ff.as_dict(), "n_traces": len(path_traces)}
            methods = [("johnson_feedforward", "seconds", ff.median_s)]
            for n in TABLE1_ITERATIONS:
                sec, measured = table1_gatys_seconds(path_traces, n)
                methods.append((f"gatys_lbfgs_{n}", "seconds" if measured else "seconds_extrapolated", sec))
                pd[f"gatys_lbfgs_{n}"] = {"seconds": sec, "measured": measured}
                if n == 500:
                    methods.append(("speedup_vs_500", "ratio" if measured else "ratio_extrapolated", sec / ff.median_s))
            rows += [style_row(size, f"{m}_{path}", MEAN, metric, v) for m, metric, v in methods]
            if path == cfg.path:
                rows += [style_row(size, m, MEAN, metric, v) for m, metric, v in methods]
                d |= {k: v for k, v in pd.items() if k != "n_traces"}
            d["paths"][path] = pd
        detail["sizes"][str(size)] = d
        return rows

    def stage_outputs(self, style: str) -> list[dict[str, Any]]:
        from data.images import save_image

        cfg, name = self.cfg, self.style_name(style)
        folder = self.out / "images" / "style" / name
        save_image(self.style_image(style), folder / "style.png")
        images = self.load_eval_images(cfg.content_set, cfg.values.n_outputs, cfg.values.output_size, square=False)
        outputs = self.network_outputs(style, [x.to(self.device) for _, x in images])
        for i, (stem, x) in enumerate(images):
            x = x.to(self.device)
            _, y = self.network_objective(style, x, outputs[i])
            save_image(x, folder / f"{stem}_content.png")
            save_image(y, folder / f"{stem}_network.png")
            _, g = self.gatys(style, x, cfg.values.output_gatys_iterations, cfg.seed + i, None, desc=f"gatys {stem}")
            assert g is not None  # without a trace path nothing is reused: the image is always returned
            save_image(g, folder / f"{stem}_gatys.png")
        return []

    # -- the whole run ------------------------------------------------------------------------------------------
    def run(self) -> int:
        cfg = self.cfg
        self.check_inputs()
        self.prepare_folder()
        self.info["device_settings"] = self.device_settings
        self._traces: dict[int, dict[str, list[dict[str, float]]]] = {}
        self.info["notes"] = self.card_notes()
        self.write_run_json()
        first = cfg.styles[0]
        for style in cfg.styles:
            name = self.style_name(style)
            if "train" in cfg.stages:
                self.parts.run(f"train:{name}", partial(self.stage_train, style))
            elif (self.out / "models" / f"{name}.pt").exists():
                self.stages[f"train:{name}"] = {"status": OK, "wall_time_s": 0.0, "error": None,
                                                "note": "model loaded from models/"}
        fname = self.style_name(first)
        for size in cfg.sizes:  # one stage per size: a failure (e.g. out of memory at 1024 px) keeps the others
            if "fig5" in cfg.stages:
                self.parts.run(f"fig5:{size}", partial(self.stage_fig5, first, size), needs=[f"train:{fname}"])
            if "table1" in cfg.stages:
                self.parts.run(f"table1:{size}", partial(self.stage_table1, first, size),
                           needs=[f"train:{fname}", f"fig5:{size}"])
        if "outputs" in cfg.stages:
            for style in cfg.styles:
                name = self.style_name(style)
                self.parts.run(f"outputs:{name}", partial(self.stage_outputs, style), needs=[f"train:{name}"])
        self.parts.write_results()
        self.write_run_json()
        if "report" in cfg.stages:
            report_stage(self.record, self.out)
            self.write_run_json()
        failed = self.record.failed()
        log.info("run folder %s: %d stages, failed: %s", self.out, len(self.stages), ", ".join(failed) or "none")
        return 1 if failed else 0

    # -- bench.training.distributed.Harness: what a follower rank needs --------------------------------------
    def global_batches(self) -> list[tuple[int, str]]:
        return [(self.cfg.values.batch_size, "--batch-size")]

    def follower_jobs(self) -> Callable[[str, dict[str, Any]], Callable[[], Any] | None]:
        """Builders of this run's trainings by name (<style>, and <style>_tv<w> during --tv-search)."""
        def build(name: str, msg: dict[str, Any]) -> Callable[[], Any] | None:
            for style in self.cfg.styles:
                base = self.style_name(style)
                if name == base:
                    tv = msg.get("meta", {}).get("loss_weights", {}).get("tv")
                    if tv is not None:
                        self.tv_chosen[base] = float(tv)  # rank 0's TV search chose it on images only it scored
                    return lambda: self.train(style)
                for tv in tv_candidates():
                    if name == f"{base}_tv{tv:g}":
                        return lambda: self.train(style, tv_weight=tv, iterations=self.cfg.values.tv_search_iterations,
                                                  tag=f"_tv{tv:g}")
            return None
        return build



def main(argv: Sequence[str] | None = None) -> int:
    """Parse, check every argument (exit status 2 and nothing written when one is unusable), run; 1 when a stage
    failed."""
    given = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if args.seeds:
        stages = [] if "--stages" in given else ["--stages", *(s for s in STYLE_STAGES if s != "report")]
        return multi_seed_main("bench.style", main, args, given, no_report=stages)
    try:
        settings = settings_from_args(args, argv)
        if args.dry_run:
            return style_dry_run(StyleRun(settings), args)
        log.info("profile %s on %s: styles %s, sizes %s, out %s", settings.profile, settings.device,
                 settings.styles, settings.sizes, settings.out)
        return run_harness(StyleRun(settings))
    except (RunFolderError, ArgumentError) as e:
        print(f"reproduce-style: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
