"""`python -m bench.style evaluate`: any stylizer network on the paper's Fig. 5 objective and Table 1 timing.

    python -m bench.style evaluate --model my_net.py:build --styles la_muse --sizes 256 512 --name NAME --out RUN
                                   [--compare REPRODUCE_RUN]

Nothing of the objective is re-implemented: the network takes the place of the suite's own in a `bench.style.harness.StyleRun`
built like the compared run. Bad input exits 2 with nothing written. Rows, images and checks: docs/own-methods.md.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any, Literal, cast

import torch
from torch import nn

from bench.run.errors import ArgumentError, RunFolderError
from bench.run.options import add_device_option, device_of
from bench.run.profiles import (
    PROFILE_NAMES,
    STYLE_PROFILES,
    StyleProfile,
    check_profile,
    default_profile,
)
from bench.run.provenance import command_line, environment
from bench.style.config import TASK, StyleSettings, image_size
from bench.style.harness import StyleRun
from bench.style.measures import match_statistics, mean_std, style_row
from bench.tools.model_loader import UserCodeError, build_model, call_user_network
from bench.tools.own_method import OutGuard, check_name, print_error
from data.files import atomic_write_json, plain
from perceptual.losses import LossWeights
from perceptual.nets import Variant
from perceptual.speed import time_forward
from reports.results import MEAN, RESULTS_FILE, gatys_trace_path, write_rows

log = logging.getLogger("bench.style.evaluate")

PROG = "python -m bench.style evaluate"


class ModelOutputError(ValueError):
    """The external stylizer returned something Eq. 5 cannot score (shape, channels, NaN)."""


def _check_output(y: Any, x: torch.Tensor, where: str) -> torch.Tensor:
    if not isinstance(y, torch.Tensor):
        raise ModelOutputError(f"{where}: returned {type(y).__name__}, expected a tensor of shape {tuple(x.shape)}")
    if tuple(y.shape) != tuple(x.shape):
        raise ModelOutputError(f"{where}: returned shape {tuple(y.shape)}, expected {tuple(x.shape)} (an RGB image "
                               f"in [0, 1] of the input's size)")
    if not torch.isfinite(y).all():
        raise ModelOutputError(f"{where}: returned {int((~torch.isfinite(y)).sum())} non-finite values (NaN/inf) in "
                               f"its {tuple(y.shape)} output")
    return y


class _Checked(nn.Module):
    """The user's network, with its output checked (the image being scored is named in the error)."""

    def __init__(self, net: nn.Module, spec: str):
        super().__init__()
        self.net, self.spec, self.image = net, spec, ""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        where = f"--model {self.spec} on {self.image} (input {tuple(x.shape)})"
        return _check_output(call_user_network(self.net, x, where), x, where)


def _style_name(style: str) -> str:
    return StyleRun.style_name(StyleRun.__new__(StyleRun), style)  # a pure function of its argument


