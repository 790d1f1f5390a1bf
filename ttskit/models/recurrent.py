"""Training a recurrence without a weight-sized gradient per step.

Autograd differentiates `F.linear(x_k, W)` at each of a recurrence's S steps on its own: every
step's backward builds a full (out, in) matrix `g_k^T x_k` and adds it into W's gradient. At a
small batch that is most of a step's work: Tacotron 2's decoder LSTMs hold 18M weights, read once
a step forward, but written and re-read twice a step backward. `DeferredWeightGradient` keeps the
per-step inputs and output gradients instead and gives W its gradient as one (out, S * B) x
(S * B, in) product when the backward pass reaches the first step, as cuDNN's RNNs do: the same
sum, in one large matrix product instead of S small ones.

Why the first step: each step's input holds the state the step before it produced, so the
backward pass can only reach step k after every later step, and step 0 last. A step the loss never
reaches contributes no gradient, which is what the sum over the steps that were reached gives.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.nn import functional as F


class DeferredWeightGradient:
    """One weight used at every step of a recurrence: `apply(x_k)` for each step, in order."""

    def __init__(self, weight: torch.Tensor) -> None:
        self.weight = weight
        self.inputs: list[torch.Tensor] = []
        self.gradients: dict[int, torch.Tensor] = {}
        self.flushed = False

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, in) @ weight (out, in)^T -> (B, out), differentiable in both."""
        if not torch.is_grad_enabled() or not (self.weight.requires_grad or x.requires_grad):
            return F.linear(x, self.weight)
        self.inputs.append(x.detach())
        return _StepLinear.apply(x, self.weight, self, len(self.inputs) - 1)

    def collect(self, index: int, gradient: torch.Tensor) -> torch.Tensor | None:
        """Keeps step `index`'s output gradient; at step 0, returns the weight's whole gradient."""
        if self.flushed:
            raise RuntimeError(f"deferred weight gradient: step {index} was reached after step 0; the steps "
                               "given to one DeferredWeightGradient must each take the state of the step before")
        self.gradients[index] = gradient
        if index != 0:
            return None
        self.flushed = True
        order = sorted(self.gradients)
        gradients = torch.cat([self.gradients[k] for k in order]).to(self.weight.dtype)
        inputs = torch.cat([self.inputs[k] for k in order]).to(self.weight.dtype)
        self.gradients.clear()
        return gradients.t() @ inputs


class _StepLinear(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor, owner: DeferredWeightGradient,
                index: int) -> torch.Tensor:
        ctx.owner, ctx.index = owner, index
        ctx.save_for_backward(weight)
        return F.linear(x, weight)

    @staticmethod
    def backward(ctx: Any, gradient: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        (weight,) = ctx.saved_tensors
        # Under autocast the product ran in a lower precision; the gradients are taken in the weight's.
        gradient = gradient.to(weight.dtype)
        grad_x = gradient @ weight if ctx.needs_input_grad[0] else None
        grad_weight = ctx.owner.collect(ctx.index, gradient) if ctx.needs_input_grad[1] else None
        return grad_x, grad_weight, None, None


def lstm_cell(gates: torch.Tensor, cell: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """nn.LSTMCell's update from its pre-activations (B, 4H; input, forget, cell, output, in
    PyTorch's order, both biases included) and the previous cell (B, H): (hidden, cell)."""
    i, f, g, o = gates.chunk(4, 1)
    cell = torch.sigmoid(f) * cell + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(cell), cell
