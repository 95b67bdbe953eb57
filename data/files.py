"""File primitives every layer shares: sha256 checks and atomic writes (a crash never leaves half a file)."""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any


class HashMismatchError(RuntimeError):
    """A file's bytes are not the ones the catalog expects (corrupt, partial or replaced)."""

    def __init__(self, path: Path | str, expected: str, actual: str, fix: str = ""):
        self.path, self.expected, self.actual = Path(path), expected, actual
        msg = f"sha256 mismatch for {path}: expected {expected}, got {actual}."
        if fix:
            msg += f" {fix}"
        super().__init__(msg)


def sha256_file(path: Path | str, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def verify_sha256(path: Path | str, expected: str, fix: str = "") -> Path:
    """Raise HashMismatchError naming the file and both hashes unless `path` hashes to `expected`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist. {fix}".strip())
    actual = sha256_file(path)
    if actual != expected.lower():
        raise HashMismatchError(path, expected, actual, fix)
    return path


def _umask() -> int:
    """The process's umask: from /proc where Linux shows it, else by setting and restoring it (no pure getter)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path: Path | str, write: Callable[[Path], Any]) -> Path:
    """Call write(tmp) on a temporary file in the same folder, fsync it, then rename it over `path`.

    The file gets the mode a plain `open(path, "w")` would give it (0666 masked by the umask, so 0644 under 0022),
    not mkstemp's private 0600: results, checkpoints and outputs are meant to be read by others."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        write(tmp_path)
        os.chmod(tmp_path, 0o666 & ~_umask())  # after the write: some writers (safetensors) create the file anew
        with open(tmp_path, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
    return path


def atomic_write_bytes(path: Path | str, data: bytes) -> Path:
    return atomic_write(path, lambda p: p.write_bytes(data))


def atomic_write_text(path: Path | str, text: str) -> Path:
    return atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"))


def atomic_write_json(path: Path | str, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def plain(obj: Any) -> Any:
    """JSON-like plain types (dicts with str keys, lists, numbers, str, None; anything else as str): what run.json,
    checkpoint metadata and the ranks' identity checks compare, so values compare equal however they were built."""
    if isinstance(obj, Mapping):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    if isinstance(obj, (bool, int, float, str)) or obj is None:
        return obj
    return str(obj)


def safe_name(*parts: str) -> str:
    """A file name made only of [A-Za-z0-9._-]: the parts joined by "_", every other character replaced by "_"
    (style names, image stems and dataset names come from users and from disk)."""
    return "".join(c if (c.isascii() and c.isalnum()) or c in "-_." else "_" for c in "_".join(map(str, parts)))
