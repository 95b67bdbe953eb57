"""The fast path (perceptual.fast) against the reference path: same weights, results within the stated bounds.

Runs on CPU by default, on small images so the file takes well under a minute on two cores. The same tests run on
CUDA from bench/gpu/check.py (PERCEPTUAL_TEST_DEVICE=cuda); torch.compile cases need PERCEPTUAL_TEST_COMPILE=1
(compiling costs 10-90 s per shape on this CPU, too slow for the default test run).
Bounds (perceptual.fast.TOLERANCES etc.): outputs clamped to [0, 1], max abs fp32 5e-5, bf16 6e-2 (mean 6e-3),
fp16 1e-2 (mean 1e-3) on CPU; training losses relative 1e-5 on the first step at fp32 (3e-2 bf16) and 1e-2 on later
steps (5e-2 bf16); the CPU default fast path runs the reference arithmetic and must match it to 1e-6.
"""
from __future__ import annotations

import copy
import os
from dataclasses import replace
from functools import partial

import pytest
import torch

from baselines.gatys import GatysConfig, stylise
from baselines.srcnn import SRCNN, srcnn_loss
from perceptual.fast import (
    LOSS_RTOL_FIRST,
    LOSS_RTOL_LATER,
    FastConfig,
    FastStylizer,
    FastTrainer,
    best_config,
    fast_feature_loss,
    fast_objective,
    fast_style_loss_fn,
    fold_batchnorm_,
    receptive_radius,
    reference_train_step,
    tiled_forward,
    tolerance,
)
from perceptual.losses import FeatureReconstructionLoss, PerceptualObjective
from perceptual.nets import SRNet, TransformNet
from perceptual.vgg import LossNetwork

DEVICE = torch.device(os.environ.get("PERCEPTUAL_TEST_DEVICE", "cpu"))
COMPILE = os.environ.get("PERCEPTUAL_TEST_COMPILE", "") == "1"
needs_cuda = pytest.mark.skipif(DEVICE.type != "cuda", reason="CUDA-only path (set PERCEPTUAL_TEST_DEVICE=cuda on a "
                                                              "GPU machine; bench/gpu/check.py does)")
needs_compile = pytest.mark.skipif(not COMPILE, reason="torch.compile costs 10-90 s per shape here; set "
                                                      "PERCEPTUAL_TEST_COMPILE=1 (bench/gpu/check.py does)")
if DEVICE.type == "cuda" and not torch.cuda.is_available():  # pragma: no cover - misconfiguration
    raise RuntimeError("PERCEPTUAL_TEST_DEVICE=cuda but CUDA is not available")


def _diff(a: torch.Tensor, b: torch.Tensor) -> tuple[float, float]:
    d = (a.float().clamp(0, 1) - b.float().clamp(0, 1)).abs()
    return d.max().item(), d.mean().item()


def _assert_close_outputs(fast: torch.Tensor, ref: torch.Tensor, dtype: torch.dtype) -> None:
    assert fast.shape == ref.shape and fast.dtype == torch.float32
    mx, mean = _diff(fast, ref)
    assert mx <= tolerance(DEVICE, dtype), f"max abs diff {mx:.3g} > {tolerance(DEVICE, dtype)} ({dtype})"
    assert mean <= tolerance(DEVICE, dtype, "mean"), f"mean abs diff {mean:.3g} ({dtype})"


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One intra-op thread: the development CPU's 2 cores are shared, and torch's two OpenMP threads then spin-wait
    on each other (this file took 110 s with 2 threads, 16 s with 1). The bounds do not depend on the thread count."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(autouse=True, scope="module")
def _strict_fp32_reference():
    """Reference outputs on CUDA in true fp32 (no TF32), so the bounds measure the fast path's own error."""
    if DEVICE.type != "cuda":
        yield
        return
    old = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = old


def _nets() -> dict[str, tuple[torch.nn.Module, torch.Tensor]]:
    torch.manual_seed(0)
    return {
        "style": (TransformNet().eval(), torch.rand(2, 3, 48, 64)),
        "sr_x4": (SRNet(4).eval(), torch.rand(1, 3, 20, 24)),
        "srcnn": (SRCNN().eval(), torch.rand(2, 1, 40, 40)),
    }


