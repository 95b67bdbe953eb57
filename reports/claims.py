"""The paper's claims, each checked against a run with a stated tolerance, a named source and an honest verdict.

Every reference number comes from `reports.references`; absolute claims are judged only under the paper's protocol
and profile (else `not comparable (why)`), relative claims under whatever ran, with the verdict saying which.
Each claim's tolerance and why, and the verdict vocabulary: docs/claims.md.
"""
from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import pandas as pd

from reports.formatting import fmt_delta, fmt_value, method_label, metric_label
from reports.references import PAPER_CITATION, PAPER_PROTOCOL, Reference, reference, references_for
from reports.results import MEAN
from reports.runs import EVAL_SET_SIZES, Run

VERDICTS = ("matches", "holds", "differs", "does not hold", "not comparable", "not run", "malformed")
PASSING = ("matches", "holds")
FAILING = ("differs", "does not hold")
JUDGED = PASSING + FAILING
PAPER_SIZES = ("256", "512", "1024")
PAPER_DEVICE = "GTX Titan X"
DELTA = "\u0394"


@dataclass(frozen=True)
class Tolerance:
    """How close a reproduced number must be.

    `abs` (|reproduced - paper| <= value), `range` (lo..hi), `factor` (ratio within x value), `sign` (reproduced
    has the sign of value), `below` (reproduced < value)."""

    kind: str
    value: float = 0.0
    lo: float = 0.0
    hi: float = 0.0

    def accepts(self, paper: float, reproduced: float) -> bool:
        """Whether `reproduced` is within this tolerance of `paper`."""
        if math.isnan(reproduced) or math.isinf(reproduced):
            return False
        if self.kind == "abs":
            # the edge is inside; the difference is rounded to 12 decimals (far below any printed digit) so that a
            # decimal difference equal to the tolerance on paper (28.44 - 28.42) equals it here
            return round(abs(reproduced - paper), 12) <= self.value
        if self.kind == "range":
            return self.lo <= reproduced <= self.hi
        if self.kind == "factor":
            return reproduced > 0 and paper > 0 and 1 / self.value <= reproduced / paper <= self.value
        if self.kind == "sign":
            return reproduced * self.value > 0
        if self.kind == "below":
            return reproduced < self.value
        raise ValueError(f"unknown tolerance kind {self.kind!r}")

    def margin(self, paper: float, reproduced: float) -> float:
        """How far inside (> 0) or outside (< 0) the tolerance `reproduced` lies, in the value's own units.

        0 is the edge itself: inside for `abs`, `range` and `factor` (edges included), outside for `sign` and
        `below` (strict: a tie is no ordering, a ratio of exactly 1 is not faster)."""
        if math.isnan(reproduced) or math.isinf(reproduced):
            return -math.inf
        if self.kind == "abs":
            return self.value - abs(reproduced - paper)
        if self.kind == "range":
            return min(reproduced - self.lo, self.hi - reproduced)
        if self.kind == "factor":
            ratio = reproduced / paper if paper else math.nan
            return min(self.value - ratio, ratio - 1 / self.value) if ratio > 0 else -math.inf
        if self.kind == "sign":
            return reproduced if self.value > 0 else -reproduced
        if self.kind == "below":
            return self.value - reproduced
        raise ValueError(f"unknown tolerance kind {self.kind!r}")

    def text(self, metric: str) -> str:
        """The tolerance as the claims table prints it."""
        if self.kind == "abs":
            unit = " dB" if metric == "psnr_y" else ""
            return f"\u00b1{self.value:g}{unit}"
        if self.kind == "range":
            return f"{self.lo:g}\u2013{self.hi:g}"
        if self.kind == "sign":
            return "> 0" if self.value > 0 else "< 0"
        if self.kind == "below":
            return f"< {self.value:g}"
        return f"within \u00d7{self.value:g}"

    def delta_text(self, metric: str, paper: float, reproduced: float) -> str:
        """The difference in the tolerance's own terms (dB, ratio, sign, or distance outside the range)."""
        if math.isnan(reproduced) or math.isinf(reproduced):
            return "n/a"
        if self.kind == "abs":
            return fmt_delta(metric, reproduced - paper)
        if self.kind == "factor":
            return f"\u00d7{reproduced / paper:.2f}" if paper else "n/a"
        if self.kind == "sign":
            return fmt_delta(metric, reproduced)
        if self.kind == "below":
            return f"{reproduced:.2f}"
        if reproduced < self.lo:
            return f"{self.lo - reproduced:.3g} below the range"
        if reproduced > self.hi:
            return f"{reproduced - self.hi:.3g} above the range"
        return "in range"


@dataclass(frozen=True)
class Computed:
    """What a relative claim's `compute` returns for one run: the number, how it was computed, the smallest image
    count behind it, whether a timing in it was extrapolated, the (task, scale, dataset, method, metric) of each value
    compared (for their measured spread), and why the number cannot be judged (`blocker`, empty when it can)."""

    value: float | None
    how: str = ""
    n_used: int | None = None
    extrapolated: bool = False
    parts: tuple[tuple[str, str, str, str, str], ...] = ()
    blocker: str = ""


Compute = Callable[[Run], Computed]


@dataclass(frozen=True)
class Target:
    """One paper number (or paper delta) a claim is checked against, and how to get the run's number.

    `protocol` is the evaluation protocol the paper's number was made with ("" for style). `compute`, for a relative
    claim, returns (the run's number, how it was computed, the smallest image count behind it)."""

    scale: str
    dataset: str
    method: str
    metric: str
    paper: Reference | None
    paper_text: str
    tolerance: Tolerance
    in_paper: bool = True
    image: str = MEAN
    protocol: str = ""
    compute: Compute | None = field(default=None, compare=False)
    involves: tuple[str, ...] = field(default=(), compare=False)


