"""What the page needs to know of a model, found once at watch(): its Linear layers (by
attribute path), its module tree (like `print(model)`, with parameter counts), and, traced with
torch.fx, whether its forward pass is a chain of Linear layers and element-wise activations the
server can compute itself (then the page's canvas predicts with it), or which step it cannot
follow."""
from __future__ import annotations

import operator
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

MAX_TREE = 400  # modules described (the server's bound)
MAX_TEXT = 200

# Element-wise activations by how they can appear in a traced forward pass.
MODULE_ACTIVATIONS = {nn.Sigmoid: "sigmoid", nn.ReLU: "relu", nn.Tanh: "tanh", nn.LeakyReLU: "leaky_relu",
                      nn.Softmax: "softmax"}
FUNCTION_ACTIVATIONS = {F.sigmoid: "sigmoid", torch.sigmoid: "sigmoid", F.relu: "relu", torch.relu: "relu",
                        F.tanh: "tanh", torch.tanh: "tanh", F.leaky_relu: "leaky_relu", F.softmax: "softmax",
                        torch.softmax: "softmax"}
METHOD_ACTIVATIONS = {"sigmoid": "sigmoid", "relu": "relu", "tanh": "tanh", "softmax": "softmax"}
# Steps that leave each sample's numbers as they are (a flattened image, dropout at prediction time).
IDENTITY_MODULES = (nn.Flatten, nn.Identity, nn.Dropout)
IDENTITY_FUNCTIONS = {torch.flatten, F.dropout}
IDENTITY_METHODS = {"flatten", "view", "reshape", "float", "contiguous"}
LEAKY_SLOPE = 0.01  # the playground's leaky ReLU (PyTorch's default)


def linear_layers(model: nn.Module) -> list[tuple[str, nn.Linear]]:
    return [(path, module) for path, module in model.named_modules() if isinstance(module, nn.Linear)]


def module_tree(model: nn.Module) -> list[dict]:
    tree = []
    for path, module in model.named_modules():
        if len(tree) >= MAX_TREE:
            break
        extra = module.extra_repr().split("\n")[0]
        tree.append({"path": path, "type": type(module).__name__[:80], "depth": 0 if not path else path.count(".") + 1,
                     "parameters": sum(p.numel() for p in module.parameters()),
                     "text": f"{type(module).__name__}({extra})"[:MAX_TEXT]})
    return tree


def _dim_is_last(args, kwargs) -> bool:
    dim = kwargs.get("dim", args[1] if len(args) > 1 else None)
    return dim in (1, -1)


def _activation_of(node, modules) -> Optional[str]:
    """The activation a node applies, "" for an identity step, None when it is neither."""
    args, kwargs = node.args, node.kwargs
    if node.op == "call_module":
        module = modules[node.target]
        if isinstance(module, IDENTITY_MODULES):
            return ""
        for kind, name in MODULE_ACTIVATIONS.items():
            if isinstance(module, kind):
                if name == "softmax" and module.dim not in (1, -1):
                    return None
                if name == "leaky_relu" and module.negative_slope != LEAKY_SLOPE:
                    return None
                return name
        return None
    if node.op == "call_function":
        if node.target in IDENTITY_FUNCTIONS:
            return ""
        name = FUNCTION_ACTIVATIONS.get(node.target)
        if name == "softmax" and not _dim_is_last(args, kwargs):
            return None
        if name == "leaky_relu":
            slope = kwargs.get("negative_slope", args[1] if len(args) > 1 else LEAKY_SLOPE)
            if slope != LEAKY_SLOPE:
                return None
        return name
    if node.op == "call_method":
        if node.target in IDENTITY_METHODS:
            return ""
        name = METHOD_ACTIVATIONS.get(node.target)
        if name == "softmax" and not _dim_is_last(args, kwargs):
            return None
        return name
    return None


def _described(node) -> str:
    target = node.target
    if node.op == "call_module":
        return f"self.{target}"
    if node.op == "call_function":
        return getattr(target, "__name__", str(target)) if target is not operator.getitem else "indexing"
    return f".{target}()"


def _asks_shape(node, shape_nodes) -> bool:
    if node.op == "call_method" and node.target == "size":
        return True
    if node.op == "call_function" and node.target is getattr and node.args[1:] == ("shape",):
        return True
    return node.op == "call_function" and node.target is operator.getitem and node.args[0] in shape_nodes


