"""The experiment, described once: the setup of a training run (`TrainConfig`), the network's
architecture that setup builds (`Architecture`: layers, names, activations), and the setup as a
readable link. Plain data, no torch and no web: the engine, the web layer and the tests share it.

Every setup value from outside (socket events, URL state, HTTP bodies) goes through
`TrainConfig`, so bounds live in one place and bad input gets words back.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import UserError
from .refusals import describe_validation_error, message

N_INPUTS = 28 * 28
N_CLASSES = 10
MAX_HIDDEN_LAYERS = 4
MAX_UNITS = 2048

HiddenSize = Annotated[int, Field(ge=1, le=MAX_UNITS)]

# Fields that can change while a run is under way; every other field rebuilds the model.
LIVE_FIELDS = frozenset({"lr", "batch_size", "momentum", "weight_decay", "epochs"})

# The viewing pace of a run is how fast people watch it, not part of the experiment: it is kept
# beside the setup (state["pace"]). Older clients send and read it as config["steps_per_second"].
PACE_FIELD = "steps_per_second"
DEFAULT_PACE = 50.0  # steps/s: the default run (about 2,980 steps) lasts about a minute
MAX_PACE = 100_000.0


class ConfigError(UserError):
    """A setup that cannot be used, with a message meant for people."""


@dataclass(frozen=True)
class Activation:
    """One activation function, as each place spells it."""

    name: str  # the setup's word: "sigmoid"
    code: str  # in PyTorch code: "F.sigmoid" (the question's spelling)
    keras: str  # Keras' activation argument
    label: str  # for people


ACTIVATIONS = {
    "sigmoid": Activation("sigmoid", "F.sigmoid", "sigmoid", "sigmoid"),
    "relu": Activation("relu", "F.relu", "relu", "ReLU"),
    "tanh": Activation("tanh", "torch.tanh", "tanh", "tanh"),
    # negative slope 0.01, PyTorch's default, in training and in the generated code alike
    "leaky_relu": Activation("leaky_relu", "F.leaky_relu", "leaky_relu", "leaky ReLU"),
}


class TrainConfig(BaseModel):
    """A training setup. Defaults are the question's network: 784 -> 256 sigmoid -> 10."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    hidden_sizes: list[HiddenSize] = Field(default_factory=lambda: [256], min_length=1,
                                           max_length=MAX_HIDDEN_LAYERS)
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

    def updated(self, changes: Mapping) -> "TrainConfig":
        """A new config with `changes` applied and validated as a whole (ConfigError in words)."""
        if not isinstance(changes, Mapping):
            raise ConfigError("config must be an object of setup fields, e.g. {\"lr\": 0.01}")
        try:
            return TrainConfig.model_validate({**self.model_dump(), **changes})
        except ValidationError as err:
            raise ConfigError(describe_validation_error(err)) from None

    def changed_fields(self, other: "TrainConfig") -> set[str]:
        mine, theirs = self.model_dump(), other.model_dump()
        return {k for k in mine if mine[k] != theirs[k]}

    def steps_per_epoch(self, n_train: int) -> int:
        return max(1, math.ceil(n_train / self.batch_size))

    @property
    def architecture(self) -> "Architecture":
        return Architecture.of(self)


def split_pace(changes: Optional[Mapping]) -> tuple[Optional[dict], bool, Optional[float]]:
    """(setup changes without the pace, whether a pace was given, the pace). Older clients send
    the pace inside the setup (`config:update {"steps_per_second": null}` = full speed)."""
    if changes is None or not isinstance(changes, Mapping):
        return changes, False, None
    if PACE_FIELD not in changes:
        return dict(changes), False, None
    rest = {k: v for k, v in changes.items() if k != PACE_FIELD}
    return rest, True, checked_pace(changes[PACE_FIELD])


