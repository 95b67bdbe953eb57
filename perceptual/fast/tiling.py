"""Tiled inference with a halo (`tiled_forward`) that equals the untiled result: instance-norm statistics are
accumulated over the whole image; and the measured receptive radius that sizes the halo (`receptive_radius`)."""
from __future__ import annotations

import copy
import hashlib
import math
from collections.abc import Callable, Iterator, Sequence

import torch
from torch import nn

from perceptual.fast.config import FastConfig, _as_dtype, _autocast, _to_layout


class _FieldTooLarge(ValueError):
    """The measured receptive field touches the probe's border."""


class _Stop(Exception):
    """Ends a statistics pass once the norm being measured has seen its input."""


def _instance_stat_norms(net: nn.Module) -> list[nn.modules.instancenorm._InstanceNorm]:
    """Norm layers whose statistics come from the input itself (instance norm, or batch norm in training mode)."""
    found = []
    for m in net.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training:
            raise ValueError("tiled_forward needs the network in eval mode (BatchNorm in training mode normalises over "
                             "the batch); call net.eval()")
        if isinstance(m, nn.modules.instancenorm._InstanceNorm) and (m.training or not m.track_running_stats):
            found.append(m)
    return found


def default_alignment(net: nn.Module) -> int:
    """Tile offsets must be multiples of the network's total downsampling (product of conv strides > 1): 4 for the
    style network, 1 for the SR networks and SRCNN."""
    align = 1
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            align *= max(m.stride)
    return align


