"""The run folder both harnesses write: the `--out` rules, run.json and its stages, and the report stage.

Guarantees: a folder that is not a run of this suite is never written into; a run is only continued (`--resume`)
into a folder holding the same run (same task and identity), and `--overwrite` removes that run's own artefacts and
nothing else. run.json is rewritten atomically whenever a stage starts or ends, and a failing stage is recorded
(status, wall time, error naming where) while the other stages carry on.
"""
from __future__ import annotations

import json
import logging
import shutil
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from bench.run.errors import RunFolderError, describe_failure
from data.files import atomic_write_json, safe_name
from reports.results import RESULTS_FILE, read_rows, write_rows
from reports.verify import REPO, find_reference, verify

log = logging.getLogger("bench.run.folder")

OK, FAILED, SKIPPED = "ok", "failed", "skipped"


class StageSkipped(Exception):
    """Raised inside a stage that cannot run here (not an error of the run), e.g. no report builder installed."""


def check_folder(out: Path) -> bool:
    """True when --out holds a run; refuse a path that is not a folder and a non-empty folder that is not a run."""
    if out.exists() and not out.is_dir():
        raise RunFolderError(f"--out {out} exists and is not a folder; choose another --out")
    if out.is_dir() and any(out.iterdir()) and not (out / "run.json").is_file():
        raise RunFolderError(f"--out {out} is not empty and holds no run.json, so it is not a run folder of this "
                             f"suite; refusing to write into it. Choose a new or empty --out")
    return (out / "run.json").is_file()


def remove_artefacts(out: Path, owned: tuple[str, ...]) -> None:
    """Delete a run's own files and folders (the names in `owned`) from `out`, and nothing else."""
    for name in owned:
        target = out / name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()


