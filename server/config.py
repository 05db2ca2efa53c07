"""The playground's setup schema: one validated description of a training run.

Every config value from outside (socket events, URL state, HTTP bodies) goes through
`TrainConfig`, so bounds live in one place and bad input gets pydantic's words back.
"""
from __future__ import annotations

import math
from typing import Annotated, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError

ACTIVATIONS = ("sigmoid", "relu", "tanh", "leaky_relu")
OUTPUTS = ("logits", "softmax")
OPTIMIZERS = ("sgd", "adam")

HiddenSize = Annotated[int, Field(ge=1, le=2048)]

# Fields that can change while a run is under way; every other field rebuilds the model.
LIVE_FIELDS = frozenset({"lr", "batch_size", "momentum", "weight_decay", "epochs", "steps_per_second"})


class TrainConfig(BaseModel):
    """A training setup. Defaults are the question's network: 784 -> 256 sigmoid -> 10."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    hidden_sizes: list[HiddenSize] = Field(default_factory=lambda: [256], min_length=1, max_length=4)
    activation: Literal["sigmoid", "relu", "tanh", "leaky_relu"] = "sigmoid"
    # "logits": CrossEntropyLoss on self.output(x) (right). "softmax": on F.softmax(...) as the
    # question's forward() is written, so softmax is applied twice and learning is slower.
    output: Literal["logits", "softmax"] = "logits"
    optimizer: Literal["sgd", "adam"] = "adam"
    lr: float = Field(1e-3, gt=0, le=10, allow_inf_nan=False)
    momentum: float = Field(0.9, ge=0, lt=1, allow_inf_nan=False)
    weight_decay: float = Field(0.0, ge=0, le=1, allow_inf_nan=False)
    batch_size: int = Field(64, ge=1, le=4096)
    epochs: int = Field(20, ge=1, le=200)
    seed: int = Field(0, ge=0, le=2**31 - 1)
    # Pace of the shared run. None = full speed. The default makes the default run (about
    # 2,980 steps) last about a minute, slow enough to watch it learn.
    steps_per_second: Optional[float] = Field(50.0, gt=0, le=100_000, allow_inf_nan=False)

    def updated(self, changes: dict) -> "TrainConfig":
        """A new config with `changes` applied and validated as a whole."""
        if not isinstance(changes, dict):
            raise ConfigError("config must be an object of setup fields")
        return TrainConfig.model_validate({**self.model_dump(), **changes})

    def changed_fields(self, other: "TrainConfig") -> set[str]:
        mine, theirs = self.model_dump(), other.model_dump()
        return {k for k in mine if mine[k] != theirs[k]}

    def steps_per_epoch(self, n_train: int) -> int:
        return max(1, math.ceil(n_train / self.batch_size))


class ConfigError(ValueError):
    """A setup that cannot be used, with a message meant for people."""


def describe_validation_error(err: ValidationError) -> str:
    """Pydantic's errors as one readable sentence: 'lr: Input should be greater than 0'."""
    parts = []
    for e in err.errors():
        where = ".".join(str(p) for p in e["loc"]) or "value"
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown field"
        parts.append(f"{where}: {msg}")
    return "; ".join(parts)
