"""The ``perturbx`` command line.

    perturbx data list                   name, size, licence and source of every registered file
    perturbx data fetch --all            fetch and verify every file (or: perturbx data fetch NAME ...)
    perturbx book run [--profile P] [--device D] [--chapters C ...]
                                         execute the chapters in place with papermill

Failures exit with status 1 and one line on stderr that names the file or chapter and the fix.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from tqdm.auto import tqdm


def _human_size(size: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")


def _data_list(args: argparse.Namespace) -> int:
    from .datasets import registry

    entries = list(registry())
    rows = [("name", "size", "licence", "source")]
    rows += [(e.name, _human_size(e.size), e.licence, e.source) for e in entries]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row[:3], widths)) + "  " + row[3])
    print(f"\n{len(entries)} files, {_human_size(sum(e.size for e in entries))} in all")
    return 0


def _data_fetch(args: argparse.Namespace) -> int:
    from .datasets import Fetcher

    fetcher = Fetcher(progress=False)
    if args.all == bool(args.names):
        print("perturbx data fetch: give --all or one or more names (see `perturbx data list`)", file=sys.stderr)
        return 2
    entries = [fetcher.registry[name] for name in (fetcher.registry.names if args.all else args.names)]
    source = f"mirror {fetcher.mirror}" if fetcher.mirror else "upstream"
    with tqdm(total=sum(e.size for e in entries), unit="B", unit_scale=True, desc=f"fetch ({source})",
              file=sys.stderr) as bar:

        def advance(entry, path) -> None:
            bar.set_postfix_str(entry.name, refresh=False)
            bar.update(entry.size)

        fetcher.fetch_many([e.name for e in entries], on_done=advance)
    print(f"{len(entries)} files verified in {fetcher.cache}")
    return 0


def _book_run(args: argparse.Namespace) -> int:
    from .book import chapter_paths, run_chapters

    timings = run_chapters(chapter_paths(names=args.chapters), profile=args.profile, device=args.device)
    for stem, seconds in timings.items():
        print(f"{stem}: {seconds:.1f} s")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="perturbx", description="perturbx: data and book tools")
    groups = parser.add_subparsers(dest="group", required=True)

    data = groups.add_parser("data", help="the registered data files").add_subparsers(dest="command", required=True)
    data.add_parser("list", help="name, size, licence and source of every registered file").set_defaults(
        handler=_data_list)
    fetch = data.add_parser("fetch", help="fetch files into the cache and verify their sha256")
    fetch.add_argument("names", nargs="*", help="registry names (see `perturbx data list`)")
    fetch.add_argument("--all", action="store_true", help="fetch every registered file")
    fetch.set_defaults(handler=_data_fetch)

    book = groups.add_parser("book", help="execute the book's chapters").add_subparsers(dest="command", required=True)
    run = book.add_parser("run", help="execute chapters in order with papermill, writing outputs in place")
    run.add_argument("--profile", choices=("smoke", "quick", "full"), default=None,
                     help="profile injected into every chapter (default: each chapter's own, i.e. quick)")
    run.add_argument("--device", choices=("cpu", "cuda"), default=None, help="device for the chapters' models")
    run.add_argument("--chapters", nargs="+", default=None, help="chapter stems, e.g. 00_intro (default: all)")
    run.set_defaults(handler=_book_run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``perturbx`` console script; returns the exit status."""
    from .book import ChapterFailed
    from .datasets import DataError

    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except (DataError, ChapterFailed, ValueError) as error:
        print(f"perturbx: error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
