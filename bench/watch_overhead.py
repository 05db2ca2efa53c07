"""What `linear_playground.watch` costs the user's own loop (issue 20): the same loop
(784-128-64-10, batch 64, Adam, CPU, one PyTorch thread), bare and with watch: everything on
(snapshots at the default pace), metrics only (snapshots_per_second=0), and with no server there.

Two measures side by side, because a 1% goal is below this shared machine's noise:
- **Alternating blocks** (the issue's measure): bare, watched, watched, bare segments of a
  second or two each (a fresh watch() per watched segment, opened and closed outside the timed
  part), so a slow drift of the machine weighs on both sides alike; each block's ratio is its
  watched time per step over its bare time per step, and the median over blocks is given.
- **The client's own cost, in place**: the time the loop spends inside `run.step()` (timed around
  each call) and the CPU time of watch's sending thread (read from /proc for that thread), as
  shares of the loop's wall clock: what watch adds, whatever the other processes do.

Then the bytes per second a 784-256-10 model sends at the default pace, the interval between its
snapshots and the age of the weights the page predicts with (from the moment the loop took them
to each moment of the run, sampled every 10 ms), and `predict` on its watched run, idle. A real
`python -m server` receives them.

    .venv/bin/python bench/watch_overhead.py [--blocks 12] [--seconds 1.5]
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


def users_loop(model, opt, batches, seconds: float, run=None) -> tuple[float, float]:
    """The user's loop for `seconds` of wall clock: (seconds per step, seconds spent inside
    `run.step()` per step). Bare or watched, the loop reads its loss as a number each step (as a
    loop that logs or prints its loss does), so the two differ by the `run.step()` call only."""
    steps, in_watch, started = 0, 0.0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        x, y = batches[steps % len(batches)]
        out = model(x)
        loss = F.cross_entropy(out, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        value = loss.item()
        if run is not None:
            called = time.perf_counter()
            run.step(loss=value)
            in_watch += time.perf_counter() - called
        steps += 1
    return (time.perf_counter() - started) / steps, in_watch / steps


def thread_cpu_seconds(thread) -> float:
    """CPU seconds one thread of this process has run, from /proc (schedstat counts nanoseconds;
    stat's clock ticks are too coarse for a thread that runs a few milliseconds a second)."""
    with open(f"/proc/self/task/{thread.native_id}/schedstat") as schedstat:
        return int(schedstat.read().split()[0]) / 1e9


def watched_segment(model, opt, batches, seconds: float, url: str, options: dict) -> dict:
    """One watched segment: a fresh watch() around `seconds` of the loop (its opening and closing
    not timed), then a pause so that the server's work on what it was sent is over before the
    next segment is timed."""
    with watch(model, url, name="bench", **options) as run:
        sender_before = thread_cpu_seconds(run._thread)
        wall_started = time.perf_counter()
        per_step, in_watch = users_loop(model, opt, batches, seconds, run)
        wall = time.perf_counter() - wall_started
        sender = thread_cpu_seconds(run._thread) - sender_before if run._thread.is_alive() else 0.0
    time.sleep(SETTLE_S)
    return {"per_step": per_step, "in_step_share": in_watch / per_step, "sender_share": sender / wall}


SETTLE_S = 0.4


def snapshot_timing(run, model, opt, batches, seconds: float) -> dict:
    """The user's loop with watch for `seconds`: when each snapshot was taken (in the loop) and
    when the server took it in (its answer, in the sender's thread), so how old the weights the
    page predicts with are at each moment."""
    taken_at, answered = {}, []
    take, send = run._take_snapshot, run._send_snapshot  # wrapped here only, to time them

    def taking(*, final):
        taken_at[run.step_count] = time.perf_counter()
        take(final=final)

    def sending(snapshot):
        send(snapshot)
        answered.append((time.perf_counter(), snapshot.step))  # the server's answer came

    run._take_snapshot, run._send_snapshot = taking, sending
    users_loop(model, opt, batches, seconds, run)
    ended = time.perf_counter()
    times = sorted(taken_at.values())
    intervals = [b - a for a, b in zip(times, times[1:])]
    ages = []  # every 10 ms from the first snapshot in: now - when the page's weights were taken
    for moment in (answered[0][0] + i * 0.01 for i in range(int((ended - answered[0][0]) / 0.01))):
        newest = max(step for at, step in answered if at <= moment)
        ages.append(moment - taken_at[newest])
    return {"snapshots": len(taken_at), "interval_s_median": round(median(intervals), 3),
            "age_s_median": round(median(ages), 3), "age_s_max": round(max(ages), 3),
            "taken_to_server_s_median": round(median([at - taken_at[step] for at, step in answered]), 3)}


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
    parser.add_argument("--blocks", type=int, default=12, help="bare-watched-watched-bare blocks per mode")
    parser.add_argument("--seconds", type=float, default=1.5, help="one segment's length")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.blocks < 1 or not 0.2 <= args.seconds <= 60:
        parser.error("--blocks must be at least 1 and --seconds between 0.2 and 60")
    logging.getLogger("linear_playground").setLevel(logging.ERROR)  # no server there: on purpose
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    batches = [(torch.rand(64, 784), torch.randint(0, 10, (64,))) for _ in range(50)]
    nowhere = f"http://127.0.0.1:{free_port()}"
    modes = ("everything on", "metrics only", "no server there")
    ratios = {mode: [] for mode in modes}
    in_step = {mode: [] for mode in modes}  # share of the loop's time inside run.step()
    sender = {mode: [] for mode in modes}  # the sending thread's CPU, as a share of the wall clock
    with server_process() as served:
        url = served[0]
        users_loop(model, opt, batches, 1.0)  # warm up
        options = {"everything on": (url, {}), "metrics only": (url, {"snapshots_per_second": 0}),
                   "no server there": (nowhere, {})}
        for block in range(args.blocks):
            for mode in modes[block % 3:] + modes[:block % 3]:  # each mode first in turn
                where, extra = options[mode]
                bare = [users_loop(model, opt, batches, args.seconds)[0]]
                watched = [watched_segment(model, opt, batches, args.seconds, where, extra) for _ in range(2)]
                bare.append(users_loop(model, opt, batches, args.seconds)[0])
                ratios[mode].append(sum(w["per_step"] for w in watched) / sum(bare))
                in_step[mode] += [w["in_step_share"] for w in watched]
                sender[mode] += [w["sender_share"] for w in watched]
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
        with watch(big, url, name="bench age") as run:
            timing = snapshot_timing(run, big, big_opt, batches, 10.0)
        # predict on the watched run, idle (its loop stopped): what a page drawing on its link waits for
        latencies = predict_latencies(url, key)
    own = {mode: median(in_step[mode]) + median(sender[mode]) for mode in modes}
    result = {"block_ratios": {mode: [round(r, 4) for r in values] for mode, values in ratios.items()},
              "median": {mode: round(median(values), 4) for mode, values in ratios.items()},
              "in_step_share_median": {mode: round(median(v), 5) for mode, v in in_step.items()},
              "sender_cpu_share_median": {mode: round(median(v), 5) for mode, v in sender.items()},
              "client_own_cost": {mode: round(1 + v, 4) for mode, v in own.items()},
              "bytes_per_second_784_256_10": round(sent / elapsed), "snapshots_784_256_10": timing,
              "predict_ms_median": round(median(latencies), 2), "machine": machine_note()}
    print(f"watch overhead, {args.blocks} blocks (bare, watched, watched, bare) of {args.seconds:g} s segments "
          f"({machine_note()}):")
    for mode, values in ratios.items():
        print(f"  {mode:16s} alternating blocks: median {median(values):.3f} x the bare loop  (blocks: "
              + ", ".join(f"{v:.3f}" for v in values) + ")")
        print(f"  {'':16s} its own cost in place: run.step() {median(in_step[mode]) * 100:.2f}% of the loop's time, "
              f"the sending thread's CPU {median(sender[mode]) * 100:.2f}% of the wall clock: {1 + own[mode]:.4f} x")
    print(f"  784-256-10 at the default pace: {sent / elapsed / 1000:.0f} kB/s from the script")
    print(f"  784-256-10 snapshots: {timing['snapshots']} in 10 s, {timing['interval_s_median']:.2f} s apart; the "
          f"page's weights {timing['age_s_median']:.2f} s old (median), {timing['age_s_max']:.2f} s at most "
          f"(taken to taken in by the server: {timing['taken_to_server_s_median']:.3f} s)")
    print(f"  predict on the watched run, idle (784-256-10): median {median(latencies):.2f} ms "
          f"over {len(latencies)} drawings")
    emit_json(result, args.json)


if __name__ == "__main__":
    main()
