"""The page in Chromium: load to the first interactive frame, and the render time per frame of
each live view while a run streams.

First interactive frame: the first animation frame at which the page is connected, has drawn the
run's state (status, curves) and the drawing canvas takes input, in ms since navigation start,
in a fresh browser context (cold cache). Measured on an idle server and joining a run under way.

Render time: an init script wraps Plotly's drawing calls (newPlot, react, extendTraces, restyle,
relayout, update) and the canvas blit (putImageData), timing each call on the main thread and
naming it by the element's data-testid; the live views' own measures (performance.measure) are
read too. Frame pacing comes from requestAnimationFrame intervals and long tasks (> 50 ms).

    .venv/bin/python bench/page.py [--loads 5] [--seconds 10]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

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


def first_interactive(browser, url: str) -> dict:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    try:
        page.goto(url, wait_until="commit")
        at = page.wait_for_function(INTERACTIVE, polling="raf", timeout=60_000).json_value()
        navigation = page.evaluate("() => { const n = performance.getEntriesByType('navigation')[0];"
                                   " return {dcl: n.domContentLoadedEventEnd, load: n.loadEventEnd}; }")
        if errors:
            raise RuntimeError(f"the page reported errors: {errors}")
        return {"first_interactive_ms": at, "dom_content_loaded_ms": navigation["dcl"], "load_ms": navigation["load"]}
    finally:
        context.close()


def render_times(browser, url: str, seconds: float) -> dict:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
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


def measure(loads: int = 5, seconds: float = 10.0) -> dict:
    from playwright.sync_api import sync_playwright

    result = {"machine": machine_note()}
    with server_process() as (url, pid), sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        controller = Viewer(url)
        try:
            idle = [first_interactive(browser, url) for _ in range(loads)]
            start_run(controller, steps_per_second=50, epochs=20)
            time.sleep(8)  # a run under way: the page gets its history and live frames at once
            joining = [first_interactive(browser, url) for _ in range(loads)]
            result["load"] = {
                label: {key: median([r[key] for r in runs]) for key in runs[0]}
                for label, runs in (("idle server", idle), ("joining a run under way", joining))}
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
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    result = measure(args.loads, args.seconds)
    for label, row in result["load"].items():
        print(f"page load, {label}: first interactive frame {row['first_interactive_ms']:.0f} ms "
              f"(DOMContentLoaded {row['dom_content_loaded_ms']:.0f} ms, load {row['load_ms']:.0f} ms), median of {args.loads}")
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
