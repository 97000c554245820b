"""The lessons as files: stripped outputs, verdicts that say "shown", the course notes covered.

(nbval executes the notebooks themselves: see pyproject.toml's pytest options.)
"""

import json
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
LESSONS = [p for p in NOTEBOOKS if re.match(r"\d\d_", p.name)]
sys.path.insert(0, str(ROOT / "scripts"))
import strip_notebooks  # noqa: E402


def cells(path: Path) -> list[dict]:
    return json.loads(path.read_text())["cells"]


def joined(text: str | list[str]) -> str:
    """nbformat stores a cell's source and a stream's text as a string or a list of lines."""
    return text if isinstance(text, str) else "".join(text)


def text(path: Path) -> str:
    return "\n".join(joined(c["source"]) for c in cells(path))


def test_there_are_five_lessons_and_the_app():
    assert len(LESSONS) == 5 and (ROOT / "notebooks" / "app.ipynb") in NOTEBOOKS


def test_notebooks_are_in_their_committed_form():
    assert strip_notebooks.main(["--check", *map(str, NOTEBOOKS)]) == 0, \
        "run: python scripts/strip_notebooks.py notebooks/*.ipynb"


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.stem)
def test_every_verdict_says_shown(path):
    verdicts = [c for c in cells(path) if "nbval-check-output" in c["metadata"].get("tags", [])]
    assert not any("NBVAL" in joined(c["source"]) for c in cells(path))   # no test plumbing
    assert verdicts, "a lesson needs at least one verdict"
    for cell in verdicts:
        lines = "".join(joined(o["text"]) for o in cell["outputs"]).splitlines()
        claims, spreads = lines[::2], lines[1::2]     # each verdict, then its measured spread
        assert claims and all(line.startswith("VERDICT ") for line in claims), lines
        assert all(re.search(r"-> shown \(margin [^)]+\)$", line) for line in claims), lines
        assert len(spreads) == len(claims), f"a verdict without its spread: {lines}"
        assert all(line.startswith("  spread over ") for line in spreads), lines


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.stem)
def test_every_lesson_has_mode_exercise_with_solution_and_summary(path):
    source = text(path)
    assert "MODE = None" in source and "lessons.settings(MODE)" in source
    assert "## Exercise" in source and "<details><summary>Solution" in source
    assert "## Summary" in source
    assert 'find_spec("resnet_lab")' in source          # installs itself on Colab/Binder


# Every point of the course notes (shared/seed, "Day 12: ResNet & Skip Connections"), and the
# lesson that teaches it.
NOTES = {
    "01": ["Not overfitting", "training* error goes up", "vanish", "explode",
           "early layers stop learning"],
    "02": ["H(x)", "F(x) = H(x) - x", r"F(x) \to 0", r"H(x) \to x", "y = F(x, \\{W_i\\}) + x",
           "element-wise addition", "directly", "gradient superhighway", "100+"],
    "03": ["Basic block", "ResNet-18, 34", "Bottleneck block", "ResNet-50, 101, 152",
           "256 → 64", "64 → 64", "64 → 256", "7×7 conv", "max-pool", "3 bottleneck blocks (64",
           "4 bottleneck blocks (128", "6 bottleneck blocks (256", "3 bottleneck blocks (512",
           "global average pool", "FC-1000"],
    "04": ["Cardinality", "Inception", "identical", "Grouped convolution",
           "Better accuracy than ResNet for the same parameter count"],
}


@pytest.mark.parametrize("number", NOTES)
def test_lessons_teach_every_point_of_the_course_notes(number):
    source = text(next(p for p in LESSONS if p.name.startswith(number)))
    missing = [phrase for phrase in NOTES[number] if phrase not in source]
    assert not missing, missing


def test_readme_lists_every_lesson_with_a_picture():
    readme = (ROOT / "README.md").read_text()
    for path in LESSONS:
        assert f"notebooks/{path.name}" in readme
    pictures = re.findall(r"!\[[^\]]*\]\((docs/[^)]+\.png)\)", readme)
    assert len(pictures) >= len(LESSONS) + 1                # one per lesson, and the app
    assert all((ROOT / p).exists() for p in pictures)


