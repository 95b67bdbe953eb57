"""`--dry-run` for both harnesses: resolve a run's whole plan, print it, and exit without writing anything.

Why: a paper-profile run takes hours; its setup (network variant, loss layers, schedule, corpora, evaluation sets
and protocol, the claims it will check) and its likely duration should be readable before it starts.
Guarantees: nothing is created or written (no --out folder, no checkpoint, no log file); the names the run reads are
resolved and checked as the run would check them (a bad one is still exit status 2); the wall-time estimate comes
from real training steps (and, for style, objective evaluations) timed here on the chosen device after one warm-up,
multiplied out, and the plan says it is an estimate and from how many steps. The timed networks get random inputs
and a randomly initialised loss network: their cost is that of the run's, without reading weight files.
"""
from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from bench.run.inputs import eval_sets
from bench.run.profiles import FEAT_LAYER, HISTMATCH_NOTE, METHODS, PAPER_CORPUS, SRCNN_SCALES, setup_note
from bench.training.compile_policy import training_decision

if TYPE_CHECKING:  # the harnesses import this module (--dry-run) and hand it their objects; types for hints only
    from bench.sr.config import SRRunConfig
    from bench.sr.harness import SRHarness
    from bench.style.config import StyleSettings
    from bench.style.harness import StyleRun

# ----------------------------------------------------------------------------------------------------- timing


def time_step(step: Callable[[], None], n: int, device: torch.device) -> float | None:
    """Median seconds of `n` calls of `step` after one warm-up call (synchronised on CUDA); None when n == 0."""
    from perceptual.speed import time_fn

    return time_fn(step, device, warmup=1, repeats=n).median_s if n > 0 else None


@dataclass(frozen=True)
class Work:
    """One part of the run's time: `count` repetitions of something that takes `seconds` (None: not measured)."""

    name: str
    count: int
    seconds: float | None
    how: str = ""

    @property
    def total(self) -> float | None:
        return None if self.seconds is None else self.count * self.seconds


def fmt_duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def estimate_lines(work: Iterable[Work], n_steps: int, device: str, excluded: str) -> list[str]:
    """The plan's wall-time section: per part count x measured seconds, the total, and what it leaves out."""
    work = list(work)
    if n_steps <= 0:
        return ["estimated wall time: not measured (--estimate-steps 0)"]
    total = sum(w.total or 0.0 for w in work)
    if torch.device(device).type == "cpu":
        device = f"{device}, {torch.get_num_threads()} torch thread(s)"
    lines = [(f"estimated wall time on this device ({device}): about {fmt_duration(total)} -- an ESTIMATE, from "
              f"the median of {n_steps} timed step(s) after 1 warm-up per part, multiplied out; {excluded}")]
    for w in work:
        if w.seconds is not None:
            lines.append(f"    {w.name:34s} {w.count:>10,d} x {w.seconds:8.4f} s = {fmt_duration(w.total or 0.0):>9s}"
                         + (f"  ({w.how})" if w.how else ""))
    return lines


def _print_plan(title: str, sections: list[tuple[str, list[str]]]) -> None:
    lines = [title]
    for head, body in sections:
        lines.append(f"  {head}:")
        lines.extend(f"    {line}" for line in body)
    print("\n".join(lines), flush=True)


def _out_line(out: Path) -> str:
    if not out.exists():
        return f"{out} (does not exist; a dry run does not create it)"
    if (out / "run.json").is_file():
        return f"{out} (holds a run: the real run needs --resume or --overwrite, or another --out)"
    return f"{out} (exists)"


def _corpus_line(role: str, corpus: Any, substitute_for: str) -> str:
    skipped = len(getattr(corpus, "skipped", []))
    return (f"{role}: {corpus.name} ({corpus.n_images:,d} images{f', {skipped} skipped' if skipped else ''}; "
            f"{corpus.path}) -- {substitute_for}")


# ----------------------------------------------------------------------------------------------------- SR


