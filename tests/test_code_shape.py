"""The shape of the package code that a reader relies on: units short enough to hold (scripts/long_functions.py
lists every function over 80 lines) and options declared in one place."""
from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _long_functions_module():
    spec = importlib.util.spec_from_file_location("long_functions", ROOT / "scripts" / "long_functions.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_long_function_finder_counts_def_to_last_line(tmp_path):
    lines = ["def short():", *["    x = 1"] * 79, "", "class C:", "    def long(self):",
             *["        y = 2"] * 80, "        def inner():", "            return 3", "        return inner"]
    src = tmp_path / "mod.py"
    src.write_text("\n".join(lines) + "\n")
    found = _long_functions_module().long_functions([src], limit=80)
    assert [(name, length) for _, _, name, length in found] == [("C.long", 84)]


def test_no_package_function_is_over_80_lines():
    files = sorted(p for pkg in ("bench", "perceptual", "baselines", "reports", "data") for p in (ROOT / pkg).rglob("*.py"))
    found = _long_functions_module().long_functions(files, limit=80)
    assert files and found == []


def test_device_option_is_declared_once():
    """Every parser of the package gets --device from bench.run.options.add_device_option: one declaration."""
    declared = [(path.relative_to(ROOT), n) for path in sorted((ROOT / "bench").rglob("*.py"))
                for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
                if 'add_argument("--device"' in line or "add_argument('--device'" in line]
    assert len(declared) == 1 and declared[0][0] == Path("bench/run/options.py"), declared
