"""The quick-start notebook runs headless (nbclient) against the test database."""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbclient import NotebookClient

from ml.registry import ModelRegistry
from tickflow.settings import Settings

NOTEBOOK = Path(__file__).resolve().parents[2] / "ml" / "notebooks" / "01_quickstart.ipynb"


def _text(cell: nbformat.NotebookNode) -> str:
    parts = []
    for output in cell.get("outputs", []):
        parts.append(output.get("text", ""))
        parts.append(output.get("data", {}).get("text/plain", ""))
    return "".join(parts)


def test_quickstart_notebook_executes_against_the_database(cli_env: Settings) -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    assert not any(cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code"), (
        "commit the notebook without outputs"
    )
    client = NotebookClient(
        notebook, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOK.parent)}}
    )
    client.execute()  # raises CellExecutionError on the first failing cell

    outputs = [_text(cell) for cell in notebook.cells if cell.cell_type == "code"]
    text = "\n".join(outputs)
    assert "AR-USD 1m: 3000 bars" in text  # the first series with the most bars was chosen and loaded
    assert "AR-USD 1m: model RMSE" in text and "beats the naive baseline" in text
    assert any("plotly" in str(cell.get("outputs")) for cell in notebook.cells if cell.cell_type == "code")
    assert "predicted_close" in outputs[-1]
    assert len(ModelRegistry(cli_env.model_dir).versions("AR-USD", "1m")) == 1
