"""`predict` round trip over a real websocket: median and p99, with the server idle and while
training runs (at the page's default pace, 50 steps/s, and at full speed). The client is a
viewer as the page is one (it receives every stream while it asks) and sends what the page
sends while you draw: its 280x280 canvas cropped to the ink (a "7", 140x177 bytes), one request
every 60 ms (the page's throttle).

Variants (each its own server process, in turns): PyTorch threads (default vs 1) and the
server (Werkzeug, as `python -m server` runs, vs gunicorn's threaded worker).

    .venv/bin/python bench/latency.py [--requests 200] [--variants werkzeug:default,werkzeug:1,...]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from server.engine.runtime import default_torch_threads  # noqa: E402
from bench.common import (BLANK_PIXELS, LightViewer, Viewer, canvas_payload, close_all, cpu_seconds,  # noqa: E402
                          emit_json, machine_note, median, percentile, server_process, start_run)

SPACING_S = 0.06  # the page sends at most one prediction per 60 ms while you draw
CONDITIONS = ("idle", "training 50 steps/s", "training full speed")


def round_trips(viewer: Viewer, payload: dict, n: int) -> list[float]:
    times = []
    next_at = time.perf_counter()
    for _ in range(n):
        started = time.perf_counter()
        answer = viewer.call("predict", payload)
        times.append((time.perf_counter() - started) * 1000)
        assert answer["ok"], answer
        next_at += SPACING_S
        time.sleep(max(0.0, next_at - time.perf_counter()))
    return times


def set_condition(viewer: Viewer, condition: str):
    if condition == "idle":
        viewer.call("train:pause")
    elif condition == "training 50 steps/s":
        start_run(viewer, steps_per_second=50)
    else:
        start_run(viewer, steps_per_second=None)
    time.sleep(1.5)  # the run settles (first snapshots, first metrics)


def measure_floor(n: int) -> dict:
    """The same client and payloads against bench/floor_server.py (a handler that does nothing)."""
    with server_process(server="floor") as (url, pid):
        viewer = LightViewer(url)
        try:
            round_trips(viewer, canvas_payload(), 20)
            return {"idle": round_trips(viewer, canvas_payload(), n),
                    "idle, 784 pixels": round_trips(viewer, BLANK_PIXELS, n // 2)}
        finally:
            viewer.close()


def server_cpu_per_predict(server: str = "werkzeug", viewers: int = 20, seconds: float = 8.0) -> dict:
    """Server CPU time (from /proc) per prediction while `viewers` light viewers each draw every
    200 ms and nothing trains: what one prediction costs the server, transport included."""
    from bench.load import draw_together

    with server_process(server=server) as (url, pid):
        crowd = [LightViewer(url) for _ in range(viewers)]
        try:
            time.sleep(1)
            before = cpu_seconds(pid)
            latencies, failures = draw_together(crowd, canvas_payload(), seconds)
            used = cpu_seconds(pid) - before
        finally:
            close_all(crowd)
    answered = len(latencies)
    return {"server": server, "viewers": viewers, "predictions": answered, "failures": len(failures),
            "cpu_ms_per_prediction": 1000 * used / max(1, answered)}


def measure_variant(server: str, torch_threads, n: int) -> dict:
    canvas = canvas_payload()
    results = {}
    with server_process(server=server, torch_threads=torch_threads) as (url, pid):
        viewer = Viewer(url)
        try:
            round_trips(viewer, canvas, 20)  # warm-up
            for condition in CONDITIONS:
                set_condition(viewer, condition)
                results[condition] = round_trips(viewer, canvas, n)
            viewer.call("train:pause")
            results["idle, 784 pixels"] = round_trips(viewer, BLANK_PIXELS, n // 2)
        finally:
            close_all([viewer])
    return results


BROWSER_ROUND_TRIPS = """async ([n, spacing, width, height, bytes]) => {
  const { io } = await import("/vendor/socket.io.esm.min.js");
  const socket = io({ transports: ["websocket"] });
  await new Promise((resolve) => socket.on("connect", resolve));
  // A viewer like the page: it acknowledges the live views' frames, so they keep coming.
  for (const e of ["inside:weights", "inside:activations", "inside:distributions"]) socket.on(e, (f, ack) => ack && ack(true));
  const data = new Uint8Array(bytes);
  const times = [];
  for (let i = 0; i < n; i += 1) {
    const started = performance.now();
    const answer = await socket.emitWithAck("predict", { image: { width, height, data } });
    if (!answer.ok) throw new Error(answer.error);
    times.push(performance.now() - started);
    await new Promise((resolve) => setTimeout(resolve, spacing));
  }
  socket.close();
  return times;
}"""


def measure_in_chromium(n: int) -> dict:
    """The same round trips from Chromium's own socket.io client (what a person gets)."""
    from playwright.sync_api import sync_playwright

    from tests.helpers import CHROMIUM, CHROMIUM_ARGS

    results = {}
    with server_process() as (url, pid), sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        viewer = Viewer(url)
        try:
            page = browser.new_page()
            page.goto(url + "/healthz")  # same origin, nothing else running in the page
            image = canvas_payload()["image"]
            drawing = [image["width"], image["height"], list(image["data"])]
            page.evaluate(BROWSER_ROUND_TRIPS, [20, 10, *drawing])  # warm-up
            for condition in CONDITIONS:
                set_condition(viewer, condition)
                results[condition] = page.evaluate(BROWSER_ROUND_TRIPS, [n, SPACING_S * 1000, *drawing])
            viewer.call("train:pause")
        finally:
            close_all([viewer])
            browser.close()
    return results


