"""Keyboard and assistive technology: the keyboard path into the neuron inspector, code lines
that show their focus, a real MNIST digit as the alternative to drawing, every tab stop visible
(no invisible chart toolbars), and axe-core (from npm) finding nothing serious or critical."""
from __future__ import annotations

import numpy as np
import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import expect

from tests.support.browser import SEVEN, TIMEOUT_MS, PlaygroundPage, by_id, own_page
from tests.support.helpers import REPO

pytestmark = pytest.mark.browser

AXE = REPO / "node_modules" / "axe-core" / "axe.min.js"


def focused(page) -> dict:
    return page.evaluate("""() => { const el = document.activeElement;
        return { testid: el.dataset.testid || null, role: el.getAttribute('role'), tag: el.tagName,
                 inspector: Boolean(el.closest('[data-testid="neuron-inspector"]')) }; }""")


def tab_until(page, predicate, limit: int = 80) -> int:
    """Press Tab until the focused element satisfies `predicate`; how many presses it took."""
    for presses in range(1, limit + 1):
        page.keyboard.press("Tab")
        if predicate(focused(page)):
            return presses
    raise AssertionError(f"not reached with {limit} presses of Tab")


def test_the_keyboard_path_into_the_inspector(page, live_server):
    playground = PlaygroundPage(page).open(live_server, wait_for=(f'{by_id("hidden-weights")}[data-step]',))
    tab_until(page, lambda f: f["testid"] == "hidden-weights")  # the tiles are one tab stop
    hover = page.locator('[data-role="tiles-hover"]')
    expect(hover).to_contain_text("Neuron 0's tile")  # said when the tiles get the focus
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowDown")  # a row of tiles down: 1 + 16
    expect(hover).to_contain_text("Neuron 17's tile")
    page.keyboard.press("Enter")
    inspector = playground.by_id("neuron-inspector")
    expect(inspector).to_have_attribute("data-neuron", "17", timeout=TIMEOUT_MS)
    assert focused(page)["inspector"], "the inspector takes the focus"
    page.keyboard.press("ArrowRight")
    expect(inspector).to_have_attribute("data-neuron", "18", timeout=TIMEOUT_MS)
    page.keyboard.press("ArrowUp")  # a row back: 2
    expect(inspector).to_have_attribute("data-neuron", "2", timeout=TIMEOUT_MS)
    page.keyboard.press("Escape")
    expect(inspector).to_have_attribute("data-open", "false")
    assert focused(page)["testid"] == "hidden-weights"  # back where the path started
    page.keyboard.press(" ")  # Space opens the focused tile too (and is not the start shortcut here)
    expect(inspector).to_have_attribute("data-neuron", "2", timeout=TIMEOUT_MS)
    assert live_server.session.status == "idle"


def test_code_lines_show_their_focus(page, live_server):
    PlaygroundPage(page).open(live_server)
    page.wait_for_selector(f'{by_id("model-code")} button', timeout=TIMEOUT_MS)
    line = page.locator(f'{by_id("model-code")} button').first
    line.scroll_into_view_if_needed()
    style = "el => { const s = getComputedStyle(el); return [s.outlineStyle, parseFloat(s.outlineWidth), s.backgroundColor]; }"
    unfocused = line.evaluate(style)
    line.focus()
    page.keyboard.press("Shift+Tab")  # keyboard focus (focus-visible), onto the line and back
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.classList.contains('code-button')")
    outline, width, background = page.evaluate(
        "() => { const s = getComputedStyle(document.activeElement); return [s.outlineStyle, parseFloat(s.outlineWidth), s.backgroundColor]; }")
    assert outline != "none" and width >= 2
    assert background != unfocused[2]


