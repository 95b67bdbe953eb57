"""The paper's loss functions (Section 3), written once and shared by training and by the Gatys baseline.

Every term is computed per image (shape (N,)) so the same code gives per-image objectives for Fig. 5;
training takes the mean over the batch.

- Feature reconstruction: l_feat = ||phi_j(y^) - phi_j(y)||_2^2 / (C_j H_j W_j).
- Gram matrix: G = psi psi^T / (C H W) with psi the C x HW feature matrix.
- Style reconstruction: l_style = sum over layers of ||G(y^) - G(y_s)||_F^2 (the paper's squared Frobenius norm,
  not the mean over C^2 entries many reimplementations use; the weights below are chosen for this form).
- Total variation: `squared` (beta = 2, Mahendran & Vedaldi) or `abs` (beta = 1), both as means over pixels.
- Pixel: l_pixel = ||y^ - y||_2^2 / (C H W).
"""
from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Literal

import torch
from torch import nn

CONTENT_LAYER = "relu2_2"
STYLE_LAYERS: tuple[str, ...] = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")
TVForm = Literal["squared", "abs"]
_AUTOCAST_DEVICES = ("cpu", "cuda", "xpu", "mps", "hpu")


def _per_image_mean(x: torch.Tensor) -> torch.Tensor:
    return x.flatten(1).mean(dim=1)


def feature_loss(feat_hat: torch.Tensor, feat: torch.Tensor) -> torch.Tensor:
    """||phi(y^) - phi(y)||^2 / (C H W), one value per image."""
    return _per_image_mean((feat_hat - feat).pow(2))


