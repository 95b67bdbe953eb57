"""Gatys et al.'s optimisation baseline: minimise the paper's Eq. 5 over the pixels of one image, with a timed trace.

Why: Fig. 5 and Table 1 compare the transform network with this optimisation *on the same objective*
(`perceptual.losses.PerceptualObjective`); this file only adds the optimiser loop, the pixel constraint and the
trace. Guarantees: one iteration = one objective evaluation (L-BFGS, no line search by default); pixels stay in
[0, 1]; a device-independent start; trace row k = objective and wall time at iterate k. Choices and why:
docs/baselines.md.
"""
from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import torch

from data.files import atomic_write_text
from perceptual.speed import Stopwatch

Init = Literal["noise", "content"]
OptimizerName = Literal["lbfgs", "adam"]
LBFGSImpl = Literal["torch", "device"]
INITS: tuple[str, ...] = ("noise", "content")
OPTIMIZERS: tuple[str, ...] = ("lbfgs", "adam")
LBFGS_IMPLS: tuple[str, ...] = ("torch", "device")
TERMS: tuple[str, ...] = ("total", "content", "style", "tv")
TRACE_COLUMNS: tuple[str, ...] = ("iteration", "wall_time_s", *TERMS, "evaluations")
DEFAULT_LR = {"lbfgs": 1.0, "adam": 0.02}


class Objective(Protocol):
    """What stylise needs of Eq. 5: a PerceptualObjective, or perceptual.fast.fast_objective's version of one."""

    def __call__(self, y_hat: torch.Tensor, content_feat: torch.Tensor) -> dict[str, torch.Tensor]: ...
    def content_targets(self, content: torch.Tensor) -> torch.Tensor: ...
    def parameters(self, recurse: bool = True) -> Iterator[torch.nn.Parameter]: ...


@dataclass(frozen=True)
class GatysConfig:
    """How the baseline runs. Defaults: the paper's L-BFGS from white noise for 500 iterations.

    lr: L-BFGS's step scale (1.0: the plain unit step of Torch's optim.lbfgs) or Adam's learning rate in [0, 1] pixel
    units (default 0.02). history_size: L-BFGS memory (100, as Torch's optim.lbfgs and torch default).
    lbfgs: 'torch' (torch.optim.LBFGS) or 'device' (baselines.lbfgs.DeviceLBFGS: the same iterates, one host read
    per iteration; no line search). The fast path picks it per device (perceptual.fast.best_config).
    """

    iterations: int = 500
    optimizer: OptimizerName = "lbfgs"
    init: Init = "noise"
    lr: float | None = None
    history_size: int = 100
    line_search: Literal["strong_wolfe"] | None = None
    clamp: bool = True
    seed: int = 0
    lbfgs: LBFGSImpl = "torch"

    def __post_init__(self) -> None:
        if self.iterations < 0:
            raise ValueError(f"Gatys iterations must be >= 0, got {self.iterations} (--iterations / --gatys-iterations)")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown Gatys optimizer {self.optimizer!r}: choose one of {', '.join(OPTIMIZERS)}")
        if self.init not in INITS:
            raise ValueError(f"unknown Gatys init {self.init!r}: choose one of {', '.join(INITS)}")
        if self.line_search not in (None, "strong_wolfe"):
            raise ValueError(f"line_search must be None or 'strong_wolfe', got {self.line_search!r}")
        if self.lr is not None and not self.lr > 0:
            raise ValueError(f"Gatys lr must be positive, got {self.lr}")
        if self.lbfgs not in LBFGS_IMPLS:
            raise ValueError(f"unknown L-BFGS implementation {self.lbfgs!r}: choose one of {', '.join(LBFGS_IMPLS)}")
        if self.lbfgs == "device" and self.line_search is not None:
            raise ValueError("the device L-BFGS has no line search: use lbfgs='torch' with line_search='strong_wolfe'")

    @property
    def step_size(self) -> float:
        return self.lr if self.lr is not None else DEFAULT_LR[self.optimizer]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"lr": self.step_size}


@dataclass
class GatysResult:
    """The optimised image (1, 3, H, W) in [0, 1], detached, and the per-iteration trace (list of TRACE_COLUMNS dicts)."""

    image: torch.Tensor
    trace: list[dict[str, float]] = field(default_factory=list)
    config: GatysConfig = GatysConfig()

    @property
    def final(self) -> dict[str, float]:
        return self.trace[-1]

    @property
    def evaluations(self) -> int:
        return int(self.trace[-1]["evaluations"])


