"""The report's first screen: a status for every number the paper prints for a claim, and a verdict per section.

One headline row per number of the paper's table (reports/johnson2016.csv: Fig. 8 and Fig. 9 means and example
images, Table 1, Fig. 5's 50-100 band, one row per size): the paper's value (misprints marked), the best
reproduction with its run and training scale, a status (`matches` / `differs` / `not comparable (why)` / `not run`)
and the relative claims that stand in where an absolute comparison is impossible. Then one line per paper section
(SR x4, SR x8, style, speed) with an overall verdict and its reason. Every status is read from the claims frame of
`reports.claims.check_claims`; a number no claim checks (Table 1's seconds, a trained network's example image) is
`not comparable` when a run has it (no tolerance is defined for it) and `not run` when none has.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, NamedTuple

import pandas as pd

from reports.claims import CLAIM_BY_KEY, SR_REPRODUCED_METHODS
from reports.formatting import fmt_value, method_label, metric_label
from reports.results import MEAN
from reports.runs import Run

STATUSES = ("matches", "differs", "not comparable", "not run")
SECTIONS = (("x4", "SR x4 (Fig. 8)"), ("x8", "SR x8 (Fig. 9)"), ("style", "Style (Fig. 5)"),
            ("speed", "Speed (Table 1)"))
SECTION_VERDICTS = ("reproduced", "partially reproduced", "not reproduced", "no comparable evidence", "not run")
_CLASS_RANK = {"matches": 0, "differs": 1, "not comparable": 2, "malformed": 3, "not run": 4}
# How close a profile's training is to the paper's: the headline's best reproduction prefers the closest.
_PROFILE_RANK = {"paper": 0, "quick": 2, "quick-300": 2, "smoke": 3, "unknown": 4}
NUMBER_WHY = {"seconds": "seconds depend on the device: the claim is the speedup",
              "speedup_vs_100": "no claim checks this speedup (the claim is the one over 500 iterations)",
              "speedup_vs_300": "no claim checks this speedup (the claim is the one over 500 iterations)",
              "example": "a trained network's single image: the claims compare dataset means"}


def profile_rank(profile: str) -> int:
    """0 for the paper's profile, 1 for another named CPU/GPU-scale profile, then quick, smoke, unknown."""
    return _PROFILE_RANK.get(profile, 1)


def _section(task: str, scale: str, metric: str) -> str:
    if task == "sr":
        return f"x{scale}"
    return "style" if metric.startswith("iters_to_match") else "speed"


def _paper_numbers(refs: pd.DataFrame) -> list[dict[str, Any]]:
    """The paper's own numbers, one per row; Fig. 5's low/high pair merged into one band per size."""
    paper = refs[refs["origin"] == "paper"]
    out: list[dict[str, Any]] = []
    for row in paper.itertuples(index=False):
        if row.metric == "iters_to_match_high":
            continue
        metric = "iters_to_match" if row.metric == "iters_to_match_low" else row.metric
        printed = str(row.printed)
        if row.metric == "iters_to_match_low":
            high = paper[(paper["dataset"] == row.dataset) & (paper["metric"] == "iters_to_match_high")]
            printed = f"{row.printed}\u2013{high['printed'].iloc[0]}" if not high.empty else printed
            value_text = printed
        else:
            value_text = fmt_value(metric, float(row.value))
            if row.confidence == "misprint corrected":
                value_text += f" (misprint: printed {row.printed})"
        out.append({"task": row.task, "scale": str(row.scale), "dataset": str(row.dataset), "method": row.method,
                    "image": row.image, "metric": metric, "value": float(row.value), "paper_text": value_text,
                    "source": str(row.source), "section": _section(row.task, str(row.scale), metric),
                    "example": row.image != MEAN})
    return out


PAPER_LABELS = {"bicubic": "bicubic", "srcnn": "SRCNN", "johnson_pixel": "l_pixel", "johnson_feat": "l_feat",
                "speedup_vs_100": "speedup vs 100 iters", "speedup_vs_300": "speedup vs 300 iters",
                "speedup_vs_500": "speedup vs 500 iters"}
