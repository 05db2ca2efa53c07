"""Every number is the weights' own (issue 19, item 6): the numbers the page prints about the
first layer's weights (the tile readout, hovered and clicked, and the inspector) equal the run's
checkpoint, downloaded through the app's API and read with torch, to the printed precision; the
inspector's range is the neuron's min and max; clicking tile 50 names neuron 50; the lesson's
side-by-side pictures share one colour scale; a reveal names the run by its number in Runs."""
from __future__ import annotations

import io
import re

import pytest
import requests
import torch
from playwright.sync_api import expect

from tests.support.browser import TIMEOUT_MS, PlaygroundPage, by_id
from tests.support.helpers import wait_for

pytestmark = pytest.mark.browser

NEURON = 50
COLUMNS = 16  # the mosaic of 256 tiles: 16 a row, 28 pixels and a gap each
NUMBER = r"-?\d+\.\d+"


def checkpoint(server) -> dict:
    """The run's weights as anyone downloads them: GET /api/checkpoint, read with torch."""
    response = requests.get(server.url + "/api/checkpoint", timeout=60)
    assert response.status_code == 200
    return torch.load(io.BytesIO(response.content), weights_only=True)


def pixel_point(page, index: int, row: int, col: int) -> tuple[float, float]:
    """Viewport point of pixel (row, col) of neuron `index`'s tile."""
    canvas = f'{by_id("hidden-weights")} canvas'
    page.locator(canvas).scroll_into_view_if_needed()
    return tuple(page.evaluate("""([selector, left, top]) => {
        const c = document.querySelector(selector), box = c.getBoundingClientRect();
        return [box.left + (left + 0.5) * box.width / c.width, box.top + (top + 0.5) * box.height / c.height];
    }""", [canvas, (index % COLUMNS) * 29 + col, (index // COLUMNS) * 29 + row]))


def printed(value: float) -> str:
    return f"{value:.4f}"  # the page prints weights to 4 decimals


def test_the_numbers_printed_about_the_weights_are_the_checkpoints(page, live_server):
    session = live_server.session
    session.reset({"batch_size": 64})
    session.step(12)
    wait_for(lambda: session.trainer.global_step == 12 and session.status == "paused", what="12 steps")
    playground = PlaygroundPage(page).open(live_server, wait_for=(f'{by_id("hidden-weights")}[data-step="12"]',))
    weights = checkpoint(live_server)
    row, bias = weights["hidden.weight"][NEURON], float(weights["hidden.bias"][NEURON])
    readout = page.locator('[data-role="tiles-hover"]')

    # Hovering pixels of tile 50: each weight printed is the checkpoint's, to its 4 decimals.
    for pixel_row, pixel_col in ((14, 14), (5, 20), (20, 7)):
        page.mouse.move(*pixel_point(page, NEURON, pixel_row, pixel_col))
        expected = (f"neuron {NEURON}: weight from pixel (row {pixel_row}, col {pixel_col}) = "
                    f"{printed(float(row[pixel_row * 28 + pixel_col]))}, bias {printed(bias)}")
        expect(readout).to_have_text(expected, timeout=TIMEOUT_MS)

    # Clicking tile 50: the readout names neuron 50 (not tile 1 / neuron 0) and its exact range.
    page.mouse.click(*pixel_point(page, NEURON, 14, 14))
    expect(readout).to_contain_text(f"Neuron {NEURON}'s tile (row 4, column 3 of 16)", timeout=TIMEOUT_MS)
    expect(readout).to_contain_text(f"bias {printed(bias)}, weights from {printed(float(row.min()))} "
                                    f"to {printed(float(row.max()))}")
    # The inspector: the same neuron, its range its own min and max (not ± the largest |w|).
    inspector = playground.by_id("neuron-inspector")
    expect(inspector).to_have_attribute("data-neuron", str(NEURON), timeout=TIMEOUT_MS)
    words = page.locator(f'{by_id("neuron-inspector")} [data-role="readout"]')
    expect(words).to_contain_text(f"bias b[{NEURON}] = {printed(bias)}; weights hidden.weight[{NEURON}] from "
                                  f"{printed(float(row.min()))} to {printed(float(row.max()))}", timeout=TIMEOUT_MS)
    assert float(row.min()) != -float(row.abs().max()) or float(row.max()) != float(row.abs().max())
    # Every weight-looking number on the readouts, one by one, is one of this neuron's numbers.
    known = {printed(float(v)) for v in row} | {printed(bias), printed(float(row.abs().max()))}
    for text in (readout.text_content(), words.text_content().split("For your drawing")[0]):
        for number in re.findall(NUMBER, text):
            assert number in known, f"{number} in {text!r} is not one of neuron {NEURON}'s numbers"
    playground.screenshot("numbers/tile-50-readout.png", locator=page.locator("#tiles-panel"))


def test_the_lessons_before_and_after_pictures_share_one_scale_and_runs_are_named_as_in_runs(page, live_server):
    session = live_server.session
    session.reset({"batch_size": 64})
    session.step(60)  # the row step judges "after training" from 50 steps on
    wait_for(lambda: session.trainer.global_step == 60 and session.status == "paused", what="60 steps")
    answer = live_server.playground.request("lesson:reveal", {"step": 4})["reveal"]
    pictures = answer.get("pictures") or []
    assert len(pictures) >= 2, "step 4 shows weights before and after training"
    # A reveal names the run by its number in Runs (step 1 says whose weights it read).
    record = live_server.engine.part().recorder.live_record_id
    assert record is not None
    said = live_server.playground.request("lesson:reveal", {"step": 1})["reveal"]["details"]
    assert any(f"training step 60 (run #{record} in Runs)" in line for line in said), said
    runs = live_server.playground.request("runs:list")
    assert runs["live_run"] == record and any(run["id"] == record for run in runs["runs"])

    PlaygroundPage(page).open(live_server, "?lesson=4", wait_for=(f'{by_id("lesson")}[data-step="4"]',))
    page.locator(f'{by_id("lesson")} {by_id("lesson-choice")}').first.click()
    figures = page.locator(f'{by_id("lesson-reveal")} .lesson-picture canvas')
    expect(figures).to_have_count(len(pictures), timeout=TIMEOUT_MS)
    limits = {figures.nth(i).get_attribute("data-limit") for i in range(figures.count())}
    assert len(limits) == 1, f"the pictures side by side have different scales: {limits}"
    legend = page.locator(f'{by_id("lesson-reveal")} {by_id("signed-legend")}')
    assert float(legend.get_attribute("data-limit")) == pytest.approx(float(limits.pop()), rel=1e-6)
    page.locator(by_id("lesson-reveal")).screenshot(path="artifacts/numbers/step-4-pictures.png")
