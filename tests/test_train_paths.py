"""The fast path against the real loop: bench.training.loop.train itself with path='reference' and path='fast'.

On a CPU the fast path's default config is the reference arithmetic, so three steps of each give the same weights
bit for bit, for the style network on Eq. 5 (fast loss: truncated content network), the SR network on l_feat and
SRCNN with per-layer learning rates. The deferred read (fused Adam: the loss values of step k-1 are read after step
k is launched, nothing before the backward pass) is exercised on CPU too (fused Adam runs there): its read order,
its NaN stop (the model stays the last good one), its exact resume, and checkpoints moving between paths.
"""
from __future__ import annotations

import random
from dataclasses import replace
from functools import partial

import numpy as np
import pytest
import torch
from torch import nn

from baselines.srcnn import SRCNN, srcnn_loss
from bench.style.harness import style_loss_fn
from bench.training import steps as steps_mod
from bench.training.loop import (
    CheckpointMismatchError,
    NonFiniteLossError,
    TrainConfig,
    checkpoint_path,
    load_checkpoint,
    log_path,
    train,
)
from perceptual.fast import FastConfig, best_config, fast_feature_loss, fast_style_loss_fn
from perceptual.losses import FeatureReconstructionLoss, PerceptualObjective
from perceptual.nets import SRNet, TransformNet
from perceptual.vgg import LossNetwork

pytestmark = pytest.mark.usefixtures("one_thread")
STEPS = 3


class Images:
    """Sample k -> a deterministic image (the loop's stream contract)."""

    def __init__(self, shape):
        self.shape = shape

    def __len__(self):
        return 64

    def __getitem__(self, k):
        return torch.rand(*self.shape, generator=torch.Generator().manual_seed(100 + k))


class Pairs(Images):
    def __init__(self, lr_shape, hr_shape):
        super().__init__(lr_shape)
        self.hr_shape = hr_shape

    def __getitem__(self, k):
        g = torch.Generator().manual_seed(200 + k)
        return torch.rand(*self.shape, generator=g), torch.rand(*self.hr_shape, generator=g)


def _cfg(path, **kw):
    base = {"iterations": STEPS, "batch_size": 2, "lr": 1e-3, "checkpoint_every": STEPS, "log_every": 1, "seed": 0,
            "progress": False, "path": path}
    return TrainConfig(**base | kw)


def _log(path):
    return path.read_text().splitlines()


def _without_times(lines):
    return [",".join(c for i, c in enumerate(line.split(",")) if i != 1) for line in lines]


def _problem(name):
    """(model factory, reference loss, fast loss, stream, param_groups factory, lr)."""
    cfg = best_config("cpu", "train")
    torch.manual_seed(0)
    if name == "style":
        objective = PerceptualObjective(LossNetwork(weights="random"), torch.rand(1, 3, 24, 24))
        return (lambda: TransformNet(), style_loss_fn(objective), fast_style_loss_fn(objective, cfg),
                Images((3, 24, 24)), None, 1e-3)
    if name == "sr":
        crit = FeatureReconstructionLoss(LossNetwork(("relu2_2",), weights="random"))

        def sr(c):
            return lambda m, b: c(m(b[0]), b[1])
        return lambda: SRNet(4), sr(crit), sr(fast_feature_loss(crit, cfg)), Pairs((3, 8, 8), (3, 32, 32)), None, 1e-3
    loss = partial(srcnn_loss, border=SRCNN().border)
    return (lambda: SRCNN(), loss, loss, Pairs((1, 33, 33), (1, 33, 33)), lambda m: m.param_groups(1e-4), 1e-4)