def test_a_real_mnist_digit_is_an_alternative_to_drawing(page, live_server):
    session = live_server.session
    session.reset({"batch_size": 250})
    session.step(20)
    playground = PlaygroundPage(page).open(live_server)
    playground.by_id("real-digit-choice").focus()
    playground.by_id("real-digit-choice").select_option("3")
    page.keyboard.press("Tab")
    assert focused(page)["testid"] == "real-digit"
    page.keyboard.press("Enter")
    caption = playground.by_id("real-digit-caption")
    expect(caption).to_contain_text("A real MNIST 3: training digit #", timeout=TIMEOUT_MS)
    playground.settled_prediction()
    index = int(caption.get_attribute("data-index"))
    assert int(session.dataset.train.labels[index]) == 3
    # The network is given that digit, through the same preprocessing as a drawing.
    seen = np.array(playground.by_id("preview").evaluate("""el => {
        const d = el.getContext('2d').getImageData(0, 0, 28, 28).data;
        return Array.from({ length: 784 }, (_, i) => 1 - d[i * 4] / 255); }"""))
    original = session.dataset.train.images[index].numpy().reshape(-1)
    assert np.corrcoef(seen, original)[0, 1] > 0.8
    assert len(playground.probabilities()) == 10


def test_every_tab_stop_is_visible(page, live_server):
    playground = PlaygroundPage(page).open(live_server)
    playground.draw(SEVEN)
    playground.settled_prediction()
    page.evaluate("() => window.scrollTo(0, 0)")
    page.mouse.click(3, 3)
    invisible, stops = [], 0
    seen = set()
    for _ in range(400):
        page.keyboard.press("Tab")
        # A view that comes into sight draws and may change height above the focus: judge the
        # tab stop once the page has settled (up to half a second).
        try:
            page.wait_for_function("""() => { const el = document.activeElement;
                const b = (el.closest('label.button') || el).getBoundingClientRect();
                return el === document.body || (b.bottom > 0 && b.top < innerHeight); }""", timeout=500, polling=50)
        except PlaywrightTimeout:
            pass  # judged below: still out of sight
        info = page.evaluate("""() => {
            const el = document.activeElement;
            if (!el || el === document.body) return null;
            // The file input is transparent on purpose: the label that wraps it is the button.
            const shown = el.closest('label.button') || el;
            const b = shown.getBoundingClientRect(), s = getComputedStyle(shown);
            const key = el.dataset.testid || el.getAttribute('aria-label') || el.textContent.trim().slice(0, 30) || el.tagName;
            return { key: key + ':' + Math.round(b.top + scrollY), visible: b.width > 2 && b.height > 2 && s.visibility !== 'hidden'
                && Number(s.opacity) > 0.1 && b.bottom > 0 && b.top < innerHeight };
        }""")
        if info is None or info["key"] in seen:
            break  # round the page once
        seen.add(info["key"])
        stops += 1
        if not info["visible"]:
            invisible.append(info["key"])
    assert stops > 40, stops  # the controls, the form, the tiles, the code lines, the sandbox...
    assert invisible == []


@pytest.mark.parametrize("width,height", [(1440, 900), (390, 844)])
def test_axe_core_finds_nothing_serious_or_critical(browser, live_server, width, height):
    session = live_server.session
    session.reset({"batch_size": 250})
    session.step(8)
    options = {"viewport": {"width": width, "height": height}}
    if width < 500:
        options.update(is_mobile=True, has_touch=True)
    with own_page(browser, **options) as page:
        playground = PlaygroundPage(page).open(live_server)
        playground.draw(SEVEN)
        playground.settled_prediction()
        tiles = playground.by_id("hidden-weights")
        tiles.scroll_into_view_if_needed()
        page.wait_for_selector(f'{by_id("hidden-weights")}[data-step]', timeout=TIMEOUT_MS)  # drawn once in view
        tiles.focus()
        page.keyboard.press("Enter")  # the inspector open, with its pictures and legends
        page.wait_for_selector(f'{by_id("neuron-inspector")}[data-neuron="0"]', timeout=TIMEOUT_MS)
        y = 0
        while y < page.evaluate("() => document.documentElement.scrollHeight - innerHeight"):
            y += 400
            page.evaluate(f"() => window.scrollTo(0, {y})")  # every view drawn once
            page.wait_for_timeout(150)
        page.wait_for_timeout(500)
        page.evaluate(AXE.read_text())  # axe-core from npm, evaluated in the page (the CSP allows no inline script)
        violations = page.evaluate("""async () => (await axe.run(document)).violations.map(v => ({
            id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 5).map(n => n.target.join(' ')) }))""")
    serious = [v for v in violations if v["impact"] in ("serious", "critical")]
    assert serious == [], serious
