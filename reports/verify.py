"""Did my run reproduce? `python -m reports.verify RUN --against REF_RUN`.

Each value both runs hold is compared within its measured tolerance (reports.spread: the deterministic parts to
1e-9 relative, trained values to a stated multiple of the profile's measured cpu-path and seed spread). Exit status
0: every judged value is within tolerance; 1: some are not (each listed with both numbers); 2: the runs are not
comparable (the settings that differ are named: task, profile, seed, corpus, protocol, package versions, ...) or the
profile's spread was never measured. Wall-clock values are never compared.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reports.results import MEAN, RESULTS_FILE, read_rows
from reports.spread import TIMING_METRICS, Deviation, Key, SpreadTable, load_spread

REPO = Path(__file__).resolve().parents[1]
COMMITTED_RUNS = REPO / "results" / "runs"
# package versions that change what a run computes (decoding, resizing, metrics, the network code)
COMPARED_VERSIONS = ("torch", "torchvision", "numpy", "scikit-image", "lpips", "resize-right", "pillow")
# identity fields a run may hold a subset of: only the values both runs hold are compared
SUBSET_FIELDS = ("datasets", "methods", "scales")
# identity fields older runs did not record (or recorded as null), with the value they had then
DEFAULTS: dict[str, Any] = {"eval_protocol": "standard"}
NESTED_DEFAULTS: dict[str, dict[str, Any]] = {"profile_values": {"trend": []}}


def _recorded(ident: dict[str, Any], name: str) -> Any:
    """An identity field as the run had it: older run.json files lack fields added since (their defaults) and
    recorded the style content layer as null when it was the profile's default (relu3_3 for paper, else relu2_2)."""
    value = ident.get(name, DEFAULTS.get(name))
    if name == "content_layer" and value is None:
        return "relu3_3" if ident.get("profile") == "paper" else "relu2_2"
    if name in NESTED_DEFAULTS and isinstance(value, dict):
        return {**NESTED_DEFAULTS[name], **value}
    return value
PASS, FAIL, NOT_COMPARABLE = 0, 1, 2
VERDICT_WORDS = {PASS: "reproduces", FAIL: "does not reproduce", NOT_COMPARABLE: "not comparable"}


@dataclass
class Verdict:
    run: str
    against: str
    status: int
    differences: list[str] = field(default_factory=list)  # settings that differ (status 2)
    judged: list[Deviation] = field(default_factory=list)
    unjudged: list[Key] = field(default_factory=list)
    n_timing: int = 0

    @property
    def outside(self) -> list[Deviation]:
        return [d for d in self.judged if not d.within]

    @property
    def largest(self) -> Deviation | None:
        finite = [d for d in self.judged if d.tolerance > 0 or d.deviation != 0]
        return max(finite, key=lambda d: abs(d.deviation) / d.tolerance if d.tolerance else float("inf"),
                   default=None)

    def summary(self) -> str:
        word = VERDICT_WORDS[self.status]
        if self.status == NOT_COMPARABLE:
            return f"{word} with {self.against}: " + "; ".join(self.differences)
        n, bad = len(self.judged), len(self.outside)
        text = f"{word} {self.against}: {n - bad:,} of {n:,} values within tolerance"
        if self.largest is not None:
            text += f" (largest deviation {describe(self.largest)})"
        if self.unjudged:
            text += f"; {len(self.unjudged):,} values without a measured spread not judged"
        return text

    def as_json(self) -> dict[str, Any]:
        return {"against": self.against, "verdict": VERDICT_WORDS[self.status], "status": self.status,
                "summary": self.summary(), "n_values": len(self.judged), "n_within": len(self.judged) - len(self.outside),
                "n_unjudged": len(self.unjudged), "differences": self.differences,
                "outside": [{"key": list(d.key), "reference": d.reference, "value": d.value,
                             "tolerance": d.tolerance, "basis": d.basis} for d in self.outside[:200]]}


def where(key: Key) -> str:
    task, dataset, scale, method, image, metric = key
    place = f"x{scale} {dataset}" if task == "sr" else f"{dataset} px"
    return f"{place} {method} {metric}" + ("" if image == MEAN else f" image {image}")


def describe(d: Deviation) -> str:
    unit = " dB" if d.key[5].startswith("psnr") else ""
    return f"{abs(d.deviation):.3g}{unit} at {where(d.key)} (tolerance {d.tolerance:.3g}{unit}, {d.basis})"


def _run_json(folder: Path) -> dict[str, Any]:
    path = folder / "run.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: {folder} is not a run folder of this suite")
    return json.loads(path.read_text(encoding="utf-8"))


def _as_set(value: Any) -> set[str]:
    return {str(v) for v in (value if isinstance(value, list) else [value])}


