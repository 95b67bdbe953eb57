"""Every input a harness reads, checked before `--out` is touched: evaluation sets, training corpora, style images.

A bad value is an ArgumentError naming the option, the value and the fix (exit status 2, nothing written). Images
that are scored are all decoded first, and every problem of every set is reported in one message, so a user with
four broken files learns of all four at once.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from bench.run.errors import ArgumentError
from bench.run.errors import naming_option as _argument
from bench.run.provenance import file_hashes

log = logging.getLogger("bench.run.inputs")


@dataclass
class EvalSets:
    """The evaluation sets of an SR run: files per label, and what --skip-unreadable left out."""

    files: dict[str, list[Path]]
    totals: dict[str, int] = field(default_factory=dict)  # images per set before skipping
    skipped: list[dict[str, str]] = field(default_factory=list)  # file, kind, reason, dataset


def eval_sets(specs: Sequence[str], scale: int, skip_unreadable: bool) -> EvalSets:
    """Resolve `--datasets` (catalog names or folders) and decode every image. An evaluation set is scored whole (its
    mean is compared with published numbers): any unreadable or too-small image stops the run, unless
    `skip_unreadable`, which scores the rest and lists what was skipped (log, run.json, report)."""
    from data.checks import FolderCheckError, check_eval_images
    from data.fetch import resolve_images

    resolved: dict[str, list[Path]] = {}
    for spec in specs:
        with _argument("--datasets", spec):
            label, files = resolve_images(spec)
            if label in resolved:
                raise ValueError(f"names {label!r} twice; give each evaluation set once")
        resolved[label] = sorted(files, key=lambda p: p.name)
    checked = {label: check_eval_images(files, scale)[1] for label, files in resolved.items()}
    problems = [pr for bad in checked.values() for pr in bad]
    if problems and not skip_unreadable:
        raise FolderCheckError(problems, "the evaluation sets (--datasets)",
                               "Fix or remove these files, or pass --skip-unreadable to score the rest (what is "
                               "skipped is listed in the log, run.json and the report)")
    totals = {label: len(files) for label, files in resolved.items()}
    left_out = [pr.as_dict() | {"dataset": label} for label, bad in checked.items() for pr in bad]
    kept: dict[str, list[Path]] = {}
    for label, bad in checked.items():
        gone = {pr.path for pr in bad}
        kept[label] = [f for f in resolved[label] if f not in gone]
        if not kept[label]:
            raise FolderCheckError(bad, f"--datasets {label}", "No image is left to score: fix these files")
    sets = EvalSets(kept, totals, left_out)
    for skipped in sets.skipped:
        log.warning("skipped %s (%s): %s", skipped["file"], skipped["kind"], skipped["reason"])
    return sets


def training_corpus(option: str, spec: str, min_size: int | None, check: Literal["decode", "header"] = "decode") -> Any:
    """The training images of `--corpus`-like `option` (catalog names joined by + or a folder), scanned now."""
    from data.corpus import ImageFolderCorpus

    with _argument(option, spec):
        return ImageFolderCorpus(spec, min_size=min_size, check=check)


def small_images_note(files: Sequence[Path], sizes: Sequence[tuple[int, int]], size: int) -> dict[str, Any]:
    """Training images whose shorter side is under the training size are upscaled to it, not skipped (the paper
    resized every COCO image to 256x256): each is logged, and run.json's corpus block counts them."""
    small = [(f, w, h) for f, (w, h) in zip(files, sizes) if min(w, h) < size]
    for f, w, h in small:
        log.info("training image %s (%dx%d) is smaller than the %d px training crop: upscaled (shorter side to "
                 "%d px), as the paper resized every training image to its crop size", f, w, h, size, size)
    if small:
        log.warning("%d of %d training images are smaller than the %d px crop and are upscaled (see the log)",
                    len(small), len(files), size)
    return {"n_upscaled_smaller_than_crop": len(small), "upscaled_files": [str(f) for f, _, _ in small][:50],
            "small_image_policy": f"shorter side < {size} px: upscaled to {size} px (bilinear, antialiased)"}


def style_images(styles: Sequence[str], name_of: Callable[[str], str]) -> dict[str, Path]:
    """`--styles` (catalog names or image paths) -> their decodable files; two entries naming one style or one file
    are refused."""
    from data.fetch import style_image
    from data.images import check_decodable

    paths: dict[str, Path] = {}
    seen: dict[str, str] = {}
    for style in styles:
        with _argument("--styles", style):
            path = style_image(style)
            check_decodable(path)
        for key in (f"the style name {name_of(style)!r}", f"the image {path}"):
            if key in seen:
                raise ArgumentError(f"--styles {seen[key]} and {style} both give {key}; give each style once")
            seen[key] = style
        paths[style] = path
    return paths


def image_sets(sets: dict[str, tuple[str, str, int]]) -> dict[str, dict[str, Any]]:
    """{role: (option, spec, n)} -> {role: what run.json records}: the first n images of each set in name order,
    every one decoded (all problems of all sets in one ArgumentError) and hashed."""
    from data.checks import check_eval_images, problems_message
    from data.fetch import resolve_images

    datasets: dict[str, dict[str, Any]] = {}
    problems: list[str] = []
    for role, (option, spec, n) in sets.items():
        with _argument(option, spec):
            label, files = resolve_images(spec)
            files = sorted(files, key=lambda p: p.name)[:n]
        bad = check_eval_images(files, None)[1]
        if bad:
            problems.append(f"{option} {spec}: " + problems_message(bad, f"the images it reads ({label})", ""))
            continue
        datasets[role] = {"name": label, "spec": spec, "n_images": len(files), "path": str(files[0].parent),
                          "sha256": file_hashes(files)}
    if problems:
        raise ArgumentError("\n".join(problems) + "\nFix or remove these files (the run reads the first images of "
                            "each set in name order), or point the option at another folder")
    return datasets