SHORT_METRICS = {"psnr_y": "PSNR-Y", "ssim_y": "SSIM-Y", "ratio": "", "seconds": "s",
                 "iters_to_match": "L-BFGS iters to match"}
OUTCOME_MARK = {"holds": "\u2713", "does not hold": "\u2717", "partly holds": "\u25d1"}


def _where(n: dict[str, Any]) -> str:
    method = PAPER_LABELS.get(n["method"], method_label(n["method"]))
    metric = SHORT_METRICS.get(n["metric"], metric_label(n["metric"]))
    if n["task"] == "sr":
        image = "" if n["image"] == MEAN else f" / {n['image']}"
        return f"x{n['scale']} {n['dataset']}{image} {method} {metric}"
    return f"{n['dataset']} px {method} {metric}".rstrip()


def _absolute_rows(claims: pd.DataFrame, n: dict[str, Any]) -> pd.DataFrame:
    """The absolute claim rows that check this paper number (every run, raw and histogram-matched outputs)."""
    if claims.empty:
        return claims
    sub = claims[~claims["relative"]]
    sub = sub[(sub["dataset"] == n["dataset"]) & (sub["metric"] == n["metric"]) & (sub["image"] == n["image"])
              & (sub["scale"] == (n["scale"] if n["task"] == "sr" else ""))]
    return sub[[n["method"] in inv for inv in sub["involves"]]]


def _why(text: str) -> str:
    """The parenthesised reason of a verdict text ("not comparable (quick profile)" -> "quick profile")."""
    return text[text.index("(") + 1: -1] if "(" in text and text.endswith(")") else ""


def _run_note(runs: dict[str, Run], labels: list[str], method: str = "", scale: str = "") -> str:
    """"A: cpu-x4, 5,000 it." for one run (its training of that method when run.json says); "A: cpu-x4; B, C:
    quick" for several."""
    known = [runs[label] for label in labels if label in runs]
    if len(known) == 1:
        run = known[0]
        its = run.iterations_for(method, scale) if method else None
        return f"{run.label}: {run.profile}" + (f", {its:,} it." if its else "")
    groups: dict[str, list[str]] = {}
    for run in known:
        groups.setdefault(run.profile, []).append(run.label)
    return "; ".join(f"{', '.join(ls)}: {profile}" for profile, ls in groups.items())


def _best(rows: pd.DataFrame, runs: dict[str, Run], paper: float) -> tuple[pd.Series, list[str]]:
    """The best reproduction (status, then the paper's evaluation protocol, then the profile closest to the paper's,
    then the value closest to the paper's) and every run whose number, for that method and status, prints
    identically (shown once, naming the runs). The protocol comes before the value: the same networks scored under
    another protocol must not stand in for the paper's number because they land closer to it."""
    def rank(item: tuple[Any, pd.Series]) -> tuple:
        _, r = item
        run = runs.get(r["run_label"])
        delta = abs(r["reproduced_value"] - paper) if math.isfinite(paper) and math.isfinite(
            r["reproduced_value"]) else math.inf
        return (_CLASS_RANK.get(r["verdict_class"], 5), bool(r["other_protocol"]),
                profile_rank(run.profile if run else "unknown"), delta)
    _, best = min(rows.iterrows(), key=rank)
    same = rows[(rows["verdict_class"] == best["verdict_class"]) & (rows["method"] == best["method"])
                & (rows["Reproduced"] == best["Reproduced"])]
    return best, list(dict.fromkeys(same["run_label"]))


def _run_values(runs: list[Run], n: dict[str, Any]) -> list[tuple[str, float, bool]]:
    """(run label, value, extrapolated) of every run that has this number, for numbers no claim checks."""
    out = []
    for run in runs:
        if n["task"] not in run.tasks or run.is_evaluation:
            continue
        methods = SR_REPRODUCED_METHODS.get(n["method"], (n["method"],)) if n["task"] == "sr" else (n["method"],)
        for method in methods:
            kw = {"task": n["task"], "dataset": n["dataset"], "method": method, "image": n["image"],
                  "scale": n["scale"] if n["task"] == "sr" else ""}
            value = run.value(metric=n["metric"], **kw)
            extrapolated = False
            if value is None:
                value = run.value(metric=f"{n['metric']}_extrapolated", **kw)
                extrapolated = value is not None
            if value is not None:
                out.append((run.label, value, extrapolated))
                break
    return out