def prepare_out(out: Path, task: str, identity: dict[str, Any], resume: bool, overwrite: bool,
                owned: tuple[str, ...]) -> dict[str, Any] | None:
    """Check --out before anything is written and create it; returns the previous run.json when resuming.

    Empty or missing folder: a fresh run. A folder holding a run: the same run (task and identity) continues only
    with --resume; --overwrite deletes that run's artefacts (`owned`) first; otherwise refused.
    """
    if not check_folder(out):
        out.mkdir(parents=True, exist_ok=True)
        return None
    if overwrite:
        remove_artefacts(out, owned)
        return None
    try:
        old = json.loads((out / "run.json").read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        old = None
    old_identity = old.get("identity") if isinstance(old, dict) else None
    same = isinstance(old, dict) and old.get("task", task) == task and old_identity == identity
    if same and resume:
        return old
    if same:
        raise RunFolderError(f"--out {out} already holds this run (same settings); pass --resume to continue it, "
                             f"--overwrite to start it again, or choose another --out")
    if old_identity is None:
        diff = "its run.json is unreadable or has no identity"
    else:
        keys = sorted(set(old_identity) | set(identity))
        diff = "; ".join(f"{k}: {old_identity.get(k)!r} there, {identity.get(k)!r} now" for k in keys
                         if old_identity.get(k) != identity.get(k))
        if isinstance(old, dict) and old.get("task", task) != task:
            diff = f"task {old.get('task')!r} there, {task!r} now"
    raise RunFolderError(f"--out {out} already holds a run with different settings ({diff}), so it holds a "
                         f"different run. Refusing to mix runs: pass --overwrite to replace it, or choose another "
                         f"--out")


class RunRecord:
    """run.json of one run: `info` (what the run records) with its `stages`, saved atomically at every change."""

    def __init__(self, path: Path, info: dict[str, Any]):
        self.path, self.info = path, info
        self.info.setdefault("stages", {})

    @property
    def stages(self) -> dict[str, dict[str, Any]]:
        return self.info["stages"]

    def save(self) -> None:
        atomic_write_json(self.path, self.info)

    def stage(self, name: str) -> Stage:
        """`with record.stage(name) as entry:` times the block and records how it ended (see Stage)."""
        return Stage(self, name)

    def skip(self, name: str, reason: str) -> None:
        self.stages[name] = {"status": SKIPPED, "wall_time_s": 0.0, "error": None, "reason": reason}
        self.save()

    def status(self, name: str) -> str | None:
        return self.stages.get(name, {}).get("status")

    def failed(self) -> dict[str, str]:
        return {k: v.get("error") or "" for k, v in self.stages.items() if v.get("status") == FAILED}


class Stage:
    """Times a stage. An Exception marks it failed (with the error) and is swallowed so other stages carry on;
    StageSkipped marks it skipped with its reason; KeyboardInterrupt / SystemExit are recorded and let through."""

    def __init__(self, record: RunRecord, name: str):
        self.record, self.name = record, name
        self.entry: dict[str, Any] = {"status": "running", "wall_time_s": None, "error": None}

    @property
    def ok(self) -> bool:
        return self.entry["status"] == OK

    def __enter__(self) -> dict[str, Any]:
        self.t0 = time.perf_counter()
        self.record.stages[self.name] = self.entry
        self.record.save()
        log.info("stage %s: start", self.name)
        return self.entry

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> bool:
        self.entry["wall_time_s"] = round(time.perf_counter() - self.t0, 3)
        if exc is None:
            if self.entry["status"] == "running":
                self.entry["status"] = OK
            log.info("stage %s: %s in %.1f s", self.name, self.entry["status"], self.entry["wall_time_s"])
        elif isinstance(exc, StageSkipped):
            self.entry.update(status=SKIPPED, reason=str(exc))
            log.warning("stage %s skipped: %s", self.name, exc)
        elif isinstance(exc, Exception):
            self.entry["status"] = FAILED
            self.entry["error"] = describe_failure(exc, f"stage {self.name}")
            log.error("stage %s failed: %s\n%s", self.name, self.entry["error"],
                      "".join(traceback.format_exception(exc_type, exc, tb)[-6:]))
        else:
            self.entry["status"] = FAILED
            self.entry["error"] = f"interrupted ({type(exc).__name__})"
        self.record.save()
        return isinstance(exc, Exception)


class StageRows:
    """Stages that produce results rows, each stage's rows kept in parts/<stage>.csv: a failed stage loses only its
    own rows, a resumed run skips a stage that finished (its rows are on disk), and results.csv is always the union
    of the stages that succeeded. `on_change` is called after each stage (to rewrite run.json)."""

    def __init__(self, record: RunRecord, out: Path, previous: dict[str, dict[str, Any]],
                 on_change: Callable[[], None]):
        self.record, self.out, self.previous, self.on_change = record, out, previous, on_change

    def part(self, stage: str) -> Path:
        return self.out / "parts" / f"{safe_name(stage)}.csv"

    def write_results(self) -> None:
        rows: list[dict[str, Any]] = []
        for name, entry in self.record.stages.items():
            if entry["status"] == OK and self.part(name).exists():
                rows.extend(read_rows(self.part(name)))
        write_rows(self.out / RESULTS_FILE, rows)

    def run(self, name: str, fn: Callable[[], list[dict[str, Any]] | None], needs: Sequence[str] = ()) -> bool:
        """Run stage `name` unless it finished in the run being resumed or a stage it `needs` did not succeed
        (recorded as skipped); True when it succeeded (now or before)."""
        prev = self.previous.get(name, {})
        if prev.get("status") == OK and (self.part(name).exists() or not prev.get("rows")):
            self.record.stages[name] = dict(prev, resumed=True)
            log.info("stage %s: done in a previous run, skipped", name)
            self.write_results()
            return True
        missing = [n for n in needs  # a stage done in the run being resumed counts even when not rerun now
                   if self.record.stages.get(n, self.previous.get(n, {})).get("status") != OK]
        if missing:
            log.warning("stage %s skipped: needs %s", name, ", ".join(missing))
            self.record.skip(name, f"needs {', '.join(missing)}, which did not succeed")
            self.on_change()
            return False
        with self.record.stage(name) as entry:
            rows = fn()
            if rows is not None:
                write_rows(self.part(name), rows)
            entry["rows"] = len(rows or [])
        self.write_results()
        self.on_change()
        return entry["status"] == OK


def reproduction_stage(record: RunRecord, out: Path) -> dict[str, Any] | None:
    """Did this run reproduce the committed run with its settings? As a stage: the verdict of reports.verify against
    the run under results/runs/ with the same settings is printed and kept in run.json (`reproduction`), where the
    report's run card shows it; skipped when no committed run has these settings. A run that does not reproduce is
    not a failed run: the verdict says by how much."""
    verdict = None
    with record.stage("reproduction"):
        ref = find_reference(out)
        if ref is None:
            raise StageSkipped("no committed run under results/runs/ has this run's settings")
        result = verify(out, ref)
        verdict = dict(result.as_json(), against=_shown_path(ref))
        record.info["reproduction"] = verdict
        print(f"reproduction: {result.summary()}", flush=True)
    return verdict


def _shown_path(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(REPO))
    except ValueError:
        return str(path)


def report_stage(record: RunRecord, out: Path) -> Path | None:
    """The run's reproduction verdict (reproduction_stage), then its HTML report, as stages (their failure loses
    nothing: the results are on disk); the report's path, or None when it was not built."""
    reproduction_stage(record, out)
    html = None
    with record.stage("report"):
        try:
            from reports.build import build_report
        except ImportError as e:
            raise StageSkipped(f"reports.build is not importable ({e}); rebuild the report later with "
                               f"`python -m reports.build {out}`") from e
        html = build_report([out], None, out / "report")
    return html
