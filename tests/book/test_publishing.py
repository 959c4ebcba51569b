"""The publishing rule and the tidying of progress-bar output (perturbx.book.publishing)."""

import io
import re

import nbformat
import pytest
from tqdm.std import tqdm

from perturbx.book.publishing import (
    executed_problems,
    hide_injected_parameters,
    is_progress_line,
    replace_glued_markdown,
    tidy_streams,
    typed_results,
)


def executed_notebook(*outputs_per_cell, finished: bool = True):
    """A notebook whose code cells were executed (counts set) with the given outputs, ending in finish()."""
    cells = []
    for number, outputs in enumerate(outputs_per_cell, 1):
        cell = nbformat.v4.new_code_cell("x = 1", execution_count=number)
        cell.outputs = list(outputs)
        cells.append(cell)
    last = nbformat.v4.new_code_cell("chapter.finish()", execution_count=len(cells) + 1)
    if finished:
        last.outputs = [nbformat.v4.new_output("stream", name="stdout", text="Provenance: x | commit abc\n")]
    return nbformat.v4.new_notebook(cells=[*cells, last])


def stream(name, text):
    return nbformat.v4.new_output("stream", name=name, text=text)


def test_tidy_streams_keeps_the_last_redraw_of_each_bar():
    cell = nbformat.v4.new_code_cell("")
    cell.outputs = [
        stream("stderr", "\rfolds:   0%| 0/2"),
        stream("stderr", "\rfolds:  50%| 1/2"),
        stream("stderr", "\rfolds: 100%| 2/2\n"),
        stream("stderr", "\repochs: 50%|\r          \r"),  # erased bar
        stream("stdout", "result line\n"),
        stream("stderr", "\r                  \r"),
    ]
    notebook = nbformat.v4.new_notebook(cells=[cell])
    removed = tidy_streams(notebook)
    assert [(o.name, o.text) for o in cell.outputs] == [("stdout", "result line\n")]  # no bar is stored
    assert removed == 5


def test_tidy_streams_renders_nested_progress_bars_as_a_terminal_shows_them():
    terminal = io.StringIO()
    for _ in tqdm(range(2), desc="splits", file=terminal, mininterval=0):
        for _ in tqdm(range(3), desc="epochs", file=terminal, leave=False, mininterval=0):
            pass
    text = terminal.getvalue()
    assert "\x1b[A" in text
    cell = nbformat.v4.new_code_cell("")
    cell.outputs = [stream("stderr", piece) for piece in re.split(r"(?=\r)", text) if piece]  # one per redraw
    cell.outputs.append(stream("stderr", "a warning the reader must see\n"))
    tidy_streams(nbformat.v4.new_notebook(cells=[cell]))
    (output,) = cell.outputs
    assert output.text == "a warning the reader must see\n"  # both bars and their redraws gone


def test_the_injected_parameters_cell_is_hidden_from_the_html():
    injected = nbformat.v4.new_code_cell('profile = "smoke"', metadata={"tags": ["injected-parameters"]})
    own = nbformat.v4.new_code_cell('profile = "quick"', metadata={"tags": ["parameters"]})
    notebook = nbformat.v4.new_notebook(cells=[own, injected])
    assert hide_injected_parameters(notebook) == 1 and hide_injected_parameters(notebook) == 0
    assert injected.metadata["tags"] == ["injected-parameters", "remove-cell"]
    assert own.metadata["tags"] == ["parameters"]


def test_progress_lines_are_told_from_warnings():
    assert is_progress_line("folds: 100%|██████████| 5/5 [05:52<00:00, 70.55s/it]")
    assert is_progress_line("fetch: 12.5MB [00:01, 9.8MB/s]")
    assert not is_progress_line("UserWarning: 100 rows dropped")


def test_executed_problems_accepts_results_and_progress_bars():
    notebook = executed_notebook([stream("stdout", "r = 0.91\n"),
                                  stream("stderr", "folds: 100%|██████████| 5/5 [05:52<00:00, 70.55s/it]\n"
                                                   "splits: 3it [00:01,  2.00it/s]\n")])
    assert executed_problems(notebook) == []


@pytest.mark.parametrize("outputs, finished, expected", [
    ([nbformat.v4.new_output("error", ename="ValueError", evalue="bad dose unit", traceback=[])], True,
     "cell 1: error ValueError: bad dose unit"),
    ([stream("stdout", "Traceback (most recent call last):\n  File x\n")], True, "cell 1: a traceback on stdout"),
    ([stream("stderr", "ConvergenceWarning: lbfgs failed to converge\n")], True,
     "cell 1: stderr: ConvergenceWarning: lbfgs failed to converge"),
    ([], False, "did not finish"),
])
def test_executed_problems_names_what_is_wrong(outputs, finished, expected):
    problems = executed_problems(executed_notebook(outputs, finished=finished))
    assert len(problems) == 1 and expected in problems[0]


def test_executed_problems_finds_cells_that_never_ran():
    notebook = executed_notebook([])
    notebook.cells.insert(1, nbformat.v4.new_code_cell("y = 2"))
    assert executed_problems(notebook) == ["cell 2: never executed"]


def test_typed_results_finds_numbers_that_should_come_from_the_tables():
    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("They report a ROC AUC of 0.910 vs 0.883; ours is 0.85 ± 0.01."),
        nbformat.v4.new_markdown_cell("A 95% interval, mean ± sd, 10 % for validation, chance is 0.5, `lr=0.0005` in code, "
                                      "$\\sigma = 0.125$ in math and {glue:text}`auc` from the run."),
        nbformat.v4.new_code_cell("print(0.910)"),
    ])
    found = typed_results(notebook)
    assert [line.split(":")[0] for line in found] == ["cell 1"] * 3
    assert "'0.910'" in found[0] and "'0.883'" in found[1] and "'5 ±'" in found[2]


def test_replace_glued_markdown_rewrites_only_the_named_glue():
    record = "application/papermill.record/"
    glued = [nbformat.v4.new_output("display_data", data={f"{record}text/markdown": f"old {name}",
                                                          f"{record}text/plain": "<Markdown>"},
                                    metadata={"scrapbook": {"name": name, "mime_prefix": record}})
             for name in ("run_box", "claims_box")]
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("glue", outputs=glued),
                                               nbformat.v4.new_markdown_cell("text")])
    assert replace_glued_markdown(notebook, "run_box", "new") == 1
    outputs = notebook.cells[0].outputs
    assert outputs[0]["data"][f"{record}text/markdown"] == "new"
    assert outputs[1]["data"][f"{record}text/markdown"] == "old claims_box"
    assert replace_glued_markdown(notebook, "missing", "x") == 0
