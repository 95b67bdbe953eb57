"""Measured spread of a profile's results over CPU float paths and over seeds, and the tolerances derived from it.

Why: float results follow the CPU's code path (vector ISA, oneDNN kernels, BLAS, threads), and a few training steps
amplify a summation-order difference into another network. No tolerance here is assumed: `measured_spread.csv`
(beside this module) records, for every value of a profile's results.csv, the range (max - min) measured over the
float paths one machine can emulate (`cpu_path`) and over seeds (`seed`), with the settings; `Tolerance` turns it
into one tolerance per value by the stated rule below (docs/testing.md has the numbers and how they were made).

Rule: a value's tolerance is the largest of
- REL_FLOOR x |reference| (the deterministic parts: bicubic, the protocols, PSNR/SSIM of fixed images);
- K_PATH x the largest relative cpu-path range of its group, times |reference| (the group as measured under another
  profile where its own profile's float paths were not run);
- K_SEED x the largest relative seed range of its group, times |reference| (only where seeds are compared);
where a group is (task, profile, scale, method, metric) over the dataset means, or over the single images of every
dataset (a float path or a seed moves an image's value the same way whichever set it belongs to). A range measured
on few runs underestimates the spread, hence the multiples.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import math
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from data.files import atomic_write_text
from reports.results import MEAN, RESULTS_FILE, read_rows

SPREAD_FILE = Path(__file__).resolve().with_name("measured_spread.csv")
SPREAD_COLUMNS = ("kind", "task", "profile", "dataset", "scale", "method", "image", "metric", "n_runs", "min", "max",
                  "spread", "settings")
KINDS = ("cpu_path", "seed")
REL_FLOOR = 1e-9
K_PATH = 3.0  # emulated paths on one machine: another CPU may go further than the range seen here
K_SEED = 2.0  # |one seed - another| is about 1.7x the range of three seeds' values at 2 sigma
# Wall-clock measurements (Table 1, seconds to match): never expected to repeat, never compared as values.
TIMING_METRICS = frozenset({"seconds", "ratio", "seconds_extrapolated", "ratio_extrapolated", "seconds_to_match"})
Key = tuple[str, str, str, str, str, str]  # task, dataset, scale, method, image, metric


def group_of(key: Key) -> tuple[str, ...]:
    task, _dataset, scale, method, image, metric = key
    return (task, scale, method, metric, "mean" if image == MEAN else "image")


def _rel(spread: float, centre: float) -> float:
    return spread / max(abs(centre), 1e-12)


@dataclass(frozen=True)
class Deviation:
    key: Key
    reference: float
    value: float
    tolerance: float
    basis: str  # which term of the rule set the tolerance

    @property
    def deviation(self) -> float:
        return self.value - self.reference

    @property
    def within(self) -> bool:
        if not (math.isfinite(self.value) and math.isfinite(self.reference)):
            return self.value == self.reference
        return abs(self.deviation) <= self.tolerance


class SpreadTable:
    """measured_spread.csv held in memory: per kind and profile, each value's range and each group's largest
    relative range."""

    def __init__(self, rows: Iterable[dict[str, str]]):
        self.rows: dict[tuple[str, str, Key], dict[str, str]] = {}
        self.groups: dict[tuple[str, str, tuple[str, ...]], float] = {}
        for r in rows:
            key: Key = (r["task"], r["dataset"], r["scale"], r["method"], r["image"], r["metric"])
            self.rows[(r["kind"], r["profile"], key)] = r
            lo, hi, spread = float(r["min"]), float(r["max"]), float(r["spread"])
            if not (math.isfinite(lo) and math.isfinite(hi)):
                continue
            g = (r["kind"], r["profile"], group_of(key))
            self.groups[g] = max(self.groups.get(g, 0.0), _rel(spread, (lo + hi) / 2))

    def spread(self, kind: str, task: str, profile: str, dataset: str, scale: str, method: str, image: str,
               metric: str) -> float | None:
        """The measured range (max - min) of one value, or None when it was not measured."""
        r = self.rows.get((kind, profile, (task, dataset, scale, method, image, metric)))
        return float(r["spread"]) if r else None

    def group_rel(self, kind: str, profile: str, key: Key) -> float | None:
        """The largest relative range measured in the value's group, or None when the group was not measured."""
        return self.groups.get((kind, profile, group_of(key)))

    def other_profile_rel(self, kind: str, key: Key) -> tuple[float | None, str | None]:
        """The largest relative range of the value's group measured under any profile, and that profile; the
        float-path spread of a computation (a fixed image through VGG, a network's arithmetic) is the same kind of
        float-order difference whatever the profile, while a seed's effect is not, so only cpu_path falls back."""
        found = [(rel, p) for (k, p, g), rel in self.groups.items() if k == kind and g == group_of(key)]
        return max(found) if found else (None, None)

    def measured(self, kind: str, task: str, profile: str) -> bool:
        return any(k == kind and p == profile and key[0] == task for k, p, key in self.rows)

    def tolerance(self, profile: str, key: Key, reference: float, seeds: bool) -> tuple[float, str] | None:
        """(tolerance, basis) of one value by the module's rule; None when neither spread of its group was
        measured for this profile (the value cannot be judged)."""
        path: float | None = self.group_rel("cpu_path", profile, key)
        path_profile: str | None = profile
        if path is None:  # float paths not measured for this profile: the same group's under another profile
            path, path_profile = self.other_profile_rel("cpu_path", key)
        seed = self.group_rel("seed", profile, key) if seeds else None
        if path is None and seed is None:
            return None
        terms = [(REL_FLOOR * abs(reference), "floor")]
        if path is not None:
            where = "" if path_profile == profile else f" (measured on profile {path_profile})"
            terms.append((K_PATH * path * abs(reference), f"{K_PATH:g}x cpu-path spread{where}"))
        if seed is not None:
            terms.append((K_SEED * seed * abs(reference), f"{K_SEED:g}x seed spread"))
        return max(terms)

    def compare(self, profile: str, key: Key, reference: float, value: float, seeds: bool) -> Deviation | None:
        tol = self.tolerance(profile, key, reference, seeds)
        return None if tol is None else Deviation(key, reference, value, tol[0], tol[1])


