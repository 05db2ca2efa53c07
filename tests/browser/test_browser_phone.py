"""On a phone (issue 19, item 8), measured on the rendered page at 390×844 with a touch screen: no
text squeezed to a one-word column (the code view's note beside a line), no name broken inside
("self.hid/den" in the shapes table), no hover note left standing after a tap, and targets of at
least 40 px for what a finger must hit, the weight tiles included (a neuron picker opens one)."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.support.browser import TIMEOUT_MS, PlaygroundPage, by_id, own_page

pytestmark = pytest.mark.browser

PHONE = {"viewport": {"width": 390, "height": 844}, "has_touch": True, "is_mobile": True, "device_scale_factor": 2}
MIN_TARGET_PX = 40
# What a finger must hit: the run's buttons, the drawing's Clear, the tile picker, the inspector's
# arrows.
FINGER_TARGETS = ("train-start", "train-pause", "train-step", "train-reset", "clear", "tile-picker-input",
                  "tile-picker-open", "real-digit", "private-run")


def boxes_of(page, selector: str) -> list[dict]:
    return page.evaluate("""(selector) => [...document.querySelectorAll(selector)]
        .filter((node) => node.getClientRects().length)
        .map((node) => { const box = node.getBoundingClientRect();
                         return {text: node.textContent.trim().slice(0, 40), width: box.width, height: box.height,
                                 lines: node.getClientRects().length,
                                 lineHeight: parseFloat(getComputedStyle(node).lineHeight) || 16}; })""", selector)


def test_on_a_phone_nothing_is_squeezed_or_broken_nothing_sticks_and_targets_fit_a_finger(browser, live_server):
    with own_page(browser, **PHONE) as page:
        playground = PlaygroundPage(page).open(live_server, wait_for=(f'{by_id("code-note")}',))

        # The code view's note: at least 14 characters' room a line, never a one-word column.
        page.locator(by_id("model-code")).scroll_into_view_if_needed()
        for note in boxes_of(page, f'{by_id("code-note")}'):
            assert note["width"] >= 150, f"the note {note['text']!r} is squeezed to {note['width']:.0f} px"
            assert note["height"] <= 4 * note["lineHeight"], note
        playground.screenshot("phone/code-view-390.png", locator=page.locator(by_id("model-code")))

        # Names are never broken inside: a code name without spaces stays on one line, in the
        # tables (which scroll sideways instead) and in the text.
        page.locator(by_id("shapes-table")).scroll_into_view_if_needed()
        page.wait_for_function(f"() => document.querySelectorAll('{by_id('shapes-table')} tbody tr').length >= 2",
                               timeout=TIMEOUT_MS)
        # (a whole call longer than the phone's line, e.g. an export's one-liner, may wrap where it must)
        names = [box for box in boxes_of(page, "td code, th code, p code, li code")
                 if " " not in box["text"] and len(box["text"]) <= 30]
        assert any("hidden" in box["text"] for box in names), [box["text"] for box in names][:20]
        broken = [box["text"] for box in names if box["lines"] > 1]
        assert not broken, f"names broken across lines on a phone: {broken}"
        playground.screenshot("phone/shapes-table-390.png", locator=page.locator(by_id("explain-shapes")))

        # A tap on a view does not leave the code's "made by line N" bar standing.
        page.locator(by_id("probabilities")).scroll_into_view_if_needed()
        page.locator(by_id("probabilities")).tap()
        page.locator(by_id("hidden-weights")).tap()
        expect(page.locator(by_id("code-pointer"))).to_be_hidden()

        page.locator(by_id("hidden-weights")).scroll_into_view_if_needed()
        page.wait_for_selector(f'{by_id("hidden-weights")}[data-step]', timeout=TIMEOUT_MS)  # drawn once in view
        # Targets a finger can hit: 40 px at least each way.
        for testid in FINGER_TARGETS:
            box = playground.by_id(testid).bounding_box()
            assert box and box["width"] >= MIN_TARGET_PX and box["height"] >= MIN_TARGET_PX, (testid, box)
        # The tiles (about 21 px on a phone) have the picker: a neuron by number, opened in the
        # inspector, whose arrows are finger-sized too; a number outside the layer is said in words.
        playground.by_id("tile-picker-input").fill("300")
        playground.by_id("tile-picker-open").tap()
        expect(page.locator(f'{by_id("tile-picker")} [data-role="picker-error"]')).to_have_text(
            "Give a whole number from 0 to 255.")
        playground.by_id("tile-picker-input").fill("50")
        playground.by_id("tile-picker-open").tap()
        expect(playground.by_id("neuron-inspector")).to_have_attribute("data-neuron", "50", timeout=TIMEOUT_MS)
        for role in ("prev", "next", "close"):
            box = page.locator(f'{by_id("neuron-inspector")} [data-role="{role}"]').bounding_box()
            assert box["width"] >= MIN_TARGET_PX and box["height"] >= MIN_TARGET_PX, (role, box)
        page.locator(f'{by_id("neuron-inspector")} [data-role="next"]').tap()
        expect(playground.by_id("neuron-inspector")).to_have_attribute("data-neuron", "51", timeout=TIMEOUT_MS)
        playground.screenshot("phone/tiles-picker-390.png", locator=page.locator("#tiles-panel"))
        # No sideways scroll for all that.
        assert page.evaluate("() => document.documentElement.scrollWidth") <= 390


def test_on_a_touch_screen_the_hints_say_tap_and_a_tapped_sandbox_cell_marks_its_line_alone(browser, live_server):
    with own_page(browser, **PHONE) as page:
        PlaygroundPage(page).open(live_server, wait_for=(f'{by_id("sandbox-y-0-0")}',))
        expect(page.locator('[data-role="tiles-hover"]')).to_have_text("Tap a tile to read its weights.")

        marked = lambda: page.locator(f'{by_id("sandbox-formulas")} li.marked').evaluate_all(  # noqa: E731
            "items => items.map((li) => li.dataset.testid)")
        page.locator(by_id("sandbox-y-0-0")).scroll_into_view_if_needed()
        page.locator(by_id("sandbox-y-0-0")).tap()
        assert marked() == ["sandbox-formula-0-0"]
        page.locator(by_id("sandbox-y-1-1")).tap()
        assert marked() == ["sandbox-formula-1-1"], "the first tapped line stayed marked"
