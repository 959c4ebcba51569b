"""The ``perturbx`` command line.

    perturbx data list                   name, size, licence and source of every registered file
    perturbx data fetch --all            fetch and verify every file (or: perturbx data fetch NAME ...)
    perturbx lincs curate --matrix FILE [--meta TABLE] [--min-compound-count N] --out DIR
                                         curate an L1000 matrix (see README: "Curated L1000 format")
    perturbx book run [--profile P] [--device D] [--chapters C ...]
                                         execute the chapters with papermill; each replaces the published
                                         chapter only when it passed (a failed run leaves it unchanged)
    perturbx book tidy [--chapters C ...]
                                         hide progress bars and injected parameters in stored chapters (no run)
    perturbx book bundle --out DIR --chapters C ... [--python 3.12] [--no-wheels]
                                         pack the data and wheels a chapter run needs on a GPU machine without
                                         internet (DIR/run.sh REPO CHAPTER runs it there)
    perturbx book unbundle DIR --mirror M
                                         check a bundle's checksums and unpack its data into a mirror folder

Failures exit with status 1 and one line on stderr that names the file or chapter and the fix; Ctrl-C exits with
status 130 and the line "perturbx: interrupted". `lincs curate` locks its --out folder (`.<name>.lock` beside it):
a second run into the same folder fails at once, saying so.
"""

from __future__ import annotations

import _thread
import argparse
import os
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

# Only light modules at the top: `perturbx --help`, `perturbx data list` and argument errors start without torch,
# torch-geometric, RDKit, pandas or papermill, and Ctrl-C is handled before any heavy import (inside the commands).
from .book.failures import ChapterFailed, Terminated
from .datasets import DataError, Fetcher, fetch_all, registry


def curate_files(*args, **kwargs) -> tuple[dict, bool]:
    """:func:`perturbx.datasets.curate.curate_files`, imported when a curation runs (RDKit, h5py, cmapPy)."""
    from .datasets.curate import curate_files as curate  # noqa: PLC0415 (a heavy import, see above)

    return curate(*args, **kwargs)


def _human_size(size: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")


def _data_list(args: argparse.Namespace) -> int:
    entries = list(registry())
    rows = [("name", "size", "licence", "source")]
    rows += [(e.name, _human_size(e.size), e.licence, e.source) for e in entries]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row[:3], widths)) + "  " + row[3])
    print(f"\n{len(entries)} files, {_human_size(sum(e.size for e in entries))} in all")
    return 0


def _data_fetch(args: argparse.Namespace) -> int:
    if args.all == bool(args.names):
        print("perturbx data fetch: give --all or one or more names (see `perturbx data list`)", file=sys.stderr)
        return 2
    fetcher = Fetcher()
    paths = fetch_all(None if args.all else args.names, fetcher=fetcher)
    print(f"{len(paths)} files verified in {fetcher.cache}")
    return 0


def _book_run(args: argparse.Namespace) -> int:
    from .book.runner import chapter_paths, run_chapters  # noqa: PLC0415 (papermill, torch: see the imports)

    timings = run_chapters(chapter_paths(names=args.chapters), profile=args.profile, device=args.device)
    for stem, seconds in timings.items():
        print(f"{stem}: {seconds:.1f} s")
    return 0


def _book_tidy(args: argparse.Namespace) -> int:
    from .book.runner import chapter_paths, tidy_chapters  # noqa: PLC0415 (papermill: see the imports)

    unfit = 0
    for stem, problems in tidy_chapters(chapter_paths(names=args.chapters)).items():
        print(f"{stem}: tidied" + (f"; NOT fit to publish: {'; '.join(problems[:3])}" if problems else ""))
        unfit += bool(problems)
    return 1 if unfit else 0


def _book_bundle(args: argparse.Namespace) -> int:
    from .book.bundle import write_bundle  # noqa: PLC0415 (torch: see the imports)

    bundle = write_bundle(Path(args.out), args.chapters, python=args.python, wheels=not args.no_wheels)
    print(f"{bundle.folder}: {len(bundle.manifest['data'])} data files, "
          f"{sum(r['path'].startswith('wheels/') for r in bundle.manifest['files'])} wheels, "
          f"{bundle.size / 2**20:.1f} MiB; on the GPU machine: {bundle.folder}/run.sh REPO {' '.join(args.chapters)}")
    return 0


def _book_unbundle(args: argparse.Namespace) -> int:
    from .book.bundle import unpack  # noqa: PLC0415 (torch: see the imports)

    unpacked = unpack(Path(args.bundle), Path(args.mirror))
    print(f"{len(unpacked)} data files checked and unpacked into {args.mirror}")
    return 0