@pytest.mark.parametrize("name", ["style", "sr", "srcnn"])
def test_three_steps_of_the_fast_path_equal_the_reference_path(tmp_path, name):
    make, ref_loss, fast_loss, stream, groups, lr = _problem(name)
    weights, logs, results = {}, {}, {}
    for path, loss in (("reference", ref_loss), ("fast", fast_loss)):
        torch.manual_seed(1)
        model = make()
        out = tmp_path / path
        results[path] = train(model, loss, stream, _cfg(path, lr=lr), name=name, out_dir=out,
                              param_groups=groups(model) if groups else None)
        weights[path] = model.state_dict()
        logs[path] = _without_times(_log(log_path(out, name)))
    assert results["fast"].path == "fast" and results["fast"].fast_config["label"] == "fp32"
    assert results["reference"].path == "reference" and results["reference"].fast_config is None
    assert logs["fast"] == logs["reference"] and len(logs["fast"]) == STEPS + 1
    torch.manual_seed(1)
    start = make().state_dict()
    moved = [k for k in start if not torch.equal(start[k], weights["fast"][k])]
    assert moved, "three steps must change the weights"
    for k, v in weights["reference"].items():
        assert torch.equal(v, weights["fast"][k]), k


# ------------------------------------------------------------------------------------- the deferred read (fused)


FUSED = replace(FastConfig(), fused_adam=True)


class Regression:
    def __len__(self):
        return 64

    def __getitem__(self, k):
        x = torch.randn(8, generator=torch.Generator().manual_seed(1000 + k))
        return x, torch.sin(x)


def noisy_loss(model, batch):
    x, y = batch
    x = x + 0.01 * torch.randn_like(x)
    mse = (model(x) - y).pow(2).mean(dim=1)
    jitter = torch.full_like(mse, float(np.random.rand()) * 1e-3 + random.random() * 1e-3)
    return {"total": mse + jitter, "mse": mse, "jitter": jitter}


def make_model(seed=0):
    torch.manual_seed(seed)
    return nn.Linear(8, 8)


def test_fused_step_is_read_one_step_late_and_never_before_backward(tmp_path, monkeypatch):
    events = []

    def loss(model, batch):
        events.append("launch")
        return noisy_loss(model, batch)

    real_read = steps_mod.StepOut.read

    def read(self):
        if self.host is None:
            events.append("read")
        return real_read(self)

    monkeypatch.setattr(steps_mod.StepOut, "read", read)
    real_backward = torch.Tensor.backward

    def backward(self, *a, **kw):
        events.append("backward")
        return real_backward(self, *a, **kw)

    monkeypatch.setattr(torch.Tensor, "backward", backward)
    result = train(make_model(), loss, Regression(), _cfg("fast", iterations=6, checkpoint_every=3, fast=FUSED,
                                                          lr=1e-2), name="f", out_dir=tmp_path)
    assert result.fast_config["fused_adam"] and result.first_step_s is not None
    # step 1 is read at once (its time is reported); step k-1 after step k's launch and backward; the checkpoint
    # at 3 and the end at 6 read their own step
    assert events == ["launch", "backward", "read",
                      "launch", "backward",
                      "launch", "backward", "read", "read",
                      "launch", "backward",
                      "launch", "backward", "read",
                      "launch", "backward", "read", "read"], events
    assert len(_log(log_path(tmp_path, "f"))) == 7


def test_fused_nan_stops_with_the_last_good_model(tmp_path):
    def bad_loss(model, batch):
        terms = noisy_loss(model, batch)
        bad_loss.n += 1
        if bad_loss.n == 5:
            terms["mse"] = terms["mse"] * float("nan")
            terms["total"] = terms["mse"] + terms["jitter"]
        return terms
    bad_loss.n = 0
    model = make_model()
    with pytest.raises(NonFiniteLossError) as info:
        train(model, bad_loss, Regression(), _cfg("fast", iterations=10, checkpoint_every=2, fast=FUSED),
              name="nan", out_dir=tmp_path)
    assert info.value.iteration == 5 and info.value.term == "mse"
    assert bad_loss.n == 6, "step 6 was launched before step 5 was read"
    ckpt = load_checkpoint(checkpoint_path(tmp_path, "nan"))
    assert ckpt["iteration"] == 4
    assert torch.equal(model.weight, ckpt["model"]["weight"]), "steps 5 and 6 must not have been applied"
    assert [r.split(",")[0] for r in _log(log_path(tmp_path, "nan"))[1:]] == ["1", "2", "3", "4"]


class Interrupt(Exception):
    pass


