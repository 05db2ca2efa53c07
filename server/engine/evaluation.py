"""Where the network fails, and what the data looks like: plain PyTorch, no web imports.

- `confusion_matrix` / `per_class_accuracy`: counts on a split, rows = actual digit,
  columns = predicted digit.
- `Evaluation`: one evaluation of one run at one moment (the end of an epoch, or "now"). It
  keeps a frozen copy of the network as it was, so the digits behind any matrix cell are shown
  with the probabilities that network gave them, even while training moves on.
- `EvaluationTracker`: the latest evaluation of a run, taken at epoch ends and on request, and
  published as the `evaluation` message.
- `DatasetBrowser`: per-class counts, sample digits and the mean digit of each class.

Digits travel as 784 bytes each (0..255, 1 byte per pixel, row major, 255 = ink), a list of
digits as one `pixels` blob of n x 784 bytes (the Socket.IO client takes at most 10 binary
attachments per message, so never one per digit).
"""
from __future__ import annotations

import copy
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import torch

from ..experiment import N_CLASSES
from .model import Network
from .run import RunFeature

MISTAKES_SHOWN = 40  # the gallery shows the most confident mistakes first
CELL_DIGITS_SHOWN = 48  # digits listed for one confusion-matrix cell
SAMPLES_PER_CLASS = 10  # dataset browser: digits shown per class and page


