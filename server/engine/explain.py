"""The nn.Linear explainer: what exactly is `self.hidden`? (pure PyTorch, no web imports)

The network as code (its source, Keras, shapes) is in codegen.py.
- `forward_steps(model, x, ...)`: one forward pass written out, with one neuron's weighted sum
  term by term and the softmax in its three steps.
- `linear_sandbox(x, weight, bias)` / `random_linear(...)`: a real nn.Linear on small numbers.
"""
from __future__ import annotations

import copy
import math
import secrets

import torch
from torch import nn

from ..errors import UserError
from .model import Network

SANDBOX_MAX_SIZE = 8  # rows of x, in_features and out_features
SANDBOX_MAX_ABS = 1e6  # larger numbers are refused: this is a calculator for people, not a fuzzer
TOP_TERMS_MAX = 32


# ---- the forward pass, step by step --------------------------------------------------------------
def snapshot(model: Network) -> Network:
    """A private copy of a live model, so every number of one explanation comes from the same
    weights even while the training thread updates the original."""
    return copy.deepcopy(model).eval()


def softmax_steps(logits: torch.Tensor) -> dict:
    """softmax(z) = exp(z - max z) / sum exp(z - max z): subtracting the max changes nothing
    mathematically and keeps exp from overflowing."""
    z = logits.detach().double().cpu()
    largest = z.max()
    shifted = z - largest
    exps = shifted.exp()
    total = exps.sum()
    return {
        "logits": z.tolist(),
        "max": float(largest),
        "shifted": shifted.tolist(),
        "exp": exps.tolist(),
        "sum": float(total),
        "probabilities": (exps / total).tolist(),
    }


class ExplainError(UserError):
    """A request the explainer cannot answer, with a message for people."""


def neuron_arithmetic(inputs: torch.Tensor, weight_row: torch.Tensor, bias: torch.Tensor,
                      model_value: torch.Tensor, top: int) -> dict:
    """y[j] = sum_i x[i] * W[j, i] + b[j], written out: the `top` largest terms (by size), the
    rest summed, the bias, the result, and the model's own value to compare."""
    terms = (inputs.double() * weight_row.double()).cpu()
    order = torch.argsort(terms.abs(), descending=True, stable=True)[:top]
    total = float(terms.sum())
    shown = float(terms[order].sum())
    nonzero_inputs = int((inputs != 0).sum())
    return {
        "top_terms": [{"i": int(i), "x": float(inputs[i]), "w": float(weight_row[i]), "term": float(terms[i])}
                      for i in order.tolist()],
        "rest_count": len(terms) - len(order),
        "rest_sum": total - shown,
        "nonzero_inputs": nonzero_inputs,
        "sum": total,
        "bias": float(bias),
        "result": total + float(bias),
        "model_value": float(model_value),
        "weights": weight_row.detach().cpu().tolist(),
        "terms": terms.tolist(),
    }


@torch.no_grad()
def forward_steps(model: Network, x: torch.Tensor, *, layer: str = "hidden",
                  neuron: int | None = None, top: int = 8) -> dict:
    """The forward pass of one input (784,) through `model`, every intermediate included, and
    the arithmetic of neuron `neuron` of `layer` (default: the most excited one, largest z)."""
    layer_names = model.layer_names + ["output"]
    if layer not in layer_names:
        raise ExplainError(f"layer must be one of {', '.join(layer_names)}, got {layer!r}")
    x = x.reshape(1, -1).to(next(model.parameters()).device, torch.float32)
    trace = model.trace(x)
    index = layer_names.index(layer)
    pre_activations = trace.pre_activations + [trace.logits]
    inputs = x if index == 0 else trace.activations[index - 1]
    z = pre_activations[index][0]
    if neuron is None:
        neuron = int(z.argmax())
    if not 0 <= neuron < z.numel():
        raise ExplainError(f"neuron must be from 0 to {z.numel() - 1} in layer {layer}, got {neuron}")
    linear: nn.Linear = getattr(model, layer)
    arithmetic = neuron_arithmetic(inputs[0], linear.weight[neuron], linear.bias[neuron], z[neuron],
                                   min(top, linear.in_features))
    if layer != "output":
        arithmetic["activation"] = float(trace.activations[index][0][neuron])
    layers = []
    for i, name in enumerate(model.layer_names):
        linear = getattr(model, name)
        layers.append({
            "name": name, "in_features": linear.in_features, "out_features": linear.out_features,
            "z": trace.pre_activations[i][0].cpu().tolist(),
            "activation": trace.activations[i][0].cpu().tolist(),
        })
    probabilities = trace.probabilities[0].cpu()
    return {
        "input": {"values": x[0].cpu().tolist(), "nonzero": int((x != 0).sum()), "sum": float(x.sum())},
        "activation_name": model.activation_name,
        "layers": layers,
        "logits": trace.logits[0].cpu().tolist(),
        "softmax": softmax_steps(trace.logits[0]),
        "probabilities": probabilities.tolist(),
        "prediction": int(probabilities.argmax()),
        "neuron": {"layer": layer, "index": neuron, "in_features": getattr(model, layer).in_features,
                   **arithmetic},
    }


