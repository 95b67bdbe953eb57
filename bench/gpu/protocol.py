"""The GPU check as a compressed paper protocol that cannot lose its numbers.

Every measurement is its own process with its own time limit from one budget, and each number is appended to a
JSONL file (fsynced) the moment it exists, so a killed step loses nothing. What it guarantees: the rehearsal runs
the GPU's argument lists with only sizes and counts scaled (`plan`, `Sizes`); the steps that produce the six
targets keep their minimum time in reserve (`limit_for`); targets are read from steady-state numbers. Why, order,
budget, prerequisites, output: docs/gpu-check.md.

    scripts/gpu_check.sh --device cuda --data .gpu/data   # on the GPU machine (9 minutes of steps)
    scripts/gpu_check.sh --rehearse                       # the same steps on the CPU at tiny sizes (CI runs it)
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

from bench.run.options import add_device_option  # the one --device declaration

REPO = Path(__file__).resolve().parents[2]
JSONL, SUMMARY, LOG = "gpu_check.jsonl", "gpu_check_summary.md", "gpu_check.log"
BUDGET_S = 540.0  # 9 minutes of steps on the GPU; run the script with a 10-minute limit (start-up and packing)
RESERVE_S = 5.0  # kept back from the budget for the last summary
STEP_OVERHEAD_S = 5.0  # per step, beyond its limit: killing it, collecting and packing its results, the summary
# Stated allowance for one cold Inductor compile of one network at one shape (forward, or forward + backward) on the
# GPU host, CUDA-graph capture included. An estimate (no GPU has measured it here); every step that compiles has at
# least this in its minimum, and docs/gpu-check.md states it.
COLD_COMPILE_S = 60.0
REHEARSAL_STEP_LIMIT_S = 900.0  # a rehearsal runs every step to completion; this only stops a hang
COMPILE_BACKEND_ENV = "PERCEPTUAL_COMPILE_BACKEND"
STYLE_RUN_ITERATIONS = 40_000  # the paper's training length per style (target 6)

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
    """The protocol's sizes: the paper's on the GPU, tiny ones for the CPU rehearsal. Only these numbers differ
    between the two: every argument list is built from the same template (tests/test_gpu_protocol.py compares them)."""

    forward: tuple[int, int] = (1024, 2048)
    style_train: int = 256
    sr_train: int = 288
    gatys: tuple[int, int] = (1024, 500)
    gatys_ref_budget_s: float = 25.0
    warmup: int = 3
    repeats: int = 20
    style_iterations: int = 2000
    style_train_size: int = 256
    style_n_images: int = 5
    style_sizes: tuple[int, int, int] = (256, 512, 1024)
    style_gatys_iterations: int = 200
    sr_iterations: int = 5000
    sr_patch: int = 288


GPU = Sizes()
REHEARSAL = Sizes(forward=(32, 64), style_train=32, sr_train=32, gatys=(32, 5), gatys_ref_budget_s=5.0, warmup=1,
                  repeats=2, style_iterations=3, style_train_size=48, style_n_images=2, style_sizes=(48, 64, 80),
                  style_gatys_iterations=3, sr_iterations=3, sr_patch=48)
# options whose values are sizes, iteration or image counts, repeats or time budgets: the only tokens that may
# differ between the GPU's and the rehearsal's argument lists (besides the device and the work folder)
SCALED_OPTIONS = ("--size", "--iterations", "--warmup", "--repeats", "--reference-budget-s", "--train-size",
                  "--n-images", "--sizes", "--gatys-iterations", "--patch-size")


@dataclass
class Step:
    name: str
    cmd: list[str]
    cap_s: float  # this step's own time limit (GPU); the budget may give it less, never less than min_s
    min_s: float = 15.0  # not started with less than this left (it would only time out)
    requires: tuple[str, ...] = ()  # modules it imports
    needs_data: bool = False
    compiled: bool = False  # compiles on CUDA (needs a C compiler and Triton)
    env: dict[str, str] = field(default_factory=dict)
    after: str | None = None  # what to collect when it ends: "style_run", "sr_run", "tests"
    targets: tuple[int, ...] = ()  # indices into TARGETS this step is the planned source of


# ------------------------------------------------------------------------------------------- prerequisites


def append_jsonl(path: Path, record: dict[str, Any]) -> None:
    """Append one JSON line and make it durable now (a kill right after this call keeps it). The line starts on a
    fresh line: a record cut short by a kill (no newline) cannot swallow the next one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as f:
        cut = False
        if f.seek(0, os.SEEK_END) > 0:
            f.seek(-1, os.SEEK_END)
            cut = f.read(1) != b"\n"
        f.write((("\n" if cut else "") + json.dumps(record, default=str) + "\n").encode("utf-8"))
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
    """The C compiler Triton would call (CC, cc, gcc or clang on PATH), else None."""
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


