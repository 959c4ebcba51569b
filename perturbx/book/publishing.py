"""The publishing rule for a stored chapter, and the tidying of its progress-bar output.

:func:`executed_problems` is the one rule for what a stored chapter may not contain (error outputs, tracebacks,
warnings, cells that never ran, a missing provenance line); the runner (:mod:`perturbx.book.runner`), the HTML
build (:mod:`perturbx.sphinxext`) and the tests apply it. :func:`tidy_streams` makes the stored output of progress
bars readable before the rule is applied.

The functions take ``nbformat`` notebooks (version 4) but do not import nbformat themselves.
"""

from __future__ import annotations

import re

_CURSOR_UP = "\x1b[A"
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# A tqdm line: "folds: 100%|█████| 5/5 [05:52<00:00, 70.55s/it]" or, without a total, "splits: 3it [00:01, ...]".
_PROGRESS_LINE = re.compile(r"\d+%\||\b\d+(?:\.\d+)?[kMGTP]?(?:it|B) \[")


def strip_ansi(text: str) -> str:
    """``text`` without ANSI escape sequences (colours, cursor moves)."""
    return _ANSI.sub("", text)


def _render_terminal(text: str) -> str:
    """What a terminal shows after ``text``: a carriage return starts the line again (the next text replaces it),
    a newline moves down, and ``ESC[A`` (how a nested progress bar returns to its parent's line) moves up."""
    lines, row, at_start = [""], 0, True
    for token in re.split(r"(\r|\n|\x1b\[A)", text):
        if token == "\r":
            at_start = True
        elif token == "\n":
            row += 1
            at_start = True
            if row == len(lines):
                lines.append("")
        elif token == _CURSOR_UP:
            row = max(row - 1, 0)
        elif token:
            lines[row] = token if at_start else lines[row] + token
            at_start = False
    return "\n".join(strip_ansi(line) for line in lines)


def _merge_streams(outputs: list) -> tuple[list, int]:
    """Consecutive stream outputs of one name merged into one; returns the outputs and how many were merged away."""
    merged, removed = [], 0
    for output in outputs:
        if (output.output_type == "stream" and merged and merged[-1].output_type == "stream"
                and merged[-1].name == output.name):
            merged[-1].text += output.text
            removed += 1
        else:
            merged.append(output)
    return merged, removed


def _rendered_text(output) -> str:
    """The text of a stream output as a terminal shows it; on stderr, blank lines (erased bars) and progress bars
    dropped: a bar is for the person running the chapter, not for its reader."""
    text = _render_terminal(output.text)
    if output.name == "stderr":
        text = "\n".join(line for line in text.split("\n") if line.strip() and not is_progress_line(line))
        text = text + "\n" if text else ""
    return text


def tidy_streams(notebook) -> int:
    """Keep progress bars out of the stored outputs, in place.

    A progress bar redraws itself with carriage returns, and a kernel sends each redraw as a separate stream
    message, so a stored notebook holds hundreds of fragments. Consecutive stream outputs of one name are merged
    and rendered as a terminal would show them (every line keeps only its last redraw, nested bars included); then
    the progress-bar lines and blank lines of stderr are dropped, so a reader sees results and no bars (someone
    running the chapter interactively still sees them live).

    Args:
        notebook: an ``nbformat`` notebook (version 4); its code cells' outputs are replaced.

    Returns:
        The number of outputs removed.
    """
    removed = 0
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        merged, count = _merge_streams(cell.get("outputs", []))
        removed += count
        kept = []
        for output in merged:
            if output.output_type == "stream":
                text = _rendered_text(output)
                if not text.strip():
                    removed += 1
                    continue
                output.text = text
            kept.append(output)
        cell.outputs = kept
    return removed


INJECTED_PARAMETERS_TAG = "injected-parameters"  # papermill's tag of the cell it adds with a run's parameters
HIDDEN_TAG = "remove-cell"  # myst-nb leaves a cell with this tag out of the HTML


def hide_injected_parameters(notebook) -> int:
    """Tag the parameters cell papermill injected so that the HTML leaves it out (the provenance line states the
    profile and seed a chapter ran with); returns how many cells were tagged."""
    tagged = 0
    for cell in notebook.cells:
        tags = cell.metadata.setdefault("tags", [])
        if INJECTED_PARAMETERS_TAG in tags and HIDDEN_TAG not in tags:
            tags.append(HIDDEN_TAG)
            tagged += 1
    return tagged


