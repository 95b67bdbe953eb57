"""perceptual.norms: the channels_last-preserving and the fused (scale-and-shift) instance norms equal torch's, keep
the layout, and are swapped in without changing parameters or state_dict keys."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from perceptual.nets import TransformNet
from perceptual.norms import (
    FusedInstanceNorm2d,
    LayoutPreservingInstanceNorm2d,
    fuse_instance_norms_,
    is_channels_last,
    preserve_channels_last_,
)

CL = torch.channels_last


def _reference_norm(affine: bool, track: bool) -> nn.InstanceNorm2d:
    """torch's InstanceNorm2d over 16 channels, with random (seeded) affine parameters when it has them."""
    torch.manual_seed(0)
    ref = nn.InstanceNorm2d(16, affine=affine, track_running_stats=track)
    if affine:
        nn.init.normal_(ref.weight)
        nn.init.normal_(ref.bias)
    return ref


@pytest.mark.parametrize("affine,track", [(True, False), (False, False), (True, True)])
def test_equals_torch_instance_norm_and_keeps_layout(affine, track):
    ref = _reference_norm(affine, track)
    new = copy.deepcopy(ref)
    new.__class__ = LayoutPreservingInstanceNorm2d
    x = torch.randn(3, 16, 12, 10).contiguous(memory_format=CL)
    xr, xn = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    yr, yn = ref(xr), new(xn)
    assert not is_channels_last(yr), "torch's kernel turns channels_last into NCHW (why this module exists)"
    assert is_channels_last(yn)
    torch.testing.assert_close(yn, yr, rtol=1e-5, atol=1e-5)
    g = torch.randn_like(yr)
    yr.backward(g)
    yn.backward(g)
    torch.testing.assert_close(xn.grad, xr.grad, rtol=1e-4, atol=1e-5)
    assert is_channels_last(xn.grad)
    if track:
        torch.testing.assert_close(new.running_mean, ref.running_mean)
        torch.testing.assert_close(new.running_var, ref.running_var)
    xc = torch.randn(2, 16, 8, 8)
    torch.testing.assert_close(new(xc), ref(xc), rtol=0, atol=0)  # NCHW: torch's own kernel, bit for bit


def test_bf16_input_keeps_dtype_with_fp32_statistics():
    m = LayoutPreservingInstanceNorm2d(8, affine=True)
    x = (torch.randn(2, 8, 6, 6) * 100 + 1000).to(torch.bfloat16).contiguous(memory_format=CL)
    y = m(x)
    assert y.dtype == torch.bfloat16 and is_channels_last(y)
    assert y.float().mean(dim=(2, 3)).abs().max() < 0.05  # statistics in fp32: a large offset is removed


def test_swap_keeps_parameters_and_outputs():
    torch.manual_seed(0)
    net = TransformNet().eval()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        ref = net(x)
    assert preserve_channels_last_(net) == 15
    assert net.state_dict().keys() == before.keys()
    with torch.no_grad():
        torch.testing.assert_close(net(x), ref, rtol=0, atol=0)  # NCHW unchanged
        net.to(memory_format=CL)
        torch.testing.assert_close(net(x.contiguous(memory_format=CL)), ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
@pytest.mark.parametrize("affine,track", [(True, False), (False, False), (True, True)])
def test_fused_norm_equals_torch_instance_norm_in_fp32(layout, affine, track):
    ref = _reference_norm(affine, track)
    new = copy.deepcopy(ref)
    assert fuse_instance_norms_(new) == 1 and type(new) is FusedInstanceNorm2d
    x = torch.randn(3, 16, 12, 10) * 3 + 2
    if layout == "channels_last":
        x = x.contiguous(memory_format=CL)
    xr, xn = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    yr, yn = ref(xr), new(xn)
    torch.testing.assert_close(yn, yr, rtol=1e-5, atol=1e-5)
    assert is_channels_last(yn) == (layout == "channels_last")
    g = torch.randn_like(yr)
    yr.backward(g)
    yn.backward(g)
    torch.testing.assert_close(xn.grad, xr.grad, rtol=1e-4, atol=1e-5)
    if affine:
        torch.testing.assert_close(new.weight.grad if new.weight.grad is not None else ref.weight.grad,
                                   ref.weight.grad, rtol=1e-4, atol=1e-4)
    if track:
        torch.testing.assert_close(new.running_mean, ref.running_mean)
        torch.testing.assert_close(new.running_var, ref.running_var)
        new.load_state_dict(ref.state_dict())
        new.eval(), ref.eval()
        with torch.no_grad():  # running statistics: torch's own kernel, bit for bit
            torch.testing.assert_close(new(x), ref(x), rtol=0, atol=0)


def test_fused_norm_under_bf16_autocast_stays_close_to_fp32():
    """Under bf16 autocast (the CUDA fast path; CPU autocast here) the fused norm's output is bf16, its statistics
    fp32, and it is as close to the fp32 reference as the layout-preserving norm (scale and shift rounded to bf16,
    the same order as the input's own rounding)."""
    torch.manual_seed(0)
    ref = nn.InstanceNorm2d(8, affine=True)
    nn.init.normal_(ref.weight)
    nn.init.normal_(ref.bias)
    fused, kept = copy.deepcopy(ref), copy.deepcopy(ref)
    fuse_instance_norms_(fused)
    kept.__class__ = LayoutPreservingInstanceNorm2d
    x = (torch.randn(2, 8, 16, 16) * 4 + 10).contiguous(memory_format=CL)
    with torch.no_grad():
        want = ref(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            xb = x.to(torch.bfloat16)
            yf, yk = fused(xb), kept(xb)
    assert yf.dtype == torch.bfloat16 and is_channels_last(yf)
    err_fused, err_kept = (yf.float() - want).abs().max(), (yk.float() - want).abs().max()
    assert err_fused < 0.1 and err_fused <= 3 * err_kept + 1e-2
    torch.testing.assert_close(yf.float(), want, rtol=0.05, atol=0.1)


def test_fused_swap_keeps_parameters_and_matches_the_network():
    torch.manual_seed(0)
    net = TransformNet().eval()
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        ref = net(x)
    keys = net.state_dict().keys()
    preserve_channels_last_(net)  # the fused norm also replaces the layout-preserving one
    assert fuse_instance_norms_(net) == 15 and net.state_dict().keys() == keys
    with torch.no_grad():
        torch.testing.assert_close(net(x), ref, rtol=1e-4, atol=1e-4)


def test_fast_path_uses_the_fused_norm_only_when_configured():
    from perceptual.fast import FastConfig, FastStylizer

    net = TransformNet()
    assert not any(isinstance(m, FusedInstanceNorm2d) for m in FastStylizer(net, "cpu").net.modules())
    fast = FastStylizer(net, "cpu", config=FastConfig(fused_norm=True))
    assert sum(isinstance(m, FusedInstanceNorm2d) for m in fast.net.modules()) == 15
