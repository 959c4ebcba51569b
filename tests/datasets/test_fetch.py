import functools
import http.server
import os
import shutil
import threading
import time
import zipfile
from pathlib import Path

import pytest

from perturbx import cli
from perturbx.book import start_chapter
from perturbx.datasets import (
    ChecksumMismatchError,
    DataError,
    DataLog,
    DownloadError,
    Fetcher,
    MirrorFileMissingError,
    Registry,
    UnknownDataFileError,
    fetch,
    fetch_all,
    use_data_log,
)
from perturbx.datasets import fetcher as fetcher_module
from perturbx.datasets.errors import CacheDirError
from perturbx.datasets.fetcher import _entry_lock, _staging_file, installed_data_log

from ..conftest import data_file, sha256_bytes


def leftovers(cache: Path) -> list[Path]:
    """Files in the cache other than finished ones (staging folders must be cleaned up)."""
    return [p for p in cache.rglob("*") if ".part" in p.name] if cache.exists() else []


# --------------------------------------------------------------------------------------------------- mirror

def test_mirror_hit_copies_and_verifies(tiny_mirror, tmp_path):
    registry, mirror = tiny_mirror
    fetcher = Fetcher(registry, cache=tmp_path / "cache", mirror=mirror)
    path = fetcher.fetch("beta")
    assert path == tmp_path / "cache" / "group/sub/beta.csv"
    assert path.read_bytes() == (mirror / "group/sub/beta.csv").read_bytes()
    assert leftovers(tmp_path / "cache") == []


def test_mirror_checksum_mismatch_names_file_and_both_digests(tiny_mirror, tmp_path):
    registry, mirror = tiny_mirror
    (mirror / "group/alpha.txt").write_bytes(b"tampered\n")
    fetcher = Fetcher(registry, cache=tmp_path / "cache", mirror=mirror)
    with pytest.raises(ChecksumMismatchError) as info:
        fetcher.fetch("alpha")
    message = str(info.value)
    assert "alpha" in message and str(mirror / "group/alpha.txt") in message
    assert registry["alpha"].sha256 in message and sha256_bytes(b"tampered\n") in message
    assert "\n" not in message
    assert not (tmp_path / "cache" / "group/alpha.txt").exists()
    assert leftovers(tmp_path / "cache") == []


def test_corrupt_mirror_is_reported_even_with_a_good_cached_copy(tiny_mirror, tmp_path):
    registry, mirror = tiny_mirror
    fetcher = Fetcher(registry, cache=tmp_path / "cache", mirror=mirror)
    fetcher.fetch("alpha")
    (mirror / "group/alpha.txt").write_bytes(b"tampered\n")
    with pytest.raises(ChecksumMismatchError, match="alpha"):
        fetcher.fetch("alpha")


def test_file_missing_from_mirror(tiny_mirror, tmp_path):
    registry, mirror = tiny_mirror
    (mirror / "group/sub/beta.csv").unlink()
    with pytest.raises(MirrorFileMissingError) as info:
        Fetcher(registry, cache=tmp_path / "cache", mirror=mirror).fetch("beta")
    message = str(info.value)
    assert "group/sub/beta.csv" in message and str(mirror) in message and "PERTURBX_DATA_MIRROR" in message


def test_unknown_name(tiny_mirror, tmp_path):
    registry, mirror = tiny_mirror
    with pytest.raises(UnknownDataFileError, match="'gamma' is not a registered data file"):
        Fetcher(registry, cache=tmp_path / "cache", mirror=mirror).fetch("gamma")


def test_environment_variables_choose_mirror_and_cache(tiny_mirror, tmp_path, monkeypatch):
    registry, mirror = tiny_mirror
    monkeypatch.setenv("PERTURBX_DATA_MIRROR", str(mirror))
    monkeypatch.setenv("PERTURBX_CACHE_DIR", str(tmp_path / "env-cache"))
    monkeypatch.setattr("perturbx.datasets.fetcher.default_registry", lambda: registry)
    assert fetch("alpha") == tmp_path / "env-cache" / "group/alpha.txt"


# --------------------------------------------------------------------------------------------------- cache

def test_cache_hit_needs_no_source(tmp_path):
    payload = b"cached bytes\n"
    registry = Registry([data_file("cached", "c/cached.bin", payload)])  # its url cannot be reached
    cache = tmp_path / "cache"
    (cache / "c").mkdir(parents=True)
    (cache / "c/cached.bin").write_bytes(payload)
    assert Fetcher(registry, cache=cache, mirror=None).fetch("cached").read_bytes() == payload


