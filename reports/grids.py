"""Image comparison grids: the same crop from every SR method and the ground truth; style outputs beside Gatys.

Reads the saved full images of a run (`images/sr/x<scale>/<dataset>/<image>_<method>.png` with `<image>_hr.png`;
`images/style/<style>/<content>_{network,gatys}.png`), crops / thumbnails them with PIL and writes the results beside
the report, so the page needs nothing outside its folder. The SR crop is the window of the ground truth with the most
detail (highest variance), the same box for every method. A user's evaluated method (`bench.sr evaluate`, saved as
`<image>_<NAME>.png`) is a cell of its own run's grid and, where another run saved the same image, a cell of that
run's grid too ("NAME (evaluated, run B)", the same box), so it is seen beside the suite's methods.
"""
from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, UnidentifiedImageError

from data.files import atomic_write_bytes, safe_name
from reports.formatting import fmt_value, method_label
from reports.runs import Run

REPO_ROOT = Path(__file__).resolve().parents[1]
SR_GRID_METHODS = ("bicubic", "srcnn", "johnson_pixel", "johnson_feat")
SR_OPTIONAL_METHODS = ("johnson_pixel_histmatch", "johnson_feat_histmatch")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
STYLE_THUMB = 256


def write_image(image: Image.Image, path: Path, fmt: str = "PNG") -> Path:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **({"quality": 92} if fmt == "JPEG" else {}))
    return atomic_write_bytes(path, buf.getvalue())


def open_rgb(path: Path) -> Image.Image | None:
    """The image as RGB, or None when it is missing or not an image."""
    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except (OSError, UnidentifiedImageError, ValueError):
        return None