def initial_image(content: torch.Tensor, init: Init, seed: int) -> torch.Tensor:
    """x_0: the content image itself or uniform white noise in [0, 1] drawn from a seeded CPU generator."""
    if init == "content":
        return content.detach().clone()
    if init == "noise":
        g = torch.Generator().manual_seed(seed)
        return torch.rand(content.shape, generator=g, dtype=content.dtype).to(content.device)
    raise ValueError(f"unknown Gatys init {init!r}: choose one of {', '.join(INITS)}")


class _Evaluator:
    """The L-BFGS/Adam closure: one objective evaluation (VGG forward + backward) with a one-point cache.

    The cache serves a repeated call at an unchanged point (L-BFGS re-evaluates the accepted line-search point at the
    start of its next `.step()`), so `evaluations` counts real forward+backward passes only. `last` holds the terms at
    the point of the most recent call, as Python floats.
    """

    def __init__(self, objective: Objective, content_feat: torch.Tensor, x: torch.Tensor):
        self.objective, self.content_feat, self.x = objective, content_feat, x
        self.evaluations = 0
        self.last: dict[str, float] = {}
        self._point: torch.Tensor | None = None
        self._grad: torch.Tensor | None = None
        self._loss: torch.Tensor | None = None

    def __call__(self) -> torch.Tensor:
        x = self.x
        if self._point is not None and torch.equal(self._point, x.detach()):
            assert self._grad is not None and self._loss is not None  # set together with _point
            x.grad = self._grad.clone()
            return self._loss
        x.grad = None
        terms = self.objective(x, self.content_feat)
        loss = terms["total"].sum()
        loss.backward()
        self.evaluations += 1
        self.last = {k: float(terms[k].detach().sum()) for k in TERMS}
        self._point, self._grad, self._loss = x.detach().clone(), _grad_of(x).detach().clone(), loss.detach()
        return self._loss

    @torch.no_grad()
    def value(self) -> dict[str, float]:
        """Terms at the current point without a backward pass (for the final iterate)."""
        if self._point is not None and torch.equal(self._point, self.x.detach()):
            return dict(self.last)
        terms = self.objective(self.x, self.content_feat)
        return {k: float(terms[k].sum()) for k in TERMS}


def _grad_of(x: torch.Tensor) -> torch.Tensor:
    """x.grad after backward() has filled it."""
    if x.grad is None:
        raise RuntimeError("backward() left no gradient on the image being optimised")
    return x.grad


def _make_optimizer(x: torch.Tensor, config: GatysConfig) -> torch.optim.Optimizer:
    if config.optimizer == "adam":
        return torch.optim.Adam([x], lr=config.step_size)
    return torch.optim.LBFGS(
        [x], lr=config.step_size, max_iter=1, max_eval=25 if config.line_search else 1,
        history_size=config.history_size, line_search_fn=config.line_search,
        tolerance_grad=0.0, tolerance_change=0.0,  # never stop early: run the iterations asked for (neural-style: -1)
    )


def _sync_lbfgs_step(opt: torch.optim.Optimizer, x: torch.Tensor, before: torch.Tensor) -> None:
    """After a clamp changed the iterate, make L-BFGS's stored step s = d * t the step actually taken."""
    state = opt.state.get(x)
    if state and "d" in state and "t" in state:
        state["d"] = (x.detach() - before).reshape(-1).clone()
        state["t"] = 1.0


