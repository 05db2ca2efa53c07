"""`predict` round trip over a real websocket, median and p99, beside the transport's floor.

The client is a viewer as the page is one (it says at connect that it takes the page's streams
and broadcasts, and acknowledges their frames) and sends what the page sends while you draw:
its 280x280 canvas cropped to the ink (a "7", 140x177 bytes), one request every 60 ms (the
page's throttle). Conditions, in turns on one server: idle (nothing training: the goal,
median <= 5 ms), training at the page's pace (50 steps/s) and at full speed. The same client
and payloads then ask bench/floor_server.py, a bare Flask-SocketIO handler that does nothing,
served by the same gunicorn worker: what the transport alone costs on this machine.

Also: the same round trips from Chromium's own socket.io client (what a person gets), and the
CPU one prediction costs each process, from /proc, while 20 viewers draw every 200 ms and
nothing trains (the web worker answers predictions itself; the engine should spend nothing).

    .venv/bin/python bench/latency.py [--requests 200] [--no-browser] [--no-cpu]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import (BLANK_PIXELS, DEFAULT_PACE, VIEWER_KINDS, CpuMeter, LightViewer,  # noqa: E402
                          canvas_payload, checked, close_all, emit_json, machine_note, median, percentile,
                          server_process, start_run)

SPACING_S = 0.06  # the page sends at most one prediction per 60 ms while you draw
CONDITIONS = ("idle", f"training {DEFAULT_PACE} steps/s", "training full speed")
IDLE_MEDIAN_GOAL_MS = 5.0
PAGE = VIEWER_KINDS["page"]


def round_trips(viewer, payload: dict, n: int) -> list[float]:
    times = []
    next_at = time.perf_counter()
    for _ in range(n):
        started = time.perf_counter()
        answer = viewer.call("predict", payload)
        times.append((time.perf_counter() - started) * 1000)
        if not answer.get("ok"):
            raise RuntimeError(f"predict refused: {answer}")
        next_at += SPACING_S
        time.sleep(max(0.0, next_at - time.perf_counter()))
    return times


def set_condition(viewer, condition: str):
    if condition == "idle":
        checked(viewer.call("train:pause"))
    elif condition == "training full speed":
        start_run(viewer, steps_per_second=None)
    else:
        start_run(viewer, steps_per_second=DEFAULT_PACE)
    time.sleep(1.5)  # the run settles (first frames, first metrics)


def measure_playground(n: int, torch_threads=None) -> dict:
    canvas = canvas_payload()
    results = {}
    with server_process(torch_threads=torch_threads) as served:
        viewer = LightViewer(served.url, auth=PAGE)
        try:
            round_trips(viewer, canvas, 20)  # warm-up
            for condition in CONDITIONS:
                set_condition(viewer, condition)
                results[condition] = round_trips(viewer, canvas, n)
            checked(viewer.call("train:pause"))
            results["idle, 784 pixels"] = round_trips(viewer, BLANK_PIXELS, n // 2)
        finally:
            close_all([viewer])
    return results


def measure_floor(n: int) -> dict:
    """The same client and payloads against bench/floor_server.py (a handler that does nothing)."""
    with server_process(floor=True) as served:
        viewer = LightViewer(served.url, auth=PAGE)
        try:
            round_trips(viewer, canvas_payload(), 20)
            return {"idle": round_trips(viewer, canvas_payload(), n),
                    "idle, 784 pixels": round_trips(viewer, BLANK_PIXELS, n // 2)}
        finally:
            close_all([viewer])


def cpu_per_predict(floor: bool, viewers: int = 20, seconds: float = 8.0) -> dict:
    """CPU time of each server process per prediction while `viewers` viewers (in processes of
    their own) each draw every 200 ms and nothing trains: what one prediction costs the
    server, transport included."""
    from bench.load import Crowd

    with server_process(floor=floor) as served:
        with Crowd(served.url, viewers, PAGE) as crowd:
            time.sleep(1)
            meter = CpuMeter(served.processes(), include_self=False).start()
            outcome = crowd.draw(seconds)
            cores = meter.stop()
    answered = len(outcome["latencies"])
    return {"viewers": viewers, "predictions": answered, "failures": len(outcome["failures"]),
            "cpu_ms_per_prediction": {process: 1000 * used / max(1, answered) for process, used in meter.used.items()},
            "cores": cores, "seconds": meter.elapsed}


BROWSER_ROUND_TRIPS = """async ([n, spacing, width, height, bytes, auth]) => {
  const { io } = await import("/vendor/socket.io.esm.min.js");
  const socket = io({ transports: ["websocket"], auth });
  await new Promise((resolve) => socket.on("connect", resolve));
  // A viewer like the page: it acknowledges the live views' frames, so they keep coming.
  for (const e of ["inside:weights-delta", "inside:activations", "inside:distributions-delta"]) {
    socket.on(e, (f, ack) => ack && ack(true));
  }
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

    from bench.shared import CHROMIUM, CHROMIUM_ARGS

    results = {}
    with server_process() as served, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        controller = LightViewer(served.url, auth=VIEWER_KINDS["page, live views out of view"])
        try:
            page = browser.new_page()
            page.goto(served.url + "/healthz")  # same origin, nothing else running in the page
            image = canvas_payload()["image"]
            drawing = [image["width"], image["height"], list(image["data"])]
            page.evaluate(BROWSER_ROUND_TRIPS, [20, 10, *drawing, PAGE])  # warm-up
            for condition in CONDITIONS:
                set_condition(controller, condition)
                results[condition] = page.evaluate(BROWSER_ROUND_TRIPS, [n, SPACING_S * 1000, *drawing, PAGE])
            checked(controller.call("train:pause"))
        finally:
            close_all([controller])
            browser.close()
    return results


def summarize(samples: list[float]) -> dict:
    return {"median_ms": median(samples), "p99_ms": percentile(samples, 99), "max_ms": max(samples),
            "n": len(samples)}


PLAYGROUND = "Python client: the playground (python -m server)"
FLOOR = "Python client: the floor (bench/floor_server.py, a handler that does nothing)"
CHROMIUM_CLIENT = "Chromium's socket.io client: the playground"


def measure(n: int = 200, rounds: int = 1, browser: bool = True, cpu: bool = True, torch_threads=None) -> dict:
    merged: dict[str, dict[str, list[float]]] = {}
    for _ in range(rounds):  # the two servers in turns, so machine noise spreads over both
        for key, results in ((FLOOR, measure_floor(n)), (PLAYGROUND, measure_playground(n, torch_threads))):
            for condition, samples in results.items():
                merged.setdefault(key, {}).setdefault(condition, []).extend(samples)
        if browser:
            for condition, samples in measure_in_chromium(n).items():
                merged.setdefault(CHROMIUM_CLIENT, {}).setdefault(condition, []).extend(samples)
    summary = {key: {c: summarize(s) for c, s in conditions.items()} for key, conditions in merged.items()}
    result = {
        "variants": summary,
        "idle_median_over_floor": summary[PLAYGROUND]["idle"]["median_ms"] / summary[FLOOR]["idle"]["median_ms"],
        "idle_median_goal_ms": IDLE_MEDIAN_GOAL_MS,
        "payload": "a 7 drawn on the 280x280 canvas, cropped to the ink (140x177 = 24,780 bytes), as the page sends",
        "spacing_ms": SPACING_S * 1000, "machine": machine_note(),
    }
    if cpu:
        result["cpu_per_prediction"] = {"floor": cpu_per_predict(True), "playground": cpu_per_predict(False)}
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--torch-threads", type=int, default=None)
    parser.add_argument("--no-browser", action="store_true", help="skip the Chromium client")
    parser.add_argument("--no-cpu", action="store_true", help="skip the CPU per prediction")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    result = measure(args.requests, args.rounds, not args.no_browser, not args.no_cpu, args.torch_threads)
    print(f"{'client and server':78} {'condition':22} {'median ms':>10} {'p99 ms':>8} {'max ms':>8}")
    for key, conditions in result["variants"].items():
        for condition, s in conditions.items():
            print(f"{key:78} {condition:22} {s['median_ms']:10.2f} {s['p99_ms']:8.2f} {s['max_ms']:8.1f}")
    print(f"idle median: playground / floor = {result['idle_median_over_floor']:.2f}; goal median <= "
          f"{IDLE_MEDIAN_GOAL_MS:g} ms")
    for server, c in result.get("cpu_per_prediction", {}).items():
        per = ", ".join(f"{p} {ms:.2f} ms" for p, ms in c["cpu_ms_per_prediction"].items())
        print(f"CPU per prediction, {server} ({c['viewers']} viewers drawing, nothing training): {per} "
              f"({c['predictions']} predictions, {c['failures']} failed)")
    print(result["machine"])
    emit_json(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