def test_corrupt_cached_copy_is_replaced(tiny_mirror, tmp_path):
    registry, mirror = tiny_mirror
    fetcher = Fetcher(registry, cache=tmp_path / "cache", mirror=mirror)
    path = fetcher.fetch("alpha")
    path.write_bytes(b"bit rot\n")
    assert fetcher.fetch("alpha").read_bytes() == b"alpha payload\n"


# --------------------------------------------------------------------------------------------------- unusable cache

def no_write_access(cache: Path, monkeypatch):
    """Make ``os.access`` report every path inside ``cache`` as not writable (tests run as root, where chmod does
    not stop writes)."""
    real_access = os.access

    def access(path, mode, **kwargs):
        inside = Path(path) == cache or cache in Path(path).parents
        return False if inside and mode & os.W_OK else real_access(path, mode, **kwargs)

    monkeypatch.setattr(os, "access", access)


def assert_one_clear_line(message: str, *named: object) -> None:
    assert "\n" not in message
    assert "Fix: set PERTURBX_CACHE_DIR to a writable folder" in message
    for thing in named:
        assert str(thing) in message


def test_cache_dir_that_is_a_file(tiny_mirror, tmp_path):
    registry, mirror = tiny_mirror
    cache = tmp_path / "cache-file"
    cache.write_text("not a folder")
    with pytest.raises(CacheDirError) as info:
        Fetcher(registry, cache=cache, mirror=mirror).fetch("beta")
    assert_one_clear_line(str(info.value), "beta", cache, f"{cache} is a file, not a folder")
    assert cache.read_text() == "not a folder"


def test_a_file_in_place_of_a_cache_sub_folder(tiny_mirror, tmp_path):
    registry, mirror = tiny_mirror
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "group").write_text("in the way")
    with pytest.raises(CacheDirError) as info:
        Fetcher(registry, cache=cache, mirror=mirror).fetch("beta")
    assert_one_clear_line(str(info.value), cache / "group", "group/sub/beta.csv")
    assert isinstance(info.value, DataError)


def test_read_only_cache_dir(tiny_mirror, tmp_path, monkeypatch):
    registry, mirror = tiny_mirror
    cache = tmp_path / "cache"
    (cache / "group").mkdir(parents=True)
    no_write_access(cache, monkeypatch)
    with pytest.raises(CacheDirError) as info:
        Fetcher(registry, cache=cache, mirror=mirror).fetch("alpha")
    assert_one_clear_line(str(info.value), f"{cache / 'group'} is not writable")
    assert list(cache.rglob("*")) == [cache / "group"], "nothing was written"


def test_read_only_cache_still_serves_verified_copies_and_never_a_corrupt_one(tiny_mirror, tmp_path, monkeypatch):
    registry, mirror = tiny_mirror
    cache = tmp_path / "cache"
    fetcher = Fetcher(registry, cache=cache, mirror=mirror)
    fetcher.fetch("alpha"), fetcher.fetch("beta")
    (cache / "group/sub/beta.csv").write_bytes(b"bit rot")
    no_write_access(cache, monkeypatch)
    assert fetcher.fetch("alpha").read_bytes() == b"alpha payload\n"
    with pytest.raises(CacheDirError, match="beta: cannot store group/sub/beta.csv"):
        fetcher.fetch("beta")


def test_a_write_that_fails_is_a_cache_dir_error_and_leaves_nothing(tiny_mirror, tmp_path, monkeypatch):
    registry, mirror = tiny_mirror
    cache = tmp_path / "cache"

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(cache / "group/alpha.txt"))

    monkeypatch.setattr(fetcher_module.os, "replace", refuse)
    with pytest.raises(CacheDirError) as info:
        Fetcher(registry, cache=cache, mirror=mirror).fetch("alpha")
    assert_one_clear_line(str(info.value), "PermissionError", "Permission denied", cache / "group/alpha.txt")
    assert not (cache / "group/alpha.txt").exists() and leftovers(cache) == []


