"""Watch your own network, any network (issue 20, item 3), in Chromium: a user's script trains a
model the playground's own views cannot follow (32×32 colour inputs, a skip connection, 32×32
grey inputs with a layer the user says is a 10×10 image) against a real `python -m server`; its
link draws each Linear layer's weights (tiles whose pixels are that neuron's weights, or rows),
says in words why the canvas and the network's other views do not apply, and charts every
named number the script sends, readable with the keyboard."""
from __future__ import annotations

import numpy as np
import pytest

from tests.browser.test_watch_browser import open_run, server  # noqa: F401 (fixtures)
from tests.support.browser import TIMEOUT_MS, by_id, own_page
from tests.support.watch_scripts import finished, key_of, make_model, start_script

# The page's one diverging palette (static/js/lib/palette.js), rebuilt here to check its colours.
DIVERGING = [(0, "#1f4e9c"), (0.2, "#4a8ad4"), (0.4, "#bcd6f0"), (0.5, "#f8f8f8"), (0.6, "#f5c2b0"),
             (0.8, "#d8604a"), (1, "#a11a1f")]


def palette(code: int) -> np.ndarray:
    t, s = code / 255, 1
    while s < len(DIVERGING) - 1 and DIVERGING[s][0] < t:
        s += 1
    (t0, c0), (t1, c1) = DIVERGING[s - 1], DIVERGING[s]
    a = np.array([int(c0[i:i + 2], 16) for i in (1, 3, 5)], float)
    b = np.array([int(c1[i:i + 2], 16) for i in (1, 3, 5)], float)
    return np.floor(a + (t - t0) / (t1 - t0) * (b - a) + 0.5)


def codes_of(weight: np.ndarray) -> np.ndarray:
    """Each weight's byte on the page's scale (docs/protocol.md, watch:weights)."""
    return np.clip(np.rint(128 + 127 * weight / np.abs(weight).max()), 1, 255)


def picture(page) -> dict:
    """The layer picture's canvas: its pixels (RGB, height x width) and what it says it draws."""
    drawn = page.evaluate(f"""() => {{ const c = document.querySelector('{by_id("layer-picture")}');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height);
        return {{ width: c.width, height: c.height, data: Array.from(d.data), ...c.dataset }}; }}""")
    pixels = np.array(drawn.pop("data"), dtype=float).reshape(drawn["height"], drawn["width"], 4)[..., :3]
    return {**drawn, "pixels": pixels}


