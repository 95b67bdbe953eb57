"""The paper's claims, each checked against a run with a stated tolerance and an honest verdict.

Claims and tolerances (why each number):

* Bicubic protocol check (x4: published numbers from ESRGAN's table; x8: recalled RCAN numbers): PSNR-Y within
  0.02 dB and SSIM-Y within 0.002. Bicubic has no training, so a larger offset is an evaluation-protocol bug
  (Y conversion, border crop, 8-bit rounding, MATLAB resize), not noise. These are the SR issue's acceptance bounds.
* SRCNN vs published (x4): PSNR-Y within 0.3 dB, SSIM-Y within 0.01. The published numbers are the authors' released
  model (ImageNet training); a retrained 9-1-5 SRCNN on the 91-image set typically lands a few tenths of a dB away.
* Ours-pixel and ours-feat vs the paper's Fig. 8 means (x4): PSNR-Y within 0.5 dB, SSIM-Y within 0.02. The paper's
  values are recalled (a target, not ground truth), and a network trained for perceptual quality varies more in
  PSNR between trainings. Both the histogram-matched output (the paper's post-processing) and the raw output are
  compared, each against the same paper number.
* Fig. 5 iterations-to-match: the paper states that L-BFGS needs ~50-100 iterations to reach the network's
  objective; we accept 40-110 (the "~"). A run whose L-BFGS never reaches the network's objective differs.
* Table 1 speedups (~1000x, recalled cells): within a factor of 2 of the paper's speedup at the same size. Absolute
  speed depends on the device (the paper: GTX Titan X); the ratio is the claim.

Verdicts: `matches`, `differs`, `not comparable` (numbers exist but are not the paper's protocol: a trained network
under a reduced profile, a partial evaluation set, a size the paper did not run), `not run` and `malformed`. A
qualifier in parentheses says why, e.g. "not comparable (quick profile)" or "matches (recalled target)". A trained
network is never reported as matching under a reduced profile: its numbers are not evidence for or against the paper.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from reports.formatting import fmt_delta, fmt_value, method_label, metric_label
from reports.published import PaperValue, paper_value
from reports.runs import EVAL_SET_SIZES, MEAN, Run

VERDICTS = ("matches", "differs", "not comparable", "not run", "malformed")
PAPER_SIZES = ("256", "512", "1024")
PAPER_DEVICE = "GTX Titan X"


@dataclass(frozen=True)
class Tolerance:
    """How close a reproduced number must be: `abs` (|delta| <= value), `range` (lo..hi), `factor` (ratio)."""

    kind: str
    value: float = 0.0
    lo: float = 0.0
    hi: float = 0.0

    def accepts(self, paper: float, reproduced: float) -> bool:
        """Whether `reproduced` is within this tolerance of `paper`."""
        if math.isnan(reproduced) or math.isinf(reproduced):
            return False
        if self.kind == "abs":
            return abs(reproduced - paper) <= self.value + 1e-12
        if self.kind == "range":
            return self.lo <= reproduced <= self.hi
        if self.kind == "factor":
            return reproduced > 0 and paper > 0 and 1 / self.value <= reproduced / paper <= self.value
        raise ValueError(f"unknown tolerance kind {self.kind!r}")

    def text(self, metric: str) -> str:
        """The tolerance as the claims table prints it."""
        if self.kind == "abs":
            unit = " dB" if metric == "psnr_y" else ""
            return f"\u00b1{self.value:g}{unit}"
        if self.kind == "range":
            return f"{self.lo:g}\u2013{self.hi:g}"
        return f"within \u00d7{self.value:g}"

    def delta_text(self, metric: str, paper: float, reproduced: float) -> str:
        """The difference in the tolerance's own terms (dB, ratio, or distance outside the range)."""
        if math.isnan(reproduced) or math.isinf(reproduced):
            return "n/a"
        if self.kind == "abs":
            return fmt_delta(metric, reproduced - paper)
        if self.kind == "factor":
            return f"\u00d7{reproduced / paper:.2f}" if paper else "n/a"
        if reproduced < self.lo:
            return f"{self.lo - reproduced:.3g} below the range"
        if reproduced > self.hi:
            return f"{reproduced - self.hi:.3g} above the range"
        return "in range"