def gpu_name(smi: str | None) -> str:
    """The GPU's name without opening a CUDA context in this process (the steps need the device to themselves): from
    nvidia-smi, else from a short child process that exits (and so closes its context) before the first step."""
    if smi:
        return smi.splitlines()[0].split(",")[0].strip()
    code = "import torch; print(torch.cuda.get_device_name(0))"
    try:
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"cuda (name not read: {e})"
    return out.stdout.strip() or f"cuda (name not read: {out.stderr.strip().splitlines()[-1:]})"


def compiler_missing(cc: str | None) -> str | None:
    """Why torch.compile's Inductor cannot build GPU kernels here (no C compiler, no Triton), else None."""
    if cc is None:
        return "no C compiler for Triton"
    if missing_module(("triton",)) is not None:
        return "package 'triton' missing: torch.compile cannot build GPU kernels"
    return None


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
# held-out val2017 images: the style steps' Fig. 5 images, then the paper profile's TV-search validation images
# (8), so a paper-profile run with the TV search on works from the prepared folder too
N_VAL_IMAGES = 13


def prepare_data(dest: Path, mirror: Path | None = None) -> Path:
    """Copy the few images the protocol's harness runs read (Set5, 32 COCO train2017 images, 13 held-out val2017
    images, The Muse) from the data mirror into `dest` (about 10 MB), to carry to the GPU machine."""
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
        files = files[:N_TRAIN_IMAGES] if name == "coco_train" else files[:N_VAL_IMAGES] if name == "coco_val" \
            else files
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
    """The protocol's steps in run order, the same argument lists on the GPU and in the rehearsal (only `sizes`'
    numbers, the device and the folders differ).

    Order (what matters first): the paper-profile style training (target 6); the compiled forward and training steps
    (targets 1-4 as best_config ships them for CUDA); the uncompiled pairs (fast vs reference, same run); Gatys
    (target 5); the layout comparison (channels_last vs NCHW, uncompiled); Fig. 5 and Table 1 of the trained style
    network; the SR run; the CUDA tests. The steps that are the planned source of a target reserve their minimum
    (`min_s`) ahead of time: `limit_for` never lets an earlier step eat into it."""
    py = [sys.executable]

    def measure(name: str, kind: str, cap: float, min_s: float, *extra: str, compiled: bool = False,
                targets: tuple[int, ...] = ()) -> Step:
        mode = "compiled" if compiled else "uncompiled"
        return Step(name, py + ["-m", "bench.gpu.measure", kind, f"--device={device}", f"--jsonl={jsonl}",
                                f"--mode={mode}", f"--step={name}", f"--warmup={sizes.warmup}",
                                f"--repeats={sizes.repeats}", *extra], cap, min_s,
                    ("bench.gpu.measure", "baselines.gatys"), compiled=compiled, targets=targets)

    f1, f2 = sizes.forward
    gsize, giters = sizes.gatys
    shapes = [("forward", f1, (), 0), ("forward", f2, (), 1), ("train", sizes.style_train, ("--task=style",), 2),
              ("train", sizes.sr_train, ("--task=sr_x4",), 3)]

    def name(kind: str, size: int, extra: tuple[str, ...], mode: str) -> str:
        return f"{kind}{'_' + extra[0][7:] if extra else ''}_{size}_{mode}"

    d = data or {k: "" for k in DATA_LAYOUT}
    style_out, sr_out = work / "style_run", work / "sr_run"
    common = [f"--device={device}", f"--vgg-weights={vgg}"]
    style = py + ["-m", "bench.style", "--profile", "paper", "--iterations", str(sizes.style_iterations),
                  "--train-size", str(sizes.style_train_size), "--n-images", str(sizes.style_n_images),
                  "--sizes", *map(str, sizes.style_sizes), "--gatys-iterations", str(sizes.style_gatys_iterations),
                  "--no-tv-search", "--styles", d["la_muse.jpg"], "--train-corpus", d["coco_train"],
                  "--eval-set", d["coco_val"], "--out", str(style_out), *common]
    # 1. target 6: the paper profile's training alone (Fig. 5 and Table 1 compile more shapes: a later step)
    steps = [Step("style_train", style + ["--stages", "train", "--overwrite"], 180, COLD_COMPILE_S + 60,
                  ("bench.style",), needs_data=True, compiled=True, after="style_run", targets=(5,))]
    # 2. targets 1-4 as the CUDA default runs them: torch.compile + CUDA graphs (a cold compile each)
    compiled_caps = {0: (100, COLD_COMPILE_S + 15), 1: (75, 45), 2: (100, COLD_COMPILE_S + 15),
                     3: (100, COLD_COMPILE_S + 15)}
    for kind, size, extra, t in shapes:
        cap, low = compiled_caps[t]
        steps.append(measure(name(kind, size, extra, "compiled"), kind, cap, low, f"--size={size}", *extra,
                             compiled=True, targets=(t,)))
    # 3. the same cases uncompiled, each with its reference (the "not slower" pairs)
    for kind, size, extra, _ in shapes:
        steps.append(measure(name(kind, size, extra, "uncompiled"), kind, 45, 15, f"--size={size}", *extra))
    # 4. target 5
    steps.append(measure(f"gatys{giters}_{gsize}", "gatys", 75, 40, f"--size={gsize}", f"--iterations={giters}",
                         f"--reference-budget-s={sizes.gatys_ref_budget_s:g}", targets=(4,)))
    # 5. the layout decision for uncompiled CUDA (channels_last vs NCHW): measured here, decided by a person
    steps.append(measure(f"layout_{f1}", "layout", 60, 20, f"--size={f1}", f"--train-size={sizes.style_train}"))
    # 6. Fig. 5 and Table 1 of the network trained in step 1
    steps.append(Step("style_eval", style + ["--stages", "fig5", "table1", "--resume"], 120, 40, ("bench.style",),
                      needs_data=True, compiled=True, after="style_run"))
    steps.append(Step("sr_run", py + ["-m", "bench.sr", "--profile", "paper", "--iterations", str(sizes.sr_iterations),
                                      "--patch-size", str(sizes.sr_patch), "--scales", "4", "--methods", "bicubic",
                                      "feat", "--datasets", d["Set5"], "--corpus", d["coco_train"], "--no-lpips",
                                      "--no-report", "--no-progress", "--out", str(sr_out), "--overwrite", *common],
                      110, 60, ("bench.sr",), needs_data=True, compiled=True, after="sr_run"))
    steps.append(Step("tests", py + ["-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=-ra",
                                     f"--junitxml={work / 'tests.xml'}", "tests/test_fast_path.py"], 90, 30,
                      ("pytest",), env={"PERCEPTUAL_TEST_DEVICE": device, "PERCEPTUAL_TEST_COMPILE": "0"},
                      after="tests"))
    return steps


