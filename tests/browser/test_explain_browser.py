"""The explainer in a real Chromium: editing the Linear sandbox recomputes y with a real
nn.Linear; a picked neuron's arithmetic for the drawing on screen equals the model's own number;
clicking a code line highlights what it makes and hovering a view points back to its line."""
from __future__ import annotations

import json
import math
import re

import pytest
import torch
from playwright.sync_api import expect

from tests.support.browser import ARTIFACTS, PlaygroundPage, by_id

pytestmark = pytest.mark.browser


def has_class(name: str):
    return re.compile(rf"(^|\s){name}(\s|$)")


def open_page(page, server):
    PlaygroundPage(page).open(server)
    expect(page.locator(f'{by_id("model-code")} li')).not_to_have_count(0)


def draw_a_one(page):
    PlaygroundPage(page).draw([[(0.5, 0.15 + 0.05 * step) for step in range(16)]])


def shoot(locator, name: str):
    ARTIFACTS.mkdir(exist_ok=True)
    locator.screenshot(path=str(ARTIFACTS / name))


def sandbox_cell(page, name, i, j=None):
    where = f"{i}" if j is None else f"{i},{j}"
    return page.locator(f'{by_id("linear-sandbox")} input[data-cell="{name}:{where}"]')


def displayed(page, name):
    """The sandbox's grid as numbers, as the inputs hold them."""
    grid = page.locator(by_id(f"sandbox-{name}"))
    return [[float(v) for v in row] for row in grid.evaluate(
        "t => [...t.rows].map(r => [...r.querySelectorAll('input')].map(i => i.value))")]


def shown_y(page):
    grid = page.locator(by_id("sandbox-y"))
    return grid.evaluate("t => [...t.rows].map(r => [...r.cells].map(c => Number(c.dataset.value)))")


def test_sandbox_shows_the_questions_numbers_and_recomputes_on_every_edit(page, live_server):
    open_page(page, live_server)
    sandbox = page.locator(by_id("linear-sandbox"))

    for (i, j), text in {(0, 0): "-0.8133", (0, 1): "-0.2959", (1, 0): "0.8079", (1, 1): "-1.1077",
                         (2, 0): "0.2223", (2, 1): "-0.6114"}.items():
        expect(page.locator(by_id(f"sandbox-y-{i}-{j}"))).to_have_text(text)
    expect(page.locator(by_id("sandbox-formula-0-1"))).to_contain_text("y[0,1] = x[0,0]*W[1,0] + x[0,1]*W[1,1] + b[1]")
    shoot(sandbox, "explain_sandbox_question.png")

    # Edit one weight: y[0, 0] = 1*1 + (-1)*0.585608 + 0.222314
    sandbox_cell(page, "weight", 0, 0).fill("1")
    expect(page.locator(by_id("sandbox-y-0-0"))).to_have_text("0.6367")
    expect(page.locator(by_id("sandbox-formula-0-0"))).to_contain_text(
        "1.0000*1.0000 + (-1.0000)*0.5856 + 0.2223 = 0.6367")
    expect(page.locator(by_id("sandbox-y-1-0"))).to_have_text("0.8079")  # x[1, 0] = 0: untouched

    # Three input features: x and W grow a column, the new numbers start at 0.
    page.locator(by_id("sandbox-in")).fill("3")
    page.locator(by_id("sandbox-in")).dispatch_event("change")
    expect(page.locator(by_id("sandbox-signature"))).to_have_text("nn.Linear(3, 2)")
    expect(page.locator(by_id("sandbox-w-shape"))).to_contain_text("(2, 3)")
    sandbox_cell(page, "x", 0, 2).fill("2")
    sandbox_cell(page, "weight", 0, 2).fill("0.5")
    expect(page.locator(by_id("sandbox-y-0-0"))).to_have_text("1.6367")

    # A fourth row of x, and a number that is not one.
    page.locator(by_id("sandbox-rows")).fill("4")
    page.locator(by_id("sandbox-rows")).dispatch_event("change")
    expect(page.locator(by_id("sandbox-y-shape"))).to_have_text("(4, 2)")
    expect(page.locator(by_id("sandbox-y-3-1"))).to_have_text("-0.6114")  # a zero row gives b
    sandbox_cell(page, "bias", 0).fill("abc")
    expect(page.locator(by_id("sandbox-error"))).to_contain_text('bias[0] is not a number: "abc"')
    expect(sandbox_cell(page, "bias", 0)).to_have_class(has_class("invalid"))
    # Past float64 (JSON would carry it as null) and past the sandbox's bound: what to write instead.
    sandbox_cell(page, "bias", 0).fill("1e309")
    expect(page.locator(by_id("sandbox-error"))).to_have_text(
        'bias[0] is too large ("1e309" is past what a number can hold): write a number from -1,000,000 to 1,000,000')
    sandbox_cell(page, "bias", 0).fill("2e7")
    expect(page.locator(by_id("sandbox-error"))).to_have_text(
        "bias[0] is 2e7, outside the sandbox's range: write a number from -1,000,000 to 1,000,000")
    sandbox_cell(page, "bias", 0).fill("0.25")
    expect(page.locator(by_id("sandbox-error"))).to_be_hidden()
    expect(page.locator(by_id("sandbox-y-3-0"))).to_have_text("0.2500")

    # Randomize: W and b as nn.Linear(3, 2) draws them, and y follows.
    before = displayed(page, "w")
    page.locator(by_id("sandbox-randomize")).click()
    expect(page.locator(by_id("sandbox-note"))).to_contain_text("1/√in_features = ±0.5774")
    expect(page.locator(by_id("sandbox-y-3-0"))).not_to_have_text("0.2500")
    weight, bias = displayed(page, "w"), [row[0] for row in displayed(page, "b")]
    assert weight != before
    assert all(abs(v) <= 1 / math.sqrt(3) for v in sum(weight, []) + bias)
    x = torch.tensor(displayed(page, "x"))
    torch.testing.assert_close(torch.tensor(shown_y(page)), x @ torch.tensor(weight).T + torch.tensor(bias),
                               rtol=0, atol=1e-5)
    shoot(sandbox, "explain_sandbox_edited.png")

    page.locator(by_id("sandbox-reset")).click()
    expect(page.locator(by_id("sandbox-y-0-1"))).to_have_text("-0.2959")
    expect(page.locator(by_id("sandbox-signature"))).to_have_text("nn.Linear(2, 2)")


