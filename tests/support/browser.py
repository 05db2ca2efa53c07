"""The playground page as a person uses it, for the browser tests: open it, find its parts, draw
with the mouse, read the settled answer, take a screenshot. One helper instead of a copy in every
browser test file (like flaskr's AuthActions)."""
from __future__ import annotations

import math
import re
import threading
from contextlib import contextmanager
from pathlib import Path

from tests.support.helpers import REPO

ARTIFACTS = REPO / "artifacts"
TIMEOUT_MS = 60_000  # generous: 2 shared cores, Chromium and training at once

# Strokes, as fractions of the canvas's width and height (few points: the canvas joins them).
STRAIGHT_STROKE = [[(0.5, 0.15 + 0.7 * i / 20) for i in range(21)]]
LOOP = [[(0.5 + 0.25 * math.sin(2 * math.pi * i / 30), 0.5 - 0.35 * math.cos(2 * math.pi * i / 30))
         for i in range(31)]]
SEVEN = [[(0.25 + 0.5 * i / 10, 0.2) for i in range(11)]  # the top bar, then down to the left
         + [(0.75 - 0.3 * i / 15, 0.2 + 0.65 * i / 15) for i in range(1, 16)]]


def by_id(testid: str) -> str:
    """The CSS selector of a part of the page (its data-testid)."""
    return f'[data-testid="{testid}"]'


class PlaygroundPage:
    """A Playwright page on the playground."""

    def __init__(self, page):
        self.page = page

    def open(self, server, query: str = "", *, wait_for: tuple[str, ...] = ()):
        """Go to the server's page (with `query`, e.g. "?lr=0.01") and wait until it is connected
        and shows the run's state, then for each selector in `wait_for`."""
        self.page.goto(server.url + "/" + query.lstrip("/"), timeout=TIMEOUT_MS)
        self.page.wait_for_selector(f'{by_id("connection")}[data-state="connected"]', timeout=TIMEOUT_MS)
        self.page.wait_for_function(
            f"() => document.querySelector('{by_id('step-count')}').textContent.includes('/')", timeout=TIMEOUT_MS)
        for selector in wait_for:
            self.page.wait_for_selector(selector, timeout=TIMEOUT_MS, state="attached")
        return self

    def by_id(self, testid: str):
        """The Playwright locator of a part of the page."""
        return self.page.locator(by_id(testid))

    def text(self, testid: str) -> str:
        return self.page.text_content(by_id(testid))

    def wait_for_status(self, status: str):
        self.page.wait_for_function(
            f"() => document.querySelector('{by_id('status')}').textContent === '{status}'", timeout=TIMEOUT_MS)

    def draw(self, strokes, *, steps: int = 1):
        """Real mouse strokes on the canvas; points are fractions of its width and height."""
        canvas = self.by_id("canvas")
        canvas.scroll_into_view_if_needed()
        box = canvas.bounding_box()
        at = lambda x, y: (box["x"] + x * box["width"], box["y"] + y * box["height"])  # noqa: E731
        for points in strokes:
            self.page.mouse.move(*at(*points[0]))
            self.page.mouse.down()
            for x, y in points[1:]:
                self.page.mouse.move(*at(x, y), steps=steps)
            self.page.mouse.up()

    def settled_prediction(self) -> str:
        """The prediction once the answer to the finished drawing has arrived: the page's last
        prediction answer holds the drawing's final ink (the forced send after pointerup)."""
        page = self.page
        page.wait_for_function(f"() => document.querySelector('{by_id('prediction')}').textContent !== ''",
                               timeout=TIMEOUT_MS)
        # Two reads 300 ms apart that agree: no answer was still on its way.
        page.wait_for_function(f"""() => {{
            const bars = document.querySelector('{by_id('probabilities')}').dataset.values;
            const now = performance.now();
            if (window.__settle && window.__settle.bars === bars) return now - window.__settle.at > 300;
            window.__settle = {{ bars, at: now }};
            return false;
        }}""", timeout=TIMEOUT_MS, polling=50)
        return self.text("prediction")

    def probabilities(self) -> list[float]:
        import json
        return json.loads(self.by_id("probabilities").get_attribute("data-values"))

    # ---- whose run the page shows (features/whose-run.js) --------------------------------------
    OWNER_WORDS = {"shared": "The shared run", "you": "Your own run", "someone": "Someone's run (watching, read-only)"}

    def step(self) -> int:
        """The step the page shows ("step 12 / 80" -> 12)."""
        return int(re.match(r"step (\d+)", self.text("step-count")).group(1))

    def run_key(self) -> str | None:
        """The private run the address names (?run=<key>), None on the shared run."""
        return self.page.evaluate("() => new URL(location.href).searchParams.get('run')")

    def wait_for_owner(self, owner: str):
        """Until the run bar says whose run this is: "shared", "you" or "someone"."""
        self.page.wait_for_function(
            "([selector, words]) => document.querySelector(selector).textContent === words",
            arg=[by_id("run-owner"), self.OWNER_WORDS[owner]], timeout=TIMEOUT_MS)

    def train_my_own_copy(self) -> str:
        """Press "Train my own copy" and wait until the page is on its own run; its key."""
        self.by_id("private-run").click()
        self.wait_for_owner("you")
        self.page.wait_for_function("() => new URL(location.href).searchParams.has('run')", timeout=TIMEOUT_MS)
        return self.run_key()

    def back_to_shared_run(self):
        self.by_id("shared-run").click()
        self.wait_for_owner("shared")
        return self

    def reload(self):
        """Reload the page (the same browser context: the same viewer secret) and wait as open() does."""
        self.page.reload(timeout=TIMEOUT_MS)
        self.page.wait_for_selector(f'{by_id("connection")}[data-state="connected"]', timeout=TIMEOUT_MS)
        self.page.wait_for_function(
            f"() => document.querySelector('{by_id('step-count')}').textContent.includes('/')", timeout=TIMEOUT_MS)
        return self

    def serious_axe_violations(self, *selectors: str) -> list[dict]:
        """axe-core's (from npm) serious and critical findings in these parts of the page (all of it
        when none are named)."""
        self.page.evaluate((REPO / "node_modules" / "axe-core" / "axe.min.js").read_text())
        violations = self.page.evaluate("""async (include) => (await axe.run(include.length ? { include } : document))
            .violations.map(v => ({ id: v.id, impact: v.impact, help: v.help,
                                    nodes: v.nodes.slice(0, 5).map(n => n.target.join(' ')) }))""",
                                        [[selector] for selector in selectors])
        return [v for v in violations if v["impact"] in ("serious", "critical")]

    def screenshot(self, name: str, *, locator=None, full_page: bool = False) -> Path:
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if locator is not None:
            locator.screenshot(path=str(path), timeout=TIMEOUT_MS)
        else:
            self.page.screenshot(path=str(path), full_page=full_page, timeout=TIMEOUT_MS)
        return path


