"""`python -m bench.sr evaluate`: score a folder of SR outputs, or any network, exactly as the suite's own methods.

    python -m bench.sr evaluate --outputs DIR --scale 4 --datasets Set5 Set14 BSD100 --name NAME --out RUN
    python -m bench.sr evaluate --model my_net.py:build --weights w.pt --scale 4 --name NAME --out RUN

Scoring is not re-implemented: the method is one more `bench.sr.harness.SRMethod` for the harness's own `SRHarness.evaluate`.
Everything is checked before --out is touched (exit status 2, nothing written). Checks in full: docs/own-methods.md.
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from bench.metrics import to_uint8
from bench.run.errors import ArgumentError, RunFolderError
from bench.run.errors import naming_option as _argument
from bench.run.options import (
    add_device_option,
    add_eval_protocol_option,
    add_lpips_options,
    add_output_options,
    add_save_images_option,
    device_of,
    lpips_of,
    positive_int,
)
from bench.run.profiles import LPIPS_NETS, SR_PROFILES, with_overrides
from bench.sr.config import SCALES, TASK, SRRunConfig
from bench.sr.harness import SRHarness, SRMethod
from bench.tools.model_loader import UserCodeError, build_model, call_user_network, load_state_dict_file
from bench.tools.own_method import OutGuard, check_name, print_error
from data.checks import FolderCheckError, ImageProblem, check_eval_images, modcropped_size
from data.files import HashMismatchError
from data.images import ImageError, ImageInfo, check_decodable, load_image_uint8, save_image
from reports.results import MEAN, RESULTS_FILE, ResultsTable

log = logging.getLogger("bench.sr.evaluate")

PROG = "python -m bench.sr evaluate"
DEFAULT_DATASETS = ("Set5", "Set14", "BSD100")
OUTPUT_EXTENSIONS = (".png", ".bmp", ".jpg", ".jpeg", ".tif", ".tiff")
SKIP_FIX = ("Fix or remove these files, or pass --skip-unreadable to score the rest (what is skipped is listed in "
            "the log, run.json and the report, and each mean says over how many images it is)")


class ModelOutputError(ValueError):
    """The evaluated network returned something the protocol cannot score (shape, channels, NaN)."""


# ------------------------------------------------------------------------------------------------- the plan


@dataclass
class EvalPlan:
    """Everything checked up front: what is scored, where the outputs are, what was skipped and converted."""

    name: str
    scale: int
    datasets: dict[str, list[Path]]
    totals: dict[str, int]
    hr_info: dict[Path, ImageInfo]
    source: dict[str, Any]
    outputs: dict[tuple[str, str], Path] = field(default_factory=dict)
    skipped: list[dict[str, str]] = field(default_factory=list)
    conversions: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def identity(self) -> dict[str, Any]:
        return {"task": TASK, "mode": "evaluate", "name": self.name, "scale": self.scale,
                "datasets": list(self.datasets), "source": self.source}

    def over(self, dataset: str) -> str:
        n, m = len(self.datasets[dataset]), self.totals[dataset]
        return f"over {n} of {m} images" if n != m else f"over all {m} images"


def resolve_datasets(specs: Sequence[str], scale: int, skip: bool
                     ) -> tuple[dict[str, list[Path]], dict[str, int], dict[Path, ImageInfo], list[tuple[str, ImageProblem]]]:
    """Every evaluation set resolved and every file checked (one FolderCheckError with all problems unless skip)."""
    from data.fetch import resolve_images

    datasets: dict[str, list[Path]] = {}
    totals: dict[str, int] = {}
    infos: dict[Path, ImageInfo] = {}
    problems: list[tuple[str, ImageProblem]] = []
    for spec in specs:
        with _argument("--datasets", spec):
            label, files = resolve_images(spec)
            if label in datasets:
                raise ArgumentError(f"--datasets names {label!r} twice; give each evaluation set once")
        files = sorted(files, key=lambda p: p.name)
        found, bad = check_eval_images(files, scale)
        infos.update(found)
        problems += [(label, b) for b in bad]
        datasets[label] = [f for f in files if f in found]
        totals[label] = len(files)
    if problems and not skip:
        raise FolderCheckError([b for _, b in problems], "the evaluation sets (--datasets)", SKIP_FIX)
    return datasets, totals, infos, problems


def _size_fix(out: tuple[int, int], hr: tuple[int, int], want: tuple[int, int], scale: int) -> str:
    if out == hr:
        return (f"it is the HR size before modcrop: the protocol scores the HR cropped at the bottom/right to a "
                f"multiple of {scale} ({want[0]}x{want[1]}); upscale the LR of that crop, or crop your output to "
                f"{want[0]}x{want[1]}")
    if all(abs(o - w) < 2 * scale for o, w in zip(out, want)):
        return (f"off by a few pixels: save the output at exactly {want[0]}x{want[1]} (x{scale} of the LR made from "
                f"the modcropped HR)")
    return f"save each output at the modcropped HR size ({want[0]}x{want[1]} here)"


def index_outputs(folder: Path, plan: EvalPlan, skip: bool) -> list[ImageProblem]:
    """Map every scored image to its output file in FOLDER/<dataset>/<stem>.<ext>; check each one up front."""
    if not folder.is_dir():
        raise ArgumentError(f"--outputs {folder} is not a folder; it must hold <dataset>/<image stem>.png (or .bmp, "
                            f".jpg, .tif) for every image of {', '.join(plan.datasets)}")
    problems: list[ImageProblem] = []
    for label, files in plan.datasets.items():
        sub = folder / label
        candidates: dict[str, list[Path]] = {}
        if sub.is_dir():
            for p in sorted(sub.iterdir()):
                if p.is_file() and p.suffix.lower() in OUTPUT_EXTENSIONS and not p.name.startswith("."):
                    candidates.setdefault(p.stem, []).append(p)
                elif not p.name.startswith("."):
                    plan.warnings.append(f"ignored {p}: not an image output (.png .bmp .jpg .jpeg .tif .tiff)")
        stems = {f.stem for f in files}
        for stem in sorted(set(candidates) - stems):
            plan.warnings.append(f"ignored {', '.join(map(str, candidates[stem]))}: {label} has no image {stem!r}")
        for f in list(files):
            info = plan.hr_info[f]
            want = modcropped_size(info.width, info.height, plan.scale)
            found = candidates.get(f.stem, [])
            if not found:
                where = f"{sub}/{f.stem}.png (or .bmp/.jpg/.tif)"
                problems.append(ImageProblem(sub / f.stem, "missing", (
                    f"no output for {label} image {f.stem!r}: expected {where} of {want[0]}x{want[1]} px (the HR "
                    f"{info.width}x{info.height} modcropped to a multiple of {plan.scale})"
                    + ("" if sub.is_dir() else f"; the folder {sub} does not exist"))))
                continue
            if len(found) > 1:
                problems.append(ImageProblem(found[0], "ambiguous", (
                    f"{len(found)} outputs for {label} image {f.stem!r} ({', '.join(p.name for p in found)}); keep "
                    f"one")))
                continue
            path = found[0]
            try:
                out_info = check_decodable(path)
            except ImageError as e:
                problems.append(ImageProblem(path, "unreadable", e.reason + (f" ({e.fix})" if e.fix else "")))
                continue
            got = (out_info.width, out_info.height)
            if got != want:
                problems.append(ImageProblem(path, "size", (
                    f"is {got[0]}x{got[1]} px, but the modcropped HR of {label}/{f.name} is {want[0]}x{want[1]} px "
                    f"(HR {info.width}x{info.height}, x{plan.scale}): {_size_fix(got, (info.width, info.height), want, plan.scale)}")))
                continue
            for note in out_info.notes:
                plan.conversions.append(f"{path}: {note}")
            if out_info.bits == 16 and not any("16-bit" in n for n in out_info.notes):
                plan.conversions.append(f"{path}: 16-bit reduced to 8 bits (round(v * 255 / 65535))")
            if out_info.is_grayscale and not info.is_grayscale:
                plan.conversions.append(f"{path}: gray output replicated to RGB (its ground truth is colour)")
            plan.outputs[(label, f.stem)] = path
    fatal = [p for p in problems if p.kind not in ("unreadable",) or not skip]
    if fatal:
        raise FolderCheckError(problems, f"--outputs {folder}",
                               "Fix the output folder (one file per image, named after the image, at the modcropped "
                               "HR size)" + ("" if skip else "; unreadable files can be skipped with "
                                             "--skip-unreadable"))
    return problems


# ------------------------------------------------------------------------------------------------ methods


class NamedMethod(SRMethod):
    """An SRMethod whose one output is called NAME (bench.sr.harness.SRMethod takes its names from the built-in METHODS)."""

    def __init__(self, name: str, scale: int, harness: EvalHarness):
        self.option, self.scale, self.outputs, self.harness = name, scale, (name,), harness
        self.fatal: BaseException | None = None
        self.run = self._guarded

    def _guarded(self, lr: np.ndarray, lr_t: torch.Tensor) -> dict[str, np.ndarray]:
        """After a bad output nothing more is computed (the run stops and removes what it wrote); the error is
        kept here rather than raised, so the harness logs no traceback of its own."""
        if self.fatal is not None:
            return {}
        try:
            return self.make(lr, lr_t)
        except Exception as e:  # noqa: BLE001 - reported by EvalHarness after evaluate() returns
            self.fatal = e
            return {}

    def make(self, lr: np.ndarray, lr_t: torch.Tensor) -> dict[str, np.ndarray]:
        raise NotImplementedError


class OutputsMethod(NamedMethod):
    """Reads each output from the folder indexed up front."""

    def make(self, lr: np.ndarray, lr_t: torch.Tensor) -> dict[str, np.ndarray]:
        dataset, path = self.harness.image
        sr = load_image_uint8(self.harness.plan.outputs[(dataset, path.stem)], keep_gray=True)
        if sr.ndim == 2 and lr.ndim == 3:  # gray output of a colour image: as the data layer's load_image does
            sr = np.repeat(sr[..., None], 3, axis=2)
        return {self.outputs[0]: sr}


class ModelMethod(NamedMethod):
    """Runs the user's network on the protocol's LR image and checks what it returns."""

    def __init__(self, name: str, scale: int, harness: EvalHarness, model: nn.Module, spec: str, input_kind: str,
                 tile: int | None, save_to: Path | None, save_count: int = 0):
        super().__init__(name, scale, harness)
        self.model, self.spec, self.input_kind, self.tile, self.save_to = model, spec, input_kind, tile, save_to
        self.save_count = save_count  # --save-images N: the first N outputs of each dataset are saved
        self.saved: dict[str, int] = {}

    def forward(self, x: torch.Tensor) -> Any:
        if self.tile:
            from perceptual.fast import tiled_forward

            return tiled_forward(self.model, x, self.tile)
        with torch.inference_mode():
            return self.model(x)

    def make(self, lr: np.ndarray, lr_t: torch.Tensor) -> dict[str, np.ndarray]:
        from data.colour import rgb_to_ycbcr, ycbcr_to_rgb
        from data.resize import imresize

        dataset, path = self.harness.image
        s = self.scale
        x = rgb_to_ycbcr(lr_t)[:, :1] if self.input_kind == "y" else lr_t
        c = x.shape[1]
        where = f"--model {self.spec} on {dataset}/{path.name} (LR input {tuple(x.shape)})"
        y = call_user_network(self.forward, x, where)
        want = (1, c, x.shape[2] * s, x.shape[3] * s)
        if not isinstance(y, torch.Tensor):
            raise ModelOutputError(f"{where}: returned {type(y).__name__}, expected a tensor of shape {want}")
        if y.dim() != 4 or y.shape[1] != c:
            raise ModelOutputError(f"{where}: returned shape {tuple(y.shape)}, expected {want}: "
                                   f"{'a Y-only network gets and returns 1 channel (--input y)' if c == 1 else 'an RGB network returns 3 channels (N, 3, h*s, w*s); a Y-only network needs --input y'}")
        if tuple(y.shape) != want:
            raise ModelOutputError(f"{where}: returned shape {tuple(y.shape)}, expected {want} (x{s} of the input)")
        if not torch.isfinite(y).all():
            bad = int((~torch.isfinite(y)).sum())
            raise ModelOutputError(f"{where}: returned {bad} non-finite values (NaN/inf) in its {tuple(y.shape)} "
                                   f"output")
        y = y.float()
        if self.input_kind == "y":  # Y from the network, Cb/Cr from bicubic (as SRCNN is scored)
            up = rgb_to_ycbcr(imresize(lr_t.double(), scale_factor=s)).to(y.dtype)
            y = ycbcr_to_rgb(torch.cat([y, up[:, 1:]], dim=1))
        # C order, as a decoded file is (the float sums inside SSIM then run in the same order: saved outputs
        # re-scored through --outputs give the same rows to the last bit)
        sr = np.ascontiguousarray(to_uint8(y.clamp(0, 1)))
        if self.save_to is not None and self.saved.get(dataset, 0) < self.save_count:
            save_image(sr, self.save_to / dataset / f"{path.stem}.png")
            self.saved[dataset] = self.saved.get(dataset, 0) + 1
        return {self.outputs[0]: sr}


# ---------------------------------------------------------------------------------------------- the harness


class EvalHarness(SRHarness):
    """SRHarness with one externally supplied method: same evaluate(), same results table, run.json and report."""

    def __init__(self, cfg: SRRunConfig, plan: EvalPlan, guard: OutGuard):
        super().__init__(cfg)
        self.plan, self.guard = plan, guard
        self.image: tuple[str, Path] = ("", Path())
        self.method: NamedMethod | None = None

    def _start_record(self, previous: dict[str, Any] | None) -> None:
        super()._start_record(None)
        info, plan = self.record.info, self.plan
        for key in ("loss_weights", "training_settings", "loss_network", "variant", "iterations", "training"):
            info.pop(key, None)
        info["identity"] = plan.identity()
        info["methods"] = [plan.name]
        info["evaluated"] = {"name": plan.name, **plan.source, "conversions": plan.conversions,
                             "warnings": plan.warnings}
        info["skipped_files"] = plan.skipped
        info["device_settings"] |= {"tf32": False, "cudnn_benchmark": False}  # a user's network runs in full fp32
        notes = [f"{plan.name}: evaluated with `{PROG}` under the suite's protocol (no training in this run)"]
        for d in plan.datasets:
            if len(plan.datasets[d]) != plan.totals[d]:
                gone = [s["file"] for s in plan.skipped if s.get("dataset") == d]
                notes.append(f"{d}: means {plan.over(d)}; skipped (--skip-unreadable): {', '.join(gone)}")
        info["notes"] = notes
        self.record.save()

    def _record_inputs(self) -> None:
        super()._record_inputs()
        for d, entry in self.record.info["datasets"].items():
            entry["n_images_total"] = self.plan.totals[d]
            entry["mean_over"] = self.plan.over(d)
        self.record.save()

    def run(self) -> int:
        cfg, plan = self.cfg, self.plan
        t0 = time.perf_counter()
        self.datasets = plan.datasets
        self.corpus = self.srcnn_corpus = None
        self.resuming = False
        self.guard.prepare()
        self._start_record(None)
        self._record_inputs()
        self.results = ResultsTable(self.out / RESULTS_FILE, TASK, keep_existing=False)
        self.results.save()
        if cfg.lpips:
            self._load_lpips()
        method = self.method
        assert method is not None, "evaluate_main sets the method before run()"
        self.evaluate([method], plan.scale)
        if method.fatal is not None:
            self.guard.discard()
            error = method.fatal
            raise error if isinstance(error, (ModelOutputError, UserCodeError)) else ModelOutputError(
                f"evaluating {plan.name} failed: {type(error).__name__}: {error}")
        self._report_stage()
        failed = self._close_record(t0)
        self._summary(failed)
        return 1 if failed else 0

    def _summary(self, failed: dict[str, str]) -> None:
        plan = self.plan
        lines = [f"{plan.name} x{plan.scale} under the suite's SR protocol, in {self.out}:"]
        for d in plan.datasets:
            p = self.results.mean(d, plan.scale, plan.name, "psnr_y")
            s = self.results.mean(d, plan.scale, plan.name, "ssim_y")
            if p is not None:
                extra = "".join(f"  lpips_{n} {v:.4f}" for n in LPIPS_NETS
                                if (v := self.results.mean(d, plan.scale, plan.name, f"lpips_{n}")) is not None)
                lines.append(f"  {d:8s} PSNR-Y {p:6.3f}  SSIM-Y {s:.4f}{extra}  ({plan.over(d)})")
        for w in plan.warnings:
            lines.append(f"  warning: {w}")
        for name, error in failed.items():
            lines.append(f"  FAILED {name}: {error}")
        print("\n".join(lines), flush=True)


# -------------------------------------------------------------------------------------------------------- CLI


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Score your own SR method under the paper's protocol (Y channel, border = scale, 8-bit, gray "
                    "ground truths on their gray values, LPIPS when asked): a folder of outputs (--outputs) or a "
                    "network (--model). Writes results.csv (method = --name), run.json and the HTML report, like "
                    "the built-in methods, so `python -m reports.build RUN_A RUN_B` shows them side by side.")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--outputs", type=Path, metavar="DIR",
                     help="folder holding DIR/<dataset>/<image stem>.<png|bmp|jpg|tif>: each SR output at the HR "
                          "size after modcrop (e.g. Set5/baby.png, 512x512 at x4)")
    src.add_argument("--model", metavar="PATH.py:FACTORY",
                     help="a network: PATH.py:FACTORY or package.module:FACTORY; FACTORY() returns an nn.Module "
                          "mapping a float RGB LR batch in [0, 1] (N, 3, h, w) to (N, 3, h*s, w*s)")
    p.add_argument("--scale", type=int, choices=SCALES, required=True, help="upscaling factor (4 or 8)")
    add_eval_protocol_option(p)
    p.add_argument("--datasets", nargs="+", default=list(DEFAULT_DATASETS), metavar="NAME_OR_FOLDER",
                   help="evaluation sets: Set5 Set14 BSD100 or folders of HR images (default: all three)")
    p.add_argument("--name", required=True, help="the method's name in results.csv and the report")
    p.add_argument("--out", type=Path, default=None, help="run folder (default runs/sr/evaluate-<NAME>)")
    p.add_argument("--weights", type=Path, default=None,
                   help="--model only: a state dict to load (torch.load with weights_only=True)")
    add_device_option(p, what="the network and LPIPS")
    p.add_argument("--tile", type=positive_int, default=None,
                   help="--model only: run the network tile by tile (tile side in LR pixels; exact when the "
                        "network's receptive field allows, see perceptual.fast.tiled_forward)")
    p.add_argument("--input", choices=("rgb", "y"), default="rgb",
                   help="--model only: rgb (default) or y: the network maps the LR's Y channel (N, 1, h, w) to "
                        "(N, 1, h*s, w*s); colour comes from bicubic Cb/Cr, as for SRCNN")
    add_save_images_option(p, where="(--model only) under RUN/outputs/x<scale>/<dataset>/<stem>.png, a folder "
                                     "--outputs accepts", default_help="none")
    add_lpips_options(p, default_help="none: LPIPS is off unless asked for")
    add_output_options(p)
    p.add_argument("--overwrite", action="store_true", help="replace the run already in --out")
    return p


def _plan(args: argparse.Namespace) -> tuple[EvalPlan, nn.Module | None, str]:
    """Check every argument and file; nothing is written here."""
    name = check_name(args.name)
    if args.outputs is not None:
        for opt, given in (("--weights", args.weights is not None), ("--tile", args.tile is not None),
                           ("--input", args.input != "rgb"),
                           ("--save-images", args.save_images is not None)):
            if given:
                raise ArgumentError(f"{opt} applies to --model only (a folder of --outputs is scored as it is)")
    device = device_of(args)
    datasets, totals, infos, problems = resolve_datasets(args.datasets, args.scale, args.skip_unreadable)
    if args.outputs is not None:
        source: dict[str, Any] = {"kind": "outputs", "outputs": str(args.outputs.resolve())}
    else:
        source = {"kind": "model", "model": args.model, "input": args.input, "tile": args.tile, "device": device}
        if args.weights is not None:
            from data.files import sha256_file

            source |= {"weights": str(args.weights), "weights_sha256": sha256_file(args.weights)
                       if args.weights.is_file() else None}
    plan = EvalPlan(name, args.scale, datasets, totals, infos, source)
    for label, pr in problems:
        plan.skipped.append(pr.as_dict() | {"dataset": label})
    model = None
    if args.outputs is not None:
        for pr in index_outputs(args.outputs, plan, args.skip_unreadable):
            label = pr.path.parent.name
            stem = pr.path.stem
            plan.datasets[label] = [f for f in plan.datasets[label] if f.stem != stem]
            plan.skipped.append(pr.as_dict() | {"dataset": label})
    else:
        if args.weights is not None:
            load_state_dict_file(args.weights)  # readable as a state dict: checked before the model is built
        model = build_model(args.model, args.weights, device)
    for label, files in plan.datasets.items():
        if not files:
            raise ArgumentError(f"--datasets {label}: no image left to score after skipping unreadable files")
    for s in plan.skipped:
        log.warning("skipped %s (%s): %s", s["file"], s["kind"], s["reason"])
    for w in plan.warnings:
        log.warning("%s", w)
    for c in plan.conversions:
        log.info("converted %s", c)
    return plan, model, device


def evaluate_main(argv: Sequence[str]) -> int:
    """`python -m bench.sr evaluate ...`: 0 ok, 1 a stage failed, 2 bad input (nothing written)."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(list(argv))
    out = args.out if args.out is not None else Path("runs") / "sr" / f"evaluate-{args.name}"
    try:
        if args.outputs is not None and args.outputs.resolve().is_relative_to(out.resolve()):
            raise ArgumentError(f"--outputs {args.outputs} is inside --out {out}, which this run would replace; "
                                f"choose another --out")
        plan, model, device = _plan(args)
        guard = OutGuard(out, args.overwrite)
        profile = with_overrides(SR_PROFILES["smoke"], name="evaluate", iterations=0, srcnn_iterations=0,
                                 datasets=tuple(args.datasets), lpips=lpips_of(args, ()), save_images=3,
                                 note="evaluation of an external method")
        # the single place where an evaluation's settings meet the harness (the protocol makes the HR/LR pairs)
        cfg = SRRunConfig(profile=profile, scales=(args.scale,), methods=(), datasets=tuple(args.datasets),
                          corpus="", srcnn_corpus="", out=out, device=device, lpips=lpips_of(args, ()),
                          eval_protocol=args.eval_protocol,
                          save_images=3, report=not args.no_report, progress=not args.no_progress,
                          argv=("evaluate", *argv))
        harness = EvalHarness(cfg, plan, guard)
        if model is not None:
            save_to = out / "outputs" / f"x{args.scale}" if args.save_images else None
            harness.method = ModelMethod(plan.name, args.scale, harness, model, args.model, args.input, args.tile,
                                         save_to, args.save_images or 0)
        else:
            harness.method = OutputsMethod(plan.name, args.scale, harness)
        return harness.run()
    except (UserCodeError, ModelOutputError, FolderCheckError, RunFolderError, ArgumentError, ValueError,
            FileNotFoundError, PermissionError, HashMismatchError) as e:
        return print_error(PROG, e)


if __name__ == "__main__":
    sys.exit(evaluate_main(sys.argv[1:]))

__all__ = ["MEAN", "EvalHarness", "EvalPlan", "ModelOutputError", "build_parser", "evaluate_main"]
