"""One picture language: a known positive weight is red in every signed view of the page (the
hidden-weight tiles, the inspector, the forward pass's W[j] and x·W[j], the output weights, the
diagram's connections, the inspector's histogram), each signed picture carries its scale in the
same legend words, and the header says what is trained and what predicts."""
from __future__ import annotations

import io

import pytest
from PIL import Image

from tests.support.browser import TIMEOUT_MS, PlaygroundPage, by_id

pytestmark = pytest.mark.browser

NEURON, PIXEL, DIGIT = 5, 14 * 28 + 14, 3  # hidden neuron 5 looks at the centre pixel; digit 3 reads neuron 5
CENTRE_STROKE = [[(0.5, 0.1 + 0.8 * i / 12) for i in range(13)]]  # a vertical line through the middle


def colour_at(page, x: float, y: float) -> tuple[int, int, int]:
    """The colour on screen at viewport point (x, y), from a screenshot: what a person sees."""
    png = page.screenshot(timeout=TIMEOUT_MS)  # the viewport, where (x, y) is measured
    return Image.open(io.BytesIO(png)).convert("RGB").getpixel((int(x), int(y)))


def is_red(rgb) -> bool:
    r, g, b = rgb
    return r > 150 and r > b + 60 and r > g + 40


def picture_pixel(page, selector: str, row: int, col: int, side: int = 28) -> tuple[float, float]:
    """Viewport point of pixel (row, col) of a square picture canvas."""
    page.locator(selector).scroll_into_view_if_needed()
    box = page.locator(selector).bounding_box()
    return box["x"] + (col + 0.5) * box["width"] / side, box["y"] + (row + 0.5) * box["height"] / side