def sr_claims(cfg: SRRunConfig) -> list[str]:
    """The paper's SR claims this run's methods and scales let the report check."""
    m, scales = set(cfg.methods), cfg.scales
    out = []
    if "bicubic" in m:
        out += [f"x{s}: bicubic equals the paper's row (protocol check; Fig. {8 if s == 4 else 9})" for s in scales]
    if {"pixel", "bicubic"} <= m:
        out += [f"x{s}: l_pixel minus bicubic against the paper's deltas (PSNR-Y and SSIM-Y)" for s in scales]
    if {"feat", "bicubic"} <= m and 4 in scales:
        out.append("x4: l_feat has the lowest PSNR-Y and SSIM-Y")
    if {"feat", "bicubic"} <= m and 8 in scales:
        out.append("x8: l_feat has the lowest PSNR-Y but a higher SSIM-Y than bicubic")
    if {"srcnn", "pixel"} <= m and 4 in scales:
        out.append("x4: SRCNN beats l_pixel in PSNR-Y")
    for cli, label in (("pixel", "l_pixel"), ("feat", "l_feat")):
        if cli in m:
            out += [f"x{s}: {label} (raw and histogram-matched) vs the paper's means" for s in scales]
    if "srcnn" in m and 4 in scales:
        out.append("x4: SRCNN vs the paper's SRCNN row")
    if cfg.profile.name != "paper":
        out.append(f"(trained networks under the {cfg.profile.name} profile are 'not comparable' in absolute claims)")
    return out


