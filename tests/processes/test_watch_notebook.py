"""Watch your own network from a notebook (issue 20, item 7): a real Jupyter kernel runs a
notebook whose cells train a small model with `linear_playground.watch` against a real
`python -m server`; the cell that calls watch() shows the run's link and the run's read-only
view in a frame, and the server lets that view (and nothing else) be framed by notebooks."""
from __future__ import annotations

import re
import sys

import pytest
import requests

from tests.support.helpers import ServerProcess, socketio_client
from tests.support.notebooks import execute, html_outputs, printed, training_notebook


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with ServerProcess(tmp_path_factory.mktemp("notebook-server") / "data", "--device", "cpu", "--engines", "1") as server:
        yield server


def test_a_notebook_that_trains_with_watch_shows_the_link_and_the_runs_view_in_its_cell(
        server, installed_client, tmp_path):
    notebook = execute(training_notebook(server.url, steps=200), tmp_path, installed_client)
    key, link, steps, kernel_python = printed(notebook.cells[2]).split()
    assert re.fullmatch(r"p-[0-9a-f]{12}", key) and link == f"/?run={key}" and steps == "200"
    assert kernel_python == sys.executable  # the kernel is this venv's python (ipykernel's own spec)

    [shown] = html_outputs(notebook.cells[1])  # watch() displayed the run under its cell
    address = f"{server.url}{link}"
    assert f'href="{address}"' in shown and "my notebook&#x27;s network" in shown
    [frame] = re.findall(r'<iframe src="([^"]+)"', shown)
    assert frame.replace("&amp;", "&") == f"{address}&embed=1"

    # The run is on the server, finished with its 200 steps.
    viewer = socketio_client(server.url)
    try:
        answer = viewer.call("run:watch", {"run": key}, timeout=30)
        assert answer["ok"], answer
        assert answer["state"]["status"] == "done" and answer["state"]["step"] == 200
        assert answer["state"]["watched"]["name"] == "my notebook's network"
    finally:
        viewer.disconnect()

    # Notebooks on this machine may frame the run's read-only view; nothing else is framed.
    framed = requests.get(frame.replace("&amp;", "&"), timeout=30)
    assert "frame-ancestors http://localhost:* http://127.0.0.1:*;" in framed.headers["Content-Security-Policy"]
    assert "X-Frame-Options" not in framed.headers
    for page in (address, f"{server.url}/", f"{address}&embed=1&token=x", f"{server.url}/?run=shared&embed=1"):
        answer = requests.get(page, timeout=30)
        assert "frame-ancestors 'none'" in answer.headers["Content-Security-Policy"], page
        assert answer.headers["X-Frame-Options"] == "DENY", page


# The cell waits for the run's key: nbclient keeps only the updates that come while their cell
# runs (a notebook's page applies them whenever they come).
UNTIL_REACHED = """
shown_first = run._repr_html_()
import time
deadline = time.monotonic() + 60
while run.key is None and time.monotonic() < deadline:
    time.sleep(0.05)
print("not reached yet" in shown_first)"""


def test_a_cell_shown_before_the_server_answered_shows_the_run_once_it_has(server, installed_client, tmp_path):
    # wait=0: watch() returns at once, before the server gave the run its key
    notebook = execute(training_notebook(server.url, steps=200, options=", wait=0", after_watch=UNTIL_REACHED),
                       tmp_path, installed_client)
    assert printed(notebook.cells[1]).strip() == "True"  # the cell first showed "not reached yet"
    key, link, *_ = printed(notebook.cells[2]).split()
    [shown] = html_outputs(notebook.cells[1])  # the same output, updated in place (its display_id)
    assert "not reached yet" not in shown
    [frame] = re.findall(r'<iframe src="([^"]+)"', shown)
    assert frame.replace("&amp;", "&") == f"{server.url}{link}&embed=1" and key in link
