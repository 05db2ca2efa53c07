"""What `linear_playground.watch` costs the user's own loop (issue 20): the same loop
(784-128-64-10, batch 64, Adam, CPU, one PyTorch thread) in alternating rounds, bare and with
watch: everything on (snapshots at the default pace), metrics only (snapshots_per_second=0),
and with no server there; each round's time per step as a ratio to the bare loop of the same
round, and the median ratio. Then the bytes per second a 784-256-10 model sends at the default
pace. A real `python -m server` receives them.

    .venv/bin/python bench/watch_overhead.py [--rounds 5] [--seconds 3]
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "client"))  # the client as the user has it (pip install ./client)

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from bench.common import emit_json, free_port, machine_note, median, server_process  # noqa: E402
from linear_playground import watch  # noqa: E402


def users_loop(model, opt, batches, seconds: float, run=None) -> tuple[float, float, float]:
    """Per step of the user's loop over `seconds` of wall clock: (wall seconds, the loop thread's
    CPU seconds, the whole process's CPU seconds: the loop and watch's sender thread). On a
    shared machine the wall clock carries the other processes' load; the CPU times do not."""
    steps, started = 0, time.perf_counter()
    thread_started, process_started = time.thread_time(), time.process_time()
    while time.perf_counter() - started < seconds:
        x, y = batches[steps % len(batches)]
        out = model(x)
        loss = F.cross_entropy(out, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if run is not None:
            run.step(loss=loss.item())
        steps += 1
    return ((time.perf_counter() - started) / steps, (time.thread_time() - thread_started) / steps,
            (time.process_time() - process_started) / steps)


def predict_latencies(url: str, key: str, n: int = 200) -> list[float]:
    """Milliseconds for `predict` on the run's link, one at a time, as a page asks."""
    import socketio
    client = socketio.Client()
    client.connect(url, transports=["websocket"], auth={"run": key}, wait_timeout=10)
    try:
        assert client.call("run:watch", {"run": key}, timeout=30)["ok"]
        pixels = torch.rand(784, generator=torch.Generator().manual_seed(0)).tolist()
        times = []
        for _ in range(n):
            started = time.perf_counter()
            answer = client.call("predict", {"pixels": pixels}, timeout=30)
            times.append((time.perf_counter() - started) * 1000)
            assert answer["ok"], answer
            time.sleep(0.06)  # a drawing's pace (the page sends at most one every 60 ms)
        return times
    finally:
        client.disconnect()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    logging.getLogger("linear_playground").setLevel(logging.ERROR)  # no server there: on purpose
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    batches = [(torch.rand(64, 784), torch.randint(0, 10, (64,))) for _ in range(50)]
    nowhere = f"http://127.0.0.1:{free_port()}"
    modes = ("everything on", "metrics only", "no server there")
    ratios = {mode: [] for mode in modes}  # wall clock
    thread_ratios = {mode: [] for mode in modes}  # the loop thread's CPU time
    process_ratios = {mode: [] for mode in modes}  # the process's CPU time (loop + sender)
    with server_process() as served:
        url = served[0]
        users_loop(model, opt, batches, 1.0)  # warm up
        for _ in range(args.rounds):
            bare = users_loop(model, opt, batches, args.seconds)
            for mode, options in (("everything on", {}), ("metrics only", {"snapshots_per_second": 0}),
                                  ("no server there", {"url": nowhere})):
                with watch(model, options.pop("url", url), name=f"bench {mode}", **options) as run:
                    measured = users_loop(model, opt, batches, args.seconds, run)
                for kept, value, base in zip((ratios, thread_ratios, process_ratios), measured, bare):
                    kept[mode].append(value / base)
        # Bytes per second of a 784-256-10 model at the default pace.
        big = nn.Sequential(nn.Linear(784, 256), nn.Sigmoid(), nn.Linear(256, 10))
        big_opt = torch.optim.Adam(big.parameters(), lr=1e-3)
        with watch(big, url, name="bench bytes") as run:
            started = time.perf_counter()
            users_loop(big, big_opt, batches, 10.0, run)
            time.sleep(0.5)  # what was taken is sent
            elapsed = time.perf_counter() - started
            sent = run.bytes_sent  # before close(): its last, exact weights are one more snapshot
        key = run.key
        # predict on the watched run, idle (its loop stopped): what a page drawing on its link waits for
        latencies = predict_latencies(url, key)
    result = {"ratios": {mode: [round(r, 4) for r in values] for mode, values in ratios.items()},
              "median": {mode: round(median(values), 4) for mode, values in ratios.items()},
              "median_loop_thread_cpu": {mode: round(median(v), 4) for mode, v in thread_ratios.items()},
              "median_process_cpu": {mode: round(median(v), 4) for mode, v in process_ratios.items()},
              "bytes_per_second_784_256_10": round(sent / elapsed),
              "predict_ms_median": round(median(latencies), 2), "machine": machine_note()}
    print(f"watch overhead, {args.rounds} alternating rounds of {args.seconds:g} s ({machine_note()}):")
    for mode, values in ratios.items():
        print(f"  {mode:16s} wall clock median {median(values):.3f} x the bare loop  (rounds: "
              + ", ".join(f"{v:.3f}" for v in values) + ")")
        print(f"  {'':16s} CPU of the loop's thread {median(thread_ratios[mode]):.3f} x, of the process "
              f"(loop + sender) {median(process_ratios[mode]):.3f} x")
    print(f"  784-256-10 at the default pace: {sent / elapsed / 1000:.0f} kB/s from the script")
    print(f"  predict on the watched run, idle (784-256-10): median {median(latencies):.2f} ms "
          f"over {len(latencies)} drawings")
    emit_json(result, args.json)


if __name__ == "__main__":
    main()
