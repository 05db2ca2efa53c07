"""The page in Chromium: what a cold load and a reload cost on the network, the first interactive
frame, the main thread while a run streams, drawing's frame rate, and the render time per frame
of each live view.

First interactive frame: the first animation frame at which the page is connected, shows the
run's state (its step count "step 0 / N"), has drawn its first chart (Plotly's loss chart, axes
drawn) and the drawing canvas takes input (its pointer handler attached, nothing over it), in ms
since navigation start (the address typed), in a fresh browser context (cold cache), the server
idle; also joining a run under way. A reload: the same context, the page reloaded.

On the wire (Chromium's own accounting, CDP Network): the bytes each HTTP response took as they
came (headers and body, compressed or not), the requests that reached the server (not answered
from the browser's cache; a 304 reached it) and the websockets, from navigation until the page is
interactive and the network has been quiet for half a second.

Main thread (1440x900, the run at the default pace of 50 steps/s): busy share = Chromium's
own main-thread task time (CDP Performance.getMetrics TaskDuration) over wall time; long tasks
(> 50 ms) from the Long Tasks API: how many, their share of wall time, the longest. Measured side
by side in one run: the top of the page in view (what a person sees first), the page scrolled to
"Look inside" (every live view in view), and the same top of the page on an idle server.
Drawing: real mouse strokes on the canvas (Playwright, continuous circles) for the whole window
while the run trains; frames/s and frame intervals from requestAnimationFrame.

Render time: an init script wraps Plotly's drawing calls (newPlot, react, extendTraces, restyle,
relayout, update) and the canvas blit (putImageData), timing each call on the main thread and
naming it by the element's data-testid; the live views' own measures (performance.measure) are
read too. Frame pacing comes from requestAnimationFrame intervals and long tasks (> 50 ms).

    .venv/bin/python bench/page.py [--loads 5] [--seconds 10] [--main-seconds 20] [--baseline REF]
    .venv/bin/python bench/page.py --only-load --baseline REF --loads 9   (before/after, load only)

--baseline REF: that git revision's own server (its code, page and assets; today's packages,
bench/common.py revision_tree) beside today's, both idle, loaded alternately: cold loads and
reloads, first interactive frame, bytes and requests, side by side in one run.
"""
from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import (Viewer, close_all, emit_json, load_average, machine_note, median, percentile,  # noqa: E402
                          revision_tree, server_process, start_run)
from bench.shared import CHROMIUM, CHROMIUM_ARGS  # noqa: E402

INSTRUMENT = """
(() => {
  window.__renders = [];
  window.__frames = [];
  window.__longTasks = 0;
  const nameOf = (element) => {
    const el = typeof element === "string" ? document.getElementById(element) : element;
    const owner = el && el.closest ? el.closest("[data-testid]") : null;
    return owner ? owner.dataset.testid : (el && el.id) || "?";
  };
  const wrapPlotly = (plotly) => {
    for (const method of ["newPlot", "react", "extendTraces", "restyle", "relayout", "update"]) {
      const original = plotly[method];
      if (typeof original !== "function" || original.__timed) continue;
      const timed = function (element, ...rest) {
        const started = performance.now();
        try { return original.call(this, element, ...rest); }
        finally { window.__renders.push([nameOf(element), method, performance.now() - started]); }
      };
      timed.__timed = true;
      plotly[method] = timed;
    }
    return plotly;
  };
  let plotly;
  Object.defineProperty(window, "Plotly", {
    configurable: true,
    get: () => plotly,
    set: (value) => { plotly = value ? wrapPlotly(value) : value; },
  });
  const put = CanvasRenderingContext2D.prototype.putImageData;
  CanvasRenderingContext2D.prototype.putImageData = function (...args) {
    const started = performance.now();
    try { return put.apply(this, args); }
    finally { window.__renders.push([nameOf(this.canvas), "putImageData", performance.now() - started]); }
  };
  let last = null;
  const tick = (now) => { if (last !== null) window.__frames.push(now - last); last = now; requestAnimationFrame(tick); };
  requestAnimationFrame(tick);
  try {
    new PerformanceObserver((list) => { window.__longTasks += list.getEntries().length; })
      .observe({ type: "longtask", buffered: true });
  } catch (err) { /* no long task API */ }
})();
"""

