"""The page in a real Chromium: it connects, trains live with the curves and progress moving,
pause/step/reset and the keyboard work, a second viewer joining mid-run sees the same run, and
digits drawn with mouse strokes on the canvas are read by the trained network."""
from __future__ import annotations

import math
import re
import time

import pytest
from playwright.sync_api import expect

from tests.support.browser import LOOP, SEVEN, STRAIGHT_STROKE, TIMEOUT_MS, PlaygroundPage, by_id
from tests.support.helpers import socketio_client

pytestmark = pytest.mark.browser


def screenshot(page, name: str):
    return PlaygroundPage(page).screenshot(f"spine_{name}.png")  # the viewport: the spine is at the top


def open_page(page, server):
    """The page, connected, with its curves drawn."""
    PlaygroundPage(page).open(server)
    page.wait_for_function(f"() => document.querySelector('{by_id('loss-chart')}').data", timeout=TIMEOUT_MS)
    return page


def wait_for_status(page, status: str):
    PlaygroundPage(page).wait_for_status(status)


def train_points(page) -> int:
    """Points on the loss chart's train curve (Plotly keeps its traces on the element)."""
    return page.evaluate(f"() => document.querySelector('{by_id('loss-chart')}').data[0].x.length")


def wait_for_train_points(page, at_least: int):
    page.wait_for_function(
        f"() => document.querySelector('{by_id('loss-chart')}').data[0].x.length >= {at_least}",
        timeout=TIMEOUT_MS)


def wait_until(condition, timeout_s=TIMEOUT_MS / 1000):
    """Wait for the server side of what the page did."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def progress(page) -> float:
    return float(page.get_attribute(by_id("progress"), "aria-valuenow"))


def shown_step(page) -> int:
    return int(page.text_content(by_id("step-count")).split()[1])


# ---- connecting and training --------------------------------------------------------------------

def test_the_page_connects_and_shows_the_questions_network(page, live_server):
    open_page(page, live_server)

    assert page.text_content(by_id("connection")) == "connected"
    assert page.text_content(by_id("architecture")) == "784 → 256 sigmoid → 10"
    # What is trained and what predicts, in the words of the output setting in force.
    assert "the loss is given the logits self.output(…), before the softmax" in page.text_content(by_id("training-objective"))
    assert "Predicts: forward(x), the softmax of the 10 logits" in page.text_content(by_id("training-objective"))
    assert "1,000 train, 200 validation" in page.text_content(by_id("dataset-info"))
    assert page.text_content(by_id("status")) == "idle"
    assert progress(page) == 0
    assert train_points(page) == 0
    screenshot(page, "connected")


def test_start_trains_live_and_pause_step_reset_work(page, live_server):
    live_server.session.update_config({"steps_per_second": 10, "epochs": 200})  # outlasts the test
    open_page(page, live_server)

    page.click(by_id("train-start"))
    wait_for_status(page, "running")
    wait_for_train_points(page, 3)
    first_progress = progress(page)
    page.wait_for_function(
        f"() => Number(document.querySelector('{by_id('progress')}').getAttribute('aria-valuenow')) > {first_progress}",
        timeout=TIMEOUT_MS)
    assert re.fullmatch(r"epoch \d+ / 200", page.text_content(by_id("epoch")))
    assert page.is_disabled(by_id("train-start")) and page.is_enabled(by_id("train-pause"))
    screenshot(page, "running")

    page.click(by_id("train-pause"))
    wait_for_status(page, "paused")
    assert live_server.session.status == "paused"
    step = shown_step(page)
    assert step == live_server.session.trainer.global_step
    points = train_points(page)

    page.click(by_id("train-step"))
    page.wait_for_function(
        f"() => document.querySelector('{by_id('step-count')}').textContent.startsWith('step {step + 1} /')",
        timeout=TIMEOUT_MS)
    assert live_server.session.trainer.global_step == step + 1
    assert page.text_content(by_id("status")) == "paused"
    assert train_points(page) == points + 1  # the step's own metrics point

    run_id = live_server.session.run_id
    page.click(by_id("train-reset"))
    wait_for_status(page, "idle")
    page.wait_for_function(f"() => document.querySelector('{by_id('loss-chart')}').data[0].x.length === 0",
                           timeout=TIMEOUT_MS)
    assert progress(page) == 0 and shown_step(page) == 0
    assert live_server.session.run_id == run_id + 1


def test_the_curves_redraw_in_batches_however_fast_metrics_arrive(page, live_server):
    """Each Plotly redraw lays out the whole chart; one per metrics message (10 a second, two
    charts) kept the page's main thread busy, so live points are drawn at most 2.5 times a second."""
    live_server.session.update_config({"steps_per_second": None, "epochs": 200})
    open_page(page, live_server)
    page.evaluate("""() => {
        window.redraws = [];
        const extendTraces = Plotly.extendTraces;
        Plotly.extendTraces = (element, ...rest) => {
            window.redraws.push({ chart: element.dataset.testid, at: performance.now() });
            return extendTraces(element, ...rest);
        };
    }""")

    page.click(by_id("train-start"))
    wait_for_train_points(page, 10)
    page.wait_for_timeout(1500)
    page.click(by_id("train-pause"))
    wait_for_status(page, "paused")

    redraws = page.evaluate("() => window.redraws")
    loss_redraws = [r["at"] for r in redraws if r["chart"] == "loss-chart"]
    assert loss_redraws
    seconds = (loss_redraws[-1] - loss_redraws[0]) / 1000
    assert len(loss_redraws) <= seconds * 2.5 + 2, (len(loss_redraws), seconds)
    assert len(live_server.session.history) > len(loss_redraws)  # several points per redraw
    assert train_points(page) == len(live_server.session.history)  # none lost


