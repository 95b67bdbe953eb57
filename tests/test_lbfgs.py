"""baselines.lbfgs.DeviceLBFGS against torch.optim.LBFGS (as baselines.gatys drives it): the same iterates within
1e-10 in float64 on CPU over 100 iterations, with and without the box clamp, with a short and a full history, and
through rejected curvature pairs; and the Gatys loop on it gives the torch loop's trace and image."""
from __future__ import annotations

import pytest
import torch

import baselines.lbfgs as lbfgs_mod
from baselines.gatys import GatysConfig, stylise
from baselines.lbfgs import DeviceLBFGS
from perceptual.losses import PerceptualObjective
from perceptual.vgg import LossNetwork

ITERS = 100
TOL = 1e-10


@pytest.fixture(autouse=True)
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def _convex(n: int = 64):
    g = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=g, dtype=torch.float64)
    a = a @ a.T / n + 0.1 * torch.eye(n, dtype=torch.float64)
    b = torch.randn(n, generator=g, dtype=torch.float64)
    return (lambda x: 0.5 * x @ a @ x - b @ x + 0.1 * x.pow(4).sum()), torch.rand(n, generator=g, dtype=torch.float64)


def _nonconvex(n: int = 64):
    """Bounded below but with negative curvature almost everywhere: many pairs fail y.s > 1e-10."""
    g = torch.Generator().manual_seed(1)
    return (lambda x: torch.sin(3 * x).sum() + 0.5 * x.pow(2).sum() + 0.2 * (x[1:] * x[:-1]).sum()), \
        2 * torch.randn(n, generator=g, dtype=torch.float64)


def _torch_iterates(f, x0, history, clamp):
    x = x0.clone().requires_grad_(True)
    opt = torch.optim.LBFGS([x], lr=1.0, max_iter=1, max_eval=1, history_size=history, tolerance_grad=0.0,
                            tolerance_change=0.0)
    out = []
    for _ in range(ITERS):
        before = x.detach().clone()

        def closure():
            x.grad = None
            loss = f(x)
            loss.backward()
            return loss
        opt.step(closure)
        if clamp:  # exactly baselines.gatys' projected step
            with torch.no_grad():
                c = x.clamp(0, 1)
                changed = not torch.equal(c, x)
                x.copy_(c)
            if changed:
                opt.state[x]["d"], opt.state[x]["t"] = (x.detach() - before).reshape(-1).clone(), 1.0
        out.append(x.detach().clone())
    return out


def _device_iterates(f, x0, history, clamp):
    x = x0.clone().requires_grad_(True)
    opt = DeviceLBFGS(x, lr=1.0, history_size=history)
    out, rejected = [], 0
    for _ in range(ITERS):
        x.grad = None
        f(x).backward()
        opt.step(x.grad, (0.0, 1.0) if clamp else None)
        accepted = bool(opt.accepted)
        rejected += not accepted
        opt.commit(accepted)
        out.append(x.detach().clone())
    return out, rejected


@pytest.mark.parametrize("problem", ["convex", "nonconvex"])
@pytest.mark.parametrize("history,clamp", [(100, False), (4, False), (4, True), (100, True)])
def test_iterates_equal_torch_lbfgs(problem, history, clamp):
    f, x0 = _convex() if problem == "convex" else _nonconvex()
    ref = _torch_iterates(f, x0, history, clamp)
    got, rejected = _device_iterates(f, x0, history, clamp)
    err = max((a - b).abs().max().item() for a, b in zip(ref, got))
    assert err <= TOL, f"max |x_k - x_k(torch)| = {err:.3g}"
    assert (ref[-1] - x0).abs().max() > 0.1, "the optimiser must actually move"
    if problem == "nonconvex" and not clamp:
        assert rejected > 10, "the rejected-pair path must be exercised"


def test_a_missing_commit_is_refused():
    f, x0 = _convex(8)
    x = x0.clone().requires_grad_(True)
    opt = DeviceLBFGS(x)
    for _ in range(2):
        x.grad = None
        f(x).backward()
        opt.step(x.grad)
    x.grad = None
    f(x).backward()
    with pytest.raises(RuntimeError, match="commit"):
        opt.step(x.grad)


def test_step_reads_nothing_on_the_host(monkeypatch):
    """No tensor -> Python conversion inside step: the caller's one read per iteration is the only one."""
    f, x0 = _convex(16)
    x = x0.clone().requires_grad_(True)
    opt = DeviceLBFGS(x, history_size=3)
    calls: list[str] = []

    def spy(name):
        orig = getattr(torch.Tensor, name)

        def wrapped(self, *args):
            calls.append(name)
            return orig(self, *args)
        return wrapped

    for _ in range(6):  # past the full history, with the clamp
        x.grad = None
        f(x).backward()
        with monkeypatch.context() as m:
            for name in ("item", "tolist", "__bool__", "__float__", "__int__"):
                m.setattr(torch.Tensor, name, spy(name))
            opt.step(x.grad, (0.0, 1.0))
        assert calls == [], f"host reads inside step: {calls}"
        opt.commit(bool(opt.accepted))
    assert lbfgs_mod.CURVATURE_EPS == 1e-10


def test_gatys_on_the_device_lbfgs_equals_the_torch_loop():
    torch.manual_seed(0)
    loss_net = LossNetwork(weights="random").double()
    obj = PerceptualObjective(loss_net, torch.rand(1, 3, 16, 16, dtype=torch.float64))
    content = torch.rand(1, 3, 16, 16, dtype=torch.float64)
    ref = stylise(obj, content, GatysConfig(iterations=ITERS, lbfgs="torch"))
    got = stylise(obj, content, GatysConfig(iterations=ITERS, lbfgs="device"))
    assert [r["iteration"] for r in got.trace] == [r["iteration"] for r in ref.trace]
    assert [r["evaluations"] for r in got.trace] == [r["evaluations"] for r in ref.trace]
    for a, b in zip(ref.trace, got.trace):
        for term in ("total", "content", "style", "tv"):
            assert abs(a[term] - b[term]) <= TOL * max(1.0, abs(a[term])), (a["iteration"], term)
    assert (got.image - ref.image).abs().max().item() <= TOL
    assert ref.final["total"] < 0.5 * ref.trace[0]["total"]


def test_device_lbfgs_refuses_a_line_search():
    with pytest.raises(ValueError, match="line search"):
        GatysConfig(lbfgs="device", line_search="strong_wolfe")
