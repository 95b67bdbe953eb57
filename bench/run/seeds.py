"""One profile over several seeds (`--seeds 0 1 2`): each seed a whole run, then mean and spread per value.

Why: a few hundred training steps turn a float-order difference into another network, so one seed's trained numbers
carry a seed-to-seed spread, and a relative verdict is only as good as its margin over that spread. The driver runs
the harness once per seed into `OUT/seeds/seed-<k>/` (a seed that finished is kept, an interrupted one resumes), then
writes `OUT/seeds.csv` (n, mean, std, min, max and the per-seed values of every results.csv value), `OUT/results.csv`
(the means, so every reader of the results contract reads a multi-seed run as it reads one run) and `OUT/run.json`
(the first seed's record plus `seeds` and `seed_runs`). A seed that fails leaves the others' results on disk.
"""
from __future__ import annotations

import csv
import io
import json
import math
import shlex
import shutil
import statistics
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench.run.folder import RunRecord, report_stage
from data.files import atomic_write_json, atomic_write_text
from reports.results import (
    CURVE_COLUMNS,
    CURVE_FILE,
    MEAN,
    RESULTS_FILE,
    read_curve_rows,
    read_rows,
    write_curve_rows,
    write_rows,
)
from reports.seeds import SEEDS_COLUMNS, SEEDS_FILE

SEEDS_DIR = "seeds"
# what a seed's run folder keeps that the aggregate also shows (the report reads OUT/images and the Gatys traces)
COPIED_FROM_FIRST_SEED = ("images", "traces")
# the sub-runs a seed's folder may hold: the same networks scored under another protocol (`--also-protocols`)
PROTOCOL_PREFIX = "protocol-"


def seed_dir(out: Path, seed: int) -> Path:
    return out / SEEDS_DIR / f"seed-{seed}"


def strip_option(argv: Sequence[str], option: str, n_values: int | None) -> list[str]:
    """argv without `option` and its values (n_values None: every value up to the next option)."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        if argv[i] == option:
            i += 1
            taken = 0
            while i < len(argv) and not argv[i].startswith("--") and (n_values is None or taken < n_values):
                i, taken = i + 1, taken + 1
            continue
        if argv[i].startswith(option + "="):
            i += 1
            continue
        out.append(argv[i])
        i += 1
    return out


def _without_seed_options(argv: Sequence[str]) -> list[str]:
    """argv without what differs per seed or belongs to the aggregate: --seeds, --seed and --out."""
    return strip_option(strip_option(strip_option(argv, "--seeds", None), "--seed", 1), "--out", 1)


def _finished(folder: Path) -> bool:
    """A seed's run is finished when its run.json says every stage ended ok and its results.csv exists."""
    run_json, results = folder / "run.json", folder / RESULTS_FILE
    if not (run_json.is_file() and results.is_file()):
        return False
    stages = json.loads(run_json.read_text(encoding="utf-8")).get("stages", {})
    return bool(stages) and all(isinstance(s, dict) and s.get("status") in ("ok", "skipped") for s in stages.values())


def seed_argv(given: Sequence[str], seed: int, out: Path, no_report: Sequence[str]) -> list[str]:
    """The argument list of one seed's run: the given one without --seeds/--seed/--out/--resume, plus this seed,
    its folder, --resume where the folder holds an earlier run (unless --overwrite asks to start it anew), and the
    options that skip the per-seed report."""
    argv = [a for a in _without_seed_options(given) if a != "--resume"]
    folder = seed_dir(out, seed)
    resume = ["--resume"] if (folder / "run.json").is_file() and "--overwrite" not in argv else []
    return [*argv, *no_report, *resume, "--seed", str(seed), "--out", str(folder)]


