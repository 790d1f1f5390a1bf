"""Weight norm in and out of a network: the generators train with it (torch's parametrisation)
and infer without it."""

from __future__ import annotations

import copy

from torch import nn
from torch.nn.utils import parametrize


def fold_weight_norm(network: nn.Module) -> nn.Module:
    """Every weight-norm parametrisation of `network` folded into a plain weight (same output;
    faster, inference only); returns `network`."""
    for module in network.modules():
        if parametrize.is_parametrized(module, "weight"):
            parametrize.remove_parametrizations(module, "weight", leave_parametrized=True)
    return network


def folded_copy(network: nn.Module) -> nn.Module:
    """A copy of `network` with its weight norm folded, `network` left as it was. A deep copy alone
    is not enough: a parametrised module's copy shares its (generated) class with the original,
    and removing the parametrisation deletes the `weight` property from that class, so the
    original would lose its weight. Each copied module gets a class of its own first."""
    duplicate = copy.deepcopy(network)
    for module in duplicate.modules():
        if parametrize.is_parametrized(module):
            shared = type(module)
            module.__class__ = type(shared.__name__, shared.__bases__, dict(shared.__dict__))
    return fold_weight_norm(duplicate)
