"""Gatys et al. baseline benchmarks: one objective evaluation (VGG-16 to relu4_3, forward + backward to the pixels)
and one L-BFGS iteration, at 256 / 512 / 1024 px; reference and fast path side by side.

Reference: perceptual.losses.PerceptualObjective (the paper's Eq. 5) in eager fp32 NCHW. Fast:
perceptual.fast.fast_objective with best_config(device, "gatys") (CPU: the reference arithmetic with content targets
through the truncated VGG, computed once anyway; CUDA: bf16 features + channels_last, Grams and losses in fp32).
One L-BFGS iteration = what baselines.gatys.stylise does per iteration without its trace bookkeeping: one
`torch.optim.LBFGS.step` with max_iter=1 (one evaluation, unit step, history 100) and the clamp to [0, 1]. Its FLOP
count is the evaluation's (the two-loop recursion's vector operations are not counted by FlopCounterMode).
The style Gram targets come from a 256x256 style image; the loss network has random weights.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch

from bench.benchmarks.runner import HEAVY, SWEEP, BenchRunner, Case, count_flops, rand
from perceptual.fast import fast_objective
from perceptual.losses import PerceptualObjective
from perceptual.vgg import LossNetwork

SWEEP_VARIANTS: dict[str, dict[str, Any]] = {"fast_fp32cl": {"dtype": torch.float32}}


def _objective(device: torch.device | str) -> PerceptualObjective:
    return PerceptualObjective(LossNetwork(weights="random", device=device), rand(1, 3, 256, 256, device=device,
                                                                                seed=1))


def _setup(bench: BenchRunner, path: str, size: int) -> tuple[Any, torch.Tensor, torch.Tensor]:
    """(objective, fixed content features, optimisation variable x) for a path."""
    torch.manual_seed(0)
    objective: Any = _objective(bench.device)
    if path != "reference":
        objective = fast_objective(objective, bench.fast_config("gatys", **SWEEP_VARIANTS.get(path, {})))
    content = rand(1, 3, size, size, device=bench.device, seed=2)
    x = rand(1, 3, size, size, device=bench.device, seed=3).requires_grad_(True)
    return objective, objective.content_targets(content), x


def _eval_flops(size: int) -> Callable[[], float]:
    def flops() -> float:
        objective = _objective("meta")
        x = rand(1, 3, size, size, device="meta").requires_grad_(True)
        target = torch.empty(1, 128, size // 2, size // 2, device="meta")
        return count_flops(lambda: objective(x, target)["total"].sum().backward())
    return flops


def _case(bench: BenchRunner, what: str, path: str, size: int,
          make: Callable[[str], Callable[[], Callable[[], Any]]]) -> Case:
    cfg = bench.fast_config("gatys", **SWEEP_VARIANTS.get(path, {})) if path != "reference" else None
    return Case(f"gatys_{what}_{size}", path, size, 1, size * size, make(path), _eval_flops(size),
                reference=make("reference"),
                dtype=str(cfg.dtype).removeprefix("torch.") if cfg else "float32",
                config=cfg.as_dict() | {"label": cfg.label()} if cfg else {"label": "reference"})


def _params(sweep_size: int = 1024) -> list[Any]:
    out = []
    for size, marks in ((256, []), (512, []), (1024, [HEAVY])):
        out += [pytest.param(size, p, marks=marks, id=f"{size}-{p}") for p in ("reference", "fast")]
        if size == sweep_size:
            out += [pytest.param(size, p, marks=[*marks, SWEEP], id=f"{size}-{p}") for p in SWEEP_VARIANTS]
    return out


@pytest.mark.parametrize("size,path", _params())
def test_gatys_objective(benchmark, bench, size, path):
    """One evaluation of Eq. 5 with its gradient w.r.t. the image (what every L-BFGS iteration costs)."""
    def make(which: str) -> Callable[[], Callable[[], Any]]:
        def build() -> Callable[[], Any]:
            objective, target, x = _setup(bench, which, size)

            def evaluate() -> torch.Tensor:
                x.grad = None
                loss = objective(x, target)["total"].sum()
                loss.backward()
                return loss
            return evaluate
        return build

    bench.run(benchmark, _case(bench, "objective", path, size, make))


@pytest.mark.parametrize("size,path", _params())
def test_lbfgs_iteration(benchmark, bench, size, path):
    """One L-BFGS iteration of the Gatys optimisation (evaluation + L-BFGS update + clamp). The fast path uses
    baselines.lbfgs.DeviceLBFGS where its config says so (device_lbfgs: CUDA), with stylise's one read per
    iteration (the objective terms and the curvature flag)."""
    def make(which: str) -> Callable[[], Callable[[], Any]]:
        def build() -> Callable[[], Any]:
            objective, target, x = _setup(bench, which, size)
            cfg = None if which == "reference" else bench.fast_config("gatys", **SWEEP_VARIANTS.get(which, {}))
            if cfg is not None and cfg.device_lbfgs:
                from baselines.lbfgs import DeviceLBFGS

                dev_opt = DeviceLBFGS(x, lr=1.0, history_size=100)

                def device_iteration() -> None:
                    x.grad = None
                    terms = objective(x, target)
                    terms["total"].sum().backward()
                    assert x.grad is not None
                    dev_opt.step(x.grad, (0.0, 1.0))
                    read = torch.stack([*(terms[k].detach().sum().double() for k in ("total", "content", "style",
                                                                                      "tv")),
                                        dev_opt.accepted.double()]).tolist()
                    dev_opt.commit(bool(read[-1]))
                return device_iteration
            opt = torch.optim.LBFGS([x], lr=1.0, max_iter=1, max_eval=1, history_size=100, line_search_fn=None,
                                    tolerance_grad=0.0, tolerance_change=0.0)

            def closure() -> torch.Tensor:
                opt.zero_grad(set_to_none=True)
                loss = objective(x, target)["total"].sum()
                loss.backward()
                return loss

            def iteration() -> None:
                opt.step(closure)
                with torch.no_grad():
                    x.clamp_(0.0, 1.0)
            return iteration
        return build

    bench.run(benchmark, _case(bench, "lbfgs_iteration", path, size, make))