def _round_up(v: int, m: int) -> int:
    return -(-v // m) * m


def _tiles(h: int, w: int, tile: int, halo: int) -> Iterator[tuple[tuple[int, int, int, int], tuple[int, int, int, int]]]:
    """(core, region) boxes (y0, y1, x0, x1): cores partition the image, regions add the halo (clipped)."""
    for y0 in range(0, h, tile):
        for x0 in range(0, w, tile):
            y1, x1 = min(h, y0 + tile), min(w, x0 + tile)
            yield (y0, y1, x0, x1), (max(0, y0 - halo), min(h, y1 + halo), max(0, x0 - halo), min(w, x1 + halo))


def _scaled(v: int, factor: float, what: str) -> int:
    s = v * factor
    if abs(s - round(s)) > 1e-9:
        raise ValueError(f"tiled_forward: {what} offset {v} px maps to a fractional position at this layer "
                         f"(scale {factor}); use tile and overlap multiples of the network's alignment")
    return round(s)


class _NormPatch:
    """Runs instance norms with statistics fixed from the whole image, or measures one norm's statistics over the
    tiles' owned regions. Installed by replacing each norm's forward; removed on exit."""

    def __init__(self, norms: Sequence[nn.Module]):
        self.norms = list(norms)
        self.frozen: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}  # id(norm) -> (scale, shift) per (N, C)
        self.target: nn.Module | None = None
        self.sums: tuple[torch.Tensor, torch.Tensor, int] | None = None
        self.owned: tuple[int, int, int, int] | None = None  # core box relative to the tile's region
        self.region_hw: tuple[int, int] = (0, 0)
        self.order: list[nn.Module] = []

    def __enter__(self) -> _NormPatch:  # noqa: PYI034 - a plain class, never subclassed
        for m in self.norms:
            m.forward = self._make_forward(m)  # instance attribute shadows the class's forward
        return self

    def __exit__(self, *exc: object) -> None:
        for m in self.norms:
            m.__dict__.pop("forward", None)

    def _make_forward(self, m: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
        def forward(x: torch.Tensor) -> torch.Tensor:
            return self._norm(m, x)
        return forward

    def _norm(self, m: nn.Module, x: torch.Tensor) -> torch.Tensor:
        if self.target is None:  # order probe: plain instance norm, record the call order
            self.order.append(m)
            return type(m).forward(m, x)
        frozen = self.frozen.get(id(m))
        if frozen is not None:
            scale, shift = frozen
            return torch.addcmul(shift[:, :, None, None].to(x.dtype), x, scale[:, :, None, None].to(x.dtype))
        if m is not self.target:
            raise RuntimeError("tiled_forward: instance norms ran in an unexpected order")
        fy, fx = x.shape[-2] / self.region_hw[0], x.shape[-1] / self.region_hw[1]
        y0, y1, x0, x1 = self.owned  # type: ignore[misc]
        part = x[..., _scaled(y0, fy, "tile"):_scaled(y1, fy, "tile"),
                 _scaled(x0, fx, "tile"):_scaled(x1, fx, "tile")].double()
        s1, s2 = part.sum(dim=(2, 3)), part.pow(2).sum(dim=(2, 3))
        n = part.shape[-1] * part.shape[-2]
        if self.sums is None:
            self.sums = (s1, s2, n)
        else:
            a, b, c = self.sums
            self.sums = (a + s1, b + s2, c + n)
        raise _Stop

    def freeze_target(self) -> None:
        m = self.target
        assert isinstance(m, nn.modules.instancenorm._InstanceNorm)  # set by the statistics pass
        s1, s2, n = self.sums  # type: ignore[misc]
        mean = s1 / n
        var = (s2 / n - mean.pow(2)).clamp_min(0.0)
        scale = torch.rsqrt(var + m.eps)
        shift = -mean * scale
        if m.affine:
            scale, shift = scale * m.weight.double(), shift * m.weight.double() + m.bias.double()
        self.frozen[id(m)] = (scale.float(), shift.float())
        self.target, self.sums = None, None


@torch.no_grad()
def tiled_forward(net: nn.Module, x: torch.Tensor, tile: int, overlap: int | None = None, *,
                  device: torch.device | str | None = None, dtype: torch.dtype | str = torch.float32,
                  channels_last: bool = False, align: int | None = None) -> torch.Tensor:
    """`net(x)` computed tile by tile, for images whose activations do not fit in memory.

    tile: side of each tile's core in input pixels; overlap: halo added on every side of a core (default: the
    measured `receptive_radius(net)` rounded up to the alignment). Each output pixel is taken from the tile whose
    core contains it (overlaps are cropped, not blended). Only one tile's activations live on `device` at a time;
    the input and the output stay on x's device.

    Instance norm normalises with statistics of the *whole* feature map, which no tile sees. They are computed
    exactly, one norm layer at a time in forward order: a pass over the tiles runs the network up to that norm
    (earlier norms already fixed), accumulates sum and sum of squares over the tiles' owned regions in float64,
    and fixes that norm's scale and shift. So the result equals the untiled output up to floating-point summation
    order whenever overlap >= the receptive radius (tested: max abs difference <= 5e-5 at fp32), at the cost of one
    partial pass per norm layer (the style network has 15; about 8 forward passes' worth of compute in total).
    The network must be in eval mode; tile and overlap must be multiples of `align` (default
    `default_alignment(net)`: 4 for the style network).
    """
    if x.dim() != 4:
        raise ValueError(f"tiled_forward takes a (N, C, H, W) batch, got shape {tuple(x.shape)}")
    device = torch.device(device) if device is not None else x.device
    dtype = _as_dtype(dtype)
    align = align or default_alignment(net)
    if overlap is None:
        overlap = _round_up(receptive_radius(net, channels=x.shape[1], device=device), align)
    if tile < 1 or overlap < 0 or tile % align or overlap % align:
        raise ValueError(f"tiled_forward(tile={tile}, overlap={overlap}): both must be multiples of {align} "
                         f"(tile > 0) for this network")
    h, w = x.shape[-2:]
    if h % align or w % align:
        raise ValueError(f"tiled_forward: image size {h}x{w} must be a multiple of {align} for this network")
    cfg = FastConfig(dtype=dtype, channels_last=channels_last)
    boxes = list(_tiles(h, w, tile, overlap))

    def run(region: tuple[int, int, int, int]) -> torch.Tensor:
        ry0, ry1, rx0, rx1 = region
        xt = _to_layout(x[..., ry0:ry1, rx0:rx1].to(device, torch.float32), cfg)
        with _autocast(device, cfg):
            return net(xt)

    norms = _instance_stat_norms(net)
    with _NormPatch(norms) as patch:
        if norms:
            patch.target = None
            run(boxes[0][1])  # order probe on one tile
            order = list(dict.fromkeys(patch.order))
            if len(order) != len(norms):
                raise RuntimeError(f"tiled_forward: {len(norms)} instance norms, {len(order)} of them called")
            for m in order:
                patch.target = m
                for core, region in boxes:
                    patch.owned = (core[0] - region[0], core[1] - region[0], core[2] - region[2], core[3] - region[2])
                    patch.region_hw = (region[1] - region[0], region[3] - region[2])
                    try:
                        run(region)
                    except _Stop:
                        pass
                    else:
                        raise RuntimeError("tiled_forward: a statistics pass ran past its norm layer")
                patch.freeze_target()
            patch.target = nn.Identity()  # anything not None: norms now all frozen
        out: torch.Tensor | None = None
        for core, region in boxes:
            y = run(region).float()
            fy, fx = y.shape[-2] / (region[1] - region[0]), y.shape[-1] / (region[3] - region[2])
            if out is None:
                out = torch.empty((x.shape[0], y.shape[1], _scaled(h, fy, "image"), _scaled(w, fx, "image")),
                                  dtype=torch.float32, device=x.device)
            cy0, cy1 = _scaled(core[0] - region[0], fy, "tile"), _scaled(core[1] - region[0], fy, "tile")
            cx0, cx1 = _scaled(core[2] - region[2], fx, "tile"), _scaled(core[3] - region[2], fx, "tile")
            oy0, ox0 = _scaled(core[0], fy, "tile"), _scaled(core[2], fx, "tile")
            out[..., oy0:oy0 + cy1 - cy0, ox0:ox0 + cx1 - cx0] = y[..., cy0:cy1, cx0:cx1].to(x.device)
    assert out is not None
    return out


# Relative threshold of the receptive-radius probe: an input pixel is inside the field when its |gradient| (summed over
# channels) exceeds this fraction of the largest one. Why float64 and 1e-13: measured on the CPU (random-weight
# networks, 2026-12-02), the true gradients at the field's edge are tiny relative to the centre's: min/max over the
# outermost ring 3e-11 (style, common), 5e-11 (style, paper), 1e-8 (SR x4 / x8), 4e-3 (SRCNN), and at fp32 the largest
# ring value is only 1.3e-7 of the max: the same size as fp32 rounding noise from cuDNN's Winograd/FFT convolutions,
# which give small non-zero gradients where the exact ones are 0. So no relative threshold separates the two at fp32
# (it would cut the field short and make tiling wrong); in float64 the noise is ~1e-16 relative, and 1e-13 sits
# 100x above it and 250x below the smallest true edge value.
RECEPTIVE_REL_THRESHOLD = 1e-13


def receptive_radius(net: nn.Module, channels: int = 3, size: int | None = None, device: torch.device | str = "cpu",
                     trials: int = 3, rel_threshold: float = RECEPTIVE_REL_THRESHOLD) -> int:
    """Measured receptive radius in input pixels: the farthest input pixel (Chebyshev distance from the centre)
    whose value changes the centre output pixel, from input gradients over a few random inputs.

    Instance norms are frozen to fixed per-channel affine maps while measuring (as `tiled_forward` runs them);
    with their whole-image statistics every output pixel would depend on every input pixel. The probe (`size` px)
    must exceed twice the radius: by default it starts at 64 px and doubles (up to 1024) until the measured field
    stays clear of its border; an explicit `size` that is too small raises.
    The probe runs in float64 and counts a pixel when its gradient exceeds `rel_threshold` x the largest one (not
    exact zero, which fast convolution algorithms do not give; see RECEPTIVE_REL_THRESHOLD).
    Measured once per process for the same network (architecture and weights, bit for bit) and arguments.
    """
    key = (_fingerprint(net), channels, size, str(torch.device(device)), trials, rel_threshold)
    if key not in _RADII:
        _RADII[key] = _measure_radius(net, channels, size, device, trials, rel_threshold)
    return _RADII[key]


# Measured radii, by network (architecture and exact weights) and probe settings: the measurement is deterministic
# (seeded inputs, float64) and costs many forward and backward passes, so a network applied to many images or tiled
# twice is measured once per process.
_RADII: dict[tuple[object, ...], int] = {}


def _fingerprint(net: nn.Module) -> tuple[str, str]:
    """The network's architecture (its repr) and a hash of every parameter and buffer, bit for bit."""
    h = hashlib.sha256()
    for name, t in [*net.named_parameters(), *net.named_buffers()]:
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.detach().cpu().reshape(-1).contiguous().view(torch.uint8).numpy().tobytes())
    return repr(net), h.hexdigest()


