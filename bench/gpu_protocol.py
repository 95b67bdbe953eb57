"""The GPU check as a compressed paper protocol that cannot lose its numbers (issue 13, part 4).

Every measurement is its own process with its own time limit from one budget, and each number is appended to a
JSONL file (fsynced) the moment it exists, so a killed step loses nothing. Why, order, prerequisites, output:
docs/gpu-check.md.

    scripts/gpu_check.sh --device cuda          # on the GPU machine (about 8 minutes on one H100/H200)
    scripts/gpu_check.sh --rehearse             # the same steps on the CPU at tiny sizes (CI runs it)
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

REPO = Path(__file__).resolve().parents[1]
JSONL, SUMMARY, LOG = "gpu_check.jsonl", "gpu_check_summary.md", "gpu_check.log"
BUDGET_S = 480.0  # 8 minutes on the GPU
REHEARSAL_BUDGET_S = 170.0
COMPILE_BACKEND_ENV = "PERCEPTUAL_COMPILE_BACKEND"

# (target, what it is measured from, target seconds)
TARGETS: list[dict[str, Any]] = [
    {"target": "style forward 1024 px <= 3 ms", "kind": "forward", "size": 1024, "target_s": 3e-3},
    {"target": "style forward 2048 px <= 12 ms", "kind": "forward", "size": 2048, "target_s": 12e-3},
    {"target": "style training step (4 x 256) <= 6 ms", "kind": "train", "task": "style", "target_s": 6e-3},
    {"target": "SR x4 training step (4 x 288) <= 4.5 ms", "kind": "train", "task": "sr_x4", "target_s": 4.5e-3},
    {"target": "Gatys 500 L-BFGS iterations at 1024 px < 15 s", "kind": "gatys", "target_s": 15.0},
    {"target": "--profile paper style training, 40k iterations < 6 min per style", "kind": "style_run",
     "target_s": 360.0},
]


@dataclass(frozen=True)
class Sizes:
    """The protocol's sizes: the paper's on the GPU, tiny ones for the CPU rehearsal."""

    forward: tuple[int, int] = (1024, 2048)
    style_train: int = 256
    sr_train: int = 288
    gatys: tuple[int, int] = (1024, 500)
    gatys_ref_budget_s: float = 25.0
    warmup: int = 3
    repeats: int = 20
    style_args: tuple[str, ...] = ("--profile", "paper", "--iterations", "2000", "--train-size", "256",
                                   "--n-images", "5", "--sizes", "256", "512", "1024", "--gatys-iterations", "200")
    sr_args: tuple[str, ...] = ("--profile", "paper", "--iterations", "5000")
    tests_args: tuple[str, ...] = ("tests/test_fast_path.py",)


GPU = Sizes()
REHEARSAL = Sizes(forward=(32, 64), style_train=32, sr_train=32, gatys=(32, 5), gatys_ref_budget_s=5.0, warmup=1,
                  repeats=2,
                  style_args=("--profile", "smoke", "--iterations", "3", "--train-size", "32", "--n-images", "2",
                              "--sizes", "32", "64", "--gatys-iterations", "3"),
                  sr_args=("--profile", "smoke", "--iterations", "3", "--patch-size", "32"),
                  tests_args=("tests/test_fast_path.py", "-k", "config or batched"))


@dataclass
class Step:
    name: str
    cmd: list[str]
    cap_s: float  # this step's own time limit (GPU); the budget may give it less
    requires: tuple[str, ...] = ()  # modules it imports
    needs_data: bool = False
    compiled: bool = False
    env: dict[str, str] = field(default_factory=dict)
    after: str | None = None  # what to collect when it ends: "style_run", "sr_run", "tests"


# ------------------------------------------------------------------------------------------- prerequisites


def append_jsonl(path: Path, record: dict[str, Any]) -> None:
    """Append one JSON line and make it durable now (a kill right after this call keeps it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record, default=str) + "\n")
        f.flush()
        os.fsync(f.fileno())



def missing_module(modules: Sequence[str]) -> str | None:
    """The first module (or the module it needs) that cannot be imported, else None."""
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as e:
            return e.name or name
    return None


def c_compiler() -> str | None:
    for cand in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if cand and shutil.which(cand):
            return shutil.which(cand)
    return None