def _settings_from_run(run_dir: Path, style: str, out: Path, device: str) -> tuple[StyleSettings, dict[str, Any]]:
    """The objective's settings of the reproduce run at `run_dir` (its run.json), for `style`."""
    path = run_dir / "run.json"
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise ArgumentError(f"--compare {run_dir}: no readable run.json ({e}); give a folder written by "
                            f"`python -m bench.style`") from None
    if info.get("task") != TASK or "identity" not in info:
        raise ArgumentError(f"--compare {run_dir} is not a style run of this suite (task {info.get('task')!r})")
    ident = info["identity"]
    fig5 = info.get("fig5") or {}
    if not fig5.get("sizes"):
        raise ArgumentError(f"--compare {run_dir} has no Fig. 5 results (its fig5 stage did not run)")
    name = _style_name(style)
    if _style_name(str(fig5.get("style", ""))) != name:
        raise ArgumentError(f"--compare {run_dir} ran Fig. 5 for style {fig5.get('style')!r}, not {style!r}")
    values = dict(ident.get("profile_values") or info.get("profile_values") or {})
    known = {f.name for f in fields(StyleProfile)}
    values = {k: (tuple(v) if isinstance(v, list) else v) for k, v in values.items() if k in known}
    p = StyleProfile(**values)
    weights = (info.get("loss_weights_per_style") or {}).get(name) or ident.get("weights") or {}
    spec = ((info.get("datasets") or {}).get("fig5") or {}).get("spec") or fig5.get("eval_set")
    s = StyleSettings(profile=str(ident.get("profile")), styles=[style], sizes=(), out=out,
                      variant=cast(Variant, str(ident.get("variant", "common"))),
                      seed=int(ident.get("seed", 0)), device=device,
                      weights=LossWeights(**weights), values=p, eval_set=str(spec),
                      crop=cast(Literal["center", "random"], str(ident.get("crop", "center"))),
                      style_size=ident.get("style_size"),
                      vgg_weights=cast(Literal["imagenet", "random"], str(ident.get("vgg_weights", "imagenet"))),
                      stages=())
    content = ((info.get("datasets") or {}).get("outputs") or {}).get("spec")
    if content:  # the images the compared run stylized: the report shows the two networks' outputs side by side
        s.content_set = str(content)
    return s, info


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Score a style-transfer network on the paper's objective (Eq. 5) over the Fig. 5 image set, "
                    "with the same loss weights the suite's own network uses, time its forward pass (Table 1), and "
                    "with --compare place it on a reproduce run's L-BFGS curves (iterations to match).")
    p.add_argument("--model", required=True, metavar="PATH.py:FACTORY",
                   help="PATH.py:FACTORY or package.module:FACTORY; FACTORY() returns an nn.Module mapping an RGB "
                        "batch in [0, 1] (N, 3, H, W) to a stylised batch of the same shape")
    p.add_argument("--weights", type=Path, default=None, help="a state dict to load (weights_only=True)")
    p.add_argument("--styles", nargs="+", default=["la_muse"],
                   help="the network's style (one): a catalog name or an image path (default la_muse)")
    p.add_argument("--sizes", nargs="+", type=image_size, default=None,
                   help="Fig. 5 image sizes (default: the --compare run's, else the profile's)")
    p.add_argument("--name", required=True, help="the method's name in results.csv and the report")
    p.add_argument("--out", type=Path, default=None, help="run folder (default runs/style/evaluate-<NAME>)")
    p.add_argument("--compare", type=Path, default=None, metavar="RUN_DIR",
                   help="a `python -m bench.style` run: use its objective settings and images, and its Gatys "
                        "traces for 'L-BFGS iterations to match'")
    p.add_argument("--profile", choices=PROFILE_NAMES, default=None,
                   help="without --compare: the profile whose settings (image count, style size) are used")
    add_device_option(p, what="the network and the loss network")
    p.add_argument("--overwrite", action="store_true", help="replace the run already in --out")
    p.add_argument("--no-report", action="store_true", help="do not build the HTML report")
    return p


def _traces(run_dir: Path, size: int, stems: Sequence[str]) -> dict[str, list[dict[str, float]]]:
    from baselines.gatys import read_trace

    traces, missing = {}, []
    for stem in stems:
        path = gatys_trace_path(run_dir, size, stem)
        if path.is_file():
            traces[stem] = read_trace(path)
        else:
            missing.append(str(path))
    if missing:
        raise ArgumentError(f"--compare {run_dir}: no Gatys trace at {size} px for {len(missing)} image(s) "
                            f"({', '.join(missing[:3])}); compare at the sizes that run has")
    return traces