@dataclass(frozen=True)
class ClaimSpec:
    """A claim of the paper: which task, whether it needs a trained network, whether it is relative.

    `short` names it in the headline; `section` is the paper section it belongs to ("" = by the target's scale: x4 or
    x8); `extrapolated_metric` lets an absolute claim fall back to the harness's `<metric>_extrapolated` row, and
    `extrapolated_note` is the qualifier a verdict then carries; `printed` is False for a check judged without a
    printed number (the paper argues it visually, or it is a trend of the suite's own measurements), and `note` is
    the qualifier its verdicts then carry."""

    key: str
    title: str
    task: str
    trained: bool
    why: str
    relative: bool = False
    short: str = ""
    section: str = ""
    extrapolated_metric: bool = False
    extrapolated_note: str = ""
    printed: bool = True
    note: str = ""
    source: str = ""  # where the paper makes an unprinted claim (the claims table's Source column)


CLAIMS = (
    ClaimSpec("bicubic_protocol", "Protocol check: bicubic PSNR-Y / SSIM-Y", "sr", False,
              "No training involved: an offset beyond \u00b10.02 dB / \u00b10.002 is an evaluation bug. x4 under "
              "the standard protocol, x8 under the paper's own (johnson2016)."),
    ClaimSpec("srcnn", "SRCNN (x4) vs the printed numbers", "sr", True,
              "Retrained SRCNN against the released model's numbers (\u00b10.3 dB / \u00b10.01).", short="SRCNN"),
    ClaimSpec("ours_pixel", "Ours-pixel vs the paper's Fig. 8 / Fig. 9", "sr", True,
              "\u00b10.5 dB / \u00b10.02 (training-to-training spread); the paper histogram-matched its outputs."),
    ClaimSpec("ours_feat", "Ours-feat vs the paper's Fig. 8 / Fig. 9", "sr", True,
              "\u00b10.5 dB / \u00b10.02 (training-to-training spread); the paper histogram-matched its outputs."),
    ClaimSpec("fig5_iters", "Fig. 5: L-BFGS iterations to match the network's objective", "style", True,
              "The paper: 50\u2013100 iterations ('comparable'; accepted 40\u2013110), paper profile only.",
              section="style"),
    ClaimSpec("table1_speedup", "Table 1: feed-forward speedup over 500 L-BFGS iterations", "style", False,
              "The paper: ~1000\u00d7 on a GTX Titan X; judged within a factor of 2 at the same size.",
              section="speed", extrapolated_metric=True,
              extrapolated_note="500 iterations extrapolated from a shorter trace"),
    ClaimSpec("rel_pixel_vs_bicubic", "Relative: l_pixel minus bicubic (x4, x8)", "sr", True,
              "The run's delta within \u00b10.5 dB / \u00b10.02 of the paper's delta; bicubic is deterministic, "
              "so the delta is as uncertain as the network.", relative=True, short="l_pixel \u2212 bicubic"),
    ClaimSpec("rel_feat_lowest_psnr", "Relative (x8): l_feat has the lowest PSNR", "sr", True,
              "An ordering: l_feat minus the lower of bicubic and l_pixel must be below 0.", relative=True,
              short="l_feat lowest PSNR"),
    ClaimSpec("rel_feat_ssim_beats_bicubic", "Relative (x8): l_feat beats bicubic in SSIM", "sr", True,
              "An ordering: l_feat minus bicubic SSIM must be above 0.", relative=True,
              short="l_feat SSIM above bicubic"),
    ClaimSpec("rel_feat_lowest_x4", "Relative (x4): l_feat has the lowest PSNR and SSIM", "sr", True,
              "An ordering: l_feat minus the lower of bicubic and l_pixel must be below 0, in PSNR-Y and in SSIM-Y "
              "(Fig. 8; the paper puts it down to l_feat's pixel-level grid artifacts).", relative=True,
              short="l_feat lowest PSNR/SSIM"),
    ClaimSpec("rel_srcnn_beats_pixel", "Relative (x4): SRCNN beats l_pixel in PSNR", "sr", True,
              "An ordering: SRCNN minus l_pixel PSNR must be above 0.", relative=True,
              short="SRCNN above l_pixel"),
    ClaimSpec("rel_style_between_50_100", "Relative: the network's objective lies between L-BFGS iterations 50 "
              "and 100", "style", True,
              "Iterations to match within 40\u2013110 (as Fig. 5), under any profile and size.", relative=True,
              short="network between L-BFGS 50\u2013100", section="style"),
    ClaimSpec("rel_style_trend", "Relative: the match point rises with training", "style", True,
              "The L-BFGS iterations needed to match the network's objective, measured at several training lengths "
              "of one training (trend.csv): the matched points must not fall and the last must exceed the first. A "
              "length whose network L-BFGS did not match within its iterations is left out, never extrapolated; "
              "fewer than two matched lengths is not comparable.", relative=True, short="match point rises with "
              "training", section="style", printed=False,
              source="Sec. 4.1 and Fig. 5 (the 50\u2013100 band of a fully trained network; the trend is this suite's "
                     "measurement)"),
    ClaimSpec("rel_style_faster_than_iteration", "Relative: one forward pass is faster than one L-BFGS iteration",
              "style", False,
              "Forward seconds / seconds per L-BFGS iteration must be below 1 (the paper: about half, "
              "0.47 at 256 px); the size of the ratio depends on the device, the ordering is the claim.",
              relative=True, short="forward faster than one L-BFGS iteration", section="speed",
              extrapolated_note="L-BFGS timing extrapolated"),
    ClaimSpec("rel_feat_lowest_lpips", "Relative (x4, x8): l_feat is perceptually closest (lowest LPIPS) of all "
              "methods", "sr", True,
              "A check the paper argues visually (Figs. 8\u20139), not a number it prints: l_feat's LPIPS minus the "
              "lowest LPIPS of every other method the run has must be below 0, raw and histogram-matched, for each "
              "LPIPS network the run measured (alex, vgg).", relative=True, short="l_feat lowest LPIPS",
              printed=False, note="visual claim, no printed number", source="Figs. 8\u20139 (visual)"),
)
CLAIM_BY_KEY = {c.key: c for c in CLAIMS}
SR_TOLERANCES = {
    "bicubic_protocol": {"psnr_y": Tolerance("abs", 0.02), "ssim_y": Tolerance("abs", 0.002)},
    "srcnn": {"psnr_y": Tolerance("abs", 0.3), "ssim_y": Tolerance("abs", 0.01)},
    "ours_pixel": {"psnr_y": Tolerance("abs", 0.5), "ssim_y": Tolerance("abs", 0.02)},
    "ours_feat": {"psnr_y": Tolerance("abs", 0.5), "ssim_y": Tolerance("abs", 0.02)},
    "rel_pixel_vs_bicubic": {"psnr_y": Tolerance("abs", 0.5), "ssim_y": Tolerance("abs", 0.02)},
}
SR_PAPER_METHOD = {"bicubic_protocol": "bicubic", "srcnn": "srcnn", "ours_pixel": "johnson_pixel",
                   "ours_feat": "johnson_feat"}