def target_steps(steps: Sequence[Step]) -> dict[int, list[str]]:
    """TARGETS index -> the steps planned to produce it."""
    out: dict[int, list[str]] = {i: [] for i in range(len(TARGETS))}
    for s in steps:
        for t in s.targets:
            out[t].append(s.name)
    return out


def limit_for(steps: Sequence[Step], i: int, left_s: float, runnable: Sequence[bool]) -> float:
    """Seconds step i may run with `left_s` of the budget left: its cap, less the minimums of the later runnable
    steps that produce a target (so none of those is squeezed out). Below steps[i].min_s: do not start it."""
    reserved = sum(s.min_s + STEP_OVERHEAD_S for s, ok in zip(steps[i + 1:], runnable[i + 1:]) if ok and s.targets)
    return min(steps[i].cap_s, left_s - STEP_OVERHEAD_S - reserved)


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


def steady_state(t: dict[str, Any], n: int = STYLE_RUN_ITERATIONS) -> dict[str, Any]:
    """What one run.json `training` entry says about training `n` iterations in one session: the first step as
    measured (compile, warm-up and CUDA-graph capture happen inside it) plus n - 1 steps at the measured rate of the
    later ones (`first_step_s + later_steps_s x (n - 1)`). None where the run did not time both."""
    its = int(t.get("iterations", 0)) - int(t.get("start_iteration", 0))
    first, later = t.get("first_step_s"), t.get("later_steps_s")
    out: dict[str, Any] = {"iterations": its, "seconds": t.get("session_time_s"), "first_step_s": first,
                           "later_steps_s": later, "seconds_per_iteration": later}
    if first is None or later is None:
        out |= {"seconds_for_n": None, "why": f"run.json has no first_step_s/later_steps_s ({its} iterations)"}
        return out
    first, later = float(first), float(later)
    return out | {"seconds_for_n": first + later * (n - 1), "n": n, "compile_warmup_s": max(0.0, first - later)}


