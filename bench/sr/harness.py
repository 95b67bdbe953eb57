"""Super-resolution reproduction (Johnson et al. 2016, Sec. 4.2, Fig. 8): `python -m bench.sr` / `reproduce-sr`.

It reads like the paper's section: bicubic on every evaluation set (the protocol check), then per scale train the SR
network with l_pixel and with l_feat (+ SRCNN at x4), evaluate each on Set5/Set14/BSD100 (PSNR/SSIM on Y, LPIPS;
raw and histogram-matched), then the report. A failing method is recorded in run.json and the others carry on;
results.csv is rewritten after every image; `--resume` continues an interrupted run exactly. The protocol in full,
with its reasons: docs/sr.md.
"""
from __future__ import annotations

import dataclasses
import logging
import sys
import time
import traceback
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from baselines.bicubic import eval_bicubic_upscale
from baselines.srcnn import SRCNN, srcnn_loss, srcnn_upscale
from bench.metrics import evaluate_pair, to_uint8
from bench.run.errors import ArgumentError, RunFolderError, describe_failure
from bench.run.folder import RunRecord, prepare_out, report_stage
from bench.run.inputs import eval_sets, training_corpus
from bench.run.plan import sr_dry_run
from bench.run.profiles import FEAT_LAYER, LPIPS_NETS, METHODS, PAPER_CORPUS, SRCNN_SCALES
from bench.run.provenance import command_line, environment, file_hashes, file_list_digest
from bench.run.seeds import multi_seed_main
from bench.sr.config import CURVE_DATASET, SCALES, TASK, SRRunConfig, build_parser, config_from_args
from bench.sr.curve import curve_iterations_done, write_curve_point
from bench.tools.export import export_network
from bench.training.distributed import run_harness  # alone, or one rank of a torchrun job
from bench.training.exec_path import ExecPath
from bench.training.loop import TrainConfig, TrainResult, seeded_loss_network, train
from data.catalog import UnknownDatasetError
from data.eval_protocol import EVAL_PROTOCOLS, make_eval_lr
from data.fetch import FetchError
from data.files import HashMismatchError
from data.histmatch import histmatch
from data.images import load_image_uint8, save_image
from perceptual.device import configure as configure_device
from perceptual.fast import FastConfig
from perceptual.lpips_offline import lpips_distance
from perceptual.nets import SRNet
from reports.results import MEAN, RESULTS_FILE, ResultsTable

__all__ = ["MEAN", "SCALES", "TASK", "SRHarness", "SRMethod", "SRRunConfig", "build_parser", "config_from_args",
           "main", "run"]
log = logging.getLogger("bench.sr")
OWNED = (RESULTS_FILE, "run.json", "logs", "images", "checkpoints", "report", "curve.csv", "weights",
         *(f"protocol-{p}" for p in EVAL_PROTOCOLS))


# --------------------------------------------------------------------------------------------------- methods


class SRMethod:
    """One `--methods` choice at one scale: makes its outputs (uint8 HxWx3, or HxW for bicubic on gray), named as
    in results.csv (`outputs`: e.g. johnson_feat and johnson_feat_histmatch), from an LR image."""

    def __init__(self, option: str, scale: int, run: Callable[[np.ndarray, torch.Tensor], dict[str, np.ndarray]]):
        self.option, self.scale, self.run, self.outputs = option, scale, run, METHODS[option]


def bicubic_method(scale: int, protocol: str = "standard") -> SRMethod:
    return SRMethod("bicubic", scale, lambda lr, lr_t: {"bicubic": eval_bicubic_upscale(lr, scale, protocol)})


def srcnn_method(model: nn.Module, scale: int) -> SRMethod:
    def run(lr: np.ndarray, lr_t: torch.Tensor) -> dict[str, np.ndarray]:
        return {"srcnn": to_uint8(srcnn_upscale(model, lr_t, scale))}
    return SRMethod("srcnn", scale, run)