# ------------------------------------------------------------------------------------------------------- config


def test_cpu_default_is_the_reference_arithmetic():
    """Measured on the development CPU: channels_last and bf16 are slower, compile too costly for short jobs."""
    cfg = best_config("cpu")
    assert (cfg.dtype, cfg.channels_last, cfg.compile, cfg.cuda_graphs) == (torch.float32, False, False, False)
    assert best_config("cpu", "train") == cfg and best_config("cpu", "gatys") == cfg
    gpu = best_config("cuda", "train")
    assert gpu.dtype == torch.bfloat16 and gpu.channels_last and gpu.cuda_graphs and gpu.fused_adam
    # the fused instance norm is not bit-identical to torch's: on for CUDA, off on the CPU (results stay the same)
    assert gpu.fused_norm and best_config("cuda").fused_norm and not cfg.fused_norm


def test_layout_follows_compile_on_cuda_only():
    """Uncompiled CUDA runs NCHW (nn.ReflectionPad2d's CUDA kernel returns NCHW, so channels_last would convert at
    every padded conv); compiled CUDA keeps channels_last; the CPU layout never changes with compile."""
    from perceptual.fast import with_compile
    from perceptual.fast.config import UNCOMPILED_CUDA_CHANNELS_LAST

    gpu = best_config("cuda", "train")
    eager = with_compile(gpu, "cuda", False)
    assert not eager.compile and eager.channels_last == UNCOMPILED_CUDA_CHANNELS_LAST is False
    assert eager.cuda_graphs and eager.fused_norm and eager.dtype == torch.bfloat16  # the rest of the fast path
    assert with_compile(eager, "cuda", True).channels_last
    assert "cl" not in eager.label() and eager.as_dict()["channels_last"] is False  # recorded in fast_config
    cpu = FastConfig(channels_last=True)
    assert with_compile(cpu, "cpu", True).channels_last and with_compile(cpu, "cpu", False).channels_last


def test_config_errors_name_the_fix():
    with pytest.raises(ValueError, match="cuda_graphs"):
        FastStylizer(TransformNet(), "cpu", cuda_graphs=True)
    with pytest.raises(ValueError, match="dtype"):
        FastConfig(dtype="int8")
    with pytest.raises(ValueError, match="task"):
        best_config("cpu", "painting")
    with pytest.raises(ValueError, match="unsqueeze"):
        FastStylizer(TransformNet(), "cpu")(torch.rand(3, 32, 32))
    with pytest.raises(ValueError, match="bf16|bfloat16"):
        FastTrainer(TransformNet(), lambda m, b: {"total": m(b).mean(dim=(1, 2, 3))}, dtype="fp16")
    assert best_config("cuda").label() == "bf16+cl+compile+graphs+cudnnbench+fusednorm"


# ---------------------------------------------------------------------------------------------------- inference


@pytest.mark.parametrize("name", ["style", "sr_x4", "srcnn"])
@pytest.mark.parametrize("dtype,channels_last", [("float32", False), ("float32", True), ("bfloat16", True)])
def test_fast_inference_matches_reference(name, dtype, channels_last):
    net, x = _nets()[name]
    if dtype != "float32" and name != "style":
        x = x[:1]
    with torch.no_grad():
        ref = net.to(DEVICE)(x.to(DEVICE))
    fast = FastStylizer(net, DEVICE, dtype=dtype, channels_last=channels_last, compile=False, cuda_graphs=False)
    _assert_close_outputs(fast(x), ref, fast.config.dtype)
    assert next(net.parameters()).is_contiguous(), "the caller's network must not be converted"


@pytest.mark.parametrize("dtype,channels_last", [("float32", False), ("float32", True), ("bfloat16", False)])
def test_fused_norm_inference_matches_reference(dtype, channels_last):
    """The fused instance norm (CUDA's default) within the fast path's stated tolerances, in either layout (the
    style network's 15 instance norms; the SR networks here have none)."""
    net, x = _nets()["style"]
    x = x[:1]
    with torch.no_grad():
        ref = net.to(DEVICE)(x.to(DEVICE))
    cfg = FastConfig(dtype=dtype, channels_last=channels_last, fused_norm=True)
    fast = FastStylizer(net, DEVICE, config=cfg)
    assert any(type(m).__name__ == "FusedInstanceNorm2d" for m in fast.net.modules())
    _assert_close_outputs(fast(x), ref, fast.config.dtype)


