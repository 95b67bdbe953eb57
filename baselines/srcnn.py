"""SRCNN (Dong et al., ECCV 2014 / TPAMI 2016), the paper's learned SR baseline, retrained here.

9-1-5 architecture: conv 9x9 (1 -> 64), ReLU, conv 1x1 (64 -> 32), ReLU, conv 5x5 (32 -> 1). It works on the Y
channel of YCbCr only; its input is the bicubic-upscaled low-res Y (so it refines, it does not upscale).

Borders: Dong et al. train with unpadded ("valid") convs on 33x33 sub-images against the centre 21x21 of the label,
and test with MATLAB `imfilter(..., 'same', 'replicate')`. Here every conv is 'same' with replicate padding, so at
test time the network matches theirs, and training scores only the centre (`SRCNN.border` = 6 px each side), where
a replicate-padded conv equals the valid one: the training signal is exactly theirs.

Colour (as Dong et al.): the output image is SRCNN's Y with the bicubic Cb and Cr, converted back to RGB with the
inverse of MATLAB's `rgb2ycbcr` (ITU-R BT.601, studio range; data/colour.py).
"""
from __future__ import annotations

import torch
from torch import nn

from data.colour import check_rgb, rgb_to_ycbcr, ycbcr_to_rgb
from data.resize import imresize


class SRCNN(nn.Module):
    """9-1-5 SRCNN on one channel: Y in [0, 1] (bicubic-upscaled) -> refined Y, same size."""

    def __init__(self, channels: tuple[int, int] = (64, 32), kernels: tuple[int, int, int] = (9, 1, 5)):
        super().__init__()
        c1, c2 = channels
        k1, k2, k3 = kernels
        self.body = nn.Sequential(
            nn.Conv2d(1, c1, k1, padding=k1 // 2, padding_mode="replicate"), nn.ReLU(inplace=True),
            nn.Conv2d(c1, c2, k2, padding=k2 // 2, padding_mode="replicate"), nn.ReLU(inplace=True),
        )
        self.reconstruct = nn.Conv2d(c2, 1, k3, padding=k3 // 2, padding_mode="replicate")
        # pixels each side a valid conv stack would lose: (9 - 1) / 2 + (1 - 1) / 2 + (5 - 1) / 2 = 6 for 9-1-5
        self.border = (k1 - 1) // 2 + (k2 - 1) // 2 + (k3 - 1) // 2

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        if y.ndim != 4 or y.shape[1] != 1:
            raise ValueError(f"SRCNN takes the Y channel as (N, 1, H, W), got {tuple(y.shape)}")
        return self.reconstruct(self.body(y))

    def param_groups(self, lr: float, last_layer_factor: float = 0.1) -> list[dict]:
        """Dong et al.'s per-layer rates: the reconstruction layer learns 10x slower (1e-4 / 1e-5 in the paper)."""
        return [{"params": list(self.body.parameters()), "lr": lr},
                {"params": list(self.reconstruct.parameters()), "lr": lr * last_layer_factor}]


def srcnn_loss(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor],
               border: int = 6) -> dict[str, torch.Tensor]:
    """Per-image MSE on the centre of each sub-image (where padding cannot matter), as Dong et al. train.

    `border` is the model's `SRCNN.border` (6 for 9-1-5); bind it with functools.partial for other kernels.
    """
    y_in, y_hr = batch
    out = model(y_in)
    b = border
    if out.shape[-1] > 2 * b and out.shape[-2] > 2 * b:
        out, y_hr = out[..., b:-b, b:-b], y_hr[..., b:-b, b:-b]
    pix = (out - y_hr).pow(2).flatten(1).mean(dim=1)
    return {"total": pix, "pixel": pix}


@torch.no_grad()
def srcnn_upscale(model: nn.Module, lr_rgb: torch.Tensor, scale: int) -> torch.Tensor:
    """Super-resolve RGB: bicubic upscale, SRCNN on Y, bicubic Cb/Cr; float (N)CHW [0, 1] in, float RGB out.

    The result is not clipped or rounded (the evaluation rounds to 8 bits). A batch dimension is optional.
    """
    check_rgb(lr_rgb, "srcnn_upscale")
    squeeze = lr_rgb.ndim == 3
    x = lr_rgb.unsqueeze(0) if squeeze else lr_rgb
    ycbcr = rgb_to_ycbcr(imresize(x, scale_factor=scale))
    param = next(model.parameters())
    y = model(ycbcr[:, :1].to(param.dtype)).to(ycbcr.dtype)
    out = ycbcr_to_rgb(torch.cat([y, ycbcr[:, 1:]], dim=1))
    return out[0] if squeeze else out
