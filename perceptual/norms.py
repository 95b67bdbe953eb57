"""An instance norm that keeps channels_last tensors channels_last.

Why: torch's instance norm (ATen `instance_norm`) reshapes its input to (1, N*C, H, W) through `.contiguous()` and runs
batch norm on that, so a channels_last input comes back NCHW (checked on torch 2.14: the output of
F.instance_norm on a channels_last tensor is NCHW-contiguous). The style network has 15 instance norms, so a
channels_last fast path would convert layouts 15 times each way per forward, and again in the backward, which is
exactly the transpose cost channels_last is meant to remove (DESIGN.md section 7: 1.7 ms of layout transposes per
training step on an H100).

`LayoutPreservingInstanceNorm2d` computes the same thing with a per-(N, C) var_mean over H and W and elementwise ops,
which follow the input's memory format; statistics in fp32 (also under autocast), output in the input's dtype.
It is used only where it matters: `preserve_channels_last_(net)` swaps the class of every instance norm that uses
per-image statistics; for NCHW inputs it falls back to torch's kernel, so results there are unchanged.
"""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["LayoutPreservingInstanceNorm2d", "is_channels_last", "preserve_channels_last_"]


def is_channels_last(x: torch.Tensor) -> bool:
    """True for a 4-D tensor laid out NHWC (and not also plain contiguous, as 1x1 or single-channel tensors are)."""
    return x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()


class LayoutPreservingInstanceNorm2d(nn.InstanceNorm2d):
    """nn.InstanceNorm2d (per-image statistics) whose output keeps a channels_last input's layout."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        uses_running = self.track_running_stats and not self.training
        if uses_running or not is_channels_last(x):
            return super().forward(x)
        xf = x.float()
        var, mean = torch.var_mean(xf, dim=(2, 3), keepdim=True, correction=0)
        y = (xf - mean) * torch.rsqrt(var + self.eps)
        if self.affine:
            y = y * self.weight.float()[None, :, None, None] + self.bias.float()[None, :, None, None]
        if self.track_running_stats and self.training:  # keep nn.InstanceNorm2d's running-average contract
            assert self.running_mean is not None and self.running_var is not None
            with torch.no_grad():
                n = x.shape[2] * x.shape[3]
                m = self.momentum if self.momentum is not None else 0.1
                self.running_mean.mul_(1 - m).add_(mean.mean(dim=0).flatten(), alpha=m)
                self.running_var.mul_(1 - m).add_((var * n / max(n - 1, 1)).mean(dim=0).flatten(), alpha=m)
        return y.to(x.dtype)


def preserve_channels_last_(net: nn.Module) -> int:
    """Swap (in place) every nn.InstanceNorm2d of `net` for the layout-preserving one (same parameters and buffers,
    same state_dict keys). Returns how many were swapped."""
    swapped = 0
    for m in net.modules():
        if type(m) is nn.InstanceNorm2d:
            m.__class__ = LayoutPreservingInstanceNorm2d
            swapped += 1
    return swapped