# The reproduced methods judged against each paper method: the paper histogram-matched its networks' outputs.
SR_REPRODUCED_METHODS = {"bicubic": ("bicubic",), "srcnn": ("srcnn",),
                         "johnson_pixel": ("johnson_pixel_histmatch", "johnson_pixel"),
                         "johnson_feat": ("johnson_feat_histmatch", "johnson_feat")}
# Trained networks are compared with the paper on dataset means only; bicubic also on the paper's example images.
SR_PER_IMAGE = ("bicubic",)
FIG5_TOLERANCE = Tolerance("range", lo=40, hi=110)
SPEEDUP_TOLERANCE = Tolerance("factor", 2.0)
FASTER_TOLERANCE = Tolerance("below", 1.0)


def _size_key(s: str) -> tuple:
    return (not s.isdigit(), int(s) if s.isdigit() else 0, s)


def _sizes(runs: list[Run], method: str, metrics: tuple[str, ...]) -> list[str]:
    """The paper's sizes plus any other size a run measured, in numeric order."""
    sizes = set(PAPER_SIZES)
    for run in runs:
        for metric in metrics:
            sizes.update(run.rows(task="style", method=method, metric=metric)["dataset"].unique())
    return sorted(sizes, key=_size_key)


def _paper_text(metric: str, ref: Reference) -> str:
    text = fmt_value(metric, ref.value)
    return f"{text} (printed {ref.printed})" if ref.misprint else text


# ---- relative claims: the run's number is a difference or a ratio of its own numbers ------------------------------
def _sr_diff(scale: str, dataset: str, metric: str, method: str, others: tuple[str, ...]) -> Compute:
    """value(method) - min(value(others)), with the numbers it came from and the smallest image count."""
    def compute(run: Run) -> Computed:
        values = {}
        for m in (method, *others):
            v = run.value(task="sr", scale=scale, dataset=dataset, method=m, metric=metric)
            if v is None:
                return Computed(None, f"no {method_label(m)} row")
            values[m] = v
        return _diff_of(run, scale, dataset, metric, method, values)
    return compute


def _diff_of(run: Run, scale: str, dataset: str, metric: str, method: str, values: dict[str, float]) -> Computed:
    others = [m for m in values if m != method]
    low = min(others, key=lambda m: values[m])
    counts = [run.n_images(task="sr", scale=scale, dataset=dataset, method=m, metric=metric) for m in values]
    how = f"{method_label(method)} {fmt_value(metric, values[method])} \u2212 {method_label(low)} " \
          f"{fmt_value(metric, values[low])}"
    parts = tuple(("sr", scale, dataset, m, metric) for m in (method, low))
    return Computed(values[method] - values[low], how, min(counts), parts=parts)


def _lowest_of_all(scale: str, dataset: str, metric: str, method: str) -> Compute:
    """value(method) - the lowest value of every other method the run has (l_feat's variants excepted)."""
    def compute(run: Run) -> Computed:
        rows = run.rows(task="sr", scale=scale, dataset=dataset, metric=metric, image=MEAN)
        present = [m for m in dict.fromkeys(rows["method"]) if not m.startswith("johnson_feat")]
        if method not in set(rows["method"]):
            return Computed(None, f"no {method_label(method)} {metric_label(metric)} row")
        if not present:
            return Computed(None, "no other method to compare with")
        values = {m: run.value(task="sr", scale=scale, dataset=dataset, method=m, metric=metric)
                  for m in (method, *present)}
        return _diff_of(run, scale, dataset, metric, method, {m: v for m, v in values.items() if v is not None})
    return compute


def _paper_diff(refs: pd.DataFrame, scale: str, dataset: str, metric: str, method: str,
                others: tuple[str, ...], what: str) -> Reference | None:
    """The same difference from the paper's own numbers (None when it prints one of them not)."""
    found = [reference(refs, task="sr", scale=scale, dataset=dataset, metric=metric, method=m)
             for m in (method, *others)]
    parts = [r for r in found if r is not None and r.origin == "paper"]
    if len(parts) != len(found):
        return None
    a, low = parts[0], min(parts[1:], key=lambda b: b.value)
    confidence = "misprint corrected" if any(p.misprint for p in parts) else "printed"
    return Reference(value=a.value - low.value, confidence=confidence, source=f"{a.source} ({what})",
                     origin="paper", protocol=PAPER_PROTOCOL.get(scale, ""))


# One relative SR check: scale, metric, the paper's method and the ones it is compared with, the tolerance, and the
# reproduced pairs judged against it (the histogram-matched outputs against each other, and the raw ones).
RelativePlan = tuple[str, str, str, tuple[str, ...], Tolerance, tuple[tuple[str, tuple[str, ...]], ...]]
PIXEL_PAIRS = (("johnson_pixel_histmatch", ("bicubic",)), ("johnson_pixel", ("bicubic",)))
FEAT_LOWEST_PAIRS = (("johnson_feat_histmatch", ("bicubic", "johnson_pixel_histmatch")),
                     ("johnson_feat", ("bicubic", "johnson_pixel")))
