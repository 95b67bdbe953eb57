"""Synthetic run folders that follow the results contract, for testing the report builder without the harnesses.

Each writer puts into a folder what a real run writes: results.csv (long form, per-image rows and `__mean__` rows
that are the means of them), run.json (bench.run.provenance-like fields plus task, corpus, iterations, stages, variant,
loss weights), logs/train_<name>.csv, traces/gatys_<size>_<image>.csv, images/sr/... and images/style/..., and a
pytest-benchmark JSON. Numbers are drawn from a seeded generator around plausible values, so every test knows them
only by reading the files back, as the report must.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

SR_IMAGES = {
    "Set5": ["baby", "bird", "butterfly", "head", "woman"],
    "Set14": ["baboon", "barbara", "bridge", "coastguard", "comic", "face", "flowers", "foreman", "lenna", "man",
              "monarch", "pepper", "ppt3", "zebra"],
    "BSD100": [f"{i:06d}" for i in range(100)],
}
BICUBIC_X4 = {"Set5": (28.42, 0.8104), "Set14": (26.00, 0.7027), "BSD100": (25.96, 0.6675)}
SR_METHODS = ("bicubic", "srcnn", "johnson_pixel", "johnson_pixel_histmatch", "johnson_feat", "johnson_feat_histmatch")
# offsets from bicubic (dB, SSIM, LPIPS): SRCNN and ours-pixel gain PSNR, ours-feat loses PSNR but wins LPIPS
OFFSETS = {"bicubic": (0.0, 0.0, 0.0), "srcnn": (1.6, 0.045, -0.05), "johnson_pixel": (0.9, 0.03, -0.03),
           "johnson_pixel_histmatch": (0.8, 0.028, -0.03), "johnson_feat": (-0.6, -0.02, -0.15),
           "johnson_feat_histmatch": (-0.9, -0.03, -0.14)}
FIELDS = ["task", "dataset", "scale", "method", "image", "metric", "value"]


def _write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def run_json(*, task: str, profile: str, device: str, corpus: tuple[str, int] | None, stages: dict,
             seed: int = 0, iterations: dict | None = None, variant: str = "common",
             eval_protocol: str | None = None) -> dict:
    """run.json as bench.run.provenance.environment(...) plus the contract's task fields (`eval_protocol` only when given:
    runs made before that key existed have none)."""
    extra = {} if eval_protocol is None else {"eval_protocol": eval_protocol}
    return {**extra,
        "argv": ["bench/" + task + ".py", "--profile", profile], "profile": profile, "seed": seed, "device": device,
        "device_name": "NVIDIA H100 80GB HBM3" if device.startswith("cuda") else "cpu (x86_64, 2 threads)",
        "versions": {"torch": "2.14.1", "torchvision": "0.29.1", "numpy": "2.3.0", "python": "3.11.7"},
        "git": {"commit": "0123456789abcdef0123456789abcdef01234567", "dirty": False},
        "date": "2026-11-26T18:00:00+0000", "host": "testhost", "task": task,
        "corpus": None if corpus is None else {"name": corpus[0], "path": f"/data/{corpus[0]}", "n_images": corpus[1]},
        "iterations": iterations or {}, "stages": stages, "variant": variant,
        "loss_weights": {"content": 1.0, "style": 5.0, "tv": 1e-5},
    }


def _pattern(h: int, w: int, seed: int) -> Image.Image:
    """A textured test image (stripes, rings and a checker patch) so crops have detail to compare."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    r = np.sin(x / (3 + seed % 4)) * 0.5 + 0.5
    g = np.cos(np.hypot(x - w * 0.6, y - h * 0.4) / 2.5) * 0.5 + 0.5
    b = ((x // 6 + y // 6) % 2).astype(np.float32) * (x > w / 2)
    img = np.stack([r, g, b], -1) * 0.8 + rng.random((h, w, 3)) * 0.2
    return Image.fromarray((img * 255).astype(np.uint8))


def write_sr_run(root: Path, *, profile: str = "quick", device: str = "cpu", scales: tuple[int, ...] = (4,),
                 datasets: dict[str, int] | None = None, methods: tuple[str, ...] = SR_METHODS,
                 image_datasets: tuple[str, ...] = ("Set5",), failed_stage: str | None = None,
                 bicubic_offset: tuple[float, float] = (0.004, 0.0003), seed: int = 0,
                 corpus: tuple[str, int] | None = ("coco_train2017", 208), write_info: bool = True,
                 log_iters: int = 60, eval_protocol: str | None = None) -> Path:
    """An SR run folder; `datasets` maps name -> how many of its images were evaluated (default: all of Set5/14)."""
    rng = np.random.default_rng(seed)
    datasets = datasets or {"Set5": 5, "Set14": 14}
    rows = []
    for scale in scales:
        for dataset, n in datasets.items():
            names = SR_IMAGES.get(dataset, [f"img{i}" for i in range(n)])[:n]
            base_p, base_s = BICUBIC_X4.get(dataset, (27.0, 0.75))
            if scale == 8:
                base_p, base_s = base_p - 4.0, base_s - 0.14
            noise_p = rng.normal(0, 1.5, n)
            noise_s = rng.normal(0, 0.03, n)
            noise_p -= noise_p.mean()
            noise_s -= noise_s.mean()
            for method in methods:
                if method == "srcnn" and scale != 4:
                    continue
                dp, ds, dl = OFFSETS.get(method, (0.0, 0.0, 0.0))
                if method == "bicubic":
                    dp, ds = bicubic_offset
                per = {"psnr_y": base_p + dp + noise_p + rng.normal(0, 0.05, n),
                       "ssim_y": np.clip(base_s + ds + noise_s + rng.normal(0, 0.002, n), 0, 1),
                       "lpips_vgg": np.clip(0.35 + dl + rng.normal(0, 0.02, n), 0, 1),
                       "lpips_alex": np.clip(0.28 + dl + rng.normal(0, 0.02, n), 0, 1)}
                if method == "bicubic":
                    for m, target in (("psnr_y", base_p + dp), ("ssim_y", base_s + ds)):
                        per[m] = per[m] - per[m].mean() + target
                for metric, values in per.items():
                    for name, v in zip(names, values):
                        rows.append(["sr", dataset, scale, method, name, metric, repr(float(v))])
                    rows.append(["sr", dataset, scale, method, "__mean__", metric, repr(float(np.mean(values)))])
            if dataset in image_datasets:
                for i, name in enumerate(names):
                    folder = root / "images" / "sr" / f"x{scale}" / dataset
                    folder.mkdir(parents=True, exist_ok=True)
                    hr = _pattern(72, 96, seed + i)
                    hr.save(folder / f"{name}_hr.png")
                    for k, method in enumerate(methods):
                        if method == "srcnn" and scale != 4:
                            continue
                        hr.filter(ImageFilter.GaussianBlur(2.5 - 0.35 * k)).save(folder / f"{name}_{method}.png")
    _write_csv(root / "results.csv", FIELDS, rows)
    stages = {f"train_{m}_x{s}": {"wall_time_s": 12.5, "status": "ok", "error": None}
              for s in scales for m in ("srcnn", "pixel", "feat")}
    stages["evaluate"] = {"wall_time_s": 40.0, "status": "ok", "error": None}
    if failed_stage:
        stages[failed_stage] = {"wall_time_s": 1.0, "status": "failed", "error": "RuntimeError: out of memory"}
    for s in scales:
        for net, terms in (("srcnn", ["pixel"]), ("pixel", ["pixel"]), ("feat", ["feat", "tv"])):
            if net == "srcnn" and s != 4:
                continue
            it = np.arange(0, log_iters * 10, 10)
            loss = {t: 0.5 * np.exp(-it / (log_iters * 4)) + 0.01 + rng.random(len(it)) * 0.005 for t in terms}
            total = sum(loss.values())
            _write_csv(root / "logs" / f"train_{net}_x{s}.csv", ["iteration", "wall_time_s", "total", *terms],
                       [[int(i), round(0.05 * i + 0.3, 4), float(tv), *(float(loss[t][j]) for t in terms)]
                        for j, (i, tv) in enumerate(zip(it, total))])
    if write_info:
        info = run_json(task="sr", profile=profile, device=device, corpus=corpus, stages=stages, seed=seed,
                        iterations={"sr": 200_000 if profile == "paper" else 200}, eval_protocol=eval_protocol)
        (root / "run.json").write_text(json.dumps(info, indent=2))
    return root


def write_style_run(root: Path, *, profile: str = "quick", device: str = "cpu", sizes: tuple[str, ...] = ("256",),
                    contents: tuple[str, ...] = ("chicago", "amber", "000000000139"), style: str = "la_muse",
                    iters: int = 120, match_at: int | None = 70, seed: int = 1,
                    corpus: tuple[str, int] | None = ("coco_train2017", 208), speedup_scale: float = 1.0,
                    extrapolated: tuple[int, ...] = ()) -> Path:
    """A style run folder: Fig. 5 rows and traces, Table 1 rows, outputs and the style image.

    `extrapolated` lists the L-BFGS iteration counts (300, 500) whose seconds the harness could not measure because
    its traces were shorter: those rows are written as seconds_extrapolated (and the speedup as ratio_extrapolated).
    `match_at=None` makes the network's objective lower than anything L-BFGS reaches (iterations to match: inf)."""
    rng = np.random.default_rng(seed)
    rows = []
    it = np.arange(0, iters + 1)
    for size in sizes:
        px = int(size)
        net_obj, iters_match, secs_match, finals, content_obj = [], [], [], [], []
        for c in contents:
            scale = 1e5 * (1 + rng.random())
            total = scale * (0.05 + np.exp(-it / 25.0))
            per_iter = 0.02 * (px / 256) ** 2
            wall = np.cumsum(np.full(len(it), per_iter)) + rng.random(len(it)) * 1e-4
            content_part = total * 0.3
            style_part = total * 0.65
            tv_part = total - content_part - style_part
            _write_csv(root / "traces" / f"gatys_{size}_{c}.csv",
                       ["iteration", "wall_time_s", "total", "content", "style", "tv"],
                       [[int(i), float(w), float(t), float(a), float(b), float(d)]
                        for i, w, t, a, b, d in zip(it, wall, total, content_part, style_part, tv_part)])
            net = float(total[match_at] * (1 + 0.01 * rng.random())) if match_at is not None else \
                float(total[-1] * (0.5 + 0.01 * rng.random()))
            k = int(np.argmax(total <= net)) if (total <= net).any() else float("inf")
            net_obj.append(net)
            iters_match.append(k)
            secs_match.append(float(wall[k]) if np.isfinite(k) else float("inf"))
            finals.append(float(total[-1]))
            content_obj.append(float(total[0] * 1.3))
            for method, metric, v in (("johnson_network", "objective", net), ("content_image", "objective",
                                      total[0] * 1.3), ("gatys_lbfgs", "objective_final", total[-1]),
                                      ("gatys_lbfgs", "iters_to_match", k),
                                      ("gatys_lbfgs", "seconds_to_match", secs_match[-1])):
                rows.append(["style", size, "", method, c, metric, repr(float(v))])
        means = (("johnson_network", "objective", np.mean(net_obj)),
                 ("johnson_network", "objective_std", np.std(net_obj)),
                 ("content_image", "objective", np.mean(content_obj)),
                 ("gatys_lbfgs", "objective_final", np.mean(finals)),
                 ("gatys_lbfgs", "objective_std", np.std(finals)),
                 ("gatys_lbfgs", "iters_to_match", np.mean(iters_match)),
                 ("gatys_lbfgs", "seconds_to_match", np.mean(secs_match)))
        for method, metric, v in means:
            rows.append(["style", size, "", method, "__mean__", metric, repr(float(v))])
        per100 = 0.6 * (px / 256) ** 2 * (1 + 0.05 * rng.random())
        ff = per100 * 5 / (1000 * speedup_scale)
        for n in (100, 300, 500):
            metric = "seconds_extrapolated" if n in extrapolated else "seconds"
            rows.append(["style", size, "", f"gatys_lbfgs_{n}", "__mean__", metric, repr(per100 * n / 100)])
        rows.append(["style", size, "", "johnson_feedforward", "__mean__", "seconds", repr(ff)])
        rows.append(["style", size, "", "speedup_vs_500", "__mean__",
                     "ratio_extrapolated" if 500 in extrapolated else "ratio", repr(per100 * 5 / ff)])
    _write_csv(root / "results.csv", FIELDS, rows)
    folder = root / "images" / "style" / style
    folder.mkdir(parents=True, exist_ok=True)
    _pattern(96, 128, seed + 50).save(folder / "style.png")
    for i, c in enumerate(contents):
        base = _pattern(96, 96, seed + i)
        base.save(folder / f"{c}_content.png")
        base.filter(ImageFilter.EDGE_ENHANCE_MORE).save(folder / f"{c}_network.png")
        base.filter(ImageFilter.CONTOUR).save(folder / f"{c}_gatys.png")
    it_log = np.arange(0, 400, 20)
    _write_csv(root / "logs" / f"train_{style}.csv", ["iteration", "wall_time_s", "total", "content", "style", "tv"],
               [[int(i), 0.2 * i, float(3 * np.exp(-i / 100) + 1), float(np.exp(-i / 100)),
                 float(2 * np.exp(-i / 100) + 0.9), 0.1] for i in it_log])
    stages = {"train": {"wall_time_s": 80.0, "status": "ok", "error": None},
              "fig5": {"wall_time_s": 30.0, "status": "ok", "error": None},
              "table1": {"wall_time_s": 20.0, "status": "ok", "error": None}}
    info = run_json(task="style", profile=profile, device=device, corpus=corpus, stages=stages, seed=seed,
                    iterations={"style": 40_000 if profile == "paper" else 400, "lbfgs": iters})
    (root / "run.json").write_text(json.dumps(info, indent=2))
    return root


def set_mean(root: Path, *, dataset: str, scale: int | str, method: str, metric: str, value: float) -> None:
    """Shift one method's per-image values so that their mean (and the `__mean__` row) becomes `value`."""
    path = root / "results.csv"
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    header, body = rows[0], rows[1:]
    key = (dataset, str(scale), method, metric)
    chosen = [r for r in body if (r[1], r[2], r[3], r[5]) == key]
    per_image = [r for r in chosen if r[4] != "__mean__"]
    assert per_image, f"no per-image rows for {key} in {path}"
    shift = float(value) - float(np.mean([float(r[6]) for r in per_image]))
    for r in per_image:
        r[6] = repr(float(float(r[6]) + shift))
    for r in chosen:
        if r[4] == "__mean__":
            r[6] = repr(float(np.mean([float(x[6]) for x in per_image])))
    _write_csv(path, header, body)


def set_style_value(root: Path, *, size: str, method: str, metric: str, value: float) -> None:
    """Overwrite one style `__mean__` value (timings: the harness writes only the mean)."""
    path = root / "results.csv"
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    hits = [r for r in rows[1:] if (r[1], r[3], r[4], r[5]) == (size, method, "__mean__", metric)]
    assert len(hits) == 1, f"{(size, method, metric)}: {len(hits)} rows in {path}"
    hits[0][6] = repr(float(value))
    _write_csv(path, rows[0], rows[1:])


def add_table1_paths(root: Path, *, own: str = "fast", other_factor: float = 3.0,
                     other_extrapolated: tuple[int, ...] = (300, 500)) -> None:
    """Append the rows a style run that timed both execution paths writes: `<method>_<path>` for Table 1's methods.

    The run's own path (`own`) repeats its unsuffixed rows; the other path is `other_factor` times slower, and its
    L-BFGS counts in `other_extrapolated` are written as seconds_extrapolated (the harness runs it shorter). run.json
    gets the harness's `table1.paths` note and `table1.sizes.<size>.paths`."""
    path = root / "results.csv"
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    header, body = rows[0], rows[1:]
    table1 = [r for r in body if r[0] == "style" and r[4] == "__mean__"
              and (r[3] in ("johnson_feedforward", "speedup_vs_500") or r[3].startswith("gatys_lbfgs_"))]
    assert table1, f"no Table 1 rows in {path}"
    other = "reference" if own == "fast" else "fast"
    sizes: dict = {}
    for r in table1:
        size, method, metric, value = r[1], r[3], r[5], float(r[6])
        body.append([*r[:3], f"{method}_{own}", r[4], metric, repr(value)])
        base = metric.removesuffix("_extrapolated")
        if method.startswith("gatys_lbfgs_"):
            n = int(method.rsplit("_", 1)[1])
            metric = f"{base}_extrapolated" if n in other_extrapolated else base
            value = value * other_factor
        elif method == "speedup_vs_500":
            metric = f"{base}_extrapolated" if 500 in other_extrapolated else base
        else:  # feed-forward
            value = value * other_factor
        body.append([*r[:3], f"{method}_{other}", r[4], metric, repr(value)])
        sizes.setdefault(size, {"paths": {own: {}, other: {}}})
    _write_csv(path, header, body)
    info = json.loads((root / "run.json").read_text())
    info["table1"] = {"paths": f"both paths timed: rows <method>_<path> (fast, reference); the unsuffixed rows are "
                               f"the run's own path ({own})", "sizes": sizes}
    (root / "run.json").write_text(json.dumps(info, indent=2))


def write_bench_json(path: Path, *, device: str = "cpu", sizes: tuple[int, ...] = (256, 512, 1024)) -> Path:
    """pytest-benchmark JSON with style-forward benchmarks (reference and fast path) at several sizes."""
    benchmarks = []
    for path_kind, speed in (("reference", 1.0), ("fast", 1.6)):
        for size in sizes:
            # a fixed per-call overhead makes small images less efficient, as on real devices
            median = (0.004 + 0.05 * (size / 256) ** 2) / speed
            benchmarks.append({
                "group": f"style_forward-{size}", "name": f"test_style_forward[{size}-{path_kind}]",
                "fullname": f"bench/test_speed.py::test_style_forward[{size}-{path_kind}]",
                "params": {"size": size, "path": path_kind}, "param": f"{size}-{path_kind}",
                "extra_info": {"device": device, "device_name": f"{device} test device", "dtype": "float32",
                               "torch": "2.14.1", "image_size": size, "pixels_per_s": size * size / median,
                               "gflops": 20.0 * (size / 256) ** 2 / median},
                "options": {"disable_gc": False, "timer": "perf_counter", "min_rounds": 5, "max_time": 1.0,
                            "min_time": 5e-06, "warmup": True},
                "stats": {"min": median * 0.95, "max": median * 1.1, "mean": median * 1.01, "stddev": median * 0.02,
                          "rounds": 7, "median": median, "iqr": median * 0.03, "q1": median * 0.99,
                          "q3": median * 1.02, "iqr_outliers": 0, "stddev_outliers": 1, "outliers": "1;0",
                          "ld15iqr": median * 0.95, "hd15iqr": median * 1.1, "ops": 1 / median,
                          "total": median * 7, "iterations": 1},
            })
    doc = {"machine_info": {"node": "testhost", "processor": "x86_64", "machine": "x86_64",
                            "python_implementation": "CPython", "python_version": "3.11.7",
                            "cpu": {"brand_raw": "Test CPU"}},
           "commit_info": {"id": "0123456789abcdef", "dirty": False}, "benchmarks": benchmarks,
           "datetime": "2026-11-26T18:00:00", "version": "5.3.1"}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2))
    return path


