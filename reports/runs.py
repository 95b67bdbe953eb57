"""Read one run folder of the results contract, tolerating missing and broken parts.

A run folder holds `results.csv` (long form: task, dataset, scale, method, image, metric, value), `run.json`
(environment, profile, corpus, stages), `logs/train_*.csv`, `traces/*.csv` and `images/`. Any of these may be
missing or malformed (a crashed stage, a run still going, a hand-edited file): loading never raises for that, it
records what is wrong so the report can say "not run" or "malformed" for that part and still render the rest.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from reports.results import MEAN, RESULT_COLUMNS
from reports.seeds import SEEDS_COLUMNS

# The paper's training corpora: SR used 10k MS-COCO training images, style ~80k (train2014). A run trained on fewer,
# or on another corpus, is labelled as using a substitute corpus.
PAPER_CORPUS_MIN_IMAGES = {"sr": 10_000, "style": 80_000}
# Evaluation sets whose size is known: a mean over fewer images is not the published protocol's mean.
EVAL_SET_SIZES = {"Set5": 5, "Set14": 14, "BSD100": 100}


@dataclass
class Run:
    """Everything the report needs from one run folder, plus what was missing or broken in it."""

    path: Path
    label: str
    info: dict[str, Any] | None = None
    info_error: str | None = None
    results: pd.DataFrame | None = None
    results_error: str | None = None
    bad_rows: int = 0
    notes: list[str] = field(default_factory=list)
    seed_values: pd.DataFrame | None = None
    trend: pd.DataFrame | None = None
    trend_error: str | None = None
    _seed_runs: list[Run] | None = field(default=None, repr=False, compare=False)

    # ---- provenance -------------------------------------------------------------------------------------------
    def _get(self, *keys: str, default: Any = None) -> Any:
        node: Any = self.info or {}
        for key in keys:
            if not isinstance(node, dict) or key not in node:
                return default
            node = node[key]
        return node

    @property
    def profile(self) -> str:
        return str(self._get("profile", default="unknown"))

    @property
    def device(self) -> str:
        return str(self._get("device", default="unknown"))

    @property
    def device_name(self) -> str:
        return str(self._get("device_name", default=self.device))

    @property
    def commit(self) -> str:
        commit = str(self._get("git", "commit", default="unknown"))
        short = commit[:10] if commit != "unknown" else commit
        return short + ("+dirty" if self._get("git", "dirty") else "")

    @property
    def date(self) -> str:
        return str(self._get("date", default="unknown"))

    @property
    def eval_protocol(self) -> str:
        """The SR evaluation protocol the run used (run.json `eval_protocol`; runs before that key: standard)."""
        value = self._get("eval_protocol")
        return "standard" if value in (None, "") else str(value)

    def protocol_at(self, scale: str) -> str:
        """The protocol behind this run's numbers at one scale: johnson2016 is the standard protocol at x4."""
        protocol = self.eval_protocol
        return "standard" if protocol == "johnson2016" and str(scale) != "8" else protocol

    @property
    def variant(self) -> str | None:
        value = self._get("variant")
        return None if value is None else str(value)

    @property
    def corpus_name(self) -> str | None:
        corpus = self._get("corpus")
        if isinstance(corpus, dict):
            return str(corpus.get("name") or corpus.get("path") or "unnamed")
        return None if corpus is None else str(corpus)

    @property
    def corpus_images(self) -> int | None:
        n = self._get("corpus", "n_images")
        try:
            return None if n is None else int(n)
        except (TypeError, ValueError):
            return None

    @property
    def corpus_text(self) -> str:
        if self.corpus_name is None:
            return "none (no training)" if self.info is not None else "unknown"
        n = self.corpus_images
        return f"{self.corpus_name} ({n:,} images)" if n is not None else f"{self.corpus_name} (image count unknown)"

    @property
    def stages(self) -> dict[str, dict[str, Any]]:
        stages = self._get("stages", default={})
        return stages if isinstance(stages, dict) else {}

    @property
    def failed_stages(self) -> dict[str, str]:
        """Stage name -> error text for every stage run.json marks failed."""
        out = {}
        for name, stage in self.stages.items():
            if isinstance(stage, dict) and stage.get("status") == "failed":
                out[name] = str(stage.get("error") or "no error message recorded")
        return out

    @property
    def tasks(self) -> set[str]:
        """Tasks this run was meant to do (run.json) or did (results.csv)."""
        tasks: set[str] = set()
        task = self._get("task")
        if isinstance(task, str):
            tasks.add(task)
        elif isinstance(task, list):
            tasks.update(str(t) for t in task)
        if self.results is not None:
            tasks.update(str(t) for t in self.results["task"].unique())
        return tasks

    # ---- status -----------------------------------------------------------------------------------------------
    @property
    def status(self) -> str:
        """`ok`, `partial` (some stage failed or rows unreadable), `malformed` or `not run`."""
        if self.results is None:
            return "malformed" if self.results_error and self.results_error.startswith("malformed") else "not run"
        if self.failed_stages or self.bad_rows or self.info is None:
            return "partial"
        return "ok"

    @property
    def missing_text(self) -> str:
        """What a table cell says for a number this run does not have."""
        return "malformed" if self.status == "malformed" else "not run"

    # ---- evaluations of external methods (bench.sr / bench.style `evaluate`) -----------------------------------
    @property
    def evaluated_name(self) -> str | None:
        """The user's method name (results.csv `method`) when this run evaluated an external method."""
        name = self._get("evaluated", "name")
        return None if name is None else str(name)

    @property
    def is_evaluation(self) -> bool:
        """True for a run of `evaluate`: an external method scored under the protocol, nothing of the paper trained."""
        return self._get("identity", "mode") == "evaluate" or self.evaluated_name is not None

    @property
    def skipped_files(self) -> list[dict[str, str]]:
        """Files left out with --skip-unreadable (run.json `skipped_files`): file, kind, reason, dataset."""
        value = self._get("skipped_files", default=[])
        if not isinstance(value, list):
            return []
        return [{k: str(v) for k, v in s.items()} if isinstance(s, dict) else {"file": str(s)} for s in value]

    def mean_over(self, dataset: str) -> str | None:
        """"over N of M images" when --skip-unreadable left images of `dataset` out (None when none were)."""
        text = self._get("datasets", dataset, "mean_over")
        return None if text is None or str(text).startswith("over all") else str(text)

    def deviations(self) -> list[str]:
        """Why this run's numbers are not the paper's protocol (empty when they are)."""
        out = []
        if self.info is None:
            out.append("provenance unknown (no readable run.json)")
            return out
        if self.is_evaluation:
            out.append(f"evaluation of an external method ({self.evaluated_name or 'unnamed'}; nothing of the "
                       f"paper trained in this run)")
        elif self.profile != "paper":
            out.append(f"{self.profile} profile (not the paper's schedule)")
        datasets = self._get("datasets", default={})
        for name in datasets if isinstance(datasets, dict) else {}:
            if (over := self.mean_over(str(name))) is not None:
                out.append(f"{name}: means {over} (unreadable files skipped)")
        if self.substitute_corpus():
            out.append(f"substitute training corpus: {self.corpus_text}")
        vgg = self._get("vgg_weights", default=self._get("identity", "vgg_weights"))
        if vgg is not None and str(vgg) not in ("imagenet", "IMAGENET1K_V1"):
            out.append(f"loss network weights: {vgg} (the paper: ImageNet VGG-16)")
        return out

    @property
    def caveat(self) -> str:
        """What the harness says a reader must know beside this run's verdicts (run.json `caveat`, from the
        profile; "" when none)."""
        return str(self._get("caveat", default="") or "")

    @property
    def harness_notes(self) -> list[str]:
        """Free-text notes the harness recorded in run.json (`notes`, and the corpus's `note`)."""
        notes = self._get("notes", default=[])
        out = [str(n) for n in notes] if isinstance(notes, list) else [str(notes)]
        corpus_note = self._get("corpus", "note")
        if corpus_note:
            out.append(f"corpus: {corpus_note}")
        return out

    def substitute_corpus(self) -> bool:
        """True when the run trained on something other than MS-COCO at the paper's size."""
        if self.corpus_name is None:
            return False
        needed = max((PAPER_CORPUS_MIN_IMAGES.get(t, 0) for t in self.tasks), default=0)
        text = (self.corpus_name + " " + str(self._get("corpus", "path", default=""))).lower()
        n = self.corpus_images
        return "coco" not in text or n is None or n < needed

    @property
    def paper_protocol(self) -> bool:
        return not self.deviations()

    @property
    def header(self) -> str:
        """The column header used in every table: label, profile, device, and a dagger when not the protocol."""
        return f"{self.label}: {self.profile} / {self.device}" + ("" if self.paper_protocol else " \u2020")

    @property
    def seeds(self) -> list[int]:
        """The seeds of a multi-seed run (run.json `seeds`; results.csv holds their means): [] for one seed."""
        seeds = self._get("seeds", default=[])
        return [int(s) for s in seeds] if isinstance(seeds, list) and len(seeds) > 1 else []

    @property
    def training_text(self) -> str:
        """The run's training length as the headline names it ("5,000 it." or "300-600 it."; "" when unknown)."""
        its = self._get("iterations", default={})
        numbers = sorted({int(v) for k, v in its.items() if isinstance(v, (int, float)) and not str(k).startswith(
            ("gatys", "outputs"))}) if isinstance(its, dict) else []
        if not numbers:
            return ""
        return f"{numbers[0]:,} it." if len(numbers) == 1 else f"{numbers[0]:,}–{numbers[-1]:,} it."

    def iterations_for(self, method: str, scale: str = "") -> int | None:
        """The training iterations of one method (run.json `iterations`, keyed `<method>_x<scale>` for SR or
        `train` for style), None when not recorded."""
        its = self._get("iterations", default={})
        if not isinstance(its, dict):
            return None
        base = method.removesuffix("_histmatch")
        for key in (f"{base}_x{scale}" if scale else base, base, "train"):
            if isinstance(its.get(key), (int, float)):
                return int(its[key])
        return None

    @property
    def reproduction(self) -> dict[str, str] | None:
        """run.json `reproduction`: the verdict of this run against a committed one (`against`, `verdict`,
        `summary`), or None."""
        value = self._get("reproduction")
        if not isinstance(value, dict) or "verdict" not in value:
            return None
        return {k: str(value.get(k, "")) for k in ("against", "verdict", "summary")}

    def seed_stats(self, *, task: str, dataset: str, method: str, metric: str, scale: str = "",
                   image: str = MEAN) -> tuple[int, float, float, float] | None:
        """(n, mean, min, max) over the seeds of a multi-seed run (seeds.csv), or None."""
        if self.seed_values is None:
            return None
        df = self.seed_values
        sel = df[(df["task"] == task) & (df["dataset"] == dataset) & (df["scale"] == str(scale))
                 & (df["method"] == method) & (df["metric"] == metric) & (df["image"] == image)]
        if sel.empty:
            return None
        values = sel["values"].iloc[-1]
        return len(values), float(sum(values) / len(values)), float(min(values)), float(max(values))

    def seed_runs(self) -> list[Run]:
        """One view of this run per seed (its results.csv with each seeds.csv value replaced by that seed's), so a
        claim is computed per seed by the same code; [] for a single-seed run."""
        if self.seed_values is None or self.results is None or not self.seeds:
            return []
        if self._seed_runs is None:
            self._seed_runs = self._make_seed_runs()
        return self._seed_runs

    def _make_seed_runs(self) -> list[Run]:
        assert self.seed_values is not None and self.results is not None
        n = min(len(v) for v in self.seed_values["values"])
        key_cols = [c for c in RESULT_COLUMNS if c != "value"]
        lookup = {tuple(r[c] for c in key_cols): r["values"] for _, r in self.seed_values.iterrows()}
        keys = list(zip(*(self.results[c] for c in key_cols)))
        out = []
        for i in range(n):
            frame = self.results.copy()
            frame["value"] = [lookup[k][i] if k in lookup else v for k, v in zip(keys, self.results["value"])]
            out.append(Run(path=self.path, label=f"{self.label} seed {i}", info=self.info, results=frame))
        return out

    # ---- results ----------------------------------------------------------------------------------------------
    def rows(self, **where: str) -> pd.DataFrame:
        """results.csv rows matching every column=value given (empty frame when there are no results)."""
        if self.results is None:
            return pd.DataFrame(columns=list(RESULT_COLUMNS))
        df = self.results
        mask = pd.Series(True, index=df.index)
        for key, value in where.items():
            mask &= df[key] == str(value)
        return df[mask]

    def value(self, *, task: str, dataset: str, method: str, metric: str, scale: str = "",
              image: str = MEAN) -> float | None:
        """One number from results.csv, or None when the run does not have it."""
        sel = self.rows(task=task, dataset=dataset, scale=scale, method=method, metric=metric, image=image)
        if sel.empty:
            return None
        return float(sel["value"].iloc[-1])

    def n_images(self, *, task: str, dataset: str, method: str, metric: str, scale: str = "") -> int:
        """How many per-image rows back a dataset mean (0 when only the mean was written)."""
        sel = self.rows(task=task, dataset=dataset, scale=scale, method=method, metric=metric)
        return int((sel["image"] != MEAN).sum())


