"""The errors both harnesses raise before a run starts; `main` turns them into exit status 2 with the message."""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

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
