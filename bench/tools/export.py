"""A run's trained networks as files anyone can load: RUN/weights/<name>.safetensors (the model state only: no
optimiser, no sampler, no code) and RUN/weights/<name>.json beside it (architecture, variant, scale or style, profile,
iterations, seed, run folder, sha256 of the .safetensors).

Both harnesses export each network when its training ends; `python -m bench.tools.export RUN` exports from an existing
run's checkpoints (SR: RUN/checkpoints/<method>_x<scale>.pt; style: RUN/models/<style>.pt). hubconf.py and the
`--checkpoint` / `--model` options of upscale, stylize and evaluate load these files. Writes are atomic.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bench.tools.model_loader import load_suite_checkpoint
from data.files import atomic_write, atomic_write_json, sha256_file

__all__ = ["WEIGHTS_DIR", "export_network", "export_run", "main"]

WEIGHTS_DIR = "weights"
NOTE = ("CPU-scale training by this suite's {profile} profile ({iterations:,} iterations), not the paper's training "
        "(SR: 200k iterations of 288 px patches; style: 40k iterations at 256 px)")


def export_network(net: nn.Module, run_dir: Path, name: str, kind: str, info: dict[str, Any]) -> Path:
    """Write `net`'s state as RUN/weights/<name>.safetensors and its description as <name>.json; returns the
    .safetensors path. kind: sr, srcnn or style; info: at least profile, iterations, seed (plus variant, scale or
    style)."""
    from safetensors.torch import save_file

    if kind not in ("sr", "srcnn", "style"):
        raise ValueError(f"export kind must be sr, srcnn or style, got {kind!r}")
    folder = Path(run_dir) / WEIGHTS_DIR
    path = folder / f"{name}.safetensors"
    state = {k: v.detach().to("cpu").contiguous().clone() for k, v in net.state_dict().items()}
    atomic_write(path, lambda tmp: save_file(state, str(tmp)))  # no metadata: the bytes depend on the state only
    profile, iterations = info.get("profile"), info.get("iterations")
    doc = {"name": name, "kind": kind, "architecture": type(net).__name__, "run": str(run_dir), **info,
           "file": path.name, "sha256": sha256_file(path), "parameters": sum(v.numel() for v in state.values()),
           "note": NOTE.format(profile=profile, iterations=int(iterations or 0))}
    atomic_write_json(path.with_suffix(".json"), doc)
    return path


def _run_info(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "run.json"
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir}: no run.json, so not a run folder of this suite (give the folder a "
                                f"`python -m bench.sr` or `python -m bench.style` run wrote)")
    return json.loads(path.read_text())


def export_run(run_dir: Path | str, names: Sequence[str] | None = None) -> list[Path]:
    """Export every trained network of a run folder (or only `names`) from its checkpoints; returns the files."""
    run_dir = Path(run_dir)
    info = _run_info(run_dir)
    task = info.get("task")
    if task == "style":
        sources = sorted((run_dir / "models").glob("*.pt"))
        where = "RUN/models/<style>.pt"
    else:
        sources = sorted(p for p in (run_dir / "checkpoints").glob("*.pt")
                         if p.stem.startswith(("johnson_", "srcnn_")))
        where = "RUN/checkpoints/<method>_x<scale>.pt"
    if names:
        unknown = sorted(set(names) - {p.stem for p in sources})
        if unknown:
            raise FileNotFoundError(f"{run_dir}: no checkpoint for {', '.join(unknown)} (have: "
                                    f"{', '.join(p.stem for p in sources) or 'none'}; looked for {where})")
        sources = [p for p in sources if p.stem in names]
    if not sources:
        raise FileNotFoundError(f"{run_dir}: no trained network to export (looked for {where}; committed runs leave "
                                f"their checkpoints out: rerun the training, which also exports at its end)")
    written = []
    for src in sources:
        model = load_suite_checkpoint(src, "cpu")
        ck = torch.load(src, map_location="cpu", weights_only=True)
        iterations = ck.get("iteration") or info.get("training", {}).get(src.stem, {}).get("iterations")
        extra = {"variant": model.meta.get("variant", "common")} if model.kind != "srcnn" else {}
        if model.scale is not None:
            extra["scale"] = model.scale
        if model.kind == "style":
            extra["style"] = model.name
        written.append(export_network(model.net, run_dir, src.stem, model.kind, extra | {
            "profile": info.get("profile"), "iterations": None if iterations is None else int(iterations),
            "seed": info.get("seed"), "commit": (info.get("git") or {}).get("commit"), "source": str(src)}))
    return written


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.tools.export",
                                description="Export a run's trained networks to RUN/weights/<name>.safetensors "
                                            "(model state only) + <name>.json, from its checkpoints.")
    p.add_argument("run", type=Path, metavar="RUN", help="a run folder of `python -m bench.sr` or `bench.style`")
    p.add_argument("--names", nargs="+", default=None, help="only these networks (e.g. johnson_feat_x4 la_muse)")
    args = p.parse_args(argv)
    try:
        for path in export_run(args.run, args.names):
            print(f"wrote {path} and {path.with_suffix('.json').name}")
    except (FileNotFoundError, ValueError) as e:
        print(f"python -m bench.tools.export: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