def test_fp16_inference_matches_reference():
    net, x = _nets()["style"]
    with torch.no_grad():
        ref = net.to(DEVICE)(x[:1].to(DEVICE))
    _assert_close_outputs(FastStylizer(net, DEVICE, dtype="fp16", channels_last=True, compile=False,
                                       cuda_graphs=False)(x[:1]), ref, torch.float16)


def test_bf16_bound_is_not_vacuous():
    """bf16 really changes the output (so the bf16 bound is a bound, not a formality), and fp32 does not."""
    net, x = _nets()["style"]
    with torch.no_grad():
        ref = net.to(DEVICE)(x[:1].to(DEVICE))
    bf16 = FastStylizer(net, DEVICE, dtype="bf16", channels_last=True, compile=False, cuda_graphs=False)(x[:1])
    assert _diff(bf16, ref)[0] > tolerance(DEVICE, "float32")


def test_paper_variant_batchnorm_folding_is_exact():
    torch.manual_seed(1)
    net = TransformNet("paper")
    for m in net.modules():  # non-trivial running statistics and affine parameters
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    net.eval()
    x = torch.rand(1, 3, 64, 96)  # the paper variant's 40 px reflection pad needs more than 40 px
    with torch.no_grad():
        ref = net(x)
    folded = copy.deepcopy(net)
    assert fold_batchnorm_(folded) == sum(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules()) == 15
    with torch.no_grad():
        assert (folded(x) - ref).abs().max().item() <= 5e-5
    fast = FastStylizer(net, DEVICE, dtype="float32", compile=False, cuda_graphs=False)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fast.net.modules())
    _assert_close_outputs(fast(x), ref.to(DEVICE), torch.float32)


def test_padded_thin_convs_are_exact():
    net, x = _nets()["style"]
    with torch.no_grad():
        ref = net.to(DEVICE)(x.to(DEVICE))
    fast = FastStylizer(net, DEVICE, config=FastConfig(pad_channels=8, channels_last=True))
    assert sum(type(m).__name__ == "_PaddedConv2d" for m in fast.net.modules()) == 2  # the two 9x9 RGB convs
    _assert_close_outputs(fast(x), ref, torch.float32)


def test_batched_inference_equals_one_by_one():
    net, _ = _nets()["style"]
    torch.manual_seed(2)
    images = [torch.rand(3, 16, 24), torch.rand(1, 3, 20, 20), torch.rand(3, 16, 24), torch.rand(3, 16, 24),
              torch.rand(3, 20, 20)]
    fast = FastStylizer(net, DEVICE, config=FastConfig())
    out = fast.stylize_many(images, batch_size=2)
    net = net.to(DEVICE)
    for img, y in zip(images, out):
        with torch.no_grad():
            ref = net(img.reshape(1, *img.shape[-3:]).to(DEVICE))
        assert y.shape == (ref.shape if img.dim() == 4 else ref.shape[1:])
        _assert_close_outputs(y.reshape(ref.shape), ref, torch.float32)


# ------------------------------------------------------------------------------------------------------- tiling


def test_receptive_radius_is_measured():
    """SRCNN 9-1-5: exactly (9-1)/2 + 0 + (5-1)/2 = 6 px. The style network: 5 + 2 (strided convs) + 10 x 4
    (residual convs at 1/4 resolution) + 3 (upsampling convs) + 4 (9x9 output conv) = 54, 55 with nearest
    upsampling's one-sided footprint."""
    assert receptive_radius(SRCNN(), channels=1, device=DEVICE) == 6
    r = receptive_radius(TransformNet(), size=128, trials=1, device=DEVICE)
    assert 54 <= r <= 56


