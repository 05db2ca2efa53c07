"""The setup as a readable link: `?hidden=256,128&act=relu&out=logits&opt=adam&lr=0.001&...`.

The page writes the setup in force into its URL (static/js/urlstate.js writes the same keys);
opening such a link asks the server (GET /api/setup) to read it back. Keys missing from the
link take the defaults (so a link means the same setup whatever the server runs now), unknown
keys are ignored, and out-of-bounds values are rejected with the link's own key in the message.
The pace of the shared run (steps_per_second) is how fast people watch, not the setup: not in it.
"""
from __future__ import annotations

from collections.abc import Mapping

from pydantic import ValidationError

from ..config import TrainConfig

# link key -> config field, in the order the link lists them
LINK_KEYS = {
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
MAX_VALUE_LENGTH = 64


class LinkError(ValueError):
    """A setup link that cannot be used, in words that name the link's keys."""


def format_number(value) -> str:
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
            text = format_number(value)
        parts.append(f"{key}={text}")
    return "&".join(parts)


def _parse_value(key: str, field: str, text: str):
    text = text.strip()
    if len(text) > MAX_VALUE_LENGTH:
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
        changes[field] = _parse_value(key, field, text)
        texts[field] = text.strip()
    try:
        return TrainConfig.model_validate(changes), ignored
    except ValidationError as err:
        raise LinkError(describe_link_error(err, texts)) from None


def describe_link_error(err: ValidationError, texts: dict) -> str:
    """'lr=50 in the link: Input should be less than or equal to 10' (the link's own words)."""
    parts = []
    for e in err.errors():
        field = str(e["loc"][0]) if e["loc"] else ""
        key = FIELD_KEYS.get(field, field)
        where = f" (layer {e['loc'][1] + 1})" if field == "hidden_sizes" and len(e["loc"]) > 1 else ""
        parts.append(f"{key}={texts.get(field, '')} in the link{where}: {e['msg']}")
    return "; ".join(parts)
