import numpy as np
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


def test_prerank_finds_the_planted_pathways():
    from perturbx.pathways import pathway_agreement, prerank

    genes = [f"G{i}" for i in range(200)]
    scores = pd.Series(np.random.default_rng(0).normal(0, 1, 200), index=genes)
    scores.iloc[:15] += 4  # set "up" is strongly up-regulated, "down" strongly down
    scores.iloc[15:30] -= 4
    sets = {"up": genes[:15], "down": genes[15:30], "noise": genes[100:120], "too small": genes[:3]}
    table = prerank(scores, sets, min_size=10, max_size=50, permutations=100)
    assert table.index[0] == "up" and table.index[-1] == "down"
    assert "too small" not in table.index
    assert table.loc["up", "fdr"] < 0.05 and table.loc["up", "size"] == 15
    agreement = pathway_agreement(table, table, k=1)
    assert agreement == {"top_up_shared": 1.0, "top_down_shared": 1.0, "nes_spearman": pytest.approx(1.0)}
    tied = scores.copy()
    tied.iloc[100:200] = 0.0  # ties: ordered by symbol, same result whatever the input order
    forward = prerank(tied, sets, min_size=10, max_size=50, permutations=100)
    backward = prerank(tied.iloc[::-1], sets, min_size=10, max_size=50, permutations=100)
    pd.testing.assert_frame_equal(forward, backward)
    flipped = prerank(-scores, sets, min_size=10, max_size=50, permutations=100)
    assert pathway_agreement(table, flipped, k=1)["top_up_shared"] == 0.0


def test_prerank_errors_name_the_problem():
    from perturbx.pathways import prerank

    scores = pd.Series([1.0, np.nan], index=["A", "B"])
    with pytest.raises(ValueError, match="NaN scores.*'B'"):
        prerank(scores, {"s": ["A", "B"]})
    with pytest.raises(ValueError, match="gene symbols"):
        prerank(pd.Series([1.0, 2.0], index=["1017", "1018"]), {"s": ["CDK2", "CDK3"]}, min_size=1)