RELATIVE_SR_PLANS: dict[str, list[RelativePlan]] = {
    "rel_pixel_vs_bicubic": [(s, m, "johnson_pixel", ("bicubic",), SR_TOLERANCES["rel_pixel_vs_bicubic"][m],
                              PIXEL_PAIRS) for s in ("4", "8") for m in ("psnr_y", "ssim_y")],
    "rel_feat_lowest_psnr": [("8", "psnr_y", "johnson_feat", ("bicubic", "johnson_pixel"), Tolerance("sign", -1),
                              FEAT_LOWEST_PAIRS)],
    "rel_feat_ssim_beats_bicubic": [("8", "ssim_y", "johnson_feat", ("bicubic",), Tolerance("sign", 1),
                                     (("johnson_feat_histmatch", ("bicubic",)), ("johnson_feat", ("bicubic",))))],
    "rel_feat_lowest_x4": [("4", m, "johnson_feat", ("bicubic", "johnson_pixel"), Tolerance("sign", -1),
                            FEAT_LOWEST_PAIRS) for m in ("psnr_y", "ssim_y")],
    # SRCNN has no post-processing: against both l_pixel outputs
    "rel_srcnn_beats_pixel": [("4", "psnr_y", "srcnn", ("johnson_pixel",), Tolerance("sign", 1),
                               (("srcnn", ("johnson_pixel_histmatch",)), ("srcnn", ("johnson_pixel",))))],
}
SR_DATASETS = ("Set5", "Set14", "BSD100")
LPIPS_METRICS = ("lpips_alex", "lpips_vgg")
VISUAL_ONLY = "lowest (argued visually, Figs. 8\u20139; no LPIPS printed)"
# Methods with no training: their value is the same in every seed and on every CPU path (spread 0 when unmeasured).
DETERMINISTIC_METHODS = ("bicubic",)


def _relative_sr_targets(spec: ClaimSpec, refs: pd.DataFrame) -> list[Target]:
    out: list[Target] = []
    for scale, metric, paper_a, paper_others, tol, pairs in RELATIVE_SR_PLANS[spec.key]:
        for dataset in SR_DATASETS:
            what = f"{paper_a} \u2212 {' / '.join(paper_others)}"
            ref = _paper_diff(refs, scale, dataset, metric, paper_a, paper_others, what)
            if ref is None:
                continue
            for a, others in pairs:
                right = method_label(others[0]) if len(others) == 1 else \
                    f"min({', '.join(method_label(o) for o in others)})"
                out.append(Target(scale, dataset, f"{method_label(a)} \u2212 {right}", metric, ref,
                                  fmt_delta(metric, ref.value), tol, protocol=ref.protocol,
                                  compute=_sr_diff(scale, dataset, metric, a, others),
                                  involves=(paper_a, *paper_others)))
    return out


def _lpips_targets(runs: list[Run]) -> list[Target]:
    """l_feat minus the lowest LPIPS of the other methods, per scale, LPIPS network, dataset, raw and matched."""
    measured = {m for r in runs for m in r.rows(task="sr")["metric"].unique() if m in LPIPS_METRICS}
    out = []
    for scale in ("4", "8"):
        for metric in [m for m in LPIPS_METRICS if m in measured] or [LPIPS_METRICS[0]]:
            for dataset in SR_DATASETS:
                for a in ("johnson_feat_histmatch", "johnson_feat"):
                    out.append(Target(scale, dataset, f"{method_label(a)} \u2212 min(other methods)", metric, None,
                                      VISUAL_ONLY, Tolerance("sign", -1), protocol=PAPER_PROTOCOL.get(scale, ""),
                                      compute=_lowest_of_all(scale, dataset, metric, a), involves=("johnson_feat",)))
    return out


def _style_value(run: Run, size: str, method: str, metric: str) -> tuple[float | None, bool]:
    value = run.value(task="style", dataset=size, method=method, metric=metric)
    if value is not None:
        return value, False
    value = run.value(task="style", dataset=size, method=method, metric=f"{metric}_extrapolated")
    return value, value is not None


def _faster(size: str) -> Compute:
    def compute(run: Run) -> Computed:
        ff, _ = _style_value(run, size, "johnson_feedforward", "seconds")
        t100, extrapolated = _style_value(run, size, "gatys_lbfgs_100", "seconds")
        if ff is None or t100 is None:
            return Computed(None, "no forward or L-BFGS timing row")
        per_iter = t100 / 100
        how = f"forward {fmt_value('seconds', ff)} s / L-BFGS iteration {fmt_value('seconds', per_iter)} s" + (
            " (extrapolated)" if extrapolated else "")
        return Computed(ff / per_iter, how, extrapolated=extrapolated)
    return compute


def _iters(size: str) -> Compute:
    def compute(run: Run) -> Computed:
        value = run.value(task="style", dataset=size, method="gatys_lbfgs", metric="iters_to_match")
        return Computed(value, "", parts=(("style", "", size, "gatys_lbfgs", "iters_to_match"),))
    return compute


def trend_points(run: Run, size: str) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    """(matched, unmatched) points of one size's trend: (training iterations, L-BFGS iterations to match) and
    (training iterations, the L-BFGS iterations that did not reach the network), in training order."""
    trend = run.trend
    if trend is None:
        return [], []
    rows = trend[trend["size"] == str(size)].sort_values("train_iterations", kind="stable")
    matched = [(float(r.train_iterations), float(r.iters_to_match)) for r in rows.itertuples()
               if not math.isnan(r.iters_to_match)]
    unmatched = [(float(r.train_iterations), float(r.lbfgs_iterations)) for r in rows.itertuples()
                 if math.isnan(r.iters_to_match)]
    return matched, unmatched