def git_commit() -> str:
    if not shutil.which("git"):
        return "unknown (no git)"
    out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                         check=False)
    return out.stdout.strip() or "unknown (not a git checkout)"


def nvidia_smi() -> str | None:
    if not shutil.which("nvidia-smi"):
        return None
    out = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version,clocks.max.sm",
                          "--format=csv,noheader"], capture_output=True, text=True, check=False, timeout=30)
    return out.stdout.strip() or None


def imagenet_vgg_available() -> bool:
    """True when the ImageNet VGG-16 weights are already on this machine (no download)."""
    try:
        from perceptual.weights import _spec, hub_checkpoint, weights_dir
    except ImportError:
        return False
    return hub_checkpoint("vgg16") is not None or (weights_dir() / _spec("vgg16").converted_file).is_file()


DATA_LAYOUT = {"Set5": "sr/Set5", "coco_train": "train/coco/train2017", "coco_val": "train/coco/val2017",
               "la_muse.jpg": "style/styles/la_muse.jpg"}
N_TRAIN_IMAGES = 32


def prepare_data(dest: Path, mirror: Path | None = None) -> Path:
    """Copy the few images the protocol's harness runs read (Set5, 32 COCO train2017 images, 5 held-out val2017
    images, The Muse) from the data mirror into `dest` (about 8 MB), to carry to the GPU machine."""
    from data.fetch import mirror_root

    src = mirror or mirror_root()
    if src is None:
        raise FileNotFoundError("no data mirror found (set PERCEPTUAL_DATA)")
    dest.mkdir(parents=True, exist_ok=True)
    for name, rel in DATA_LAYOUT.items():
        s = Path(src) / rel
        if s.is_file():
            shutil.copy2(s, dest / name)
            continue
        files = sorted(p for p in s.iterdir() if p.is_file())
        files = files[:N_TRAIN_IMAGES] if name == "coco_train" else files[:5] if name == "coco_val" else files
        (dest / name).mkdir(exist_ok=True)
        for f in files:
            shutil.copy2(f, dest / name / f.name)
    return dest


def data_folder(given: Path | None) -> tuple[Path | None, str]:
    """The folder with DATA_LAYOUT's names (or the mirror, read in place), and what is missing if none."""
    if given is not None:
        missing = [n for n in DATA_LAYOUT if not (given / n).exists()]
        return (given, "") if not missing else (None, f"--data {given} lacks {', '.join(missing)}")
    try:
        from data.fetch import mirror_root

        root = mirror_root()
    except Exception as e:  # noqa: BLE001 - a broken data setting is a reason, not a crash
        return None, f"data mirror unusable ({e})"
    if root is None:
        return None, "no data: pass --data (made by --prepare-data) or set PERCEPTUAL_DATA"
    missing = [rel for rel in DATA_LAYOUT.values() if not (root / rel).exists()]
    if missing:
        return None, f"data mirror {root} lacks {', '.join(missing)}"
    return root, ""


def _data_paths(root: Path) -> dict[str, str]:
    if (root / "Set5").exists():
        return {k: str(root / k) for k in DATA_LAYOUT}
    return {k: str(root / rel) for k, rel in DATA_LAYOUT.items()}


# -------------------------------------------------------------------------------------------------- the steps