def pixel_loss(y_hat: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """||y^ - y||^2 / (C H W), one value per image."""
    return _per_image_mean((y_hat - y).pow(2))


def gram_matrix(feat: torch.Tensor) -> torch.Tensor:
    """G = psi psi^T / (C H W) for features of shape (N, C, H, W); returns (N, C, C). Always fp32 inputs, output and
    accumulation.

    Autocast is switched off around the product: under fp16 autocast the bmm would otherwise run in half precision
    whatever its inputs are, and a sum over H*W products of relu activations overflows fp16 (inf) at 256 px.
    On CUDA the product runs as TF32 (perceptual.device.configure sets float32 matmul precision "high", for every
    matmul of the process): each input rounded to a 10-bit mantissa, products summed in fp32, so Gram entries carry
    about 1e-3 relative error (less after the sum over H*W). That is the decision for speed; a run that needs the
    full fp32 product sets torch.backends.cuda.matmul.allow_tf32 = False after configure()."""
    n, c, h, w = feat.shape
    dev = feat.device.type
    autocast = dev in _AUTOCAST_DEVICES and torch.is_autocast_enabled(dev)  # 'meta' (FLOP counting) has none
    off = torch.autocast(dev, enabled=False) if autocast else contextlib.nullcontext()
    with off:
        psi = feat.reshape(n, c, h * w).float()
        return torch.bmm(psi, psi.transpose(1, 2)) / (c * h * w)


def gram_loss(gram_hat: torch.Tensor, gram_target: torch.Tensor) -> torch.Tensor:
    """||G(y^) - G(y_s)||_F^2, one value per image (a single target Gram broadcasts over the batch)."""
    return (gram_hat - gram_target).pow(2).sum(dim=(1, 2))


def tv_loss(y: torch.Tensor, form: TVForm = "squared") -> torch.Tensor:
    """Total variation regulariser, mean over neighbouring-pixel differences, one value per image."""
    dx = y[..., :, 1:] - y[..., :, :-1]
    dy = y[..., 1:, :] - y[..., :-1, :]
    if form == "squared":
        return _per_image_mean(dx.pow(2)) + _per_image_mean(dy.pow(2))
    if form == "abs":
        return _per_image_mean(dx.abs()) + _per_image_mean(dy.abs())
    raise ValueError(f"unknown TV form {form!r}: choose 'squared' or 'abs'")


@dataclass(frozen=True)
class LossWeights:
    """lambda_c, lambda_s, lambda_TV of Eq. 5. The paper gives no content/style values; these are our documented choice.

    Calibrated with the real ImageNet VGG-16 (torchvision weights, [0, 1] inputs normalised inside the loss network),
    the paper's Frobenius-norm style loss and CHW-normalised content loss, on The Muse (la_muse, shorter side 256)
    against 256x256 content photos (chicago, amber, golden_gate, tubingen):

    - Scale of the terms: for a photo itself, sum over the four layers of ||G - G_s||_F^2 is 19-26 (chicago: 1.2,
      10.1, 14.1, 0.7 at relu1_2..relu4_3); the content loss of a flat gray image is 4-6, of white noise ~33.
      So style and content are O(1-10) and the style weight must be O(1): the earlier guess of 5e5 put the style
      term at ~1e7 against a content term of at most ~30, i.e. content would be ignored entirely.
    - Reference balance: pytorch/examples' fast_neural_style (content 1e5, style 1e10, MSE over the C^2 Gram entries,
      the same VGG and normalisation) corresponds here to a per-layer weight 1e5 / C_l^2; on these photos that
      equals a single style weight of 4.3-4.6 (style term at the photo ~113 vs ~26 unweighted). 5 matches it.
    - Look: Gatys L-BFGS on this objective (80 iterations from the content image, 256 px, chicago): style 1 gives a
      mild stylisation (content term 4.1, style 1.9 at the end); 5 the Muse's palette and brush strokes with the
      skyline intact (content 7.3, style 2.4); 25 a strong stylisation with the skyline partly dissolved (10.0, 7.4).
      From white noise (the Fig. 5 start, 100 iterations) 5 still shows the content, 10 mostly loses it.
    - TV (squared form, mean over [0, 1] pixels): the paper searches [1e-6, 1e-4] per style for a TV that, in
      jcjohnson/fast-neural-style, is strength/2 * sum of squared 0..255 neighbour differences next to a content loss
      on Caffe-VGG features; at 256x256 that is ~2e6 times our units (bench.style.harness.TV_PAPER_TO_OURS), so the paper's
      range is ~[2, 200] here and its default 1e-6 is ~2. At 2 the TV term is ~0.5% of the objective on a converged
      content-initialised image (0.05 of ~10), and 20 changed the result only by a slight smoothing.
    """

    content: float = 1.0
    style: float = 5.0
    tv: float = 2.0
    tv_form: TVForm = "squared"

    def as_dict(self) -> dict[str, float | str]:
        return asdict(self)


class PerceptualObjective(nn.Module):
    """Eq. 5: lambda_c l_feat(relu2_2) + lambda_s sum_j l_style(j) + lambda_TV l_TV.

    The transform network is trained on this objective and the Gatys baseline minimises it directly: one module,
    so the two sides of Fig. 5 are measured with the same function.
    """

    def __init__(
        self,
        loss_net: nn.Module,
        style_image: torch.Tensor,
        weights: LossWeights = LossWeights(),
        content_layer: str = CONTENT_LAYER,
        style_layers: Sequence[str] = STYLE_LAYERS,
    ):
        super().__init__()
        self.loss_net, self.weights = loss_net, weights
        self.content_layer, self.style_layers = content_layer, tuple(style_layers)
        if style_image.dim() == 3:
            style_image = style_image.unsqueeze(0)
        with torch.no_grad():
            feats = self.loss_net(style_image)
            for layer in self.style_layers:
                self.register_buffer(f"gram_{layer}", gram_matrix(feats[layer]))

    def style_grams(self) -> dict[str, torch.Tensor]:
        return {layer: getattr(self, f"gram_{layer}") for layer in self.style_layers}

    @torch.no_grad()
    def content_targets(self, content: torch.Tensor) -> torch.Tensor:
        """phi_j(y_c): the content features, computed once per content batch and held fixed."""
        return self.loss_net(content)[self.content_layer].detach()

    def forward(self, y_hat: torch.Tensor, content_feat: torch.Tensor) -> dict[str, torch.Tensor]:
        """Weighted terms and their sum, each of shape (N,)."""
        feats = self.loss_net(y_hat)
        w = self.weights
        content = w.content * feature_loss(feats[self.content_layer], content_feat)
        style = sum(gram_loss(gram_matrix(feats[layer]), g) for layer, g in self.style_grams().items())
        assert isinstance(style, torch.Tensor), "PerceptualObjective needs at least one style layer"
        style = w.style * style
        tv = w.tv * tv_loss(y_hat, w.tv_form)
        return {"total": content + style + tv, "content": content, "style": style, "tv": tv}


class FeatureReconstructionLoss(nn.Module):
    """The SR networks' l_feat at relu2_2 (plus optional TV), per image."""

    def __init__(self, loss_net: nn.Module, layer: str = CONTENT_LAYER, tv_weight: float = 0.0):
        super().__init__()
        self.loss_net, self.layer, self.tv_weight = loss_net, layer, tv_weight

    def forward(self, y_hat: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            target = self.loss_net(y)[self.layer]
        feat = feature_loss(self.loss_net(y_hat)[self.layer], target)
        tv = self.tv_weight * tv_loss(y_hat) if self.tv_weight else torch.zeros_like(feat)
        return {"total": feat + tv, "feat": feat, "tv": tv}


class PixelLoss(nn.Module):
    """The SR baselines' l_pixel, per image (same interface as FeatureReconstructionLoss)."""

    def forward(self, y_hat: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        pix = pixel_loss(y_hat, y)
        return {"total": pix, "pixel": pix}