def checked_pace(value) -> Optional[float]:
    """A viewing pace in steps per second (None = full speed), or ConfigError in words."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{PACE_FIELD}: give a number of steps per second, or null for full speed")
    value = float(value)
    if not math.isfinite(value) or not 0 < value <= MAX_PACE:
        raise ConfigError(f"{PACE_FIELD}: give a pace above 0 and at most {MAX_PACE:,.0f} steps per "
                          f"second, or null for full speed")
    return value


# ---- the architecture -----------------------------------------------------------------------------

def hidden_layer_names(n_layers: int) -> list[str]:
    """The question's names: `hidden`, then hidden2, hidden3, hidden4 for extra layers, so the
    default network keeps the question's state_dict keys."""
    return ["hidden"] + [f"hidden{i}" for i in range(2, n_layers + 1)]


@dataclass(frozen=True)
class Layer:
    name: str
    in_features: int
    out_features: int

    @property
    def weight_shape(self) -> tuple[int, int]:
        return (self.out_features, self.in_features)

    @property
    def parameters(self) -> int:
        return self.out_features * self.in_features + self.out_features


@dataclass(frozen=True)
class Architecture:
    """The layers of one network: 784 -> hidden sizes -> 10, every layer an nn.Linear, the
    hidden ones followed by the activation. Used by the model, the explainer, checkpoints,
    the generated code and the predictions' replica."""

    sizes: tuple[int, ...]
    activation: str

    @classmethod
    def of(cls, config: TrainConfig) -> "Architecture":
        return cls((N_INPUTS, *config.hidden_sizes, N_CLASSES), config.activation)

    @property
    def layers(self) -> list[Layer]:
        names = hidden_layer_names(len(self.sizes) - 2) + ["output"]
        return [Layer(name, n_in, n_out) for name, n_in, n_out in zip(names, self.sizes[:-1], self.sizes[1:])]

    @property
    def hidden_layers(self) -> list[Layer]:
        return self.layers[:-1]

    @property
    def hidden_names(self) -> list[str]:
        return [layer.name for layer in self.hidden_layers]

    @property
    def parameters(self) -> int:
        return sum(layer.parameters for layer in self.layers)

    def state_dict_shapes(self) -> dict[str, tuple[int, ...]]:
        shapes = {}
        for layer in self.layers:
            shapes[f"{layer.name}.weight"] = layer.weight_shape
            shapes[f"{layer.name}.bias"] = (layer.out_features,)
        return shapes

    @classmethod
    def from_shapes(cls, shapes: Mapping[str, tuple], activation: str = "sigmoid") -> Optional["Architecture"]:
        """The architecture whose state_dict has exactly these names and shapes, else None."""
        for n_layers in range(1, MAX_HIDDEN_LAYERS + 1):
            names = hidden_layer_names(n_layers) + ["output"]
            if set(shapes) != {f"{name}.{part}" for name in names for part in ("weight", "bias")}:
                continue
            sizes = [N_INPUTS]
            for name in names:
                weight, bias = tuple(shapes[f"{name}.weight"]), tuple(shapes[f"{name}.bias"])
                if len(weight) != 2 or weight[1] != sizes[-1] or bias != (weight[0],):
                    return None
                sizes.append(int(weight[0]))
            return cls(tuple(sizes), activation) if sizes[-1] == N_CLASSES else None
        return None

    def summary(self) -> dict:
        """The layer table every view shows (state["model"])."""
        return {
            "layers": [{
                "name": layer.name,
                "in_features": layer.in_features,
                "out_features": layer.out_features,
                "weight_shape": list(layer.weight_shape),
                "bias_shape": [layer.out_features],
                "parameters": layer.parameters,
            } for layer in self.layers],
            "activation": self.activation,
            "parameters": self.parameters,
            "shape": list(self.sizes),
        }

    def text(self) -> str:
        """'784 → 256 → 10'."""
        return " → ".join(str(n) for n in self.sizes)