# ---- the Linear sandbox --------------------------------------------------------------------------
class SandboxError(UserError):
    """Numbers nn.Linear cannot use; the message says why in words, with PyTorch's own."""


def _empty_linear(in_features: int, out_features: int) -> nn.Linear:
    """An nn.Linear whose construction does not touch the global random generator (which a
    concurrent seeded model build relies on): made on the meta device, then given storage."""
    return nn.Linear(in_features, out_features, device="meta").to_empty(device="cpu")


def _as_matrix(name: str, rows) -> torch.Tensor:
    try:
        return torch.tensor(rows, dtype=torch.float32)
    except (ValueError, TypeError) as err:
        raise SandboxError(f"{name}: every row must have the same length (PyTorch says: {err})") from None


def linear_sandbox(x, weight, bias) -> dict:
    """y = nn.Linear(in, out)(x) with the given weight (out, in) and bias (out,)."""
    x_t, w_t = _as_matrix("x", x), _as_matrix("weight", weight)
    b_t = torch.tensor(bias, dtype=torch.float32)
    out_features, in_features = w_t.shape
    layer = _empty_linear(in_features, out_features)
    try:
        layer.load_state_dict({"weight": w_t, "bias": b_t})
    except RuntimeError as err:
        said = " ".join(str(err).split())
        raise SandboxError(
            f"bias has {b_t.numel()} numbers but weight has {out_features} rows: nn.Linear needs one "
            f"bias per output feature (out_features = {out_features}). PyTorch says: {said}") from None
    try:
        y = layer(x_t)  # with autograd on, as in the question, so it prints its grad_fn
    except RuntimeError as err:
        raise SandboxError(
            f"x has {x_t.shape[1]} columns but weight has {in_features} (in_features): each row of x "
            f"must have in_features numbers, since y = x W^T + b. PyTorch says: {err}") from None
    return {
        "y": y.detach().tolist(),
        "printed": str(y),
        "in_features": in_features,
        "out_features": out_features,
        "shapes": {"x": list(x_t.shape), "weight": list(w_t.shape), "bias": list(b_t.shape),
                   "y": list(y.shape)},
    }


def random_linear(in_features: int, out_features: int, seed: int | None = None) -> dict:
    """Fresh weights as nn.Linear makes them (Linear.reset_parameters): W by Kaiming-uniform with
    a = sqrt(5), which is U(-1/sqrt(in), 1/sqrt(in)), and b by U(-1/sqrt(in), 1/sqrt(in)).
    With a seed, the same numbers as `torch.manual_seed(seed); nn.Linear(in, out)`."""
    if seed is None:
        seed = secrets.randbelow(2**31)
    generator = torch.Generator().manual_seed(seed)
    layer = _empty_linear(in_features, out_features)
    bound = 1 / math.sqrt(in_features)
    with torch.no_grad():
        nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=generator)
        nn.init.uniform_(layer.bias, -bound, bound, generator=generator)
    return {"weight": layer.weight.tolist(), "bias": layer.bias.tolist(), "bound": bound, "seed": seed}


# The question's example: nn.Linear(2, 2) on three rows. PyTorch prints 4 decimals; these are
# the full-precision values behind the printed ones (with W and b rounded to 4 decimals first,
# y[0, 1] would come out -0.2958, not the printed -0.2959).
SANDBOX_DEFAULTS = {
    "x": [[1.0, -1.0], [0.0, 1.0], [0.0, 0.0]],
    "weight": [[-0.450012, 0.585608], [-0.180737, -0.496277]],
    "bias": [0.222314, -0.611440],
}