def _measure_radius(net: nn.Module, channels: int, size: int | None, device: torch.device | str, trials: int,
                    rel_threshold: float) -> int:
    if size is None:
        for probe in (64, 128, 256, 512, 1024):
            try:
                return _measure_radius(net, channels, probe, device, trials, rel_threshold)
            except _FieldTooLarge:
                continue
        raise ValueError("receptive_radius: the receptive field exceeds a 1024 px probe")
    net_copy = copy.deepcopy(net).to(device, torch.float64).eval()
    net_copy.requires_grad_(False)
    norms = _instance_stat_norms(net_copy)
    align = default_alignment(net_copy)
    size = _round_up(size, 2 * align)
    radius = 0
    gen = torch.Generator().manual_seed(0)
    with _NormPatch(norms) as patch:
        for m in norms:
            c = m.num_features
            patch.frozen[id(m)] = (torch.ones(1, c, device=device, dtype=torch.float64),
                                   torch.zeros(1, c, device=device, dtype=torch.float64))
        patch.target = nn.Identity()
        for _ in range(trials):
            x = torch.rand(1, channels, size, size, generator=gen, dtype=torch.float64).to(device).requires_grad_(True)
            with torch.enable_grad():
                y = net_copy(x)
                sy, sx = y.shape[-2] // 2, y.shape[-1] // 2
                y[..., sy, sx].sum().backward()
            assert x.grad is not None  # backward() filled it
            g = x.grad.abs().sum(dim=(0, 1))
            nz = (g > rel_threshold * g.max()).nonzero()
            cy, cx = sy * size / y.shape[-2], sx * size / y.shape[-1]
            r = math.ceil(max((nz[:, 0].float() - cy).abs().max().item(), (nz[:, 1].float() - cx).abs().max().item()))
            if nz[:, 0].min() == 0 or nz[:, 1].min() == 0 or nz[:, 0].max() == size - 1 or nz[:, 1].max() == size - 1:
                raise _FieldTooLarge(f"receptive_radius: the receptive field reaches the border of a {size} px probe; "
                                     "pass a larger size")
            radius = max(radius, r)
    return radius
