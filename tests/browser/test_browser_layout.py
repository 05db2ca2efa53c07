"""The first screen and the layout, at 1440x900, 1280x720 and on phones: the first screen shows
the drawing, the prediction, the curves and the hidden-weight tiles; no sideways scroll from 360 px
up; charts do not zoom on a touch drag and show no toolbar; and the details that used to break
(sandbox formulas on top of each other, the Keras code cut, the overlay legend on the titles, the
setup form jumping, an empty loss axis below zero, "1 recorded steps", the per-digit colours
without a legend, the "made by line N" badge over the controls)."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.support.browser import SEVEN, TIMEOUT_MS, PlaygroundPage, by_id, own_page

pytestmark = pytest.mark.browser

FIRST_SCREEN = ("canvas", "prediction", "probabilities", "loss-chart", "accuracy-chart", "hidden-weights")
PHONE = {"is_mobile": True, "has_touch": True, "device_scale_factor": 2}


def box_in_viewport(page, testid: str) -> bool:
    return page.locator(by_id(testid)).evaluate(
        "el => { const b = el.getBoundingClientRect(); return b.width > 0 && b.top >= 0 && b.left >= 0"
        " && b.bottom <= innerHeight + 0.5 && b.right <= innerWidth + 0.5; }")


def scroll_through(page):
    """Scroll down the whole page, so every view comes into view once and draws."""
    y = 0
    while y < page.evaluate("() => document.documentElement.scrollHeight - innerHeight"):
        y += 350
        page.evaluate(f"() => window.scrollTo(0, {y})")
        page.wait_for_timeout(150)
    page.wait_for_timeout(500)


def sideways_overflow(page, width: int) -> list[str]:
    """Elements reaching past the screen's width that no scroll box of their own holds (what
    makes a page scroll sideways, or a phone zoom out), by test id, class or tag."""
    return page.evaluate("""(width) => {
        const out = [];
        for (const el of document.body.querySelectorAll('*')) {
            const b = el.getBoundingClientRect();
            if (!b.width || b.right <= width + 1) continue;
            let held = false;
            for (let a = el.parentElement; a && a !== document.body; a = a.parentElement) {
                if (['auto', 'hidden', 'scroll'].includes(getComputedStyle(a).overflowX)) { held = true; break; }
            }
            if (!held) out.push(el.dataset.testid || (typeof el.className === 'string' && el.className) || el.tagName);
        }
        return out.slice(0, 10);
    }""", width)


@pytest.mark.parametrize("width,height", [(1440, 900), (1280, 720)])
def test_the_first_screen_shows_the_drawing_the_prediction_the_curves_and_the_tiles(browser, live_server, width, height):
    live_server.session.reset({"batch_size": 250})
    live_server.session.step(8)
    with own_page(browser, viewport={"width": width, "height": height}) as page:
        playground = PlaygroundPage(page).open(live_server, wait_for=(f'{by_id("hidden-weights")}[data-step]',))
        playground.draw(SEVEN)
        playground.settled_prediction()
        page.evaluate("() => window.scrollTo(0, 0)")
        page.wait_for_timeout(300)
        for testid in FIRST_SCREEN:
            assert box_in_viewport(page, testid), f"{testid} is not wholly on the first screen at {width}x{height}"
        assert page.evaluate("() => document.documentElement.scrollWidth") <= width
        playground.screenshot(f"screenshots/layout-{width}x{height}.png")


@pytest.mark.parametrize("width,height", [(360, 740), (390, 844)])
def test_no_sideways_scroll_on_a_phone_whatever_is_open(browser, live_server, width, height):
    live_server.session.reset({"batch_size": 250, "hidden_sizes": [256, 64]})
    live_server.session.step(8)
    with own_page(browser, viewport={"width": width, "height": height}, **PHONE) as page:
        playground = PlaygroundPage(page).open(live_server)
        playground.draw(SEVEN)
        playground.settled_prediction()
        for size in ("sandbox-rows", "sandbox-in", "sandbox-out"):  # the sandbox at its biggest, 8x8
            playground.by_id(size).fill("8")
            playground.by_id(size).dispatch_event("change")
        expect(playground.by_id("sandbox-y-shape")).to_have_text("(8, 8)", timeout=TIMEOUT_MS)
        scroll_through(page)
        tiles = playground.by_id("hidden-weights")
        tiles.scroll_into_view_if_needed()
        page.wait_for_selector(f'{by_id("hidden-weights")}[data-step]', timeout=TIMEOUT_MS)
        tiles.focus()
        page.keyboard.press("Enter")  # the inspector open too
        page.wait_for_selector(f'{by_id("neuron-inspector")}[data-neuron="0"]', timeout=TIMEOUT_MS)
        scroll_through(page)
        assert sideways_overflow(page, width) == []
        # The page is as wide as the phone: it neither scrolls sideways nor zooms out.
        assert page.evaluate("() => [document.documentElement.scrollWidth, innerWidth]") == [width, width]
        # The header's subtitle reads as a line, not a word a line.
        tagline = page.locator(".tagline").bounding_box()
        assert tagline["width"] > width * 0.7
        page.evaluate("() => window.scrollTo(0, 0)")
        playground.screenshot(f"screenshots/layout-{width}x{height}-phone.png")


def test_charts_do_not_zoom_on_a_touch_drag_and_show_no_toolbar(browser, live_server):
    live_server.session.reset({"batch_size": 250})
    live_server.session.step(12)
    with own_page(browser, viewport={"width": 390, "height": 844}, **PHONE) as page:
        playground = PlaygroundPage(page).open(live_server)
        chart = playground.by_id("loss-chart")
        chart.scroll_into_view_if_needed()
        page.wait_for_function(f"() => document.querySelector('{by_id('loss-chart')}').data?.[0].x.length > 0",
                               timeout=TIMEOUT_MS)
        ranges = "el => [el._fullLayout.xaxis.range.slice(), el._fullLayout.yaxis.range.slice()]"
        before = chart.evaluate(ranges)
        box = chart.bounding_box()
        cdp = page.context.new_cdp_session(page)
        start = (box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.4)
        cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": start[0], "y": start[1]}]})
        for i in range(1, 11):  # a finger dragging across the chart, as when scrolling past it
            cdp.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [
                {"x": start[0] + 12 * i, "y": start[1] + 6 * i}]})
        cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
        page.wait_for_timeout(300)
        assert chart.evaluate(ranges) == before
        for testid in ("loss-chart", "probabilities", "accuracy-chart"):
            playground.by_id(testid).scroll_into_view_if_needed()
            playground.by_id(testid).tap()
        # No toolbar anywhere (Plotly leaves an empty container; no button is in it).
        assert page.locator(".modebar-btn, .modebar-group").count() == 0


def test_the_details_that_used_to_break_stay_fixed_at_1280(browser, live_server):
    session = live_server.session
    with own_page(browser, viewport={"width": 1280, "height": 720}) as page:
        playground = PlaygroundPage(page).open(live_server)
        # An empty loss axis starts at 0; the distributions say "1 recorded step"; ticks readable.
        page.wait_for_function(f"() => document.querySelector('{by_id('loss-chart')}')._fullLayout", timeout=TIMEOUT_MS)
        assert playground.by_id("loss-chart").evaluate("el => el._fullLayout.yaxis.range[0]") >= 0
        playground.by_id("distributions").scroll_into_view_if_needed()
        expect(page.locator('[data-role="distributions-caption"]')).to_contain_text("1 recorded step per tensor",
                                                                                  timeout=TIMEOUT_MS)
        assert playground.by_id("distributions").evaluate("el => el._fullLayout.yaxis.tickfont.size") >= 11

        # The sandbox at 8x8: each written-out formula on its own lines, none on another.
        for size in ("sandbox-rows", "sandbox-in", "sandbox-out"):
            playground.by_id(size).fill("8")
            playground.by_id(size).dispatch_event("change")
        expect(playground.by_id("sandbox-formula-7-7")).to_be_attached(timeout=TIMEOUT_MS)
        boxes = page.locator(f'{by_id("sandbox-formulas")} li').evaluate_all(
            "items => items.map(li => { const b = li.getBoundingClientRect();"
            " return [b.top, b.bottom, li.scrollWidth <= li.clientWidth + 1]; })")
        assert len(boxes) == 64
        assert all(fits for _, _, fits in boxes)
        assert all(a[1] <= b[0] + 0.5 for a, b in zip(boxes, boxes[1:])), "formulas overlap"

        # The Keras side by side: no code line cut.
        for testid in ("keras-pytorch-code", "keras-code"):
            code = playground.by_id(testid)
            code.scroll_into_view_if_needed()
            assert code.evaluate("el => el.scrollWidth <= el.clientWidth"), f"{testid} is cut"

        # The status line and the setup form keep their place when a run starts and its ETA shows.
        page.evaluate("() => window.scrollTo(0, 0)")
        setup_top = lambda: page.locator("#setup-panel").bounding_box()["y"]  # noqa: E731
        before = setup_top()
        session.update_config({"steps_per_second": 5, "epochs": 200})
        page.click(by_id("train-start"))
        playground.wait_for_status("running")
        expect(playground.by_id("eta")).not_to_be_empty(timeout=TIMEOUT_MS)
        assert setup_top() == pytest.approx(before, abs=0.5)
        session.pause()

        # The per-digit accuracy colours say what they mean.
        page.locator("#evaluation-card").scroll_into_view_if_needed()
        expect(playground.by_id("per-class-legend")).to_contain_text("90% or more")
        expect(playground.by_id("per-class-legend")).to_contain_text("below 70%")

        # "made by line N" while a view is hovered: over no control on screen.
        page.evaluate("() => window.scrollTo(0, 0)")
        playground.by_id("probabilities").hover()
        expect(playground.by_id("code-pointer")).to_contain_text("made by line")
        covered = page.evaluate(f"""() => {{
            const bar = document.querySelector('{by_id('code-pointer')}').getBoundingClientRect();
            return [...document.querySelectorAll('button, input, select, a, [tabindex]')].filter(el => {{
                const b = el.getBoundingClientRect();
                return b.width && b.bottom > 0 && b.top < innerHeight && b.left < bar.right && b.right > bar.left
                    && b.top < bar.bottom && b.bottom > bar.top;
            }}).map(el => el.dataset.testid || el.textContent.trim().slice(0, 20));
        }}""")
        assert covered == []


def test_the_overlay_legend_leaves_the_chart_titles_and_curves_clear(browser, live_server):
    session = live_server.session
    for output in ("logits", "softmax", "logits"):
        session.reset({"batch_size": 250, "output": output})
        session.step(8)
    session.reset({"batch_size": 250})
    with own_page(browser, viewport={"width": 1280, "height": 720}) as page:
        playground = PlaygroundPage(page).open(live_server)
        page.locator("#runs-card").scroll_into_view_if_needed()
        expect(page.locator(f'{by_id("runs")} li[data-run]')).to_have_count(3)
        for run_id in (1, 2, 3):
            playground.by_id(f"run-overlay-{run_id}").check()
        chart = playground.by_id("loss-chart")
        chart.scroll_into_view_if_needed()
        page.wait_for_function(f"""() => (document.querySelector('{by_id('loss-chart')}').data || [])
            .filter(t => t.meta && t.meta.run).length === 6""", timeout=TIMEOUT_MS)
        page.wait_for_timeout(300)
        legend, title, plot = chart.evaluate("""el => ['.legend', '.gtitle', '.nsewdrag'].map(s => {
            const b = el.querySelector(s).getBoundingClientRect(); return [b.left, b.top, b.right, b.bottom]; })""")
        assert legend[1] >= plot[3], "the legend is on the curves"
        assert legend[1] >= title[3], "the legend is on the title"
        playground.screenshot("screenshots/layout-overlay-legend.png", locator=page.locator("#curves-panel"))
