"""Running a notebook as a student would: a fresh Jupyter kernel, from the notebook's folder,
parameters injected after its tagged cell; and reading back what it printed."""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbclient import NotebookClient

from tests.helpers import ROOT

NOTEBOOKS = ROOT / "notebooks"


def execute(name: str, parameters: str, tmp_path: Path,
            lang: str = "es") -> nbformat.NotebookNode:
    """Run the `lang` student notebook `name` with `parameters` injected after its tagged
    parameters cell, from its own folder as Jupyter would."""
    folder = NOTEBOOKS if lang == "es" else NOTEBOOKS / lang
    nb = nbformat.read(folder / name, as_version=4)
    index = next(i for i, cell in enumerate(nb.cells)
                 if "parameters" in cell.metadata.get("tags", []))
    nb.cells.insert(index + 1, nbformat.v4.new_code_cell(parameters))
    NotebookClient(nb, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(folder)}}).execute()
    return nb


def outputs(nb: nbformat.NotebookNode) -> str:
    """Everything the notebook printed or displayed as text (images left out: their base64
    can spell anything, "NaN" included)."""
    text = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            text.append(out.get("text", ""))
            for mime, value in out.get("data", {}).items():
                if isinstance(value, str) and not mime.startswith("image/"):
                    text.append(value)
    return "\n".join(text)


def assert_no_error_or_warning(nb: nbformat.NotebookNode) -> None:
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            assert out.get("output_type") != "error", out
            assert out.get("name") != "stderr", out.get("text")