@dataclass(frozen=True)
class Target:
    """One paper number a claim is checked against, and where to find the reproduced number."""

    scale: str
    dataset: str
    method: str
    metric: str
    paper: PaperValue | None
    paper_text: str
    tolerance: Tolerance
    in_paper: bool = True


@dataclass(frozen=True)
class ClaimSpec:
    """A claim of the paper: which task, whether it needs a trained network, how it is judged."""

    key: str
    title: str
    task: str
    trained: bool
    why: str


CLAIMS = (
    ClaimSpec("bicubic_protocol", "Protocol check: bicubic PSNR-Y / SSIM-Y", "sr", False,
              "No training involved: an offset beyond \u00b10.02 dB / \u00b10.002 is an evaluation bug."),
    ClaimSpec("srcnn", "SRCNN (x4) vs published", "sr", True,
              "Retrained SRCNN against the released model's published numbers (\u00b10.3 dB / \u00b10.01)."),
    ClaimSpec("ours_pixel", "Ours-pixel (x4) vs the paper's Fig. 8", "sr", True,
              "Recalled targets (\u00b10.5 dB / \u00b10.02); the paper histogram-matched its outputs."),
    ClaimSpec("ours_feat", "Ours-feat (x4) vs the paper's Fig. 8", "sr", True,
              "Recalled targets (\u00b10.5 dB / \u00b10.02); the paper histogram-matched its outputs."),
    ClaimSpec("fig5_iters", "Fig. 5: L-BFGS iterations to match the network's objective", "style", True,
              "The paper: ~50\u2013100 iterations (accepted 40\u2013110)."),
    ClaimSpec("table1_speedup", "Table 1: feed-forward speedup over 500 L-BFGS iterations", "style", False,
              "The paper: ~1000\u00d7 on a GTX Titan X; judged within a factor of 2 at the same size."),
)
CLAIM_BY_KEY = {c.key: c for c in CLAIMS}
SR_TOLERANCES = {
    "bicubic_protocol": {"psnr_y": Tolerance("abs", 0.02), "ssim_y": Tolerance("abs", 0.002)},
    "srcnn": {"psnr_y": Tolerance("abs", 0.3), "ssim_y": Tolerance("abs", 0.01)},
    "ours_pixel": {"psnr_y": Tolerance("abs", 0.5), "ssim_y": Tolerance("abs", 0.02)},
    "ours_feat": {"psnr_y": Tolerance("abs", 0.5), "ssim_y": Tolerance("abs", 0.02)},
}
SR_PAPER_METHOD = {"bicubic_protocol": "bicubic", "srcnn": "srcnn", "ours_pixel": "johnson_pixel",
                   "ours_feat": "johnson_feat"}
# The reproduced methods judged against each paper method: the paper histogram-matched its networks' outputs.
SR_REPRODUCED_METHODS = {"bicubic": ("bicubic",), "srcnn": ("srcnn",),
                         "johnson_pixel": ("johnson_pixel_histmatch", "johnson_pixel"),
                         "johnson_feat": ("johnson_feat_histmatch", "johnson_feat")}
FIG5_TOLERANCE = Tolerance("range", lo=40, hi=110)
FIG5_PAPER = PaperValue(value=float("nan"), confidence="recalled",
                        source="Johnson et al. 2016, Sec. 5.1 / Fig. 5 text: ~50-100 L-BFGS iterations; recalled")
SPEEDUP_TOLERANCE = Tolerance("factor", 2.0)


