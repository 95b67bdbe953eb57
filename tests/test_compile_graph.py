"""torch.compile(backend="aot_eager", fullgraph=True) over the fast path's training and inference functions.

Why: the fast path's CUDA default compiles these functions (inductor) and captures them in CUDA graphs; a graph break
(a Python-side read of a tensor, an unsupported call) would silently split the compiled region on a GPU, and a
recompile on every call would cost minutes. aot_eager traces exactly what inductor would get, forward and backward
(AOTAutograd), without generating code, so it runs here in seconds. fullgraph=True turns any graph break into an
error; the compile counter checks that calls after warm-up reuse the graph (no recompile).
"""
from __future__ import annotations

import pytest
import torch
from torch._dynamo.testing import CompileCounterWithBackend

from perceptual.fast import FastConfig, FastStylizer, FastTrainer, fast_feature_loss, fast_style_loss_fn
from perceptual.losses import FeatureReconstructionLoss, PerceptualObjective
from perceptual.nets import SRNet, TransformNet
from perceptual.vgg import LossNetwork


@pytest.fixture(autouse=True)
def fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def _compiled(fn, counter):
    return torch.compile(fn, backend=counter, fullgraph=True, dynamic=False)


def _steady(fn, make_input, counter, warm=1, calls=3):
    for _ in range(warm):
        fn(make_input())
    compiled_frames = counter.frame_count
    with torch._dynamo.config.patch(error_on_recompile=True):
        outs = [fn(make_input()) for _ in range(calls)]
    assert counter.frame_count == compiled_frames, "recompiled after warm-up"
    return outs


@pytest.mark.parametrize("net_name,dtype", [("style", "float32"), ("sr_x4", "float32"), ("style", "bfloat16")])
def test_inference_function_compiles_whole(net_name, dtype):
    torch.manual_seed(0)
    net = TransformNet() if net_name == "style" else SRNet(4)
    size = 16
    cfg = FastConfig(channels_last=True, dtype=dtype)  # the CUDA layout (with the layout-preserving instance norm)
    stylizer = FastStylizer(net, "cpu", config=cfg)
    counter = CompileCounterWithBackend("aot_eager")
    run = _compiled(stylizer._forward, counter)
    x = lambda: torch.rand(2, 3, size, size).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        outs = _steady(run, x, counter)
        xin = x()
        tol = 1e-5 if dtype == "float32" else 5e-2
        torch.testing.assert_close(run(xin), stylizer._forward(xin), rtol=tol, atol=tol)
    assert counter.frame_count == 1 and all(o.dtype == torch.float32 for o in outs)


def _style_loss():
    torch.manual_seed(1)
    objective = PerceptualObjective(LossNetwork(weights="random"), torch.rand(1, 3, 32, 32))
    return fast_style_loss_fn(objective, FastConfig(channels_last=True))


def _feat_loss():
    torch.manual_seed(1)
    criterion = FeatureReconstructionLoss(LossNetwork(("relu2_2",), weights="random"), "relu2_2")
    loss = fast_feature_loss(criterion, FastConfig(channels_last=True))

    def fn(model, batch):
        lr, hr = batch
        return loss(model(lr), hr)
    return fn


@pytest.mark.parametrize("task,dtype", [("style", "float32"), ("sr_x4", "float32"), ("style", "bfloat16")])
def test_training_function_compiles_whole(task, dtype):
    """FastTrainer's loss function (network forward + loss network + Eq. 5 / l_feat terms): one graph, forward
    and backward traced by AOTAutograd, then the optimiser step; no recompile over further steps."""
    torch.manual_seed(0)
    if task == "style":
        net, loss_fn = TransformNet(), _style_loss()
        batch = lambda: torch.rand(2, 3, 32, 32)
    else:
        net, loss_fn = SRNet(4), _feat_loss()
        batch = lambda: (torch.rand(2, 3, 8, 8), torch.rand(2, 3, 32, 32))
    trainer = FastTrainer(net, loss_fn, device="cpu", config=FastConfig(channels_last=True, dtype=dtype))
    counter = CompileCounterWithBackend("aot_eager")
    trainer._loss = _compiled(trainer._loss_means, counter)
    outs = _steady(trainer.step, batch, counter, warm=1, calls=2)
    assert counter.frame_count == 1
    assert all(torch.isfinite(o).all() for o in outs) and trainer.terms[0] == "total"
