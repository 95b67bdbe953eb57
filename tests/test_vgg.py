"""The loss network: tap shapes, truncation, frozen parameters, normalisation, torchvision compatibility."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from perceptual.vgg import PAPER_STYLE_TAPS, TAPS, LossNetwork

# The ImageNet normalisation torchvision's VGG-16 weights were trained with, written out here rather than imported
# from perceptual.vgg, so a wrong constant there fails a test. Source: torchvision's models documentation ("mean =
# [0.485, 0.456, 0.406] and std = [0.229, 0.224, 0.225]"); the installed torchvision's
# `VGG16_Weights.IMAGENET1K_V1.transforms()` prints the same numbers.
TORCHVISION_MEAN = (0.485, 0.456, 0.406)
TORCHVISION_STD = (0.229, 0.224, 0.225)

# (channels, spatial divisor) of each paper tap.
SHAPES = {"relu1_2": (64, 1), "relu2_2": (128, 2), "relu3_3": (256, 4), "relu4_3": (512, 8),
          "relu5_3": (512, 16)}


@pytest.fixture(scope="module")
def random_net() -> LossNetwork:
    torch.manual_seed(0)
    return LossNetwork(taps=tuple(SHAPES), weights="random")


@pytest.mark.parametrize("hw", [(64, 64), (70, 45), (32, 96)])
def test_tap_shapes(random_net: LossNetwork, hw: tuple[int, int]) -> None:
    x = torch.rand(2, 3, *hw)
    with torch.no_grad():
        out = random_net(x)
    assert list(out) == list(SHAPES)  # construction order
    for tap, (c, d) in SHAPES.items():
        assert out[tap].shape == (2, c, hw[0] // d, hw[1] // d), tap
        assert (out[tap] >= 0).all(), f"{tap} is not a ReLU output"


def test_taps_map_to_torchvision_relu_indices() -> None:
    want = {"relu1_2": 3, "relu2_2": 8, "relu3_3": 15, "relu4_3": 22, "relu5_3": 29}
    assert {t: TAPS[t] for t in SHAPES} == want
    assert len(TAPS) == 13  # one per conv


def test_truncated_after_deepest_tap_and_order_kept() -> None:
    net = LossNetwork(taps=("relu2_2", "relu1_2"), weights="random")
    assert len(net.features) == TAPS["relu2_2"] + 1
    out = net(torch.rand(1, 3, 16, 16))
    assert list(out) == ["relu2_2", "relu1_2"]


def test_matches_torchvision_features_with_normalisation(random_net: LossNetwork) -> None:
    """The same state dict in torchvision's VGG-16 `features`, fed normalised input, gives the same taps."""
    from torchvision.models.vgg import cfgs, make_layers

    tv = make_layers(cfgs["D"]).eval()
    missing, unexpected = tv.load_state_dict(random_net.features.state_dict(), strict=False)
    assert not unexpected and all(int(k.split(".")[0]) > TAPS["relu5_3"] for k in missing)
    x = torch.rand(1, 3, 48, 40)
    h = (x - torch.tensor(TORCHVISION_MEAN).view(1, 3, 1, 1)) / torch.tensor(TORCHVISION_STD).view(1, 3, 1, 1)
    want = {}
    with torch.no_grad():
        for i, layer in enumerate(tv):
            h = layer(h)
            want[i] = h.clone()
        got = random_net(x)
    for tap, t in got.items():
        torch.testing.assert_close(t, want[TAPS[tap]], rtol=1e-5, atol=1e-5)


def test_normalisation_constants_are_torchvisions(random_net: LossNetwork) -> None:
    assert random_net.mean.flatten().tolist() == pytest.approx(TORCHVISION_MEAN, abs=1e-7)
    assert random_net.std.flatten().tolist() == pytest.approx(TORCHVISION_STD, abs=1e-7)


def test_frozen_gradients_reach_input_only() -> None:
    net = LossNetwork(taps=PAPER_STYLE_TAPS, weights="random")
    assert all(not p.requires_grad for p in net.parameters())
    gen = nn.Conv2d(3, 3, 3, padding=1)  # a stand-in transform network
    x = torch.rand(1, 3, 32, 32, requires_grad=True)
    loss = sum(f.pow(2).mean() for f in net(gen(x)).values())
    loss.backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert gen.weight.grad is not None and gen.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in net.parameters())
    opt = torch.optim.SGD(list(gen.parameters()) + list(net.parameters()), lr=0.1)
    before = [p.clone() for p in net.parameters()]
    opt.step()
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters()))


def test_stays_in_eval_mode() -> None:
    net = LossNetwork(taps=("relu1_2",), weights="random")
    parent = nn.ModuleDict({"loss": net, "gen": nn.BatchNorm2d(3)})
    parent.train()
    assert parent["gen"].training
    assert not net.training and not any(m.training for m in net.modules())
    assert net.train(True) is net and not net.training


def test_bad_arguments_are_named() -> None:
    with pytest.raises(ValueError, match="relu9_9"):
        LossNetwork(taps=("relu9_9",), weights="random")
    with pytest.raises(ValueError, match="at least one tap"):
        LossNetwork(taps=(), weights="random")
    with pytest.raises(ValueError, match="weights='vgg'"):
        LossNetwork(taps=("relu1_2",), weights="vgg")  # type: ignore[arg-type]
    net = LossNetwork(taps=("relu1_2",), weights="random")
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        net(torch.rand(1, 1, 8, 8))
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        net(torch.rand(3, 8, 8))


def test_imagenet_weights_are_loaded() -> None:
    from perceptual.weights import vgg16_state_dict

    net = LossNetwork(taps=("relu2_2",), weights="imagenet")
    sd = vgg16_state_dict()
    for k, v in net.features.state_dict().items():
        assert torch.equal(v, sd[f"features.{k}"]), k
    assert torch.allclose(net.features[0].weight[0, 0, 0], torch.tensor([-0.5537, 0.1427, 0.5290]), atol=5e-5)
    # Sanity: the features depend on the spatial arrangement of the input (a ramp vs. its shuffled columns).
    x = torch.linspace(0, 1, 32).view(1, 1, 1, 32).expand(1, 3, 32, 32).clone()
    with torch.no_grad():
        a = net(x)["relu2_2"]
        b = net(x[..., torch.randperm(32)])["relu2_2"]
    assert not torch.allclose(a, b)
