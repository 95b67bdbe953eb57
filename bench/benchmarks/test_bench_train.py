"""One training step of each network at the paper's batch and patch size; reference and fast path side by side.

- style: TransformNet, batch 4 of 256x256, Eq. 5 with the VGG-16 loss network (content relu2_2, style at four layers)
- sr_x4 / sr_x8: SRNet, batch 4, 72->288 / 36->288, l_feat at relu2_2
- srcnn: SRCNN 9-1-5, batch 128 of 33x33 Y sub-images, per-layer learning rates (Dong et al.)
Reference step = perceptual.fast.reference_train_step, exactly bench.training.loop's iteration (fp32, default Adam, the
per-step sync for the NaN check). Fast step = perceptual.fast.FastTrainer with best_config(device, "train") and the
fast loss helpers (CPU: reference arithmetic with content targets through the truncated VGG; CUDA: bf16 +
channels_last + compile + whole-step CUDA graphs + fused Adam). The same batch is fed every step (data loading is
not timed). The style/SR steps take tens of seconds on a 2-core CPU: they run with --bench-heavy.
"""
from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import pytest
import torch

from baselines.srcnn import SRCNN, srcnn_loss
from bench.benchmarks.runner import HEAVY, SWEEP, BenchRunner, Case, count_flops, rand
from perceptual.fast import FastTrainer, fast_feature_loss, fast_style_loss_fn, reference_train_step
from perceptual.losses import FeatureReconstructionLoss, PerceptualObjective
from perceptual.nets import SRNet, TransformNet
from perceptual.vgg import LossNetwork

SWEEP_VARIANTS: dict[str, dict[str, Any]] = {
    "fast_eager": {"compile": False},
    "fast_nographs": {"cuda_graphs": False},
    "fast_pad8": {"pad_channels": 8},
}


def _sr_loss(criterion: torch.nn.Module) -> Callable[[torch.nn.Module, Any], dict[str, torch.Tensor]]:
    """bench.sr's loss_fn: the criterion on (net(lr), hr)."""
    return lambda model, batch: criterion(model(batch[0]), batch[1])


class _Problem:
    """A network, its batch, the reference loss and a way to build the fast loss, on one device."""

    def __init__(self, name: str, device: torch.device | str):
        torch.manual_seed(0)
        self.name, self.lr, self.groups = name, 1e-3, None
        if name == "style":
            self.model: torch.nn.Module = TransformNet()
            self.batch: Any = rand(4, 3, 256, 256, device=device)
            objective = PerceptualObjective(LossNetwork(weights="random", device=device),
                                            rand(1, 3, 256, 256, device=device, seed=1))
            self.loss = lambda m, b: objective(m(b), objective.content_targets(b))
            self.fast_loss = lambda cfg: fast_style_loss_fn(objective, cfg)
        elif name in ("sr_x4", "sr_x8"):
            scale = int(name[-1])
            self.model = SRNet(scale)
            self.batch = (rand(4, 3, 288 // scale, 288 // scale, device=device),
                          rand(4, 3, 288, 288, device=device, seed=1))
            crit = FeatureReconstructionLoss(LossNetwork(("relu2_2",), weights="random", device=device))
            self.loss = _sr_loss(crit)
            self.fast_loss = lambda cfg: _sr_loss(fast_feature_loss(crit, cfg))
        elif name == "srcnn":
            self.model = SRCNN()
            self.batch = (rand(128, 1, 33, 33, device=device), rand(128, 1, 33, 33, device=device, seed=1))
            self.loss = partial(srcnn_loss, border=self.model.border)
            self.fast_loss = lambda cfg: self.loss
            self.lr, self.groups = 1e-4, self.model.param_groups(1e-4)
        else:
            raise ValueError(name)
        self.model.to(device)

    @property
    def size(self) -> int:
        return 33 if self.name == "srcnn" else 256 if self.name == "style" else 288

    @property
    def pixels(self) -> int:
        first = self.batch if isinstance(self.batch, torch.Tensor) else self.batch[1]
        return first.shape[0] * first.shape[-1] * first.shape[-2]


def _flops(name: str) -> Callable[[], float]:
    def flops() -> float:
        p = _Problem(name, "meta")
        terms = None

        def step() -> None:
            nonlocal terms
            terms = p.loss(p.model, p.batch)
            terms["total"].mean().backward()
        return count_flops(step)
    return flops


def _case(bench: BenchRunner, name: str, path: str) -> Case:
    cfg = bench.fast_config("train", **SWEEP_VARIANTS.get(path, {})) if path != "reference" else None

    def make(cfg: Any) -> Callable[[], Callable[[], Any]]:
        def build() -> Callable[[], Any]:
            p = _Problem(name, bench.device)
            if cfg is None:
                params = p.groups if p.groups is not None else p.model.parameters()
                opt = torch.optim.Adam(params, lr=p.lr)
                return lambda: reference_train_step(p.model, p.loss, opt, p.batch)
            trainer = FastTrainer(p.model, p.fast_loss(cfg), device=bench.device, lr=p.lr, param_groups=p.groups,
                                  config=cfg)
            return lambda: trainer.step(p.batch)
        return build

    probe = _Problem(name, "meta")
    return Case(f"train_step_{name}", path, probe.size, 128 if name == "srcnn" else 4, probe.pixels, make(cfg),
                _flops(name), reference=make(None), dtype=str(cfg.dtype).removeprefix("torch.") if cfg else "float32",
                config=cfg.as_dict() | {"label": cfg.label()} if cfg else {"label": "reference"})


def _params() -> list[Any]:
    out = []
    for name, marks in (("style", [HEAVY]), ("sr_x4", [HEAVY]), ("sr_x8", [HEAVY]), ("srcnn", [])):
        out += [pytest.param(name, p, marks=marks, id=f"{name}-{p}") for p in ("reference", "fast")]
        if name in ("style", "sr_x4"):
            out += [pytest.param(name, p, marks=[*marks, SWEEP], id=f"{name}-{p}") for p in SWEEP_VARIANTS]
    return out


@pytest.mark.parametrize("net,path", _params())
def test_train_step(benchmark, bench, net, path):
    """One optimiser step (forward, loss, backward, Adam) at the paper's batch and patch size."""
    bench.run(benchmark, _case(bench, net, path))
