import os
import subprocess
import sys

from perturbx.cli import main
from perturbx.datasets import registry


def test_data_list_names_every_file(capsys):
    assert main(["data", "list"]) == 0
    out = capsys.readouterr().out
    for entry in registry():
        assert entry.name in out and entry.licence in out
    assert "22 files" in out


def test_fetch_needs_all_or_names(capsys):
    assert main(["data", "fetch"]) == 2
    assert "--all" in capsys.readouterr().err


def test_fetch_tiny_registry(tiny_mirror, tmp_path, monkeypatch, capsys):
    registry_, mirror = tiny_mirror
    monkeypatch.setattr("perturbx.datasets.fetcher.default_registry", lambda: registry_)
    monkeypatch.setenv("PERTURBX_DATA_MIRROR", str(mirror))
    assert main(["data", "fetch", "--all"]) == 0
    assert "2 files verified" in capsys.readouterr().out
    assert main(["data", "fetch", "gamma"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("perturbx: error: 'gamma' is not a registered data file")


def test_fetch_all_fails_on_a_corrupt_mirror_copy(real_mirror, tmp_path):
    """The command a user runs: one corrupted file in an otherwise good mirror makes it exit 1, naming the file."""
    mirror = tmp_path / "mirror"
    for source in real_mirror.rglob("*"):
        if source.is_file():
            target = mirror / source.relative_to(real_mirror)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(source)
    corrupt = mirror / "drp/deepdra/drug_data/drug_desc_raw.tsv"
    corrupt.unlink()
    corrupt.write_bytes((real_mirror / "drp/deepdra/drug_data/drug_desc_raw.tsv").read_bytes()[:-1] + b"X")
    env = os.environ | {"PERTURBX_DATA_MIRROR": str(mirror), "PERTURBX_CACHE_DIR": str(tmp_path / "cache")}
    result = subprocess.run([sys.executable, "-m", "perturbx.cli", "data", "fetch", "--all"], env=env,
                            capture_output=True, text=True)
    assert result.returncode == 1
    reason = result.stderr.strip().splitlines()[-1]
    assert reason.startswith("perturbx: error: deepdra_drug_descriptors: checksum mismatch")
    assert str(corrupt) in reason
    assert registry()["deepdra_drug_descriptors"].sha256 in reason
    assert not (tmp_path / "cache" / "drp/deepdra/drug_data/drug_desc_raw.tsv").exists()