def set_mean_exact(root: Path, *, dataset: str, scale: int | str, method: str, metric: str, value: float) -> None:
    """Like `set_mean`, then the `__mean__` row written as exactly `value` (edge tests need binary-exact numbers)."""
    set_mean(root, dataset=dataset, scale=scale, method=method, metric=metric, value=value)
    path = root / "results.csv"
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    hits = [r for r in rows[1:] if (r[1], r[2], r[3], r[4], r[5]) == (dataset, str(scale), method, "__mean__", metric)]
    assert len(hits) == 1, f"{(dataset, scale, method, metric)}: {len(hits)} mean rows in {path}"
    hits[0][6] = repr(float(value))
    _write_csv(path, rows[0], rows[1:])


def write_seeds(root: Path, values: dict[tuple[str, str, str, str], list[float]]) -> None:
    """Make `root` a multi-seed run: seeds.csv holds `values` per (dataset, scale, method, metric) in seed order,
    results.csv's mean row of each is their mean (exact when the values are), run.json gets `seeds`."""
    n = {len(v) for v in values.values()}
    assert len(n) == 1, "every value needs the same number of seeds"
    rows = []
    for (dataset, scale, method, metric), vals in values.items():
        mean = sum(vals) / len(vals)
        set_mean_exact(root, dataset=dataset, scale=scale, method=method, metric=metric, value=mean)
        rows.append(["sr", dataset, str(scale), method, "__mean__", metric, len(vals), repr(mean),
                     repr(float(np.std(vals))), repr(min(vals)), repr(max(vals)), ";".join(repr(float(v)) for v in vals)])
    _write_csv(root / "seeds.csv", ["task", "dataset", "scale", "method", "image", "metric", "n", "mean", "std", "min",
                                    "max", "values"], rows)
    update_run_json(root, seeds=list(range(n.pop())))


def write_trend(root: Path, points: list[tuple[int, float | None]], *, size: str = "128", lbfgs: int = 100) -> None:
    """trend.csv: (training iterations, L-BFGS iterations to match or None = not matched within `lbfgs`)."""
    _write_csv(root / "trend.csv", ["size", "train_iterations", "network_objective", "iters_to_match",
                                    "lbfgs_iterations"],
               [[size, t, 100.0 / (1 + i), "" if m is None else m, lbfgs] for i, (t, m) in enumerate(points)])


def update_run_json(root: Path, **fields) -> None:
    """Add or replace top-level fields of run.json."""
    path = root / "run.json"
    info = json.loads(path.read_text())
    info.update(fields)
    path.write_text(json.dumps(info, indent=1))