def load_spread(path: Path | None = None) -> SpreadTable:
    path = path or SPREAD_FILE
    if not path.is_file():
        return SpreadTable([])
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if tuple(reader.fieldnames or ()) != SPREAD_COLUMNS:
            raise ValueError(f"{path}: header {reader.fieldnames} is not {list(SPREAD_COLUMNS)}")
        return SpreadTable(list(reader))


# ---------------------------------------------------------------------------------------------- measuring it


def measure(kind: str, runs: Sequence[Path], settings: str) -> list[dict[str, str]]:
    """The spread rows of `runs` (run folders of one task and profile): per value every run holds, the range over
    the runs. Wall-clock metrics are left out."""
    if kind not in KINDS:
        raise ValueError(f"kind {kind!r}: one of {KINDS}")
    if len(runs) < 2:
        raise ValueError("a spread needs at least two runs")
    profiles = {json.loads((r / "run.json").read_text(encoding="utf-8"))["profile"] for r in runs}
    if len(profiles) != 1:
        raise ValueError(f"runs of several profiles ({sorted(profiles)}): measure one profile at a time")
    profile = profiles.pop()
    values: dict[Key, list[float]] = {}
    for run in runs:
        for r in read_rows(run / RESULTS_FILE):
            if r["metric"] in TIMING_METRICS:
                continue
            key = (r["task"], r["dataset"], r["scale"], r["method"], r["image"], r["metric"])
            values.setdefault(key, []).append(r["value"])
    out = []
    for key, vals in values.items():
        if len(vals) != len(runs):
            continue
        finite = all(math.isfinite(v) for v in vals)
        lo, hi = min(vals), max(vals)
        spread = hi - lo if finite else (0.0 if all(v == vals[0] for v in vals) else math.inf)
        out.append(dict(zip(SPREAD_COLUMNS, (kind, key[0], profile, *key[1:], str(len(runs)), repr(lo), repr(hi),
                                             repr(spread), settings), strict=True)))
    return out