def evaluate_main(argv: Sequence[str]) -> int:
    """`python -m bench.style evaluate ...`: 0 ok, 2 bad input (nothing written)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    args = build_parser().parse_args(list(argv))
    out = args.out if args.out is not None else Path("runs") / "style" / f"evaluate-{args.name}"
    guard: OutGuard | None = None
    try:
        name = check_name(args.name)
        if len(args.styles) != 1:
            raise ArgumentError(f"--styles {' '.join(args.styles)}: a stylizer network has one style; evaluate one "
                                f"at a time")
        style = args.styles[0]
        device = device_of(args)
        compare_info: dict[str, Any] = {}
        if args.compare is not None:
            settings, compare_info = _settings_from_run(args.compare, style, out, device)
            run_sizes = [int(k) for k in compare_info["fig5"]["sizes"]]
            sizes = tuple(args.sizes or run_sizes)
            bad = [s for s in sizes if s not in run_sizes]
            if bad:
                raise ArgumentError(f"--sizes {bad}: --compare {args.compare} ran Fig. 5 at {run_sizes} px only")
        else:
            profile = check_profile(args.profile or default_profile())
            settings = StyleSettings(profile=profile, styles=[style], sizes=(), out=out, variant="common", seed=0,
                                     device=device, weights=LossWeights(), values=STYLE_PROFILES[profile], stages=())
            sizes = tuple(args.sizes or STYLE_PROFILES[profile].sizes)
        settings.sizes = sizes
        settings.stages = ("fig5", "outputs")
        run = StyleRun(settings)
        run.check_inputs()  # style image, Fig. 5 and content images: decoded and hashed before anything is written
        net = _Checked(build_model(args.model, args.weights, device), args.model)
        guard = OutGuard(out, args.overwrite)
        rows, summary = _evaluate(run, net, name, style, sizes, args.compare, compare_info)
        outputs = _stylize_contents(run, net, style)
        guard.prepare()
        write_rows(out / RESULTS_FILE, rows)
        _save_outputs(run, style, name, outputs, out)
        doc = environment(device, settings.seed, "evaluate", command_line("bench.style", ("evaluate", *argv))) | {
            "task": TASK, "identity": {"task": TASK, "mode": "evaluate", "name": name, "style": style,
                                       "sizes": list(sizes), "model": args.model},
            "methods": [name], "evaluated": {"name": name, "kind": "model", "model": args.model,
                                             "weights": None if args.weights is None else str(args.weights)},
            "objective_settings": {"from": str(args.compare) if args.compare else f"profile {settings.profile}",
                                   "loss_weights": settings.weights.as_dict(), "style_size": settings.style_size
                                   or settings.values.train_size, "vgg_weights": settings.vgg_weights,
                                   "eval_set": settings.eval_set, "n_images": settings.values.n_images},
            "styles": {run.style_name(style): str(run.style_paths[style])}, "style_images": run.info["style_images"],
            "datasets": run.info["datasets"], "sizes": list(sizes), "fig5": summary,
            "stages": {f"evaluate:{s}": {"status": "ok", "wall_time_s": summary["sizes"][str(s)]["wall_time_s"],
                                         "error": None} for s in sizes},
            "notes": [(f"{name}: evaluated with `{PROG}` on the objective of "
                       f"{'run ' + str(args.compare) if args.compare else 'the ' + settings.profile + ' profile'} "
                       f"(no training in this run)")],
        }
        atomic_write_json(out / "run.json", plain(doc))
        if not args.no_report:
            try:
                from reports.build import build_report

                build_report([out], None, out / "report")
            except Exception as e:  # noqa: BLE001 - the results are on disk; the report can be rebuilt
                log.warning("report not built (%s); rebuild with `python -m reports.build %s`", e, out)
        _print(name, sizes, summary, out)
        return 0
    except (UserCodeError, ModelOutputError, RunFolderError, ArgumentError, ValueError, FileNotFoundError,
            PermissionError) as e:
        return print_error(PROG, e)


def _evaluate(run: StyleRun, net: _Checked, name: str, style: str, sizes: Sequence[int], compare: Path | None,
              compare_info: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Rows and summary for every size (computed before anything is written)."""
    s = run.cfg
    run.networks[style] = net  # type: ignore[assignment]  # the external network takes the suite's network's place
    rows: list[dict[str, Any]] = []
    summary: dict[str, Any] = {"style": style, "eval_set": s.eval_set, "sizes": {}}
    for size in sizes:
        t0 = time.perf_counter()
        images = run.load_eval_images(s.eval_set, s.values.n_images, size, square=True)
        values: dict[str, float] = {}
        for stem, x in images:
            net.image = f"{s.eval_set}/{stem} at {size} px"
            values[stem] = run.network_objective(style, x.to(run.device))[0]["total"]
        rows += [style_row(size, name, k, "objective", v) for k, v in values.items()]
        mean, std = mean_std(list(values.values()))
        rows += [style_row(size, name, MEAN, "objective", mean), style_row(size, name, MEAN, "objective_std", std)]
        x = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(s.seed)).to(run.device)
        net.image = f"a random {size} px image (timing)"
        ff = time_forward(net, x, warmup=3, repeats=s.values.feedforward_repeats)
        rows.append(style_row(size, name, MEAN, "seconds", ff.median_s))
        entry: dict[str, Any] = {"images": list(values), "objective_mean": mean, "feedforward": ff.as_dict()}
        if compare is not None:
            m = match_statistics(_traces(compare, size, list(values)), values)
            for k, (it, sec) in m["per_image"].items():
                rows += [style_row(size, name, k, "iters_to_match", it),
                         style_row(size, name, k, "seconds_to_match", sec)]
            rows += [style_row(size, name, MEAN, "iters_to_match", m["mean"][0]),
                     style_row(size, name, MEAN, "seconds_to_match", m["mean"][1])]
            never = not math.isfinite(m["mean"][0])
            theirs = compare_info["fig5"]["sizes"].get(str(size), {})
            entry |= {"iters_to_match_mean": None if never else m["mean"][0],
                      "seconds_to_match_mean": None if never else m["mean"][1],
                      "match": (f"never within {m['iterations']} iterations" if never
                                else f"iteration {m['mean'][0]} ({m['mean'][1]:.3g} s)"),
                      "compared_run": str(compare), "compared_network_mean": theirs.get("network_mean"),
                      "compared_match": theirs.get("match")}
        entry["wall_time_s"] = round(time.perf_counter() - t0, 3)
        summary["sizes"][str(size)] = entry
    return rows, summary