def test_the_speed_control_sets_the_pace_up_to_full_speed(page, live_server):
    open_page(page, live_server)
    assert page.text_content(by_id("speed-value")) == "50 steps/s"

    page.locator(by_id("speed")).fill("0")
    wait_until(lambda: live_server.session.pace == 1)
    assert page.text_content(by_id("speed-value")) == "1 steps/s"

    page.locator(by_id("speed")).fill(page.get_attribute(by_id("speed"), "max"))
    wait_until(lambda: live_server.session.pace is None)
    assert page.text_content(by_id("speed-value")) == "full speed"


def test_space_starts_and_pauses_the_run(page, live_server):
    open_page(page, live_server)

    page.keyboard.press("Space")
    wait_for_status(page, "running")
    wait_for_train_points(page, 1)

    page.keyboard.press("Space")
    wait_for_status(page, "paused")
    assert live_server.session.status == "paused"


def test_a_second_viewer_joining_mid_run_sees_the_same_run_and_shares_the_controls(page, browser, live_server):
    live_server.session.update_config({"steps_per_second": 10, "epochs": 200})  # outlasts the test
    open_page(page, live_server)
    page.click(by_id("train-start"))
    wait_for_train_points(page, 5)

    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    second = context.new_page()
    errors = []
    second.on("pageerror", lambda err: errors.append(str(err)))
    second.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    try:
        open_page(second, live_server)
        wait_for_status(second, "running")
        assert train_points(second) >= 5  # the history so far, at once
        joined_with = train_points(second)
        wait_for_train_points(second, joined_with + 2)  # then live updates

        second.click(by_id("train-pause"))
        wait_for_status(second, "paused")
        wait_for_status(page, "paused")  # the first viewer sees the second one's pause
        screenshot(second, "second_viewer")
        # The pause's state broadcast redraws both from the server's one history.
        session = live_server.session
        assert shown_step(page) == shown_step(second) == session.trainer.global_step
        assert train_points(page) == train_points(second) == len(session.history)
        for viewer in (page, second):
            assert viewer.evaluate(f"() => document.querySelector('{by_id('loss-chart')}').data[1].x.length") \
                == len(session.epochs)
    finally:
        context.close()
    assert not errors, errors


