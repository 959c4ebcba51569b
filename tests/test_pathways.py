import pandas as pd
import pytest

from perturbx.pathways import landmark_gene_sets, read_gmt


def test_read_gmt_and_restrict_to_landmarks(tmp_path):
    path = tmp_path / "sets.gmt"
    path.write_text("Glycolysis\tR-1\tHK1\tPKM\tHK1\tNOTLM\nTiny\tR-2\tPKM\n")
    sets = read_gmt(path)
    assert sets == {"Glycolysis": ["HK1", "PKM", "NOTLM"], "Tiny": ["PKM"]}
    genes = pd.DataFrame({"gene_symbol": ["PKM", "ACTB", "HK1"]})
    assert landmark_gene_sets(sets, genes) == {"Glycolysis": [0, 2], "Tiny": [0]}
    assert landmark_gene_sets(sets, genes, min_size=2) == {"Glycolysis": [0, 2]}


@pytest.mark.parametrize("text, message", [("OnlyName\n", "line 1"), ("A\tx\tG\nA\ty\tH\n", "appears twice")])
def test_bad_gmt(tmp_path, text, message):
    path = tmp_path / "bad.gmt"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        read_gmt(path)
