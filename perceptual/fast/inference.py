"""Fast inference with a feed-forward network (`FastStylizer`): a prepared copy of the network, optionally
compiled and replayed as CUDA graphs per input shape; batched and tiled calls."""
from __future__ import annotations

import copy
from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import nn

from perceptual.fast.config import (
    CL,
    FastConfig,
    _as_dtype,
    _autocast,
    _backend_flags,
    _compile,
    _resolve,
    _to_layout,
)
from perceptual.fast.surgery import fold_batchnorm_, pad_thin_convs_
from perceptual.fast.tiling import tiled_forward
from perceptual.norms import fuse_instance_norms_, preserve_channels_last_


class FastStylizer:
    """Inference with a feed-forward network (TransformNet, SRNet, SRCNN), fast: `y = FastStylizer(net, device)(x)`.

    The network is copied (the caller's module is not changed), put in eval mode, frozen and prepared per the config
    (folded BN, padded thin convs, channels_last, compile). Calls take float32 NCHW images (any device; moved to
    `device`) and return float32 outputs on `device` (logically NCHW; memory may be channels_last).
    Explicit keyword arguments override `config` (default `best_config(device, 'inference')`).
    """

    def __init__(self, net: nn.Module, device: torch.device | str = "cpu", *, dtype: torch.dtype | str | None = None,
                 compile: bool | None = None, channels_last: bool | None = None, cuda_graphs: bool | None = None,
                 config: FastConfig | None = None, max_graphs: int = 8):
        if max_graphs < 1:
            raise ValueError(f"FastStylizer(max_graphs={max_graphs}): keep at least one captured shape")
        self.device = torch.device(device)
        self.max_graphs = max_graphs
        self.config = _resolve(config, self.device, "inference", dtype=_as_dtype(dtype) if dtype else None,
                               compile=compile, channels_last=channels_last, cuda_graphs=cuda_graphs)
        cfg = self.config
        net = copy.deepcopy(net).to(self.device).eval()
        net.requires_grad_(False)
        if cfg.fold_batchnorm:
            fold_batchnorm_(net)
        if cfg.pad_channels:
            pad_thin_convs_(net, cfg.pad_channels)
        if cfg.channels_last:
            net = net.to(memory_format=CL)
            preserve_channels_last_(net)  # torch's instance norm would hand back NCHW at each of the 15 norms
        if cfg.fused_norm:
            fuse_instance_norms_(net)  # statistics + one scale-and-shift pass (keeps the layout too)
        self.net = net
        self._run = _compile(self._forward, cfg) if cfg.compile else self._forward
        # captured CUDA graphs per input shape, least recently used first; at most `max_graphs` (each holds its own
        # memory pool of activations, so an unbounded cache would grow with every new image size)
        self._graphs: OrderedDict[tuple, tuple[torch.cuda.CUDAGraph, torch.Tensor, torch.Tensor]] = OrderedDict()

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        with _autocast(self.device, self.config):
            y = self.net(x)
        return y.float()

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.dim() != 4 or not x.is_floating_point():
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"FastStylizer takes a float (N, C, H, W) batch, got {shape}; add a batch axis with "
                             "x.unsqueeze(0)")
        return _to_layout(x.to(self.device, torch.float32, non_blocking=True), self.config)

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """net(x) on the fast path."""
        x = self._prepare(x)
        with _backend_flags(self.device, self.config):
            if self.config.cuda_graphs:
                return self._replay(x)
            return self._run(x)

    def _replay(self, x: torch.Tensor) -> torch.Tensor:
        # everything on the stylizer's own device (its streams, capture and replay), whatever the current device is
        with torch.cuda.device(self.device):
            key = (tuple(x.shape), x.stride())
            entry = self._graphs.get(key)
            if entry is None:
                entry = self._capture(x)
                self._graphs[key] = entry
                while len(self._graphs) > self.max_graphs:
                    _, (old_graph, _, _) = self._graphs.popitem(last=False)
                    old_graph.reset()  # frees its memory pool now, not at garbage collection
            else:
                self._graphs.move_to_end(key)
            graph, static_in, static_out = entry
            static_in.copy_(x)
            graph.replay()
            return static_out.clone()  # the next replay overwrites static_out

    def _capture(self, x: torch.Tensor) -> tuple[torch.cuda.CUDAGraph, torch.Tensor, torch.Tensor]:
        static_in = x.clone()
        stream = torch.cuda.Stream(self.device)
        stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(stream):
            for _ in range(3):  # compile, cuDNN autotuning and allocator growth happen here, not in the capture
                self._run(static_in)
        torch.cuda.current_stream(self.device).wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        # torch's default capture stream is the current device's; thread_local: another thread's CUDA call during
        # the capture (a DataLoader's pin-memory thread calling cudaHostAlloc) does not invalidate it
        with torch.cuda.graph(graph, stream=stream, capture_error_mode="thread_local"):
            static_out = self._run(static_in)
        return graph, static_in, static_out

    def stylize_many(self, images: Sequence[torch.Tensor], batch_size: int = 8) -> list[torch.Tensor]:
        """Run a list of images through the network in batches of up to `batch_size` same-sized images.

        Each image is (C, H, W) or (1, C, H, W); results come back in input order with the same rank, float32, on
        `device`. Batching is exact here: both network variants normalise per image at inference.
        """
        if batch_size < 1:
            raise ValueError(f"stylize_many(batch_size={batch_size}): must be >= 1")
        singles = []
        for i, img in enumerate(images):
            if not isinstance(img, torch.Tensor) or img.dim() not in (3, 4) or (img.dim() == 4 and img.shape[0] != 1):
                shape = tuple(img.shape) if isinstance(img, torch.Tensor) else type(img).__name__
                raise ValueError(f"stylize_many: image {i} must be (C, H, W) or (1, C, H, W), got {shape}")
            singles.append(img if img.dim() == 3 else img[0])
        by_shape: dict[tuple[int, ...], list[int]] = {}
        for i, img in enumerate(singles):
            by_shape.setdefault(tuple(img.shape), []).append(i)
        out: list[torch.Tensor | None] = [None] * len(singles)
        for indices in by_shape.values():
            for start in range(0, len(indices), batch_size):
                chunk = indices[start:start + batch_size]
                y = self(torch.stack([singles[i] for i in chunk]))
                for j, i in enumerate(chunk):
                    out[i] = y[j] if images[i].dim() == 3 else y[j:j + 1]
        return out  # type: ignore[return-value]

    def tiled(self, x: torch.Tensor, tile: int, overlap: int | None = None) -> torch.Tensor:
        """`tiled_forward` with this stylizer's prepared network, dtype and layout (eager; for huge images)."""
        return tiled_forward(self.net, x, tile, overlap, device=self.device, dtype=self.config.dtype,
                             channels_last=self.config.channels_last)