def tile(drawn: dict, j: int) -> np.ndarray:
    """Neuron j's tile (height x width x RGB) out of the canvas."""
    w, h, gap, columns = (int(drawn[k]) for k in ("tileWidth", "tileHeight", "gap", "columns"))
    left, top = (j % columns) * (w + gap), (j // columns) * (h + gap)
    return drawn["pixels"][top:top + h, left:left + w]


def wait_for_final_picture(page, layer: int, step: int):
    try:
        page.wait_for_function(f"""() => {{ const c = document.querySelector('{by_id("layer-picture")}');
            return c.dataset.layer === '{layer}' && c.dataset.step === '{step}'; }}""", timeout=TIMEOUT_MS)
    except Exception as err:  # what the page shows instead
        shown = page.eval_on_selector(by_id("layer-picture"), "c => ({...c.dataset})")
        raise AssertionError(f"layer {layer} at step {step} not drawn: {shown}, "
                             f"{page.text_content(by_id('layer-picture-caption'))!r}") from err


def pick_layer(page, index: int, step: int):
    page.select_option(by_id("layer-picture-select"), str(index))
    wait_for_final_picture(page, index, step)


def finished_on_the_page(page, process):
    lines, _ = finished(process, timeout=240)
    page.wait_for_function(f"() => document.querySelector('{by_id('status')}').textContent === 'done'",
                           timeout=TIMEOUT_MS)
    return lines[-1]


def check_rows(drawn, weight):
    """Rows: neuron j's row, left to right, is its weights on the diverging scale."""
    assert drawn["mode"] == "rows" and drawn["width"] == weight.shape[1]
    row_height = int(drawn["tileHeight"])
    expected = np.stack([np.stack([palette(int(c)) for c in row]) for row in codes_of(weight)])
    for j in (0, weight.shape[0] - 1):
        np.testing.assert_allclose(drawn["pixels"][j * row_height], expected[j], atol=4)
        np.testing.assert_allclose(drawn["pixels"][(j + 1) * row_height - 1], expected[j], atol=4)


def test_colour_images_show_each_neuron_as_a_colour_tile_and_every_named_number_is_charted(
        browser, server, installed_client, tmp_path):  # noqa: F811
    steps = 150
    process = start_script("colour", server.url, tmp_path, installed_client, steps=steps, pause_s=0.02)
    try:
        key = key_of(process)
        with own_page(browser) as page:
            playground = open_run(page, server, key)
            # The canvas predicts with it (the drawing resampled to 32×32 colour: test_watch_canvas_image_browser.py);
            # the views that compute with the playground's own network say why they do not apply.
            assert not playground.by_id("watched-canvas-why").is_visible()
            assert "compute with the network" in playground.text("watched-inside-why")
            # Its first layer's tiles take the playground's tiles' place.
            assert not playground.by_id("hidden-weights").is_visible()
            assert playground.by_id("layer-pictures").is_visible()
            assert page.eval_on_selector_all(f'{by_id("layer-picture-select")} option', "os => os.map(o => o.textContent)") == [
                "1: nn.Linear(3072, 32)", "3: nn.Linear(32, 10)"]

            # Every named number besides the loss and accuracy has a chart: lr and grad_norm.
            charts = by_id("number-chart")
            page.wait_for_function(f"""() => [...document.querySelectorAll('{charts}')]
                .map(f => f.dataset.name).join() === 'grad_norm,lr' || [...document.querySelectorAll('{charts}')]
                .map(f => f.dataset.name).join() === 'lr,grad_norm'""", timeout=TIMEOUT_MS)
            final = finished_on_the_page(page, process)
            assert final["shows_network"] is False
            page.wait_for_function(f"""() => Number(document.querySelector('{charts}[data-name="lr"]').dataset.points) > 3
                && document.querySelector('{charts}[data-name="lr"]').getAttribute('aria-label').includes('last 0.0005')""",
                                   timeout=TIMEOUT_MS)
            lr_chart = page.locator(f'{charts}[data-name="lr"]')
            label = lr_chart.get_attribute("aria-label")
            assert label.startswith("lr by step:") and "highest 0.001" in label and "lowest 0.0005" in label
            # The keyboard reads it point by point.
            lr_chart.focus()
            page.keyboard.press("End")
            assert lr_chart.locator(".number-readout").text_content().endswith(": lr = 0.0005")
            page.keyboard.press("Home")
            assert lr_chart.locator(".number-readout").text_content().endswith(": lr = 0.001")
            assert "accuracy" not in [f for f in page.eval_on_selector_all(charts, "fs => fs.map(f => f.dataset.name)")]
            playground.screenshot("watch/colour-numbers.png", locator=page.locator("#curves-panel"))

            # The final weights (float32, exact): each tile's red, green and blue are that neuron's
            # weights of the three channels, channel-first as torch flattens (3, 32, 32).
            model = make_model("colour", tmp_path / "colour.pt")
            weight = model[1].weight.detach().numpy()
            page.locator(by_id("layer-picture")).scroll_into_view_if_needed()
            wait_for_final_picture(page, 0, steps)
            drawn = picture(page)
            assert drawn["mode"] == "colour-tiles" and (drawn["tileWidth"], drawn["tileHeight"]) == ("32", "32")
            assert drawn["neurons"] == "32"
            codes = codes_of(weight).reshape(32, 3, 32, 32).transpose(0, 2, 3, 1)  # neuron, y, x, channel
            for j in (0, 7, 31):
                np.testing.assert_allclose(tile(drawn, j), codes[j], atol=1)
            assert not np.allclose(tile(drawn, 0), tile(drawn, 1), atol=1)  # each neuron its own picture
            assert "colour" in playground.text("layer-picture-caption") and "Step 150" in playground.text("layer-picture-caption")
            # Its weights over training: the spread at each snapshot, said in words too.
            spread = playground.by_id("layer-spread")
            assert int(spread.get_attribute("data-points")) >= 2
            words = spread.get_attribute("aria-label")
            assert words.startswith("1's weights over training: ") and "at step 150 the median is" in words
            # A neuron picked with the keys is read out.
            playground.by_id("layer-picture").focus()
            page.keyboard.press("ArrowRight")
            page.keyboard.press("ArrowRight")
            assert playground.text("layer-picture-readout").startswith("Neuron 1 (row 1 of 1.weight): weights from")
            playground.screenshot("watch/colour-tiles.png", locator=page.locator("#tiles-panel"))

            # The last layer (32 inputs: no image) as rows.
            pick_layer(page, 1, steps)
            check_rows(picture(page), model[3].weight.detach().numpy())
            assert playground.serious_axe_violations("#tiles-panel", "#curves-panel") == []
            playground.screenshot("watch/colour-rows.png", locator=page.locator("#tiles-panel"))
    finally:
        if process.poll() is None:
            process.kill()


@pytest.mark.parametrize("kind", ["residual", "grey"])
def test_a_network_the_page_cannot_follow_still_shows_each_layer_as_tiles_or_rows(
        browser, server, installed_client, tmp_path, kind):  # noqa: F811
    steps = 120
    process = start_script(kind, server.url, tmp_path, installed_client, steps=steps, pause_s=0.02)
    try:
        key = key_of(process)
        with own_page(browser) as page:
            playground = open_run(page, server, key)
            finished_on_the_page(page, process)
            # Only what computes with the network says it cannot follow it, each in words (the canvas
            # predicts with a chain of 32×32 grey inputs: the drawing resampled).
            why = playground.text("watched-canvas-why")
            if kind == "residual":
                assert why.startswith("The canvas cannot predict with this network: ") and len(why) > 60
            else:
                assert not playground.by_id("watched-canvas-why").is_visible()
            for note in ("watched-inside-why", "watched-explain-why", "watched-evaluate-why"):
                assert "follow" in playground.text(note), note
            model = make_model(kind, tmp_path / f"{kind}.pt")
            linears = [m for m in model.modules() if m.__class__.__name__ == "Linear"]
            playground.by_id("layer-picture").scroll_into_view_if_needed()
            wait_for_final_picture(page, 0, steps)
            drawn = picture(page)
            first = linears[0].weight.detach().numpy()
            side = 28 if kind == "residual" else 32
            assert drawn["mode"] == "grey-tiles" and drawn["tileWidth"] == str(side)
            codes = codes_of(first).reshape(-1, side, side)
            for j in (0, first.shape[0] - 1):
                expected = np.stack([np.stack([palette(int(c)) for c in row]) for row in codes[j]])
                np.testing.assert_allclose(tile(drawn, j), expected, atol=4)
            playground.screenshot(f"watch/{kind}-tiles.png", full_page=True)
            pick_layer(page, 1, steps)
            second = linears[1].weight.detach().numpy()
            if kind == "grey":  # the user's image_shape: its 100 inputs as 10x10 tiles
                drawn = picture(page)
                assert drawn["mode"] == "grey-tiles" and drawn["tileWidth"] == "10"
                expected = np.stack([np.stack([palette(int(c)) for c in row]) for row in codes_of(second).reshape(-1, 10, 10)[5]])
                np.testing.assert_allclose(tile(drawn, 5), expected, atol=4)
            else:
                check_rows(picture(page), second)
            playground.screenshot(f"watch/{kind}-second-layer.png", locator=page.locator("#tiles-panel"))
    finally:
        if process.poll() is None:
            process.kill()


def test_a_chain_the_page_follows_keeps_its_tiles_and_draws_its_other_layers_below(
        browser, server, installed_client, tmp_path):  # noqa: F811
    steps = 100
    process = start_script("sequential", server.url, tmp_path, installed_client, steps=steps, pause_s=0.02)
    try:
        key = key_of(process)
        with own_page(browser) as page:
            playground = open_run(page, server, key)
            finished_on_the_page(page, process)
            # The playground's own tiles are the first layer's; the pictures below start at the second.
            assert playground.by_id("hidden-weights").is_visible()
            assert playground.by_id("watched-canvas-why").is_hidden() and playground.by_id("watched-inside-why").is_hidden()
            playground.by_id("layer-picture").scroll_into_view_if_needed()
            wait_for_final_picture(page, 1, steps)
            model = make_model("sequential", tmp_path / "sequential.pt")
            check_rows(picture(page), model[3].weight.detach().numpy())  # 128 inputs: rows
            assert page.eval_on_selector(by_id("layer-picture-select"), "s => s.options.length") == 3
            playground.screenshot("watch/sequential-tiles-panel.png", locator=page.locator("#tiles-panel"))
    finally:
        if process.poll() is None:
            process.kill()


def test_inputs_that_are_no_image_and_wider_than_a_row_are_rows_folded_into_lines(
        browser, server, installed_client, tmp_path):  # noqa: F811
    steps = 60
    process = start_script("wide", server.url, tmp_path, installed_client, steps=steps, pause_s=0.02)
    try:
        key = key_of(process)
        with own_page(browser) as page:
            playground = open_run(page, server, key)
            finished_on_the_page(page, process)
            playground.by_id("layer-picture").scroll_into_view_if_needed()
            wait_for_final_picture(page, 0, steps)
            drawn = picture(page)
            assert drawn["mode"] == "rows" and drawn["width"] == 4096 and drawn["lineHeight"] == "1"
            assert drawn["height"] == 4 * 2  # 4 neurons, each 5,000 weights in 2 lines of 4,096
            weight = make_model("wide", tmp_path / "wide.pt")[0].weight.detach().numpy()
            codes = codes_of(weight)
            for j in (0, 3):
                for i in (0, 17, 4095, 4096, 4999):
                    np.testing.assert_allclose(drawn["pixels"][j * 2 + i // 4096, i % 4096], palette(int(codes[j, i])),
                                               atol=4, err_msg=f"neuron {j}, input {i}")
            assert "folded into lines of 4,096" in playground.text("layer-picture-caption")
    finally:
        if process.poll() is None:
            process.kill()
