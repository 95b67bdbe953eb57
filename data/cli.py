"""`python -m data` / `perceptual-data`: list datasets and their state, fetch them, verify them, rebuild the catalog.

    python -m data list                 # datasets, files, MB, where (mirror/cache/missing), verified?
    python -m data fetch Set5 BSD100    # or: fetch all   (mirror first, then cache, then download into the cache)
    python -m data verify all           # re-hash every file; exit 1 and name each bad file if any
    python -m data build-catalog ../shared/data/MANIFEST.tsv   # regenerate data/catalog.tsv
Exit status: fetch/verify give 0 when every dataset asked for is present and verified, 1 otherwise; list always
0 (it reports); 2 for usage errors such as an unknown dataset name.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from data.catalog import (
    CATALOG_PATH,
    DATASETS,
    UnknownDatasetError,
    canonical_name,
    dataset_names,
    write_catalog,
)
from data.fetch import (
    CacheNotWritableError,
    DataConfigError,
    FetchError,
    cache_root,
    dataset_status,
    fetch_dataset,
    mirror_root,
    verify_dataset,
)


def _names(values: list[str]) -> list[str]:
    if not values:
        raise UnknownDatasetError("", dataset_names(), hint="name at least one dataset, or `all`")
    if [v.lower() for v in values] == ["all"]:
        return dataset_names()
    return [canonical_name(v) for v in values]


def _where() -> str:
    try:
        mirror = mirror_root()
    except DataConfigError as e:
        mirror = f"<error: {e}>"  # type: ignore[assignment]
    return f"mirror: {mirror or 'none'}\ncache:  {cache_root()}"


def cmd_list(args: argparse.Namespace) -> int:
    print(_where())
    header = f"{'dataset':<16}{'role':<9}{'files':>6}{'MB':>9}  {'where':<13}{'verified':<9}"
    print(header)
    print("-" * len(header))
    all_ok = True
    for name in dataset_names():
        s = dataset_status(name, verify=not args.fast)
        all_ok &= s.ok
        # about the files that are present: sha256 checked (yes), size only (--fast), or some corrupt (NO)
        verified = "-" if s.where == "missing" else "NO" if s.corrupt else "yes" if s.verified else "size ok"
        print(f"{name:<16}{DATASETS[name].role:<9}{s.n_files:>6}{s.bytes / 1e6:>9.2f}  {s.where:<13}{verified:<9}")
    if not all_ok:
        print("\nsome datasets are missing or corrupt: `python -m data verify all` names each file; "
              "`python -m data fetch NAME` gets them")
    return 0


def cmd_fetch(args: argparse.Namespace) -> int:
    failed = 0
    for name in _names(args.names):
        try:
            r = fetch_dataset(name, progressbar=args.progress)
        except (FetchError, CacheNotWritableError, DataConfigError) as e:
            print(f"{name}: FAILED: {e}", file=sys.stderr)
            failed += 1
            continue
        print(f"{name}: {r.in_mirror} in mirror, {r.in_cache} already cached, {len(r.downloaded)} downloaded")
    return 1 if failed else 0


def cmd_verify(args: argparse.Namespace) -> int:
    bad = 0
    for name in _names(args.names):
        s = verify_dataset(name)
        if s.ok:
            print(f"{name}: OK ({s.n_files} files, {s.where})")
            continue
        bad += 1
        print(f"{name}: {len(s.corrupt)} corrupt, {len(s.missing)} missing of {s.n_files}")
        for line in s.problems():
            print(f"  {line}")
    return 1 if bad else 0


def cmd_build_catalog(args: argparse.Namespace) -> int:
    out = write_catalog(args.manifest, args.output)
    print(f"wrote {out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m data", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("list", help="datasets, file counts, size, where they resolve, verified?")
    s.add_argument("--fast", action="store_true", help="check sizes only instead of sha256 (no hashing)")
    s.set_defaults(func=cmd_list)
    s = sub.add_parser("fetch", help="make datasets available (mirror, else cache, else download into the cache)")
    s.add_argument("names", nargs="+", metavar="NAME", help=f"dataset names or `all` ({', '.join(DATASETS)})")
    s.add_argument("--progress", action="store_true", help="show download progress bars")
    s.set_defaults(func=cmd_fetch)
    s = sub.add_parser("verify", help="re-hash datasets now; exit 1 and name each missing or corrupt file")
    s.add_argument("names", nargs="+", metavar="NAME", help="dataset names or `all`")
    s.set_defaults(func=cmd_verify)
    s = sub.add_parser("build-catalog", help="regenerate data/catalog.tsv from the mirror's MANIFEST.tsv")
    s.add_argument("manifest", type=Path, metavar="MANIFEST", help="path to MANIFEST.tsv")
    s.add_argument("-o", "--output", type=Path, default=CATALOG_PATH, help=f"default: {CATALOG_PATH}")
    s.set_defaults(func=cmd_build_catalog)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of `python -m data` and the `perceptual-data` console script."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (UnknownDatasetError, DataConfigError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
