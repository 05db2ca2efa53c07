"""Training the network: plain, synchronous PyTorch (no threads, no web).

`Trainer.train_batches(n)` runs n mini-batches and returns what happened; the caller decides
when to call it (the session's background thread, a benchmark, a test). Given a seed the
whole run is deterministic.
"""
from __future__ import annotations

import math

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..experiment import TrainConfig
from .model import Network, build_network


@dataclass
class BatchStats:
    """Sums over the mini-batches of one train_batches() call."""

    batches: int = 0
    samples: int = 0
    loss_sum: float = 0.0  # sum of per-sample losses
    correct: int = 0
    epochs_completed: int = 0  # epoch boundaries crossed during the call
    diverged: bool = False  # the loss became NaN or infinite; the caller should stop

    @property
    def loss(self) -> float:
        return self.loss_sum / self.samples if self.samples else float("nan")

    @property
    def accuracy(self) -> float:
        return self.correct / self.samples if self.samples else float("nan")

    def add(self, other: "BatchStats") -> None:
        self.batches += other.batches
        self.samples += other.samples
        self.loss_sum += other.loss_sum
        self.correct += other.correct
        self.epochs_completed += other.epochs_completed
        self.diverged = self.diverged or other.diverged


def resolve_device(name: str) -> torch.device:
    """'auto' picks CUDA when present; 'cuda' without a GPU is a clear error, not a crash."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for, but PyTorch sees no CUDA GPU on this machine")
    if name not in ("cpu", "cuda"):
        raise ValueError(f"unknown device {name!r}: use auto, cpu or cuda")
    return torch.device(name)


def make_optimizer(model: Network, config: TrainConfig) -> torch.optim.Optimizer:
    # fused: one kernel updates every parameter, instead of ~10 small ops per tensor: ~1.2x the
    # samples/s of the default Adam on this 2-core CPU (bench/training_loop.py), and far fewer
    # points where the training thread lets go of the GIL and must win it back from request
    # threads. Same algorithm, same hyperparameters.
    fused = {"fused": True} if next(model.parameters()).device.type in ("cpu", "cuda") else {}
    if config.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                               weight_decay=config.weight_decay, **fused)
    return torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay, **fused)


def loss_function(model: Network, config: TrainConfig, x: torch.Tensor, y: torch.Tensor):
    """Returns (mean loss, logits). With output="softmax" the loss is taken on the softmax
    probabilities, as the question's forward() returns them: cross_entropy then applies a
    second softmax, which flattens the gradients (the trap the explainer shows)."""
    logits = model.logits(x)
    scores = F.softmax(logits, dim=1) if config.output == "softmax" else logits
    return F.cross_entropy(scores, y), logits


class Trainer:
    def __init__(self, config: TrainConfig, train_images: torch.Tensor, train_labels: torch.Tensor,
                 device: torch.device | str = "cpu"):
        self.device = torch.device(device)
        self.config = config
        self.model = build_network(config).to(self.device)
        self.optimizer = make_optimizer(self.model, config)
        self.images = train_images.to(self.device)
        self.labels = train_labels.to(self.device)
        # Shuffling has its own seeded generator so a run replays exactly.
        self.shuffle_generator = torch.Generator().manual_seed(config.seed)
        self.epoch = 0  # completed epochs
        self.position = 0  # samples consumed in the current epoch
        self.global_step = 0
        self._order = self._new_order()

    @property
    def n_train(self) -> int:
        return len(self.labels)

    @property
    def finished(self) -> bool:
        return self.epoch >= self.config.epochs

    def progress(self) -> float:
        """Fraction of the whole run done, 0..1."""
        return min(1.0, (self.epoch + self.position / self.n_train) / self.config.epochs)

    def epoch_progress(self) -> float:
        return self.epoch + self.position / self.n_train

    def remaining_steps(self) -> int:
        """Steps left in the run. Each epoch ends with its own short batch, so count the rest of
        this epoch and the whole epochs after it separately."""
        if self.finished:
            return 0
        batch = self.config.batch_size
        this_epoch = -(-(self.n_train - self.position) // batch)
        return this_epoch + (self.config.epochs - self.epoch - 1) * -(-self.n_train // batch)

    def fast_forward(self, steps: int) -> None:
        """Count `steps` as done (a recorded run carried on): epoch and position follow from them
        at the current batch size; the order of the digits within the epoch is a new shuffle."""
        per_epoch = -(-self.n_train // self.config.batch_size)
        self.global_step = steps
        self.epoch = min(self.config.epochs, steps // per_epoch)
        self.position = 0 if self.finished else min(self.n_train - 1, (steps % per_epoch) * self.config.batch_size)

    def _new_order(self) -> torch.Tensor:
        return torch.randperm(self.n_train, generator=self.shuffle_generator).to(self.device)

    def apply_live_config(self, config: TrainConfig) -> None:
        """Take new values of the fields that may change mid-run (lr, momentum, weight decay,
        batch size, epochs); the weights and the optimizer's state are kept."""
        for group in self.optimizer.param_groups:
            group["lr"] = config.lr
            group["weight_decay"] = config.weight_decay
            if "momentum" in group:
                group["momentum"] = config.momentum
        self.config = config

    def train_batches(self, n: int = 1) -> BatchStats:
        stats = BatchStats()
        if not self.model.training:  # evaluate() leaves it in eval mode; .train() walks every module
            self.model.train()
        for _ in range(n):
            if self.finished:
                break
            index = self._order[self.position:self.position + self.config.batch_size]
            x, y = self.images[index], self.labels[index]
            loss, logits = loss_function(self.model, self.config, x, y)
            # One sync per batch: the curve needs the value, and it says whether training diverged.
            loss_value = loss.item()
            if not math.isfinite(loss_value):
                stats.diverged = True
                break
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            self.global_step += 1
            stats.batches += 1
            stats.samples += len(y)
            stats.loss_sum += loss_value * len(y)
            stats.correct += int((logits.argmax(1) == y).sum().item())
            self.position += len(y)
            if self.position >= self.n_train:
                self.epoch += 1
                self.position = 0
                stats.epochs_completed += 1
                self._order = self._new_order()
        return stats

    @torch.no_grad()
    def evaluate(self, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 2048):
        """(mean loss, accuracy, predicted labels) on a split, with the training loss function."""
        self.model.eval()
        loss_sum, correct, predictions = 0.0, 0, []
        for start in range(0, len(labels), batch_size):
            x = images[start:start + batch_size].to(self.device)
            y = labels[start:start + batch_size].to(self.device)
            loss, logits = loss_function(self.model, self.config, x, y)
            loss_sum += loss.item() * len(y)
            predicted = logits.argmax(1)
            correct += int((predicted == y).sum().item())
            predictions.append(predicted.cpu())
        n = max(1, len(labels))
        all_predictions = torch.cat(predictions) if predictions else torch.empty(0, dtype=torch.long)
        return loss_sum / n, correct / n, all_predictions
