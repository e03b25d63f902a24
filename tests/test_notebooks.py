"""Every notebook runs top to bottom, and the figures it saves exist and are not empty."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))


@pytest.mark.no_checker  # the kernel is another process; the suite's checker cannot attach
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_and_saves_figures(path: Path, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    figures = tmp_path / "figures"
    monkeypatch.setenv("GRADPIMSIM_FIG_DIR", str(figures))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    # the kernel imports this checkout (not an older installed copy)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]))
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    pngs = list(figures.glob("*.png"))
    assert pngs, f"{path.name} saved no figures"
    for png in pngs:
        assert png.stat().st_size > 1000, png
    assert os.environ["GRADPIMSIM_FIG_DIR"] == str(figures)


def test_there_are_notebooks() -> None:
    names = {p.name for p in NOTEBOOKS}
    assert "quickstart.ipynb" in names