def johnson_method(option: str, model: Callable[[torch.Tensor], torch.Tensor], scale: int) -> SRMethod:
    raw, matched = METHODS[option]

    def run(lr: np.ndarray, lr_t: torch.Tensor) -> dict[str, np.ndarray]:
        with torch.inference_mode():
            sr = to_uint8(model(lr_t).clamp(0, 1))
        lr_rgb = lr if lr.ndim == 3 else np.repeat(lr[..., None], 3, axis=2)
        return {raw: sr, matched: histmatch(sr, lr_rgb)}
    return SRMethod(option, scale, run)


def _scoring_view(sr: np.ndarray, gray: bool) -> np.ndarray:
    """What is scored: the output itself, or for a 1-channel ground truth the rounded mean of its channels."""
    if not gray or sr.ndim == 2:
        return sr
    return np.floor(sr.astype(np.float64).mean(axis=2) + 0.5).astype(np.uint8)


# ---------------------------------------------------------------------------------------------------- harness


class SRHarness:
    """Runs one SR reproduction into `cfg.out`; implements bench.training.distributed.Harness."""

    results: ResultsTable  # results.csv of the run folder being written (the main one or a protocol sub-folder)

    def __init__(self, cfg: SRRunConfig):
        self.cfg = cfg
        self.out = cfg.out
        self.device = torch.device(cfg.device)
        # the process's backend flags (TF32, cuDNN autotuning) for this device, set here once on every rank
        self.device_settings = configure_device(self.device)
        self.exec = ExecPath(cfg.path, self.device, cfg.compile, cfg.profile.name)
        self.lpips_models: dict[str, Any] = {}
        self.loss_net: nn.Module | None = None
        self.resuming = False
        self.skipped_files: list[dict[str, str]] = []  # --skip-unreadable: what was left out, per dataset
        self.dataset_totals: dict[str, int] = {}

    # -- setup ------------------------------------------------------------------------------------------------
    def mean_over(self, dataset: str) -> str:
        """How many images a dataset mean is over: "over all M images" or, after --skip-unreadable, "over N of M"."""
        n = len(self.datasets[dataset])
        m = self.dataset_totals.get(dataset, n)
        return f"over {n} of {m} images" if n != m else f"over all {m} images"

    def _start_record(self, previous: dict[str, Any] | None) -> None:
        cfg, info = self.cfg, dict(previous or {})
        env = environment(self.device, cfg.seed, cfg.profile.name, command_line("bench.sr", cfg.argv))
        sessions = [*info.get("sessions", []), {"date": env["date"], "argv": env["argv"], "resumed": bool(previous)}]
        info |= env | cfg.describe() | {
            "device_settings": self.device_settings,
            **self.exec.run_json(),
            "iterations": info.get("iterations", {}), "training": info.get("training", {}),
            "stages": info.get("stages", {}), "sessions": sessions}
        self.record = RunRecord(self.out / "run.json", info)
        self.record.save()

    # -- data ---------------------------------------------------------------------------------------------------
    def _build_corpora(self) -> None:
        """Scan the training corpora up front (a bad --corpus is an argument error, reported before any work)."""
        cfg, p = self.cfg, self.cfg.profile
        self.corpus = self.srcnn_corpus = None
        if cfg.needs("pixel", "feat"):
            self.corpus = training_corpus("--corpus", cfg.corpus, min_size=p.patch_size)
        if cfg.needs("srcnn") and any(s in SRCNN_SCALES for s in cfg.scales):
            scale = max(s for s in cfg.scales if s in SRCNN_SCALES)
            self.srcnn_corpus = training_corpus("--srcnn-corpus", cfg.srcnn_corpus,
                                                min_size=scale * -(-p.srcnn_patch_size // scale))

    def _record_inputs(self) -> None:
        info = self.record.info
        info["datasets"] = {name: {"n_images": len(files), "path": str(files[0].parent),
                                   "sha256": file_hashes(files)} for name, files in self.datasets.items()}
        if self.cfg.skip_unreadable:
            skipped = self.skipped_files
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
    def _train_cfg(self, iterations: int, batch: int, lr: float, cadence_of: int | None = None,
                   fast: FastConfig | None = None) -> TrainConfig:
        """cadence_of: the training's full length when `iterations` is one chunk of it (--curve-every), so that every
        chunk logs and checkpoints on the same cadence as an unchunked training (and may resume the previous one)."""
        p = self.cfg.profile
        every = min(p.checkpoint_every, cadence_of or iterations)
        log_every = min(p.log_every, every)
        every -= every % log_every
        return TrainConfig(iterations=iterations, batch_size=batch, lr=lr, checkpoint_every=every,
                           log_every=log_every, seed=self.cfg.seed, num_workers=self.cfg.workers,
                           progress=self.cfg.progress, path=self.cfg.path, fast=fast)

    def _note_training(self, result: TrainResult) -> None:
        self.record.info["iterations"][result.name] = result.iterations
        decision = self.exec.decision("training", result.name)
        self.record.info["training"][result.name] = result.as_dict() | (
            {"compile": decision.as_dict()} if decision is not None else {})
        self.record.info |= self.exec.run_json()

    def _export(self, name: str, model: nn.Module, option: str, scale: int) -> None:
        """The trained network as RUN/weights/<name>.safetensors + .json (bench.tools.export), named in run.json."""
        extra: dict[str, Any] = {"scale": scale} | ({} if option == "srcnn" else {"variant": self.cfg.variant})
        path = export_network(model, self.out, name, "srcnn" if option == "srcnn" else "sr", extra | {
            "profile": self.cfg.profile.name, "iterations": self.record.info["iterations"][name],
            "seed": self.cfg.seed, "commit": (self.record.info.get("git") or {}).get("commit"),
            "source": f"checkpoints/{name}.pt"})
        self.record.info["training"][name]["export"] = str(path.relative_to(self.out))

    def train_johnson(self, option: str, scale: int) -> nn.Module:
        from data.patches import SRPatchDataset
        from perceptual.losses import FeatureReconstructionLoss, PixelLoss

        cfg, name = self.cfg, f"{METHODS[option][0]}_x{scale}"
        corpus = self.corpus
        assert corpus is not None  # _build_corpora scans it when pixel or feat is asked for
        stream = SRPatchDataset(corpus, scale, cfg.profile.patch_size, sigma=cfg.profile.sigma, seed=cfg.seed)
        torch.manual_seed(cfg.seed)
        model = SRNet(scale, cfg.variant).to(self.device)
        p = cfg.profile
        fast = self.exec.train_config(name, "sr", p.iterations, p.batch_size * p.patch_size ** 2)
        if option == "feat":
            if self.loss_net is None:
                self.loss_net = seeded_loss_network(cfg.seed, cfg.vgg_weights, self.device, (FEAT_LAYER,))
            criterion: nn.Module = FeatureReconstructionLoss(self.loss_net, FEAT_LAYER, tv_weight=cfg.tv_weight)
            if fast is not None:
                from perceptual.fast import fast_feature_loss

                criterion = fast_feature_loss(criterion, fast)
        else:
            criterion = PixelLoss()

        def loss_fn(net: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> dict[str, torch.Tensor]:
            lr, hr = batch
            return criterion(net(lr), hr)

        meta = {"method": METHODS[option][0], "scale": scale, "variant": cfg.variant,
                "data": stream.describe()["kind"], "patch_size": cfg.profile.patch_size, "sigma": cfg.profile.sigma,
                "corpus_digest": file_list_digest(corpus.files),
                "tv_weight": cfg.tv_weight if option == "feat" else 0.0}

        def run_training(iterations: int, resume: bool) -> TrainResult:
            return train(model, loss_fn, stream,
                         self._train_cfg(iterations, cfg.profile.batch_size, cfg.profile.lr,
                                         cadence_of=cfg.profile.iterations, fast=fast),
                         name=name, out_dir=self.out, device=self.device, resume=resume, meta=meta)

        if cfg.profile.curve_every:
            result = self._train_with_curve(option, scale, run_training, model)
        else:
            result = run_training(cfg.profile.iterations, self.resuming)
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
        fast = self.exec.train_config(name, "srcnn", p.srcnn_iterations, p.srcnn_batch_size * p.srcnn_patch_size ** 2)
        meta = {"method": "srcnn", "scale": scale, "data": stream.describe()["kind"],
                "patch_size": p.srcnn_patch_size, "stride": p.srcnn_stride,
                "corpus_digest": file_list_digest(corpus.files)}
        result = train(model, partial(srcnn_loss, border=model.border), stream,
                       self._train_cfg(p.srcnn_iterations, p.srcnn_batch_size, p.srcnn_lr, fast=fast),
                       name=name, out_dir=self.out, device=self.device, resume=self.resuming,
                       param_groups=model.param_groups(p.srcnn_lr), meta=meta)
        self._note_training(result)
        return model.eval()

    # -- evaluation ---------------------------------------------------------------------------------------------
    def eval_shapes(self, scale: int) -> list[tuple[int, int]]:
        """The output shape (H, W) of every evaluation image at `scale` (HR sizes cropped to a multiple of the scale,
        read from the file headers): what the forward compile decision counts."""
        from PIL import Image

        shapes = []
        for files in self.datasets.values():
            for path in files:
                with Image.open(path) as im:
                    w, h = im.size
                shapes.append((h - h % scale, w - w % scale))
        return shapes

    def inference(self, model: nn.Module, use: str = "", scale: int = 4) -> Callable[[torch.Tensor], torch.Tensor]:
        """The trained network as evaluated: itself on the reference path, a FastStylizer on the fast path (compiled
        when `--compile` decides so for this use: `use`, e.g. eval_johnson_feat_x4, over the evaluation images)."""
        if not self.exec.fast:
            return model
        fast = self.exec.forward_config(use or "evaluation", "sr", self.eval_shapes(scale))
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

    def evaluate(self, methods: list[SRMethod], scale: int) -> None:
        """Score every method on every dataset at `scale`; each method succeeds or fails on its own."""
        if not methods:
            return
        spent = {m.option: 0.0 for m in methods}
        errors: dict[str, str] = {}
        for dataset, files in self.datasets.items():
            live = [m for m in methods if m.option not in errors]
            for method in live:
                for output in method.outputs:
                    self.results.drop(dataset, scale, output)
            img_dir = self.out / "images" / "sr" / f"x{scale}" / dataset
            for index, path in enumerate(files):
                live = [m for m in live if m.option not in errors]
                if not live:
                    break
                hr, lr, lr_t = self._eval_pair(path, scale)
                save = index < self.cfg.save_images
                self.image = (dataset, path)  # the image being scored (read by bench.sr.evaluate's methods)
                if save:
                    save_image(hr, img_dir / f"{path.stem}_hr.png")
                for method in live:
                    t = time.perf_counter()
                    try:
                        for output, (view, metrics) in self._score(method, lr, lr_t, hr, scale).items():
                            self.results.add(dataset, scale, output, path.stem, metrics)
                            if save:
                                save_image(view, img_dir / f"{path.stem}_{output}.png")
                    except Exception as e:  # noqa: BLE001 - one method's failure must not stop the others
                        errors[method.option] = describe_failure(
                            e, f"{dataset}/{path.name} ({hr.shape[1]}x{hr.shape[0]} px HR, x{scale})")
                        log.error("evaluating %s x%d failed on %s/%s: %s\n%s", method.option, scale, dataset,
                                  path.name, e, traceback.format_exc(limit=-4))
                        for output in method.outputs:
                            self.results.drop(dataset, scale, output)
                    spent[method.option] += time.perf_counter() - t
                self.results.save()
            for method in live:
                if method.option not in errors:
                    for output in method.outputs:
                        self.results.add_means(dataset, scale, output)
            self.results.save()
        for method in methods:
            self.record.stages[f"eval_{method.option}_x{scale}"] = {
                "status": "failed" if method.option in errors else "ok",
                "wall_time_s": round(spent[method.option], 3), "error": errors.get(method.option)}
        self.record.info |= self.exec.run_json()  # the compile decisions made so far
        self.record.save()

    def evaluate_under(self, protocol: str, methods: list[SRMethod], scale: int) -> None:
        """Score bicubic and the trained `methods` at `scale` under another evaluation protocol, into
        RUN/protocol-<protocol>/: a run folder of its own (results.csv, run.json with that `eval_protocol`, images),
        as a run made with `--eval-protocol <protocol>` would write it, so the protocol labels its rows the way it
        labels every run's rows (run.json, not results.csv)."""
        import copy

        sub_cfg = dataclasses.replace(self.cfg, eval_protocol=protocol, out=self.out / f"protocol-{protocol}",
                                      also_protocols=())
        subs = self.__dict__.setdefault("_protocol_runs", {})
        if protocol not in subs:
            info = copy.deepcopy(self.record.info) | sub_cfg.describe()
            info |= {"stages": {}, "lpips": copy.deepcopy(self.record.info["lpips"]), "report": None,
                     "derived_from": {"run": "..", "what": f"the networks trained in the parent run folder, scored "
                                                           f"under the {protocol!r} protocol (no training here)"}}
            sub_cfg.out.mkdir(parents=True, exist_ok=True)
            subs[protocol] = (RunRecord(sub_cfg.out / "run.json", info),
                              ResultsTable(sub_cfg.out / RESULTS_FILE, TASK, keep_existing=self.resuming))
        main = (self.cfg, self.out, self.record, self.results)
        self.cfg, self.out = sub_cfg, sub_cfg.out
        self.record, self.results = subs[protocol]
        try:
            bicubic = [bicubic_method(scale, protocol)] if "bicubic" in sub_cfg.methods else []
            self.evaluate([*bicubic, *methods], scale)
            failed = self.record.failed()
            self.record.info["status"] = "partial" if failed else "ok"
            self.record.save()
        finally:
            self.cfg, self.out, self.record, self.results = main
        self.record.info.setdefault("also_protocols", {})[protocol] = f"protocol-{protocol}"
        self.record.save()

    def _eval_pair(self, path: Path, scale: int) -> tuple[np.ndarray, np.ndarray, torch.Tensor]:
        """One evaluation image by the run's protocol: HR ground truth, 8-bit LR (gray stays 2-D), and the LR as a
        float RGB batch of one on the run's device (a gray LR as three equal channels)."""
        hr, lr = make_eval_lr(load_image_uint8(path, keep_gray=True), scale, self.cfg.eval_protocol)
        lr_rgb = lr if lr.ndim == 3 else np.repeat(lr[..., None], 3, axis=2)
        lr_t = torch.from_numpy(np.ascontiguousarray(lr_rgb)).permute(2, 0, 1)[None]
        return hr, lr, lr_t.to(self.device).float() / 255.0

    def _score(self, method: SRMethod, lr: np.ndarray, lr_t: torch.Tensor, hr: np.ndarray,
               scale: int) -> dict[str, tuple[np.ndarray, dict[str, float]]]:
        """One LR image through one method, each output scored against `hr` by the protocol (and LPIPS)."""
        gray = hr.ndim == 2  # a 1-channel file (Set14 bridge): scored on its gray values
        scored = {}
        for output, sr in method.run(lr, lr_t).items():
            view = _scoring_view(sr, gray)
            metrics = evaluate_pair(view, hr, scale, gray)
            for net, model in self.lpips_models.items():
                metrics[f"lpips_{net}"] = lpips_distance(model, view, hr, crop=scale)
            scored[output] = (view, metrics)
        return scored

    # -- quality during training (--curve-every) -----------------------------------------------------------------
    def _curve_point(self, option: str, scale: int, model: nn.Module, iteration: int) -> None:
        """Score `model` (after `iteration` training steps) on Set5 by the evaluation protocol into curve.csv."""
        from data.fetch import resolve_images

        files = self.datasets.get(CURVE_DATASET) or sorted(resolve_images(CURVE_DATASET)[1], key=lambda p: p.name)
        method = johnson_method(option, model.eval(), scale)
        values: dict[str, dict[str, list[float]]] = {output: {} for output in method.outputs}
        with torch.no_grad():
            for path in files:
                hr, lr, lr_t = self._eval_pair(path, scale)
                for output, (_, metrics) in self._score(method, lr, lr_t, hr, scale).items():
                    for metric, value in metrics.items():
                        values[output].setdefault(metric, []).append(float(value))
        model.train()
        write_curve_point(self.out, scale, CURVE_DATASET, iteration, values)

    def _train_with_curve(self, option: str, scale: int, run_training: Callable[[int, bool], TrainResult],
                          model: nn.Module) -> TrainResult:
        """Train to the end in chunks of `curve_every` iterations, scoring Set5 after each chunk. Each chunk resumes
        from the previous chunk's final checkpoint, which the training loop restores exactly (same samples, RNG and
        optimiser state), so the trained network is the one an uninterrupted training gives."""
        every, total = self.cfg.profile.curve_every, self.cfg.profile.iterations
        ends = [*range(every, total, every), total]
        done = curve_iterations_done(self.out, scale, METHODS[option][0])
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
                self._curve_point(option, scale, model, end)
        assert first is not None and result is not None
        return dataclasses.replace(result, start_iteration=first.start_iteration, resumed=first.resumed,
                                   session_time_s=session)

    # -- the run: Sec. 4.2 in the paper's order ------------------------------------------------------------------
    def run(self) -> int:
        cfg = self.cfg
        t_start = time.perf_counter()
        # arguments that name data are checked before --out is touched
        sets = eval_sets(cfg.datasets, max(cfg.scales), cfg.skip_unreadable)
        self.datasets, self.dataset_totals, self.skipped_files = sets.files, sets.totals, sets.skipped
        self._build_corpora()
        previous = prepare_out(self.out, TASK, cfg.identity(), cfg.resume, cfg.overwrite, OWNED)
        self.resuming = previous is not None
        self._start_record(previous)
        self._record_inputs()
        self.results = ResultsTable(self.out / RESULTS_FILE, TASK, keep_existing=self.resuming)
        self.results.save()
        if cfg.lpips:
            self._load_lpips()

        # 1. bicubic: no training; the protocol check comes first
        if "bicubic" in cfg.methods:
            for scale in cfg.scales:
                self.evaluate([bicubic_method(scale, cfg.eval_protocol)], scale)

        # 2./3. per scale: train the learned methods, then evaluate them
        for scale in cfg.scales:
            methods: list[SRMethod] = []
            for option in ("srcnn", "pixel", "feat"):
                if option not in cfg.methods:
                    continue
                if option == "srcnn" and scale not in SRCNN_SCALES:
                    self.record.skip(f"eval_srcnn_x{scale}", "SRCNN is retrained and compared at x4 only, as in "
                                                             "the paper")
                    continue
                name = f"{METHODS[option][0]}_x{scale}"
                model = None
                with self.record.stage(f"train_{name}"):
                    model = self.train_srcnn(scale) if option == "srcnn" else self.train_johnson(option, scale)
                    self._export(name, model, option, scale)
                if model is None:
                    self.record.skip(f"eval_{option}_x{scale}", f"training {name} failed")
                    continue
                methods.append(srcnn_method(model, scale) if option == "srcnn"
                               else johnson_method(option, self.inference(model, f"eval_{name}", scale), scale))
            self.evaluate(methods, scale)
            for protocol in cfg.also_protocols:
                self.evaluate_under(protocol, methods, scale)
            del methods

        # 4. the report
        self._report_stage()
        return self._finish(t_start)

    def _report_stage(self) -> None:
        if self.cfg.report:
            html = report_stage(self.record, self.out)
            if html is not None:
                self.record.info["report"] = str(html)
                self.record.save()

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
        cfg, results = self.cfg, self.results
        lines = [f"SR results ({cfg.profile.name} profile, {cfg.device}) in {cfg.out}:"]
        for scale in cfg.scales:
            for dataset in sorted({k[0] for k in results.rows if k[1] == str(scale)}):
                for output in (n for m in cfg.methods for n in METHODS[m]):
                    p = results.mean(dataset, scale, output, "psnr_y")
                    s = results.mean(dataset, scale, output, "ssim_y")
                    if p is not None:
                        extra = "".join(f"  lpips_{n} {v:.4f}" for n in LPIPS_NETS
                                        if (v := results.mean(dataset, scale, output, f"lpips_{n}")) is not None)
                        lines.append(f"  x{scale} {dataset:8s} {output:24s} PSNR-Y {p:6.3f}  SSIM-Y {s:.4f}{extra}")
        lines += [f"  FAILED {name}: {error}" for name, error in failed.items()]
        lines += [f"  {d}: means {self.mean_over(d)} (--skip-unreadable; skipped files in run.json)"
                  for d in {s["dataset"]: None for s in self.skipped_files}]
        print("\n".join(lines), flush=True)
        return 1 if failed else 0

    # -- bench.training.distributed.Harness: what a follower rank needs --------------------------------------
    def global_batches(self) -> list[tuple[int, str]]:
        """(global batch, the option or setting it comes from) of every training this run does."""
        cfg, p = self.cfg, self.cfg.profile
        batches = [(p.batch_size, "--batch-size")] if cfg.needs("pixel", "feat") else []
        if cfg.needs("srcnn") and any(s in SRCNN_SCALES for s in cfg.scales):
            batches.append((p.srcnn_batch_size, f"SRCNN's batch ({p.name} profile)"))
        return batches

    def follower_jobs(self) -> Callable[[str, dict[str, Any]], Callable[[], Any] | None]:
        """Builders of this run's trainings by name (johnson_<loss>_x<scale>, srcnn_x<scale>), for a follower rank:
        it trains in lockstep with rank 0 and never writes (its record is never saved)."""
        self.resuming = False  # rank 0 decides and shares the resume state
        self.record = RunRecord(self.out / "run.json", {"iterations": {}, "training": {}})
        jobs = {f"{METHODS[option][0]}_x{scale}": (option, scale) for option in ("srcnn", "pixel", "feat")
                for scale in self.cfg.scales}
        scanned: list[bool] = []

        def build(name: str, msg: dict[str, Any]) -> Callable[[], Any] | None:
            if name not in jobs:
                return None
            if not scanned:
                self._build_corpora()
                scanned.append(True)
            option, scale = jobs[name]
            if option == "srcnn":
                return lambda: self.train_srcnn(scale)
            return lambda: self.train_johnson(option, scale)
        return build


def run(cfg: SRRunConfig) -> int:
    """Run the SR reproduction described by `cfg`; returns the exit status (1 when any stage failed)."""
    return run_harness(SRHarness(cfg))


def main(argv: list[str] | None = None) -> int:
    given = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    if args.seeds:
        return multi_seed_main("bench.sr", main, args, given, no_report=["--no-report"])
    try:
        cfg = config_from_args(args, argv)
        if args.dry_run:
            return sr_dry_run(SRHarness(cfg), args)
        return run(cfg)
    except (RunFolderError, ArgumentError, ValueError, FileNotFoundError, PermissionError, UnknownDatasetError,
            HashMismatchError, FetchError) as e:
        print(f"reproduce-sr: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