# The canvas takes input once its pointer handler is attached (static/js/canvas.js): noted by
# wrapping addEventListener before any of the page's scripts runs.
CANVAS_INPUT = """
(() => {
  const add = EventTarget.prototype.addEventListener;
  EventTarget.prototype.addEventListener = function (type, ...rest) {
    if (type === "pointerdown" && this instanceof HTMLCanvasElement && this.dataset.testid === "canvas") {
      window.__canvasTakesInput = true;
    }
    return add.call(this, type, ...rest);
  };
})();
"""

# The first interactive frame (see the top of this file), checked in every animation frame.
INTERACTIVE = """() => {
  const q = (id) => document.querySelector(`[data-testid="${id}"]`);
  const connected = q("connection")?.dataset.state === "connected";
  const state = q("step-count")?.textContent.includes("/");
  const chart = q("loss-chart")?.querySelector(".main-svg .xtick");
  const canvas = q("canvas");
  let input = false;
  if (canvas && window.__canvasTakesInput) {
    const box = canvas.getBoundingClientRect();
    const x = box.left + box.width / 2, y = box.top + box.height / 2;
    const inWindow = x >= 0 && y >= 0 && x < innerWidth && y < innerHeight;
    input = box.width > 0 && (!inWindow || document.elementFromPoint(x, y) === canvas);
  }
  return connected && state && chart && input ? performance.now() : false;
}"""


VIEWPORT = {"width": 1440, "height": 900}

# Long tasks with their durations and requestAnimationFrame intervals, from navigation on.
PACING = """
(() => {
  window.__longTasks = [];
  window.__frames = [];
  let last = null;
  const tick = (now) => { if (last !== null) window.__frames.push(now - last); last = now; requestAnimationFrame(tick); };
  requestAnimationFrame(tick);
  try {
    new PerformanceObserver((list) => { for (const e of list.getEntries()) window.__longTasks.push(e.duration); })
      .observe({ type: "longtask", buffered: true });
  } catch (err) { /* no long task API */ }
  // Where long frames went: the scripts of each long animation frame (Chromium's LoAF API).
  window.__longScripts = [];
  try {
    new PerformanceObserver((list) => {
      for (const frame of list.getEntries()) {
        for (const s of frame.scripts || []) {
          const file = (s.sourceURL || "").split("/").pop() || s.invokerType;
          window.__longScripts.push([`${file} ${s.sourceFunctionName || s.invoker || ""}`.trim(), s.duration]);
        }
      }
    }).observe({ type: "long-animation-frame", buffered: true });
  } catch (err) { /* no long animation frame API */ }
})();
"""


PLOTLY = REPO / "node_modules" / "plotly.js" / "dist"
PLOTLY_BUNDLES = {  # what the page's Plotly is, in each compared load (plotly.js 4.1.1 both)
    "Plotly built for the page (core, bar, heatmap)": None,  # the built file (server/web/bundle.py)
    "plotly.js's cartesian bundle (the page's before)": PLOTLY / "plotly-cartesian.min.js",
}
PLOTLY_URL = re.compile(r".*/assets/[0-9a-f]+/plotly\.js$")


