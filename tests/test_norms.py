"""perceptual.norms: the channels_last-preserving instance norm equals torch's, keeps the layout, and is swapped in
without changing parameters or state_dict keys."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from perceptual.nets import TransformNet
from perceptual.norms import LayoutPreservingInstanceNorm2d, is_channels_last, preserve_channels_last_

CL = torch.channels_last


@pytest.mark.parametrize("affine,track", [(True, False), (False, False), (True, True)])
def test_equals_torch_instance_norm_and_keeps_layout(affine, track):
    torch.manual_seed(0)
    ref = nn.InstanceNorm2d(16, affine=affine, track_running_stats=track)
    if affine:
        nn.init.normal_(ref.weight)
        nn.init.normal_(ref.bias)
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
