"""`perturbx lincs curate` reads each format into the same curated folder (perturbx.datasets.curate)."""

import json

import pytest

from perturbx.cli import main
from perturbx.datasets import fetch
from perturbx.datasets.cmap import MetadataError
from perturbx.datasets.curate import curate_files, reader_for
from perturbx.datasets.curated import CuratedL1000

from .test_consensus import write_tables


def test_consensus_signatures_are_curated_with_their_structures_and_missing_design(mirror_env, tmp_path):
    signatures, structures = write_tables(tmp_path)
    summary, reused = curate_files(signatures, tmp_path / "out", compounds=structures)
    saved = CuratedL1000.load(tmp_path / "out")
    assert not reused and summary["n_profiles"] == len(saved) > 0
    assert summary["n_profiles"] + sum(summary["dropped"].values()) == 9  # every input row kept or dropped
    # no cell line, dose, time or basal: recorded as missing for every profile, never made up
    assert summary["profiles_without"] == {k: len(saved) for k in ("cell_id", "dose_um", "time_h", "basal")}
    assert saved.metadata["cell_id"].isna().all() and (saved.metadata["level"] == 5).all()
    assert curate_files(signatures, tmp_path / "out", compounds=structures)[1] is True  # reused


def test_the_replicate_plate_is_curated_with_conditions_and_replicates(mirror_env, tmp_path):
    summary, _ = curate_files(fetch("cmapbox_pset_skbr3"), tmp_path / "skbr3")
    on_disk = json.loads((tmp_path / "skbr3" / "summary.json").read_text())
    assert on_disk["n_conditions"] == summary["n_conditions"] == 80
    assert sum(int(k) * v for k, v in summary["replicates_per_condition"].items()) == summary["n_profiles"]
    assert summary["profiles_without"] == {}
    assert "replicate_group" in CuratedL1000.load(tmp_path / "skbr3").metadata.columns


@pytest.mark.parametrize("name, options, message", [
    ("a.rda", {"meta": "siginfo.txt"}, "--meta cannot be used with this format"),
    ("a.tsv.gz", {}, "consensus signatures need their structures. Fix: add --compounds"),
    ("a.tsv.gz", {"compounds": "s.tsv", "genes": "g.txt"}, "--genes cannot be used"),
    ("a.h5ad", {}, "unknown matrix format"),
])
def test_options_a_format_cannot_use_are_one_clear_error(tmp_path, name, options, message):
    with pytest.raises(MetadataError, match=message):
        reader_for(tmp_path / name, options)


def test_cmap_matrices_keep_the_cmap_reader(tmp_path):
    assert reader_for(tmp_path / "x.gctx", {}) is None and reader_for(tmp_path / "x.GCT", {}) is None


def test_the_command_reads_a_consensus_table(mirror_env, tmp_path, capsys):
    signatures, structures = write_tables(tmp_path)
    assert main(["lincs", "curate", "--matrix", str(signatures), "--compounds", str(structures),
                 "--out", str(tmp_path / "out")]) == 0
    assert "written" in capsys.readouterr().out
    assert main(["lincs", "curate", "--matrix", str(signatures), "--out", str(tmp_path / "other")]) == 1
    assert "need their structures" in capsys.readouterr().err


@pytest.mark.parametrize("options, flag", [({"qc": True}, "--qc"), ({"min_compound_count": 2}, "--min-compound-count"),
                                           ({"level": 3}, "--level")])
def test_curation_options_other_formats_ignore_are_refused(tmp_path, options, flag):
    for name in ("psetSub.rda", "consensi.tsv.gz"):
        with pytest.raises(MetadataError, match=f"{flag} cannot be used"):
            reader_for(tmp_path / name, options | {"compounds": "drugbank.tsv"})