def trend_value(matched: list[tuple[float, float]]) -> float | None:
    """The trend's number: the largest fall between consecutive matched points when one falls (< 0), else the rise
    from the first matched point to the last (> 0 holds; 0, a flat trend, does not). None below two points."""
    if len(matched) < 2:
        return None
    steps = [b[1] - a[1] for a, b in itertools.pairwise(matched)]
    return min(steps) if min(steps) < 0 else matched[-1][1] - matched[0][1]


def _trend(size: str) -> Compute:
    def compute(run: Run) -> Computed:
        if run.trend is None:
            return Computed(None, run.trend_error or "no trend.csv")
        matched, unmatched = trend_points(run, size)
        points = sorted([(t, f"{m:g}") for t, m in matched] + [(t, f"not within {b:g}") for t, b in unmatched])
        how = "; ".join(f"{t:g} it.: {m}" for t, m in points)
        if unmatched:
            how += f" ({len(unmatched)} length{'s' if len(unmatched) != 1 else ''} not matched: left out)"
        value = trend_value(matched)
        if value is None:
            return Computed(math.nan, how, blocker=f"{len(matched)} matched training length"
                            f"{'s' if len(matched) != 1 else ''}: a trend needs two")
        return Computed(value, how)
    return compute


def _paper_ratio(refs: pd.DataFrame, size: str) -> Reference | None:
    ff = reference(refs, task="style", dataset=size, method="johnson_feedforward", metric="seconds")
    t100 = reference(refs, task="style", dataset=size, method="gatys_lbfgs_100", metric="seconds")
    if ff is None or t100 is None:
        return None
    return Reference(value=ff.value / (t100.value / 100), confidence="printed",
                     source=f"{t100.source} (forward seconds / (100-iteration seconds / 100)); text: 'about half "
                            "the time of a single iteration'", origin="paper")


def _fig5_reference(refs: pd.DataFrame, size: str) -> Reference | None:
    low = reference(refs, task="style", dataset=size, method="gatys_lbfgs", metric="iters_to_match_low")
    high = reference(refs, task="style", dataset=size, method="gatys_lbfgs", metric="iters_to_match_high")
    if low is None or high is None:
        return None
    return Reference(value=float("nan"), confidence="printed", source=low.source, origin="paper",
                     printed=f"{low.printed}\u2013{high.printed}", note=low.note)


def _fig5_text(ref: Reference | None) -> str:
    return ref.printed if ref is not None else "\u2014"


def _trend_sizes(runs: list[Run]) -> list[str]:
    sizes = {str(s) for r in runs if r.trend is not None for s in r.trend["size"]}
    return sorted(sizes, key=_size_key) or ["128"]


def targets(spec: ClaimSpec, refs: pd.DataFrame, runs: list[Run]) -> list[Target]:
    """The paper numbers one claim is checked against (one per scale/dataset/metric/source, or per size)."""
    out: list[Target] = []
    if spec.key == "rel_feat_lowest_lpips":
        return _lpips_targets(runs)
    if spec.task == "sr" and spec.relative:
        return _relative_sr_targets(spec, refs)
    if spec.task == "sr":
        paper_method = SR_PAPER_METHOD[spec.key]
        rows = refs[(refs["task"] == "sr") & (refs["method"] == paper_method)]
        if paper_method not in SR_PER_IMAGE:
            rows = rows[rows["image"] == MEAN]
        for _, row in rows.iterrows():
            tol = SR_TOLERANCES[spec.key].get(row["metric"])
            if tol is None:
                continue
            found = [r for r in references_for(refs, task="sr", scale=row["scale"], dataset=row["dataset"],
                                               method=paper_method, metric=row["metric"], image=row["image"])
                     if r.origin == row["origin"]]
            ref = found[0]
            for method in SR_REPRODUCED_METHODS[paper_method]:
                out.append(Target(row["scale"], row["dataset"], method, row["metric"], ref,
                                  _paper_text(row["metric"], ref), tol, image=row["image"], protocol=ref.protocol,
                                  involves=(paper_method,)))
    elif spec.key in ("fig5_iters", "rel_style_between_50_100"):
        for size in _sizes(runs, "gatys_lbfgs", ("iters_to_match",)):
            band = _fig5_reference(refs, size) or (_fig5_reference(refs, "256") if spec.relative else None)
            out.append(Target("", size, "gatys_lbfgs", "iters_to_match", band, _fig5_text(band), FIG5_TOLERANCE,
                              in_paper=size in PAPER_SIZES, compute=_iters(size) if spec.relative else None,
                              involves=("gatys_lbfgs",)))
    elif spec.key == "rel_style_trend":
        for size in _trend_sizes(runs):
            out.append(Target("", size, "match point, last \u2212 first matched", "iters_to_match", None,
                              "rises (toward 50\u2013100 at full training)", Tolerance("sign", 1),
                              in_paper=size in PAPER_SIZES, compute=_trend(size), involves=("gatys_lbfgs",)))
    elif spec.key == "table1_speedup":
        for size in _sizes(runs, "speedup_vs_500", ("ratio", "ratio_extrapolated")):
            speedup = reference(refs, task="style", dataset=size, method="speedup_vs_500", metric="ratio")
            text = fmt_value("ratio", speedup.value) if speedup else "\u2014"
            out.append(Target("", size, "speedup_vs_500", "ratio", speedup, text, SPEEDUP_TOLERANCE,
                              in_paper=speedup is not None, involves=("speedup_vs_500",)))
    elif spec.key == "rel_style_faster_than_iteration":
        for size in _sizes(runs, "johnson_feedforward", ("seconds",)):
            ratio = _paper_ratio(refs, size) or _paper_ratio(refs, "256")
            text = f"{ratio.value:.2f}" if ratio else "\u2014"
            out.append(Target("", size, "forward / L-BFGS iteration", "time_ratio", ratio, text, FASTER_TOLERANCE,
                              in_paper=size in PAPER_SIZES, compute=_faster(size),
                              involves=("johnson_feedforward", "gatys_lbfgs_100", "speedup_vs_100",
                                        "speedup_vs_300", "speedup_vs_500")))
    return out