def _relative_for(claims: pd.DataFrame, n: dict[str, Any]) -> pd.DataFrame:
    """Relative claim rows that stand in for this number: same section (and scale, dataset and metric for SR; any
    metric for the perceptual claim) involving the number's method; for style, the same size or the trend."""
    if claims.empty:
        return claims
    rel = claims[claims["relative"] & (claims["section"] == n["section"])]
    if n["task"] == "sr":
        rel = rel[(rel["dataset"] == n["dataset"])
                  & ((rel["metric"] == n["metric"]) | (rel["claim"] == "rel_feat_lowest_lpips"))]
    else:
        rel = rel[(rel["dataset"] == n["dataset"]) | (rel["claim"] == "rel_style_trend")]
    return rel[[n["method"] in inv for inv in rel["involves"]]]


def _run_outcome(rows: pd.DataFrame) -> tuple[str, bool]:
    """A run's outcome over its checks of one claim: holds / partly holds / does not hold / not comparable / not
    run, and whether any of its judged checks is within the noise."""
    judged = rows[rows["verdict_class"].isin(("holds", "does not hold"))]
    noisy = bool(judged["within_noise"].any()) if not judged.empty else False
    if judged.empty:
        return ("not comparable" if (rows["verdict_class"] == "not comparable").any() else "not run"), noisy
    n_hold = int((judged["verdict_class"] == "holds").sum())
    if n_hold == len(judged):
        return "holds", noisy
    return ("partly holds" if n_hold else "does not hold"), noisy


def relative_text(rel: pd.DataFrame) -> str:
    """"l_pixel − bicubic ✓ A, B ✗ C": each run's outcome over its checks (✓ holds, ✗ does not hold, ◑ holds in some
    of its checks); a run with a check within the noise is marked "≈"."""
    parts = []
    for key in dict.fromkeys(rel["claim"]):
        rows = rel[rel["claim"] == key]
        by_outcome: dict[str, list[str]] = {}
        for label in dict.fromkeys(rows["run_label"]):
            outcome, noisy = _run_outcome(rows[rows["run_label"] == label])
            if outcome in ("not run", "not comparable"):
                continue
            by_outcome.setdefault(outcome, []).append(label + ("\u2248" if noisy else ""))
        if not by_outcome:
            continue
        spec = CLAIM_BY_KEY[key]
        text = " ".join(f"{OUTCOME_MARK[o]}\u00a0{','.join(labels)}" for o, labels in by_outcome.items())
        parts.append(f"{spec.short or spec.title} {text}")
    return "; ".join(parts) or "\u2014"


def headline_rows(claims: pd.DataFrame, refs: pd.DataFrame, runs: list[Run]) -> pd.DataFrame:
    """One row per number the paper prints for a claim: paper value, best reproduction, status, relative claims."""
    by_label = {r.label: r for r in runs}
    records = []
    for n in _paper_numbers(refs):
        rows = _absolute_rows(claims, n)
        attempted = rows[rows["verdict_class"] != "not run"] if not rows.empty else rows
        best_text, status, why, runs_named = "\u2014", "not run", "", []
        if not attempted.empty:
            best, labels = _best(attempted, by_label, n["value"])
            status = best["verdict_class"] if best["verdict_class"] in STATUSES else "not comparable"
            why = _why(best["Verdict"]) if status == "not comparable" else ""
            if best["verdict_class"] == "malformed":
                why = "the run's value is not a number"
            method = f"{best['Method']}: " if n["task"] == "sr" and best["method"] != n["method"] else ""
            value = best["Reproduced"]
            run = by_label.get(best["run_label"])
            stats = run.seed_stats(task=n["task"], dataset=n["dataset"], method=best["method"], metric=n["metric"],
                                   scale=n["scale"] if n["task"] == "sr" else "", image=n["image"]) if run else None
            if stats is not None and stats[0] > 1 and stats[3] > stats[2]:  # a multi-seed run: mean +- half range
                value += f" \u00b1 {fmt_value(n['metric'], (stats[3] - stats[2]) / 2)} ({stats[0]} seeds)"
            best_text = f"{method}{value} ({_run_note(by_label, labels, best['method'], n['scale'])})"
            runs_named = labels
        else:
            found = _run_values(runs, n)
            if found:
                status = "not comparable"
                why = NUMBER_WHY["example"] if n["example"] else NUMBER_WHY.get(
                    n["method"] if n["method"] in NUMBER_WHY else n["metric"], "no claim checks this number")
                found.sort(key=lambda f: (profile_rank(by_label[f[0]].profile), f[0]))
                text = fmt_value(n["metric"], found[0][1]) + (" (extrapolated)" if found[0][2] else "")
                labels = [f[0] for f in found if fmt_value(n["metric"], f[1]) == fmt_value(n["metric"], found[0][1])]
                best_text = f"{text} ({_run_note(by_label, labels)})"
                runs_named = labels
            elif not rows.empty:
                why = str(rows["detail"].iloc[0]) if rows["run_label"].iloc[0] == "" else ""
        records.append({
            "section": n["section"], "Number": _where(n), "Paper": n["paper_text"], "Source": n["source"],
            "Best reproduction": best_text,
            "Status": status + (f" ({why})" if why and status != "not run" else ""),
            "status_class": status, "Relative claims standing in": relative_text(_relative_for(claims, n)),
            "example": n["example"], "runs": ", ".join(runs_named),
        })
    return pd.DataFrame.from_records(records)