def plan(device: str, sizes: Sizes, work: Path, jsonl: Path, data: dict[str, str] | None, vgg: str) -> list[Step]:
    py = [sys.executable]

    def measure(name: str, kind: str, cap: float, *extra: str, compiled: bool = False) -> Step:
        mode = "compiled" if compiled else "eager"
        return Step(name, py + ["-m", "bench.gpu_measure", kind, f"--device={device}", f"--jsonl={jsonl}",
                                f"--mode={mode}", f"--step={name}", f"--warmup={sizes.warmup}",
                                f"--repeats={sizes.repeats}", *extra], cap, ("bench.gpu_measure", "baselines.gatys"),
                    compiled=compiled)

    f1, f2 = sizes.forward
    gsize, giters = sizes.gatys
    steps = [measure(f"gatys{giters}_{gsize}", "gatys", 75, f"--size={gsize}", f"--iterations={giters}",
                     f"--reference-budget-s={sizes.gatys_ref_budget_s:g}")]
    eager = [("forward", f1, (), 30), ("forward", f2, (), 40),
             ("train", sizes.style_train, ("--task=style",), 45), ("train", sizes.sr_train, ("--task=sr_x4",), 45)]
    for kind, size, extra, cap in eager:
        steps.append(measure(f"{kind}{'_' + extra[0][7:] if extra else ''}_{size}_eager", kind, cap, f"--size={size}",
                             *extra))
    d = data or {k: "" for k in DATA_LAYOUT}
    style_out, sr_out = work / "style_run", work / "sr_run"
    common = [f"--device={device}", f"--vgg-weights={vgg}", "--overwrite"]
    steps.append(Step("style_run", py + ["-m", "bench.style", *sizes.style_args, "--stages", "train", "fig5",
                                         "table1", "--styles", d["la_muse.jpg"], "--train-corpus", d["coco_train"],
                                         "--eval-set", d["coco_val"], "--out", str(style_out), *common],
                      170, ("bench.style",), needs_data=True, after="style_run"))
    steps.append(Step("sr_run", py + ["-m", "bench.sr", *sizes.sr_args, "--scales", "4", "--methods", "bicubic",
                                      "feat", "--datasets", d["Set5"], "--corpus", d["coco_train"], "--no-lpips",
                                      "--no-report", "--no-progress", "--out", str(sr_out), *common],
                      110, ("bench.sr",), needs_data=True, after="sr_run"))
    steps.append(Step("tests", py + ["-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=-ra",
                                     f"--junitxml={work / 'tests.xml'}", *sizes.tests_args], 90, ("pytest",),
                      env={"PERCEPTUAL_TEST_DEVICE": device, "PERCEPTUAL_TEST_COMPILE": "0"}, after="tests"))
    for kind, size, extra, cap in eager:
        steps.append(measure(f"{kind}{'_' + extra[0][7:] if extra else ''}_{size}_compiled", kind, cap + 60,
                             f"--size={size}", *extra, compiled=True))
    return steps


# ------------------------------------------------------------------------------------------- running a step


