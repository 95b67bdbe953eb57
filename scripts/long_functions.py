"""List the functions and methods of the package code that are longer than a limit (80 lines by default).

Why: long units hide what a function does; the project keeps every function of its five packages at 80 lines or
fewer. Counts the lines from `def` (decorators excluded) to the function's last line, docstring and comments
included, with the standard library's `ast`. Tests and benchmarks (test_*.py, conftest.py) are not package code.

    python scripts/long_functions.py            # every package, limit 80; exit status 1 when any is longer
    python scripts/long_functions.py --limit 60 bench/training/loop.py
"""
from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

PACKAGES = ("data", "perceptual", "baselines", "reports", "bench")
ROOT = Path(__file__).resolve().parent.parent


def package_files(root: Path = ROOT) -> list[Path]:
    """The package modules under `root`, tests and conftest files left out."""
    return sorted(p for pkg in PACKAGES for p in (root / pkg).rglob("*.py")
                  if not p.name.startswith("test_") and p.name != "conftest.py")


def long_functions(files: list[Path], limit: int = 80) -> list[tuple[str, int, str, int]]:
    """(file, line, qualified name, length in lines) of every function longer than `limit` lines."""
    found = []
    for path in files:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        found += [(str(path), line, name, length) for line, name, length in _walk(tree, "") if length > limit]
    return found


def _walk(node: ast.AST, prefix: str) -> list[tuple[int, str, int]]:
    out = []
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
            name = f"{prefix}{child.name}"
            out.append((child.lineno, name, (child.end_lineno or child.lineno) - child.lineno + 1))
            out += _walk(child, f"{name}.")
        elif isinstance(child, ast.ClassDef):
            out += _walk(child, f"{prefix}{child.name}.")
        else:
            out += _walk(child, prefix)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", type=Path, help="files to check (default: every package module)")
    parser.add_argument("--limit", type=int, default=80, help="longest allowed function, in lines (default 80)")
    args = parser.parse_args(argv)
    found = long_functions(args.paths or package_files(), args.limit)
    for path, line, name, length in found:
        shown = Path(path).resolve()
        print(f"{shown.relative_to(ROOT) if shown.is_relative_to(ROOT) else path}:{line}: {name} {length} lines")
    print(f"{len(found)} function(s) over {args.limit} lines")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