def stylise(
    objective: Objective,
    content: torch.Tensor,
    config: GatysConfig = GatysConfig(),
    progress: Callable[[int, dict[str, float]], None] | None = None,
) -> GatysResult:
    """Run Gatys et al.'s optimisation of Eq. 5 for one content image (1, 3, H, W) on `content`'s device.

    The objective's style Grams are fixed in `objective`; its content target is `content`'s relu2_2 features.
    `progress(k, row)` is called after every trace row (for a progress bar). See docs/baselines.md for what an
    iteration, the clamp and the trace's times mean.
    """
    if content.dim() != 4 or content.shape[0] != 1 or content.shape[1] != 3:
        raise ValueError(f"stylise() takes one RGB image of shape (1, 3, H, W), got {tuple(content.shape)}")
    device = content.device
    for p in objective.parameters():
        p.requires_grad_(False)
    clock = Stopwatch(device).start()
    content_feat = objective.content_targets(content)
    x = initial_image(content, config.init, config.seed)
    if config.clamp:
        x.clamp_(0.0, 1.0)
    x.requires_grad_(True)
    if config.optimizer == "lbfgs" and config.lbfgs == "device":
        return _stylise_device(objective, content_feat, x, config, clock, progress)
    opt = _make_optimizer(x, config)
    evaluator = _Evaluator(objective, content_feat, x)
    times = [clock.elapsed()]
    evals = [0]
    rows: list[dict[str, float]] = []

    def record(k: int, terms: dict[str, float]) -> None:
        row = {"iteration": k, "wall_time_s": times[k], **terms, "evaluations": evals[k]}
        rows.append(row)
        if progress is not None:
            progress(k, row)

    step: dict[str, Any] = {"first": True, "terms": {}}

    def closure() -> torch.Tensor:
        loss = evaluator()
        if step["first"]:  # the first evaluation of step k+1 is at x_k: that is row k's objective
            step["terms"], step["first"] = dict(evaluator.last), False
        return loss

    for k in range(config.iterations):
        before = x.detach().clone() if config.clamp and config.optimizer == "lbfgs" else None
        step["first"] = True
        # torch's stubs type a closure as returning float; LBFGS and Adam take the loss tensor (as documented)
        opt.step(closure)  # type: ignore[arg-type]
        if config.clamp:
            with torch.no_grad():
                clamped = x.detach().clamp(0.0, 1.0)
                changed = not torch.equal(clamped, x.detach())
                if changed:
                    x.copy_(clamped)
            if changed and before is not None:
                _sync_lbfgs_step(opt, x, before)
        times.append(clock.elapsed())
        evals.append(evaluator.evaluations)
        record(k, step["terms"])
    record(config.iterations, evaluator.value())
    return GatysResult(image=x.detach().clone(), trace=rows, config=config)


def _stylise_device(objective: Objective, content_feat: torch.Tensor, x: torch.Tensor, config: GatysConfig,
                    clock: Stopwatch, progress: Callable[[int, dict[str, float]], None] | None) -> GatysResult:
    """stylise()'s L-BFGS loop on baselines.lbfgs.DeviceLBFGS: per iteration one evaluation (forward + backward),
    the step launched on the device, then one host read of the terms at x_k and the curvature flag. The trace and
    its times mean what they mean in stylise()."""
    from baselines.lbfgs import DeviceLBFGS

    opt = DeviceLBFGS(x, lr=config.step_size, history_size=config.history_size)
    rows: list[dict[str, float]] = []
    t_prev = clock.elapsed()
    for k in range(config.iterations):
        x.grad = None
        terms = objective(x, content_feat)
        terms["total"].sum().backward()
        assert x.grad is not None
        opt.step(x.grad, (0.0, 1.0) if config.clamp else None)
        read = torch.stack([terms[t].detach().sum().to(torch.float64) for t in TERMS]
                           + [opt.accepted.to(torch.float64)]).tolist()  # the iteration's one host read
        opt.commit(bool(read[-1]))
        row = {"iteration": k, "wall_time_s": t_prev, **dict(zip(TERMS, read[:-1])), "evaluations": k}
        t_prev = clock.elapsed()
        rows.append(row)
        if progress is not None:
            progress(k, row)
    x.grad = None
    with torch.no_grad():
        terms = objective(x, content_feat)
        final = torch.stack([terms[t].sum().to(torch.float64) for t in TERMS]).tolist()
    row = {"iteration": config.iterations, "wall_time_s": t_prev, **dict(zip(TERMS, final)),
           "evaluations": config.iterations}
    rows.append(row)
    if progress is not None:
        progress(config.iterations, row)
    return GatysResult(image=x.detach().clone(), trace=rows, config=config)


def trace_csv(trace: Sequence[dict[str, float]]) -> str:
    """The trace as CSV text with the contract's columns (iteration, wall_time_s, total, content, style, tv) first."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(TRACE_COLUMNS), lineterminator="\n")
    writer.writeheader()
    for row in trace:
        writer.writerow({k: (int(row[k]) if k in ("iteration", "evaluations") else repr(float(row[k])))
                         for k in TRACE_COLUMNS})
    return buf.getvalue()


def write_trace(path: Path | str, trace: Sequence[dict[str, float]]) -> Path:
    """Atomically write the trace CSV (traces/gatys_<size>_<image>.csv in a run folder)."""
    return atomic_write_text(path, trace_csv(trace))


def read_trace(path: Path | str) -> list[dict[str, float]]:
    """Read a trace CSV back (for resuming a run or rebuilding the Fig. 5 statistics)."""
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    missing = set(TRACE_COLUMNS) - set(rows[0] if rows else TRACE_COLUMNS)
    if missing:
        raise ValueError(f"{path} is not a Gatys trace: missing columns {sorted(missing)}")
    return [{k: (int(r[k]) if k in ("iteration", "evaluations") else float(r[k])) for k in TRACE_COLUMNS}
            for r in rows]
