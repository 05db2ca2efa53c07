"""The page in Chromium: load to the first interactive frame, the main thread while a run
streams, drawing's frame rate, and the render time per frame of each live view.

First interactive frame: the first animation frame at which the page is connected, has drawn the
run's state (status, curves) and the drawing canvas takes input, in ms since navigation start,
in a fresh browser context (cold cache). Measured on an idle server and joining a run under way.

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

--baseline REF: the page (templates/ and static/) as at that git revision, answered through
Playwright, against the same server, alternating load by load with today's page.
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import Viewer, close_all, emit_json, machine_note, median, percentile, server_process, start_run  # noqa: E402
from tests.helpers import CHROMIUM, CHROMIUM_ARGS  # noqa: E402

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

INTERACTIVE = """() => {
  const q = (id) => document.querySelector(`[data-testid="${id}"]`);
  const connected = q("connection")?.dataset.state === "connected";
  const drawn = q("loss-chart")?.data && q("status")?.textContent;
  const canvas = q("canvas");
  return connected && drawn && canvas && canvas.getBoundingClientRect().width > 0 ? performance.now() : false;
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


PLOTLY_BUNDLES = {  # what /vendor/plotly.min.js is, in each compared load (same plotly.js version)
    "cartesian bundle (served)": REPO / "node_modules" / "plotly.js-cartesian-dist-min" / "plotly-cartesian.min.js",
    "full bundle": REPO / "node_modules" / "plotly.js-dist-min" / "plotly.min.js",
}


class PageAt:
    """The page (templates/index.html and static/) as it was at a git revision, or as it is in
    the working tree (ref None), for `--baseline REF`: an older page and today's load side by
    side against one server. Both go the same way: every request for the page or a static file
    is still sent to the server (its work and timing are real), and its answer's body is replaced
    by the revision's file. The server, its socket and /vendor/ stay today's."""

    # A document answered through Playwright has no address, so Chromium's local-network check
    # would refuse its websocket to 127.0.0.1: a comparison's browser runs without that check,
    # for both pages alike.
    BROWSER_ARGS = ["--disable-features=LocalNetworkAccessChecks"]

    def __init__(self, ref: str | None):
        self.ref = None if ref is None else subprocess.run(
            ["git", "rev-parse", "--short", ref], cwd=REPO, check=True, capture_output=True, text=True).stdout.strip()
        self.label = "this page (the working tree)" if ref is None else f"the page at {self.ref}"
        self.files: dict[str, bytes | None] = {}
        import jinja2  # the template's only dynamic part is url_for('static', ...)
        self.html = jinja2.Template(self._read("templates/index.html").decode()).render(
            url_for=lambda _, filename: f"/static/{filename}").encode()

    def _read(self, path: str) -> bytes | None:
        if self.ref is None:
            file = REPO / path
            return file.read_bytes() if file.is_file() else None
        shown = subprocess.run(["git", "show", f"{self.ref}:{path}"], cwd=REPO, capture_output=True)
        return shown.stdout if shown.returncode == 0 else None

    def answer(self, route):
        path = urlparse(route.request.url).path
        response = route.fetch()
        if path == "/":
            body = self.html
        else:
            if path not in self.files:
                self.files[path] = self._read(path.lstrip("/"))
            body = self.files[path]
        if body is None:
            route.fulfill(response=response)
            return
        headers = {k: v for k, v in response.headers.items() if k.lower() not in ("content-length", "etag", "last-modified")}
        route.fulfill(response=response, status=200, body=body, headers=headers)

    def install(self, page) -> None:
        page.route(re.compile(r"^[^?#]*://[^/]+/(static/[^?#]*)?([?#].*)?$"), self.answer)


def first_interactive(browser, url: str, plotly_bundle: Path | None = None, page_at: PageAt | None = None) -> dict:
    """One cold load. With `plotly_bundle`, /vendor/plotly.min.js is answered from that file
    (through Playwright, for every compared bundle alike); with `page_at`, the page itself is
    the one of that revision."""
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    if plotly_bundle is not None:
        body = plotly_bundle.read_bytes()
        page.route("**/vendor/plotly.min.js", lambda route: route.fulfill(
            status=200, body=body, headers={"Content-Type": "text/javascript", "Cache-Control": "max-age=3600"}))
    if page_at is not None:
        page_at.install(page)
    try:
        page.goto(url, wait_until="commit")
        at = page.wait_for_function(INTERACTIVE, polling="raf", timeout=60_000).json_value()
        navigation = page.evaluate("() => { const n = performance.getEntriesByType('navigation')[0];"
                                   " return {dcl: n.domContentLoadedEventEnd, load: n.loadEventEnd}; }")
        if errors:
            raise RuntimeError(f"the page reported errors: {errors}")
        return {"first_interactive_ms": at, "dom_content_loaded_ms": navigation["dcl"], "load_ms": navigation["load"]}
    finally:
        if page_at is not None:  # requests still on their way (the page keeps loading) are dropped
            page.unroute_all(behavior="ignoreErrors")
        context.close()


def render_times(browser, url: str, seconds: float) -> dict:
    context = browser.new_context(viewport=VIEWPORT)
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


def compare_with(browser, url: str, baseline: PageAt, loads: int) -> dict:
    """First interactive frame of the page at `baseline` and of today's page, alternating load
    by load on one idle server (the machine's ups and downs hit both alike), both answered the
    same way (PageAt)."""
    pages = [baseline, PageAt(None)]
    runs = {page.label: [] for page in pages}
    for _ in range(loads):
        for page in pages:
            runs[page.label].append(first_interactive(browser, url, page_at=page))
    return {label: {key: median([r[key] for r in rows]) for key in rows[0]} | {
                "all_first_interactive_ms": [round(r["first_interactive_ms"]) for r in rows]}
            for label, rows in runs.items()}


def measure(loads: int = 5, seconds: float = 10.0, main_seconds: float = 20.0, *, baseline: str | None = None,
            only_load: bool = False) -> dict:
    from playwright.sync_api import sync_playwright

    result = {"machine": machine_note()}
    if only_load:
        with server_process() as (url, pid), sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS + PageAt.BROWSER_ARGS)
            try:
                first_interactive(browser, url)  # the server's first page (its caches warm), not counted
                result["baseline"] = compare_with(browser, url, PageAt(baseline or "HEAD"), loads)
            finally:
                browser.close()
        return result
    with server_process() as (url, pid), sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM,
                                             args=CHROMIUM_ARGS + (PageAt.BROWSER_ARGS if baseline else []))
        controller = Viewer(url)
        try:
            # The bundles alternate load by load, so the machine's ups and downs hit both alike.
            compared = {label: [] for label in PLOTLY_BUNDLES}
            for _ in range(loads):
                for label, bundle in PLOTLY_BUNDLES.items():
                    compared[label].append(first_interactive(browser, url, bundle))
            start_run(controller, steps_per_second=50, epochs=20)
            time.sleep(8)  # a run under way: the page gets its history and live frames at once
            joining = [first_interactive(browser, url) for _ in range(loads)]
            runs_by_label = {f"idle server, {label}": runs for label, runs in compared.items()}
            runs_by_label["joining a run under way"] = joining
            result["load"] = {label: {key: median([r[key] for r in runs]) for key in runs[0]}
                              for label, runs in runs_by_label.items()}
            if baseline:
                controller.call("train:pause")
                result["baseline"] = compare_with(browser, url, PageAt(baseline), loads)
            result["main_thread"] = main_thread_figures(browser, url, controller, main_seconds)
            start_run(controller, steps_per_second=50, epochs=200)
            result["render"] = render_times(browser, url, seconds)
            controller.call("train:pause")
        finally:
            close_all([controller])
            browser.close()
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loads", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--main-seconds", type=float, default=20.0)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--baseline", default=None, metavar="REF",
                        help="also load the page as it was at this git revision, alternating with today's")
    parser.add_argument("--only-load", action="store_true",
                        help="only the first interactive frame against --baseline (default HEAD)")
    args = parser.parse_args(argv)
    result = measure(args.loads, args.seconds, args.main_seconds, baseline=args.baseline, only_load=args.only_load)
    print(result["machine"])
    if "baseline" in result:
        rows = list(result["baseline"].items())
        for label, row in rows:
            print(f"first interactive frame, {label}: {row['first_interactive_ms']:.0f} ms "
                  f"(DOMContentLoaded {row['dom_content_loaded_ms']:.0f} ms), median of {args.loads}, "
                  f"alternating; each: {row['all_first_interactive_ms']}")
        (_, before), (_, today) = rows
        # The machine's load drifts during a run: each load of today's page against the load of the
        # older page just before it is the steadier comparison.
        pairs = [t / b for b, t in zip(before["all_first_interactive_ms"], today["all_first_interactive_ms"])]
        print(f"  ratio: today / before {today['first_interactive_ms'] / before['first_interactive_ms']:.2f}x "
              f"(medians); {median(pairs):.2f}x (median of the {len(pairs)} pairs); today faster in "
              f"{sum(r < 1 for r in pairs)} of {len(pairs)} pairs")
        result["baseline_pairs"] = {"median_ratio": median(pairs), "today_faster": sum(r < 1 for r in pairs),
                                    "pairs": len(pairs)}
        if args.only_load:
            emit_json(result, args.json)
            return 0
    for label, row in result["load"].items():
        print(f"page load, {label}: first interactive frame {row['first_interactive_ms']:.0f} ms "
              f"(DOMContentLoaded {row['dom_content_loaded_ms']:.0f} ms, load {row['load_ms']:.0f} ms), median of {args.loads}")
    served, full = (result["load"][f"idle server, {label}"]["first_interactive_ms"] for label in PLOTLY_BUNDLES)
    print(f"  ratio: the full Plotly bundle / the cartesian bundle the page is served: {full / served:.2f}x")
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
    emit_json(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