def test_data_fetch_command_reports_an_unusable_cache_in_one_line(tiny_mirror, tmp_path, monkeypatch, capsys):
    registry, mirror = tiny_mirror
    cache = tmp_path / "cache-file"
    cache.write_text("")
    monkeypatch.setattr("perturbx.datasets.fetcher.default_registry", lambda: registry)
    monkeypatch.setenv("PERTURBX_DATA_MIRROR", str(mirror))
    monkeypatch.setenv("PERTURBX_CACHE_DIR", str(cache))
    assert cli.main(["data", "fetch", "alpha"]) == 1
    errors = capsys.readouterr().err
    assert "Traceback" not in errors
    line = errors.strip().splitlines()[-1]
    assert line == (f"perturbx: error: alpha: cannot store group/alpha.txt in the cache folder {cache}: {cache} is a "
                    f"file, not a folder. Fix: set PERTURBX_CACHE_DIR to a writable folder (or move {cache} away).")


# --------------------------------------------------------------------------------------------------- partial downloads

def test_partial_downloads_left_by_a_killed_fetch_are_removed(tiny_mirror, tmp_path):
    registry, mirror = tiny_mirror
    cache = tmp_path / "cache"
    (cache / "group").mkdir(parents=True)
    killed = cache / "group/.alpha.txt.k3j_4h5g.part"  # staging folder of a fetch that was killed mid-copy
    killed.mkdir()
    (killed / "alpha.txt").write_bytes(b"alpha pay")
    other_entry = cache / "group/.other.txt.abcdefgh.part"
    other_entry.mkdir()
    unrelated = [cache / "group/.alpha.txt.notes", other_entry]
    unrelated[0].write_text("a user's file")
    assert Fetcher(registry, cache=cache, mirror=mirror).fetch("alpha").read_bytes() == b"alpha payload\n"
    assert not killed.exists()
    assert all(path.exists() for path in unrelated), "only staging folders of the fetched entry are removed"


def test_partial_downloads_are_removed_even_when_the_cached_copy_is_good(tiny_mirror, tmp_path):
    registry, mirror = tiny_mirror
    cache = tmp_path / "cache"
    fetcher = Fetcher(registry, cache=cache, mirror=None)
    (cache / "group").mkdir(parents=True)
    shutil.copyfile(mirror / "group/alpha.txt", cache / "group/alpha.txt")
    killed = cache / "group/.alpha.txt.abcdefgh.part"
    killed.mkdir()
    assert fetcher.fetch("alpha").read_bytes() == b"alpha payload\n"
    assert not killed.exists()


def test_a_fetch_waits_for_another_fetch_of_the_same_file_and_leaves_its_staging_alone(tiny_mirror, tmp_path):
    registry, mirror = tiny_mirror
    cache = tmp_path / "cache"
    target = cache / "group/alpha.txt"
    target.parent.mkdir(parents=True)
    results = []
    with _entry_lock(target), _staging_file(target) as staged:  # another fetch of alpha, half-way through
        staged.write_bytes(b"alpha pay")
        waiting = threading.Thread(target=lambda: results.append(Fetcher(registry, cache=cache, mirror=mirror)
                                                                 .fetch("alpha")))
        waiting.start()
        waiting.join(0.5)
        assert waiting.is_alive() and staged.read_bytes() == b"alpha pay"
        staged.write_bytes(b"alpha payload\n")
        os.replace(staged, target)
    waiting.join(10)
    assert results == [target] and leftovers(cache) == []


def test_without_file_locks_only_old_partial_downloads_are_removed(tiny_mirror, tmp_path, monkeypatch):
    registry, mirror = tiny_mirror
    monkeypatch.setattr(fetcher_module, "fcntl", None)
    cache = tmp_path / "cache"
    (cache / "group").mkdir(parents=True)
    old, recent = cache / "group/.alpha.txt.aaaaaaaa.part", cache / "group/.alpha.txt.bbbbbbbb.part"
    for folder in (old, recent):
        folder.mkdir()
        (folder / "alpha.txt").write_bytes(b"alpha")
    two_days_ago = time.time() - 2 * 24 * 3600
    for path in (old / "alpha.txt", old):
        os.utime(path, (two_days_ago, two_days_ago))
    Fetcher(registry, cache=cache, mirror=mirror).fetch("alpha")
    assert not old.exists() and recent.exists()


# --------------------------------------------------------------------------------------------------- download