def replace_glued_markdown(notebook, name: str, text: str) -> int:
    """Replace the Markdown stored by ``glue(name, Markdown(...))`` (myst-nb's glue, through papermill's record
    outputs) with ``text``, in place; returns how many glued outputs of that name were replaced (0: none)."""
    replaced = 0
    for cell in notebook.cells:
        for output in cell.get("outputs", []) if cell.cell_type == "code" else []:
            scrap = output.get("metadata", {}).get("scrapbook", {})
            if scrap.get("name") == name:
                output["data"][f"{scrap.get('mime_prefix', '')}text/markdown"] = text
                replaced += 1
    return replaced


def is_progress_line(line: str) -> bool:
    """Whether a line of stderr is a tqdm progress bar (which a chapter may show) rather than a warning."""
    return bool(_PROGRESS_LINE.search(line))


def _output_problems(where: str, output) -> list[str]:
    """The problems of one output of the cell described by ``where``."""
    if output.output_type == "error":
        return [f"{where}: error {output.ename}: {strip_ansi(str(output.evalue))[:200]}"]
    if output.output_type != "stream":
        return []
    text = strip_ansi(output.text)
    if "Traceback (most recent call last)" in text:
        return [f"{where}: a traceback on {output.name}"]
    if output.name == "stderr":
        return [f"{where}: stderr: {line.strip()[:200]}" for line in text.splitlines()
                if line.strip() and not is_progress_line(line)]
    return []


def executed_problems(notebook) -> list[str]:
    """What a stored chapter must not show, one line each.

    - an error output, or a traceback printed to a stream;
    - stderr that is not a progress bar (a warning the chapter should have dealt with);
    - a code cell that was never executed (the run stopped early, or the notebook was never run);
    - no ``Provenance:`` line from the last code cell (the chapter did not reach
      :meth:`~perturbx.book.Chapter.finish`).

    Args:
        notebook: an ``nbformat`` notebook (version 4). Cells are numbered from 1 in file order.

    Returns:
        The problems, each naming its cell; empty when the chapter is fit to publish.
    """
    problems = []
    code = [(number, cell) for number, cell in enumerate(notebook.cells, 1) if cell.cell_type == "code"]
    for number, cell in code:
        where = f"cell {number}"
        if cell.get("execution_count") is None and cell.source.strip():
            problems.append(f"{where}: never executed")
        for output in cell.get("outputs", []):
            problems += _output_problems(where, output)
    last = code[-1][1] if code else None
    if last is None or not any("Provenance:" in output.get("text", "") for output in last.get("outputs", [])):
        problems.append("the last code cell printed no 'Provenance:' line: the chapter did not finish")
    return problems


# A result-looking number typed into prose: three or more decimals (0.835) or a spread (0.91 ± 0.01). Definitions
# such as "95% interval", "10 % for validation", "mean ± sd" or "an AUROC of 0.5 is chance" stay allowed.
_TYPED_RESULT = re.compile(r"(?<![\w.])\d*\.\d{3,}(?![\w.])|\d\s*±|±\s*\d")
_NOT_PROSE = re.compile(r"```.*?```|`[^`]*`|\$\$.*?\$\$|\$[^$\n]*\$|\{glue[^}]*\}`[^`]*`", re.DOTALL)


def typed_results(notebook) -> list[str]:
    """Numbers that look like results typed into a chapter's Markdown cells (outside code, math and glue), one
    line each naming the cell; prose must quote computed values (``{glue:md}``) so that text and tables cannot
    disagree. A paper's reported number belongs in a labelled table column, not in prose."""
    found = []
    for number, cell in enumerate(notebook.cells, 1):
        if cell.cell_type != "markdown":
            continue
        prose = _NOT_PROSE.sub(" ", cell.source)
        for match in _TYPED_RESULT.finditer(prose):
            context = prose[max(0, match.start() - 40):match.end() + 20].replace("\n", " ").strip()
            found.append(f"cell {number}: {match.group()!r} in '...{context}...'")
    return found
