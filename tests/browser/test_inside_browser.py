"""The live views in a real Chromium: the hidden-weights heatmap moves as the network trains
and shows the real weights, clicking a tile opens the neuron inspector (arrow keys move between
neurons), and the activation histogram follows the digit being drawn."""
from __future__ import annotations

import math
import re
import time

import pytest

from server.engine.deltas import LEVELS as DELTA_LEVELS
from tests.support.browser import ARTIFACTS, TIMEOUT_MS, PlaygroundPage, by_id

pytestmark = pytest.mark.browser

TILE, CELL = 28, 29  # a tile and the white line after it, in mosaic pixels

# Few points per stroke (the canvas joins them with lines): each mouse event waits for a busy page.
STRAIGHT_STROKE = [[(0.5, 0.15 + 0.7 * i / 6) for i in range(7)]]
LOOP = [[(0.5 + 0.25 * math.sin(2 * math.pi * i / 12), 0.5 - 0.35 * math.cos(2 * math.pi * i / 12))
         for i in range(13)]]


def open_page(page, server):
    """The page with the tiles (first screen) and the activation histogram (scrolled to) drawn."""
    PlaygroundPage(page).open(server, wait_for=(f'{by_id("hidden-weights")}[data-step]',))
    page.locator(by_id("activation-histogram")).scroll_into_view_if_needed()
    page.wait_for_selector(f'{by_id("activation-histogram")}[data-step]', timeout=TIMEOUT_MS)
    page.locator(by_id("hidden-weights")).scroll_into_view_if_needed()


def mosaic_image(page) -> str:
    """The picture the tiles show (the mosaic canvas, as a PNG data: URI)."""
    return page.evaluate(f"() => document.querySelector('{by_id('hidden-weights')} canvas').toDataURL()")


def screen_point(page, x: float, y: float) -> tuple[float, float]:
    """Viewport coordinates of the centre of mosaic pixel (x, y) (the mosaic is scrolled into view
    first: other panels change height as the run goes on)."""
    page.locator(by_id("hidden-weights")).scroll_into_view_if_needed()
    return tuple(page.evaluate(f"""([x, y]) => {{
        const canvas = document.querySelector('{by_id('hidden-weights')} canvas');
        const box = canvas.getBoundingClientRect();
        return [box.left + (x + 0.5) * box.width / canvas.width, box.top + (y + 0.5) * box.height / canvas.height];
    }}""", [x, y]))


