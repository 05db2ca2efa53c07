"""Engine memory per private run (issue 23, item 1): the default setup and the biggest
(784 -> 4 x 2048 -> 10), each trained, watched (every live view), replayed and evaluated, then
put away; the engine's RSS before, at its peak, and after; and what the budget's estimate
(server/engine/memory_budget.py) says for each, side by side ("budgeted": the estimate, plus
for the engine's first run the warm-up the budget counts in the engine's base). MB = MiB.

One engine in this process (no web), the embedded digits, no shared run (only the private runs
count). Each setup is made and put away ROUNDS times, to show memory comes back every time.

    .venv/bin/python bench/engine_memory.py [--rounds 2] [--steps 40] [--json out.json]

`--crowd N --budget SIZE`: instead, `python -m server --engines 2 --engine-memory SIZE` and N
students asking for the biggest network at once: how many are admitted and refused, and the
private runs' engine's RSS at its highest (sampled every 50 ms) while the admitted ones train
and are replayed, against the budget.
"""
from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import emit_json, machine_note  # noqa: E402

SETUPS = {"default": {"hidden_sizes": [256]}, "biggest": {"hidden_sizes": [2048] * 4}}
MB = 2**20


def rss_bytes() -> int:
    from server.engine.memory_budget import process_rss
    return process_rss()


class PeakRss:
    """The process's RSS sampled every 20 ms in a thread: its highest."""

    def __init__(self):
        self.peak = rss_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self):
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, rss_bytes())

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


