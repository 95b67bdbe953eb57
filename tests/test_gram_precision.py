"""Gram matrices stay fp32 under autocast: fp16 autocast would run the bmm in half precision, whose sum
over H*W products overflows to inf at realistic feature sizes (training stopped at step 1), and bf16 would round it
to 8 bits of mantissa."""
from __future__ import annotations

import pytest
import torch

from perceptual.losses import gram_matrix


def _features() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return 20.0 * torch.rand(2, 8, 64, 64, generator=g)  # per entry up to ~4096 * 400 = 1.6e6 > fp16 max 65504


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_gram_is_fp32_and_exact_under_autocast(dtype):
    feat = _features()
    ref = gram_matrix(feat)
    with torch.autocast("cpu", dtype=dtype):
        got = gram_matrix(feat)
        naive = torch.bmm(feat.flatten(2), feat.flatten(2).transpose(1, 2)) / (8 * 64 * 64)  # what it used to do
    assert got.dtype == torch.float32
    assert torch.equal(got, ref)
    assert naive.dtype == dtype, "autocast must be active for this test to mean anything"
    if dtype == torch.float16:  # the bug the fix removes: the unguarded product overflows
        assert not torch.isfinite(naive).all()
    else:
        assert (naive.float() - ref).abs().max() > 1e-3 * ref.abs().max()


def test_gram_keeps_autocast_on_outside():
    with torch.autocast("cpu", dtype=torch.bfloat16):
        gram_matrix(_features())
        assert torch.is_autocast_enabled("cpu")


def test_gram_on_the_meta_device():
    """FLOP counting (bench/benchmarks/runner.count_flops) builds objectives on 'meta', where autocast cannot be queried."""
    assert gram_matrix(torch.empty(1, 4, 8, 8, device="meta")).shape == (1, 4, 4)