DRAWS = ("plots.plot_", "diagrams.draw_", "plt.plot(", "plt.semilogy(", "plt.bar(", "ax.contour(")


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.stem)
def test_every_figure_of_a_lesson_is_stored_for_readers_who_do_not_run_it(path):
    """GitHub (or a course page) shows a lesson's figures without running anything:
    every cell that draws keeps its picture (scripts/execute_notebooks.py stores them)."""
    drawing = [c for c in cells(path) if c["cell_type"] == "code"
               and any(d in joined(c["source"]) for d in DRAWS)]
    assert drawing
    missing = [joined(c["source"]).splitlines()[0] for c in drawing
               if not any("image/png" in o.get("data", {}) for o in c["outputs"])]
    assert not missing, f"no stored picture; run scripts/execute_notebooks.py: {missing}"
    size = path.stat().st_size
    assert size < 3_000_000, f"{path.name} is {size:,} bytes: widget state slipped in?"


def test_the_readme_lesson_pictures_are_the_lessons_own():
    import lesson_pictures

    assert lesson_pictures.main(["--check"]) == 0, "run: python scripts/lesson_pictures.py"


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.stem)
def test_the_contents_list_matches_the_sections_and_appendices_come_before_the_summary(path):
    markdown = [joined(c["source"]) for c in cells(path) if c["cell_type"] == "markdown"]
    contents = next(m for m in markdown if "**Contents:**" in m).split("**Contents:**")[1]
    contents = " ".join(contents.split("\n\n")[0].split())
    headings = [line for m in markdown for line in m.splitlines() if line.startswith("## ")]
    numbered = [h for h in headings if re.match(r"## \d+\. ", h)]
    listed = re.findall(r"(?:^|· )(\d+)\. ", contents)
    assert listed == [str(i) for i in range(1, len(numbered) + 1)], (listed, numbered)
    appendices = [h for h in headings if h.startswith("## Appendix")]
    assert contents.count("appendix") == len(appendices)
    order = [h.split()[1].rstrip(":.") for h in headings]
    assert order.index("Summary") == len(order) - 1          # nothing after the summary
    assert all(order.index("Appendix") < order.index("Exercise") for _ in appendices)


def test_a_progress_bar_leaves_no_note_but_a_control_does():
    bar = {"output_type": "display_data", "data": {
        strip_notebooks.WIDGET: {"model_id": "1"},
        "text/plain": "training: 100%|##########| 300/300 [00:10<00:00, 29.1step/s]"}}
    control = {"output_type": "display_data", "data": {
        strip_notebooks.WIDGET: {"model_id": "2"}, "text/plain": "VBox(children=(Button(...)))"}}
    assert strip_notebooks.clean_output(bar) is None
    assert strip_notebooks.clean_output(control)["text"] == strip_notebooks.WIDGET_NOTE


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.stem)
def test_every_live_control_is_shown_as_it_starts_for_readers_who_do_not_run_it(path):
    """A cell that shows a live control is tagged "snapshot:<name>", and its stored outputs
    hold the control's readout and at least one picture of it after the widget's note."""
    notes = [c for c in cells(path) if any(strip_notebooks.WIDGET_NOTE in joined(o.get("text", ""))
                                           for o in c.get("outputs", []))]
    assert notes
    for cell in notes:
        assert any(t.startswith("snapshot:") for t in cell["metadata"].get("tags", [])), \
            joined(cell["source"])
        text = "".join(joined(o.get("text", "")) for o in cell["outputs"])
        pictures = [o for o in cell["outputs"] if "image/png" in o.get("data", {})]
        assert "As it starts" in text and pictures, joined(cell["source"])


# ---------------------------------------------------------------------------------------------
# predict-then-check: each question's control is stored in the state the question asks about

QUESTION = "**Predict, then check.**"


def answered(cell: dict) -> list[bool]:
    """For each "The answer" heading in a cell's stored outputs: whether a picture follows it
    (before the next heading)."""
    found: list[bool] = []
    for output in cell.get("outputs", []):
        text = joined(output.get("text", ""))
        found += [False] * text.count("The answer, as the widget shows it")
        if found and "image/png" in output.get("data", {}):
            found[-1] = True
    return found


def questions(path: Path) -> list[tuple[int, dict]]:
    """Each predict-then-check question's markdown cell number and its control's cell: the
    first code cell after it."""
    cs = cells(path)
    return [(i, next(c for c in cs[i + 1:] if c["cell_type"] == "code"))
            for i, c in enumerate(cs) if c["cell_type"] == "markdown"
            and QUESTION in joined(c["source"])]