def tile_pixel(index: int, row: int, col: int, columns: int = 16) -> tuple[int, int]:
    return (index % columns) * CELL + col, (index // columns) * CELL + row


def draw(page, strokes):
    PlaygroundPage(page).draw(strokes)


def drawing_histogram(page) -> str:
    return page.get_attribute(by_id("activation-histogram"), "data-drawing")


def test_the_heatmap_moves_between_two_moments_of_training_and_shows_the_real_weights(page, live_server):
    open_page(page, live_server)
    before = mosaic_image(page)
    assert page.get_attribute(by_id("hidden-weights"), "data-step") == "0"
    live_server.session.update_config({"epochs": 200})  # a run that outlasts the test
    page.click(by_id("train-start"))
    page.wait_for_function(f"() => +document.querySelector('{by_id('hidden-weights')}').dataset.step >= 20",
                           timeout=TIMEOUT_MS)
    live_server.session.pause()
    step = live_server.session.trainer.global_step
    page.wait_for_selector(f'{by_id("hidden-weights")}[data-step="{step}"]', timeout=TIMEOUT_MS)
    after = mosaic_image(page)
    assert after != before, "the heatmap did not change while the network trained"
    page.screenshot(path=str(ARTIFACTS / "inside-heatmap-trained.png"), full_page=False)

    # Hovering a pixel of a tile reads back hidden.weight[j, pixel] to half a code step: the page
    # takes the small stream (5-bit codes, a power-of-two scale per row), exact to the code once
    # the run stands still (server/engine/deltas.py).
    weight = live_server.session.trainer.model.hidden.weight.detach()
    for index, row, col in ((37, 14, 10), (200, 5, 20)):
        page.mouse.move(*screen_point(page, *tile_pixel(index, row, col)))
        readout = page.locator('[data-role="tiles-hover"]')
        pattern = rf"neuron {index}: weight from pixel \(row (\d+), col (\d+)\) = (-?\d+\.\d+), bias (-?\d+\.\d+)"
        page.wait_for_function(
            """([selector, pattern]) => new RegExp(pattern).test(document.querySelector(selector).textContent)""",
            arg=['[data-role="tiles-hover"]', pattern], timeout=TIMEOUT_MS)
        shown_row, shown_col, shown_weight, shown_bias = re.search(pattern, readout.text_content()).groups()
        shown_row, shown_col, shown_weight, shown_bias = int(shown_row), int(shown_col), float(shown_weight), float(shown_bias)
        assert abs(shown_row - row) <= 1 and abs(shown_col - col) <= 1  # the pixel under the mouse
        true_weight = float(weight[index, shown_row * TILE + shown_col])
        step_size = 2.0 ** math.ceil(math.log2(float(weight[index].abs().max()))) / DELTA_LEVELS
        assert abs(shown_weight - true_weight) <= step_size / 2 + 1e-4
        assert shown_bias == pytest.approx(float(live_server.session.trainer.model.hidden.bias[index].detach()), abs=1e-4)


def test_clicking_a_tile_opens_the_inspector_and_arrow_keys_move_between_neurons(page, live_server):
    open_page(page, live_server)
    inspector = page.locator(by_id("neuron-inspector"))
    assert inspector.get_attribute("data-open") == "false"
    assert page.locator('[data-testid="neuron-inspector"] [data-role="detail"]').is_hidden()
    x, y = screen_point(page, *tile_pixel(37, 14, 14))
    page.mouse.move(x, y)
    page.mouse.click(x, y)
    page.wait_for_selector(f'{by_id("neuron-inspector")}[data-neuron="37"]', timeout=TIMEOUT_MS)
    assert inspector.get_attribute("data-open") == "true"
    assert page.locator('[data-testid="neuron-inspector"] [data-role="detail"]').is_visible()
    assert "Neuron 37 of 256" in page.text_content('[data-testid="neuron-inspector"] [data-role="title"]')
    bias = float(live_server.session.trainer.model.hidden.bias[37].detach())
    assert f"b[37] = {bias:.4f}" in page.text_content('[data-testid="neuron-inspector"] [data-role="readout"]')
    page.wait_for_function("""() => document.querySelectorAll(
        '[data-testid="neuron-inspector"] [data-role="top-digits"] canvas').length === 8""", timeout=TIMEOUT_MS)
    page.screenshot(path=str(ARTIFACTS / "inside-inspector.png"))

    page.keyboard.press("ArrowRight")
    page.wait_for_selector(f'{by_id("neuron-inspector")}[data-neuron="38"]', timeout=TIMEOUT_MS)
    page.keyboard.press("ArrowDown")  # one row of tiles down: 16 neurons on
    page.wait_for_selector(f'{by_id("neuron-inspector")}[data-neuron="54"]', timeout=TIMEOUT_MS)
    page.keyboard.press("ArrowLeft")
    page.wait_for_selector(f'{by_id("neuron-inspector")}[data-neuron="53"]', timeout=TIMEOUT_MS)
    page.keyboard.press("Escape")
    page.wait_for_selector(f'{by_id("neuron-inspector")}[data-open="false"]', timeout=TIMEOUT_MS)


def test_the_activation_histogram_follows_the_digit_being_drawn(page, live_server):
    open_page(page, live_server)
    histogram = page.locator(by_id("activation-histogram"))
    assert drawing_histogram(page) == ""
    draw(page, STRAIGHT_STROKE)
    histogram.scroll_into_view_if_needed()  # views out of view wait until they are seen
    page.wait_for_function(f"() => document.querySelector('{by_id('activation-histogram')}').dataset.drawing !== ''",
                           timeout=TIMEOUT_MS)
    page.wait_for_timeout(500)  # the answer to the finished stroke
    first = drawing_histogram(page)
    assert sum(map(int, first.split(","))) == 256  # every hidden unit, once
    assert "Your drawing:" in page.text_content('[data-role="saturation"]')

    # With the inspector open, the chosen neuron's arithmetic for the drawing is shown.
    x, y = screen_point(page, *tile_pixel(3, 10, 10))
    page.mouse.move(x, y)
    page.mouse.click(x, y)
    page.wait_for_function("""() => document.querySelector('[data-testid="neuron-inspector"] [data-role="readout"]')
        .textContent.includes('For your drawing')""", timeout=TIMEOUT_MS)

    page.click(by_id("clear"))
    histogram.scroll_into_view_if_needed()
    page.wait_for_function(f"() => document.querySelector('{by_id('activation-histogram')}').dataset.drawing === ''",
                           timeout=TIMEOUT_MS)
    draw(page, LOOP)
    histogram.scroll_into_view_if_needed()
    page.wait_for_function(
        f"""(first) => {{ const d = document.querySelector('{by_id('activation-histogram')}').dataset.drawing;
            return d !== '' && d !== first; }}""", arg=first, timeout=TIMEOUT_MS)
    time.sleep(0.5)
    second = drawing_histogram(page)
    assert second != first and sum(map(int, second.split(","))) == 256
    page.locator(by_id("network-diagram")).scroll_into_view_if_needed()
    page.wait_for_selector(f'{by_id("network-diagram")}[data-lit="true"]', timeout=TIMEOUT_MS)
    page.locator("#inside-panel").screenshot(path=str(ARTIFACTS / "inside-panel-drawing.png"))


def test_every_view_copes_with_a_deep_wide_network_and_the_per_tile_scale(page, live_server):
    live_server.session.reset({"hidden_sizes": [300, 64, 32], "activation": "relu"})
    live_server.session.step(2)
    open_page(page, live_server)
    page.wait_for_selector(f'{by_id("hidden-weights")}[data-step="2"]', timeout=TIMEOUT_MS)
    caption = page.text_content('[data-role="tiles-caption"]')
    assert "Showing the first 256 of 300 neurons" in caption
    layer_select = page.locator('[data-role="layer-select"]')
    assert layer_select.is_visible() and layer_select.locator("option").count() == 3
    page.locator(by_id("distributions")).scroll_into_view_if_needed()
    page.wait_for_function(f"""() => {{ const el = document.querySelector('{by_id('distributions')}');
        return el.data && el.data.length === 8; }}""", timeout=TIMEOUT_MS)  # 4 layers x weights, gradients
    draw(page, STRAIGHT_STROKE)
    page.locator(by_id("network-diagram")).scroll_into_view_if_needed()
    page.wait_for_function(f"() => document.querySelector('{by_id('network-diagram')}').dataset.lit === 'true'",
                           timeout=TIMEOUT_MS)
    layer_select.select_option("2")  # the third hidden layer's 32 activations for the drawing
    page.wait_for_function(f"""() => {{ const d = document.querySelector('{by_id('activation-histogram')}').dataset.drawing;
        return d !== '' && d.split(',').reduce((a, b) => a + +b, 0) === 32; }}""", timeout=TIMEOUT_MS)

    shared = mosaic_image(page)
    page.check('input[name="tile-scale"][value="per-tile"]')
    page.wait_for_selector(f'{by_id("hidden-weights")}[data-mode="per-tile"]', timeout=TIMEOUT_MS)
    page.wait_for_function("(before) => document.querySelector('[data-testid=\"hidden-weights\"] canvas').toDataURL() !== before",
                           arg=shared, timeout=TIMEOUT_MS)
    page.locator("#inside-panel").screenshot(path=str(ARTIFACTS / "inside-deep-per-tile.png"))
