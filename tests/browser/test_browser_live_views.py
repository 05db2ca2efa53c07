"""Only what a viewer looks at: while a run trains, a page whose live views are scrolled out of
view receives no inside:* frames (it tells the server with inside:subscribe), a view scrolled
back into view shows the current frame at once, and nothing on the page renders out of view."""
from __future__ import annotations

import json

import pytest

from tests.support.browser import STRAIGHT_STROKE, TIMEOUT_MS, PlaygroundPage, by_id
from tests.support.helpers import wait_for

pytestmark = pytest.mark.browser

# Every chart call and canvas blit, with where its element was: in view (or within the
# visibility margin) or not. Plotly's own off-screen canvases (not in the document) are skipped.
RECORD_RENDERS = """
(() => {
  window.__renders = [];
  const MARGIN = 200; // the page draws views within 150 px of the window; a little slack
  const where = (element) => {
    const el = typeof element === "string" ? document.getElementById(element) : element;
    if (!el || !el.isConnected) return null;
    const box = el.getBoundingClientRect();
    const near = box.bottom > -MARGIN && box.top < innerHeight + MARGIN && box.width > 0;
    const owner = el.closest("[data-testid]") || el.closest("[id]");
    return { name: owner ? owner.dataset.testid || owner.id : el.tagName, near };
  };
  const note = (element, what) => { const w = where(element); if (w) window.__renders.push({ ...w, what }); };
  let plotly;
  Object.defineProperty(window, "Plotly", {
    configurable: true,
    get: () => plotly,
    set: (value) => {
      plotly = value;
      for (const method of ["newPlot", "react", "extendTraces", "restyle", "relayout", "update"]) {
        const original = value[method];
        value[method] = function (element, ...rest) { note(element, method); return original.call(this, element, ...rest); };
      }
    },
  });
  for (const method of ["putImageData", "drawImage"]) {
    const original = CanvasRenderingContext2D.prototype[method];
    CanvasRenderingContext2D.prototype[method] = function (...args) { note(this.canvas, method); return original.apply(this, args); };
  }
})();
"""


def inside_frames(received):
    """The inside:* events among the websocket frames the page received."""
    return [frame for frame in received if isinstance(frame, str) and '"inside:' in frame[:40]]


def test_live_views_out_of_view_get_no_frames_and_one_scrolled_into_view_shows_the_current_frame(page, live_server):
    session = live_server.session
    session.update_config({"steps_per_second": 20, "epochs": 200})  # a run that outlasts the test
    received = []
    page.on("websocket", lambda ws: ws.on("framereceived", lambda payload: received.append(payload)))
    playground = PlaygroundPage(page).open(live_server, wait_for=(f'{by_id("hidden-weights")}[data-step]',))
    panel = page.locator("#inside-panel")

    # Down to the evaluation, far from every live view: the page says it wants no stream.
    page.locator("#dataset-card").scroll_into_view_if_needed()
    page.wait_for_function("() => document.getElementById('inside-panel').dataset.subscribed === ''", timeout=TIMEOUT_MS)
    session.start()
    wait_for(lambda: session.trainer.global_step >= 10, timeout=TIMEOUT_MS / 1000, what="training under way")
    before = len(inside_frames(received))
    wait_for(lambda: session.trainer.global_step >= 60, timeout=TIMEOUT_MS / 1000, what="3 s of training")
    assert len(inside_frames(received)) == before, "frames came for views nobody looks at"
    delivery = live_server.app.extensions["inside"]
    assert not any(delivery.has_subscribers(stream) for stream in delivery.events)

    # The distributions scrolled into view: subscribed, and the frame drawn is the current one.
    step_when_seen = session.trainer.global_step
    page.locator(by_id("distributions")).scroll_into_view_if_needed()
    page.wait_for_function(
        f"(step) => +document.querySelector('{by_id('distributions')}').dataset.step >= step",
        arg=step_when_seen, timeout=TIMEOUT_MS)
    # Subscribed to exactly the streams whose views are now in view (or within 150 px of it).
    in_view = set(page.evaluate(f"""() => {{
        const near = (testid) => {{ const box = document.querySelector(`[data-testid="${{testid}}"]`)
            .closest('.inside-card, .panel').getBoundingClientRect();
            return box.bottom > -150 && box.top < innerHeight + 150; }};
        const streams = [];
        if (near('hidden-weights') || near('output-weights') || near('network-diagram')) streams.push('weights-delta');
        if (near('activation-histogram')) streams.push('activations');
        if (near('distributions')) streams.push('distributions-delta');
        return streams; }}"""))
    assert "distributions-delta" in in_view  # the page takes the small streams (a key frame, then deltas)
    page.wait_for_function("(want) => document.getElementById('inside-panel').dataset.subscribed === want",
                           arg=",".join(s for s in ("weights-delta", "activations", "distributions-delta") if s in in_view),
                           timeout=TIMEOUT_MS)
    wait_for(lambda: any('"inside:distributions-delta"' in frame[:50] for frame in inside_frames(received)[before:]),
             timeout=TIMEOUT_MS / 1000, what="distributions frames again")
    events = {frame[frame.index('"inside:') + 8:].split('"')[0] for frame in inside_frames(received)[before:]}
    assert events <= in_view, events
    session.pause()
    playground.screenshot("live-views-distributions-in-view.png")


def test_nothing_renders_out_of_view(browser, live_server):
    live_server.session.update_config({"steps_per_second": 20, "epochs": 200})
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    context.add_init_script(RECORD_RENDERS)
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    sent = []
    page.on("websocket", lambda ws: ws.on("framesent", lambda payload: sent.append(payload)))
    try:
        playground = PlaygroundPage(page).open(live_server, wait_for=(f'{by_id("hidden-weights")}[data-step]',))
        live_server.session.start()
        playground.draw(STRAIGHT_STROKE)
        playground.settled_prediction()
        page.wait_for_timeout(3000)  # frames, metrics and answers arrive; the top of the page draws
        renders = page.evaluate("() => window.__renders")
        drawn = {r["name"] for r in renders}
        assert {"loss-chart", "hidden-weights", "preview"} <= drawn, drawn  # the first screen draws
        far = [r for r in renders if not r["near"]]
        assert not far, f"drawn out of view: {json.dumps(far[:10])}"
        # The forward pass is asked for only once its steps are in view.
        assert not [frame for frame in sent if isinstance(frame, str) and '"explain:forward"' in frame]

        page.locator(by_id("forward-steps")).scroll_into_view_if_needed()
        page.wait_for_selector(by_id("neuron-result"), timeout=TIMEOUT_MS)
        page.wait_for_timeout(2000)
        renders = page.evaluate("() => window.__renders")
        far = [r for r in renders if not r["near"]]
        assert not far, f"drawn out of view: {json.dumps(far[:10])}"
        live_server.session.pause()
    finally:
        context.close()
    assert not errors, errors
