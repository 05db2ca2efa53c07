"""The page as a browser gets it: a reload asks the server only for the page (answered 304) and
its live data, every built asset coming from the browser's cache; a browser that takes brotli and
one that takes no compression get the same bytes and the same working page, worker included."""
from __future__ import annotations

import hashlib

from playwright.sync_api import expect

from tests.support.browser import INTERACTIVE, STRAIGHT_STROKE, TIMEOUT_MS, PlaygroundPage, ServerLog, by_id, open_interactive

RELOAD_REQUESTS = 6  # the most that may reach the server on a reload (issue 22)


def test_a_reload_takes_every_asset_from_the_cache(browser, live_server):
    log = ServerLog(live_server.app)
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    try:
        open_interactive(page, live_server.url + "/")
        cold = log.take()
        cold_assets = [r["path"] for r in cold if r["path"].startswith("/assets/")]
        assert len(cold_assets) >= 4, cold  # style, modules, Plotly, the mosaic worker
        assert not any(r["path"].startswith("/static/") for r in cold), "the page loads only built files"

        for visit in ("reload", "typed again"):
            if visit == "reload":
                page.reload(timeout=TIMEOUT_MS)
                page.wait_for_function(INTERACTIVE, polling="raf", timeout=TIMEOUT_MS)
                page.wait_for_load_state("networkidle", timeout=TIMEOUT_MS)
            else:
                open_interactive(page, live_server.url + "/")
            again = log.take()
            assert not [r for r in again if r["path"].startswith(("/assets/", "/static/"))], (visit, again)
            page_requests = [r["status"] for r in again if r["path"] == "/"]
            # The page is always asked again. Typed again, its address is the cached one: unchanged,
            # it is not sent again. (A reload asks for the address the page shows, with its setup
            # in the query (urlstate.js), which the browser has not cached under that name.)
            assert page_requests == ([304] if visit == "typed again" else [200]), (visit, again)
            assert len(again) <= RELOAD_REQUESTS, (visit, [r["path"] for r in again])
        assert not errors
    finally:
        context.close()


def load_and_use(browser, url: str, log: ServerLog, **context_options) -> tuple[dict, list[dict]]:
    """The page in a fresh browser: interactive, a digit drawn and predicted, the hidden
    weights' mosaic painted (in the worker); returns {url: sha256 of the decoded body}."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, **context_options)
    page = context.new_page()
    errors, bodies = [], {}

    def keep(response):
        if response.url.startswith(url) and "/socket.io/" not in response.url and response.status == 200:
            bodies[response.url[len(url):]] = hashlib.sha256(response.body()).hexdigest()
    page.on("response", keep)
    page.on("pageerror", lambda err: errors.append(str(err)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    try:
        log.take()
        open_interactive(page, url + "/")
        playground = PlaygroundPage(page)
        playground.draw(STRAIGHT_STROKE)
        expect(playground.by_id("prediction")).not_to_have_text("", timeout=TIMEOUT_MS)
        page.locator(by_id("hidden-weights")).scroll_into_view_if_needed()  # painted in the worker
        page.wait_for_selector(f'{by_id("hidden-weights")}[data-step]', timeout=TIMEOUT_MS)
        assert not errors, errors
        return bodies, log.take()
    finally:
        context.close()


def test_compressed_and_uncompressed_browsers_get_the_same_page_and_both_work(browser, live_server):
    log = ServerLog(live_server.app)
    url = live_server.url
    packed, packed_log = load_and_use(browser, url, log)  # Chromium's own: gzip, deflate, br, zstd
    plain, plain_log = load_and_use(browser, url, log, extra_http_headers={"Accept-Encoding": "identity"})
    built = sorted(path for path in packed if path.startswith("/assets/"))
    assert sorted(path.rsplit("/", 1)[1] for path in built) == ["main.js", "mosaic-worker.js", "page.css", "plotly.js"]
    for path in ["/", *built]:
        assert packed[path] == plain[path], path
    answered = lambda entries, path: [r["encoding"] for r in entries if r["path"] == path]  # noqa: E731
    for path in ["/", *built]:
        assert answered(packed_log, path) == ["br"], (path, packed_log)
        assert answered(plain_log, path) == [None], (path, plain_log)