def test_fused_resume_is_exact(tmp_path):
    cfg = _cfg("fast", iterations=8, checkpoint_every=2, fast=FUSED, lr=1e-2)
    ref = make_model()
    train(ref, noisy_loss, Regression(), cfg, name="r", out_dir=tmp_path / "a")
    calls = {"n": 0}

    def dying(model, batch):
        calls["n"] += 1
        if calls["n"] == 6:
            raise Interrupt()
        return noisy_loss(model, batch)

    with pytest.raises(Interrupt):
        train(make_model(), dying, Regression(), cfg, name="r", out_dir=tmp_path / "b")
    torch.manual_seed(5)
    np.random.seed(5)
    random.seed(5)
    model = make_model(9)
    result = train(model, noisy_loss, Regression(), cfg, name="r", out_dir=tmp_path / "b", resume=True)
    assert result.start_iteration == 4
    assert _without_times(_log(log_path(tmp_path / "a", "r"))) == _without_times(_log(log_path(tmp_path / "b", "r")))
    assert torch.equal(ref.weight, model.weight) and torch.equal(ref.bias, model.bias)


def test_checkpoints_move_between_paths_only_in_the_same_precision(tmp_path):
    """CPU: the reference path and the default fast path compute the same thing, so either resumes the other
    (bit-identical to an uninterrupted run); a fast config in another precision (bf16) is refused."""
    full = make_model()
    train(full, noisy_loss, Regression(), _cfg("reference", iterations=6, checkpoint_every=2), name="x",
          out_dir=tmp_path / "full")
    train(make_model(), noisy_loss, Regression(), _cfg("reference", iterations=4, checkpoint_every=2), name="x",
          out_dir=tmp_path / "mix")
    model = make_model()
    result = train(model, noisy_loss, Regression(), _cfg("fast", iterations=6, checkpoint_every=2), name="x",
                   out_dir=tmp_path / "mix", resume=True)
    assert result.start_iteration == 4 and torch.equal(model.weight, full.weight)
    with pytest.raises(CheckpointMismatchError, match="compute_dtype: checkpoint 'float32', now 'bfloat16'"):
        train(make_model(), noisy_loss, Regression(),
              _cfg("fast", iterations=8, checkpoint_every=2, fast=replace(FastConfig(), dtype=torch.bfloat16)),
              name="x", out_dir=tmp_path / "mix", resume=True)


def test_a_reference_checkpoint_resumes_with_fused_adam(tmp_path):
    """Same precision, other execution: a reference checkpoint resumed with fused Adam keeps the fused flags and
    moves the step counters to the device; the trajectory is Adam's (equal within the fused kernel's rounding)."""
    full = make_model()
    train(full, noisy_loss, Regression(), _cfg("reference", iterations=6, checkpoint_every=2, lr=1e-2), name="y",
          out_dir=tmp_path / "full")
    train(make_model(), noisy_loss, Regression(), _cfg("reference", iterations=2, checkpoint_every=2, lr=1e-2),
          name="y", out_dir=tmp_path / "mix")
    model = make_model()
    train(model, noisy_loss, Regression(), _cfg("fast", iterations=6, checkpoint_every=2, fast=FUSED, lr=1e-2),
          name="y", out_dir=tmp_path / "mix", resume=True)
    torch.testing.assert_close(model.weight, full.weight, rtol=1e-5, atol=1e-6)
    opt = load_checkpoint(checkpoint_path(tmp_path / "mix", "y"))["optimizer"]
    assert opt["param_groups"][0]["fused"] is True
    # and back: the reference path resumes the fused checkpoint with its own (default) Adam
    more = make_model()
    train(more, noisy_loss, Regression(), _cfg("reference", iterations=8, checkpoint_every=2, lr=1e-2), name="y",
          out_dir=tmp_path / "mix", resume=True)
    assert load_checkpoint(checkpoint_path(tmp_path / "mix", "y"))["optimizer"]["param_groups"][0]["fused"] in (
        None, False)


def test_fp16_amp_on_the_fast_path_is_refused_with_the_fix():
    with pytest.raises(ValueError, match="path='reference'"):
        TrainConfig(iterations=1, batch_size=1, amp="fp16", path="fast")
    with pytest.raises(ValueError, match="fast, reference"):
        TrainConfig(iterations=1, batch_size=1, path="quick")
