"""How both harnesses refuse bad input and record failures: the errors raised before a run starts (`main` turns
them into exit status 2 with the message) and the text a failed part of a run leaves in run.json (naming where,
and for out-of-memory the fix)."""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from data.catalog import UnknownDatasetError
from data.fetch import FetchError
from data.files import HashMismatchError


class RunFolderError(RuntimeError):
    """--out holds something this run must not overwrite (a different run, settings that do not match a --resume,
    or files that are not a run)."""


class ArgumentError(ValueError):
    """A command-line value that cannot be used: the message names the option, the value and the fix (exit 2)."""


@contextlib.contextmanager
def naming_option(option: str, value: object) -> Iterator[None]:
    """Re-raise a data error met while checking `option` as an ArgumentError naming it (before --out is touched)."""
    try:
        yield
    except (UnknownDatasetError, FileNotFoundError, PermissionError, ValueError, HashMismatchError, FetchError) as e:
        raise ArgumentError(f"{option} {value}: {e}") from e


OOM_MARKERS = ("out of memory", "can't allocate memory", "cannot allocate memory")


def is_out_of_memory(error: BaseException) -> bool:
    """CUDA's OutOfMemoryError, or the CPU allocator's RuntimeError ("can't allocate memory")."""
    return isinstance(error, (torch.OutOfMemoryError, MemoryError)) or any(
        m in str(error).lower() for m in OOM_MARKERS)


def describe_failure(error: BaseException, where: str) -> str:
    """What a run records for a failed part: where it happened (image and size), the error, and for out-of-memory
    the fixes, so a reader of run.json knows which size to leave out without reading a traceback."""
    text = f"{where}: {type(error).__name__}: {error}"
    if is_out_of_memory(error):
        text += (" -- out of memory at this size: free the device (other jobs), run with --device cpu, or leave "
                 "this size out (--sizes / --datasets); the other parts' results are kept")
    return text
