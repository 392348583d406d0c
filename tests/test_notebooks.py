"""The tutorial notebooks execute from top to bottom in a fresh kernel."""

from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))


def test_the_three_tutorials_exist():
    names = [p.name for p in NOTEBOOKS]
    assert names == ["01_quickstart.ipynb", "02_finding_bugs.ipynb", "03_large_networks.ipynb",
                     "04_layers.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_executes(path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count for c in code), "commit the notebook executed"
    client = nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(path.parent)}})
    client.execute()  # raises CellExecutionError on the first failing cell
    if plots(nb):
        assert images(nb) == plotting_cells(nb), "a plot rendered as text, not as an image"


def plotting_cells(nb) -> list[int]:
    """Indices of the code cells that end by showing a figure (``report.plot()``, ``fig``)."""
    out = []
    for i, cell in enumerate(nb.cells):
        lines = [ln for ln in cell.source.strip().splitlines() if ln.strip()]
        if cell.cell_type == "code" and lines and (
                lines[-1].rstrip().endswith(".plot()") or lines[-1].strip() == "fig"):
            out.append(i)
    return out


def plots(nb) -> bool:
    return bool(plotting_cells(nb))


def images(nb) -> list[int]:
    """Indices of the cells with an ``image/png`` output."""
    return [i for i, cell in enumerate(nb.cells) if cell.cell_type == "code" and any(
        "image/png" in o.get("data", {}) for o in cell.get("outputs", []))]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_committed_plots_are_images(path):
    """Every cell that shows a figure has a PNG in the committed notebook (not the text
    ``<Figure size ...>`` that a pyplot-free Figure gives without the inline backend)."""
    nb = nbformat.read(path, as_version=4)
    assert images(nb) == plotting_cells(nb)
    for i in plotting_cells(nb):
        texts = [o.get("data", {}).get("text/plain", "") for o in nb.cells[i].outputs]
        assert any("image/png" in o.get("data", {}) for o in nb.cells[i].outputs), texts


def test_the_notebooks_that_plot():
    """02 and 03 plot: the image checks above are not vacuous."""
    plotting = [p.stem for p in NOTEBOOKS if plots(nbformat.read(p, as_version=4))]
    assert {"02_finding_bugs", "03_large_networks"} <= set(plotting)
