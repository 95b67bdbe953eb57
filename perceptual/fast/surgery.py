"""In-place module transformations of the fast path that keep the arithmetic exact: BatchNorm folded into its
convolution, thin convolutions zero-padded to tensor-core widths, and a parameter-sharing copy of a module tree."""
from __future__ import annotations

import copy
import itertools
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from perceptual.fast.config import CL


def _conv_tail(module: nn.Module) -> tuple[nn.Module, str] | None:
    """(parent, name) of the convolution that is `module`'s last operation, if it is one (a conv or a Sequential
    ending in one)."""
    if isinstance(module, nn.Sequential) and len(module):
        last_name = list(module._modules)[-1]
        last = module._modules[last_name]
        if isinstance(last, (nn.Conv2d, nn.ConvTranspose2d)):
            return module, last_name
        return _conv_tail(last)
    return None


def fold_batchnorm_(net: nn.Module) -> int:
    """Fold every eval-mode BatchNorm2d that directly follows a convolution (inside a Sequential) into that conv.

    In place; returns how many were folded. Only valid for inference (the folded conv no longer has a BN to train).
    """
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    folded = 0
    for seq in [m for m in net.modules() if isinstance(m, nn.Sequential)]:
        names = list(seq._modules)
        for prev_name, name in itertools.pairwise(names):
            bn, prev = seq._modules[name], seq._modules[prev_name]
            if not isinstance(bn, nn.BatchNorm2d) or bn.training or not bn.track_running_stats:
                continue
            parent: nn.Module
            if isinstance(prev, (nn.Conv2d, nn.ConvTranspose2d)):
                parent, conv_name = seq, prev_name
            else:
                tail = _conv_tail(prev)
                if tail is None:
                    continue
                parent, conv_name = tail
            conv = parent._modules[conv_name]
            if not isinstance(conv, (nn.Conv2d, nn.ConvTranspose2d)) or conv.training:
                continue
            parent._modules[conv_name] = fuse_conv_bn_eval(conv, bn, transpose=isinstance(conv, nn.ConvTranspose2d))
            seq._modules[name] = nn.Identity()
            folded += 1
    return folded


def _zero_channels(x: torch.Tensor, n: int) -> torch.Tensor:
    zeros = x.new_zeros((x.shape[0], n, *x.shape[2:]))
    if x.dim() == 4 and x.is_contiguous(memory_format=CL) and not x.is_contiguous():
        zeros = zeros.contiguous(memory_format=CL)
    return torch.cat([x, zeros], dim=1)


class _PaddedConv2d(nn.Module):
    """A Conv2d with few input/output channels run as one with `width` channels (zero weights, zero inputs, extra
    outputs dropped): exactly the same result, but eligible for tensor-core kernels. Shares the wrapped conv's
    parameters (their shapes do not change)."""

    def __init__(self, conv: nn.Conv2d, width: int):
        super().__init__()
        self.conv, self.width = conv, width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv = self.conv
        w, b = conv.weight, conv.bias
        cout, cin = w.shape[0], w.shape[1]
        if cin < self.width:
            x = _zero_channels(x, self.width - cin)
            w = F.pad(w, (0, 0, 0, 0, 0, self.width - cin))
        if cout < self.width:
            w = F.pad(w, (0, 0, 0, 0, 0, 0, 0, self.width - cout))
            b = F.pad(b, (0, self.width - cout)) if b is not None else None
        if self.width > cin and x.is_contiguous(memory_format=CL) and not x.is_contiguous():
            w = w.contiguous(memory_format=CL)
        y = conv._conv_forward(x, w, b)
        return y[:, :cout] if cout < self.width else y


def pad_thin_convs_(net: nn.Module, width: int) -> int:
    """Replace (in place) every Conv2d with fewer than `width` input or output channels (groups == 1) by a
    zero-padded equivalent. Returns how many were replaced."""
    replaced = 0
    for parent in list(net.modules()):
        for name, child in list(parent._modules.items()):
            if (isinstance(child, nn.Conv2d) and child.groups == 1
                    and (child.in_channels < width or child.out_channels < width)):
                parent._modules[name] = _PaddedConv2d(child, width)
                replaced += 1
    return replaced


def _shadow(model: nn.Module) -> nn.Module:
    """A copy of the module tree that shares every parameter and buffer with `model` (training it trains `model`)."""
    memo: dict[int, Any] = {id(t): t for t in list(model.parameters()) + list(model.buffers())}
    return copy.deepcopy(model, memo)