def _sizes(runs: list[Run], method: str, metric: str) -> list[str]:
    """The paper's sizes plus any other size a run measured, in numeric order."""
    sizes = set(PAPER_SIZES)
    for run in runs:
        sizes.update(run.rows(task="style", method=method, metric=metric)["dataset"].unique())
    return sorted(sizes, key=lambda s: (not s.isdigit(), int(s) if s.isdigit() else 0, s))


def targets(spec: ClaimSpec, published: pd.DataFrame, runs: list[Run]) -> list[Target]:
    """The paper numbers one claim is checked against (one per scale/dataset/metric, or per size)."""
    out: list[Target] = []
    if spec.task == "sr":
        paper_method = SR_PAPER_METHOD[spec.key]
        rows = published[(published["task"] == "sr") & (published["method"] == paper_method)]
        for _, row in rows.iterrows():
            tol = SR_TOLERANCES[spec.key].get(row["metric"])
            if tol is None:
                continue
            pv = PaperValue(float(row["value"]), str(row["confidence"]), str(row["source"]))
            for method in SR_REPRODUCED_METHODS[paper_method]:
                out.append(Target(row["scale"], row["dataset"], method, row["metric"], pv,
                                  fmt_value(row["metric"], pv.value), tol))
    elif spec.key == "fig5_iters":
        for size in _sizes(runs, "gatys_lbfgs", "iters_to_match"):
            out.append(Target("", size, "gatys_lbfgs", "iters_to_match", FIG5_PAPER, "~50\u2013100",
                              FIG5_TOLERANCE, in_paper=size in PAPER_SIZES))
    elif spec.key == "table1_speedup":
        for size in sorted(set(_sizes(runs, "speedup_vs_500", "ratio"))
                           | set(_sizes(runs, "speedup_vs_500", "ratio_extrapolated")),
                           key=lambda s: (not s.isdigit(), int(s) if s.isdigit() else 0, s)):
            found = paper_value(published, task="style", dataset=size, method="speedup_vs_500", metric="ratio")
            text = fmt_value("ratio", found.value) if found else "\u2014"
            out.append(Target("", size, "speedup_vs_500", "ratio", found, text, SPEEDUP_TOLERANCE,
                              in_paper=found is not None))
    return out


def judge(spec: ClaimSpec, target: Target, run: Run) -> tuple[float | None, str, str, str]:
    """(reproduced value, verdict class, verdict text, detail) for one target in one run."""
    if run.results is None:
        verdict = run.missing_text
        return None, verdict, verdict, run.results_error or ""
    value = run.value(task=spec.task, dataset=target.dataset, scale=target.scale, method=target.method,
                      metric=target.metric)
    extrapolated = False
    if value is None and spec.key == "table1_speedup":
        # the harness writes ratio_extrapolated when its traces stop before 500 iterations
        value = run.value(task=spec.task, dataset=target.dataset, method=target.method,
                          metric=f"{target.metric}_extrapolated")
        extrapolated = value is not None
    if value is None:
        failed = run.failed_stages
        detail = "; ".join(f"stage {k} failed: {v}" for k, v in failed.items()) or "no such row in results.csv"
        return None, "not run", "not run", detail
    never = spec.key == "fig5_iters" and (math.isnan(value) or math.isinf(value))
    if math.isnan(value) and not never:
        return value, "malformed", "malformed", "the value in results.csv is not a number"

    blockers: list[str] = []  # reasons the number cannot be judged against the paper
    qualifiers: list[str] = []  # facts that colour a verdict that can be given
    if not target.in_paper or target.paper is None:
        blockers.append(f"size {target.dataset} not in the paper")
    if spec.trained and run.info is None:
        blockers.append("profile unknown: no run.json")
    elif spec.trained and run.profile != "paper":
        blockers.append(f"{run.profile} profile")
    expected = EVAL_SET_SIZES.get(target.dataset) if spec.task == "sr" else None
    n = run.n_images(task=spec.task, dataset=target.dataset, scale=target.scale, method=target.method,
                     metric=target.metric)
    if expected and 0 < n < expected:
        blockers.append(f"{n} of {expected} images")
    if target.paper is not None and target.paper.confidence == "recalled":
        qualifiers.append("recalled target")
    if spec.trained and run.info is not None and run.substitute_corpus():
        qualifiers.append("substitute corpus")
    if extrapolated:
        qualifiers.append("500 iterations extrapolated from a shorter trace")
    if spec.key == "table1_speedup" and run.device != "unknown":
        qualifiers.append(f"on {run.device}; paper: {PAPER_DEVICE}")

    detail = "L-BFGS never reached the network's objective within the trace" if never else ""
    if blockers:
        return value, "not comparable", f"not comparable ({'; '.join(blockers)})", detail
    assert target.paper is not None  # a target without a paper number is a blocker above
    paper = target.tolerance.lo if target.tolerance.kind == "range" else target.paper.value
    ok = target.tolerance.accepts(paper, value)
    verdict = "matches" if ok else "differs"
    text = verdict + (f" ({'; '.join(qualifiers)})" if qualifiers else "")
    return value, verdict, text, detail


