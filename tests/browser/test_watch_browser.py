"""Watch your own network, in Chromium (issue 20): a user's script trains its own model with
`linear_playground.watch` against a real `python -m server`; its link shows the model's first
Linear layer as tiles where the playground's are, its loss where the loss is, its structure,
and drawing on the canvas predicts what the user's model says for the same 28x28 input."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tests.support.browser import SEVEN, TIMEOUT_MS, PlaygroundPage, by_id, own_page
from tests.support.helpers import ServerProcess
from tests.support.watch_scripts import finished, key_of, make_model, start_script


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with ServerProcess(tmp_path_factory.mktemp("watch-browser") / "data", "--device", "cpu", "--engines", "1") as server:
        yield server


def open_run(page, server, key):
    page.goto(f"{server.url}/?run={key}", timeout=TIMEOUT_MS)
    page.wait_for_selector(f'{by_id("connection")}[data-state="connected"]', timeout=TIMEOUT_MS)
    try:
        page.wait_for_selector(f'{by_id("watched")}:not([hidden])', timeout=TIMEOUT_MS)
    except Exception as err:  # what the page says instead
        raise AssertionError(f"no watched run on the page: owner {page.text_content(by_id('run-owner'))!r}, "
                             f"notice {page.text_content(by_id('notice'))!r}, address {page.url}") from err
    return PlaygroundPage(page)


def predict_answers(page) -> list[dict]:
    """The predict acknowledgements the page received (Socket.IO text frames: 43<id>[{...}])."""
    answers = []

    def on_socket(ws):
        def on_frame(payload):
            if isinstance(payload, str) and payload.startswith("43") and '"probabilities"' in payload:
                answers.append(json.loads(payload[payload.index("["):])[0])
        ws.on("framereceived", on_frame)
    page.on("websocket", on_socket)
    return answers


def test_a_scripts_own_network_on_its_link_tiles_loss_structure_and_the_canvas_predicts_with_it(
        browser, server, installed_client, tmp_path):
    process = start_script("question", server.url, tmp_path, installed_client, steps=1200, pause_s=0.01)
    try:
        key = key_of(process)
        with own_page(browser) as page:
            answers = predict_answers(page)
            playground = open_run(page, server, key)
            assert "my own question" in playground.text("watched-name")
            structure = playground.text("structure")
            assert "hidden: Linear(in_features=784, out_features=256, bias=True)" in structure
            assert "200,960 parameters" in structure and "output: Linear(in_features=256" in structure
            assert playground.text("run-owner") == "Someone's run (watching, read-only)"
            # Live, while the script trains: the tiles of its hidden layer, its loss.
            tiles = playground.by_id("hidden-weights")
            tiles.scroll_into_view_if_needed()
            page.wait_for_selector(f'{by_id("hidden-weights")}[data-step]', timeout=TIMEOUT_MS)
            first_step = int(tiles.get_attribute("data-step"))
            page.wait_for_function(f"""() => Number(document.querySelector('{by_id("hidden-weights")}')
                .dataset.step) > {first_step}""", timeout=TIMEOUT_MS)
            assert page.text_content("#tiles-title code") == "hidden.weight"
            page.wait_for_function(f"() => (document.querySelector('{by_id('loss-chart')}').data?.[0]?.x?.length ?? 0) > 2",
                                   timeout=TIMEOUT_MS)
            # Beside each Linear layer, the histograms the script's hooks took: its outputs, its gradients.
            hidden_row = f'{by_id("structure")} li[data-path="hidden"]'
            page.wait_for_selector(f"{hidden_row} canvas.layer-histogram + canvas.layer-histogram", timeout=TIMEOUT_MS)
            labels = page.eval_on_selector_all(f"{hidden_row} canvas.layer-histogram",
                                               "nodes => nodes.map(n => n.getAttribute('aria-label'))")
            assert labels[0].startswith("outputs at step") and "16,384 values" in labels[0]  # a batch of 64 x 256
            assert labels[1].startswith("weight gradients at step") and "200,704 values" in labels[1]  # 256 x 784
            assert playground.serious_axe_violations(by_id("watched"), by_id("watched-tiles-note")) == []
            playground.screenshot("watch/live-question.png", full_page=True)
            lines, _ = finished(process, timeout=180)
            assert lines[-1]["key"] == key
            # Finished: the page says so, and the canvas predicts with the script's final weights.
            page.wait_for_function(f"() => document.querySelector('{by_id('status')}').textContent === 'done'",
                                   timeout=TIMEOUT_MS)
            playground.by_id("canvas").scroll_into_view_if_needed()
            playground.draw(SEVEN)
            playground.settled_prediction()
            answer = answers[-1]
            model = make_model("question", tmp_path / "question.pt")
            with torch.no_grad():
                theirs = model(torch.tensor(answer["input"], dtype=torch.float32).reshape(1, 784))[0].numpy()
            np.testing.assert_allclose(answer["probabilities"], theirs, atol=1e-3)
            np.testing.assert_allclose(playground.probabilities(), theirs, atol=1e-3)
            assert answer["step"] == 1200
            playground.screenshot("watch/finished-question.png", full_page=True)
    finally:
        if process.poll() is None:
            process.kill()
