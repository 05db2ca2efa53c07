"""A watched run inside a notebook's cell output, in Chromium (issue 20, item 7): the HTML a real
kernel's cell showed for `watch()` is served from another local origin (a notebook server of
its own), and its frame shows the run's read-only view, tiles and all; a page from an origin
the server's --frame-ancestors does not name cannot frame it (Chromium blocks the frame)."""
from __future__ import annotations

import functools
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.support.browser import TIMEOUT_MS, PlaygroundPage, by_id, own_page
from tests.support.helpers import ServerProcess
from tests.support.notebooks import execute, html_outputs, training_notebook


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    # Only pages served as http://localhost:<any port> may frame a run's view (not 127.0.0.1).
    with ServerProcess(tmp_path_factory.mktemp("notebook-browser") / "data", "--device", "cpu",
                       "--frame-ancestors", "http://localhost:*", "--engines", "1") as server:
        yield server


@pytest.fixture(scope="module")
def notebook_page(server, installed_client, tmp_path_factory):
    """The executed notebook's cell output, as a page on a server of its own (another port)."""
    folder = tmp_path_factory.mktemp("notebook-output")
    notebook = execute(training_notebook(server.url, steps=300), folder, installed_client)
    [shown] = html_outputs(notebook.cells[1])
    (folder / "notebook.html").write_text(
        f"<!doctype html><html><head><title>My notebook</title><link rel=\"icon\" href=\"data:,\"></head><body><h1>My notebook</h1>"
        f"<pre>run = watch(model, ...)</pre><div class=\"output\">{shown}</div></body></html>")
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(folder))
    http = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    yield http.server_port
    http.shutdown()
    http.server_close()


def test_the_cells_frame_shows_the_runs_tiles_read_only(browser, server, notebook_page):
    with own_page(browser) as page:
        page.goto(f"http://localhost:{notebook_page}/notebook.html", timeout=TIMEOUT_MS)
        frame = page.frame_locator("iframe")
        frame.locator(f'{by_id("connection")}[data-state="connected"]').wait_for(timeout=TIMEOUT_MS)
        tiles = frame.locator(f'{by_id("hidden-weights")}[data-step]')
        tiles.scroll_into_view_if_needed(timeout=TIMEOUT_MS)
        tiles.wait_for(timeout=TIMEOUT_MS)
        assert int(tiles.get_attribute("data-step")) == 300  # the run's last weights
        assert "my notebook's network" in frame.locator(by_id("watched-name")).text_content()
        # Read-only, and it shows no controls: a frame is no place to train from.
        assert frame.locator(by_id("train-start")).is_hidden()
        assert frame.locator(by_id("setup")).is_hidden()
        page.locator("iframe").scroll_into_view_if_needed()
        PlaygroundPage(page).screenshot("watch-notebook-frame.png", full_page=True)


def test_a_page_the_flag_does_not_name_cannot_frame_the_run(browser, server, notebook_page):
    with own_page(browser, expected_console=(r"frame-ancestors",)) as page:
        with page.expect_console_message(lambda message: "frame-ancestors" in message.text,
                                         timeout=TIMEOUT_MS) as refusal:
            page.goto(f"http://127.0.0.1:{notebook_page}/notebook.html", timeout=TIMEOUT_MS)
        # Chromium's words: the page is not one the run's frame-ancestors names.
        assert "http://localhost:*" in refusal.value.text, refusal.value.text
        assert page.frame_locator("iframe").locator(by_id("hidden-weights")).count() == 0