def run_seeds(main: Callable[[list[str]], int], given: Sequence[str], seeds: Sequence[int], out: Path,
              module: str, no_report: Sequence[str] = ()) -> tuple[int, list[int]]:
    """Run `main` once per seed (skipping finished seeds unless --overwrite is given), then aggregate what
    finished. Returns the worst exit status and the seeds whose runs finished."""
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"--seeds {' '.join(map(str, seeds))}: each seed once")
    status = 0
    for seed in seeds:
        folder = seed_dir(out, seed)
        if _finished(folder) and "--overwrite" not in given:
            print(f"seed {seed}: finished earlier, kept ({folder})")
            continue
        print(f"seed {seed}: running into {folder}")
        status = max(status, main(seed_argv(given, seed, out, no_report)))
    done = [s for s in seeds if _finished(seed_dir(out, s))]
    if done:
        aggregate(out, done, module, given)
    return status, done


def seed_statistics(values: Sequence[float]) -> dict[str, float]:
    finite = [v for v in values if math.isfinite(v)]
    if len(finite) != len(values):  # inf (never matched) or nan in a seed: no mean, the values speak for themselves
        same = all(v == values[0] for v in values)
        v0 = values[0] if same else math.nan
        return {"mean": v0, "std": 0.0 if same else math.nan, "min": min(values), "max": max(values)}
    return {"mean": statistics.fmean(finite), "std": statistics.stdev(finite) if len(finite) > 1 else 0.0,
            "min": min(finite), "max": max(finite)}


def aggregate(out: Path, seeds: Sequence[int], module: str, given: Sequence[str] = ()) -> Path:
    """Write OUT/seeds.csv, OUT/results.csv (means) and OUT/run.json from the finished seeds' run folders; and the
    same, as a run folder of its own, for each other protocol every seed also scored (RUN/protocol-<name>/, the
    `--also-protocols` sub-runs), so a multi-seed run keeps what each of its seeds holds."""
    folders = {s: seed_dir(out, s) for s in seeds}
    _aggregate_folders(out, folders, module, given, Path(SEEDS_DIR))
    subs = sorted({p.name for p in folders[seeds[0]].glob(f"{PROTOCOL_PREFIX}*") if p.is_dir()})
    for sub in subs:
        if all(_finished(folders[s] / sub) for s in seeds):
            _aggregate_folders(out / sub, {s: folders[s] / sub for s in seeds}, module, given,
                               Path("..") / SEEDS_DIR, sub)
    return out


def _aggregate_folders(out: Path, folders: dict[int, Path], module: str, given: Sequence[str], seeds_rel: Path,
                       sub: str = "") -> None:
    """aggregate() for one run folder: `folders` are the seeds' copies of it, `seeds_rel` the seeds folder relative
    to `out` and `sub` the sub-run's name inside each seed's folder ("" for the seed's run itself)."""
    seeds = list(folders)
    per_seed = [read_rows(folders[s] / RESULTS_FILE) for s in seeds]
    order: list[tuple[str, ...]] = []
    values: dict[tuple[str, ...], list[float]] = {}
    first_rows: dict[tuple[str, ...], dict[str, Any]] = {}
    for rows in per_seed:
        for r in rows:
            key = (r["task"], r["dataset"], r["scale"], r["method"], r["image"], r["metric"])
            if key not in values:
                order.append(key)
                values[key], first_rows[key] = [], r
            values[key].append(r["value"])
    complete = [k for k in order if len(values[k]) == len(seeds)]  # a value some seed lacks has no seed statistics
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(SEEDS_COLUMNS)
    means = []
    for done in complete:
        st = seed_statistics(values[done])
        w.writerow([*done, len(seeds), *(repr(st[c]) for c in ("mean", "std", "min", "max")),
                    ";".join(repr(v) for v in values[done])])
        means.append(dict(first_rows[done], value=st["mean"]))
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / SEEDS_FILE, buf.getvalue())
    write_rows(out / RESULTS_FILE, means)
    runs = {str(s): json.loads((folders[s] / "run.json").read_text(encoding="utf-8")) for s in seeds}
    first = runs[str(seeds[0])]
    top = out.parent if sub else out
    argv = ["python", "-m", module, *_without_seed_options(list(given) or first["argv"][3:]), "--seeds",
            *map(str, seeds), "--out", str(top)]
    record = dict(first, argv=argv, command=shlex.join(argv), seed=seeds[0], seeds=list(seeds),
                  seed_runs={s: str(seeds_rel / f"seed-{s}" / sub) for s in map(str, seeds)},
                  wall_time_s=sum(float(r.get("wall_time_s") or 0.0) for r in runs.values()),
                  multi_seed={"n": len(seeds), "values": len(complete), "file": SEEDS_FILE,
                              "mean_of": "every value of results.csv is the mean over the seeds; seeds.csv has "
                                         "std, min, max and each seed's value"})
    record["identity"] = dict(first.get("identity", {}), seed=list(seeds))
    record["stages"] = {f"seed {s}": {"status": "ok", "error": None, "wall_time_s": runs[str(s)].get("wall_time_s")}
                        for s in seeds}
    if _aggregate_curve(out, [folders[s] for s in seeds]):
        record["curve"] = dict(first.get("curve") or {}, file=CURVE_FILE,
                               seeds="the mean over the seeds of each point every seed has; each seed's own curve is "
                                     "in its folder (seed_runs), and the report draws their range as a band")
    for name in COPIED_FROM_FIRST_SEED:
        src = folders[seeds[0]] / name
        if src.is_dir():
            shutil.copytree(src, out / name, dirs_exist_ok=True)
    atomic_write_json(out / "run.json", record)
    n_means = sum(1 for k in complete if k[4] == MEAN)
    print(f"{len(seeds)} seeds aggregated into {out}: {len(complete)} values ({n_means} means), seeds.csv")