def trace_chain(model: nn.Module, linears: list[tuple[str, nn.Linear]]):
    """(the Linear layers' paths in the order forward uses them, the activation after each
    (None: none)), or (None, words: what the page cannot follow)."""
    try:
        graph = torch.fx.symbolic_trace(model).graph
    except Exception as err:  # data-dependent control flow, and the like
        first = str(err).strip().split("\n")[0][:160]
        return None, f"torch.fx cannot trace {type(model).__name__}.forward ({type(err).__name__}: {first})"
    modules = dict(model.named_modules())
    order: list[str] = []
    activations: list[Optional[str]] = []
    current = None  # the node holding the chain's value so far
    shape_nodes: set = set()
    for node in graph.nodes:
        if node.op == "placeholder":
            if current is not None:
                return None, "its forward takes more than one input"
            current = node
            continue
        if node.op == "output":
            if node.args[0] is not current:
                return None, "its forward does not return the chain's last value"
            break
        if node.op == "get_attr":
            return None, f"its forward reads {node.target} directly"
        if _asks_shape(node, shape_nodes):
            shape_nodes.add(node)  # x.size(0), x.shape: for a view, not a step of the chain
            continue
        users = [user for user in current.users if not _asks_shape(user, shape_nodes)]
        if not node.args or node.args[0] is not current or len(users) != 1:
            return None, f"{_described(node)} does not take the value of the step before it alone"
        if node.op == "call_module" and isinstance(modules.get(node.target), nn.Linear):
            if node.target in order:
                return None, f"self.{node.target} is used twice"
            order.append(node.target)
            activations.append(None)
        else:
            kind = _activation_of(node, modules)
            if kind is None:
                return None, f"{_described(node)} is not a Linear layer nor an element-wise activation the page follows"
            if kind:
                if not order:
                    return None, f"{_described(node)} comes before the first Linear layer"
                if activations[-1] is not None:
                    return None, f"{_described(node)} follows {activations[-1]} (two activations in a row)"
                activations[-1] = kind
        current = node
    if sorted(order) != sorted(path for path, _ in linears):
        unused = sorted(set(path for path, _ in linears) - set(order))
        return None, f"forward does not use {', '.join(unused) or 'every Linear layer'}"
    return order, activations


MAX_IMAGE_SIDE = 1024  # the server's bound on an image's height and width


def _image_shape(shape, path: str, layer: nn.Linear) -> list[int]:
    """A user's image shape for one layer, as [channels, height, width], or a ValueError in words."""
    where = f"image_shape for {path or 'the model'} (nn.Linear({layer.in_features}, {layer.out_features}))"
    if isinstance(shape, torch.Size):
        shape = tuple(shape)
    if not isinstance(shape, (tuple, list)) or len(shape) not in (2, 3) \
            or not all(isinstance(n, int) and not isinstance(n, bool) for n in shape):
        raise ValueError(f"{where}: give (channels, height, width) or (height, width) as whole numbers, "
                         f"e.g. (3, 32, 32); got {shape!r}"[:300])
    channels, height, width = (1, *shape) if len(shape) == 2 else shape
    if channels not in (1, 3):
        raise ValueError(f"{where}: {channels} channels; the page draws 1 (grey) or 3 (colour, channel-first)")
    if not (1 <= height <= MAX_IMAGE_SIDE and 1 <= width <= MAX_IMAGE_SIDE):
        raise ValueError(f"{where}: height and width from 1 to {MAX_IMAGE_SIDE}; got {height}×{width}")
    if channels * height * width != layer.in_features:
        raise ValueError(f"{where}: {channels}×{height}×{width} is {channels * height * width:,} values, but the "
                         f"layer takes {layer.in_features:,} inputs")
    return [channels, height, width]


def image_shapes(option, linears: list[tuple[str, nn.Linear]]) -> dict[str, list[int]]:
    """watch(..., image_shape=...) as {layer path: [channels, height, width]}: one shape is the
    first Linear layer's (the one the input goes into); a dict names layers by attribute path."""
    if option is None:
        return {}
    by_path = dict(linears)
    if isinstance(option, dict):
        shapes = {}
        for path, shape in option.items():
            if path not in by_path:
                known = ", ".join(repr(p) for p in by_path)[:200]
                raise ValueError(f"image_shape names {path!r}, which is not one of the model's Linear layers ({known})")
            shapes[path] = _image_shape(shape, path, by_path[path])
        return shapes
    path, layer = linears[0]
    return {path: _image_shape(option, path, layer)}