def merge(path: Path, new: list[dict[str, str]]) -> int:
    """Replace the rows of the same (kind, task, profile) in `path` by `new`; the rest is kept in order."""
    drop = {(r["kind"], r["task"], r["profile"]) for r in new}
    old = []
    if path.is_file():
        with open(path, newline="", encoding="utf-8") as f:
            old = [r for r in csv.DictReader(f) if (r["kind"], r["task"], r["profile"]) not in drop]
    buf = io.StringIO()
    w = csv.DictWriter(buf, SPREAD_COLUMNS, lineterminator="\n")
    w.writeheader()
    w.writerows([*old, *new])
    atomic_write_text(path, buf.getvalue())
    return len(new)


def summary(table: SpreadTable, kinds: Sequence[str] = KINDS) -> str:
    """A Markdown table: per kind, profile, task, method and metric, the largest range over dataset means and over
    single images (absolute, and relative to the value)."""
    best: dict[tuple[str, ...], list[float]] = {}
    for (kind, profile, key), r in table.rows.items():
        lo, hi, spread = float(r["min"]), float(r["max"]), float(r["spread"])
        if kind not in kinds or not math.isfinite(spread):
            continue
        cell = best.setdefault((kind, profile, key[0], key[3], key[5]), [0.0, 0.0, 0.0, 0.0, 0.0])
        i = 0 if key[4] == MEAN else 2
        cell[i], cell[i + 1] = max(cell[i], spread), max(cell[i + 1], _rel(spread, (lo + hi) / 2))
        cell[4] = max(cell[4], float(r["n_runs"]))
    lines = ["| kind | profile | task | method | metric | runs | means: range | relative | images: range | relative |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for (kind, profile, task, method, metric), c in sorted(best.items()):
        lines.append(f"| {kind} | {profile} | {task} | {method} | {metric} | {c[4]:.0f} | {c[0]:.3g} | {c[1]:.2g} | "
                     f"{c[2]:.3g} | {c[3]:.2g} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m reports.spread",
                                description="Measure the spread of a profile's results over run folders of one "
                                            "task and profile and record it in measured_spread.csv; or print it.")
    sub = p.add_subparsers(dest="command", required=True)
    m = sub.add_parser("measure", help="record the spread over RUN_DIRs (one task and profile)")
    m.add_argument("kind", choices=KINDS, help="cpu_path: the same seed on several float paths; seed: several seeds")
    m.add_argument("runs", nargs="+", type=Path, metavar="RUN_DIR")
    m.add_argument("--settings", required=True, help="what differs between the runs, recorded beside the numbers")
    m.add_argument("--file", type=Path, default=SPREAD_FILE, help=f"spread file (default {SPREAD_FILE})")
    s = sub.add_parser("summary", help="print the largest spreads per profile, method and metric (Markdown)")
    s.add_argument("--file", type=Path, default=SPREAD_FILE, help=f"spread file (default {SPREAD_FILE})")
    args = p.parse_args(argv)
    if args.command == "summary":
        print(summary(load_spread(args.file)))
        return 0
    for run in args.runs:
        if not (run / RESULTS_FILE).is_file() or not (run / "run.json").is_file():
            p.error(f"{run}: not a run folder (needs results.csv and run.json)")
    try:
        n = merge(args.file, measure(args.kind, args.runs, args.settings))
    except ValueError as e:
        p.error(str(e))
    print(f"{n} {args.kind} spread rows over {len(args.runs)} runs written to {args.file}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
