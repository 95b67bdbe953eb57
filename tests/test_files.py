"""The one atomic write helper: whole files only, and the mode a plain open() would give (readable by others)."""
from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from data.files import atomic_write, atomic_write_bytes, atomic_write_json, atomic_write_text


def _recreate_private(p: Path) -> None:
    """A writer that replaces the file with a private one of its own (as safetensors' save_file does)."""
    p.unlink()
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, b"z")
    os.close(fd)


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_atomic_writes_get_the_mode_open_would_give(tmp_path: Path, umask: int, mode: int):
    old = os.umask(umask)
    try:
        plain = tmp_path / "plain.txt"
        plain.write_text("x")
        written = [atomic_write_text(tmp_path / "a.txt", "x"), atomic_write_bytes(tmp_path / "b.bin", b"x"),
                   atomic_write_json(tmp_path / "c.json", {"a": 1}),
                   atomic_write(tmp_path / "d.bin", lambda p: p.write_bytes(b"y")),
                   atomic_write(tmp_path / "e.bin", _recreate_private)]
    finally:
        os.umask(old)
    assert stat.S_IMODE(plain.stat().st_mode) == mode
    for path in written:
        assert stat.S_IMODE(path.stat().st_mode) == mode, path


def test_atomic_write_replaces_whole_and_leaves_no_temporary_on_failure(tmp_path: Path):
    target = atomic_write_text(tmp_path / "r.csv", "old\n")

    def half(p: Path) -> None:
        p.write_text("half")
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError, match="killed"):
        atomic_write(target, half)
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["r.csv"]
