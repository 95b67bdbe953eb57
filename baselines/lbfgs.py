"""L-BFGS for the Gatys baseline with its state and its two-loop recursion on the device.

Why: torch.optim.LBFGS reads device scalars on the host up to ~200 times per iteration, and on a GPU each read stalls
the queue. `DeviceLBFGS` computes torch's iterates (max_iter=1, no line search, plus baselines.gatys's box projection)
with every scalar on the device; the caller reads once per iteration and `commit`s the curvature flag. Equal to
torch within 1e-10 over 100 iterations (CPU, float64). How, and the one case not replicated: docs/baselines.md.
"""
from __future__ import annotations

import torch

__all__ = ["CURVATURE_EPS", "DeviceLBFGS"]

CURVATURE_EPS = 1e-10  # torch.optim.LBFGS keeps a pair only when y.s > 1e-10


class DeviceLBFGS:
    """L-BFGS on one tensor `x` (updated in place), driven by `step(grad)` once per iteration; see docs/baselines.md."""

    def __init__(self, x: torch.Tensor, lr: float = 1.0, history_size: int = 100):
        if history_size < 1:
            raise ValueError(f"DeviceLBFGS(history_size={history_size}): must be >= 1")
        self.x, self.lr, self.history_size = x, float(lr), history_size
        self.n_iter = 0
        self.dirs: list[torch.Tensor] = []  # y pairs, oldest first
        self.stps: list[torch.Tensor] = []  # s pairs
        self.ro: list[torch.Tensor] = []  # 1 / (y.s), 0-d
        self.d: torch.Tensor | None = None
        self.t: torch.Tensor | None = None
        self.h_diag: torch.Tensor | None = None
        self.prev_grad: torch.Tensor | None = None
        self.accepted = torch.ones((), dtype=torch.bool, device=x.device)  # the newest pair's curvature test
        self._uncommitted = False

    @torch.no_grad()
    def step(self, grad: torch.Tensor, bounds: tuple[float, float] | None = None) -> None:
        """Launch one iteration from the gradient at the current x: direction, step, optional clamp to `bounds`
        (then the stored step is the one actually taken). No host read; call `commit` with `accepted` before the
        next step."""
        if self._uncommitted:
            raise RuntimeError("DeviceLBFGS.step: call commit(accepted) after each step (read `accepted` with the "
                               "iteration's other values)")
        x = self.x
        g = grad.detach().reshape(-1)
        flat = x.view(-1)
        self.n_iter += 1
        if self.n_iter == 1:
            d = g.neg()
            self.h_diag = torch.ones((), dtype=g.dtype, device=g.device)
            t = torch.clamp(1.0 / g.abs().sum(), max=1.0) * self.lr
            self.accepted = torch.ones((), dtype=torch.bool, device=g.device)
            self.prev_grad = g.clone(memory_format=torch.contiguous_format)
        else:
            assert self.d is not None and self.t is not None and self.prev_grad is not None
            assert self.h_diag is not None
            y = g - self.prev_grad
            s = self.d * self.t
            ys = y.dot(s)
            ok = ys > CURVATURE_EPS
            self.accepted = ok
            self.dirs.append(y)
            self.stps.append(s)
            self.ro.append(torch.where(ok, 1.0 / ys, torch.zeros_like(ys)))
            self.h_diag = torch.where(ok, ys / y.dot(y), self.h_diag)
            ro = list(self.ro)
            if len(self.dirs) > self.history_size:  # full: torch would drop the oldest only if the new one is kept
                ro[0] = torch.where(ok, torch.zeros_like(ro[0]), ro[0])
            q = g.neg()
            al: list[torch.Tensor] = [q.new_zeros(())] * len(ro)
            for i in range(len(ro) - 1, -1, -1):
                al[i] = self.stps[i].dot(q) * ro[i]
                q.addcmul_(self.dirs[i], al[i], value=-1)
            r = q * self.h_diag
            for i in range(len(ro)):
                be_i = self.dirs[i].dot(r) * ro[i]
                r.addcmul_(self.stps[i], al[i] - be_i)
            d = r
            t = torch.full((), self.lr, dtype=g.dtype, device=g.device)
            self.prev_grad.copy_(g)
            self._uncommitted = True
        gtd = g.dot(d)
        go = ~(gtd > 0)  # torch: `if gtd > -tolerance_change: break` (no step) with tolerance_change = 0
        before = flat.clone() if bounds is not None else None
        flat.addcmul_(d, torch.where(go, t, torch.zeros_like(t)))
        if bounds is not None:
            assert before is not None
            clamped = flat.clamp(*bounds)
            changed = (clamped != flat).any()
            flat.copy_(clamped)
            d = torch.where(changed, flat - before, d)
            t = torch.where(changed, torch.ones_like(t), t)
        self.d, self.t = d, t

    def commit(self, accepted: bool) -> None:
        """Apply the newest curvature test (read on the host with the iteration's other values) to the history."""
        if not self._uncommitted:
            return
        self._uncommitted = False
        if not accepted:
            del self.dirs[-1], self.stps[-1], self.ro[-1]
        elif len(self.dirs) > self.history_size:
            del self.dirs[0], self.stps[0], self.ro[0]