def confusion_matrix(labels: torch.Tensor, predictions: torch.Tensor, n_classes: int = N_CLASSES) -> torch.Tensor:
    """(n_classes, n_classes) int64 counts: [actual, predicted]."""
    labels = labels.reshape(-1).to(torch.int64).cpu()
    predictions = predictions.reshape(-1).to(torch.int64).cpu()
    if labels.shape != predictions.shape:
        raise ValueError(f"{labels.numel()} labels but {predictions.numel()} predictions")
    flat = labels * n_classes + predictions
    return torch.bincount(flat, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def per_class_accuracy(matrix: torch.Tensor) -> list[Optional[float]]:
    """Recall of each actual class (diagonal / row total); None for a class with no digits."""
    totals = matrix.sum(dim=1)
    return [float(matrix[i, i]) / float(totals[i]) if totals[i] > 0 else None
            for i in range(matrix.shape[0])]


def digit_bytes(images: torch.Tensor) -> bytes:
    """Floats 0..1 (one digit of 784, or n of them) -> bytes 0..255, digits one after another."""
    return (images.detach().reshape(-1).clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy().tobytes()


def rounded(values, digits: int = 4) -> list:
    """Floats for JSON: rounded, and None instead of NaN/inf (JSON has neither)."""
    return [round(float(v), digits) if math.isfinite(float(v)) else None for v in values]


@dataclass
class Evaluation:
    run_id: int
    epoch: int  # completed epochs when it was taken
    step: int
    labels: torch.Tensor
    predictions: torch.Tensor
    images: torch.Tensor  # the split's images (a reference, not a copy)
    network: Network  # frozen copy of the network as evaluated
    at_epoch_end: bool = False  # taken at the end of an epoch (else: on request, mid-epoch)
    matrix: torch.Tensor = field(init=False)

    def __post_init__(self):
        self.matrix = confusion_matrix(self.labels, self.predictions)

    @classmethod
    def of(cls, model: Network, images: torch.Tensor, labels: torch.Tensor, *, run_id: int, epoch: int,
           step: int, predictions: Optional[torch.Tensor] = None, at_epoch_end: bool = False) -> "Evaluation":
        """Evaluate `model` on a split. Pass `predictions` when they are already known (the
        session's end-of-epoch pass), so the matrix matches the reported validation accuracy."""
        network = copy.deepcopy(model).cpu().eval()
        images = images.cpu()
        if predictions is None:
            predictions = probabilities_of(network, images).argmax(dim=1)
        return cls(run_id, epoch, step, labels.cpu(), predictions.cpu(), images, network, at_epoch_end)

    @property
    def n(self) -> int:
        return int(self.labels.numel())

    @property
    def accuracy(self) -> Optional[float]:
        return float(self.matrix.diagonal().sum()) / self.n if self.n else None

    def _digits(self, indices: torch.Tensor) -> dict:
        """{"digits": [{index, label, predicted, probabilities}], "pixels": n x 784 bytes}."""
        if indices.numel() == 0:
            return {"digits": [], "pixels": b""}
        images = self.images[indices]
        probabilities = probabilities_of(self.network, images)
        return {"digits": [{
            "index": int(i),
            "label": int(self.labels[i]),
            "predicted": int(self.predictions[i]),
            "probabilities": rounded(p),
        } for i, p in zip(indices.tolist(), probabilities)], "pixels": digit_bytes(images)}

    def mistakes(self, limit: int = MISTAKES_SHOWN) -> tuple[int, dict]:
        """(number of mistakes, the `limit` most confident ones, most confident first)."""
        wrong = torch.nonzero(self.predictions != self.labels).reshape(-1)
        if wrong.numel() == 0:
            return 0, self._digits(wrong)
        confidence = probabilities_of(self.network, self.images[wrong]).max(dim=1).values
        order = torch.argsort(confidence, descending=True, stable=True)[:limit]
        return int(wrong.numel()), self._digits(wrong[order])

    def cell(self, actual: int, predicted: int, limit: int = CELL_DIGITS_SHOWN) -> dict:
        """The digits of class `actual` that the network called `predicted`."""
        members = torch.nonzero((self.labels == actual) & (self.predictions == predicted)).reshape(-1)
        return {
            **self.header(),
            "actual": actual,
            "predicted": predicted,
            "count": int(members.numel()),
            **self._digits(members[:limit]),
        }

    def header(self) -> dict:
        return {"run_id": self.run_id, "epoch": self.epoch, "step": self.step, "at_epoch_end": self.at_epoch_end}

    def summary(self, mistakes_limit: int = MISTAKES_SHOWN) -> dict:
        n_mistakes, mistakes = self.mistakes(mistakes_limit)
        totals = self.matrix.sum(dim=1)
        return {
            **self.header(),
            "n": self.n,
            "accuracy": self.accuracy,
            "matrix": self.matrix.tolist(),
            "per_class": [
                {"digit": d, "correct": int(self.matrix[d, d]), "total": int(totals[d]), "accuracy": acc}
                for d, acc in enumerate(per_class_accuracy(self.matrix))
            ],
            "mistakes_total": n_mistakes,
            "mistakes": mistakes,
        }


@torch.no_grad()
def probabilities_of(network: Network, images: torch.Tensor, batch_size: int = 2048) -> torch.Tensor:
    if images.shape[0] == 0:
        return torch.empty(0, N_CLASSES)
    return torch.cat([network(images[i:i + batch_size]) for i in range(0, images.shape[0], batch_size)])


EVALUATION_INTERVAL_S = 1.0  # while a run trains, epoch-end evaluations at most this often


class EvaluationTracker(RunFeature):
    """The latest evaluation of one run (a new run replaces it)."""

    def __init__(self, run, publish: Callable[[dict], None], *, clock=time.monotonic, latest=None):
        self.run = run
        # () -> (network, replica Weights): the newest consistent weights, without the run's lock
        self.latest = latest
        self.publish = publish  # the `evaluation` message's payload
        self.clock = clock
        self._latest: Optional[Evaluation] = None
        self._lock = threading.Lock()
        self._last_at = float("-inf")

    def _set(self, evaluation: Evaluation) -> Evaluation:
        with self._lock:
            self._latest = evaluation
        return evaluation

    def on_epoch(self, run, record: dict, predictions: torch.Tensor) -> None:
        # At full speed an epoch ends every ~0.2 s: while running, evaluate (~13 ms) and send
        # (~30 kB to each viewer) at most once a second; the last epoch and manual steps always.
        now = self.clock()
        if run.status == "running" and not run.trainer.finished and now - self._last_at < EVALUATION_INTERVAL_S:
            return
        self._last_at = now
        validation = run.dataset.validation
        evaluation = self._set(Evaluation.of(
            run.trainer.model, validation.images, validation.labels, run_id=run.run_id,
            epoch=record["epoch"], step=record["step"], predictions=predictions, at_epoch_end=True))
        self.publish(evaluation.summary())

    def evaluate_now(self, *, announce: bool = False) -> Evaluation:
        run = self.run
        validation = run.dataset.validation
        if self.latest is not None:
            network, weights = self.latest()
            evaluation = self._set(Evaluation.of(network, validation.images, validation.labels,
                                                 run_id=weights.run_id, epoch=weights.epochs, step=weights.step))
        else:
            with run.between_steps():
                evaluation = self._set(Evaluation.of(run.trainer.model, validation.images, validation.labels,
                                                     run_id=run.run_id, epoch=run.trainer.epoch,
                                                     step=run.step_count))
        if announce:
            self.publish(evaluation.summary())
        return evaluation

    def current(self) -> Evaluation:
        """The latest evaluation of the run under way: refreshed each epoch while it runs; taken
        now when there is none for this run, or the run is paused elsewhere than where it was taken."""
        run = self.run
        with self._lock:
            latest = self._latest
        if latest is not None and latest.run_id == run.run_id and (
                run.status == "running" or latest.step == run.step_count):
            return latest
        return self.evaluate_now()

    def for_cell(self) -> Evaluation:
        with self._lock:
            latest = self._latest
        if latest is not None and latest.run_id == self.run.run_id:
            return latest
        return self.current()


class DatasetBrowser:
    """What the data set holds: counts per class and split, sample digits, the mean digit."""

    def __init__(self, dataset):
        self.dataset = dataset
        self._overview: Optional[dict] = None
        train = dataset.train
        # Indices of each class in the training split, in data order (stable pages).
        self._by_class = [torch.nonzero(train.labels == d).reshape(-1) for d in range(N_CLASSES)]

    def _splits(self) -> dict:
        splits = {"train": self.dataset.train, "validation": self.dataset.validation}
        if self.dataset.test is not None:
            splits["test"] = self.dataset.test
        return splits

    def counts(self) -> dict:
        return {name: torch.bincount(split.labels.cpu(), minlength=N_CLASSES).tolist()
                for name, split in self._splits().items()}

    def mean_digits(self) -> bytes:
        """The mean training digit of each class, 0 to 9: 10 x 784 bytes."""
        images = self.dataset.train.images.cpu()
        means = [images[members].mean(dim=0) if members.numel() else torch.zeros(images.shape[1])
                 for members in self._by_class]
        return digit_bytes(torch.stack(means))

    def samples(self, offset: int = 0, per_class: int = SAMPLES_PER_CLASS) -> dict:
        """`per_class` training digits of each class, starting at `offset` (wrapping around):
        {"classes": [{"digit", "indices"}], "pixels": the digits of class 0, then 1, ...}."""
        images = self.dataset.train.images
        classes, picked = [], []
        for digit, members in enumerate(self._by_class):
            n = members.numel()
            chosen = [int(members[(offset + k) % n]) for k in range(min(per_class, n))]
            classes.append({"digit": digit, "indices": chosen})
            picked.extend(chosen)
        pixels = digit_bytes(images[torch.tensor(picked, dtype=torch.long)]) if picked else b""
        return {"classes": classes, "pixels": pixels}

    def overview(self) -> dict:
        if self._overview is None:
            info = self.dataset.info()
            self._overview = {
                "name": info["name"],
                "source": info["source"],
                "splits": info["splits"],
                "fallback_reason": info["fallback_reason"],
                "counts": self.counts(),
                "means": self.mean_digits(),
                "samples": self.samples(0),
                "per_class": SAMPLES_PER_CLASS,
            }
        return self._overview