def _aggregate_curve(out: Path, folders: Sequence[Path]) -> bool:
    """OUT/curve.csv: the mean over the seeds of each training-curve point every seed's curve.csv has (False, and
    nothing written, when a seed has no curve)."""
    if not all((f / CURVE_FILE).is_file() for f in folders):
        return False
    keys = CURVE_COLUMNS[:-1]
    points: dict[tuple[str, ...], list[float]] = {}
    for folder in folders:
        for r in read_curve_rows(folder):
            points.setdefault(tuple(r[c] for c in keys), []).append(float(r["value"]))
    write_curve_rows(out, (dict(zip(keys, key), value=repr(statistics.fmean(values)))
                           for key, values in points.items() if len(values) == len(folders)))
    return True


def multi_seed_main(module: str, main: Callable[[list[str]], int], args: Any, given: Sequence[str],
                    no_report: Sequence[str]) -> int:
    """`--seeds`: every seed's run, the aggregate, then (unless the report is off) the reproduction verdict and the
    report of the aggregate. Exit status: the worst of the seeds' (2 for an unusable argument)."""
    name = module.split(".")[-1]
    if args.out is None:
        print(f"reproduce-{name}: error: --seeds needs --out RUN (each seed runs into RUN/seeds/seed-<k>/)",
              file=sys.stderr)
        return 2
    if len(set(args.seeds)) != len(args.seeds):
        print(f"reproduce-{name}: error: --seeds {' '.join(map(str, args.seeds))}: give each seed once",
              file=sys.stderr)
        return 2
    if getattr(args, "dry_run", False):
        print(f"{len(args.seeds)} seeds ({' '.join(map(str, args.seeds))}), each a run like this one:")
        return main(seed_argv(given, args.seeds[0], args.out, no_report))
    out: Path = args.out
    if out.exists() and any(out.iterdir()) and not (out / SEEDS_DIR).is_dir() and not (out / "run.json").is_file():
        print(f"reproduce-{name}: error: --out {out} is not empty and holds no run: choose a new or empty --out",
              file=sys.stderr)
        return 2
    status, done = run_seeds(main, given, args.seeds, out, module, no_report)
    if not done:
        return max(status, 1)
    wants_report = "--no-report" not in given and ("--stages" not in given or "report" in given)
    if wants_report:
        record = RunRecord(out / "run.json", json.loads((out / "run.json").read_text(encoding="utf-8")))
        report_stage(record, out)
    return status
