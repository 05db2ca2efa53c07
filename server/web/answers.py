"""How requests are read and answered: `parse` checks a payload against its schema,
`answered` turns a handler's result or refusal into the acknowledgement
(`{"ok": true, ...}` or `{"ok": false, "error": words}`), `rounded` puts floats on the wire."""
from __future__ import annotations

import logging
from functools import wraps

import numpy as np
from pydantic import BaseModel, ValidationError

from ..errors import UserError
from ..experiment import ConfigError
from ..refusals import describe_validation_error, shown

log = logging.getLogger(__name__)

ANSWER_DECIMALS = 6  # a prediction's values on the wire (probabilities, activations, input)


def parse(schema: type[BaseModel], payload, *, optional: bool = False, index_style: bool = True):
    """Validate a payload against `schema`; a missing payload means defaults if optional.
    Refusals are in people's words (server/refusals.py), never the library's; places are
    written as people index them (x[0][1]) whatever `index_style`, kept for older callers."""
    if payload is None and optional:
        payload = {}
    if not isinstance(payload, dict):
        fields = ", ".join(schema.model_fields)
        raise ConfigError(f"payload must be an object{f' with {fields}' if fields else ''} (got {shown(payload)})")
    try:
        return schema.model_validate(payload)
    except ValidationError as err:
        raise ConfigError(describe_validation_error(err)) from None


def answered(handler):
    """Turn a handler's result or refusal into the acknowledgement."""
    @wraps(handler)
    def wrapper(*args):
        try:
            return {"ok": True, **handler(*args)}
        except UserError as err:
            return {"ok": False, "error": str(err)}
        except Exception:  # keep serving; the log has the traceback
            log.exception("handler %s failed", handler.__name__)
            return {"ok": False, "error": "internal error while handling the request (see the server log)"}
    return wrapper


class NoBinary(list):
    """A list of plain floats: the transport's scan for binary attachments skips it instead of
    looking at each of its (up to ~1,300) items."""


def rounded(*arrays, decimals: int = ANSWER_DECIMALS) -> list[NoBinary]:
    """Arrays as lists of floats rounded for the wire, in one rounding op for all of them.
    float32's own digits come out as 17-digit doubles (0.12345679104328156); six decimals halve
    a prediction's answer and the time to encode it, and no view shows more. Non-finite values
    (a diverged network) become None: JSON has no NaN."""
    flat = np.concatenate([np.asarray(a, dtype=np.float64).reshape(-1) for a in arrays]).round(decimals)
    values = flat.tolist()
    if not np.isfinite(flat).all():
        values = [v if np.isfinite(v) else None for v in values]
    lists, start = [], 0
    for a in arrays:
        n = np.asarray(a).size
        lists.append(NoBinary(values[start:start + n]))
        start += n
    return lists
