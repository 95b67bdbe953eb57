"""The paper's losses, checked against direct definitions on small tensors."""
import pytest
import torch
from torch import nn

from perceptual.losses import (
    STYLE_LAYERS,
    FeatureReconstructionLoss,
    LossWeights,
    PerceptualObjective,
    PixelLoss,
    feature_loss,
    gram_loss,
    gram_matrix,
    pixel_loss,
    tv_loss,
)


class PointwiseNet(nn.Module):
    """A stand-in loss network with the LossNetwork interface whose taps are 1x1 convs, so tiling the input tiles
    every feature map exactly (lets the size-independence test be exact)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.convs = nn.ModuleDict({name: nn.Conv2d(3, 4 + i, 1) for i, name in enumerate(STYLE_LAYERS)})
        for p in self.parameters():
            p.requires_grad_(False)

    def forward(self, x):
        return {name: torch.relu(conv(x)) for name, conv in self.convs.items()}


def test_gram_matches_a_direct_loop():
    torch.manual_seed(1)
    f = torch.randn(2, 3, 4, 5)
    g = gram_matrix(f)
    n, c, h, w = f.shape
    for b in range(n):
        for i in range(c):
            for j in range(c):
                direct = sum(f[b, i, y, x] * f[b, j, y, x] for y in range(h) for x in range(w)) / (c * h * w)
                assert torch.isclose(g[b, i, j], direct, atol=1e-6)


def test_feature_and_pixel_loss_are_chw_normalised_per_image():
    a, b = torch.zeros(2, 3, 4, 4), torch.zeros(2, 3, 4, 4)
    b[0] += 2.0  # squared error 4 everywhere in image 0
    assert torch.allclose(feature_loss(a, b), torch.tensor([4.0, 0.0]))
    assert torch.allclose(pixel_loss(a, b), torch.tensor([4.0, 0.0]))


def test_gram_loss_is_squared_frobenius():
    g1, g2 = torch.zeros(1, 2, 2), torch.tensor([[[1.0, 2.0], [0.0, 3.0]]])
    assert torch.allclose(gram_loss(g1, g2), torch.tensor([14.0]))


def test_tv_forms():
    y = torch.zeros(1, 1, 3, 3)
    y[..., 1, 1] = 1.0  # 4 neighbouring differences of 1 in each of 6 horizontal and 6 vertical pairs
    dx_mean = 2 / 6  # two nonzero horizontal differences among 6
    assert torch.allclose(tv_loss(y, "squared"), torch.tensor([2 * dx_mean]))
    assert torch.allclose(tv_loss(y, "abs"), torch.tensor([2 * dx_mean]))
    y2 = 2 * y
    assert torch.allclose(tv_loss(y2, "squared"), 4 * tv_loss(y, "squared"))
    assert torch.allclose(tv_loss(y2, "abs"), 2 * tv_loss(y, "abs"))
    with pytest.raises(ValueError):
        tv_loss(y, "cubic")


def test_style_loss_is_independent_of_spatial_size():
    torch.manual_seed(2)
    net = PointwiseNet()
    tile = torch.rand(1, 3, 16, 16)
    big = tile.repeat(1, 1, 3, 2)  # 48 x 32: same statistics, different size and aspect
    objective = PerceptualObjective(net, tile, LossWeights(content=0.0, style=1.0, tv=0.0))
    content_feat = objective.content_targets(big)
    terms = objective(big, content_feat)
    assert terms["style"].item() == pytest.approx(0.0, abs=1e-10)
    other = torch.rand(1, 3, 40, 24)
    assert objective(other, objective.content_targets(other))["style"].item() > 1e-6


def test_every_loss_is_zero_on_identical_inputs_and_positive_otherwise():
    torch.manual_seed(3)
    net = PointwiseNet()
    x = torch.rand(2, 3, 16, 16)
    noisy = (x + 0.1 * torch.randn_like(x)).clamp(0, 1)
    feat = FeatureReconstructionLoss(net, layer="relu2_2")
    pix = PixelLoss()
    assert torch.all(feat(x, x)["total"] == 0) and torch.all(feat(noisy, x)["total"] > 0)
    assert torch.all(pix(x, x)["total"] == 0) and torch.all(pix(noisy, x)["total"] > 0)
    objective = PerceptualObjective(net, x[:1], LossWeights(content=1.0, style=1.0, tv=0.0))
    same = objective(x[:1], objective.content_targets(x[:1]))
    assert same["content"].item() == 0 and same["style"].item() == pytest.approx(0.0, abs=1e-12)
    diff = objective(noisy[:1], objective.content_targets(x[:1]))
    assert diff["content"].item() > 0 and diff["style"].item() > 0
    flat = torch.full((1, 3, 8, 8), 0.5)
    assert tv_loss(flat).item() == 0 and tv_loss(noisy).min().item() > 0


def test_objective_terms_are_weighted_and_summed():
    torch.manual_seed(4)
    net = PointwiseNet()
    style, y, c = torch.rand(1, 3, 16, 16), torch.rand(3, 3, 16, 16), torch.rand(3, 3, 16, 16)
    unit = PerceptualObjective(net, style, LossWeights(1.0, 1.0, 1.0))
    weighted = PerceptualObjective(net, style, LossWeights(2.0, 3.0, 5.0))
    t1, t2 = unit(y, unit.content_targets(c)), weighted(y, weighted.content_targets(c))
    assert t1["total"].shape == (3,)
    for key, w in (("content", 2.0), ("style", 3.0), ("tv", 5.0)):
        assert torch.allclose(t2[key], w * t1[key], rtol=1e-5)
    assert torch.allclose(t2["total"], t2["content"] + t2["style"] + t2["tv"])


def test_gradients_reach_the_transform_network_and_never_vgg():
    from perceptual.nets import TransformNet
    from perceptual.vgg import LossNetwork

    torch.manual_seed(5)
    vgg = LossNetwork(weights="random")
    net = TransformNet("common")
    objective = PerceptualObjective(vgg, torch.rand(1, 3, 32, 32))
    x = torch.rand(2, 3, 32, 32)
    objective(net(x), objective.content_targets(x))["total"].mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters() if p.requires_grad)
    assert all(not p.requires_grad and p.grad is None for p in vgg.parameters())
