"""What the live views ("look inside") cost, measured side by side in one run.

1. Training throughput with every view streaming to a viewer vs with none: the shared run
   trains at full speed on the embedded digits, in alternating phases; in "all" phases the
   live-views step hook runs and a viewer (a python-socketio client in its own process, so its
   work is not counted against the server's interpreter) receives and acknowledges every
   frame; in "none" phases the hook is removed. Prints samples/s per phase, the ratio
   (goal: at least 0.95) and the frames per second the viewer received.
2. Browser render time of a hidden-weights frame (Chromium through Playwright): the page
   measures performance.now() around each render (`inside:hidden-weights-render-sync`: its
   main-thread work, the Plotly call included; `inside:hidden-weights-render`: until Plotly
   has the image on screen, which also counts whatever else the page ran meanwhile). Frames
   come from single steps of a paused run, then from the run training at its default pace.
   Goal: median at most 50 ms.

    .venv/bin/python bench/views.py [--phase-seconds 4] [--rounds 3] [--no-browser]

A benchmark, not a test: it prints numbers measured on this machine, now (other load on the
machine shows in them; run it twice when in doubt).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from server import create_app  # noqa: E402
from tests.helpers import (  # noqa: E402
    CHROMIUM, CHROMIUM_ARGS, EMBEDDED_DIR, LiveServer, OrderedClient, load_embedded_once,
)
from tests.test_inside_stream import encoded_size  # noqa: E402


def run_viewer(url: str) -> int:
    """The viewer process: acknowledges every live-view frame at once, until terminated."""
    client = OrderedClient(reconnection=False)
    for event in ("inside:weights", "inside:activations", "inside:distributions"):
        client.on(event, lambda frame: True)
    client.connect(url, transports=["websocket"], wait_timeout=10)
    print("connected", flush=True)
    try:
        client.wait()
    finally:
        client.disconnect()
    return 0


def process_cpu_seconds(pid="self") -> float:
    """User + system CPU time of a process (Linux /proc), all its threads together."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timed_hook(views, spent: list):
    def hook(session):
        started = time.perf_counter()
        views.on_training_step(session)
        spent[0] += time.perf_counter() - started
    return hook


def throughput(server, phase_seconds: float, rounds: int) -> dict:
    session = server.session
    views = server.app.extensions["inside"]
    delivery = views.delivery
    session.step_hooks.remove(views.on_training_step)
    spent = [0.0]
    hook = timed_hook(views, spent)
    viewer = subprocess.Popen([sys.executable, __file__, "--viewer", server.url], stdout=subprocess.PIPE, text=True)
    try:
        assert viewer.stdout.readline().strip() == "connected"
        deadline = time.monotonic() + 10
        while not delivery._clients and time.monotonic() < deadline:
            time.sleep(0.05)
        viewer_sid = next(iter(delivery._clients))
        batch = session.config.batch_size
        session.start({"steps_per_second": None, "epochs": 200})
        time.sleep(2.0)  # warm-up
        results = {"none": [], "all": []}
        per_cpu = {"none": [], "all": []}  # samples per CPU-second of the server process
        frames = {"weights": 0, "activations": 0, "distributions": 0}
        all_seconds = 0.0
        cost = []
        for _ in range(rounds):
            for mode in ("none", "all"):
                if session.status != "running":
                    session.start({"steps_per_second": None, "epochs": 200})
                if mode == "all":
                    session.step_hooks.append(hook)
                before = delivery.client_stats(viewer_sid)["delivered"]
                spent[0] = 0.0
                step0, t0, cpu0 = session.trainer.global_step, time.perf_counter(), process_cpu_seconds()
                time.sleep(phase_seconds)
                step1, t1, cpu1 = session.trainer.global_step, time.perf_counter(), process_cpu_seconds()
                if mode == "all":
                    session.step_hooks.remove(hook)
                    after = delivery.client_stats(viewer_sid)["delivered"]
                    for stream in frames:
                        frames[stream] += after.get(stream, 0) - before.get(stream, 0)
                    all_seconds += t1 - t0
                    cost.append(spent[0] / (t1 - t0))
                rate = (step1 - step0) * batch / (t1 - t0)
                results[mode].append(rate)
                per_cpu[mode].append((step1 - step0) * batch / max(1e-9, cpu1 - cpu0))
                print(f"  {mode:>4}: {rate:10,.0f} samples/s ({per_cpu[mode][-1]:8,.0f} per CPU-second)",
                      end="" if mode == "none" else "\n", flush=True)
        session.pause()
        weights = delivery.latest("weights")
        # each 'all' phase against the mean of the 'none' phases either side of it
        paired = [a / statistics.mean(results["none"][i:i + 2]) for i, a in enumerate(results["all"][:-1])]
        return {
            "none": results["none"], "all": results["all"],
            "ratio": statistics.mean(results["all"]) / statistics.mean(results["none"]),
            "paired_median": statistics.median(paired) if paired else None,
            "per_cpu_ratio": statistics.mean(per_cpu["all"]) / statistics.mean(per_cpu["none"]),
            "frames_per_second": {s: n / all_seconds for s, n in frames.items()},
            "hook_share": statistics.mean(cost),
            "weights_frame_bytes": encoded_size("inside:weights", weights) if weights else None,
        }
    finally:
        viewer.terminate()
        viewer.wait(timeout=10)
        session.step_hooks.append(views.on_training_step)