def setting_differences(run: dict[str, Any], ref: dict[str, Any]) -> list[str]:
    """The settings in which two runs differ so that their values cannot be compared, each as 'name: a vs b'."""
    out = []
    for name in ("task", "profile"):
        if run.get(name) != ref.get(name):
            out.append(f"{name}: {run.get(name)} vs {ref.get(name)}")
    ident, ref_ident = run.get("identity", {}), ref.get("identity", {})
    for name in sorted(set(ident) | set(ref_ident)):
        a, b = _recorded(ident, name), _recorded(ref_ident, name)
        if name == "seed" and ("seeds" in ref or "seeds" in run):
            continue  # a multi-seed side: the seeds are the spread, any seed compares
        if name in SUBSET_FIELDS and _as_set(a) & _as_set(b):
            continue
        if a != b and name != "profile":
            out.append(f"{name}: {json.dumps(a)} vs {json.dumps(b)}")
    versions, ref_versions = run.get("versions", {}), ref.get("versions", {})
    for name in COMPARED_VERSIONS:
        if versions.get(name) != ref_versions.get(name):
            out.append(f"{name} version: {versions.get(name)} vs {ref_versions.get(name)}")
    return out


def _values(folder: Path) -> dict[Key, float]:
    return {(r["task"], r["dataset"], r["scale"], r["method"], r["image"], r["metric"]): r["value"]
            for r in read_rows(folder / RESULTS_FILE)}


def verify(run_dir: Path, ref_dir: Path, spread: SpreadTable | None = None) -> Verdict:
    run, ref = _run_json(run_dir), _run_json(ref_dir)
    verdict = Verdict(str(run_dir), str(ref_dir), PASS)
    verdict.differences = setting_differences(run, ref)
    if verdict.differences:
        verdict.status = NOT_COMPARABLE
        return verdict
    spread = spread if spread is not None else load_spread()
    profile = ref["profile"]
    mine, theirs = _values(run_dir), _values(ref_dir)
    for key, reference in theirs.items():
        if key not in mine:
            continue
        if key[5] in TIMING_METRICS:
            verdict.n_timing += 1
            continue
        d = spread.compare(profile, key, reference, mine[key], seeds=True)
        (verdict.judged.append(d) if d is not None else verdict.unjudged.append(key))
    if not verdict.judged:
        verdict.status = NOT_COMPARABLE
        verdict.differences = [f"no value of profile {profile!r} has a measured spread (reports/measured_spread.csv); "
                               f"measure it with `python -m reports.spread measure seed RUN_A RUN_B ... --settings TEXT`" if verdict.unjudged
                               else "the runs hold no value in common"]
    elif verdict.outside:
        verdict.status = FAIL
    return verdict


def find_reference(run_dir: Path, committed: Path | None = None) -> Path | None:
    """The committed run (default: under results/runs/) with the same settings as `run_dir` (comparable by
    setting_differences), preferring a multi-seed one; None when there is none."""
    run = _run_json(run_dir)
    found = []
    for path in sorted((committed or COMMITTED_RUNS).glob("*/run.json")):
        if path.parent.resolve() == run_dir.resolve():
            continue
        ref = json.loads(path.read_text(encoding="utf-8"))
        if not setting_differences(run, ref):
            found.append((0 if "seeds" in ref else 1, path.parent))
    return min(found)[1] if found else None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m reports.verify", description=__doc__.split("\n\n")[0])
    p.add_argument("run", type=Path, metavar="RUN", help="the run folder to check")
    p.add_argument("--against", type=Path, default=None, metavar="REF_RUN",
                   help="the run folder it should reproduce (default: the committed run under results/runs/ with "
                        "the same settings)")
    p.add_argument("--spread", type=Path, default=None, help="measured spread file (default: the committed one)")
    p.add_argument("--json", type=Path, default=None, help="also write the verdict as JSON here")
    args = p.parse_args(argv)
    try:
        ref = args.against or find_reference(args.run)
        if ref is None:
            print(f"verify: no committed run under {COMMITTED_RUNS} has the settings of {args.run}; "
                  f"pass --against REF_RUN", file=sys.stderr)
            return NOT_COMPARABLE
        verdict = verify(args.run, ref, load_spread(args.spread) if args.spread else None)
    except (FileNotFoundError, ValueError, KeyError) as e:
        print(f"verify: error: {e}", file=sys.stderr)
        return NOT_COMPARABLE
    for d in verdict.outside:
        print(f"outside: {where(d.key)}: {d.value!r} vs {d.reference!r} (deviation {d.deviation:+.4g}, tolerance "
              f"{d.tolerance:.3g}, {d.basis})")
    print(verdict.summary())
    if args.json:
        from data.files import atomic_write_json

        atomic_write_json(args.json, verdict.as_json())
    return verdict.status


if __name__ == "__main__":
    sys.exit(main())