def tile_centre(page, columns: int = 16) -> tuple[float, float]:
    """Viewport point of the centre pixel of neuron NEURON's tile (tiles are 28 pixels and a gap)."""
    canvas = f'{by_id("hidden-weights")} canvas'
    page.locator(canvas).scroll_into_view_if_needed()
    return tuple(page.evaluate("""([selector, left, top]) => {
        const c = document.querySelector(selector), box = c.getBoundingClientRect();
        return [box.left + (left + 0.5) * box.width / c.width, box.top + (top + 0.5) * box.height / c.height];
    }""", [canvas, (NEURON % columns) * 29 + 14, (NEURON // columns) * 29 + 14]))


def legend_of(page, selector: str):
    """The signed legend inside `selector`: its scale and its words."""
    legend = page.locator(f"{selector} {by_id('signed-legend')}").first
    return float(legend.get_attribute("data-limit")), legend.text_content()


def test_a_known_positive_weight_is_red_in_every_signed_view_with_its_scale(page, live_server):
    session = live_server.session
    weights = {name: tensor.clone() for name, tensor in session.trainer.model.state_dict().items()}
    weights["hidden.weight"][NEURON, PIXEL] = 1.0  # the largest weight of the layer, positive
    weights["output.weight"][DIGIT, NEURON] = 1.0
    session.start_from_weights(weights)
    playground = PlaygroundPage(page).open(live_server, wait_for=(f'{by_id("hidden-weights")}[data-step]',))

    # The hidden-weight tiles: tile 5 is in the first row of 16, its centre pixel red.
    x, y = tile_centre(page)
    assert is_red(colour_at(page, x, y)), colour_at(page, x, y)
    limit, words = legend_of(page, "#tiles-panel")
    assert limit == pytest.approx(1.0, abs=0.01)  # the shared scale is the largest |w|: ours
    assert "red: raises" in words and "blue: lowers it" in words

    # The inspector: the same neuron's weights, the centre red, the same legend with its scale.
    playground.draw(CENTRE_STROKE)
    playground.settled_prediction()
    page.mouse.click(*tile_centre(page))
    page.wait_for_selector(f'{by_id("neuron-inspector")}[data-neuron="{NEURON}"]', timeout=TIMEOUT_MS)
    inspector = by_id("neuron-inspector")
    page.wait_for_function("""() => document.querySelector('[data-testid="neuron-inspector"] [data-role="readout"]')
        .textContent.includes('For your drawing')""", timeout=TIMEOUT_MS)
    assert is_red(colour_at(page, *picture_pixel(page, f'{inspector} [data-role="weights"]', 14, 14)))
    limit, words = legend_of(page, f'{inspector} [data-role="weights-legend"]')
    assert limit == pytest.approx(1.0, abs=0.01) and "red: raises" in words
    # Its contribution x·w at the inked centre is positive: red as well.
    assert is_red(colour_at(page, *picture_pixel(page, f'{inspector} [data-role="contributions"]', 14, 14)))
    assert "red: raises" in legend_of(page, f'{inspector} [data-role="contributions-legend"]')[1]
    # Its histogram: bars of positive weights in the palette's red.
    page.wait_for_function("""() => { const el = document.querySelector('[data-testid="neuron-inspector"] [data-role="histogram"]');
        return el.data && el.data.length === 1; }""", timeout=TIMEOUT_MS)
    bars = page.evaluate("""() => { const t = document.querySelector('[data-testid="neuron-inspector"] [data-role="histogram"]').data[0];
        return t.x.map((x, i) => [x, t.marker.color[i]]); }""")
    positive_colours = {colour for centre, colour in bars if centre > 0}
    negative_colours = {colour for centre, colour in bars if centre < 0}
    assert len(positive_colours) == 1 and len(negative_colours) == 1
    assert is_red(Image.new("RGB", (1, 1), positive_colours.pop()).getpixel((0, 0)))

    # The forward pass: neuron 5's W[j] and x·W[j] pictures, red at the centre, same legend words.
    page.locator(by_id("forward-steps")).scroll_into_view_if_needed()
    page.locator(by_id("neuron-index")).fill(str(NEURON))
    page.locator(by_id("neuron-index")).press("Enter")
    page.wait_for_function(f"() => document.querySelector('{by_id('neuron-sum')}')?.textContent.includes('j = {NEURON} of self.hidden')",
                           timeout=TIMEOUT_MS)
    pictures = page.locator(f'{by_id("neuron-pictures")} figure')
    assert pictures.count() == 2
    for k in range(2):
        figure = pictures.nth(k)
        figure.scroll_into_view_if_needed()
        box = figure.locator("canvas").bounding_box()
        centre = (box["x"] + 14.5 * box["width"] / 28, box["y"] + 14.5 * box["height"] / 28)
        assert is_red(colour_at(page, *centre)), (k, colour_at(page, *centre))
        assert "red: raises" in figure.locator(by_id("signed-legend")).text_content()
        assert float(figure.locator(by_id("signed-legend")).get_attribute("data-limit")) > 0

    # The output weights: the cell (digit 3, neuron 5), where Plotly drew it, is red.
    output = page.locator(by_id("output-weights"))
    output.scroll_into_view_if_needed()
    page.wait_for_function(f"() => document.querySelector('{by_id('output-weights')}').data", timeout=TIMEOUT_MS)
    x, y = output.evaluate("""(el, [k, j]) => { const layout = el._fullLayout, box = el.getBoundingClientRect();
        return [box.left + layout.xaxis._offset + layout.xaxis.l2p(j), box.top + layout.yaxis._offset + layout.yaxis.l2p(k)]; }""",
                           [DIGIT, NEURON])
    assert is_red(colour_at(page, x, y)), colour_at(page, x, y)
    assert "red: raises the digit's logit" in legend_of(page, "#inside-panel [data-role='output-legend']")[1]

    # The diagram: the drawing's strongest input→hidden signal is our pixel × weight: a red line.
    page.locator(by_id("network-diagram")).scroll_into_view_if_needed()
    page.wait_for_selector(f'{by_id("network-diagram")}[data-lit="true"]', timeout=TIMEOUT_MS)
    lines = page.evaluate(f"""() => document.querySelector('{by_id('network-diagram')}').data
        .filter(t => t.meta && t.meta.sign).map(t => [t.meta.sign, t.line.color, t.line.width])""")
    widest = max(lines, key=lambda line: line[2])
    assert widest[0] == "positive"
    assert is_red(Image.new("RGB", (1, 1), widest[1]).getpixel((0, 0)))
    assert {colour for sign, colour, _ in lines if sign == "negative"} <= {page.evaluate(
        "async () => (await import('/static/js/lib/palette.js')).NEGATIVE")}


def test_the_header_says_what_is_trained_and_what_predicts(page, live_server):
    playground = PlaygroundPage(page).open(live_server)
    objective = playground.by_id("training-objective")
    assert "Trains: CrossEntropyLoss, the loss is given the logits self.output(…), before the softmax." in objective.text_content()
    assert "Predicts: forward(x), the softmax of the 10 logits." in objective.text_content()

    live_server.session.reset({"output": "softmax"})
    page.wait_for_function(f"() => document.querySelector('{by_id('training-objective')}').dataset.output === 'softmax'",
                           timeout=TIMEOUT_MS)
    assert "forward(x) as written, softmax probabilities (so softmax runs twice)" in objective.text_content()
    assert "Predicts: forward(x), the softmax of the 10 logits." in objective.text_content()
    assert playground.text("architecture") == "784 → 256 sigmoid → 10"