def test_a_diverging_run_says_why_it_paused_and_reset_clears_the_notice(page, live_server):
    # Plain SGD at lr 10 through two leaky-ReLU layers: the loss becomes infinite within a few steps.
    live_server.session.reset({"optimizer": "sgd", "lr": 10.0, "activation": "leaky_relu",
                               "hidden_sizes": [256, 256], "steps_per_second": None})
    open_page(page, live_server)

    page.click(by_id("train-start"))
    wait_for_status(page, "paused")
    page.wait_for_selector(f'{by_id("notice")}:not([hidden])', timeout=TIMEOUT_MS)
    assert "Try a smaller learning rate (for example 1)" in page.text_content(by_id("notice"))
    screenshot(page, "diverged")

    page.click(by_id("train-reset"))
    wait_for_status(page, "idle")
    page.wait_for_selector(f'{by_id("notice")}[hidden]', state="attached", timeout=TIMEOUT_MS)


# ---- drawing ------------------------------------------------------------------------------------

def train_to_the_end(server, epochs=15):
    client = socketio_client(server.url)
    try:
        answer = client.call("train:start", {"config": {"steps_per_second": None, "epochs": epochs}}, timeout=10)
        assert answer["ok"], answer
    finally:
        client.disconnect()
    wait_until(lambda: server.session.status == "done", timeout_s=180)
    return server.session.epochs[-1]


def draw(page, strokes):
    PlaygroundPage(page).draw(strokes, steps=2)


def settled_prediction(page) -> str:
    return PlaygroundPage(page).settled_prediction()


def ink_in_preview(page) -> float:
    """How much ink the 28x28 preview shows (dark ink on white paper; 0 when it is empty)."""
    return page.evaluate(f"""() => {{
        const preview = document.querySelector('{by_id('preview')}');
        const data = preview.getContext('2d').getImageData(0, 0, 28, 28).data;
        let sum = 0;
        for (let i = 0; i < data.length; i += 4) if (data[i + 3]) sum += 255 - data[i];
        return sum / 255;
    }}""")


def probability_bars(page) -> list[float]:
    return PlaygroundPage(page).probabilities()


# Drawn small in a corner or slanted: cropping, fitting and centring make them MNIST-like again.
SMALL_LOOP_IN_A_CORNER = [[(0.25 + 0.1 * math.sin(2 * math.pi * i / 30), 0.3 - 0.15 * math.cos(2 * math.pi * i / 30))
                           for i in range(31)]]
SLANTED_STROKE = [[(0.6 - 0.2 * i / 20, 0.15 + 0.7 * i / 20) for i in range(21)]]


def test_digits_drawn_with_the_mouse_are_read_by_the_trained_network(page, full_live_server):
    last_epoch = train_to_the_end(full_live_server)
    assert last_epoch["val_accuracy"] > 0.9
    open_page(page, full_live_server)
    wait_for_status(page, "done")
    assert page.text_content(by_id("prediction")) == ""
    assert ink_in_preview(page) == 0

    for name, strokes, digit in (("one", STRAIGHT_STROKE, "1"), ("zero", LOOP, "0"), ("seven", SEVEN, "7"),
                                 ("small_zero", SMALL_LOOP_IN_A_CORNER, "0"), ("slanted_one", SLANTED_STROKE, "1")):
        page.click(by_id("clear"))
        draw(page, strokes)
        prediction = settled_prediction(page)
        screenshot(page, f"drawn_{name}")
        bars = probability_bars(page)
        assert prediction == digit, f"the {name} was read as {prediction}: {bars}"
        assert len(bars) == 10 and sum(bars) == pytest.approx(1, abs=1e-4)
        assert bars.index(max(bars)) == int(digit)
        assert ink_in_preview(page) > 20  # the 28x28 image as the network sees it

    page.click(by_id("clear"))
    page.wait_for_function(f"() => document.querySelector('{by_id('prediction')}').textContent === ''",
                           timeout=TIMEOUT_MS)
    assert ink_in_preview(page) == 0
    assert probability_bars(page) == [0] * 10
    screenshot(page, "cleared")