@dataclass(frozen=True)
class SectionVerdict:
    """One paper section's overall verdict and the reason, e.g. "partially reproduced at CPU scale"."""

    key: str
    title: str
    verdict: str
    reason: str
    noise_note: str = ""


class Outcome(NamedTuple):
    """A relative claim's outcome in a section: judged in one run (`run`, "" when none judged it)."""

    name: str
    outcome: str
    run: str = ""
    noisy: bool = False  # a check of it is within the measured noise
    profile: str = ""
    unmeasured: bool = False  # a trained claim in one seed, with no measured spread of its profile to judge it by


def _claim_outcomes(claims: pd.DataFrame, section: str) -> list[Outcome]:
    """Per relative claim of a section, its outcome judged in the run with the best evidence: the paper's protocol
    first (x8: johnson2016), then the profile closest to the paper's, then a multi-seed run, then the most judged
    checks."""
    rel = claims[claims["relative"] & (claims["section"] == section)] if not claims.empty else claims
    out = []
    for key in dict.fromkeys(rel["claim"]) if not rel.empty else []:
        rows = rel[rel["claim"] == key]
        judged = rows[rows["verdict_class"].isin(("holds", "does not hold"))]
        spec = CLAIM_BY_KEY[key]
        name = spec.short or spec.title
        if judged.empty:
            out.append(Outcome(name, "not comparable" if (rows["verdict_class"] == "not comparable").any()
                               else "not run"))
            continue

        def rank(label: str, judged: pd.DataFrame = judged) -> tuple:
            mine = judged[judged["run_label"] == label]
            return (bool(mine["other_protocol"].any()), profile_rank(str(mine["profile"].iloc[0])),
                    -int(mine["n_seeds"].max()), -len(mine))
        label = min(dict.fromkeys(judged["run_label"]), key=rank)
        outcome, noisy = _run_outcome(rows[rows["run_label"] == label])
        mine = judged[judged["run_label"] == label]
        unmeasured = bool(spec.trained and mine["n_seeds"].max() <= 1 and mine["spread"].isna().all())
        out.append(Outcome(name, outcome, label, noisy, str(mine["profile"].iloc[0]), unmeasured))
    return out


def _count(n: int, what: str) -> str:
    return f"{n} {what}" if n else ""


