"""Every notebook in notebooks/ runs end to end on the real data at the small size, and is stored without outputs."""

from __future__ import annotations

import json

import pytest

from bayescale import notebooks as nbrun

PATHS = nbrun.notebooks()


def test_there_are_notebooks():
    assert PATHS, f"no notebooks in {nbrun.NOTEBOOKS}"


@pytest.mark.parametrize("path", PATHS, ids=[p.stem for p in PATHS])
def test_notebook_is_stored_without_outputs(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    first = nb["cells"][0]
    assert first["cell_type"] == "markdown" and "".join(first["source"]).lstrip().startswith("#"), (
        f"{path.name}: the first cell should be a markdown title"
    )
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] == "code":
            assert cell.get("outputs") == [] and cell.get("execution_count") is None, (
                f"{path.name}: code cell {i} has stored outputs; clear them before committing"
            )


@pytest.mark.parametrize("path", PATHS, ids=[p.stem for p in PATHS])
def test_notebook_executes(path):
    reason = nbrun.missing_data(path)
    if reason:
        pytest.skip(f"{path.name} needs the real data: {reason}")
    from nbclient.exceptions import CellExecutionError

    try:
        nb = nbrun.run(path, size="small", timeout=900)
    except CellExecutionError as exc:
        pytest.fail(f"{path.name} failed at small size:\n{str(exc)[-4000:]}", pytrace=False)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors, f"{path.name}: {errors[0]['ename']}: {errors[0]['evalue']}"
