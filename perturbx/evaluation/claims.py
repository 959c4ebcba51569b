"""A paper's claim, the evidence a chapter computed for it, and a verdict that follows from the evidence.

A chapter decides a claim in three steps: it runs the models over several seeds, compares them by paired per-seed
differences (:func:`perturbx.evaluation.metrics.compare_models`) or checks a measured bound (e.g. "within 2% of
DDPM"), and turns that evidence into a verdict with :func:`verdict`:

- ``holds``: every piece of evidence supports the claim;
- ``does not hold``: none does;
- ``partly``: some do and some do not;
- ``undecided``: nothing could be decided (e.g. fewer than three seeds).

The chapter registers :func:`claims_table` as its ``claims`` table; the Reproduction page reads it from there, so
the verdict shown anywhere is the one computed from the chapter's numbers.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import pandas as pd

from .metrics import Comparison

VERDICTS = ("holds", "partly", "does not hold", "undecided")


@dataclass(frozen=True)
class Evidence:
    """One computed finding about a claim: ``supports`` is True, False, or None (undecided); ``text`` says what
    was compared and the numbers; ``comparison`` is the paired comparison it came from, if any."""

    text: str
    supports: bool | None
    comparison: Comparison | None = None

    @classmethod
    def from_comparison(cls, comparison: Comparison, description: str = "",
                        label: Callable[[str], str] = str) -> Evidence:
        """Evidence from a paired comparison: it supports the claim when the model beats the baseline.

        Args:
            description: what the text calls the model (default: its label).
            label: model id -> the label the text shows (e.g. ``MODELS.label``).
        """
        text = (f"{description or label(comparison.model)} {comparison.verdict} {label(comparison.baseline)} in "
                f"{comparison.metric} ({comparison.details})")
        decided = comparison.verdict != "cannot be compared with"
        return cls(text, comparison.verdict == "beats" if decided else None, comparison)

    @classmethod
    def bound(cls, text: str, value: float, limit: float, below: bool = True) -> Evidence:
        """Evidence that a measured ``value`` is below (or above) ``limit``; ``text`` describes the value."""
        holds = value <= limit if below else value >= limit
        return cls(f"{text}: {value:.3f} ({'≤' if below else '≥'} {limit:.3f} needed)", bool(holds))


def verdict(evidence: Sequence[Evidence]) -> str:
    """``holds`` / ``partly`` / ``does not hold`` / ``undecided`` from the evidence that was decided."""
    decided = [e.supports for e in evidence if e.supports is not None]
    if not decided:
        return "undecided"
    if all(decided):
        return "holds"
    return "does not hold" if not any(decided) else "partly"


@dataclass(frozen=True)
class Claim:
    """A paper's claim as this book tests it.

    Attributes:
        id: stable key of the claim (lower-case letters, digits and underscores), e.g. ``"ccle_beats_deepdra"``;
            the Reproduction page finds a claim by its id, never by its wording.
        paper: the paper's short title.
        claim: the claim in one sentence.
        data: the data and scale it was tested on (e.g. "LINCS-scale simulator, 16,875 profiles, 5 seeds").
        evidence: the computed findings.
    """

    id: str
    paper: str
    claim: str
    data: str
    evidence: tuple[Evidence, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[a-z0-9_]+", self.id):
            raise ValueError(f"claim id {self.id!r}: use lower-case letters, digits and underscores")

    @property
    def verdict(self) -> str:
        """:func:`verdict` of the evidence."""
        return verdict(self.evidence)


def claims_table(claims: Sequence[Claim]) -> pd.DataFrame:
    """One row per claim: claim_id, paper, claim, data, verdict and the evidence (findings joined by "; ").

    Raises:
        ValueError: two claims with one id.
    """
    ids = [c.id for c in claims]
    if len(set(ids)) != len(ids):
        raise ValueError(f"claim ids must be unique; repeated: {sorted({i for i in ids if ids.count(i) > 1})}")
    return pd.DataFrame([{"claim_id": c.id, "paper": c.paper, "claim": c.claim, "data": c.data, "verdict": c.verdict,
                          "evidence": "; ".join(e.text for e in c.evidence)} for c in claims],
                        columns=["claim_id", "paper", "claim", "data", "verdict", "evidence"])


EVIDENCE_COLUMNS = ["claim_id", "evidence", "supports", "model", "baseline", "metric", "difference", "sd", "ci_low",
                    "ci_high", "wins", "pairs"]


def evidence_table(claims: Sequence[Claim]) -> pd.DataFrame:
    """One row per piece of evidence: its claim's id, its text, whether it supports the claim and, for a paired
    comparison, the numbers (model, baseline, metric, difference, sd, ci_low, ci_high, wins, pairs; empty for a
    bound). The numbers a reader would otherwise parse out of the claims table's text."""
    rows = [{"claim_id": claim.id, "evidence": e.text, "supports": e.supports,
             **({key: value for key, value in e.comparison.row().items() if key != "verdict"} if e.comparison else {})}
            for claim in claims for e in claim.evidence]
    return pd.DataFrame(rows, columns=EVIDENCE_COLUMNS)


def claims_markdown(table: pd.DataFrame) -> str:
    """The claims of a :func:`claims_table` as Markdown for a chapter's verdict box: the data and scale they were
    tested on (once when every claim shares it), then per claim the verdict, the paper's claim and our result (the
    evidence). Every number in it comes from the table, so a box filled with it (``Chapter.glue_markdown``) cannot
    disagree with the chapter's tables."""
    shared = table["data"].nunique() == 1
    lines = [f"*Data and scale:* {table['data'].iat[0]}", ""] if shared and len(table) else []
    for _, row in table.iterrows():
        evidence = "; ".join(part for part in str(row["evidence"]).split("; ") if part)
        lines.append(f"- **{row['verdict']}**: {row['claim']}")
        if not shared:
            lines.append(f"  - *Data:* {row['data']}")
        lines.append(f"  - *Our result:* {evidence or 'no decided evidence'}")
    return "\n".join(lines)


def claims_text(table: pd.DataFrame) -> str:
    """The claims of a :func:`claims_table` as plain text for a chapter's output: per claim ``[VERDICT] claim``,
    then each finding of its evidence on its own indented line."""
    return "\n".join(f"[{row['verdict'].upper()}] {row['claim']}\n    " + str(row["evidence"]).replace("; ", "\n    ")
                     for _, row in table.iterrows())
