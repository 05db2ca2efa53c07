"""A notebook as a user writes one: cells that build a small model and train it with
`linear_playground.watch`, executed by a real Jupyter kernel (nbclient, ipykernel: the venv's
python) with the client installed from client/ on the kernel's path, as pip would put it."""
from __future__ import annotations

import os
from pathlib import Path

import nbformat
from nbclient import NotebookClient

CELLS = [
    '''import torch
import torch.nn.functional as F
from torch import nn
from linear_playground import watch

torch.manual_seed(0)
model = nn.Sequential(nn.Linear(784, 32), nn.ReLU(), nn.Linear(32, 10))
teacher = torch.randn(784, 10)
opt = torch.optim.Adam(model.parameters(), lr=1e-3)''',
    '''run = watch(model, {url!r}, name="my notebook's network"{options}){after_watch}''',
    '''for i in range({steps}):
    x = torch.rand(64, 784)
    y = (x @ teacher).argmax(dim=1)
    loss = F.cross_entropy(model(x), y)
    opt.zero_grad(); loss.backward(); opt.step()
    run.step(loss=loss)
run.close()
import sys
print(run.key, run.link, run.step_count, sys.executable)''',
]


def training_notebook(url: str, steps: int = 200, options: str = "", after_watch: str = ""):
    """`options`: more of watch()'s keywords, as written in the cell (", wait=0"); `after_watch`:
    lines after watch() in the same cell."""
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(cell.format(url=url, steps=steps, options=options, after_watch=after_watch)) for cell in CELLS]
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return notebook


def execute(notebook, workdir: Path, client: Path, timeout: float = 180):
    """Runs every cell in a fresh kernel (the venv's python: ipykernel's own kernel spec) with
    the installed client on its path; raises CellExecutionError on a cell that fails."""
    previous = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = str(client)  # the kernel's environment is this process's
    try:
        NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                       resources={"metadata": {"path": str(workdir)}}).execute()
    finally:
        if previous is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = previous
    nbformat.write(notebook, workdir / "trained.ipynb")
    return notebook


def html_outputs(cell) -> list[str]:
    return [output["data"]["text/html"] for output in cell.outputs if "text/html" in output.get("data", {})]


def printed(cell) -> str:
    return "".join(output.get("text", "") for output in cell.outputs if output.get("output_type") == "stream"
                   and output.get("name") == "stdout")