def check_claims(runs: list[Run], published: pd.DataFrame) -> pd.DataFrame:
    """One row per claim x paper number x run that does the claim's task (a `not run` row when no run does)."""
    records = []
    for spec in CLAIMS:
        task_runs: list[Run | None] = [r for r in runs if spec.task in r.tasks]
        for target in targets(spec, published, runs):
            for run in task_runs or [None]:
                if run is None:
                    value, klass, text, detail = None, "not run", "not run", f"no {spec.task} run given"
                else:
                    value, klass, text, detail = judge(spec, target, run)
                paper = target.paper.value if target.paper else float("nan")
                if value is None:
                    delta = "\u2014"
                elif target.tolerance.kind == "range":
                    delta = target.tolerance.delta_text(target.metric, paper, value)
                elif target.paper is None:
                    delta = "\u2014"
                else:
                    delta = target.tolerance.delta_text(target.metric, paper, value)
                if value is not None and math.isinf(value) and target.tolerance.kind == "range":
                    delta = "never matched"
                records.append({
                    "claim": spec.key, "Claim": spec.title,
                    "Run": run.header if run else "\u2014",
                    "run_label": run.label if run else "",
                    "Scale": f"x{target.scale}" if target.scale else "",
                    "Dataset": target.dataset if spec.task == "sr" else f"{target.dataset} px",
                    "Method": method_label(target.method), "Metric": metric_label(target.metric),
                    "Paper": target.paper_text,
                    "Confidence": target.paper.confidence if target.paper else "\u2014",
                    "Reproduced": fmt_value(target.metric, value) if value is not None else (
                        run.missing_text if run is not None and run.results is None else "not run"),
                    "\u0394": delta, "Tolerance": target.tolerance.text(target.metric), "Verdict": text,
                    "verdict_class": klass, "detail": detail, "paper_value": paper,
                    "source": target.paper.source if target.paper else "",
                    "reproduced_value": float("nan") if value is None else value,
                    "metric": target.metric, "method": target.method, "dataset": target.dataset,
                    "scale": target.scale,
                })
    return pd.DataFrame.from_records(records)


def claim_overview(claims: pd.DataFrame) -> pd.DataFrame:
    """Per claim: how many checks fall in each verdict class (the page's first table)."""
    rows = []
    for spec in CLAIMS:
        sub = claims[claims["claim"] == spec.key]
        counts = sub["verdict_class"].value_counts()
        row: dict[str, str | int] = {"Claim": spec.title, "How it is judged": spec.why}
        for verdict in VERDICTS:
            row[verdict] = int(counts.get(verdict, 0))
        rows.append(row)
    return pd.DataFrame(rows)


__all__ = [
    "CLAIMS",
    "MEAN",
    "VERDICTS",
    "ClaimSpec",
    "Target",
    "Tolerance",
    "check_claims",
    "claim_overview",
    "judge",
    "targets",
]
