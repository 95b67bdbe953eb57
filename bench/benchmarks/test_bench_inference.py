"""Feed-forward inference benchmarks: the style network across resolutions, the SR networks and SRCNN on a
Set14-sized image, and batched inference; reference path and fast path side by side in each group.

Reference: eager fp32 NCHW under torch.inference_mode (on CUDA with torch's default TF32 convolutions), as the
common implementations run. Fast: perceptual.fast.FastStylizer with best_config(device, "inference") (CPU: the
reference arithmetic; CUDA: bf16 + channels_last + compile + CUDA graphs). Networks: the common variant, random
init (timings do not depend on weight values).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch

from baselines.srcnn import SRCNN
from bench.benchmarks.runner import CUDA_ONLY, HEAVY, SWEEP, BenchRunner, Case, count_flops, rand
from perceptual.fast import FastStylizer
from perceptual.nets import SRNet, TransformNet

# Fast-path variants timed with --bench-sweep (CUDA) at the cases with targets.
SWEEP_VARIANTS: dict[str, dict[str, Any]] = {
    "fast_eager": {"compile": False},
    "fast_nographs": {"cuda_graphs": False},
    "fast_pad8": {"pad_channels": 8},
}


def _forward_case(bench: BenchRunner, group: str, path: str, make_net: Callable[[], torch.nn.Module],
                  shape: tuple[int, ...], size: int, pixels: int) -> Case:
    device = bench.device
    changes = SWEEP_VARIANTS.get(path, {})
    cfg = bench.fast_config("inference", **changes) if path != "reference" else None

    def make(cfg: Any) -> Callable[[], Callable[[], Any]]:
        def build() -> Callable[[], Any]:
            torch.manual_seed(0)
            net = make_net().eval()
            x = rand(*shape, device=device)
            if cfg is None:
                net = net.to(device)

                def reference() -> torch.Tensor:
                    with torch.inference_mode():
                        return net(x)
                return reference
            fast = FastStylizer(net, device, config=cfg)
            return lambda: fast(x)
        return build

    def flops() -> float:
        net = make_net().eval().to("meta")
        x = rand(*shape, device="meta")
        with torch.no_grad():
            return count_flops(lambda: net(x))

    return Case(group, path, size, shape[0], pixels, make(cfg), flops, reference=make(None),
                dtype=str(cfg.dtype).removeprefix("torch.") if cfg else "float32",
                config=cfg.as_dict() | {"label": cfg.label()} if cfg else {"label": "reference"})


def _params(sizes: list[tuple[int, Any]], sweep_sizes: tuple[int, ...] = ()) -> list[Any]:
    out = []
    for size, marks in sizes:
        for path in ("reference", "fast"):
            out.append(pytest.param(size, path, marks=marks, id=f"{size}-{path}"))
        if size in sweep_sizes:
            for path in SWEEP_VARIANTS:
                out.append(pytest.param(size, path, marks=[*marks, SWEEP], id=f"{size}-{path}"))
    return out


@pytest.mark.parametrize("size,path", _params([(256, []), (512, []), (1024, []), (2048, [CUDA_ONLY]),
                                               (4096, [CUDA_ONLY])], sweep_sizes=(1024, 2048)))
def test_style_forward(benchmark, bench, size, path):
    """The style transform network, one image of size x size (the paper's Table 1 feed-forward column)."""
    bench.run(benchmark, _forward_case(bench, f"style_forward_{size}", path, TransformNet, (1, 3, size, size),
                                       size, size * size))


@pytest.mark.parametrize("scale,path", [pytest.param(s, p, id=f"x{s}-{p}") for s in (4, 8)
                                        for p in ("reference", "fast")])
def test_sr_forward(benchmark, bench, scale, path):
    """SR network on a Set14-sized image: 512x512 HR from a 128x128 (x4) or 64x64 (x8) input."""
    lr = 512 // scale
    bench.run(benchmark, _forward_case(bench, f"sr_x{scale}_forward_512", path, lambda: SRNet(scale),
                                       (1, 3, lr, lr), 512, 512 * 512))


@pytest.mark.parametrize("path", ["reference", "fast"])
def test_srcnn_forward(benchmark, bench, path):
    """SRCNN (9-1-5) on the Y channel of a bicubic-upscaled 512x512 image (the upscaling is not timed)."""
    bench.run(benchmark, _forward_case(bench, "srcnn_forward_512", path, SRCNN, (1, 1, 512, 512), 512, 512 * 512))


@HEAVY
@pytest.mark.parametrize("path", ["reference", "fast"])
def test_style_forward_batched(benchmark, bench, path):
    """Eight 256x256 images: one at a time (reference) vs FastStylizer.stylize_many in one batch of 8 (fast)."""
    device, n = bench.device, 8
    cfg = bench.fast_config("inference") if path == "fast" else None

    def make(cfg: Any) -> Callable[[], Callable[[], Any]]:
        def build() -> Callable[[], Any]:
            torch.manual_seed(0)
            net = TransformNet().eval()
            images = [rand(3, 256, 256, device=device, seed=i) for i in range(n)]
            if cfg is None:
                net = net.to(device)

                def reference() -> None:
                    with torch.inference_mode():
                        for img in images:
                            net(img.unsqueeze(0))
                return reference
            fast = FastStylizer(net, device, config=cfg)
            return lambda: fast.stylize_many(images, batch_size=n)
        return build

    def flops() -> float:
        net = TransformNet().eval().to("meta")
        with torch.no_grad():
            return count_flops(lambda: net(rand(n, 3, 256, 256, device="meta")))

    bench.run(benchmark, Case("style_forward_8x256", path, 256, n, n * 256 * 256, make(cfg), flops,
                              reference=make(None),
                              dtype=str(cfg.dtype).removeprefix("torch.") if cfg else "float32",
                              config=cfg.as_dict() | {"label": cfg.label()} if cfg else {"label": "reference"}))