# ---- the setup as a link ---------------------------------------------------------------------------
# `?hidden=256,128&act=relu&out=logits&opt=adam&lr=0.001&...`: the page writes the setup in force
# into its address (static/js/urlstate.js writes the same keys); opening such a link asks the
# server to read it back. Keys missing from the link take the defaults (a link means the same
# setup whatever the server runs now), unknown keys are ignored, out-of-bounds values are
# rejected with the link's own key in the message. The pace is not in it.

LINK_KEYS = {  # link key -> config field, in the order the link lists them
    "hidden": "hidden_sizes",
    "act": "activation",
    "out": "output",
    "opt": "optimizer",
    "lr": "lr",
    "mom": "momentum",
    "wd": "weight_decay",
    "batch": "batch_size",
    "epochs": "epochs",
    "seed": "seed",
}
FIELD_KEYS = {field: key for key, field in LINK_KEYS.items()}
INT_FIELDS = {"batch_size", "epochs", "seed"}
FLOAT_FIELDS = {"lr", "momentum", "weight_decay"}
WORD_FIELDS = {"activation", "output", "optimizer"}
MAX_LINK_VALUE_LENGTH = 64


class LinkError(ConfigError):
    """A setup link that cannot be used, in words that name the link's keys."""


def _format_number(value) -> str:
    return repr(value) if isinstance(value, int) else f"{value:.10g}"


def config_to_query(config: TrainConfig | Mapping) -> str:
    values = config.model_dump() if isinstance(config, TrainConfig) else dict(config)
    parts = []
    for key, field in LINK_KEYS.items():
        value = values[field]
        if field == "hidden_sizes":
            text = ",".join(str(n) for n in value)
        elif field in WORD_FIELDS:
            text = value
        else:
            text = _format_number(value)
        parts.append(f"{key}={text}")
    return "&".join(parts)


def _parse_link_value(key: str, field: str, text: str):
    text = text.strip()
    if len(text) > MAX_LINK_VALUE_LENGTH:
        raise LinkError(f"{key} in the link is too long ({len(text)} characters)")
    try:
        if field == "hidden_sizes":
            return [int(part) for part in text.split(",")]
        if field in INT_FIELDS:
            return int(text)
        if field in FLOAT_FIELDS:
            return float(text)
    except ValueError:
        wanted = ("whole numbers separated by commas, e.g. hidden=256,128" if field == "hidden_sizes"
                  else "a whole number" if field in INT_FIELDS else "a number")
        raise LinkError(f"{key}={text!r} in the link: expected {wanted}") from None
    return text.lower().replace("-", "_")  # act=leaky-relu reads as leaky_relu


def config_from_query(args: Mapping[str, str]) -> tuple[TrainConfig, list[str]]:
    """(the link's setup, defaults for missing keys; the unknown keys that were ignored)."""
    changes, texts, ignored = {}, {}, []
    for key, text in args.items():
        field = LINK_KEYS.get(key)
        if field is None:
            ignored.append(key)
            continue
        changes[field] = _parse_link_value(key, field, text)
        texts[field] = text.strip()
    try:
        return TrainConfig.model_validate(changes), ignored
    except ValidationError as err:
        raise LinkError(_describe_link_error(err, texts)) from None


def _describe_link_error(err: ValidationError, texts: dict) -> str:
    """'lr=50 in the link: give a number of at most 10' (the link's own keys, people's words)."""
    parts = []
    for e in err.errors():
        field = str(e["loc"][0]) if e["loc"] else ""
        key = FIELD_KEYS.get(field, field)
        where = f" (layer {e['loc'][1] + 1})" if field == "hidden_sizes" and len(e["loc"]) > 1 else ""
        # The place quotes what the link says; the words name the link's key (hidden, not hidden_sizes).
        words = message({**e, "loc": (key, *e["loc"][1:])}, quote=False)
        parts.append(f"{key}={texts.get(field, '')} in the link{where}: {words}")
    return "; ".join(parts)
