"""Apply a reproduce run's trained network to your own images: `bench.sr upscale` and `bench.style stylize`.

    python -m bench.sr upscale --checkpoint RUN/checkpoints/johnson_feat_x4.pt --out DIR IMAGES... [--histmatch]
    python -m bench.style stylize --checkpoint RUN/models/la_muse.pt --out DIR IMAGES... [--max-side N]

Guarantees: every input checked before anything is written; no output replaced without --overwrite; large images
tiled exactly (instance norm included). Where the networks are, and how tiling stays exact: docs/own-methods.md.
"""
from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from bench.metrics import to_uint8
from bench.run.errors import ArgumentError
from bench.run.options import add_device_option, device_of, non_negative_int, positive_int
from bench.tools.model_loader import SuiteModel, load_suite_checkpoint
from data.checks import FolderCheckError, check_eval_images
from data.files import safe_name
from data.images import load_image, load_image_uint8, save_image

log = logging.getLogger("bench.tools.apply")

# Untiled forward passes above these sizes are tiled automatically (activations of a 3000x2000 image would need
# several GB for the style network; an x4 SR output of it is 12000x8000).
STYLE_AUTO_TILE_PIXELS = 1024 * 1024  # input pixels
STYLE_TILE = 512
SR_AUTO_TILE_PIXELS = 512 * 512  # LR input pixels
SR_TILE = 256


def forward(net: nn.Module, x: torch.Tensor, tile: int | None) -> torch.Tensor:
    """net(x) in eval mode, or tile by tile (exact: see docs/own-methods.md) when `tile` is given."""
    if tile:
        from perceptual.fast import tiled_forward

        return tiled_forward(net, x, tile)
    with torch.inference_mode():
        return net(x)


def _pick_tile(option: int | None, pixels: int, budget: int, default: int, align: int) -> int | None:
    if option is not None:  # --tile 0 switches tiling off
        return None if option == 0 else option - option % align or align
    return default if pixels > budget else None


def stylize_image(net: nn.Module, image: torch.Tensor, tile: int | None) -> torch.Tensor:
    """A CHW float RGB image in [0, 1] through the style network: reflect-padded to multiples of 4 (the network
    halves twice), run (tiled when `tile`), cropped back and clamped to [0, 1]."""
    h, w = image.shape[-2:]
    ph, pw = (-h) % 4, (-w) % 4
    x = image[None]
    if ph or pw:
        x = torch.nn.functional.pad(x, (0, pw, 0, ph), mode="reflect")
    device = next(net.parameters()).device
    y = forward(net, x.to(device), tile)
    return y[0, :, :h, :w].clamp(0, 1).cpu()


def upscale_image(model: SuiteModel, lr_uint8: np.ndarray, tile: int | None) -> np.ndarray:
    """An 8-bit RGB LR image through the SR network (or SRCNN); uint8 HxWx3 output, rounded as the evaluation is."""
    device = next(model.net.parameters()).device
    x = torch.from_numpy(np.array(lr_uint8, copy=True)).permute(2, 0, 1)[None].float().div(255.0).to(device)
    if model.kind == "srcnn":
        from baselines.srcnn import srcnn_upscale

        with torch.inference_mode():
            y = srcnn_upscale(model.net, x, int(model.scale or 4))
    else:
        y = forward(model.net, x, tile)
    return to_uint8(y.clamp(0, 1).cpu())


def _shrink(image: torch.Tensor, max_side: int) -> torch.Tensor:
    h, w = image.shape[-2:]
    if max(h, w) <= max_side:
        return image
    f = max_side / max(h, w)
    size = (max(4, round(h * f)), max(4, round(w * f)))
    return torch.nn.functional.interpolate(image[None], size=size, mode="bilinear", antialias=True,
                                           align_corners=False)[0].clamp(0, 1)


def _targets(images: Sequence[Path], out: Path, suffix: str, overwrite: bool) -> list[Path]:
    """Check every input (one message for all problems) and every output path (no overwrite without --overwrite)."""
    _, problems = check_eval_images(images, None)
    if problems:
        raise FolderCheckError(problems, "the input images", "Fix or remove these files")
    targets = [out / f"{p.stem}_{suffix}.png" for p in images]
    seen: dict[Path, Path] = {}
    for src, dst in zip(images, targets):
        if dst in seen:
            raise ArgumentError(f"{seen[dst]} and {src} would both be written to {dst}; rename one")
        seen[dst] = src
    if out.exists() and not out.is_dir():
        raise ArgumentError(f"--out {out} exists and is not a folder")
    existing = [t for t in targets if t.exists()]
    if existing and not overwrite:
        raise ArgumentError(f"{len(existing)} output(s) already exist ({', '.join(map(str, existing[:5]))}"
                            f"{' ...' if len(existing) > 5 else ''}); pass --overwrite to replace them, or choose "
                            f"another --out")
    return targets