def _lincs_curate(args: argparse.Namespace) -> int:
    summary, reused = curate_files(args.matrix, args.out, meta=args.meta, compounds=args.compounds,
                                   genes=args.genes, min_compound_count=args.min_compound_count, qc=args.qc,
                                   level=args.level, progress=True,
                                   notice=lambda line: print(f"perturbx: {line}", file=sys.stderr))
    dropped = sum(summary["dropped"].values())
    state = "up to date (inputs and parameters unchanged)" if reused else "written"
    unmeasured = len(summary.get("genes_not_measured", []))
    genes = f"{summary['n_genes']} genes" + (f" ({unmeasured} not measured: NaN)" if unmeasured else "")
    print(f"{args.out}: {state}; {summary['n_profiles']} profiles, {summary['n_compounds']} compounds, "
          f"{summary['n_cells']} cell lines, {genes}; {dropped} records dropped "
          f"({', '.join(f'{k}: {v}' for k, v in summary['dropped'].items()) or 'none'})")
    return 0


@contextmanager
def _ctrl_c() -> Iterator[list[bool]]:
    """Turn Ctrl-C (SIGINT) into KeyboardInterrupt reliably while a command runs; the list is non-empty once pressed.

    Python swallows an exception raised inside a weakref callback or a ``__del__`` and prints it as "Exception
    ignored" (after a long HDF5 read the first Python code to run is often such an h5py callback); here a swallowed
    KeyboardInterrupt is raised again once the callback has returned, and not printed. A second Ctrl-C exits at
    once: an output folder is never half-written (it is renamed into place when complete), and what a stopped run
    leaves beside it is removed by the next run.
    """
    pressed: list[bool] = []
    state, timers = {"in_hook": False, "again": False}, []
    previous_handler, previous_hook = signal.getsignal(signal.SIGINT), sys.unraisablehook

    def again_later():  # from another thread, so that it arrives after the callback (and this hook) returned
        state["again"] = True
        timers.append(threading.Timer(0.01, _thread.interrupt_main))
        timers[-1].daemon = True
        timers[-1].start()

    def on_sigint(signum, frame):
        if state["in_hook"]:
            again_later()
            return
        if pressed and not state["again"]:
            print("perturbx: interrupted", file=sys.stderr, flush=True)
            os._exit(130)
        pressed.append(True)
        state["again"] = False
        raise KeyboardInterrupt

    def on_unraisable(unraisable):
        if not isinstance(unraisable.exc_value, KeyboardInterrupt):
            previous_hook(unraisable)
            return
        state["in_hook"] = True
        again_later()
        state["in_hook"] = False

    install = previous_handler is signal.default_int_handler and threading.current_thread() is threading.main_thread()
    if install:
        signal.signal(signal.SIGINT, on_sigint)
        sys.unraisablehook = on_unraisable
        # A SIGINT blocked by the parent (the mask is inherited across fork and exec) would never arrive.
        previous_mask = signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    try:
        yield pressed
    finally:
        if install:
            for timer in timers:
                timer.cancel()
            signal.pthread_sigmask(signal.SIG_SETMASK, previous_mask)
            signal.signal(signal.SIGINT, previous_handler)
            sys.unraisablehook = previous_hook


@contextmanager
def _sigterm_raises() -> Iterator[None]:
    """SIGTERM raises :class:`Terminated` while a command runs (where SIGTERM has its default handler)."""
    def on_sigterm(signum, frame):
        raise Terminated

    install = (signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
               and threading.current_thread() is threading.main_thread())
    previous = signal.signal(signal.SIGTERM, on_sigterm) if install else None
    previous_mask = signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM}) if install else None
    try:
        yield
    finally:
        if install:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous_mask)
            signal.signal(signal.SIGTERM, previous)