def section_verdicts(headline: pd.DataFrame, claims: pd.DataFrame, runs: list[Run]) -> list[SectionVerdict]:
    """One verdict per paper section from its headline rows (absolute) and its relative claims (each judged in the
    run with the best evidence): reproduced (every number matches, every relative claim holds), partially
    reproduced (something matches or holds), not reproduced (judged, nothing holds), no comparable evidence, not
    run. "at CPU scale" when the relative evidence is not the paper's profile."""
    out = []
    by_label = {run.label: run for run in runs}
    for key, title in SECTIONS:
        rows = headline[headline["section"] == key] if not headline.empty else headline
        counts = rows["status_class"].value_counts() if not rows.empty else pd.Series(dtype=int)
        n = len(rows)
        m, d = int(counts.get("matches", 0)), int(counts.get("differs", 0))
        nc, nr = int(counts.get("not comparable", 0)), int(counts.get("not run", 0))
        outcomes = _claim_outcomes(claims, key)
        judged = [o for o in outcomes if o.outcome in ("holds", "partly holds", "does not hold")]
        held = [o for o in judged if o.outcome == "holds"]
        partly = [o for o in judged if o.outcome == "partly holds"]
        if m == n and n and (not outcomes or len(held) == len(outcomes)):
            verdict = "reproduced"
        elif m or held or partly:
            verdict = "partially reproduced"
        elif d or judged:
            verdict = "not reproduced"
        elif nc or any(o.outcome == "not comparable" for o in outcomes):
            verdict = "no comparable evidence"
        else:
            verdict = "not run"
        cpu = [o for o in judged if o.profile != "paper"]
        if verdict in ("reproduced", "partially reproduced", "not reproduced") and cpu:
            verdict += " at CPU scale" if all(o.profile != "paper" for o in judged) else ""
        reasons = []
        if outcomes:
            names = ", ".join(f"{o.name}: {o.outcome}" + (f" in {o.run}" if o.run else "")
                              + (" (within the noise)" if o.noisy else "")
                              + (" (1 seed, spread not measured)" if o.unmeasured else "") for o in outcomes)
            reasons.append(f"{len(held)} of {len(outcomes)} relative claims hold ({names})")
        abs_parts = [p for p in (_count(m, "match"), _count(d, "differ"), _count(nc, "not comparable"),
                                 _count(nr, "not run")) if p]
        if n:
            why = ""
            if nc:
                whys = rows[rows["status_class"] == "not comparable"]["Status"].map(_why)
                top = whys.value_counts().index[0] if not whys.empty else ""
                why = f"; most not comparable because: {top}" if top else ""
                if "profile" in top:
                    why += "; needs the paper profile on a GPU"
            reasons.append(f"absolute: {n} printed numbers, {', '.join(abs_parts)}{why}")
        for run in runs:
            rep = run.reproduction
            if rep and _run_in_section(run, key):
                reasons.append(f"rerun {run.label} against {rep['against']}: {rep['verdict']}")
        caveats = dict.fromkeys(f"{o.run}: {by_label[o.run].caveat}" for o in judged
                                if o.run in by_label and by_label[o.run].caveat)
        reasons.extend(f"caveat ({c})" for c in caveats)
        noisy = [o for o in judged if o.noisy]
        noise_note = ""
        if noisy:
            noise_note = (f"{len(noisy)} of {len(judged)} relative verdicts are within the noise "
                          f"({', '.join(o.name + ' in ' + o.run for o in noisy)})")
        out.append(SectionVerdict(key, title, verdict, "; ".join(reasons) or "no run does this section", noise_note))
    return out


def _run_in_section(run: Run, section: str) -> bool:
    if section in ("x4", "x8"):
        return "sr" in run.tasks and not run.rows(task="sr", scale=section[1:]).empty
    return "style" in run.tasks


def default_profile_noise(claims: pd.DataFrame, profile: str = "quick") -> str:
    """The first-screen warning when the default CPU profile's relative verdicts are within the noise ("" if none)."""
    if claims.empty:
        return ""
    rel = claims[claims["relative"] & (claims["profile"] == profile)
                 & claims["verdict_class"].isin(("holds", "does not hold"))]
    if rel.empty:
        return ""
    noisy = rel[rel["within_noise"]]
    measured = rel[rel["spread"].notna()]
    if noisy.empty:
        return ""
    return (f"{len(noisy)} of {len(measured)} relative verdicts of the default CPU profile ({profile}) with a measured "
            f"spread are within the noise: their margin is not larger than the seed-to-seed spread, so another "
            f"seed or CPU can flip them.")


__all__ = ["SECTIONS", "STATUSES", "SectionVerdict", "default_profile_noise", "headline_rows", "profile_rank",
           "relative_text", "section_verdicts"]
