"""Shapes and structure of the paper's networks, both variants."""
import pytest
import torch

from perceptual.nets import SRNet, TransformNet


@pytest.mark.parametrize("variant", ["common", "paper"])
@pytest.mark.parametrize("size", [(64, 64), (96, 128), (256, 256)])
def test_transform_net_keeps_size(variant, size):
    net = TransformNet(variant).eval()
    with torch.no_grad():
        y = net(torch.rand(2, 3, *size))
    assert y.shape == (2, 3, *size)


@pytest.mark.parametrize("variant", ["common", "paper"])
@pytest.mark.parametrize("scale,lr,hr", [(4, 72, 288), (8, 36, 288), (4, 20, 80), (8, 10, 80)])
def test_sr_net_upscales(variant, scale, lr, hr):
    net = SRNet(scale, variant).eval()
    with torch.no_grad():
        y = net(torch.rand(1, 3, lr, lr + 4))
    assert y.shape == (1, 3, hr, hr + 4 * scale)


def test_paper_variant_uses_the_papers_layers():
    net = TransformNet("paper")
    kinds = {type(m).__name__ for m in net.modules()}
    assert {"BatchNorm2d", "ConvTranspose2d", "ReflectionPad2d"} <= kinds and "InstanceNorm2d" not in kinds
    assert net.net[0].padding == (40, 40, 40, 40)
    common = {type(m).__name__ for m in TransformNet("common").modules()}
    assert {"InstanceNorm2d", "Upsample"} <= common and "ConvTranspose2d" not in common and "BatchNorm2d" not in common


def test_paper_output_is_in_range():
    """The paper's scaled tanh, (tanh(a) + 1) / 2 of the last conv's output a, is what keeps the output in [0, 1]:
    a itself leaves that range here, the common variant (no tanh) passes it on, the paper variant squashes it."""
    torch.manual_seed(0)
    x = torch.rand(1, 3, 64, 64) * 50  # push activations far out
    for variant, squashed in (("paper", True), ("common", False)):
        net = TransformNet(variant).eval()
        seen = []
        last_conv = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)][-1]
        hook = last_conv.register_forward_hook(lambda m, i, o, out=seen: out.append(o.detach()))
        with torch.no_grad():
            y = net(x)
        hook.remove()
        a = seen[-1]
        assert a.min() < 0 or a.max() > 1, variant  # so the range check below can fail
        if squashed:
            torch.testing.assert_close(y, (torch.tanh(a) + 1) / 2, rtol=0, atol=1e-6)
            assert 0 <= y.min() and y.max() <= 1
        else:
            assert y.min() < 0 or y.max() > 1


def test_bad_arguments_name_the_option():
    with pytest.raises(ValueError, match="--variant"):
        TransformNet("fancy")
    with pytest.raises(ValueError, match="--scales"):
        SRNet(3)
    with pytest.raises(ValueError, match="divisible by 4"):
        TransformNet()(torch.rand(1, 3, 30, 32))


@pytest.mark.parametrize("variant", ["common", "paper"])
def test_sr_net_can_see_absolute_intensity(variant):
    """An SR net must map a brighter input to a brighter output. With instance norm after the first conv a constant
    shift of the input is normalised away and the output is identical, so l_pixel cannot be learned (it plateaus at
    the images' variance); the SR nets therefore use batch norm (paper) or none (common)."""
    torch.manual_seed(0)
    net = SRNet(4, variant)
    x = torch.rand(4, 3, 24, 24) * 0.5
    net.train()
    with torch.no_grad():
        net(x)  # one batch of statistics for eval mode
    net.eval()
    with torch.no_grad():
        assert (net(x + 0.3) - net(x)).abs().max() > 1e-3
    assert not any(isinstance(m, torch.nn.InstanceNorm2d) for m in net.modules())
