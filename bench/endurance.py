"""Endurance: a long run with 5 viewers (one real Chromium page and four light viewers that
draw a digit every second). When a run finishes the next one starts, as a class would do. Every
`--interval` seconds: the resident memory, threads and open files of the web worker and of the
engine (from /proc), and the page's JS heap after a forced garbage collection, its DOM nodes
and event listeners (Chrome DevTools Protocol: HeapProfiler.collectGarbage,
Performance.getMetrics). The light viewers take what the page takes; the controlling client
takes only state and metrics.

Goal: after the warm-up, each server process's memory grows by less than 50 MB over the run
and the page's JS heap stays flat.

    .venv/bin/python bench/endurance.py [--minutes 30] [--interval 15] [--warmup 60]
"""
from __future__ import annotations

import argparse
import csv
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import (QUIET, VIEWER_KINDS, LightViewer, Viewer, canvas_payload, close_all, emit_json, machine_note,  # noqa: E402
                          open_files, rss_mb, server_process, start_run, thread_count)
from bench.shared import CHROMIUM, CHROMIUM_ARGS  # noqa: E402

ARTIFACTS = REPO / "artifacts"


def slope_per_minute(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, value), per minute."""
    if len(points) < 2:
        return float("nan")
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    var = sum((t - mean_t) ** 2 for t, _ in points)
    return 60 * sum((t - mean_t) * (v - mean_v) for t, v in points) / var if var else float("nan")


PROCESSES = ("web", "engine")


def grown(after: list[dict], samples: list[dict], key: str) -> dict:
    """How `key` went after the warm-up: first, last, growth, max, least-squares slope."""
    first, last = after[0][key], after[-1][key]
    return {"after_warmup": first, "end": last, "growth": last - first, "max": max(s[key] for s in samples),
            "slope_mb_per_min": slope_per_minute([(s["seconds"], s[key]) for s in after])}


def measure(minutes: float = 30.0, interval: float = 15.0, warmup: float = 60.0, torch_threads=None) -> dict:
    from playwright.sync_api import sync_playwright

    payload = canvas_payload()
    samples = []
    stop = threading.Event()
    runs_started = [0]
    predictions = {"answered": 0, "failed": 0}

    with server_process(torch_threads=torch_threads) as served, sync_playwright() as playwright:
        url = served.url
        controller = Viewer(url, auth=QUIET)
        drawers = [LightViewer(url, auth=VIEWER_KINDS["page"], keep_metrics=False) for _ in range(4)]
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page_errors = []
        page.on("pageerror", lambda err: page_errors.append(str(err)))
        cdp = page.context.new_cdp_session(page)
        cdp.send("Performance.enable")

        def keep_training():
            """The default setup at the page's pace; a finished run is followed by a new one."""
            start_run(controller, steps_per_second=50, epochs=20)
            runs_started[0] += 1
            while not stop.wait(2):
                with controller.lock:
                    status = controller.states[-1]["status"] if controller.states else None
                if status == "done":
                    controller.call("train:start")
                    runs_started[0] += 1

        def draw(viewer):
            while not stop.wait(1.0):
                try:
                    ok = viewer.call("predict", payload, timeout=30).get("ok")
                    predictions["answered" if ok else "failed"] += 1
                except Exception:
                    predictions["failed"] += 1

        try:
            page.goto(url)
            page.wait_for_selector('[data-testid="connection"][data-state="connected"]', timeout=60_000)
            threads = [threading.Thread(target=keep_training, daemon=True)] + \
                      [threading.Thread(target=draw, args=(d,), daemon=True) for d in drawers]
            for thread in threads:
                thread.start()
            started = time.perf_counter()
            while time.perf_counter() - started < minutes * 60:
                time.sleep(interval)
                cdp.send("HeapProfiler.collectGarbage")
                metrics = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
                web, engine = served.web_pid(), served.engine_pid()
                samples.append({
                    "seconds": round(time.perf_counter() - started, 1),
                    "web_rss_mb": round(rss_mb(web), 1),
                    "engine_rss_mb": round(rss_mb(engine), 1),
                    "engine_pid": engine,
                    "web_threads": thread_count(web),
                    "engine_threads": thread_count(engine),
                    "web_open_files": open_files(web),
                    "engine_open_files": open_files(engine),
                    "page_js_heap_mb": round(metrics["JSHeapUsedSize"] / 2**20, 2),
                    "page_dom_nodes": int(metrics["Nodes"]),
                    "page_listeners": int(metrics["JSEventListeners"]),
                    "step": controller.metrics[-1][1]["step"] if controller.metrics else 0,
                })
                print("  " + "  ".join(f"{k} {v}" for k, v in samples[-1].items()), flush=True)
            connected = [d.connected for d in drawers] + [controller.connected]
        finally:
            stop.set()
            controller.call("train:pause")
            close_all([controller, *drawers])
            browser.close()

    after = [s for s in samples if s["seconds"] >= warmup] or samples
    first, last = after[0], after[-1]
    ARTIFACTS.mkdir(exist_ok=True)
    with open(ARTIFACTS / "endurance_samples.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(samples[0]))
        writer.writeheader()
        writer.writerows(samples)
    return {
        "minutes": minutes, "warmup_s": warmup, "interval_s": interval, "runs_started": runs_started[0],
        "predictions": predictions, "all_viewers_connected": all(connected), "page_errors": page_errors[:5],
        **{f"{process}_rss_mb": grown(after, samples, f"{process}_rss_mb") for process in PROCESSES},
        "page_js_heap_mb": grown(after, samples, "page_js_heap_mb"),
        "page_dom_nodes": {"after_warmup": first["page_dom_nodes"], "end": last["page_dom_nodes"]},
        "page_listeners": {"after_warmup": first["page_listeners"], "end": last["page_listeners"]},
        **{f"{process}_{what}": {"after_warmup": first[f"{process}_{what}"], "end": last[f"{process}_{what}"]}
           for process in PROCESSES for what in ("threads", "open_files")},
        "engine_restarts": len({s["engine_pid"] for s in samples}) - 1,
        "steps_trained": last["step"], "machine": machine_note(), "samples": samples,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--interval", type=float, default=15.0)
    parser.add_argument("--warmup", type=float, default=60.0)
    parser.add_argument("--torch-threads", type=int, default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    r = measure(args.minutes, args.interval, args.warmup, args.torch_threads)
    heap = r["page_js_heap_mb"]
    print(f"{args.minutes:g} min, {r['runs_started']} runs, predictions {r['predictions']}, all viewers connected: "
          f"{r['all_viewers_connected']}, engine restarts {r['engine_restarts']}, page errors: {r['page_errors']}")
    for process in PROCESSES:
        rss = r[f"{process}_rss_mb"]
        print(f"{process} RSS after warm-up {rss['after_warmup']:.0f} MB -> end {rss['end']:.0f} MB (growth "
              f"{rss['growth']:+.1f} MB, slope {rss['slope_mb_per_min']:+.2f} MB/min; goal: < 50 MB); threads "
              f"{r[f'{process}_threads']}, open files {r[f'{process}_open_files']}")
    print(f"page JS heap after warm-up {heap['after_warmup']:.1f} MB -> end {heap['end']:.1f} MB (growth {heap['growth']:+.2f} MB, "
          f"slope {heap['slope_mb_per_min']:+.3f} MB/min); DOM nodes {r['page_dom_nodes']}, listeners {r['page_listeners']}")
    emit_json({k: v for k, v in r.items()}, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