@pytest.fixture
def http_folder(tmp_path):
    """Serve a folder on 127.0.0.1 for the duration of a test; yields (folder, base URL)."""
    folder = tmp_path / "served"
    folder.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_download_from_url(http_folder, tmp_path):
    folder, base = http_folder
    payload = b"downloaded\n" * 100
    (folder / "d.txt").write_bytes(payload)
    registry = Registry([data_file("d", "remote/d.txt", payload, url=f"{base}/d.txt")])
    path = Fetcher(registry, cache=tmp_path / "cache", mirror=None).fetch("d")
    assert path.read_bytes() == payload
    assert leftovers(tmp_path / "cache") == []


def test_download_with_wrong_bytes_is_not_kept(http_folder, tmp_path):
    folder, base = http_folder
    (folder / "d.txt").write_bytes(b"changed upstream\n")
    registry = Registry([data_file("d", "remote/d.txt", b"original\n", url=f"{base}/d.txt")])
    with pytest.raises(ChecksumMismatchError, match=f"{base}/d.txt"):
        Fetcher(registry, cache=tmp_path / "cache", mirror=None).fetch("d")
    assert not (tmp_path / "cache/remote/d.txt").exists()
    assert leftovers(tmp_path / "cache") == []


@pytest.mark.parametrize("address", ["missing.txt", None])
def test_failed_download_is_a_clear_error(http_folder, tmp_path, address):
    folder, base = http_folder
    url = f"{base}/{address}" if address else "http://127.0.0.1:9/nothing-listens-here"
    registry = Registry([data_file("d", "remote/d.txt", b"x", url=url)])
    with pytest.raises(DownloadError) as info:
        Fetcher(registry, cache=tmp_path / "cache", mirror=None).fetch("d")
    assert url in str(info.value) and "PERTURBX_DATA_MIRROR" in str(info.value)
    assert not (tmp_path / "cache/remote/d.txt").exists()


# --------------------------------------------------------------------------------------------------- PyPI wheel

def make_wheel(folder: Path, members: dict[str, bytes]) -> Path:
    """A minimal valid wheel ``tinydata-1.0-py3-none-any.whl`` holding ``members``."""
    wheel = folder / "tinydata-1.0-py3-none-any.whl"
    info = "tinydata-1.0.dist-info"
    files = dict(members)
    files[f"{info}/METADATA"] = b"Metadata-Version: 2.1\nName: tinydata\nVersion: 1.0\n"
    files[f"{info}/WHEEL"] = b"Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    files[f"{info}/RECORD"] = "".join(f"{name},,\n" for name in [*files, f"{info}/RECORD"]).encode()
    with zipfile.ZipFile(wheel, "w") as archive:
        for name, payload in files.items():
            archive.writestr(name, payload)
    return wheel


@pytest.fixture
def local_index(tmp_path, monkeypatch):
    """Point pip at a local folder only (no index), as `pip download` in the fetcher will see it."""
    folder = tmp_path / "wheels"
    folder.mkdir()
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(folder))
    return folder


def wheel_entry(wheel: Path, member: str, payload: bytes, **fields):
    fields.setdefault("wheel_sha256", sha256_bytes(wheel.read_bytes()))
    return data_file("w", "pkg/member.bin", payload, url=None, pypi="tinydata==1.0", member=member, **fields)


def test_wheel_member_is_extracted_and_wheel_cached(local_index, tmp_path):
    payload = b"inside the wheel\n"
    wheel = make_wheel(local_index, {"tinydata/data/member.bin": payload})
    registry = Registry([wheel_entry(wheel, "tinydata/data/member.bin", payload)])
    fetcher = Fetcher(registry, cache=tmp_path / "cache", mirror=None)
    assert fetcher.fetch("w").read_bytes() == payload
    assert (tmp_path / "cache/_wheels" / wheel.name).exists()
    # the cached wheel is reused: a second extraction works with the local index gone
    wheel.unlink()
    (tmp_path / "cache/pkg/member.bin").unlink()
    assert fetcher.fetch("w").read_bytes() == payload


def test_wheel_with_wrong_checksum_is_refused(local_index, tmp_path):
    payload = b"inside the wheel\n"
    wheel = make_wheel(local_index, {"tinydata/data/member.bin": payload})
    registry = Registry([wheel_entry(wheel, "tinydata/data/member.bin", payload, wheel_sha256="1" * 64)])
    with pytest.raises(ChecksumMismatchError, match="tinydata-1.0-py3-none-any.whl"):
        Fetcher(registry, cache=tmp_path / "cache", mirror=None).fetch("w")
    assert not list((tmp_path / "cache/_wheels").glob("*.whl"))