# ---- noise: a relative verdict beside the spread of its own margin -------------------------------------------------
class SpreadLookup(Protocol):
    """The measured spread of one results.csv value (reports.spread.SpreadTable): max - min, None when unmeasured."""

    def spread(self, kind: str, task: str, profile: str, dataset: str, scale: str, method: str, image: str,
               metric: str) -> float | None: ...


@dataclass(frozen=True)
class Noise:
    """A relative verdict's noise: over `n_seeds` seeds it holds in `n_hold` (None for one seed); `margin` is the mean
    margin (Tolerance.margin) over seeds, `spread` the max - min of the per-seed margins (`source` "seeds") or, for
    one seed, the profile's measured seed spread of the margin (`source` "measured"); None when unknown."""

    n_seeds: int
    n_hold: int | None
    margin: float
    spread: float | None
    source: str

    @property
    def within(self) -> bool:
        """Within the noise: the margin is not larger than its spread (|margin| <= spread)."""
        return self.spread is not None and abs(self.margin) <= self.spread


def _fmt_spread(metric: str, value: float) -> str:
    return fmt_value(metric, value) + (" dB" if metric == "psnr_y" else "")


def measured_margin_spread(table: SpreadLookup | None, run: Run, computed: Computed, kind: str = "seed"
                           ) -> float | None:
    """The profile's measured spread of a relative claim's margin: the row of the margin itself (method
    `A-B`, the two compared methods) when the table has one, else the sum of the two compared values' spreads
    (conservative: as if they moved in opposite directions; an untrained method's missing spread counts 0)."""
    if table is None or not computed.parts:
        return None
    task, scale, dataset, _, metric = computed.parts[0]
    if len(computed.parts) == 2:
        joined = "-".join(p[3] for p in computed.parts)
        direct = table.spread(kind, task, run.profile, dataset, scale, joined, MEAN, metric)
        if direct is not None:
            return float(direct)
    total, trained = 0.0, False
    for task, scale, dataset, method, metric in computed.parts:
        value = table.spread(kind, task, run.profile, dataset, scale, method, MEAN, metric)
        if value is None:
            if method in DETERMINISTIC_METHODS:
                continue
            return None
        trained |= method not in DETERMINISTIC_METHODS
        total += float(value)
    return total if trained else None


def _noise(spec: ClaimSpec, target: Target, run: Run, computed: Computed, paper: float,
           spread: SpreadLookup | None) -> Noise | None:
    if not (spec.relative and spec.trained) or target.compute is None or computed.value is None:
        return None
    seed_runs = run.seed_runs()
    if len(seed_runs) > 1:
        margins = []
        for seed_run in seed_runs:
            value = target.compute(seed_run).value
            margins.append(-math.inf if value is None else target.tolerance.margin(paper, value))
        holds = sum(_accepts_margin(target.tolerance, m) for m in margins)
        finite = [m for m in margins if math.isfinite(m)]
        if len(finite) != len(margins):
            return Noise(len(margins), holds, math.nan, None, "seeds")
        return Noise(len(margins), holds, sum(margins) / len(margins), max(margins) - min(margins), "seeds")
    margin = target.tolerance.margin(paper, computed.value)
    return Noise(1, None, margin, measured_margin_spread(spread, run, computed), "measured")


def _accepts_margin(tol: Tolerance, margin: float) -> bool:
    """A margin's verdict: the edge (0) is inside for abs/range/factor, outside for the strict sign/below."""
    return margin > 0 if tol.kind in ("sign", "below") else margin >= 0


def noise_text(noise: Noise | None, metric: str, profile: str) -> str:
    """The claims tables' Noise cell: seeds, mean margin and spread (or the profile's measured spread)."""
    if noise is None:
        return "\u2014"
    if noise.source == "seeds":
        text = f"{noise.n_seeds} seeds, holds in {noise.n_hold}"
        if noise.spread is not None:
            text += f"; mean margin {_fmt_spread(metric, noise.margin)}, spread (max \u2212 min of the margin) " \
                    f"{_fmt_spread(metric, noise.spread)}"
        return text
    if noise.spread is None:
        return f"1 seed; the {profile} profile's seed spread is not measured"
    return f"1 seed; margin {_fmt_spread(metric, noise.margin)}, {profile} seed spread " \
           f"{_fmt_spread(metric, noise.spread)}"


def _noise_qualifiers(noise: Noise, metric: str) -> list[str]:
    """What a verdict's text says of its noise: "in k of n seeds" on a multi-seed run, "within the noise (seed
    spread X)" where the margin is not larger than the spread."""
    out = [f"in {noise.n_hold} of {noise.n_seeds} seeds"] if noise.source == "seeds" else []
    if noise.within and noise.spread is not None:
        out.append(f"within the noise (seed spread {_fmt_spread(metric, noise.spread)})")
    return out


# ---- judging ------------------------------------------------------------------------------------------------------
def _protocol_note(run: Run, target: Target) -> str | None:
    """Why the run's protocol is not the one behind the paper's number (None when it is, or for style)."""
    if not target.protocol:
        return None
    used = run.protocol_at(target.scale)
    if used == target.protocol:
        return None
    return f"{used} protocol; the paper's x{target.scale} used {target.protocol}"


@dataclass(frozen=True)
class Judgement:
    """One target judged in one run: the run's number, the verdict class and text, how it was computed, and the
    verdict's noise (relative claims on trained networks only)."""

    value: float | None
    klass: str
    text: str
    detail: str
    noise: Noise | None = None


def judge(spec: ClaimSpec, target: Target, run: Run) -> tuple[float | None, str, str, str]:
    """(reproduced value, verdict class, verdict text, detail) for one target in one run."""
    j = judge_full(spec, target, run)
    return j.value, j.klass, j.text, j.detail