def test_receptive_radius_is_measured_once_per_network_and_weights(monkeypatch):
    """The measurement is cached by architecture and exact weights: the same weights in another module object are
    not measured again; changed weights or another probe size are."""
    from perceptual.fast import tiling

    sizes: list[int | None] = []  # the probe size of each measurement (None: the default search, 64 px first)
    measure = tiling._measure_radius
    monkeypatch.setattr(tiling, "_RADII", {})
    monkeypatch.setattr(tiling, "_measure_radius", lambda *a: sizes.append(a[2]) or measure(*a))
    net = SRCNN()
    assert receptive_radius(net, channels=1, device=DEVICE) == 6 and sizes.count(None) == 1
    same = SRCNN()
    same.load_state_dict(net.state_dict())
    assert receptive_radius(same, channels=1, device=DEVICE) == 6 and sizes.count(None) == 1
    with torch.no_grad():
        next(same.parameters()).view(-1)[0] += 1e-3
    assert receptive_radius(same, channels=1, device=DEVICE) == 6 and sizes.count(None) == 2
    assert receptive_radius(net, channels=1, size=32, device=DEVICE) == 6 and sizes[-1] == 32


@pytest.mark.parametrize("overlap,exact", [(56, True), (8, False)])
def test_tiled_style_forward_equals_untiled(overlap, exact):
    """Halo >= the receptive radius (55, rounded up to the alignment of 4): equal to the untiled output including
    the instance-norm statistics; a short halo visibly differs (so the test can fail)."""
    net, _ = _nets()["style"]
    torch.manual_seed(3)
    x = torch.rand(1, 3, 128, 32)  # two tiles, one boundary 56 px from the cores
    with torch.no_grad():
        ref = net.to(DEVICE)(x.to(DEVICE)).cpu()
    y = tiled_forward(net, x, tile=64, overlap=overlap, device=DEVICE)
    assert y.shape == ref.shape and y.device == x.device
    err = (y - ref).abs().max().item()
    assert err <= 5e-5 if exact else err > 1e-2, f"overlap {overlap}: max abs diff {err:.3g}"


def test_tiled_sr_forward_equals_untiled():
    net, _ = _nets()["sr_x4"]
    torch.manual_seed(4)
    x = torch.rand(1, 3, 48, 12)
    with torch.no_grad():
        ref = net.to(DEVICE)(x.to(DEVICE)).cpu()
    y = tiled_forward(net, x, tile=16, overlap=16, device=DEVICE)  # measured radius 14 LR px
    assert y.shape == (1, 3, 192, 48)
    assert (y - ref).abs().max().item() <= 5e-5


def test_tiled_forward_rejects_misaligned_tiles_and_training_mode():
    with pytest.raises(ValueError, match="multiples of 4"):
        tiled_forward(TransformNet().eval(), torch.rand(1, 3, 64, 64), tile=30, overlap=8)
    with pytest.raises(ValueError, match="eval"):
        tiled_forward(TransformNet("paper").train(), torch.rand(1, 3, 64, 64), tile=32, overlap=8)


# ----------------------------------------------------------------------------------------------------- training


@pytest.fixture(scope="module")
def style_objective() -> PerceptualObjective:
    torch.manual_seed(5)
    return PerceptualObjective(LossNetwork(weights="random", device=DEVICE), torch.rand(1, 3, 32, 32, device=DEVICE))


def _reference_trajectory(model, loss_fn, batches, lr=1e-3, param_groups=None):
    model = copy.deepcopy(model).to(DEVICE)
    opt = torch.optim.Adam(param_groups(model) if param_groups else model.parameters(), lr=lr)
    return [reference_train_step(model, loss_fn, opt, [t.to(DEVICE) for t in b] if isinstance(b, tuple)
                                 else b.to(DEVICE)) for b in batches]


def _fast_trajectory(model, loss_fn, batches, cfg, lr=1e-3, param_groups=None):
    model = copy.deepcopy(model)
    trainer = FastTrainer(model, loss_fn, device=DEVICE, lr=lr, config=cfg,
                          param_groups=param_groups(model) if param_groups else None)
    return [trainer.losses(trainer.step(b)) for b in batches]


def _rel(a: float, b: float) -> float:
    return abs(a - b) / max(abs(b), 1e-12)


def _check_trajectory(fast, ref, first: float, later: float) -> None:
    assert len(fast) == len(ref)
    for step, (f, r) in enumerate(zip(fast, ref)):
        assert list(f) == list(r)
        bound = first if step == 0 else later
        for term in r:
            assert _rel(f[term], r[term]) <= bound, f"step {step} {term}: fast {f[term]} ref {r[term]}"