def one_run(engine, setup: dict, steps: int, *, first: bool) -> dict:
    """Make a private run of `setup`, train, watch, replay and evaluate it, put it away.
    `first`: the engine's first run, which also leaves PyTorch's warm-up behind (the budget
    counts that in the engine's base: WARM_UP_BYTES)."""
    from server.engine.memory_budget import WARM_UP_BYTES, estimate_run_bytes
    from server.experiment import TrainConfig
    from server.link.names import STREAMS

    before = rss_bytes()
    peak = PeakRss()
    made = engine.command("run:create", {"owner": "bench", "config": setup})
    key = made["run"]
    engine.command("views:watch", {"run": key, "watcher": "bench", "streams": sorted(STREAMS)})
    engine.command("train:step", {"run": key, "owner": "bench", "batches": steps})
    deadline = time.monotonic() + 300
    while engine.command("state", {"run": key})["state"]["step"] < steps and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # the views' thread makes what is due
    for step in (0, steps // 2, steps):
        engine.command("replay:frame", {"run": key, "step": step})
    engine.command("evaluate:get", {"run": key})
    held = rss_bytes()
    engine.close_run(key, "bench: put away")
    engine.housekeeping()  # the engine process does it a few times a second
    peak_bytes = peak.stop()
    time.sleep(0.3)
    after = rss_bytes()
    estimate = estimate_run_bytes(TrainConfig().updated(setup))
    return {"before_mb": before / MB, "held_mb": held / MB, "peak_mb": peak_bytes / MB, "after_mb": after / MB,
            "grew_mb": (peak_bytes - before) / MB, "kept_after_mb": (after - before) / MB,
            "estimate_mb": estimate / MB, "budgeted_mb": (estimate + (WARM_UP_BYTES if first else 0)) / MB}


def measure(rounds: int = 2, steps: int = 40) -> dict:
    from server.engine.data import load_embedded
    from server.engine.engine import Engine
    from server.engine.runtime import limit_malloc_arenas
    from server.settings import Settings

    limit_malloc_arenas()
    settings = Settings()
    with tempfile.TemporaryDirectory(prefix="engine-memory-") as folder:
        dataset = load_embedded(settings.embedded_dir, Path(folder) / "cache")
        engine = Engine(dataset, data_dir=folder, holds_shared=False, pace=None)
        gc.collect()
        results = {"engine_alone_mb": rss_bytes() / MB, "setups": {}}
        try:
            for name, setup in SETUPS.items():
                results["setups"][name] = [one_run(engine, setup, steps, first=(name == "default" and i == 0))
                                           for i in range(rounds)]
        finally:
            engine.close()
    return results


def crowd(students: int, budget: str, steps: int) -> dict:
    """N students ask for the biggest setup at once on a real server with this budget."""
    import secrets
    from concurrent.futures import ThreadPoolExecutor

    from bench.common import QUIET, Viewer, close_all, server_process
    from bench.shared import descendants
    from server.memory import parse_memory

    def engine_rss(server_pid: int) -> int:
        for pid in descendants(server_pid):
            try:
                if Path(f"/proc/{pid}/comm").read_text().strip() == "nnlp-engine-1":
                    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                        if line.startswith("VmRSS:"):
                            return int(line.split()[1]) * 1024
            except OSError:
                continue
        return 0

    with server_process(extra_args=["--engines", "2", "--engine-memory", budget]) as served:
        viewers = [Viewer(served.url, auth={**QUIET, "viewer": secrets.token_urlsafe(18)}) for _ in range(students)]
        peak = [engine_rss(served.pid)]
        stop = threading.Event()

        def sample():
            while not stop.wait(0.05):
                peak[0] = max(peak[0], engine_rss(served.pid))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            with ThreadPoolExecutor(students) as pool:
                answers = list(pool.map(lambda v: v.call("run:create", {"config": SETUPS["biggest"]}, timeout=300),
                                        viewers))
            admitted = [v for v, a in zip(viewers, answers) if a.get("ok")]
            refusals = [a.get("error") for a in answers if not a.get("ok")]
            with ThreadPoolExecutor(max(1, len(admitted))) as pool:
                list(pool.map(lambda v: v.call("train:step", {"batches": steps}, timeout=300), admitted))
            time.sleep(2.0)
            with ThreadPoolExecutor(max(1, len(admitted))) as pool:
                list(pool.map(lambda v: v.call("replay:frame", {"step": steps // 2}, timeout=300), admitted))
            time.sleep(1.0)
        finally:
            stop.set()
            sampler.join()
            close_all(viewers)
    return {"students": students, "budget_mb": parse_memory(budget) / MB, "admitted": len(admitted),
            "refused": len(refusals), "a_refusal": refusals[0] if refusals else None,
            "engine_peak_rss_mb": peak[0] / MB}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--json", default=None)
    parser.add_argument("--crowd", type=int, default=0, metavar="N")
    parser.add_argument("--budget", default="4G")
    args = parser.parse_args(argv)
    if args.crowd:
        results = crowd(args.crowd, args.budget, args.steps)
        print(machine_note())
        print(f"{results['students']} students ask for the biggest network at once, --engine-memory "
              f"{results['budget_mb']:.0f} MB: {results['admitted']} admitted, {results['refused']} refused; "
              f"the private runs' engine at most {results['engine_peak_rss_mb']:.0f} MB")
        print(f"a refusal: {results['a_refusal']}")
        emit_json(results, Path(args.json) if args.json else None)
        return 0
    results = measure(args.rounds, args.steps)
    print(machine_note())
    print(f"engine alone (torch, the embedded digits, no run): {results['engine_alone_mb']:.0f} MB")
    print(f"{'setup':8} {'round':>5} {'before':>8} {'peak':>8} {'held':>8} {'after':>8} {'grew':>8} "
          f"{'kept':>7} {'estimate':>9} {'budgeted':>9}")
    for name, rows in results["setups"].items():
        for i, row in enumerate(rows, 1):
            print(f"{name:8} {i:5d} {row['before_mb']:8.0f} {row['peak_mb']:8.0f} {row['held_mb']:8.0f} "
                  f"{row['after_mb']:8.0f} {row['grew_mb']:8.0f} {row['kept_after_mb']:7.0f} {row['estimate_mb']:9.0f} {row['budgeted_mb']:9.0f}")
    emit_json(results, Path(args.json) if args.json else None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