def render_times(server, seconds: float) -> dict:
    from playwright.sync_api import sync_playwright

    session = server.session
    read = """name => performance.getEntriesByName(name).map(e => e.duration)"""
    out = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(server.url)
        page.wait_for_selector('[data-testid="hidden-weights"][data-step]', timeout=30_000)
        page.locator('[data-testid="hidden-weights"]').scroll_into_view_if_needed()
        session.reset()
        time.sleep(1.0)
        page.evaluate("performance.clearMeasures()")
        for i in range(25):  # paused run: one frame per single step
            session.step(1)
            page.wait_for_selector(f'[data-testid="hidden-weights"][data-step="{i + 1}"]', timeout=30_000)
            time.sleep(0.15)
        out["stepping"] = {kind: page.evaluate(read, name) for kind, name in (
            ("sync", "inside:hidden-weights-render-sync"), ("total", "inside:hidden-weights-render"))}
        page.evaluate("performance.clearMeasures()")
        session.start({"steps_per_second": 50, "epochs": 200})
        time.sleep(seconds)
        out["training"] = {kind: page.evaluate(read, name) for kind, name in (
            ("sync", "inside:hidden-weights-render-sync"), ("total", "inside:hidden-weights-render"))}
        out["training"]["seconds"] = seconds
        session.pause()
        browser.close()
    return out


def describe(values) -> str:
    if not values:
        return "no frames"
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
    return f"median {statistics.median(ordered):6.1f} ms, p90 {p90:6.1f} ms ({len(ordered)} frames)"


def report_throughput(server, args) -> dict:
    print(f"1. training throughput at full speed, {args.rounds} x ({args.phase_seconds:g} s none, "
          f"{args.phase_seconds:g} s all views streaming to one viewer):", flush=True)
    result = throughput(server, args.phase_seconds, args.rounds)
    print(f"   none: {statistics.mean(result['none']):10,.0f} samples/s (mean)")
    print(f"   all : {statistics.mean(result['all']):10,.0f} samples/s (mean)")
    print(f"   ratio all/none: {result['ratio']:.3f} of the means, {result['paired_median']:.3f} median of "
          f"each 'all' phase against its neighbours (goal >= 0.95)")
    print(f"   samples per CPU-second of the server process, all/none: {result['per_cpu_ratio']:.3f} "
          "(steadier than wall-clock rates when other programs share the CPUs)")
    print(f"   the live-views hook itself took {100 * result['hook_share']:.2f}% of the training thread's "
          f"wall time in the 'all' phases")
    fps = result["frames_per_second"]
    print("   frames/s received by the viewer: " + ", ".join(f"{s} {v:.2f}" for s, v in fps.items())
          + f"; a hidden-weights frame is {result['weights_frame_bytes']:,} bytes on the wire")
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phase-seconds", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--browser-seconds", type=float, default=12.0)
    parser.add_argument("--no-browser", action="store_true")
    parser.add_argument("--no-throughput", action="store_true")
    parser.add_argument("--viewer", metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument("--json", action="store_true", help="also print the raw numbers as JSON")
    args = parser.parse_args()
    if args.viewer:
        return run_viewer(args.viewer)

    import tempfile
    dataset = load_embedded_once(Path(tempfile.mkdtemp()))
    app = create_app({"device": "cpu"}, dataset=dataset)
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; dataset: "
          f"{len(dataset.train)} train digits from {EMBEDDED_DIR.parent.parent.name}; default network")
    with LiveServer(app) as server:
        result = None
        if not args.no_throughput:
            result = report_throughput(server, args)
        browser = None
        if not args.no_browser:
            print(f"2. browser render of a hidden-weights frame (Chromium {CHROMIUM}):", flush=True)
            browser = render_times(server, args.browser_seconds)
            for where, label in (("stepping", "paused run, single steps"),
                                 ("training", f"training at 50 steps/s for {args.browser_seconds:g} s")):
                times = browser[where]
                print(f"   {label}:")
                print(f"     main-thread work incl. the Plotly call: {describe(times['sync'])}")
                print(f"     until the image is on screen:          {describe(times['total'])}")
            rendered = len(browser["training"]["total"]) / args.browser_seconds
            print(f"   heatmap frames drawn per second while training: {rendered:.2f} (goal >= 2)")
        if args.json:
            print(json.dumps({"throughput": result, "browser": browser}))
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