def test_wheel_without_the_member(local_index, tmp_path):
    wheel = make_wheel(local_index, {"tinydata/other.bin": b"x"})
    registry = Registry([wheel_entry(wheel, "tinydata/data/member.bin", b"x")])
    with pytest.raises(DownloadError, match="has no member tinydata/data/member.bin"):
        Fetcher(registry, cache=tmp_path / "cache", mirror=None).fetch("w")


def test_unavailable_package_is_a_clear_error(local_index, tmp_path):
    registry = Registry([data_file("w", "pkg/m.bin", b"x", url=None, pypi="tinydata==1.0", member="m",
                                   wheel_sha256="0" * 64)])
    with pytest.raises(DownloadError, match="pip download tinydata==1.0"):
        Fetcher(registry, cache=tmp_path / "cache", mirror=None).fetch("w")


# --------------------------------------------------------------------------------------------------- real data

def test_real_mirror_fetch_all(real_mirror, tmp_path):
    fetcher = Fetcher(cache=tmp_path / "cache", mirror=real_mirror)
    paths = fetcher.fetch_many(fetcher.registry.names)
    assert len(paths) == 25
    assert all(path.stat().st_size == fetcher.registry[name].size for name, path in paths.items())
    assert os.path.commonpath(list(paths.values())) == str(tmp_path / "cache")


# --------------------------------------------------------------------------------------------------- data log

@pytest.fixture
def no_installed_log():
    """No log installed for the module-level functions during the test; the previous one is put back after it."""
    previous = use_data_log(None)
    yield
    use_data_log(previous)


@pytest.fixture
def tiny_environment(tiny_mirror, monkeypatch):
    """The module-level functions see the tiny registry and its mirror; yields the registry."""
    registry, mirror = tiny_mirror
    monkeypatch.setattr("perturbx.datasets.fetcher.default_registry", lambda: registry)
    monkeypatch.setenv("PERTURBX_DATA_MIRROR", str(mirror))
    return registry


def test_data_log_records_each_fetch_with_its_sha256(tiny_mirror, tmp_path):
    registry, mirror = tiny_mirror
    data_log = DataLog()
    fetcher = Fetcher(registry, cache=tmp_path / "cache", mirror=mirror, data_log=data_log)
    fetcher.fetch("alpha")
    fetcher.fetch("alpha")  # a cache hit is recorded too
    assert data_log.as_dict() == {"alpha": registry["alpha"].sha256} and len(data_log) == 1
    (mirror / "group/sub/beta.csv").write_bytes(b"tampered")
    with pytest.raises(ChecksumMismatchError):
        fetcher.fetch("beta")
    assert list(data_log.as_dict()) == ["alpha"], "a file that failed its check is not recorded"


def test_a_fetcher_without_a_log_records_into_its_own(tiny_mirror, tmp_path):
    registry, mirror = tiny_mirror
    first = Fetcher(registry, cache=tmp_path / "cache", mirror=mirror)
    second = Fetcher(registry, cache=tmp_path / "cache", mirror=mirror)
    first.fetch("beta")
    assert first.data_log.as_dict() == {"beta": registry["beta"].sha256}
    assert second.data_log.as_dict() == {}
    first.data_log.as_dict()["x"] = "changed"
    assert list(first.data_log.as_dict()) == ["beta"], "as_dict returns a copy"


def test_module_functions_record_into_the_installed_log(tiny_environment, no_installed_log):
    fetch("alpha")  # nothing installed: recorded nowhere
    data_log = DataLog()
    assert use_data_log(data_log) is None
    assert installed_data_log() is data_log
    fetch_all(["beta"], progress=False)
    fetch("beta")
    assert data_log.as_dict() == {"beta": tiny_environment["beta"].sha256}
    assert use_data_log(None) is data_log


def test_a_fetch_under_a_chapter_is_in_its_record_and_the_next_chapter_starts_empty(tiny_environment,
                                                                                   no_installed_log):
    first = start_chapter("first", seed=0, device="cpu")
    fetch("alpha")
    assert first.record()["data"] == {"alpha": tiny_environment["alpha"].sha256}
    second = start_chapter("second", seed=0, device="cpu")
    assert second.record()["data"] == {}
    fetch("beta")
    assert second.record()["data"] == {"beta": tiny_environment["beta"].sha256}
    assert first.record()["data"] == {"alpha": tiny_environment["alpha"].sha256}, "the first chapter's log is closed"