def test_drawing_predicts_while_the_stroke_is_still_going(page, live_server):
    open_page(page, live_server)
    box = page.locator(by_id("canvas")).bounding_box()
    page.mouse.move(box["x"] + 100, box["y"] + 40)
    page.mouse.down()
    for i in range(1, 30):
        page.mouse.move(box["x"] + 100, box["y"] + 40 + i * 5)
        page.wait_for_timeout(15)
    # Still holding the button: the throttled predictions have already answered.
    page.wait_for_function(f"() => document.querySelector('{by_id('prediction')}').textContent !== ''",
                           timeout=TIMEOUT_MS)
    page.mouse.up()
    page.keyboard.press("c")
    page.wait_for_function(f"() => document.querySelector('{by_id('prediction')}').textContent === ''",
                           timeout=TIMEOUT_MS)


def test_the_page_sends_only_the_inks_bounding_box_and_the_network_sees_the_same_digit(page, live_server):
    """The server's preprocessing starts by cropping to the ink, so the page sends just that box
    of its 280x280 canvas: fewer bytes to send and read for every prediction, the same input."""
    import numpy as np

    from server.preprocess import preprocess_canvas

    sent = []  # (header text, binary attachment) of each predict the page sends
    page.on("websocket", lambda ws: ws.on("framesent", lambda payload: sent.append(payload)))
    open_page(page, live_server)
    draw(page, SEVEN)
    settled_prediction(page)
    full_canvas = bytes(page.evaluate(f"""() => {{
        const canvas = document.querySelector('{by_id('canvas')}');
        const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
        return Array.from({{ length: data.length / 4 }}, (_, i) => data[i * 4 + 3]);
    }}"""))

    headers = [i for i, frame in enumerate(sent) if isinstance(frame, str) and '"predict"' in frame]
    assert headers, "the page sent no prediction"
    header, crop = sent[headers[-1]], sent[headers[-1] + 1]
    width = int(re.search(r'"width":(\d+)', header).group(1))
    height = int(re.search(r'"height":(\d+)', header).group(1))
    assert isinstance(crop, bytes) and len(crop) == width * height
    assert width < 280 and height < 280 and len(crop) < 280 * 280 / 2
    ink = np.frombuffer(crop, dtype=np.uint8).reshape(height, width)
    assert ink[0].any() and ink[-1].any() and ink[:, 0].any() and ink[:, -1].any()  # tight box
    assert np.array_equal(preprocess_canvas(width, height, crop), preprocess_canvas(280, 280, full_canvas))


def test_when_plotly_cannot_be_loaded_the_page_says_so_and_still_connects(browser, live_server):
    """Plotly is an async script that may have failed before any module listens: the page still
    finds out and says what to do, and everything that needs no chart works."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    try:
        page.route(re.compile(r".*/assets/[0-9a-f]+/plotly\.js$"), lambda route: route.fulfill(status=404, body="gone"))
        page.goto(live_server.url + "/")
        page.wait_for_selector(f'{by_id("connection")}[data-state="connected"]', timeout=60_000)
        expect(page.locator(by_id("notice"))).to_contain_text(re.compile(
            r"the charts could not be loaded \(/assets/[0-9a-f]+/plotly\.js did not load\): reload the page"), timeout=60_000)
        PlaygroundPage(page).draw(STRAIGHT_STROKE)
        expect(page.locator(by_id("prediction"))).not_to_have_text("", timeout=60_000)
    finally:
        context.close()