def sent_explain_requests(frames):
    """explain:forward payloads the page sent, from the Socket.IO frames on the wire."""
    payloads = []
    for frame in frames:
        if isinstance(frame, str) and '"explain:forward"' in frame:
            body = frame[frame.index("["):]
            payloads.append(json.loads(body)[1])
    return payloads


def test_a_picked_neurons_arithmetic_equals_the_models_pre_activation(page, live_server):
    session = live_server.session
    session.step(20)  # trained a little, then paused: the weights stay put during the test
    frames = []
    page.on("websocket", lambda ws: ws.on("framesent", lambda payload: frames.append(payload)))
    open_page(page, live_server)
    draw_a_one(page)
    page.locator(by_id("forward-steps")).scroll_into_view_if_needed()  # explained while in view
    expect(page.locator(by_id("neuron-result"))).to_be_visible()

    page.locator(by_id("neuron-index")).fill("37")
    page.locator(by_id("neuron-index")).press("Enter")
    expect(page.locator(by_id("neuron-sum"))).to_contain_text("j = 37 of self.hidden")
    expect(page.locator(by_id("neuron-term"))).to_have_count(8)
    expect(page.locator(by_id("neuron-check"))).to_have_class(has_class("agree"))

    pixels = [p for p in sent_explain_requests(frames) if p.get("neuron") == 37][-1]["pixels"]
    model = session.trainer.model
    x = torch.tensor(pixels).reshape(1, -1)
    with torch.no_grad():
        z = model.hidden(x)[0]
    result = float(page.locator(by_id("neuron-result")).get_attribute("data-value"))
    assert result == pytest.approx(z[37].item(), abs=1e-5)
    expect(page.locator(by_id("neuron-result"))).to_contain_text(f"{z[37].item():.6f}")
    expect(page.locator(by_id("neuron-activation"))).to_contain_text(f"{torch.sigmoid(z[37]).item():.4f}")
    expect(page.locator(by_id("forward-input"))).to_contain_text(f"{int((x != 0).sum())} with ink")
    shoot(page.locator(by_id("forward-steps")), "explain_forward_steps.png")

    page.locator(by_id("neuron-most-active")).click()
    expect(page.locator(by_id("neuron-sum"))).to_contain_text(f"j = {int(z.argmax())} of self.hidden")

    page.locator(by_id("neuron-layer")).select_option("output")
    expect(page.locator(by_id("neuron-sum"))).to_contain_text("of self.output")
    with torch.no_grad():
        logits = model.output(torch.sigmoid(model.hidden(x)))[0]
    j = int(logits.argmax())
    expect(page.locator(by_id("neuron-sum"))).to_contain_text(f"j = {j} of self.output")
    result = float(page.locator(by_id("neuron-result")).get_attribute("data-value"))
    assert result == pytest.approx(logits[j].item(), abs=1e-5)
    softmax = page.locator(by_id("softmax-table"))
    expect(softmax.locator("tbody tr.best td").first).to_have_text(str(j))
    probabilities = torch.softmax(logits, 0)
    expect(softmax.locator("tbody tr.best td").last).to_have_text(f"{probabilities[j].item():.4f}")