def _normalise_scale(value: str) -> str:
    value = value.strip()
    if not value:
        return ""
    try:
        number = float(value)
    except ValueError:
        return value
    return str(int(number)) if math.isfinite(number) and number == int(number) else value


def read_results(path: Path) -> tuple[pd.DataFrame | None, str | None, int]:
    """Parse results.csv: (frame, error, number of rows dropped because their value is not a number)."""
    if not path.is_file():
        return None, "not run: no results.csv", 0
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as exc:
        return None, f"malformed: {path.name} cannot be parsed ({type(exc).__name__}: {exc})".strip(), 0
    missing = [c for c in RESULT_COLUMNS if c not in raw.columns]
    if missing:
        return None, f"malformed: {path.name} lacks columns {', '.join(missing)}", 0
    df = raw[list(RESULT_COLUMNS)].copy()
    for col in RESULT_COLUMNS[:-1]:
        df[col] = df[col].astype(str).str.strip()
    df["scale"] = df["scale"].map(_normalise_scale)
    text = df["value"].astype(str).str.strip()
    values = pd.to_numeric(text, errors="coerce")
    unreadable = values.isna() & ~text.str.lower().isin(["nan", "inf", "-inf"])
    df["value"] = values.astype(float)
    df = df[~unreadable]
    if df.empty:
        return None, f"malformed: {path.name} has no row with a numeric value", int(unreadable.sum())
    return df.reset_index(drop=True), None, int(unreadable.sum())