def _sr_work(cfg: SRRunConfig, n_steps: int) -> list[Work]:
    from baselines.srcnn import SRCNN, srcnn_loss
    from perceptual.losses import FeatureReconstructionLoss, PixelLoss
    from perceptual.nets import SRNet
    from perceptual.vgg import LossNetwork

    device = torch.device(cfg.device)
    if device.type == "cuda":  # as the harness sets them
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    g = torch.Generator().manual_seed(cfg.seed)
    loss_net = None
    work = []
    for scale in cfg.scales:
        for cli in ("pixel", "feat"):
            if cli not in cfg.methods:
                continue
            model = SRNet(scale, cfg.variant).to(device).train()
            if cli == "feat":
                if loss_net is None:
                    loss_net = LossNetwork((FEAT_LAYER,), weights="random", device=device)
                criterion: torch.nn.Module = FeatureReconstructionLoss(loss_net, FEAT_LAYER, tv_weight=cfg.tv_weight)
            else:
                criterion = PixelLoss()
            b, side = cfg.profile.batch_size, cfg.profile.patch_size
            hr = torch.rand(b, 3, side, side, generator=g).to(device)
            lr = torch.rand(b, 3, side // scale, side // scale, generator=g).to(device)
            opt = torch.optim.Adam(model.parameters(), lr=cfg.profile.lr)

            def step(model: torch.nn.Module = model, criterion: torch.nn.Module = criterion,
                     opt: torch.optim.Optimizer = opt, lr: torch.Tensor = lr, hr: torch.Tensor = hr) -> None:
                opt.zero_grad(set_to_none=True)
                criterion(model(lr), hr)["total"].mean().backward()
                opt.step()

            work.append(Work(f"train {METHODS[cli][0]}_x{scale}", cfg.profile.iterations,
                             time_step(step, n_steps, device), f"batch {b} x {side} px"))
            del model, opt
    if "srcnn" in cfg.methods:
        p = cfg.profile
        for scale in (s for s in cfg.scales if s in SRCNN_SCALES):
            srcnn = SRCNN().to(device).train()
            srcnn_opt = torch.optim.Adam(srcnn.param_groups(p.srcnn_lr))
            y = torch.rand(p.srcnn_batch_size, 1, p.srcnn_patch_size, p.srcnn_patch_size, generator=g).to(device)

            def srcnn_step(model: SRCNN = srcnn, opt: torch.optim.Optimizer = srcnn_opt, y: torch.Tensor = y) -> None:
                opt.zero_grad(set_to_none=True)
                srcnn_loss(model, (y, y), border=model.border)["total"].mean().backward()
                opt.step()

            work.append(Work(f"train srcnn_x{scale}", p.srcnn_iterations, time_step(srcnn_step, n_steps, device),
                             f"batch {p.srcnn_batch_size} x {p.srcnn_patch_size} px Y"))
    return work


def _sr_compile_lines(harness: SRHarness) -> list[str]:
    """--compile's decision for each training the run would do (bench.training.compile_policy), with its reason."""
    cfg, p = harness.cfg, harness.cfg.profile
    if cfg.path != "fast":
        return ["compile: no (--path reference)"]
    lines = []
    for scale in cfg.scales:
        for cli in ("srcnn", "pixel", "feat"):
            if cli not in cfg.methods or (cli == "srcnn" and scale not in SRCNN_SCALES):
                continue
            d = (training_decision(cfg.compile, cfg.device, p.name, "srcnn", p.srcnn_iterations,
                                   p.srcnn_batch_size * p.srcnn_patch_size ** 2) if cli == "srcnn" else
                 training_decision(cfg.compile, cfg.device, p.name, "sr", p.iterations, p.batch_size * p.patch_size ** 2))
            lines.append(f"compile {METHODS[cli][0]}_x{scale}: {'yes' if d.compile else 'no'} -- {d.why}")
    return lines


def sr_dry_run(harness: SRHarness, args: argparse.Namespace) -> int:
    """Print the SR run's plan (after resolving its datasets and corpora as the run would) and return 0."""
    cfg = harness.cfg
    datasets = eval_sets(cfg.datasets, max(cfg.scales), cfg.skip_unreadable).files  # the run's own checks:
    harness._build_corpora()  # a bad --datasets / --corpus is exit 2
    p = cfg.profile
    protocol = cfg.eval_protocol + "".join(f"; also {o} (into {_out_line(cfg.out / f'protocol-{o}')})"
                                           for o in cfg.also_protocols)
    learned = [c for c in ("srcnn", "pixel", "feat") if c in cfg.methods]
    layers = []
    if "feat" in cfg.methods:
        layers.append(f"l_feat: VGG-16 {FEAT_LAYER} ({cfg.vgg_weights} weights), TV weight {cfg.tv_weight:g}")
    if "pixel" in cfg.methods:
        layers.append("l_pixel: per-pixel squared error (no loss network)")
    if "srcnn" in cfg.methods:
        layers.append("SRCNN: squared error on Y (9-1-5, border 6)")
    training = []
    if cfg.needs("pixel", "feat"):
        training.append(f"SR networks: {cfg.profile.iterations:,d} iterations, batch {cfg.profile.batch_size}, "
                        f"{cfg.profile.patch_size} px HR patches ("
                        + ", ".join(f"{cfg.profile.patch_size // s} px LR at x{s}" for s in cfg.scales)
                        + f"), Adam lr {cfg.profile.lr:g}, LR = blur sigma {p.sigma:g} + bicubic downscale")
    if "srcnn" in cfg.methods and any(s in SRCNN_SCALES for s in cfg.scales):
        training.append(f"SRCNN: {cfg.profile.srcnn_iterations:,d} iterations, batch {p.srcnn_batch_size}, "
                        f"{p.srcnn_patch_size} px Y sub-images (stride {p.srcnn_stride}), Adam lr {p.srcnn_lr:g} "
                        f"(last layer {p.srcnn_lr * 0.1:g})")
    if not training:
        training.append("none (no learned method)")
    corpora = []
    if harness.corpus is not None:
        corpora.append(_corpus_line("SR networks", harness.corpus, f"the paper: {PAPER_CORPUS}"))
    if harness.srcnn_corpus is not None:
        corpora.append(_corpus_line("SRCNN", harness.srcnn_corpus, "SRCNN's own 91-image set is included"))
    evaluation = [", ".join(f"{name} ({len(files)} images)" for name, files in datasets.items()),
                  f"protocol: {protocol}", "PSNR/SSIM on Y (BT.601), border = scale; LPIPS "
                  + ("+".join(cfg.lpips) or "off"),
                  f"histogram matching (_histmatch rows): {HISTMATCH_NOTE}"]
    work = _sr_work(cfg, args.estimate_steps)
    _print_plan("reproduce-sr plan (dry run: nothing written)", [
        ("run", [f"profile: {p.name} ({p.note})", setup_note(p.name, cfg.variant), f"device: {cfg.device}",
                 f"out: {_out_line(cfg.out)}", f"seed: {cfg.seed}"]),
        ("networks", [f"variant: {cfg.variant}", f"scales: {' '.join(f'x{s}' for s in cfg.scales)}",
                      "methods: " + ", ".join(n for m in cfg.methods for n in METHODS[m]),
                      f"trained: {', '.join(learned) or 'none'} (SRCNN at x4 only, as the paper)"]),
        ("loss layers", layers or ["none (no learned method)"]),
        ("training", training + _sr_compile_lines(harness)),
        ("training corpora", corpora or ["none"]),
        ("evaluation", evaluation),
        ("claims checked", sr_claims(cfg)),
        ("time", estimate_lines(work, args.estimate_steps, cfg.device,
                                "training only (evaluation, LPIPS and the report are not included)")),
    ])
    return 0


# ----------------------------------------------------------------------------------------------------- style


def style_claims(cfg: StyleSettings) -> list[str]:
    """The paper's style-transfer claims this run's stages let the report check."""
    out = []
    if "fig5" in cfg.stages:
        out.append(f"Fig. 5 at {', '.join(f'{x} px' for x in cfg.sizes)}: L-BFGS (same objective, from "
                   f"{cfg.gatys_init}) reaches the network's objective between iterations 50 and 100")
    if "table1" in cfg.stages:
        out.append("Table 1: speedup of one forward pass over 100 / 300 / 500 L-BFGS iterations "
                   "(paper, 256 px: 212 / 636 / 1060x)")
        out.append("Table 1 text: one forward pass takes about half the time of one L-BFGS iteration")
    if cfg.profile != "paper":
        out.append(f"(a network trained under the {cfg.profile} profile is 'not comparable' in the Fig. 5 claim)")
    return out


def _style_work(cfg: StyleSettings, n_steps: int) -> list[Work]:
    from perceptual.losses import PerceptualObjective
    from perceptual.nets import TransformNet
    from perceptual.vgg import LossNetwork

    device = torch.device(cfg.device)
    p = cfg.values
    g = torch.Generator().manual_seed(cfg.seed)
    loss_net = LossNetwork(weights="random", device=device)
    style = torch.rand(1, 3, p.train_size, p.train_size, generator=g).to(device)
    objective = PerceptualObjective(loss_net, style, cfg.weights, content_layer=cfg.content_layer).to(device)
    work = []
    n_styles = len(cfg.styles)
    if "train" in cfg.stages:
        net = TransformNet(cfg.variant).to(device).train()
        opt = torch.optim.Adam(net.parameters(), lr=p.lr)
        x = torch.rand(p.batch_size, 3, p.train_size, p.train_size, generator=g).to(device)

        def step() -> None:
            opt.zero_grad(set_to_none=True)
            objective(net(x), objective.content_targets(x))["total"].mean().backward()
            opt.step()

        t = time_step(step, n_steps, device)
        work.append(Work("train (all styles)", n_styles * p.iterations, t,
                         f"{n_styles} style(cfg) x {p.iterations:,d} it, batch {p.batch_size} x {p.train_size} px"))
        if cfg.tv_search:
            work.append(Work("TV search (all styles)", n_styles * 3 * p.tv_search_iterations, t,
                             f"3 candidates x {p.tv_search_iterations:,d} it per style"))
        del net, opt
    sizes = ([*cfg.sizes] if "fig5" in cfg.stages else []) + ([p.output_size] if "outputs" in cfg.stages else [])
    if sizes:
        base = min(sizes)
        x = torch.rand(1, 3, base, base, generator=g).to(device)
        targets = objective.content_targets(x)
        img = x.clone().requires_grad_(True)

        def lbfgs_eval() -> None:
            img.grad = None
            objective(img, targets)["total"].sum().backward()

        t = time_step(lbfgs_eval, n_steps, device)

        def at(size: int) -> float | None:
            return None if t is None else t * (size / base) ** 2

        how = f"one objective forward+backward, timed at {base} px" + (", scaled by pixel count" if
                                                                         len(set(sizes)) > 1 else "")
        if "fig5" in cfg.stages:
            for size in cfg.sizes:
                work.append(Work(f"Fig. 5 L-BFGS at {size} px", p.n_images * p.gatys_iterations, at(size),
                                 f"{p.n_images} images x {p.gatys_iterations} it; {how}"))
        if "outputs" in cfg.stages:
            work.append(Work(f"outputs L-BFGS at {p.output_size} px", n_styles * p.n_outputs * p.output_gatys_iterations,
                             at(p.output_size), f"{n_styles} x {p.n_outputs} images x {p.output_gatys_iterations} "
                                               f"it, treated as square; {how}"))
    return work


def style_dry_run(run: StyleRun, args: argparse.Namespace) -> int:
    """Print the style run's plan (after checking its inputs as the run would) and return 0."""
    from perceptual.losses import STYLE_LAYERS

    cfg = run.cfg
    run.check_inputs()  # the run's own checks (styles, corpus, image sets): a bad name is exit 2, nothing written
    p, w = cfg.values, cfg.weights
    tv = run.tv_choice()
    if tv["mode"] == "search":
        tv_line = (f"TV: searched per style over {', '.join(f'{v:g}' for v in tv['candidates'])} (ours; paper "
                   f"{', '.join(f'{v:g}' for v in tv['candidates_paper_units'])}; {tv['mapping']}), "
                   f"{p.tv_search_iterations:,d} iterations each, {p.n_val_images} held-out validation images; "
                   f"criterion: {tv['criterion']}; Gatys uses the chosen value too")
    else:
        tv_line = f"TV: {w.tv:g} ({w.tv_form}), fixed by {tv['set_by']}"
    training = [f"{p.iterations:,d} iterations per style, batch {p.batch_size}, {p.train_size} px {cfg.crop} crops, "
                f"Adam lr {p.lr:g}" + (f", at most {p.max_train_images} images" if p.max_train_images else "")]
    if p.trend:
        training.append(f"trend: the first style's network trained once, Fig. 5 measured at {', '.join(map(str, p.trend))} "
                        f"iterations as it goes (checkpoints), against one L-BFGS curve of {p.gatys_iterations} "
                        f"iterations per image at {' '.join(map(str, cfg.sizes))} px, into trend.csv")
    if cfg.path == "fast":
        d = training_decision(cfg.compile, cfg.device, cfg.profile, "style", p.iterations,
                              p.batch_size * p.train_size ** 2)
        training.append(f"compile: {'yes' if d.compile else 'no'} -- {d.why}")
    if "train" not in cfg.stages:
        training = ["not run (--stages without train: the networks are loaded from --out/models)"]
    corpus = []
    if "corpus" in run.info:
        c = run.info["corpus"]
        corpus.append(f"{c.get('name', cfg.train_corpus)} ({c['n_images']:,d} images used) -- {c.get('note', '')}")
    datasets = run.info.get("datasets", {})
    evaluation = []
    if "fig5" in cfg.stages:
        d = datasets.get("fig5", {})
        evaluation.append(f"Fig. 5: first {p.n_images} of {d.get('name', cfg.eval_set)} at "
                          f"{' '.join(map(str, cfg.sizes))} px (centre squares), L-BFGS {p.gatys_iterations} iterations "
                          f"from {cfg.gatys_init} on the same objective, the network's and the content image's objective")
    if "table1" in cfg.stages:
        evaluation.append(f"Table 1: one forward pass (median of {p.feedforward_repeats}) vs 100/300/500 L-BFGS "
                          f"iterations read from the Fig. 5 traces")
    if "outputs" in cfg.stages:
        d = datasets.get("outputs", {})
        evaluation.append(f"outputs: {p.n_outputs} images of {d.get('name', cfg.content_set)} at {p.output_size} px, "
                          f"network beside L-BFGS {p.output_gatys_iterations} iterations")
    work = _style_work(cfg, args.estimate_steps)
    _print_plan("reproduce-style plan (dry run: nothing written)", [
        ("run", [f"profile: {cfg.profile}", setup_note(cfg.profile, cfg.variant, cfg.content_layer), f"device: {cfg.device}",
                 f"out: {_out_line(cfg.out)}", f"seed: {cfg.seed}", f"stages: {' '.join(cfg.stages)}"]),
        ("networks", [f"variant: {cfg.variant}", "styles: " + ", ".join(f"{k} ({v})" for k, v in run.style_paths.items())]),
        ("loss layers", [f"content: VGG-16 {cfg.content_layer} (weight {w.content:g}), for the network and Gatys alike",
                         f"style: {', '.join(STYLE_LAYERS)} (weight {w.style:g})", tv_line,
                         f"loss network weights: {cfg.vgg_weights}"]),
        ("training", training),
        ("training corpus", corpus or ["not read (no train stage)"]),
        ("evaluation", evaluation or ["none"]),
        ("claims checked", style_claims(cfg)),
        ("time", estimate_lines(work, args.estimate_steps, cfg.device,
                                "Table 1's forward passes, image loading and the report are not included")),
    ])
    return 0