def judge_full(spec: ClaimSpec, target: Target, run: Run, spread: SpreadLookup | None = None) -> Judgement:
    """The verdict of one target in one run, with its noise (see `Noise`); `spread` is the measured spread table."""
    if run.results is None and run.trend is None:
        verdict = run.missing_text
        return Judgement(None, verdict, verdict, run.results_error or "")
    computed = Computed(None)
    if target.compute is not None:
        computed = target.compute(run)
        value = computed.value
    else:
        value = run.value(task=spec.task, dataset=target.dataset, scale=target.scale, method=target.method,
                          metric=target.metric, image=target.image)
        if value is None and spec.extrapolated_metric:
            # the harness writes <metric>_extrapolated when its traces stop short of the claim's length
            value = run.value(task=spec.task, dataset=target.dataset, method=target.method,
                              metric=f"{target.metric}_extrapolated")
            computed = Computed(value, extrapolated=value is not None)
    how, n_used = computed.how, computed.n_used
    if value is None:
        failed = run.failed_stages
        detail = "; ".join(f"stage {k} failed: {v}" for k, v in failed.items()) or how or "no such row in results.csv"
        return Judgement(None, "not run", "not run", detail)
    if computed.blocker:
        return Judgement(value, "not comparable", f"not comparable ({computed.blocker})", how)
    never = target.tolerance.kind == "range" and (math.isnan(value) or math.isinf(value))
    if math.isnan(value) and not never:
        return Judgement(value, "malformed", "malformed", "the value in results.csv is not a number")

    blockers: list[str] = []  # reasons the number cannot be judged against the paper
    qualifiers: list[str] = []  # facts that colour a verdict that can be given
    size_note = f"size {target.dataset} not in the paper"
    if (target.paper is None and spec.printed) or (not target.in_paper and not spec.relative):
        blockers.append(size_note)
    elif not target.in_paper:
        qualifiers.append(size_note)
    if spec.note:
        qualifiers.append(spec.note)
    if spec.trained and run.info is None:
        (qualifiers if spec.relative else blockers).append("profile unknown: no run.json")
    elif spec.trained and run.profile != "paper":
        (qualifiers if spec.relative else blockers).append(f"{run.profile} profile")
    protocol = _protocol_note(run, target)
    if protocol:
        (qualifiers if spec.relative else blockers).append(protocol)
    expected = EVAL_SET_SIZES.get(target.dataset) if spec.task == "sr" and target.image == MEAN else None
    if n_used is not None:
        n = n_used
    else:
        n = run.n_images(task=spec.task, dataset=target.dataset, scale=target.scale, method=target.method,
                         metric=target.metric)
    if expected and 0 < n < expected:
        blockers.append(f"{n} of {expected} images")
    if target.paper is not None and target.paper.confidence == "recalled":
        qualifiers.append("recalled target")
    if spec.trained and run.info is not None and run.substitute_corpus():
        qualifiers.append("substitute corpus")
    if computed.extrapolated:
        qualifiers.append(spec.extrapolated_note or "extrapolated")
    if spec.task == "style" and not spec.trained and run.device != "unknown":
        qualifiers.append(f"on {run.device}; paper: {PAPER_DEVICE}")

    detail = "L-BFGS never reached the network's objective within the trace" if never else how
    if blockers:
        return Judgement(value, "not comparable", f"not comparable ({'; '.join(blockers)})", detail)
    paper = target.paper.value if target.paper is not None else float("nan")
    ok = target.tolerance.accepts(paper, value)
    noise = _noise(spec, target, run, computed, paper, spread)
    if noise is not None:
        if noise.n_hold is not None:
            ok = noise.n_hold == noise.n_seeds  # holds only where it holds in every seed
        qualifiers = _noise_qualifiers(noise, target.metric) + qualifiers
    if spec.relative:
        verdict = "holds" if ok else "does not hold"
    else:
        verdict = "matches" if ok else "differs"
    text = verdict + (f" ({'; '.join(qualifiers)})" if qualifiers else "")
    return Judgement(value, verdict, text, detail, noise)


def _reproduced_text(spec: ClaimSpec, target: Target, value: float | None, run: Run | None, how: str) -> str:
    """The run's number; for a relative claim also the numbers it was computed from."""
    if value is None:
        return run.missing_text if run is not None and run.results is None else "not run"
    if spec.task == "sr" and spec.relative:
        text = fmt_delta(target.metric, value)
    elif target.tolerance.kind == "below":
        text = f"{value:.2f}"
    elif math.isnan(value):
        text = "\u2014"
    else:
        text = fmt_value(target.metric, value)
    return f"{text} ({how})" if how and target.compute is not None and not math.isinf(value) else text


def _delta(target: Target, value: float | None) -> str:
    if value is None or math.isnan(value) and target.tolerance.kind != "range":
        return "\u2014"
    if target.tolerance.kind == "range":
        return "never matched" if math.isinf(value) else target.tolerance.delta_text(target.metric, 0.0, value)
    if target.paper is None:
        return "\u2014" if target.tolerance.kind not in ("sign", "below") else \
            target.tolerance.delta_text(target.metric, 0.0, value)
    return target.tolerance.delta_text(target.metric, target.paper.value, value)


def section_of(spec: ClaimSpec, scale: str) -> str:
    """The paper section a check belongs to: x4 / x8 (SR, by scale), style (Fig. 5) or speed (Table 1)."""
    return spec.section or (f"x{scale}" if scale else spec.task)


