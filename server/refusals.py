"""Refusals in people's words: the one place where the validation library's errors (pydantic's
"Input should be a valid number", "List should have at most 4 items after validation, not 5")
become sentences that say what is wrong and what to give instead. Every setup, socket event,
HTTP body, setup link and command-line flag is checked by pydantic and told through here.

Messages our own validators raise (a ValueError's words, a PydanticCustomError) are already
people's words and pass through unchanged.
"""
from __future__ import annotations

import math

from pydantic import ValidationError

# What a list is a list of, for "give at most 4 hidden layers" instead of "4 items".
ITEM_NOUNS = {
    "hidden_sizes": ("hidden layer", "hidden layers"),
    "hidden": ("hidden layer", "hidden layers"),  # the setup link's key
    "topics": ("topic", "topics"),
    "streams": ("stream", "streams"),
    "pixels": ("number", "numbers"),
    "bias": ("number", "numbers"),
    "x": ("row", "rows"),
    "weight": ("row", "rows"),
    "allowed_hosts": ("host", "hosts"),
}
MAX_SHOWN = 40  # characters of a refused value quoted back


def number(value) -> str:
    """A bound as people write it: 10, 0.001, 2,147,483,647, 1e+06 stays 1,000,000."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer() and abs(value) < 1e15):
        return f"{int(value):,}"
    return f"{value:g}"


def shown(value) -> str:
    """What was sent, as the sender wrote it (JSON's words: null, true, Infinity)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, (int, float)):
        text = repr(value)
        return text if len(text) <= MAX_SHOWN else f"a number of {len(text)} digits"
    if isinstance(value, str):
        return f'"{value}"' if len(value) <= MAX_SHOWN else f"a text of {len(value)} characters"
    if isinstance(value, (bytes, bytearray)):
        return f"{len(value)} bytes"
    if isinstance(value, (list, tuple)):
        return f"a list of {len(value)}"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _count(n: int, noun: tuple[str, str]) -> str:
    return f"{n:,} {noun[0] if n == 1 else noun[1]}"


def _noun(loc: tuple) -> tuple[str, str]:
    last = loc[-1] if loc else None
    if isinstance(last, str):
        return ITEM_NOUNS.get(last, ("item", "items"))
    return ("number", "numbers")  # a row of a matrix


def message(error: dict, *, quote: bool = True) -> str:
    """One pydantic error as what is wrong and what to give. `quote`: say back what was sent
    (off where the place already shows it, as a setup link's `lr=50` does)."""
    kind, ctx, loc = error["type"], error.get("ctx") or {}, tuple(error.get("loc") or ())
    value = error.get("input")
    got = f" (got {shown(value)})" if quote and "input" in error else ""
    if kind == "missing":
        return "missing: send it"
    if kind == "extra_forbidden":
        return "not something this request takes: leave it out"
    if kind in ("float_type", "float_parsing"):
        return f"give a number, e.g. 0.5{got}"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"give a whole number, e.g. 3{got}"
    if kind == "finite_number":
        return (f"give a finite number{got}: past ±1.8e308 (1e309, say) a number reads as Infinity, "
                "and Infinity and NaN cannot be computed with")
    if kind in ("bool_type", "bool_parsing"):
        return f"give true or false{got}"
    if kind == "string_type":
        return f"give a text{got}"
    if kind in ("list_type", "tuple_type"):
        return f"give a list, e.g. [1, 2]{got}"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return f"give an object of named fields, e.g. {{\"name\": value}}{got}"
    if kind == "bytes_type":
        return f"give binary data (a byte array){got}"
    if kind == "greater_than":
        return f"give a number above {number(ctx['gt'])}{got}"
    if kind == "greater_than_equal":
        return f"give a number of at least {number(ctx['ge'])}{got}"
    if kind == "less_than":
        return f"give a number below {number(ctx['lt'])}{got}"
    if kind == "less_than_equal":
        return f"give a number of at most {number(ctx['le'])}{got}"
    if kind == "string_too_short":
        if ctx.get("min_length") == 1:
            return "it is empty: write at least one character"
        return f"write at least {ctx['min_length']:,} characters (this has {len(value or ''):,})"
    if kind == "string_too_long":
        return f"write at most {ctx['max_length']:,} characters (this has {len(value or ''):,})"
    if kind in ("too_short", "too_long"):
        noun, actual = _noun(loc), ctx.get("actual_length")
        has = f" (got {actual:,})" if actual is not None else ""
        if kind == "too_short":
            return f"give at least {_count(ctx['min_length'], noun)}{has}"
        return f"give at most {_count(ctx['max_length'], noun)}{has}"
    if kind in ("bytes_too_short", "bytes_too_long"):
        bound = ctx.get("min_length", ctx.get("max_length"))
        return f"give {'at least' if kind == 'bytes_too_short' else 'at most'} {bound:,} bytes{got}"
    if kind in ("literal_error", "enum"):
        return f"choose one of {ctx.get('expected', '')}{got}"
    if kind in ("value_error", "assertion_error") and "error" in ctx:
        return str(ctx["error"])  # our own validators' words
    if kind == "path_type":
        return f"give a folder or file path{got}"
    # Our PydanticCustomErrors (their own words) and anything rarer: the library's sentence,
    # with its "Input should be" turned into an instruction.
    text = error["msg"]
    return "give " + text[len("Input should be "):] + got if text.startswith("Input should be ") else text


def place(loc) -> str:
    """Where in the request, as people index it: `lr`, `image.data`, `x[0][1]`, `hidden_sizes[0]`."""
    where = ""
    for part in loc:
        where += f"[{part}]" if isinstance(part, int) else (f".{part}" if where else str(part))
    return where


def describe_validation_error(err: ValidationError, *, index_style: bool = True) -> str:
    """All of a refusal's errors as one readable sentence: 'lr: give a number above 0 (got -1)'.
    (`index_style` is accepted for callers written before: places are always written as people
    index them now.)"""
    parts = []
    for error in err.errors():
        where = place(error["loc"])
        words = message(error)
        parts.append(f"{where}: {words}" if where else words)
    return "; ".join(parts)