def detail_box(image: Image.Image, size: int) -> tuple[int, int, int, int]:
    """The size x size window with the highest grey-level variance (stride size/4): where methods differ most."""
    gray = np.asarray(image.convert("L"), dtype=np.float64)
    h, w = gray.shape
    size = min(size, h, w)
    ii = np.pad(gray.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    ii2 = np.pad((gray ** 2).cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    step = max(1, size // 4)
    best, best_xy = -1.0, (0, 0)
    for y in list(range(0, h - size + 1, step)) + [h - size]:
        for x in list(range(0, w - size + 1, step)) + [w - size]:
            s = ii[y + size, x + size] - ii[y, x + size] - ii[y + size, x] + ii[y, x]
            s2 = ii2[y + size, x + size] - ii2[y, x + size] - ii2[y + size, x] + ii2[y, x]
            var = s2 / size**2 - (s / size**2) ** 2
            if var > best:
                best, best_xy = var, (x, y)
    x, y = best_xy
    return x, y, x + size, y + size


def _sr_caption(run: Run, scale: str, dataset: str, image: str, method: str) -> str:
    parts = []
    for metric, unit in (("psnr_y", " dB"), ("ssim_y", "")):
        value = run.value(task="sr", scale=scale, dataset=dataset, method=method, metric=metric, image=image)
        if value is not None:
            parts.append(f"{fmt_value(metric, value)}{unit}")
    return " / ".join(parts)


def sr_grids(run: Run, assets_dir: Path, href: str = "assets", max_images: int = 3,
             crop: int = 96) -> list[dict[str, Any]]:
    """For each scale/dataset, up to `max_images` images: the same crop of every method and the ground truth.

    Crops are written to `assets_dir`; the page refers to them as `href/<name>`."""
    root = run.path / "images" / "sr"
    grids: list[dict[str, Any]] = []
    if not root.is_dir():
        return grids
    for scale_dir in sorted(p for p in root.iterdir() if p.is_dir() and re.fullmatch(r"x\d+", p.name)):
        scale = scale_dir.name[1:]
        for ds_dir in sorted(p for p in scale_dir.iterdir() if p.is_dir()):
            hr_files = sorted(ds_dir.glob("*_hr.png"), key=lambda p: [int(t) if t.isdigit() else t
                                                                       for t in re.split(r"(\d+)", p.name)])
            optional = [m for m in SR_OPTIONAL_METHODS if any(ds_dir.glob(f"*_{m}.png"))]
            # an evaluation run holds only the user's method: no "not run" cells for the suite's own
            # and only the methods this run has: no "not run" column for a method it never trained
            had = [m for m in SR_GRID_METHODS if any(ds_dir.glob(f"*_{m}.png"))]
            shown = [run.evaluated_name] if run.is_evaluation and run.evaluated_name else [*had, *optional]
            for hr_path in hr_files[:max_images]:
                stem = hr_path.name[: -len("_hr.png")]
                hr = open_rgb(hr_path)
                if hr is None:
                    continue
                box = detail_box(hr, crop)
                cells = []
                for method in (*shown, "hr"):
                    src_path = hr_path if method == "hr" else ds_dir / f"{stem}_{method}.png"
                    cell = {"method": method, "label": method_label(method, shown if run.is_evaluation else ()), "src": None, "status": "not run",
                            "caption": "" if method == "hr" else _sr_caption(run, scale, dataset=ds_dir.name,
                                                                             image=stem, method=method)}
                    img = hr if method == "hr" else open_rgb(src_path) if src_path.is_file() else None
                    if img is None:
                        cell["status"] = "malformed" if src_path.is_file() else "not run"
                    elif img.size != hr.size:
                        cell["status"] = f"size {img.size[0]}x{img.size[1]} != ground truth {hr.size[0]}x{hr.size[1]}"
                    else:
                        name = safe_name(run.label, "sr", f"x{scale}", ds_dir.name, stem, method) + ".png"
                        write_image(img.crop(box), assets_dir / name)
                        cell.update(src=f"{href}/{name}", status="ok")
                    cells.append(cell)
                overview = hr.copy()
                overview.thumbnail((200, 200))
                factor = overview.size[0] / hr.size[0]
                ImageDraw.Draw(overview).rectangle([round(v * factor) for v in box], outline=(255, 0, 0), width=2)
                ov_name = safe_name(run.label, "sr", f"x{scale}", ds_dir.name, stem, "overview") + ".png"
                write_image(overview, assets_dir / ov_name)
                grids.append({"run": run.label, "scale": scale, "dataset": ds_dir.name, "image": stem,
                              "box": box, "hr_size": hr.size, "overview": f"{href}/{ov_name}", "cells": cells})
    return grids


def place_evaluated_sr(runs: list[Run], grids: dict[str, list[dict[str, Any]]], assets_dir: Path,
                       href: str = "assets") -> None:
    """Put each evaluated method's crop into the other runs' grids of the same image (before the ground truth).

    `grids` maps run label -> `sr_grids` of that run and is changed in place: an evaluation run's own grid of an
    image that is now shown beside another run's methods is dropped (it would repeat the same crop)."""
    placed: set[tuple[str, str, str, str]] = set()
    for ev in (r for r in runs if r.is_evaluation and r.evaluated_name):
        name = ev.evaluated_name
        assert name is not None
        for host in (r for r in runs if not r.is_evaluation):
            for grid in grids.get(host.label, []):
                src = ev.path / "images" / "sr" / f"x{grid['scale']}" / grid["dataset"] / f"{grid['image']}_{name}.png"
                img = open_rgb(src) if src.is_file() else None
                if img is None:
                    continue
                cell = {"method": name, "label": f"{name} (evaluated, run {ev.label})", "src": None, "status": "ok",
                        "caption": _sr_caption(ev, grid["scale"], grid["dataset"], grid["image"], name)}
                if img.size != tuple(grid["hr_size"]):
                    cell["status"] = (f"size {img.size[0]}x{img.size[1]} != ground truth "
                                      f"{grid['hr_size'][0]}x{grid['hr_size'][1]}")
                else:
                    asset = safe_name(host.label, "sr", f"x{grid['scale']}", grid["dataset"], grid["image"], name,
                                      "from", ev.label) + ".png"
                    write_image(img.crop(grid["box"]), assets_dir / asset)
                    cell["src"] = f"{href}/{asset}"
                    placed.add((ev.label, grid["scale"], grid["dataset"], grid["image"]))
                at = next((i for i, c in enumerate(grid["cells"]) if c["method"] == "hr"), len(grid["cells"]))
                grid["cells"].insert(at, cell)
        grids[ev.label] = [g for g in grids.get(ev.label, [])
                           if (ev.label, g["scale"], g["dataset"], g["image"]) not in placed]


def _find_image(candidates: list[Path]) -> Path | None:
    for base in candidates:
        if base.suffix.lower() in IMAGE_SUFFIXES and base.is_file():
            return base
        for suffix in IMAGE_SUFFIXES:
            if base.with_name(base.name + suffix).is_file():
                return base.with_name(base.name + suffix)
    return None


def mirror_root() -> Path:
    """The shared data mirror next to the checkout (read only here; used to show the style/content image)."""
    return REPO_ROOT.parent / "shared" / "data"


def style_image_path(run: Run, style: str) -> Path | None:
    """The style image: saved in the run, named in run.json (`styles` or `style_images`), or in the data mirror."""
    folder = run.path / "images" / "style"
    candidates = [folder / style / "style", folder / style]
    for key in ("styles", "style_images"):
        mapping = run._get(key)
        if isinstance(mapping, dict) and style in mapping:
            candidates.append(Path(str(mapping[style])))
    candidates.append(mirror_root() / "style" / "styles" / style)
    return _find_image(candidates)


def content_image_path(run: Run, style: str, content: str) -> Path | None:
    """The content photo: saved in the run, or in the data mirror (style contents or COCO val)."""
    folder = run.path / "images" / "style"
    mirror = mirror_root()
    return _find_image([folder / style / f"{content}_content", folder / "content" / content,
                        mirror / "style" / "content" / content, mirror / "train" / "coco" / "val2017" / content])


def style_grids(run: Run, assets_dir: Path, href: str = "assets", max_contents: int = 4) -> list[dict[str, Any]]:
    """Per style: rows of content image, network output, Gatys output and the style image (thumbnails)."""
    root = run.path / "images" / "style"
    grids: list[dict[str, Any]] = []
    if not root.is_dir():
        return grids
    for style_dir in sorted(p for p in root.iterdir() if p.is_dir() and p.name != "content"):
        style = style_dir.name
        # an evaluation run's outputs are <content>_<NAME>.png: content, the user's network, the style image
        own = run.evaluated_name if run.is_evaluation else None
        outputs = [(f"_{own}.png", own, f"{own} (evaluated)")] if own else [
            ("_network.png", "network", "ours (network)"), ("_gatys.png", "gatys", "Gatys (L-BFGS)")]
        stems = sorted({p.name[: -len(suffix)] for suffix, _, _ in outputs for p in style_dir.glob(f"*{suffix}")})
        style_path = style_image_path(run, style)
        style_src = None
        if style_path is not None and (img := open_rgb(style_path)) is not None:
            img.thumbnail((STYLE_THUMB, STYLE_THUMB))
            name = safe_name(run.label, "style", style, "style") + ".jpg"
            write_image(img, assets_dir / name, "JPEG")
            style_src = f"{href}/{name}"
        rows = []
        for content in stems[:max_contents]:
            cells = []
            kinds = [("content", "content image", content_image_path(run, style, content)),
                     *((kind, label, style_dir / f"{content}{suffix}") for suffix, kind, label in outputs)]
            for kind, label, path in kinds:
                cell = {"kind": kind, "label": label, "src": None, "status": "not run"}
                img = open_rgb(path) if path is not None and path.is_file() else None
                if img is not None:
                    img.thumbnail((STYLE_THUMB, STYLE_THUMB))
                    name = safe_name(run.label, "style", style, content, kind) + ".jpg"
                    write_image(img, assets_dir / name, "JPEG")
                    cell.update(src=f"{href}/{name}", status="ok")
                elif kind == "content":
                    cell["status"] = "not saved"
                cells.append(cell)
            cells.append({"kind": "style", "label": "style image", "src": style_src,
                          "status": "ok" if style_src else "not found"})
            rows.append({"content": content, "cells": cells})
        grids.append({"run": run.label, "style": style, "rows": rows, "n_contents": len(stems)})
    return grids


def place_evaluated_style(runs: list[Run], grids: dict[str, list[dict[str, Any]]], assets_dir: Path,
                          href: str = "assets") -> None:
    """Put each evaluated stylizer's output into the other runs' style grids of the same style and content image
    (after Gatys); an evaluation run's own row that is now shown beside another run's is dropped from its grid."""
    placed: set[tuple[str, str, str]] = set()
    for ev in (r for r in runs if r.is_evaluation and r.evaluated_name):
        name = ev.evaluated_name
        assert name is not None
        for host in (r for r in runs if not r.is_evaluation):
            for grid in grids.get(host.label, []):
                for row in grid["rows"]:
                    img = open_rgb(ev.path / "images" / "style" / grid["style"] / f"{row['content']}_{name}.png")
                    if img is None:
                        continue
                    img.thumbnail((STYLE_THUMB, STYLE_THUMB))
                    asset = safe_name(host.label, "style", grid["style"], row["content"], name, "from", ev.label)
                    write_image(img, assets_dir / f"{asset}.jpg", "JPEG")
                    at = next((i for i, c in enumerate(row["cells"]) if c["kind"] == "style"), len(row["cells"]))
                    row["cells"].insert(at, {"kind": name, "label": f"{name} (evaluated, run {ev.label})",
                                             "src": f"{href}/{asset}.jpg", "status": "ok"})
                    placed.add((ev.label, grid["style"], row["content"]))
        for grid in grids.get(ev.label, []):
            grid["rows"] = [r for r in grid["rows"] if (ev.label, grid["style"], r["content"]) not in placed]
        grids[ev.label] = [g for g in grids.get(ev.label, []) if g["rows"]]