@contextmanager
def own_page(browser, *, expected_console=(), **context_options):
    """A page in its own browser context, failing like the `page` fixture on any script error or
    console error, except console errors matching `expected_console` (regexes): what a browser
    logs for a failure the test causes on purpose (a server stopped, a refused upload)."""
    context = browser.new_context(**{"viewport": {"width": 1400, "height": 1000}, **context_options})
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error"
            and not any(re.search(pattern, msg.text) for pattern in expected_console) else None)
    try:
        yield page
        assert not errors, f"the page reported errors: {errors}"
    finally:
        context.close()


class ServerLog:
    """Every request that reaches the server: path, status, the encoding it was answered in."""

    def __init__(self, app):
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        inner = app.wsgi_app

        def recording(environ, start_response):
            entry = {"path": environ.get("PATH_INFO", ""), "status": None, "encoding": None,
                     "accept": environ.get("HTTP_ACCEPT_ENCODING", "")}
            with self.lock:
                self.requests.append(entry)

            def start(status, headers, *rest):
                entry["status"] = int(status.split()[0])
                entry["encoding"] = dict((k.lower(), v) for k, v in headers).get("content-encoding")
                return start_response(status, headers, *rest)
            return inner(environ, start)
        app.wsgi_app = recording

    def take(self) -> list[dict]:
        with self.lock:
            taken, self.requests = self.requests, []
        return taken


# Connected, the run's state shown, the first chart drawn by Plotly (its axes are there).
INTERACTIVE = f"""() => document.querySelector('{by_id("connection")}')?.dataset.state === "connected"
  && document.querySelector('{by_id("step-count")}')?.textContent.includes("/")
  && Boolean(document.querySelector('{by_id("loss-chart")} .main-svg .xtick'))"""


def open_interactive(page, url: str) -> None:
    page.goto(url, timeout=TIMEOUT_MS)
    page.wait_for_function(INTERACTIVE, polling="raf", timeout=TIMEOUT_MS)
    page.wait_for_load_state("networkidle", timeout=TIMEOUT_MS)  # the explainer's data, the worker
