"""A classroom's first minute: thirty pages open the playground at once over one shared link
(a classroom's Wi-Fi), shaped to 20 Mbit/s. When has every page what it needs?

The link is the kernel's traffic control on a veth pair: the server runs in a network namespace
of its own (`ip netns`, Debian's iproute2; needs root), and each side of the pair sends at most
--mbit with --delay-ms added (netem), so everything the pages fetch, and every websocket frame,
crosses one 20 Mbit/s link. Bytes on the link: the kernel's own counters of the pair.

The pages: --browsers real Chromium pages (their first interactive frame, as bench/page.py
defines it) and the rest light pages: each asks for exactly what a cold Chromium page asked for
(the requests of a real cold load through the link, recorded first: the page, its assets, its
API calls, with Chromium's Accept-Encoding), six at a time as a browser does over HTTP/1.1, and
opens the Socket.IO websocket and waits for the run's state. A light page is done when its last
byte and the state have arrived. (Thirty Chromium renderers on this machine's 2 cores would
measure its CPU, not the link: in a classroom each student has a machine of their own.
--browsers 30 runs them all in Chromium anyway.)

    sudo .venv/bin/python bench/classroom.py [--pages 30] [--browsers 3] [--mbit 20] [--baseline REF]

--baseline REF: that git revision's own server in the same namespace (bench/common.py
revision_tree), its crowd and today's in turns (--rounds each), side by side in one run.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import LightViewer, emit_json, load_average, machine_note, median, revision_tree, server_process  # noqa: E402
from bench.page import CANVAS_INPUT, INTERACTIVE, VIEWPORT  # noqa: E402
from bench.shared import CHROMIUM, CHROMIUM_ARGS  # noqa: E402

CONNECTIONS_PER_PAGE = 6  # a browser's HTTP/1.1 connections to one host
GOAL_S = 10.0


def run(*command: str) -> None:
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"`{' '.join(command)}` failed: {done.stderr.strip()}"
                           + (" (bench/classroom.py needs root for ip netns and tc)" if os.geteuid() else ""))


@dataclass
class Link:
    address: str  # the server's address, in the namespace
    prefix: list[str]  # the command a process runs under to be in the namespace
    outer: str  # this side's interface (its counters: what crossed the link)
    shaping: str  # how, in words

    def received_bytes(self) -> int:
        return int(Path(f"/sys/class/net/{self.outer}/statistics/rx_bytes").read_text())


def add_shaping(prefix: list[str], device: str, mbit: float, delay_ms: float) -> str:
    """netem (rate and delay) where the kernel has it, else a token bucket (tbf: the rate alone)."""
    done = subprocess.run([*prefix, "tc", "qdisc", "add", "dev", device, "root", "netem", "delay", f"{delay_ms}ms",
                           "rate", f"{mbit}mbit", "limit", "1000"], capture_output=True, text=True)
    if done.returncode == 0:
        return f"netem: {mbit:g} Mbit/s and {delay_ms:g} ms each way"
    if "unknown" not in done.stderr:
        raise RuntimeError(f"tc could not shape {device}: {done.stderr.strip()}")
    # 200 ms of queue at the rate, as a Wi-Fi access point's buffer might hold.
    run(*prefix, "tc", "qdisc", "add", "dev", device, "root", "tbf", "rate", f"{mbit}mbit", "burst", "32kb",
        "latency", "200ms")
    return f"tbf: {mbit:g} Mbit/s each way, no added delay (this kernel has no netem)"


@contextmanager
def shaped_link(mbit: float, delay_ms: float):
    """A network namespace joined to this one by a veth pair shaped to `mbit` each way, with
    `delay_ms` added each way where the kernel has netem; yields a Link."""
    tag = os.getpid() % 10000
    name, outer, inner = f"nnlp-classroom-{tag}", f"nnlpo{tag}", f"nnlpi{tag}"
    subnet = f"10.213.{tag % 250}"
    inside = ["ip", "netns", "exec", name]
    try:
        run("ip", "netns", "add", name)
        run("ip", "link", "add", outer, "type", "veth", "peer", "name", inner)
        run("ip", "link", "set", inner, "netns", name)
        run("ip", "addr", "add", f"{subnet}.1/24", "dev", outer)
        run("ip", "link", "set", outer, "up")
        run(*inside, "ip", "addr", "add", f"{subnet}.2/24", "dev", inner)
        run(*inside, "ip", "link", "set", inner, "up")
        run(*inside, "ip", "link", "set", "lo", "up")
        shaping = add_shaping([], outer, mbit, delay_ms)
        add_shaping(inside, inner, mbit, delay_ms)
        yield Link(f"{subnet}.2", inside, outer, shaping)
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)
        subprocess.run(["ip", "link", "del", outer], capture_output=True)


# ---- what a page asks for --------------------------------------------------------------------

def recorded_plan(browser, url: str) -> dict:
    """What one cold Chromium load of the page asks for (through the link): its HTTP requests in
    order, with the Accept-Encoding Chromium sent, the page's own address first; and on its
    websocket, what it says at connect and the requests it sends (the live views it subscribes
    to, the data its panels ask for)."""
    context = browser.new_context(viewport=VIEWPORT)
    context.add_init_script(CANVAS_INPUT)
    page = context.new_page()
    asked: list[str] = []
    encodings: list[str] = []
    frames: list[str] = []

    def on_request(request):
        if request.url.startswith(url) and "/socket.io/" not in request.url:
            asked.append(request.url[len(url):])
            encodings.append(request.all_headers().get("accept-encoding", ""))
    page.on("request", on_request)
    page.on("websocket", lambda ws: ws.on("framesent", lambda frame: frames.append(frame) if isinstance(frame, str) else None))
    try:
        page.goto(url + "/", wait_until="commit")
        page.wait_for_function(INTERACTIVE, polling="raf", timeout=120_000)
        page.wait_for_load_state("networkidle", timeout=120_000)
        time.sleep(1)
    finally:
        context.close()
    auth, requests_sent = None, []
    for frame in frames:
        if frame.startswith("40"):
            auth = json.loads(frame[2:]) if len(frame) > 2 else None
        elif match := re.fullmatch(r"42\d+(\[.*\])", frame, re.S):  # a request, with its acknowledgement id
            event, *payload = json.loads(match.group(1))
            requests_sent.append([event, payload[0] if payload else None])
    return {"paths": asked, "accept_encoding": encodings[0], "auth": auth, "socket_requests": requests_sent}


def light_page(url: str, plan: dict, started: float, result: dict) -> None:
    """One page's requests as a browser makes them: the page, then the rest six at a time; the
    websocket saying what the page said at connect, its requests, the run's state and the
    first frame of each live view it subscribed to. HTTP bodies are read as they come (never
    decoded)."""
    headers = {"Accept-Encoding": plan["accept_encoding"], "Accept": "*/*"}
    session = requests.Session()
    session.mount("http://", requests.adapters.HTTPAdapter(pool_connections=1, pool_maxsize=CONNECTIONS_PER_PAGE))
    received = 0
    lock = threading.Lock()

    def fetch(path: str) -> None:
        nonlocal received
        answer = session.get(url + path, headers=headers, stream=True, timeout=120)
        body = answer.raw.read(decode_content=False)
        answer.close()
        if answer.status_code >= 400:
            raise RuntimeError(f"{path} answered {answer.status_code}")
        with lock:
            received += len(body)

    viewer = None
    try:
        fetch(plan["paths"][0])
        with ThreadPoolExecutor(CONNECTIONS_PER_PAGE + len(plan["socket_requests"])) as pool:
            fetched = [pool.submit(fetch, path) for path in plan["paths"][1:]]
            auth = dict(plan["auth"] or {})
            if "viewer" in auth:
                auth["viewer"] = secrets.token_urlsafe(24)  # each page is a viewer of its own
            viewer = LightViewer(url, auth=auth or None, keep_metrics=False, deflate=True)
            asked = [pool.submit(viewer.call, event, payload, 120) for event, payload in plan["socket_requests"]]
            with viewer.lock:
                if not viewer.status_changed.wait_for(lambda: viewer.status is not None, 120):
                    raise RuntimeError("no state within 120 s")
            for future in fetched + asked:
                future.result()
            streams = [s for event, payload in plan["socket_requests"] if event == "inside:subscribe"
                       for s in (payload or {}).get("streams", [])]
            deadline = time.monotonic() + 120
            while any(viewer.snapshot()[2].get(f"inside:{s}", 0) == 0 for s in streams):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"no first frame of {streams} within 120 s")
                time.sleep(0.02)
        result.update(done_s=time.time() - started, bytes=received)
    except Exception as err:  # noqa: BLE001 - a page that failed is reported, not hidden
        result.update(error=str(err))
    finally:
        if viewer is not None:
            viewer.close()
        session.close()


def crowd(browser, url: str, link: Link, plan: dict, pages: int, browsers: int) -> dict:
    """`pages` pages at once: `browsers` in Chromium, the others light."""
    contexts = []
    for _ in range(browsers):
        context = browser.new_context(viewport=VIEWPORT)
        context.add_init_script(CANVAS_INPUT)
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda err, errors=errors: errors.append(str(err)))
        contexts.append((context, page, errors))
    light = [{} for _ in range(pages - browsers)]
    before = link.received_bytes()
    started = time.time()
    threads = [threading.Thread(target=light_page, args=(url, plan, started, result), daemon=True) for result in light]
    for thread in threads:
        thread.start()
    for _, page, _ in contexts:  # navigations begin at once (no waiting for each to commit)
        page.evaluate("(address) => { location.href = address; }", url + "/")
    interactive = []
    for context, page, errors in contexts:
        try:
            at = page.wait_for_function(INTERACTIVE, polling="raf", timeout=180_000).json_value()
            origin = page.evaluate("performance.timeOrigin")
            interactive.append({"interactive_s": (origin + at) / 1000 - started, "errors": errors})
        except Exception as err:  # noqa: BLE001
            interactive.append({"error": str(err), "errors": errors})
    for thread in threads:
        thread.join(300)
    crossed = link.received_bytes() - before
    for context, _, _ in contexts:
        context.close()
    done = [r["done_s"] for r in light if "done_s" in r]
    chromium = [r["interactive_s"] for r in interactive if "interactive_s" in r]
    every = done + chromium
    return {
        "pages": pages, "browsers": browsers, "link_mb": crossed / 1e6,
        "light_done_s": sorted(done), "chromium_interactive_s": sorted(chromium),
        "failed": [r.get("error") for r in light + interactive if "error" in r],
        "last_s": max(every) if len(every) == pages else float("inf"),
        "median_s": median(every) if every else float("nan"),
        "light_page_kb": median([r["bytes"] / 1000 for r in light if "bytes" in r]) if done else float("nan"),
    }


def measure(pages: int, browsers: int, mbit: float, delay_ms: float, baseline: str | None, rounds: int) -> dict:
    from playwright.sync_api import sync_playwright

    result = {"machine": machine_note(), "pages": pages, "browsers": browsers, "mbit": mbit, "delay_ms": delay_ms}
    with ExitStack() as stack:
        link = stack.enter_context(shaped_link(mbit, delay_ms))
        result["link"] = link.shaping
        servers = {}
        if baseline:
            tree, rev = stack.enter_context(revision_tree(baseline))
            servers[f"before ({rev})"] = stack.enter_context(
                server_process(repo=tree, host=link.address, prefix=link.prefix)).url
        servers["today"] = stack.enter_context(server_process(host=link.address, prefix=link.prefix)).url
        playwright = stack.enter_context(sync_playwright())
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        stack.callback(browser.close)
        plans = {label: recorded_plan(browser, url) for label, url in servers.items()}
        result["plans"] = plans
        result["crowds"] = {label: [] for label in servers}
        for _ in range(rounds):
            for label, url in servers.items():
                result["crowds"][label].append(crowd(browser, url, link, plans[label], pages, browsers))
                time.sleep(2)  # the last sockets closed, the link quiet
    result["load_average_end"] = load_average()
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=30)
    parser.add_argument("--browsers", type=int, default=3, help="of the pages, how many are real Chromium pages")
    parser.add_argument("--mbit", type=float, default=20.0, help="the link's rate, each way")
    parser.add_argument("--delay-ms", type=float, default=10.0, help="added each way (a Wi-Fi round trip of twice that)")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--baseline", default=None, metavar="REF", help="also that git revision's server, in turns")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    if not 1 <= args.browsers <= args.pages:
        parser.error("--browsers must be between 1 and --pages")
    result = measure(args.pages, args.browsers, args.mbit, args.delay_ms, args.baseline, args.rounds)
    print(result["machine"])
    print(f"{args.pages} pages at once ({args.browsers} in Chromium, {args.pages - args.browsers} light) through one "
          f"link ({result['link']}):")
    for label, crowds in result["crowds"].items():
        plan = result["plans"][label]
        print(f"  {label}: a page asks for {len(plan['paths'])} HTTP requests and {len(plan['socket_requests'])} on its socket "
              f"({', '.join(re.sub(r'/assets/[0-9a-f]+/', '', p) or '/' for p in plan['paths'][:8])}"
              f"{', ...' if len(plan['paths']) > 8 else ''})")
        for number, row in enumerate(crowds, 1):
            verdict = "met" if row["last_s"] <= GOAL_S else "not met"
            print(f"    round {number}: {row['link_mb']:.1f} MB crossed the link ({row['light_page_kb']:.0f} kB of HTTP a "
                  f"light page); every page ready by {row['last_s']:.1f} s (median {row['median_s']:.1f} s; goal "
                  f"{GOAL_S:g} s: {verdict}); Chromium interactive at "
                  f"{', '.join(f'{s:.1f}' for s in row['chromium_interactive_s'])} s")
            if row["failed"]:
                print(f"    failed: {row['failed'][:3]}")
    print(f"load average at the end: {result['load_average_end']:.1f}")
    emit_json(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