def summarize(samples: list[float]) -> dict:
    return {"median_ms": median(samples), "p99_ms": percentile(samples, 99), "max_ms": max(samples),
            "n": len(samples)}


def measure(variants=(("werkzeug", None),), n: int = 200, rounds: int = 1, browser: bool = True) -> dict:
    merged: dict[str, dict[str, list[float]]] = {}
    for _ in range(rounds):  # variants in turns, so machine noise spreads over all of them
        if browser:
            key = f"Chromium client: werkzeug, torch threads {default_torch_threads()} (default)"
            for condition, samples in measure_in_chromium(n).items():
                merged.setdefault(key, {}).setdefault(condition, []).extend(samples)
        key = "Python client: floor (bare Flask-SocketIO handler, no work)"
        for condition, samples in measure_floor(n).items():
            merged.setdefault(key, {}).setdefault(condition, []).extend(samples)
        for server, threads in variants:
            key = f"Python client: {server}, torch threads {threads or f'{default_torch_threads()} (default)'}"
            for condition, samples in measure_variant(server, threads, n).items():
                merged.setdefault(key, {}).setdefault(condition, []).extend(samples)
    cpu = {server: server_cpu_per_predict(server) for server in ("floor", "werkzeug")}
    return {"variants": {key: {c: summarize(s) for c, s in conditions.items()}
                         for key, conditions in merged.items()},
            "server_cpu_per_prediction": cpu,
            "payload": "a 7 drawn on the 280x280 canvas, cropped to the ink (140x177 = 24,780 bytes), as the page sends", "spacing_ms": SPACING_S * 1000,
            "machine": machine_note()}


def parse_variants(text: str):
    variants = []
    for item in text.split(","):
        server, threads = item.split(":")
        variants.append((server, None if threads == "default" else int(threads)))
    return variants


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--variants", default="werkzeug:default,werkzeug:2",
                        help="comma-separated server:threads, e.g. werkzeug:default,werkzeug:1,gunicorn:1")
    parser.add_argument("--no-browser", action="store_true", help="skip the Chromium client")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    result = measure(parse_variants(args.variants), args.requests, args.rounds, not args.no_browser)
    print(f"{'variant':58} {'condition':22} {'median ms':>10} {'p99 ms':>8} {'max ms':>8}")
    for key, conditions in result["variants"].items():
        for condition, s in conditions.items():
            print(f"{key:58} {condition:22} {s['median_ms']:10.2f} {s['p99_ms']:8.2f} {s['max_ms']:8.1f}")
    for server, c in result["server_cpu_per_prediction"].items():
        print(f"server CPU per prediction ({server}, {c['viewers']} viewers drawing, idle): "
              f"{c['cpu_ms_per_prediction']:.2f} ms over {c['predictions']} predictions")
    print(f"goals: median < 3 ms idle, < 5 ms training; p99 < 20 ms training. {result['machine']}")
    emit_json(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