class Wire:
    """What one page's loads cost on the network, from Chromium's own accounting (CDP Network):
    bytes received per HTTP response (headers and body, as they came), requests that reached
    the server (not answered from the cache) and websockets (and the bytes of their frames)."""

    def __init__(self, context, page):
        self.cdp = context.new_cdp_session(page)
        self.requests: dict[str, dict] = {}
        self.websockets = 0
        self.websocket_bytes = 0
        self.cdp.on("Network.requestWillBeSent", self._sent)
        self.cdp.on("Network.requestServedFromCache", lambda e: self._get(e).update(cached=True))
        self.cdp.on("Network.responseReceived", self._response)
        self.cdp.on("Network.loadingFinished", lambda e: self._get(e).update(bytes=e["encodedDataLength"]))
        self.cdp.on("Network.webSocketCreated", self._websocket)
        self.cdp.on("Network.webSocketFrameReceived",
                    lambda e: setattr(self, "websocket_bytes", self.websocket_bytes + len(e["response"]["payloadData"])))
        self.cdp.send("Network.enable")
        self.cdp.send("Network.setCacheDisabled", {"cacheDisabled": False})

    def _get(self, event) -> dict:
        return self.requests.setdefault(event["requestId"], {"url": "", "cached": False, "bytes": 0, "status": None})

    def _sent(self, event):
        if event["request"]["url"].startswith("http"):
            self._get(event).update(url=event["request"]["url"])

    def _response(self, event):
        response = event["response"]
        entry = self._get(event)
        entry["status"] = response["status"]
        if response.get("fromDiskCache") or response.get("fromPrefetchCache") or response.get("fromServiceWorker"):
            entry["cached"] = True

    def _websocket(self, event):
        self.websockets += 1

    def take(self, page) -> dict:
        """What was received since the last take (and forget it). A worker's script is fetched
        by the worker, whose answer the page's session does not see: the page's Resource
        Timing says what it cost (transferSize 0: from the cache)."""
        requests = [r for r in self.requests.values() if r["url"]]
        for entry in requests:
            if entry["status"] is None:
                size = page.evaluate("(url) => performance.getEntriesByName(url).map((e) => e.transferSize)[0] ?? null",
                                     entry["url"])
                if size is not None:
                    entry.update(cached=size == 0, bytes=size, status=200)
        reached = [r for r in requests if not r["cached"]]
        result = {"kb": sum(r["bytes"] for r in requests) / 1000, "requests": len(requests),
                  "reached_server": len(reached) + self.websockets, "not_modified": sum(r["status"] == 304 for r in reached),
                  "websockets": self.websockets, "websocket_kb": self.websocket_bytes / 1000,
                  "urls": sorted(r["url"].split("?")[0].rsplit("/", 2)[-1] + ("" if not r["cached"] else " (cache)")
                                 for r in requests)}
        self.requests, self.websockets, self.websocket_bytes = {}, 0, 0
        return result


def until_interactive(page, errors) -> dict:
    """Wait for the first interactive frame, then for the network to be quiet: the times."""
    at = page.wait_for_function(INTERACTIVE, polling="raf", timeout=60_000).json_value()
    navigation = page.evaluate("() => { const n = performance.getEntriesByType('navigation')[0];"
                               " return {dcl: n.domContentLoadedEventEnd, load: n.loadEventEnd}; }")
    page.wait_for_load_state("networkidle", timeout=60_000)
    if errors:
        raise RuntimeError(f"the page reported errors: {errors}")
    return {"first_interactive_ms": at, "dom_content_loaded_ms": navigation["dcl"], "load_ms": navigation["load"]}


def first_interactive(browser, url: str, plotly_bundle: Path | None = None, *, reload: bool = False) -> dict:
    """One cold load (a fresh context), and with `reload` the same page reloaded. With
    `plotly_bundle`, the page's Plotly is answered from that file (through Playwright, which
    turns the cache off: timing only)."""
    context = browser.new_context(viewport=VIEWPORT)
    context.add_init_script(CANVAS_INPUT)
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    if plotly_bundle is not None:
        body = plotly_bundle.read_bytes()
        page.route(PLOTLY_URL, lambda route: route.fulfill(status=200, body=body, headers={
            "Content-Type": "text/javascript", "Cache-Control": "public, max-age=31536000, immutable"}))
    wire = Wire(context, page)
    try:
        page.goto(url, wait_until="commit")
        result = until_interactive(page, errors) | wire.take(page)
        if reload:
            page.reload(wait_until="commit")
            result["reload"] = until_interactive(page, errors) | wire.take(page)
        return result
    finally:
        context.close()


def summary(rows: list[dict]) -> dict:
    """Medians of a label's loads (and of their reloads), with every first interactive frame."""
    numeric = [k for k, v in rows[0].items() if isinstance(v, (int, float))]
    result = {key: median([r[key] for r in rows]) for key in numeric}
    result["all_first_interactive_ms"] = [round(r["first_interactive_ms"]) for r in rows]
    result["urls"] = rows[-1]["urls"]
    if "reload" in rows[0]:
        result["reload"] = summary([r["reload"] for r in rows])
    return result