@pytest.fixture(scope="module")
def style_case(style_objective):
    """A style training problem and its reference trajectory (computed once for the tests that compare to it)."""
    torch.manual_seed(6)
    batches = [torch.rand(2, 3, 24, 24) for _ in range(3)]

    def ref_loss(model, batch):
        return style_objective(model(batch), style_objective.content_targets(batch))

    net = TransformNet()
    return net, ref_loss, batches, _reference_trajectory(net, ref_loss, batches)


@pytest.mark.skipif(DEVICE.type == "cuda", reason="the CUDA default is bf16; covered by the bf16 case")
def test_default_fast_train_step_reproduces_the_reference_trajectory(style_objective, style_case):
    net, _, batches, ref = style_case
    cfg = best_config(DEVICE, "train")
    fast = _fast_trajectory(net, fast_style_loss_fn(style_objective, cfg), batches, cfg)
    _check_trajectory(fast, ref, 1e-6, 1e-6)


@pytest.mark.parametrize("change", [{"channels_last": True}, {"pad_channels": 8}, {"fused_adam": True},
                                    {"dtype": torch.bfloat16, "channels_last": True}, {"fused_norm": True},
                                    {"dtype": torch.bfloat16, "fused_norm": True, "fused_adam": True}])
def test_fast_train_step_layouts_and_precision(style_objective, style_case, change):
    net, _, batches, ref = style_case
    cfg = replace(FastConfig(), **change)
    fast = _fast_trajectory(net, fast_style_loss_fn(style_objective, cfg), batches, cfg)
    name = str(cfg.dtype).removeprefix("torch.")
    _check_trajectory(fast, ref, LOSS_RTOL_FIRST[name], LOSS_RTOL_LATER[name])


def test_fast_train_step_sr_feature_loss_and_srcnn():
    torch.manual_seed(7)
    crit = FeatureReconstructionLoss(LossNetwork(("relu2_2",), weights="random", device=DEVICE))
    batches = [(torch.rand(2, 3, 8, 8), torch.rand(2, 3, 32, 32)) for _ in range(3)]

    def sr_loss(criterion):
        return lambda model, batch: criterion(model(batch[0]), batch[1])

    cfg = replace(FastConfig(), channels_last=DEVICE.type == "cuda")
    net = SRNet(4)
    _check_trajectory(_fast_trajectory(net, sr_loss(fast_feature_loss(crit, cfg)), batches, cfg),
                      _reference_trajectory(net, sr_loss(crit), batches), LOSS_RTOL_FIRST["float32"],
                      LOSS_RTOL_LATER["float32"])
    srcnn = SRCNN()
    sub = [(torch.rand(8, 1, 33, 33), torch.rand(8, 1, 33, 33)) for _ in range(3)]

    def groups(model):
        return model.param_groups(1e-4)  # Dong et al.'s per-layer rates

    loss = partial(srcnn_loss, border=srcnn.border)
    _check_trajectory(_fast_trajectory(srcnn, loss, sub, cfg, lr=1e-4, param_groups=groups),
                      _reference_trajectory(srcnn, loss, sub, lr=1e-4, param_groups=groups),
                      LOSS_RTOL_FIRST["float32"], LOSS_RTOL_LATER["float32"])


def test_fast_trainer_trains_the_callers_model_and_returns_fresh_outputs(style_objective, style_case):
    net, _, batches, _ = style_case
    net = copy.deepcopy(net)
    before = [p.detach().clone() for p in net.parameters()]
    trainer = FastTrainer(net, fast_style_loss_fn(style_objective, FastConfig()), device=DEVICE, config=FastConfig())
    first = trainer.step(batches[0])
    kept = first.clone()
    trainer.step(batches[1])
    assert torch.equal(first, kept), "a step's result must not be overwritten by the next step"
    assert trainer.terms == ["total", "content", "style", "tv"]
    assert any(not torch.equal(b, p.detach().cpu()) for b, p in zip(before, net.parameters()))