def build_parser() -> argparse.ArgumentParser:
    """The parser of the ``perturbx`` command; each subcommand sets ``handler`` to the function that runs it."""
    parser = argparse.ArgumentParser(prog="perturbx", description="perturbx: data and book tools")
    groups = parser.add_subparsers(dest="group", required=True)

    data = groups.add_parser("data", help="the registered data files").add_subparsers(dest="command", required=True)
    data.add_parser("list", help="name, size, licence and source of every registered file").set_defaults(
        handler=_data_list)
    fetch = data.add_parser("fetch", help="fetch files into the cache and verify their sha256")
    fetch.add_argument("names", nargs="*", help="registry names (see `perturbx data list`)")
    fetch.add_argument("--all", action="store_true", help="fetch every registered file")
    fetch.set_defaults(handler=_data_fetch)

    lincs = groups.add_parser("lincs", help="L1000 data").add_subparsers(dest="command", required=True)
    curate = lincs.add_parser("curate", help="curate a CMap GCT/GCTX matrix into landmark arrays + tidy metadata")
    curate.add_argument("--matrix", required=True, help="a .gct or .gctx file (level 3, 4 or 5)")
    curate.add_argument("--meta", help="per-profile metadata table for ids-only GCTX files "
                                       "(siginfo_beta.txt, GEO sig_info/inst_info)")
    curate.add_argument("--compounds", help="compound table with pert_id and canonical_smiles "
                                            "(default: the registry's LINCS compound info)")
    curate.add_argument("--genes", help="gene table mapping row ids to Entrez ids (geneinfo_beta.txt, gene_info)")
    curate.add_argument("--min-compound-count", type=int, default=1, help="drop compounds seen fewer times")
    curate.add_argument("--qc", action="store_true", help="drop profiles whose qc_pass / is_gold is 0")
    curate.add_argument("--level", type=int, choices=(3, 4, 5), help="CMap data level (default: inferred)")
    curate.add_argument("--out", required=True, help="output folder")
    curate.set_defaults(handler=_lincs_curate)

    book = groups.add_parser("book", help="execute the book's chapters").add_subparsers(dest="command", required=True)
    run = book.add_parser("run", help="execute chapters in order with papermill; a chapter that passed replaces the "
                                      "published one, a failed run leaves it unchanged")
    run.add_argument("--profile", choices=("smoke", "quick", "full"), default=None,
                     help="profile injected into every chapter (default: each chapter's own, i.e. quick)")
    run.add_argument("--device", choices=("cpu", "cuda"), default=None, help="device for the chapters' models")
    run.add_argument("--chapters", nargs="+", default=None, help="chapter stems, e.g. 00_intro (default: all)")
    run.set_defaults(handler=_book_run)
    tidy = book.add_parser("tidy", help="hide progress bars and the injected parameters cell in stored chapters")
    tidy.add_argument("--chapters", nargs="+", default=None, help="chapter stems (default: all)")
    tidy.set_defaults(handler=_book_tidy)
    bundle = book.add_parser("bundle", help="pack the data files and wheels that chapter runs need on a GPU machine "
                                            "without internet (64 MiB at most)")
    bundle.add_argument("--out", required=True, help="a new folder")
    bundle.add_argument("--chapters", nargs="+", required=True, help="chapter stems, e.g. 03_gnn")
    bundle.add_argument("--python", default="3.12", help="the target machine's Python (default: the GPU image's)")
    bundle.add_argument("--no-wheels", action="store_true", help="data only (the target has the packages)")
    bundle.set_defaults(handler=_book_bundle)
    unbundle = book.add_parser("unbundle", help="check a bundle's checksums and unpack its data into a mirror folder")
    unbundle.add_argument("bundle", help="the bundle folder")
    unbundle.add_argument("--mirror", required=True, help="folder for the data (then set PERTURBX_DATA_MIRROR)")
    unbundle.set_defaults(handler=_book_unbundle)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``perturbx`` console script.

    Args:
        argv: the arguments (default: ``sys.argv[1:]``).

    Returns:
        The exit status: 0 on success; 1 on a data error, a bad value or a file that cannot be read or written
        (one line on stderr naming it) or a failed chapter (its failing cell and the end of the traceback); 2 when
        ``data fetch`` is given neither names nor ``--all``;
        130 on Ctrl-C (one line, ``perturbx: interrupted``); 143 on SIGTERM (``perturbx: terminated``), after the
        command cleaned up as for Ctrl-C (a chapter run logs its failure and leaves the published chapter whole).
    """
    args = build_parser().parse_args(argv)
    status, failure = None, None
    with _ctrl_c() as pressed, _sigterm_raises():
        try:
            status = args.handler(args)
        except Terminated:
            print("perturbx: terminated", file=sys.stderr)
            return 143
        except KeyboardInterrupt:
            pressed.append(True)
        except ChapterFailed as error:  # the failing cell and the end of its traceback: kept on their own lines
            status, failure = 1, str(error)
        except (DataError, ValueError, OSError) as error:
            lines = [line.strip() for line in str(error).splitlines() if line.strip()]
            status, failure = 1, " ".join(lines) or type(error).__name__
    if pressed:
        print("perturbx: interrupted", file=sys.stderr)
        return 130
    if failure is not None:
        print(f"perturbx: error: {failure}", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