def render_times(browser, url: str, seconds: float) -> dict:
    context = browser.new_context(viewport=VIEWPORT)
    context.add_init_script(CANVAS_INPUT)
    context.add_init_script(INSTRUMENT)
    page = context.new_page()
    try:
        page.goto(url)
        page.wait_for_function(INTERACTIVE, polling="raf", timeout=60_000)
        time.sleep(2.0)
        page.evaluate("() => { window.__renders = []; window.__frames = []; window.__longTasks = 0;"
                      " performance.clearMeasures(); }")
        time.sleep(seconds)
        renders, frames, long_tasks, measures = page.evaluate(
            "() => [window.__renders, window.__frames, window.__longTasks,"
            " performance.getEntriesByType('measure').map((m) => [m.name, m.duration])]")
    finally:
        context.close()
    views: dict[str, list[float]] = {}
    for name, method, duration in renders:
        views.setdefault(f"{name} ({'canvas' if method == 'putImageData' else 'Plotly'})", []).append(duration)
    for name, duration in measures:
        views.setdefault(f"{name} (own measure)", []).append(duration)
    return {
        "views": {name: {"frames_per_second": len(d) / seconds, "median_ms": median(d), "p95_ms": percentile(d, 95),
                         "max_ms": max(d), "busy_ms_per_second": sum(d) / seconds}
                  for name, d in sorted(views.items(), key=lambda kv: -sum(kv[1]))},
        "animation_frames": {"median_ms": median(frames), "p95_ms": percentile(frames, 95),
                             "max_ms": max(frames) if frames else float("nan"),
                             "frames_per_second": len(frames) / seconds},
        "long_tasks": long_tasks, "seconds": seconds,
    }


def task_seconds(cdp) -> float:
    metrics = cdp.send("Performance.getMetrics")["metrics"]
    return next(m["value"] for m in metrics if m["name"] == "TaskDuration")


def draw_circles(page, seconds: float) -> int:
    """Real mouse strokes on the drawing canvas for `seconds`: a circle, lifted, again."""
    import math
    box = page.locator('[data-testid="canvas"]').bounding_box()
    cx, cy, r = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2, box["width"] * 0.3
    moves = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        page.mouse.move(cx + r, cy)
        page.mouse.down()
        for i in range(1, 41):
            angle = 2 * math.pi * i / 40
            page.mouse.move(cx + r * math.cos(angle), cy + r * math.sin(angle))
            moves += 1
        page.mouse.up()
    return moves


def main_thread(browser, url: str, seconds: float, *, where: str = "top", drawing: bool = False) -> dict:
    """The main thread of a page at 1440x900 over `seconds`: busy share, long tasks, frames."""
    context = browser.new_context(viewport=VIEWPORT)
    context.add_init_script(CANVAS_INPUT)
    context.add_init_script(PACING)
    page = context.new_page()
    try:
        page.goto(url)
        page.wait_for_function(INTERACTIVE, polling="raf", timeout=60_000)
        if where == "inside":
            page.locator("#inside-panel").scroll_into_view_if_needed()
            page.evaluate("() => document.getElementById('inside-panel').scrollIntoView({ block: 'start' })")
        time.sleep(3.0)  # the first frames of every stream drawn
        cdp = context.new_cdp_session(page)
        cdp.send("Performance.enable")
        page.evaluate("() => { window.__longTasks = []; window.__frames = []; window.__longScripts = []; }")
        busy_before, started = task_seconds(cdp), time.monotonic()
        moves = draw_circles(page, seconds) if drawing else (time.sleep(seconds) or 0)
        busy, wall = task_seconds(cdp) - busy_before, time.monotonic() - started
        long_tasks, frames, scripts = page.evaluate("() => [window.__longTasks, window.__frames, window.__longScripts]")
    finally:
        context.close()
    return {
        "busy_share": busy / wall, "seconds": wall,
        "long_tasks": len(long_tasks), "long_task_share": sum(long_tasks) / 1000 / wall,
        "longest_task_ms": max(long_tasks, default=0.0),
        "frames_per_second": len(frames) / wall, "frame_median_ms": median(frames),
        "frame_p95_ms": percentile(frames, 95), "frame_max_ms": max(frames, default=float("nan")),
        "mouse_moves": moves,
        "long_frame_scripts": top_scripts(scripts),
    }


def top_scripts(scripts, count: int = 4) -> list[tuple[str, float]]:
    """The scripts that took the most time inside long animation frames, in ms over the window."""
    totals: dict[str, float] = {}
    for name, duration in scripts:
        totals[name] = totals.get(name, 0.0) + duration
    return sorted(totals.items(), key=lambda kv: -kv[1])[:count]


