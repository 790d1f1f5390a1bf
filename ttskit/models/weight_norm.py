"""Weight norm in and out of a network: the generators train with it (torch's parametrisation)
and infer without it."""

from __future__ import annotations

from torch import nn
from torch.nn.utils import parametrize


def fold_weight_norm(network: nn.Module) -> nn.Module:
    """Every weight-norm parametrisation of `network` folded into a plain weight (same output;
    faster, inference only); returns `network`."""
    for module in network.modules():
        if parametrize.is_parametrized(module, "weight"):
            parametrize.remove_parametrizations(module, "weight", leave_parametrized=True)
    return network
