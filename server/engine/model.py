"""The network from the question, in plain PyTorch (no web imports).

    class Network(nn.Module):
        def __init__(self):
            super().__init__()
            self.hidden = nn.Linear(784, 256)
            self.output = nn.Linear(256, 10)
        def forward(self, x):
            x = F.sigmoid(self.hidden(x))
            x = F.softmax(self.output(x), dim=1)
            return x

`nn.Linear(in, out)` computes y = x W^T + b with W of shape (out, in) and b of shape (out,).
Extra hidden layers (for the setup editor) are named hidden2, hidden3, hidden4 so that the
default network keeps the question's names and state_dict keys.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..experiment import ACTIVATIONS, Architecture, TrainConfig

# The activations as PyTorch computes them: each of the setup's activations (their names and
# spellings: server/experiment.py) is the torch.nn.functional function of the same name
# (F.leaky_relu with PyTorch's default negative slope, 0.01).
ACTIVATION_FUNCTIONS = {name: getattr(F, name) for name in ACTIVATIONS}


@dataclass
class ForwardTrace:
    """Every intermediate of one forward pass: per hidden layer its pre-activation z and
    activation a, then the output logits and the softmax probabilities."""

    pre_activations: list[torch.Tensor]
    activations: list[torch.Tensor]
    logits: torch.Tensor
    probabilities: torch.Tensor


class Network(nn.Module):
    def __init__(self, architecture: Architecture | None = None):
        super().__init__()
        self.architecture = architecture or Architecture.of(TrainConfig())
        self.activation_name = self.architecture.activation
        self.activation = ACTIVATION_FUNCTIONS[self.activation_name]
        self.layer_names = self.architecture.hidden_names
        self.hidden_sizes = list(self.architecture.sizes[1:-1])
        for layer in self.architecture.layers:
            setattr(self, layer.name, nn.Linear(layer.in_features, layer.out_features))

    def hidden_layers(self) -> list[nn.Linear]:
        return [getattr(self, name) for name in self.layer_names]

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.hidden_layers():
            x = self.activation(layer(x))
        return self.output(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """As the question writes it: softmax probabilities (use logits() for training)."""
        return F.softmax(self.logits(x), dim=1)

    @torch.no_grad()
    def trace(self, x: torch.Tensor) -> ForwardTrace:
        zs, activations = [], []
        for layer in self.hidden_layers():
            z = layer(x)
            x = self.activation(z)
            zs.append(z)
            activations.append(x)
        logits = self.output(x)
        return ForwardTrace(zs, activations, logits, F.softmax(logits, dim=1))

    def summary(self) -> dict:
        return self.architecture.summary()


def build_network(config: TrainConfig) -> Network:
    """A freshly initialised network for `config` (seeded, so the same setup gives the same
    initial weights)."""
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(config.seed)
    try:
        return Network(Architecture.of(config))
    finally:
        torch.random.set_rng_state(generator_state)


@dataclass(frozen=True)
class WeightsSnapshot:
    """A copy of a network's weights (and, when asked for, its weight gradients), taken between
    training steps, for work done elsewhere while training goes on."""

    architecture: Architecture
    weights: dict  # state_dict name -> CPU tensor copy
    grads: dict | None = None  # "<layer>.weight" -> CPU tensor copy of its gradient

    @classmethod
    def of(cls, network: Network, *, grads: bool = False) -> "WeightsSnapshot":
        with torch.no_grad():
            weights = {name: tensor.detach().to("cpu", copy=True) for name, tensor in network.state_dict().items()}
            copied = None
            if grads:
                copied = {}
                for name in network.layer_names + ["output"]:
                    grad = getattr(network, name).weight.grad
                    if grad is not None:
                        copied[f"{name}.weight"] = grad.detach().to("cpu", copy=True)
        return cls(network.architecture, weights, copied)

    def into(self, network: "Network | None" = None) -> Network:
        """A CPU network holding these weights (and gradients): `network` reused when it has the
        same architecture, else a new one."""
        if network is None or network.architecture != self.architecture:
            network = Network(self.architecture)
        with torch.no_grad():
            for name, tensor in network.state_dict().items():
                tensor.copy_(self.weights[name])
            for name in network.layer_names + ["output"]:
                weight = getattr(network, name).weight
                grad = (self.grads or {}).get(f"{name}.weight")
                weight.grad = grad.clone() if grad is not None else None
        return network


def network_of(weights) -> Network:
    """A CPU network holding a replica's weights (server/link/replica.Weights)."""
    network = Network(Architecture(tuple(weights.sizes), weights.activation))
    with torch.no_grad():
        for layer, (weight, bias) in zip(network.architecture.layers, weights.layers):
            getattr(network, layer.name).weight.copy_(torch.from_numpy(weight))
            getattr(network, layer.name).bias.copy_(torch.from_numpy(bias))
    return network.eval()