def check_claims(runs: list[Run], refs: pd.DataFrame, spread: SpreadLookup | None = None) -> pd.DataFrame:
    """One row per claim x reference number x run that does the claim's task (a `not run` row when no run does).

    `spread`: the measured spread table (reports.spread) a single-seed run's relative verdicts are set beside."""
    records = []
    for spec in CLAIMS:
        # an evaluated external method is not one of the paper's: it is shown beside them, never judged against them
        task_runs: list[Run | None] = [r for r in runs if spec.task in r.tasks and not r.is_evaluation]
        for target in targets(spec, refs, runs):
            for run in task_runs or [None]:  # None: no run does this task, one "not run" row
                if run is None:
                    j = Judgement(None, "not run", "not run", f"no {spec.task} run given" + (
                        " (evaluations of external methods are not judged against the paper)"
                        if any(spec.task in r.tasks for r in runs) else ""))
                else:
                    j = judge_full(spec, target, run, spread)
                value, klass, text, detail = j.value, j.klass, j.text, j.detail
                paper = target.paper.value if target.paper else float("nan")
                protocol = run.protocol_at(target.scale) if run is not None and spec.task == "sr" else "\u2014"
                other_protocol = run is not None and _protocol_note(run, target) is not None
                where = target.dataset if spec.task == "sr" else f"{target.dataset} px"
                if target.image != MEAN:
                    where = f"{where} / {target.image}"
                noise = j.noise
                records.append({
                    "claim": spec.key, "Claim": spec.title, "relative": spec.relative,
                    "section": section_of(spec, target.scale),
                    "Run": run.header if run else "\u2014",
                    "run_label": run.label if run else "",
                    "profile": run.profile if run else "",
                    "Scale": f"x{target.scale}" if target.scale else "",
                    "Dataset": where,
                    "Method": method_label(target.method),
                    "Metric": metric_label(target.metric),
                    "Paper": target.paper_text,
                    "Source": target.paper.label if target.paper else (
                        f"{PAPER_CITATION}: {spec.source}" if spec.source else "\u2014"),
                    "Confidence": target.paper.confidence if target.paper else "\u2014",
                    "Protocol": protocol, "other_protocol": other_protocol,
                    "Reproduced": _reproduced_text(spec, target, value, run, detail),
                    "\u0394": _delta(target, value), "Tolerance": target.tolerance.text(target.metric),
                    "Verdict": text,
                    "verdict_class": klass, "detail": detail, "paper_value": paper,
                    "source": target.paper.label if target.paper else "",
                    "reproduced_value": float("nan") if value is None else value,
                    "metric": target.metric, "method": target.method, "dataset": target.dataset,
                    "scale": target.scale, "image": target.image, "involves": target.involves,
                    "Noise": noise_text(noise, target.metric, run.profile if run else ""),
                    "n_seeds": noise.n_seeds if noise else 0,
                    "n_hold": noise.n_hold if noise and noise.n_hold is not None else -1,
                    "margin": noise.margin if noise else float("nan"),
                    "spread": noise.spread if noise and noise.spread is not None else float("nan"),
                    "within_noise": bool(noise.within) if noise else False,
                })
    return pd.DataFrame.from_records(records)


# ---- the one-line-per-claim summary -------------------------------------------------------------------------------
def _where(row: pd.Series) -> str:
    parts = [row["Scale"], row["Dataset"], row["Method"], row["Metric"]]
    return " ".join(p for p in parts if p)


def _best_run(attempted: pd.DataFrame) -> str:
    """The run label with the most passing checks, then the most judged ones, then the first given (the summary
    line also counts every verdict, so a run that passes a few checks cannot hide the others)."""
    labels = list(dict.fromkeys(attempted["run_label"]))

    def rank(label: str) -> tuple[int, int, int]:
        mine = attempted[attempted["run_label"] == label]["verdict_class"]
        return int(mine.isin(PASSING).sum()), int(mine.isin(JUDGED).sum()), -labels.index(label)
    return max(labels, key=rank)


def claim_summary(claims: pd.DataFrame) -> pd.DataFrame:
    """One line per claim: its best run (the most passing checks, then the most judged ones), the verdict
    of that run over its checks, one delta (the first failing check's, else the first judged one's) and counts."""
    rows = []
    for spec in CLAIMS:
        sub = claims[claims["claim"] == spec.key]
        counts = sub["verdict_class"].value_counts()
        attempted = sub[sub["verdict_class"] != "not run"]
        count_text = ", ".join(f"{int(counts[v])} {v}" for v in VERDICTS if counts.get(v, 0) and v != "not run")
        if counts.get("not run", 0):
            count_text += ("; " if count_text else "") + f"{int(counts['not run'])} not run (folded)"
        best, verdict, klass, delta = "\u2014", "not run", "not run", "\u2014"
        if not attempted.empty:
            mine = attempted[attempted["run_label"] == _best_run(attempted)]
            best = mine["Run"].iloc[0]
            judged = mine[mine["verdict_class"].isin(JUDGED)]
            if judged.empty:
                klass = "not comparable" if (mine["verdict_class"] == "not comparable").any() else \
                    mine["verdict_class"].iloc[0]
                verdict = mine["Verdict"].value_counts().index[0]
                pick = mine.iloc[0]
            else:
                failing = judged[judged["verdict_class"].isin(FAILING)]
                pick = failing.iloc[0] if not failing.empty else judged.iloc[0]
                klass = pick["verdict_class"] if not failing.empty else judged["verdict_class"].iloc[0]
                quals = judged["Verdict"].str.extract(r"\((.*)\)$")[0].dropna()
                qual = "; ".join(dict.fromkeys(q for text in quals for q in text.split("; ")))
                n_text = f"{len(judged) - len(failing)} of {len(judged)} checks pass"
                verdict = f"{klass} ({n_text}{'; ' + qual if qual else ''})"
            delta = pick[DELTA] + f" at {_where(pick)}" if pick[DELTA] != "\u2014" else "\u2014"
        rows.append({"claim": spec.key, "Claim": spec.title, "Best run": best, "Verdict": verdict,
                     "verdict_class": klass, "\u0394 (where)": delta, "Checks": count_text or "none",
                     "Checked against": "; ".join(sorted({s.split(':')[0] for s in sub["source"] if s})) or "\u2014",
                     "attempted": not attempted.empty})
    return pd.DataFrame(rows)


__all__ = [
    "CLAIMS",
    "FIG5_TOLERANCE",
    "MEAN",
    "VERDICTS",
    "ClaimSpec",
    "Target",
    "Tolerance",
    "check_claims",
    "claim_summary",
    "judge",
    "targets",
]