def run_step(step: Step, limit_s: float, log: IO[str]) -> dict[str, Any]:
    """Run one step's process with a hard limit (its own process group is killed at the limit, nothing else)."""
    log.write(f"\n$ {' '.join(step.cmd)}   (limit {limit_s:.0f} s)\n")
    log.flush()
    t0 = time.monotonic()
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **step.env}
    proc = subprocess.Popen(step.cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        proc.wait(timeout=limit_s)
        status = "ok" if proc.returncode == 0 else f"exit {proc.returncode}"
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        status = "timeout"
    return {"status": status, "seconds": round(time.monotonic() - t0, 1)}


def _run_info(folder: Path) -> dict[str, Any] | None:
    """A harness run folder's run.json, or None when the step left none (or a broken one)."""
    try:
        return json.loads((folder / "run.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def _session_rate(t: dict[str, Any]) -> tuple[int, float]:
    """(iterations trained in this session, seconds per iteration) of one run.json `training` entry."""
    its = max(1, int(t.get("iterations", 0)) - int(t.get("start_iteration", 0)))
    return its, float(t.get("session_time_s", 0.0)) / its


def _training_records(info: dict[str, Any], kind: str, label: str,
                      extra: Callable[[float], dict[str, Any]]) -> list[dict[str, Any]]:
    """One record per training of a harness run.json: iterations and seconds of this session, and `extra(rate)`."""
    records = []
    for name, t in (info.get("training") or {}).items():
        its, per = _session_rate(t)
        records.append({"kind": kind, "name": f"{label} {name}", "iterations": its,
                        "seconds": t.get("session_time_s"), "seconds_per_iteration": per} | extra(per))
    return records


def collect_style_run(folder: Path) -> list[dict[str, Any]]:
    """Records from a style harness run folder: training rate (-> 40k iterations), Fig. 5 and Table 1 rows."""
    out: list[dict[str, Any]] = []
    info = _run_info(folder)
    if info is None:
        return out
    out += _training_records(info, "style_run", "style training", lambda per: {
        "seconds_for_40k": per * 40_000, "path": info.get("path", "harness default"),
        "vgg_weights": info.get("vgg_weights"), "device_settings": info.get("device_settings")})
    for key in ("fig5", "table1"):
        if key in info:
            out.append({"kind": f"style_{key}", "name": key, "detail": info[key]})
    out.append({"kind": "style_stages", "name": "style run stages", "stages": info.get("stages")})
    return out


def collect_sr_run(folder: Path) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    info = _run_info(folder)
    if info is None:
        return out
    out += _training_records(info, "sr_run", "SR training", lambda per: {
        "vgg_weights": info.get("loss_network", {}).get("weights")})
    try:
        from reports.results import MEAN, RESULTS_FILE, read_rows

        rows = [r for r in read_rows(folder / RESULTS_FILE) if r.get("image") == MEAN]
        out.append({"kind": "sr_results", "name": "SR x4 Set5 means", "rows": rows})
    except OSError:
        pass
    out.append({"kind": "sr_stages", "name": "SR run stages", "stages": info.get("stages")})
    return out


def collect_tests(xml: Path) -> list[dict[str, Any]]:
    import xml.etree.ElementTree as ET

    try:
        root = ET.parse(xml).getroot()
    except (OSError, ET.ParseError):
        return []
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    if suite is None:
        return []
    counts = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
    failed = [c.get("name") for c in suite.iter("testcase")
              if c.find("failure") is not None or c.find("error") is not None]
    return [{"kind": "tests", "name": "CUDA tests", **counts, "failed": failed}]


def pack(folder: Path, dest: Path) -> None:
    """The run folder's small files (run.json, results.csv, logs, traces) as one tar.gz (images and checkpoints
    stay behind: $OUT takes at most 8 files)."""
    if not folder.is_dir():
        return
    tmp = dest.with_suffix(".tmp")
    with tarfile.open(tmp, "w:gz") as tar:
        for p in sorted(folder.rglob("*")):
            if p.is_file() and p.suffix in (".json", ".csv", ".md") and p.stat().st_size < 4 * 2**20:
                tar.add(p, arcname=str(p.relative_to(folder.parent)))
    os.replace(tmp, dest)


# ------------------------------------------------------------------------------------------------- summary


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return records
    for line in lines:
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line cut by a kill: the others stand
    return records


def _fmt(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v * 1e3:.2f} ms" if v < 1 else f"{v:.2f} s" if v < 120 else f"{v / 60:.1f} min"


def _measured(t: dict[str, Any], records: list[dict[str, Any]], sizes: Sizes) -> tuple[float | None, str]:
    """(seconds, how) of a target from this run's records: the best fast-path record of its kind and size."""
    size = {"forward": None, "train": None}.get(t["kind"])
    if t["kind"] == "forward":
        size = sizes.forward[0] if t["size"] == 1024 else sizes.forward[1]
        cands = [r for r in records if r.get("kind") == "forward" and r.get("size") == size and r.get("path") == "fast"]
        key = "median_s"
    elif t["kind"] == "train":
        cands = [r for r in records if r.get("kind") == "train" and r.get("task") == t["task"]
                 and r.get("path") == "fast"]
        key = "median_s"
    elif t["kind"] == "gatys":
        cands = [r for r in records if r.get("kind") == "gatys" and r.get("path") == "fast"]
        key = "seconds"
    else:
        cands = [r for r in records if r.get("kind") == "style_run"]
        key = "seconds_for_40k"
    cands = [r for r in cands if r.get(key) is not None]
    if not cands:
        return None, ""
    best = min(cands, key=lambda r: r[key])
    how = f"{best.get('mode', '')} {best.get('config', best.get('path', ''))}".strip()
    if t["kind"] == "style_run":
        how = f"from {best['iterations']} iterations at {_fmt(best['seconds_per_iteration'])}/it"
    return float(best[key]), how


def target_rows(records: list[dict[str, Any]], steps: dict[str, dict[str, Any]], on_gpu: bool,
                sizes: Sizes) -> list[dict[str, Any]]:
    """One row per target: status 'measured', 'not measured (why)' or 'n/a on CPU (...)'."""
    step_of = {"forward": "forward_", "train": "train_", "gatys": "gatys", "style_run": "style_run"}
    rows = []
    for t in TARGETS:
        value, how = _measured(t, records, sizes)
        row = {"target": t["target"], "target_s": t["target_s"], "value_s": value, "how": how}
        if value is not None and on_gpu:
            row["status"] = f"measured: {_fmt(value)} ({'met' if value <= t['target_s'] else 'missed'})"
        elif value is not None:
            row["status"] = f"n/a on CPU (rehearsal at tiny sizes measured {_fmt(value)})"
        else:
            prefix = step_of[t["kind"]]
            if t["kind"] == "train":
                prefix += t["task"]
            why = sorted({f"{n}: {s['status']}" + (f" ({s['reason']})" if s.get("reason") else "")
                          for n, s in steps.items() if n.startswith(prefix)})
            row["status"] = f"not measured ({'; '.join(why) or 'its step did not run'})"
            if not on_gpu:
                row["status"] = "n/a on CPU; " + row["status"]
        rows.append(row)
    pairs: dict[str, dict[str, float]] = {}
    for r in records:
        if r.get("kind") in ("forward", "train") and r.get("mode") == "eager" and r.get("median_s"):
            pairs.setdefault(r["name"], {})[r["path"]] = r["median_s"]
    ratios = {n: p["reference"] / p["fast"] for n, p in pairs.items() if "reference" in p and "fast" in p}
    slower = [n for n, r in ratios.items() if r < 0.95]
    verdict = ("measured: " + (f"slower in {', '.join(slower)}" if slower else "met")) if ratios else \
        "not measured (no eager fast/reference pair finished)"
    if ratios and not on_gpu:
        verdict = "n/a on CPU (tiny rehearsal sizes, 2 rounds: the CPU benchmarks measure this target)"
    rows.append({"target": "fast path not slower than the reference (eager pairs of this run)", "target_s": None,
                 "value_s": None, "how": ", ".join(f"{n} {r:.2f}x" for n, r in ratios.items()), "status": verdict})
    return rows


def protocol_rows(records: list[dict[str, Any]], steps: dict[str, dict[str, Any]], on_gpu: bool) -> list[dict]:
    """The protocol runs: style training + Fig. 5 + Table 1, SR x4 l_feat training on Set5, the CUDA tests."""
    def find(kind: str) -> dict[str, Any] | None:
        return next((r for r in records if r.get("kind") == kind), None)

    def not_run(step: str) -> str:
        s = steps.get(step)
        return f"not measured ({step}: {s['status']}{', ' + s['reason'] if s.get('reason') else ''})" if s else \
            f"not measured ({step} did not run)"

    rows = []
    stages = (find("style_stages") or {}).get("stages")
    if stages:
        bad = [n for n, st in stages.items() if st.get("status") != "ok"]
        rows.append({"what": "style training + Fig. 5 + Table 1", "status": f"measured: {len(stages)} stages, "
                     + (f"not ok: {', '.join(bad)}" if bad else "all ok")})
    else:
        rows.append({"what": "style training + Fig. 5 + Table 1", "status": not_run("style_run")})
    res = (find("sr_results") or {}).get("rows")
    if res:
        psnr = {r["method"]: float(r["value"]) for r in res if r.get("metric") == "psnr_y"}
        rows.append({"what": "SR x4 l_feat training, Set5", "status": "measured: PSNR-Y " +
                     ", ".join(f"{m} {v:.2f} dB" for m, v in psnr.items())})
    else:
        rows.append({"what": "SR x4 l_feat training, Set5", "status": not_run("sr_run")})
    t = find("tests")
    if t:
        text = f"{t['tests']} run, {t['failures'] + t['errors']} failed, {t['skipped']} skipped"
        rows.append({"what": "CUDA tests (tests/test_fast_path.py on the device)",
                     "status": f"measured: {text}" if on_gpu else f"n/a on CPU (the CPU subset: {text})"})
    else:
        rows.append({"what": "CUDA tests (tests/test_fast_path.py on the device)", "status": not_run("tests")})
    return rows


def summary_md(records: list[dict[str, Any]], steps: dict[str, dict[str, Any]], info: dict[str, Any],
               sizes: Sizes) -> str:
    on_gpu = info.get("device") == "cuda"
    rows = target_rows(records, steps, on_gpu, sizes)
    lines = [f"# GPU check: {info.get('device_name')} ({info.get('date')})", "",
             (f"{'rehearsal on CPU at tiny sizes; ' if not on_gpu else ''}torch {info.get('torch')}, commit "
              f"{info.get('commit')}, budget {info.get('budget_s', 0):.0f} s, wall {info.get('wall_s', 0):.0f} s"),
             "", "| target | status | from |", "|---|---|---|"]
    lines += [f"| {r['target']} | {r['status']} | {r['how']} |" for r in rows]
    lines += ["", "## Protocol runs", "", "| run | status |", "|---|---|"]
    lines += [f"| {r['what']} | {r['status']} |" for r in protocol_rows(records, steps, on_gpu)]
    lines += ["", "## Steps (in run order)", "", "| step | status | seconds |", "|---|---|---|"]
    lines += [f"| {n} | {s['status']}{' (' + s['reason'] + ')' if s.get('reason') else ''} | {s.get('seconds', 0)} |"
              for n, s in steps.items()]
    lines += ["", "## Measurements", "", ("| name | path | mode | median / total | GPU time (events) | warm-up | "
              "peak memory |"), "|---|---|---|---|---|---|---|"]
    for r in records:
        if r.get("kind") in ("forward", "train", "gatys"):
            mem = f"{r['peak_mem_bytes'] / 2**30:.2f} GiB" if r.get("peak_mem_bytes") else "-"
            lines.append(f"| {r.get('name')} | {r.get('path')} ({r.get('config', '')}) | {r.get('mode', '')} | "
                         f"{_fmt(r.get('median_s', r.get('seconds')))} | {_fmt(r.get('gpu_median_s'))} | "
                         f"{_fmt(r.get('warmup_s'))} | {mem} |")
    if info.get("notes"):
        lines += ["", "## Notes", ""] + [f"- {n}" for n in info["notes"]]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------------- main


def _atomic_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def main(argv: Sequence[str] | None = None) -> int:
    from bench.options import add_device_option  # the one --device declaration

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_device_option(p, choices=("cuda",), help="cuda: the GPU protocol (must be explicit)")
    p.add_argument("--rehearse", action="store_true", help="the same steps on the CPU at tiny sizes (CI)")
    p.add_argument("--budget-s", type=float, default=None, help=f"overall seconds (default {BUDGET_S:.0f}; "
                                                                 f"rehearsal {REHEARSAL_BUDGET_S:.0f})")
    p.add_argument("--out", type=Path, default=None, help="output folder (default $OUT, else results/bench/gpu-DATE)")
    p.add_argument("--data", type=Path, default=None, help="folder made by --prepare-data (default: the mirror)")
    p.add_argument("--prepare-data", type=Path, default=None, metavar="DIR",
                   help="copy the images the harness steps read into DIR (to carry to the GPU machine) and exit")
    p.add_argument("--only", default=None, help="comma-separated step names to run (default: all, in order)")
    args = p.parse_args(argv)
    if args.prepare_data is not None:
        print(prepare_data(args.prepare_data))
        return 0
    if args.rehearse == (args.device is not None):
        print("gpu_check: say --device cuda (on a GPU machine) or --rehearse (CPU, tiny sizes), exactly one",
              file=sys.stderr)
        return 2
    import torch

    device = "cpu" if args.rehearse else "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        print("gpu_check: --device cuda, but torch.cuda.is_available() is False: no GPU or no CUDA build of torch "
              "here. Nothing was measured. Use --rehearse for the CPU rehearsal.", file=sys.stderr)
        return 2
    sizes = REHEARSAL if args.rehearse else GPU
    budget_s = args.budget_s or (REHEARSAL_BUDGET_S if args.rehearse else BUDGET_S)
    date = time.strftime("%Y-%m-%d")
    out = args.out or (Path(os.environ["OUT"]) if os.environ.get("OUT") else REPO / "results" / "bench" /
                       f"gpu-{date}{'-rehearsal' if args.rehearse else ''}")
    out.mkdir(parents=True, exist_ok=True)
    jsonl = out / JSONL
    jsonl.unlink(missing_ok=True)
    work = Path(os.environ.get("TMPDIR", "/tmp")) / f"gpu_check_{os.getpid()}"
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    notes: list[str] = []
    info: dict[str, Any] = {"device": device, "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "torch": torch.__version__,
                            "commit": git_commit(), "budget_s": budget_s, "rehearsal": args.rehearse,
                            "device_name": torch.cuda.get_device_name(0) if device == "cuda" else "cpu (rehearsal)"}
    smi = nvidia_smi()
    info["nvidia_smi"] = smi or "not available"
    cc = c_compiler()
    info["c_compiler"] = cc
    if args.rehearse:
        os.environ[COMPILE_BACKEND_ENV] = "aot_eager"
        notes.append("rehearsal: compiled steps use torch.compile(backend='aot_eager') (inductor compiles take "
                     "60-90 s per shape on a CPU); numbers at tiny sizes are not comparable to any target")
    elif cc is None:
        notes.append("no C compiler (cc/gcc/clang): Triton cannot build kernels, so the compiled steps are skipped")
    data_root, data_why = data_folder(args.data)
    data = _data_paths(data_root) if data_root else None
    vgg = "imagenet" if (not args.rehearse and imagenet_vgg_available()) else "random"
    if vgg == "random":
        notes.append("harness runs use --vgg-weights random (ImageNet VGG-16 weights not on this machine"
                     f"{'' if not args.rehearse else ', or a rehearsal'}): timings are unaffected; the Fig. 5 "
                     "objective values and PSNR are not the paper's")
    if data_why:
        notes.append(f"harness steps: {data_why}")
    info["notes"] = notes
    append_jsonl(jsonl, {"kind": "machine", **info})
    steps = plan(device, sizes, work, jsonl, data, vgg)
    if args.only:
        wanted = set(args.only.split(","))
        steps = [s for s in steps if s.name in wanted]
    status: dict[str, dict[str, Any]] = {}
    logf = open(out / LOG, "w", encoding="utf-8")  # noqa: SIM115 - closed below; written by every step
    reserve = 5.0

    def write_summary() -> None:
        info["wall_s"] = time.monotonic() - t0
        _atomic_text(out / SUMMARY, summary_md(read_jsonl(jsonl), status, info, sizes))

    try:
        for step in steps:
            left = budget_s - (time.monotonic() - t0) - reserve
            reason = ""
            if step.compiled and not args.rehearse and cc is None:
                reason = "no C compiler for Triton"
            elif step.needs_data and data is None:
                reason = data_why
            elif (mod := missing_module(step.requires)) is not None:
                reason = f"package {mod!r} missing: carry its wheel in .whl/"
            elif left < 5:
                reason = "budget spent"
            if reason:
                status[step.name] = {"status": "skipped", "reason": reason, "seconds": 0.0}
            else:
                print(f"[gpu_check {time.strftime('%H:%M:%S')}] {step.name} (limit {min(step.cap_s, left):.0f} s)",
                      flush=True)
                status[step.name] = run_step(step, min(step.cap_s if not args.rehearse else left, left), logf)
                extra: list[dict[str, Any]] = []
                if step.after == "style_run":
                    extra = collect_style_run(work / "style_run")
                    pack(work / "style_run", out / "style_run.tar.gz")
                elif step.after == "sr_run":
                    extra = collect_sr_run(work / "sr_run")
                    pack(work / "sr_run", out / "sr_run.tar.gz")
                elif step.after == "tests":
                    extra = collect_tests(work / "tests.xml")
                    if (work / "tests.xml").exists():
                        shutil.copy(work / "tests.xml", out / "tests.xml")
                for r in extra:
                    append_jsonl(jsonl, {"step": step.name, **r})
                print(f"[gpu_check] {step.name}: {status[step.name]['status']} after "
                      f"{status[step.name]['seconds']} s", flush=True)
            write_summary()
    finally:
        logf.close()
        write_summary()
        shutil.rmtree(work, ignore_errors=True)
    print((out / SUMMARY).read_text(encoding="utf-8"))
    bad = [n for n, s in status.items() if s["status"] not in ("ok", "skipped")]
    if args.rehearse:  # CI: every step must run and pass at the tiny sizes
        bad += [n for n, s in status.items() if s["status"] == "skipped"]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