def answer_tags(cell: dict) -> list[str]:
    return [t for t in cell["metadata"].get("tags", []) if t.startswith("answer:")]


def test_there_is_a_predict_then_check_question_with_a_control_in_every_lesson():
    asked = {p.stem: questions(p) for p in LESSONS}
    assert all(asked.values()), [name for name, found in asked.items() if not found]


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.stem)
def test_every_predict_then_check_control_is_stored_in_the_state_its_question_asks_about(path):
    """Under the control of each "Predict, then check." question, besides the control as it
    starts, a picture of it in the asked state: tagged "answer:<name>:<state>", driven there by
    scripts/control_pictures.py when scripts/execute_notebooks.py executes the lesson."""
    for number, control in questions(path):
        tags = control["metadata"].get("tags", [])
        names = [t.split(":")[1] for t in tags if t.startswith("snapshot:")]
        first = joined(control["source"]).splitlines()[0]
        assert names, f"c{number}'s control ({first}) has no snapshot tag"
        states = [t.split(":") for t in answer_tags(control)]
        assert states, (f"c{number}'s control ({first}): tag it 'answer:{names[0]}:<state>' "
                        "(scripts/control_pictures.py) and execute the lesson")
        assert all(name == names[0] for _, name, _ in states), states
        stored = answered(control)
        assert len(stored) == len(states) and all(stored), \
            f"c{number}: {len(states)} answer tags, stored {stored}: run execute_notebooks.py"


def test_every_answer_state_is_asked_for_by_a_lesson():
    from control_pictures import ANSWERS

    used = {t.split(":")[2] for p in LESSONS for c in cells(p) for t in answer_tags(c)}
    assert used == set(ANSWERS), f"unused: {set(ANSWERS) - used}, unknown: {used - set(ANSWERS)}"


def test_a_control_cells_pictures_are_added_after_it_in_tag_order_and_folded_under_it():
    import nbformat
    from execute_notebooks import add_snapshots, fold_snapshots

    control = nbformat.v4.new_code_cell("explorer.widget")
    control.metadata["tags"] = ["snapshot:explorer", "answer:explorer:relu-default",
                                "answer:explorer:relu-he"]
    notebook = nbformat.v4.new_notebook(cells=[control, nbformat.v4.new_markdown_cell("next")])
    add_snapshots(notebook)
    helpers = [c.source.splitlines()[-1] for c in notebook.cells[1:4]]
    assert helpers == ["_show(explorer, None)", "_show(explorer, 'relu-default')",
                       "_show(explorer, 'relu-he')"]
    for i, cell in enumerate(notebook.cells[:4]):        # as the kernel would leave them
        cell.outputs = [nbformat.v4.new_output("stream", text=f"output {i}")]
    fold_snapshots(notebook)
    assert [c.cell_type for c in notebook.cells] == ["code", "markdown"]
    assert [o.text for o in notebook.cells[0].outputs] == [f"output {i}" for i in range(4)]


def test_an_answer_tag_with_an_unknown_state_is_refused_naming_the_states():
    from execute_notebooks import pictures_asked

    with pytest.raises(ValueError, match="'answer:explorer:healthy'.*relu-default"):
        pictures_asked(["snapshot:explorer", "answer:explorer:healthy"])


@pytest.mark.slow
def test_execute_stores_a_control_as_it_starts_and_in_its_answers_state(tmp_path, monkeypatch):
    """The whole path, in a kernel: a tagged control cell comes back with its start picture and
    its answer picture under it, in the form the test above reads."""
    import nbformat
    from execute_notebooks import execute

    monkeypatch.setenv("RESNET_LAB_MODE", "quick")               # execute() sets it; restored
    control = nbformat.v4.new_code_cell("from resnet_lab.app import CardinalityExplorer\n"
                                        "cardinality = CardinalityExplorer(size=14, batch=2)\n"
                                        "cardinality.widget")
    control.metadata["tags"] = ["snapshot:cardinality", "answer:cardinality:cardinality-32"]
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(QUESTION), control])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                       "language": "python"}
    path = tmp_path / "lesson.ipynb"
    nbformat.write(notebook, path)
    execute(path, timeout=120)
    (number, stored), = questions(path)
    text = "".join(joined(o.get("text", "")) for o in stored["outputs"])
    assert number == 0 and answered(stored) == [True]
    assert text.index("As it starts") < text.index("C = 1,") < text.index("The answer") < \
        text.index("C = 32,")