def _parser(prog: str, description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=description,
                                epilog="Checkpoints in a run folder: SR RUN/checkpoints/<method>_x<scale>.pt; style "
                                       "RUN/models/<style>.pt (or RUN/checkpoints/<style>.pt).")
    p.add_argument("images", nargs="+", type=Path, metavar="IMAGES", help="image files")
    p.add_argument("--checkpoint", type=Path, required=True, metavar="CKPT", help="a checkpoint of a reproduce run")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="folder for the results")
    add_device_option(p)
    p.add_argument("--tile", type=non_negative_int, default=None,
                   help="tile side in input pixels (exact tiling, see --help's description); 0 = never tile; "
                        "default: tile automatically when the image is large")
    p.add_argument("--overwrite", action="store_true", help="replace outputs that already exist")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def _run(prog: str, argv: Sequence[str], kind: str) -> int:
    from tqdm.auto import tqdm

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if kind == "sr":
        p = _parser(prog, "Upscale images with an SR network trained by `python -m bench.sr`.")
        p.add_argument("--histmatch", action="store_true",
                       help="match each channel's histogram to the input's (the paper's post-processing)")
    else:
        p = _parser(prog, "Stylize images with a transform network trained by `python -m bench.style`.")
        p.add_argument("--max-side", type=positive_int, default=None,
                       help="downscale images whose longer side exceeds this first (default: keep the size)")
    args = p.parse_args(list(argv))
    try:
        device = device_of(args)
        model = load_suite_checkpoint(args.checkpoint, device)
        want = ("sr", "srcnn") if kind == "sr" else ("style",)
        if model.kind not in want:
            other = "python -m bench.style stylize" if model.kind == "style" else "python -m bench.sr upscale"
            raise ArgumentError(f"--checkpoint {args.checkpoint} holds a {model.kind} network; use `{other}`")
        suffix = (f"{model.name}_x{model.scale}" + ("_histmatch" if args.histmatch else "")) if kind == "sr" \
            else safe_name(model.name)
        targets = _targets(args.images, args.out, suffix, args.overwrite)
    except (ArgumentError, FolderCheckError, ValueError, FileNotFoundError, PermissionError) as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    bar = tqdm(list(zip(args.images, targets)), desc=prog.split()[-1], unit="image",
               disable=args.no_progress or len(targets) < 2 or None)
    for src, dst in bar:
        if kind == "sr":
            lr = load_image_uint8(src)
            tile = _pick_tile(args.tile, lr.shape[0] * lr.shape[1], SR_AUTO_TILE_PIXELS, SR_TILE, 1)
            sr = upscale_image(model, lr, tile)
            if args.histmatch:
                from data.histmatch import histmatch

                sr = histmatch(sr, lr)
            save_image(sr, dst)
            shape = f"{lr.shape[1]}x{lr.shape[0]} -> {sr.shape[1]}x{sr.shape[0]}"
        else:
            image = load_image(src)
            if args.max_side:
                image = _shrink(image, args.max_side)
            tile = _pick_tile(args.tile, image.shape[1] * image.shape[2], STYLE_AUTO_TILE_PIXELS, STYLE_TILE, 4)
            y = stylize_image(model.net, image, tile)
            save_image(y, dst)
            shape = f"{y.shape[2]}x{y.shape[1]}"
        bar.write(f"wrote {dst} ({shape}{', tiled ' + str(tile) + ' px' if tile else ''})")
    return 0




def upscale_main(argv: Sequence[str]) -> int:
    """`python -m bench.sr upscale`: 0 ok, 2 bad input (nothing written)."""
    return _run("python -m bench.sr upscale", argv, "sr")


def stylize_main(argv: Sequence[str]) -> int:
    """`python -m bench.style stylize`: 0 ok, 2 bad input (nothing written)."""
    return _run("python -m bench.style stylize", argv, "style")