def main_thread_figures(browser, url: str, controller, seconds: float) -> dict:
    """Side by side in one run: idle server, then training at the default pace (top of the
    page; top while drawing; scrolled to the live views)."""
    controller.call("train:reset", {"config": {"steps_per_second": 50, "epochs": 200}})
    figures = {"idle server, top of the page": main_thread(browser, url, seconds)}
    start_run(controller, steps_per_second=50, epochs=200)
    figures["training, top of the page"] = main_thread(browser, url, seconds)
    figures["training, top of the page, drawing"] = main_thread(browser, url, seconds, drawing=True)
    figures["training, scrolled to Look inside"] = main_thread(browser, url, seconds, where="inside")
    controller.call("train:pause")
    return figures


def compare_with(browser, urls: dict[str, str], loads: int) -> dict:
    """Cold loads and reloads of each labelled server's page, alternating load by load (the
    machine's ups and downs hit both alike)."""
    runs = {label: [] for label in urls}
    for _ in range(loads):
        for label, url in urls.items():
            runs[label].append(first_interactive(browser, url, reload=True))
    return {label: summary(rows) for label, rows in runs.items()}


def measure(loads: int = 5, seconds: float = 10.0, main_seconds: float = 20.0, *, baseline: str | None = None,
            only_load: bool = False) -> dict:
    from playwright.sync_api import sync_playwright
    from contextlib import ExitStack

    result = {"machine": machine_note()}
    with ExitStack() as stack:
        url, pid = stack.enter_context(server_process())
        urls = {"today": url}
        if baseline:
            tree, rev = stack.enter_context(revision_tree(baseline))
            urls = {f"before ({rev})": stack.enter_context(server_process(repo=tree)).url, "today": url}
        playwright = stack.enter_context(sync_playwright())
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        stack.callback(browser.close)
        for each in urls.values():
            first_interactive(browser, each)  # each server's first page (its caches warm), not counted
        result["pages"] = compare_with(browser, urls, loads)
        if only_load:
            result["load_average_end"] = load_average()
            return result
        controller = Viewer(url)
        stack.callback(close_all, [controller])
        # The Plotly bundles alternate load by load, as the pages above.
        compared = {label: [] for label in PLOTLY_BUNDLES}
        for _ in range(loads):
            for label, bundle in PLOTLY_BUNDLES.items():
                compared[label].append(first_interactive(browser, url, bundle or built_plotly(url)))
        result["plotly"] = {label: summary(rows) for label, rows in compared.items()}
        start_run(controller, steps_per_second=50, epochs=20)
        time.sleep(8)  # a run under way: the page gets its history and live frames at once
        result["joining"] = summary([first_interactive(browser, url) for _ in range(loads)])
        controller.call("train:pause")
        result["main_thread"] = main_thread_figures(browser, url, controller, main_seconds)
        start_run(controller, steps_per_second=50, epochs=200)
        result["render"] = render_times(browser, url, seconds)
        controller.call("train:pause")
        result["load_average_end"] = load_average()
    return result


def built_plotly(url: str) -> Path:
    """The Plotly file the server's page names (build/assets/<hash>/plotly.js)."""
    import requests
    found = re.search(r'href="/assets/([0-9a-f]+)/plotly\.js"', requests.get(url + "/").text)
    return REPO / "build" / "assets" / found.group(1) / "plotly.js"


