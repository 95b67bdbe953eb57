"""What `bench.sr evaluate` and `bench.style evaluate` share: the method-name rule, the --out rule, error printing.

Guarantees: a NAME that is a built-in method (or not a plain file-name-safe word) is refused; an --out that holds
anything is refused unless --overwrite (and then only a run folder of this suite is cleared); `OutGuard.discard`
removes everything a failed evaluation wrote, so bad input leaves --out as it was.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

from bench.run.errors import ArgumentError, RunFolderError
from bench.run.folder import check_folder, remove_artefacts
from bench.tools.model_loader import UserCodeError

__all__ = ["BUILTIN_METHODS", "OutGuard", "check_name", "print_error"]

# every method name the harnesses write themselves (bench.sr.harness.METHODS, bench.style's Fig. 5 / Table 1 rows)
BUILTIN_METHODS = frozenset({
    "bicubic", "srcnn", "pixel", "feat", "johnson_pixel", "johnson_pixel_histmatch", "johnson_feat",
    "johnson_feat_histmatch", "johnson_network", "content_image", "gatys_lbfgs", "gatys_lbfgs_100",
    "gatys_lbfgs_300", "gatys_lbfgs_500", "johnson_feedforward", "speedup_vs_500", "hr", "network", "gatys",
    "content", "style", "__mean__"})
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}")


def check_name(name: str) -> str:
    """The --name of an evaluated method: a file-name-safe word that is not one of the suite's own methods."""
    if not _NAME.fullmatch(name):
        raise ArgumentError(f"--name {name!r}: use letters, digits and _ . + - (at most 64 characters, starting "
                            f"with a letter or digit); it names the method in results.csv and image files")
    if name.lower() in BUILTIN_METHODS or name.lower().startswith("johnson_"):
        raise ArgumentError(f"--name {name!r} is a method of this suite ({', '.join(sorted(BUILTIN_METHODS - {'__mean__'}))}"
                            f", johnson_*): its rows would be mixed with the suite's own. Choose another name")
    return name


class OutGuard:
    """--out for an evaluation: refuse a non-empty folder without --overwrite; undo what was written on failure."""

    ARTEFACTS = ("results.csv", "run.json", "logs", "images", "checkpoints", "report", "outputs", "parts", "traces")

    def __init__(self, out: Path, overwrite: bool):
        self.out = out
        existing = check_folder(out)  # the suite's --out rules (bench.run.folder): never write into a non-run
        if existing and not overwrite:
            raise RunFolderError(f"--out {out} already holds a run; pass --overwrite to replace it, or choose "
                                 f"another --out")
        self.existing = existing
        self.created = not out.exists()

    def prepare(self) -> None:
        """Clear the previous run's artefacts (only with --overwrite, checked in __init__) and create --out."""
        if self.existing:
            self._remove()
        self.out.mkdir(parents=True, exist_ok=True)

    def _remove(self) -> None:
        remove_artefacts(self.out, self.ARTEFACTS)

    def discard(self) -> None:
        """Remove everything this evaluation wrote (and --out itself when it did not exist before)."""
        self._remove()
        if self.created and self.out.is_dir() and not any(self.out.iterdir()):
            self.out.rmdir()


def print_error(prog: str, error: BaseException) -> int:
    """Print an input error (a user's traceback first, once) to stderr; returns the exit status 2."""
    if isinstance(error, UserCodeError):
        print(error.user_traceback.rstrip(), file=sys.stderr)
    print(f"{prog}: error: {error}", file=sys.stderr)
    return 2
