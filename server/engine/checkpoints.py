"""Checkpoints: the network's weights as a `.pt` file, out and back in. No Flask here.

Out: a plain `state_dict` (for the default network the keys are hidden.weight, hidden.bias,
output.weight, output.bias), written by `torch.save`, which `torch.load(path,
weights_only=True)` reads and the question's `Network` class loads with `load_state_dict`.

In: files from outside are untrusted. A `.pt` file is a pickle, and unpickling can run code,
so only `torch.load(..., weights_only=True)` touches it (PyTorch's restricted unpickler:
tensors, dicts, lists, numbers, strings; anything else is refused before it is built). Before
that: a size limit, and for zip archives (what torch.save writes) a limit on what they unpack
to. After: only dense tensors, floating point, finite once cast to float32 (the network's
precision), and exactly the shapes of the network they go into. Any failure is a `CheckpointError` with words for people, raised before anything changes.
"""
from __future__ import annotations

import io
import pickle
import re
import zipfile
from collections.abc import Mapping
from typing import Optional

import torch

from ..errors import UserError
from ..experiment import Architecture, TrainConfig
from .model import Network

# The biggest network the setup allows (784 -> 4 x 2048 -> 10, float32) is about 57 MB.
MAX_CHECKPOINT_BYTES = 64 * 1024 * 1024
MAX_UNPACKED_BYTES = MAX_CHECKPOINT_BYTES + 1024 * 1024  # tensors plus the small pickle
ZIP_MAGIC = b"PK\x03\x04"
WRAPPER_KEYS = ("state_dict", "model_state_dict")  # {"state_dict": {...}} is common; accept it


class CheckpointError(UserError):
    """A checkpoint that cannot be used, with a message meant for people."""