def _training_records(info: dict[str, Any], kind: str, label: str,
                      extra: Callable[[dict[str, Any]], dict[str, Any]]) -> list[dict[str, Any]]:
    """One record per training of a harness run.json: the session's timings (steady_state) and `extra(steady)`."""
    records = []
    for name, t in (info.get("training") or {}).items():
        st = steady_state(t)
        records.append({"kind": kind, "name": f"{label} {name}"} | st | extra(st))
    return records


def collect_style_run(folder: Path) -> list[dict[str, Any]]:
    """Records from a style harness run folder: the steady-state training time for 40k iterations (with the first
    step's compile/warm-up/capture beside it), Fig. 5 and Table 1 rows."""
    out: list[dict[str, Any]] = []
    info = _run_info(folder)
    if info is None:
        return out
    fast = (info.get("fast_config") or {}).get("train") or {}
    out += _training_records(info, "style_run", "style training", lambda st: {
        "seconds_for_40k": st["seconds_for_n"], "path": info.get("path", "harness default"),
        "config": fast.get("label", info.get("path", "")), "profile": info.get("profile"),
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
    out += _training_records(info, "sr_run", "SR training", lambda st: {
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
    if t["kind"] in ("forward", "train"):
        how += f"; steady-state median of {best.get('repeats')} calls; warm-up (compile, capture, autotuning) " \
               f"{_fmt(best.get('warmup_s'))} beside it"
    elif t["kind"] == "gatys":
        how += f"; warm-up (5 iterations) {_fmt(best.get('warmup_s'))} beside it"
    else:
        how = (f"{best.get('config', '')}: first step {_fmt(best['first_step_s'])} (compile, warm-up, capture) + "
               f"{best['n'] - 1:,d} x {_fmt(best['later_steps_s'])} (later steps of {best['iterations']})")
    return float(best[key]), how


def target_rows(records: list[dict[str, Any]], steps: dict[str, dict[str, Any]], on_gpu: bool,
                sizes: Sizes) -> list[dict[str, Any]]:
    """One row per target: status 'measured', 'not measured (why)' or 'n/a on CPU (...)'."""
    step_of = {"forward": "forward_", "train": "train_", "gatys": "gatys", "style_run": "style_train"}
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
        if r.get("kind") in ("forward", "train") and r.get("mode") == "uncompiled" and r.get("median_s"):
            pairs.setdefault(r["name"], {})[r["path"]] = r["median_s"]
    ratios = {n: p["reference"] / p["fast"] for n, p in pairs.items() if "reference" in p and "fast" in p}
    slower = [n for n, r in ratios.items() if r < 0.95]
    verdict = ("measured: " + (f"slower in {', '.join(slower)}" if slower else "met")) if ratios else \
        "not measured (no uncompiled fast/reference pair finished)"
    if ratios and not on_gpu:
        verdict = "n/a on CPU (tiny rehearsal sizes, 2 rounds: the CPU benchmarks measure this target)"
    rows.append({"target": "fast path not slower than the reference (uncompiled pairs of this run)", "target_s": None,
                 "value_s": None, "how": ", ".join(f"{n} {r:.2f}x" for n, r in ratios.items()), "status": verdict})
    return rows


def protocol_rows(records: list[dict[str, Any]], steps: dict[str, dict[str, Any]], on_gpu: bool) -> list[dict]:
    """The protocol runs: style training + Fig. 5 + Table 1, SR x4 l_feat training on Set5, the CUDA tests."""
    def find(kind: str) -> dict[str, Any] | None:  # the latest (style_eval's run.json follows style_train's)
        return next((r for r in reversed(records) if r.get("kind") == kind), None)

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
                     "status": f"measured: {text}" if on_gpu else f"n/a on CPU (run on the CPU: {text})"})
    else:
        rows.append({"what": "CUDA tests (tests/test_fast_path.py on the device)", "status": not_run("tests")})
    return rows


def summary_md(records: list[dict[str, Any]], steps: dict[str, dict[str, Any]], info: dict[str, Any],
               sizes: Sizes) -> str:
    on_gpu = info.get("device") == "cuda"
    rows = target_rows(records, steps, on_gpu, sizes)
    lines = [f"# GPU check: {info.get('device_name')} ({info.get('date')})", "",
             (f"{'rehearsal on CPU at tiny sizes; ' if not on_gpu else ''}torch {info.get('torch')}, commit "
              f"{info.get('commit')}, "
              + (f"budget {info['budget_s']:.0f} s" if info.get("budget_s") else "no budget (every step to completion)")
              + f", cold-compile allowance {info.get('cold_compile_allowance_s', COLD_COMPILE_S):.0f} s per compiled "
              f"step, wall {info.get('wall_s', 0):.0f} s"),
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
    layout = layout_rows(records)
    if layout:
        lines += ["", "## Layout without torch.compile (channels_last vs NCHW; decides the uncompiled CUDA layout)", "",
                  "| case | NCHW | channels_last | faster |", "|---|---|---|---|"]
        lines += [f"| {r['case']} | {_fmt(r.get('nchw'))} | {_fmt(r.get('channels_last'))} | {r['faster']} |"
                  for r in layout]
    if info.get("notes"):
        lines += ["", "## Notes", ""] + [f"- {n}" for n in info["notes"]]
    return "\n".join(lines) + "\n"


def layout_rows(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The layout step's pairs: per case, the median of each layout and which was faster."""
    cases: dict[str, dict[str, float]] = {}
    for r in records:
        if r.get("kind") == "layout" and r.get("median_s") is not None:
            cases.setdefault(r["name"], {})["channels_last" if r.get("channels_last") else "nchw"] = r["median_s"]
    rows = []
    for case, m in cases.items():
        faster = "-"
        if "nchw" in m and "channels_last" in m:
            faster = "channels_last" if m["channels_last"] < m["nchw"] else "NCHW"
        rows.append({"case": case, **m, "faster": faster})
    return rows


# ---------------------------------------------------------------------------------------------------- main


def _atomic_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def collect(step: Step, work: Path, out: Path) -> list[dict[str, Any]]:
    """What a finished step left: harness run.json records (and its small files packed), or the tests' counts."""
    if step.after == "style_run":
        pack(work / "style_run", out / "style_run.tar.gz")
        return collect_style_run(work / "style_run")
    if step.after == "sr_run":
        pack(work / "sr_run", out / "sr_run.tar.gz")
        return collect_sr_run(work / "sr_run")
    if step.after == "tests":
        if (work / "tests.xml").exists():
            shutil.copy(work / "tests.xml", out / "tests.xml")
        return collect_tests(work / "tests.xml")
    return []


def _parser() -> argparse.ArgumentParser:
    """The command line: the device (or the rehearsal), the budget, the output and data folders, the steps."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_device_option(p, choices=("cuda",), help="cuda: the GPU protocol (must be explicit)")
    p.add_argument("--rehearse", action="store_true",
                   help="the same steps on the CPU at tiny sizes, every one run to completion (CI)")
    p.add_argument("--budget-s", type=float, default=None,
                   help=f"overall seconds on the GPU (default {BUDGET_S:.0f}); a rehearsal has no budget")
    p.add_argument("--out", type=Path, default=None, help="output folder (default $OUT, else results/bench/gpu-DATE)")
    p.add_argument("--data", type=Path, default=None, help="folder made by --prepare-data (default: the mirror)")
    p.add_argument("--prepare-data", type=Path, default=None, metavar="DIR",
                   help="copy the images the harness steps read into DIR (to carry to the GPU machine) and exit")
    p.add_argument("--only", default=None, help="comma-separated step names to run (default: all, in order)")
    return p


def _machine_info(device: str, rehearse: bool, budget_s: float) -> dict[str, Any]:
    """What the JSONL's first record and the summary say about this machine and run (notes are added later)."""
    import torch

    smi = nvidia_smi()
    info: dict[str, Any] = {"device": device, "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "torch": torch.__version__,
                            "commit": git_commit(), "budget_s": None if rehearse else budget_s,
                            "rehearsal": rehearse, "nvidia_smi": smi or "not available",
                            "device_name": gpu_name(smi) if device == "cuda" else "cpu (rehearsal)",
                            "cold_compile_allowance_s": COLD_COMPILE_S}
    info["c_compiler"] = c_compiler()
    return info


def _run_notes(rehearse: bool, no_compiler: str | None, vgg: str, data_why: str) -> list[str]:
    """The summary's notes on what makes this run's numbers differ from a full GPU run's."""
    notes: list[str] = []
    if rehearse:
        notes.append("rehearsal: every step runs to completion whatever the clock says (no budget); compiled steps "
                     "use torch.compile(backend='aot_eager') (Inductor compiles take 60-90 s per shape on a CPU); "
                     "numbers at tiny sizes are not comparable to any target")
    elif no_compiler:
        notes.append(f"{no_compiler}: the steps that compile (the compiled measurements and the harness runs, which "
                     "compile by default on CUDA) are skipped")
    if vgg == "random":
        notes.append("harness runs use --vgg-weights random (ImageNet VGG-16 weights not on this machine"
                     f"{'' if not rehearse else ', or a rehearsal'}): timings are unaffected; the Fig. 5 "
                     "objective values and PSNR are not the paper's")
    if data_why:
        notes.append(f"harness steps: {data_why}")
    return notes


def _skip_reasons(steps: Sequence[Step], no_compiler: str | None, data: dict[str, str] | None,
                  data_why: str) -> list[str]:
    """Per step, why it cannot run here ("" when it can): the reasons that do not depend on the clock, known before
    anything runs (so no minimum is reserved for them)."""
    reasons: list[str] = []
    for step in steps:
        reason = ""
        if step.compiled and no_compiler:
            reason = no_compiler
        elif step.needs_data and data is None:
            reason = data_why
        elif (mod := missing_module(step.requires)) is not None:
            reason = f"package {mod!r} missing: carry its wheel in .gpu/whl/"
        reasons.append(reason)
    return reasons


def _run_and_collect(step: Step, limit: float, logf: IO[str], work: Path, out: Path, jsonl: Path,
                     status: dict[str, dict[str, Any]]) -> None:
    """Run one step within `limit` seconds, record its status in `status` (before collecting, so an interrupted
    collect still shows that it ran) and append what it left to the JSONL."""
    print(f"[gpu_check {time.strftime('%H:%M:%S')}] {step.name} (limit {limit:.0f} s)", flush=True)
    status[step.name] = run_step(step, limit, logf)
    try:
        for r in collect(step, work, out):
            append_jsonl(jsonl, {"step": step.name, **r})
    except Exception as e:  # noqa: BLE001 - one unreadable result must not cost the later steps
        status[step.name]["reason"] = f"collecting its results failed: {type(e).__name__}: {e}"
        status[step.name]["status"] = "collect failed"
    print(f"[gpu_check] {step.name}: {status[step.name]['status']} after "
          f"{status[step.name]['seconds']} s", flush=True)


def _not_ok(status: dict[str, dict[str, Any]], rehearse: bool, only: str | None, jsonl: Path,
            sizes: Sizes) -> list[str]:
    """The steps (and, in a rehearsal, the targets) that make the run fail."""
    bad = [n for n, s in status.items() if s["status"] not in ("ok", "skipped")]
    if rehearse:  # CI: every step must run and pass at the tiny sizes, and every target have its record
        bad += [n for n, s in status.items() if s["status"] == "skipped"]
        rows = target_rows(read_jsonl(jsonl), status, False, sizes)[:len(TARGETS)]
        bad += [r["target"] for r in rows if r["value_s"] is None and not only]
    return bad


def main(argv: Sequence[str] | None = None) -> int:
    """Run the protocol's steps within the budget (or rehearse them on the CPU); 0 when every step ran ok or was
    skipped for a reason (in a rehearsal: when every step ran ok and every target has its record)."""
    args = _parser().parse_args(argv)
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
    budget_s = args.budget_s or BUDGET_S
    date = time.strftime("%Y-%m-%d")
    out = args.out or (Path(os.environ["OUT"]) if os.environ.get("OUT") else REPO / "results" / "bench" /
                       f"gpu-{date}{'-rehearsal' if args.rehearse else ''}")
    out.mkdir(parents=True, exist_ok=True)
    jsonl = out / JSONL
    jsonl.unlink(missing_ok=True)
    work = Path(os.environ.get("TMPDIR", "/tmp")) / f"gpu_check_{os.getpid()}"
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    info = _machine_info(device, args.rehearse, budget_s)
    no_compiler = None if args.rehearse else compiler_missing(info["c_compiler"])
    if args.rehearse:
        os.environ[COMPILE_BACKEND_ENV] = "aot_eager"
    data_root, data_why = data_folder(args.data)
    data = _data_paths(data_root) if data_root else None
    vgg = "imagenet" if (not args.rehearse and imagenet_vgg_available()) else "random"
    info["notes"] = _run_notes(args.rehearse, no_compiler, vgg, data_why)
    append_jsonl(jsonl, {"kind": "machine", **info})
    steps = plan(device, sizes, work, jsonl, data, vgg)
    if args.only:
        wanted = set(args.only.split(","))
        steps = [s for s in steps if s.name in wanted]
    status: dict[str, dict[str, Any]] = {}
    reasons = _skip_reasons(steps, no_compiler, data, data_why)
    runnable = [not r for r in reasons]
    logf = open(out / LOG, "w", encoding="utf-8")  # noqa: SIM115 - closed below; written by every step

    def write_summary() -> None:
        info["wall_s"] = time.monotonic() - t0
        _atomic_text(out / SUMMARY, summary_md(read_jsonl(jsonl), status, info, sizes))

    try:
        for i, step in enumerate(steps):
            reason = reasons[i]
            limit = REHEARSAL_STEP_LIMIT_S
            if not reason and not args.rehearse:
                left = budget_s - (time.monotonic() - t0) - RESERVE_S
                limit = limit_for(steps, i, left, runnable)
                if limit < step.min_s:
                    reason = f"budget: {max(limit, 0):.0f} s left for it, its minimum is {step.min_s:.0f} s"
            if reason:
                status[step.name] = {"status": "skipped", "reason": reason, "seconds": 0.0}
            else:
                _run_and_collect(step, limit, logf, work, out, jsonl, status)
            write_summary()
    finally:
        logf.close()
        write_summary()
        shutil.rmtree(work, ignore_errors=True)
    print((out / SUMMARY).read_text(encoding="utf-8"))
    bad = _not_ok(status, args.rehearse, args.only, jsonl, sizes)
    if bad:
        print(f"gpu_check: not ok: {', '.join(bad)}", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