def print_pages(pages: dict, loads: int) -> None:
    for label, row in pages.items():
        reload = row["reload"]
        print(f"the page, {label}: first interactive frame {row['first_interactive_ms']:.0f} ms cold "
              f"(DOMContentLoaded {row['dom_content_loaded_ms']:.0f} ms), {reload['first_interactive_ms']:.0f} ms "
              f"reloaded; median of {loads}, alternating; each cold: {row['all_first_interactive_ms']}")
        print(f"  cold: {row['kb']:.0f} kB on the wire in {row['requests']:.0f} HTTP requests "
              f"(+ {row['websockets']:.0f} websocket, {row['websocket_kb']:.1f} kB until quiet)")
        print(f"  reload: {reload['kb']:.1f} kB, {reload['reached_server']:.0f} requests reached the server "
              f"({reload['not_modified']:.0f} answered 304, websockets included); "
              f"{reload['requests'] - reload['reached_server'] + reload['websockets']:.0f} from the cache")
    if len(pages) == 2:
        (_, before), (_, today) = pages.items()
        pairs = [t / b for b, t in zip(before["all_first_interactive_ms"], today["all_first_interactive_ms"])]
        print(f"  today / before: first interactive frame {today['first_interactive_ms'] / before['first_interactive_ms']:.2f}x "
              f"(medians), {median(pairs):.2f}x (median of the {len(pairs)} pairs, today faster in "
              f"{sum(r < 1 for r in pairs)}); cold bytes {today['kb'] / before['kb']:.2f}x; reload bytes "
              f"{today['reload']['kb'] / max(before['reload']['kb'], 1e-9):.2f}x")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loads", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--main-seconds", type=float, default=20.0)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--baseline", default=None, metavar="REF",
                        help="also run that git revision's server and load its page, alternating with today's")
    parser.add_argument("--only-load", action="store_true",
                        help="only the cold loads and reloads (with --baseline: before and after)")
    args = parser.parse_args(argv)
    result = measure(args.loads, args.seconds, args.main_seconds, baseline=args.baseline, only_load=args.only_load)
    print(result["machine"])
    print_pages(result["pages"], args.loads)
    if args.only_load:
        print(f"load average at the end: {result['load_average_end']:.1f}")
        emit_json(result, args.json)
        return 0
    for label, row in result["plotly"].items():
        print(f"the page with {label}: first interactive frame {row['first_interactive_ms']:.0f} ms, "
              f"median of {args.loads}, alternating: {row['all_first_interactive_ms']}")
    built, cartesian = (row["first_interactive_ms"] for row in result["plotly"].values())
    print(f"  ratio: with plotly.js's cartesian bundle / with the page's own: {cartesian / built:.2f}x")
    row = result["joining"]
    print(f"joining a run under way: first interactive frame {row['first_interactive_ms']:.0f} ms, median of {args.loads}")
    figures = result["main_thread"]
    print(f"main thread at 1440x900, run at 50 steps/s ({args.main_seconds:.0f} s each, one after the other):")
    print(f"  {'condition':40} {'busy':>6} {'long tasks':>10} {'their share':>11} {'longest ms':>10} "
          f"{'frames/s':>8} {'median ms':>9} {'p95 ms':>7} {'max ms':>7}")
    for label, row in figures.items():
        print(f"  {label:40} {row['busy_share']:6.1%} {row['long_tasks']:10d} {row['long_task_share']:11.1%} "
              f"{row['longest_task_ms']:10.0f} {row['frames_per_second']:8.1f} {row['frame_median_ms']:9.1f} "
              f"{row['frame_p95_ms']:7.1f} {row['frame_max_ms']:7.0f}")
    for label, row in figures.items():
        if row["long_frame_scripts"]:
            print(f"  in long frames, {label}: " + "; ".join(f"{name} {ms:.0f} ms" for name, ms in row["long_frame_scripts"]))
    top, inside = figures["training, top of the page"], figures["training, scrolled to Look inside"]
    idle = figures["idle server, top of the page"]
    print(f"  ratios: busy share training/idle {top['busy_share'] / max(idle['busy_share'], 1e-9):.2f}x, "
          f"Look inside in view / top of the page {inside['busy_share'] / max(top['busy_share'], 1e-9):.2f}x")
    render = result["render"]
    print(f"render while training at 50 steps/s ({render['seconds']:.0f} s):")
    print(f"  {'view':52} {'frames/s':>8} {'median ms':>9} {'p95 ms':>7} {'busy ms/s':>9}")
    for name, row in render["views"].items():
        print(f"  {name:52} {row['frames_per_second']:8.1f} {row['median_ms']:9.2f} {row['p95_ms']:7.2f} "
              f"{row['busy_ms_per_second']:9.1f}")
    frames = render["animation_frames"]
    print(f"  animation frames: {frames['frames_per_second']:.0f}/s, interval median {frames['median_ms']:.1f} ms, "
          f"p95 {frames['p95_ms']:.1f} ms, max {frames['max_ms']:.0f} ms; long tasks: {render['long_tasks']}")
    print(f"load average at the end: {result['load_average_end']:.1f}")
    emit_json(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