# ------------------------------------------------------------------------------------------------------- Gatys


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_fast_objective_matches_reference(style_objective, dtype):
    torch.manual_seed(8)
    content = torch.rand(1, 3, 32, 32, device=DEVICE)
    cfg = FastConfig(dtype=dtype, channels_last=dtype != "float32")
    fobj = fast_objective(style_objective, cfg)
    target = style_objective.content_targets(content)
    fast_target = fobj.content_targets(content)
    assert fast_target.dtype == torch.float32 and fast_target.shape == target.shape
    if dtype == "float32":  # the truncated VGG prefix runs the same arithmetic
        assert torch.equal(fast_target, target)
    else:  # bf16 rounds (measured on CPU: relative error 4e-3), within the stated first-step bound
        rel = ((fast_target - target).norm() / target.norm()).item()
        assert 0 < rel <= LOSS_RTOL_FIRST[dtype], f"bf16 content targets: relative error {rel:.3g}"
    x = torch.rand(1, 3, 32, 32, device=DEVICE, requires_grad=True)
    ref = style_objective(x, target)
    ref["total"].sum().backward()
    g_ref, x.grad = x.grad.clone(), None
    fast = fobj(x, fobj.content_targets(content))
    fast["total"].sum().backward()
    bound = LOSS_RTOL_FIRST[dtype]
    for term in ("total", "content", "style", "tv"):
        assert _rel(fast[term].item(), ref[term].item()) <= bound, term
    cos = torch.nn.functional.cosine_similarity(x.grad.flatten(), g_ref.flatten(), dim=0).item()
    assert cos >= (1 - 1e-6 if dtype == "float32" else 0.99)


def test_gatys_runs_on_the_fast_objective(style_objective):
    content = torch.rand(1, 3, 24, 24, device=DEVICE)
    ref = stylise(style_objective, content, GatysConfig(iterations=3))
    fast = stylise(fast_objective(style_objective, best_config(DEVICE, "gatys")), content, GatysConfig(iterations=3))
    bound = 1e-6 if DEVICE.type == "cpu" else LOSS_RTOL_LATER["bfloat16"]
    assert _rel(fast.final["total"], ref.final["total"]) <= bound
    assert fast.final["total"] < fast.trace[0]["total"]


# ---------------------------------------------------------------------------------------------- compile / CUDA


@pytest.mark.slow
@needs_compile
def test_compiled_inference_and_training_match_reference(style_objective, style_case):
    net, x = _nets()["style"]
    with torch.no_grad():
        ref = net.to(DEVICE)(x.to(DEVICE))
    fast = FastStylizer(net, DEVICE, config=replace(best_config(DEVICE), compile=True))
    _assert_close_outputs(fast(x), ref, fast.config.dtype)
    _assert_close_outputs(fast(x), ref, fast.config.dtype)  # second call: the compiled (and graphed) replay
    tnet, _, batches, ref = style_case
    cfg = replace(best_config(DEVICE, "train"), compile=True)
    name = str(cfg.dtype).removeprefix("torch.")
    _check_trajectory(_fast_trajectory(tnet, fast_style_loss_fn(style_objective, cfg), batches, cfg), ref,
                      LOSS_RTOL_FIRST[name], LOSS_RTOL_LATER[name])


@needs_cuda
def test_cuda_graph_inference_matches_and_does_not_alias():
    net, x = _nets()["style"]
    with torch.no_grad():
        ref = net.to(DEVICE)(x.to(DEVICE))
    fast = FastStylizer(net, DEVICE, config=FastConfig(dtype="bf16", channels_last=True, cuda_graphs=True))
    a = fast(x)
    b = fast(torch.zeros_like(x))
    _assert_close_outputs(a, ref, torch.bfloat16)
    assert not torch.equal(a, b), "a replay overwrote the previous call's output"


@needs_cuda
@pytest.mark.parametrize("fused", [True, False])
def test_cuda_graph_training_reproduces_reference(style_objective, style_case, fused):
    net, _, batches, ref = style_case
    cfg = FastConfig(dtype="bf16", channels_last=True, cuda_graphs=True, fused_adam=fused)
    fast = _fast_trajectory(net, fast_style_loss_fn(style_objective, cfg), batches, cfg)
    _check_trajectory(fast, ref, LOSS_RTOL_FIRST["bfloat16"], LOSS_RTOL_LATER["bfloat16"])
