"""Whole-set checks of evaluation images, done before anything runs, so every problem is reported in ONE message.

A user with four broken files in an evaluation folder should learn about all four at once, not in four runs.
`check_eval_images` decodes every file fully (data.images.check_decodable: truncated files are caught) and checks
that each is large enough to be scored at the scale (modcropped side >= 2 * scale + 11: the protocol crops `scale`
pixels from every border and SSIM needs an 11x11 window inside what is left). It never raises for a bad file: it
returns the problems, and the caller either stops with `problems_message` or, with `--skip-unreadable`, scores the
rest and records what was skipped.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from data.images import ImageError, ImageInfo, check_decodable

__all__ = ["SSIM_WINDOW", "FolderCheckError", "ImageProblem", "check_eval_images", "min_scorable_side",
           "modcropped_size", "problems_message"]

SSIM_WINDOW = 11  # Wang et al.'s window (bench.metrics.SSIM_WIN); repeated here so the data layer imports no harness


@dataclass(frozen=True)
class ImageProblem:
    """One file that cannot be scored: `kind` is unreadable, too_small, missing, size or ambiguous."""

    path: Path
    kind: str
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {"file": str(self.path), "kind": self.kind, "reason": self.reason}


class FolderCheckError(ValueError):
    """Every problem found in an evaluation set, in one message (a ValueError: the CLIs exit with status 2)."""

    def __init__(self, problems: Sequence[ImageProblem], what: str, fix: str):
        self.problems = list(problems)
        super().__init__(problems_message(self.problems, what, fix))


def modcropped_size(width: int, height: int, scale: int) -> tuple[int, int]:
    """(width, height) after cropping bottom/right to multiples of `scale` (data.degrade.modcrop)."""
    return width - width % scale, height - height % scale


def min_scorable_side(scale: int) -> int:
    """The smallest modcropped side the protocol can score: the `scale`-pixel border on both sides + SSIM's window."""
    return 2 * scale + SSIM_WINDOW


def check_eval_images(files: Iterable[Path], scale: int | None) -> tuple[dict[Path, ImageInfo], list[ImageProblem]]:
    """Decode every file; return the readable files' info and the problems (unreadable, too small for `scale`)."""
    infos: dict[Path, ImageInfo] = {}
    problems: list[ImageProblem] = []
    for f in files:
        try:
            info = check_decodable(f)
        except ImageError as e:
            problems.append(ImageProblem(Path(f), "unreadable", e.reason + (f" ({e.fix})" if e.fix else "")))
            continue
        if scale is not None:
            w, h = modcropped_size(info.width, info.height, scale)
            need = min_scorable_side(scale)
            if min(w, h) < need:
                problems.append(ImageProblem(Path(f), "too_small", (
                    f"{info.width}x{info.height} px is too small for x{scale}: the modcropped image ({w}x{h}) needs "
                    f"sides of at least {need} px (a {scale} px border is cropped on each side and SSIM needs an "
                    f"{SSIM_WINDOW}x{SSIM_WINDOW} window)")))
                continue
        infos[Path(f)] = info
    return infos, problems


def problems_message(problems: Sequence[ImageProblem], what: str, fix: str) -> str:
    """One message listing every problem, grouped by kind, ending with what to do."""
    lines = [f"{len(problems)} problem{'s' if len(problems) != 1 else ''} in {what}, found before anything ran:"]
    for p in problems:
        lines.append(f"  - [{p.kind}] {p.path}: {p.reason}")
    if fix:
        lines.append(fix)
    return "\n".join(lines)