def _stylize_contents(run: StyleRun, net: _Checked, style: str) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    """(stem, content, output) for the content images a reproduce run's `outputs` stage stylizes (same size)."""
    s = run.cfg
    out = []
    for stem, x in run.load_eval_images(s.content_set, s.values.n_outputs, s.values.output_size, square=False):
        net.image = f"{s.content_set}/{stem} at {s.values.output_size} px (outputs for the report)"
        try:
            _, y = run.network_objective(style, x.to(run.device))
        except (ModelOutputError, RuntimeError, ValueError) as e:  # the scores stand; only the pictures are missing
            log.warning("no output image of %s for the report: %s", stem, e)
            continue
        out.append((stem, x, y.detach().cpu()))
    return out


def _save_outputs(run: StyleRun, style: str, name: str, outputs: list[tuple[str, torch.Tensor, torch.Tensor]],
                  out: Path) -> None:
    from data.images import save_image

    folder = out / "images" / "style" / run.style_name(style)
    save_image(run.style_image(style), folder / "style.png")
    for stem, x, y in outputs:
        save_image(x, folder / f"{stem}_content.png")
        save_image(y, folder / f"{stem}_{name}.png")


def _print(name: str, sizes: Sequence[int], summary: dict[str, Any], out: Path) -> None:
    lines = [f"{name} on the paper's objective (Eq. 5, style {summary['style']}), in {out}:"]
    for size in sizes:
        e = summary["sizes"][str(size)]
        line = (f"  {size:5d} px  objective {e['objective_mean']:.4g} over {len(e['images'])} images  "
                f"forward {e['feedforward']['median_s'] * 1e3:.1f} ms")
        if "match" in e:
            line += f"  L-BFGS to match: {e['match']} (the run's own network: {e['compared_match']})"
        lines.append(line)
    print("\n".join(lines), flush=True)


if __name__ == "__main__":
    sys.exit(evaluate_main(sys.argv[1:]))