def code_line(page, text):
    """The button of the code line with this text (a line that makes views is a button)."""
    return page.locator(f'{by_id("model-code")} li', has_text=text).first.locator("button")


def test_clicking_a_code_line_highlights_its_views_and_hovering_a_view_points_back(page, live_server):
    open_page(page, live_server)
    softmax_line = code_line(page, "x = F.softmax(self.output(x), dim=1)")
    hidden_line = code_line(page, "self.hidden = nn.Linear(784, 256)")

    softmax_line.click()
    expect(page.locator(by_id("probabilities"))).to_have_class(has_class("explain-highlight"))
    expect(page.locator(by_id("forward-softmax"))).to_have_class(has_class("explain-highlight"))
    expect(softmax_line).to_have_attribute("aria-pressed", "true")
    expect(page.locator(by_id("code-selection"))).to_contain_text("probability bars")

    hidden_line.click()
    expect(page.locator(by_id("probabilities"))).not_to_have_class(has_class("explain-highlight"))
    expect(page.locator(by_id("shapes-hidden"))).to_have_class(has_class("explain-highlight"))
    expect(page.locator(by_id("code-selection"))).to_contain_text("256, 784")
    # The look-inside views get highlighted when they are on the page, and named as absent if not.
    for view in ("hidden-weights", "network-diagram"):
        if page.locator(by_id(view)).count():
            expect(page.locator(by_id(view)).first).to_have_class(has_class("explain-highlight"))
        else:
            expect(page.locator(by_id("code-selection"))).to_contain_text("(not on this page yet)")
    shoot(page.locator("#explain-panel .explain-top"), "explain_code_selected.png")

    page.locator(by_id("loss-chart")).hover()
    pointer = page.locator(by_id("code-pointer"))
    expect(pointer).to_be_visible()
    training_line = page.locator(f'{by_id("model-code")} li.pointed')
    expect(training_line).to_have_count(1)
    expect(training_line).to_contain_text("How the playground trains it")
    expect(pointer).to_contain_text(f"made by line {training_line.get_attribute('data-line')}")

    page.locator(by_id("probabilities")).hover()
    expect(page.locator(f'{by_id("model-code")} li.pointed')).to_contain_text("F.softmax(self.output(x), dim=1)")
    views_of_lines = {"hidden-weights": "self.hidden = nn.Linear(784, 256)",
                      "output-weights": "self.output = nn.Linear(256, 10)",
                      "activation-histogram": "x = F.sigmoid(self.hidden(x))"}
    for view, line in views_of_lines.items():  # the look-inside views, where they are on the page
        if page.locator(by_id(view)).count():
            page.locator(by_id(view)).first.hover()
            expect(page.locator(f'{by_id("model-code")} li.pointed')).to_contain_text(line)
    shoot(page.locator("#draw-panel"), "explain_pointer.png")

    hidden_line.click()  # a second click lets go
    expect(page.locator(".explain-highlight")).to_have_count(0)
    softmax_line.focus()
    page.keyboard.press("Enter")  # lines work from the keyboard too
    expect(page.locator(by_id("forward-softmax"))).to_have_class(has_class("explain-highlight"))
    page.keyboard.press(" ")  # Space toggles the line, and is not the page's start shortcut here
    expect(page.locator(".explain-highlight")).to_have_count(0)
    assert live_server.session.status == "idle"


def test_the_softmax_trap_buttons_switch_how_the_shared_run_trains(page, live_server):
    session = live_server.session
    session.update_config({"steps_per_second": 2})  # slow: the run only has to start, not to finish
    open_page(page, live_server)
    expect(page.locator(by_id("trap-current"))).to_contain_text('output="logits"')
    expect(page.locator(by_id("trap-floor"))).to_have_text("1.461")

    page.locator(by_id("trap-softmax")).click()
    expect(page.locator(by_id("trap-current"))).to_contain_text('output="softmax"')
    expect(page.locator(by_id("model-code"))).to_contain_text("loss = F.cross_entropy(model(x), y)")
    expect(page.locator(by_id("status"))).to_have_text("running")  # reset with the new output, then start
    assert session.config.output == "softmax"
    session.pause()

    page.locator(by_id("trap-logits")).click()
    expect(page.locator(by_id("trap-current"))).to_contain_text('output="logits"')
    expect(page.locator(by_id("status"))).to_have_text("running")
    session.pause()
    assert session.config.output == "logits"
    shoot(page.locator(by_id("softmax-trap")), "explain_trap.png")