def safe_filename_part(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")[:60] or "run"


def checkpoint_name(config: TrainConfig, step: int, record: Optional[int] = None) -> str:
    """The download's file name: the network's shape, activation and step (and its record)."""
    hidden = "-".join(str(n) for n in config.hidden_sizes)
    prefix = f"run{record}-" if record else ""
    return safe_filename_part(f"nn-linear-{prefix}784-{hidden}-10-{config.activation}-step{step}") + ".pt"

def state_dict_bytes(model: Network) -> bytes:
    """The model's weights as torch.save bytes: a plain state_dict of CPU tensors."""
    buffer = io.BytesIO()
    torch.save({name: tensor.detach().cpu().clone() for name, tensor in model.state_dict().items()}, buffer)
    return buffer.getvalue()


def shape_text(shape) -> str:
    return "×".join(str(n) for n in shape) if len(shape) else "a scalar"


def architecture_of(state_dict: Mapping) -> Optional[list[int]]:
    """[784, h1, ..., 10] when the keys and shapes form one of our networks, else None."""
    found = Architecture.from_shapes({k: tuple(v.shape) for k, v in state_dict.items()})
    return list(found.sizes) if found else None


def _read_torch_file(data: bytes):
    if not data:
        raise CheckpointError("the file is empty")
    if len(data) > MAX_CHECKPOINT_BYTES:
        raise CheckpointError(
            f"the file is too big: {len(data):,} bytes; the limit is {MAX_CHECKPOINT_BYTES:,} "
            "(the biggest network the playground builds needs about 57 MB)")
    if data.startswith(ZIP_MAGIC):
        try:
            unpacked = sum(info.file_size for info in zipfile.ZipFile(io.BytesIO(data)).infolist())
        except (zipfile.BadZipFile, ValueError):
            raise CheckpointError(
                "the file is truncated or damaged: it starts like a torch.save archive but the archive "
                "is incomplete (download it again)") from None
        if unpacked > MAX_UNPACKED_BYTES:
            raise CheckpointError(f"the archive unpacks to {unpacked:,} bytes; the limit is {MAX_UNPACKED_BYTES:,}")
    elif not data.startswith(b"\x80"):  # neither a zip nor a pickle: not torch.save output
        raise CheckpointError(
            "this is not a PyTorch checkpoint: expected a .pt file written by torch.save "
            "(for example the one “Download .pt” gives)")
    try:
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        # weights_only refused a global it does not allow (a class, a function such as os.system).
        raise CheckpointError(
            "refused: the file holds Python objects other than tensors and plain containers (it could "
            "run code when loaded). Only plain state_dicts are accepted; nothing in the file was run") from None
    except (EOFError, RuntimeError, ValueError, TypeError, KeyError, IndexError, OSError, AttributeError):
        raise CheckpointError(
            "the file is truncated or damaged: PyTorch could not read it as a checkpoint "
            "(download it again)") from None


def read_state_dict(data: bytes) -> dict[str, torch.Tensor]:
    """Safely read an uploaded file into a {name: float tensor} dict (no shape checks yet)."""
    loaded = _read_torch_file(data)
    if isinstance(loaded, Mapping):
        for key in WRAPPER_KEYS:
            if isinstance(loaded.get(key), Mapping):
                loaded = loaded[key]
                break
    if not isinstance(loaded, Mapping) or not loaded:
        raise CheckpointError(
            f"the file holds {type(loaded).__name__ if not isinstance(loaded, Mapping) else 'an empty dict'}, "
            "not a state_dict (a dict of parameter names to tensors, as model.state_dict() gives)")
    state_dict = {}
    for name, value in loaded.items():
        if not isinstance(name, str):
            raise CheckpointError(f"not a state_dict: the key {name!r} is not a parameter name")
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(f"not a state_dict: {name} is a {type(value).__name__}, not a tensor")
        if value.layout != torch.strided or value.is_nested:
            kind = "a sparse tensor" if value.is_sparse or "sparse" in str(value.layout) else "not a plain dense tensor"
            raise CheckpointError(
                f"{name} is {kind} ({str(value.layout).removeprefix('torch.')}"
                f"{', nested' if value.is_nested else ''}); weights must be ordinary dense tensors "
                "(save tensor.to_dense() instead)")
        if value.device.type != "cpu":  # a meta tensor holds no values at all
            raise CheckpointError(f"{name} holds no values (it is on the {value.device.type} device)")
        if not value.is_floating_point():
            raise CheckpointError(f"{name} holds {value.dtype} values; weights must be floating point")
        state_dict[name] = value
        # The network trains in float32: check what the weights become there, not the file's
        # values (a float64 1e300 is finite, and infinite once cast).
        if torch.isfinite(value.to(torch.float32)).all():
            continue
        if not torch.isfinite(value).all():
            raise CheckpointError(f"{name} contains NaN or infinite values")
        largest = float(value.abs().max())
        raise CheckpointError(
            f"{name} holds values too large for float32, the precision the network computes in: the largest "
            f"is {largest:.3g} and float32 holds at most {torch.finfo(torch.float32).max:.3g}, so they would "
            "become infinite")
    return state_dict


def expected_shapes(config) -> dict[str, tuple[int, ...]]:
    """The state_dict names and shapes of the network `config` builds (without building it)."""
    return Architecture.of(config).state_dict_shapes()


def check_fits(state_dict: Mapping, config) -> dict[str, torch.Tensor]:
    """The state_dict as float32 tensors, if its names and shapes are exactly those of the
    network `config` describes."""
    expected = expected_shapes(config)
    problems = []
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    if missing:
        problems.append("missing " + ", ".join(missing))
    if unexpected:
        problems.append("unexpected " + ", ".join(unexpected[:8]) + (" …" if len(unexpected) > 8 else ""))
    for key, shape in expected.items():
        if key in state_dict and tuple(state_dict[key].shape) != shape:
            problems.append(f"{key} is {shape_text(state_dict[key].shape)}, the network needs {shape_text(shape)}")
    if problems:
        wanted = Architecture.of(config).text()
        message = f"this checkpoint does not fit the current network ({wanted}): " + "; ".join(problems) + "."
        found = architecture_of(state_dict)
        if found:
            hidden = ",".join(str(n) for n in found[1:-1])
            message += (f" The file is a {' → '.join(str(n) for n in found)} network: set the hidden layers to "
                        f"{hidden} (“Reset with this setup”), then upload it again.")
        raise CheckpointError(message)
    return {key: state_dict[key].to(torch.float32) for key in expected}


def load_state_dict_bytes(data: bytes, config) -> dict[str, torch.Tensor]:
    """Read and check an uploaded checkpoint against the network of `config`; changes nothing."""
    return check_fits(read_state_dict(data), config)