def read_info(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    """Parse run.json: (dict, error)."""
    if not path.is_file():
        return None, "missing run.json"
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return None, f"malformed run.json ({exc})"
    if not isinstance(info, dict):
        return None, "malformed run.json (not an object)"
    return info, None


TREND_COLUMNS = ("size", "train_iterations", "network_objective", "iters_to_match", "lbfgs_iterations")


def _read_columns(path: Path, columns: tuple[str, ...]) -> tuple[pd.DataFrame | None, str | None]:
    """A run folder's optional CSV as text columns `columns`: (frame, None); (None, None) when there is no file;
    (None, "malformed: ...") when it cannot be parsed or lacks a column."""
    if not path.is_file():
        return None, None
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as exc:
        return None, f"malformed: {path.name} cannot be parsed ({type(exc).__name__}: {exc})"
    missing = [c for c in columns if c not in raw.columns]
    if missing:
        return None, f"malformed: {path.name} lacks columns {', '.join(missing)} (header: {','.join(columns)})"
    return raw[list(columns)].copy(), None


def read_seeds(path: Path) -> tuple[pd.DataFrame | None, str | None]:
    """Parse seeds.csv (per value of a multi-seed run: n, mean, std, min, max and the ';'-joined values in seed
    order): (frame with `values` as lists of floats, error). No file: (None, None)."""
    df, error = _read_columns(path, SEEDS_COLUMNS)
    if df is None:
        return None, error
    df["scale"] = df["scale"].map(_normalise_scale)
    try:
        df["values"] = [[float(v) for v in str(text).split(";")] for text in df["values"]]
    except ValueError as exc:
        return None, f"malformed: {path.name} has a `values` cell that is not ';'-joined numbers ({exc})"
    return df, None


def read_trend(path: Path) -> tuple[pd.DataFrame | None, str | None]:
    """Parse trend.csv (Fig. 5 measured at several training lengths; `iters_to_match` empty = not matched within
    `lbfgs_iterations`): (frame with NaN for unmatched, error). No file: (None, None)."""
    df, error = _read_columns(path, TREND_COLUMNS)
    if df is None:
        return None, error
    df["size"] = df["size"].str.strip()
    for col in TREND_COLUMNS[1:]:
        numbers = pd.to_numeric(df[col].str.strip().replace("", "nan"), errors="coerce")
        if col != "iters_to_match" and numbers.isna().any():
            return None, f"malformed: {path.name} column {col} must be a number on every row"
        df[col] = numbers.astype(float)
    return df, None


def load_run(path: Path, label: str) -> Run:
    """Load a run folder; never raises for missing or broken contents (a missing folder is a run that did not run)."""
    path = Path(path)
    run = Run(path=path, label=label)
    if not path.is_dir():
        run.info_error = "missing run folder"
        run.results_error = f"not run: folder {path} does not exist"
        run.notes.append(f"missing run folder: {path} does not exist")
        return run
    run.info, run.info_error = read_info(path / "run.json")
    run.results, run.results_error, run.bad_rows = read_results(path / "results.csv")
    if run.info_error:
        run.notes.append(run.info_error)
    if run.results_error:
        run.notes.append(run.results_error)
    run.seed_values, seeds_error = read_seeds(path / "seeds.csv")
    run.trend, run.trend_error = read_trend(path / "trend.csv")
    for error in (seeds_error, run.trend_error):
        if error:
            run.notes.append(error)
    if run.bad_rows:
        run.notes.append(f"{run.bad_rows} row(s) of results.csv have no numeric value and were left out")
    for stage, error in run.failed_stages.items():
        run.notes.append(f"stage {stage} failed: {error}")
    return run


def evaluated_methods(runs: list[Run]) -> set[str]:
    """The method names of every evaluated external method among `runs` (labelled "NAME (evaluated)")."""
    return {r.evaluated_name for r in runs if r.evaluated_name}


def run_labels(n: int) -> list[str]:
    """A, B, ..., Z, AA, AB, ...: short labels that fit table headers."""
    labels = []
    for i in range(n):
        label, k = "", i
        while True:
            label = chr(ord("A") + k % 26) + label
            k = k // 26 - 1
            if k < 0:
                break
        labels.append(label)
    return labels


def load_runs(paths: list[Path]) -> list[Run]:
    """Load several runs, labelled A, B, C in the order given."""
    return [load_run(Path(p), label) for p, label in zip(paths, run_labels(len(paths)))]
