"""Linear probe heads trained on cached features (``downstream/linear_probe_cached.py``): the
protocol's head (BatchNorm without affine, then a linear layer, SGD with momentum and weight decay,
the rate x ``gamma`` at fixed fractions of the run) on features computed once per image.

BatchNorm here is its evaluation-mode transform with the whole training set's statistics per channel
(what the protocol's running statistics converge to), fixed before training. Several heads, one per
learning rate, train together on the same batches (one matrix product for all), each with its own
rate: the SGD update is PyTorch's (dampening 0, no Nesterov), written out so that the rate can be a
per-head tensor.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor


def channel_statistics(x: Tensor, channels: int, eps: float = 1e-5) -> tuple[Tensor, Tensor]:
    """(mean, 1 / sqrt(var + eps)) per channel of flattened (N, C x S) maps, over N and the S
    positions, as ``BatchNorm2d`` computes them (biased variance); each expanded to (C x S,)."""
    n, d = x.shape
    if d % channels:
        raise ValueError(f"{d} features are not {channels} channels of equal maps")
    maps = x.reshape(n, channels, d // channels).double()
    mean = maps.mean(dim=(0, 2))
    var = maps.var(dim=(0, 2), unbiased=False)
    spread = d // channels
    return mean.repeat_interleave(spread).float(), (var + eps).rsqrt().repeat_interleave(spread).float()


def held_out_split(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """A boolean mask of about ``fraction`` of each class's items, drawn with ``seed``, held out: at
    least one of a class with two or more, never a whole class."""
    rng = np.random.default_rng(seed)
    held = np.zeros(len(labels), dtype=bool)
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        k = min(max(1, int(round(fraction * len(idx)))), len(idx) - 1)
        held[rng.choice(idx, size=k, replace=False)] = True
    return held


def step_lr(base: Tensor, step: int, total: int, fractions, gamma: float) -> Tensor:
    """The rate at ``step`` of ``total``: ``base`` x ``gamma`` per milestone (a fraction of the run) passed."""
    passed = sum(step >= math.floor(f * total) for f in fractions)
    return base * gamma**passed


def train_heads(x: Tensor, y: Tensor, num_classes: int, lrs, epochs: int, batch_size: int, momentum: float,
                weight_decay: float, lr_steps, lr_gamma: float, seed: int) -> tuple[Tensor, Tensor]:  # fmt: skip
    """One linear head per rate in ``lrs`` on standardised features ``x`` (N, D) with labels ``y``,
    trained together for ``epochs`` epochs of shuffled batches (drawn with ``seed``; the last,
    smaller batch kept). Returns (weights (H, C, D), biases (H, C)); heads start as ``nn.Linear`` does
    (uniform +-1/sqrt(D)), from ``seed``."""
    n, d = x.shape
    h = len(lrs)
    g = torch.Generator().manual_seed(seed)
    bound = 1 / math.sqrt(d)
    w = ((torch.rand(h, num_classes, d, generator=g) * 2 - 1) * bound).to(x.device)
    b = ((torch.rand(h, num_classes, generator=g) * 2 - 1) * bound).to(x.device)
    w.requires_grad_(True)
    b.requires_grad_(True)
    base = torch.tensor([float(r) for r in lrs], device=x.device)
    bufs: list[Tensor | None] = [None, None]
    steps_per_epoch = math.ceil(n / batch_size)
    total, step = epochs * steps_per_epoch, 0
    for _ in range(epochs):
        order = torch.randperm(n, generator=g).to(x.device)
        for i in range(0, n, batch_size):
            idx = order[i : i + batch_size]
            logits = torch.einsum("nd,hcd->hnc", x[idx], w) + b[:, None, :]
            loss = F.cross_entropy(logits.reshape(-1, num_classes), y[idx].repeat(h)) * h  # each head's mean
            gw, gb = torch.autograd.grad(loss, (w, b))
            lr = step_lr(base, step, total, lr_steps, lr_gamma)
            with torch.no_grad():
                for k, (p, grad) in enumerate(((w, gw), (b, gb))):
                    grad = grad + weight_decay * p
                    bufs[k] = grad if bufs[k] is None else momentum * bufs[k] + grad
                    p -= lr.view(-1, *([1] * (p.dim() - 1))) * bufs[k]
            step += 1
    return w.detach(), b.detach()


def top_k(logits: Tensor, y: Tensor, k: int) -> float:
    """Top-``k`` accuracy in % of (N, C) ``logits`` (k capped at C), as the online probe's
    torchmetrics ``MulticlassAccuracy`` computes it."""
    from torchmetrics.functional.classification import multiclass_accuracy

    c = logits.shape[1]
    return float(multiclass_accuracy(logits, y, num_classes=c, top_k=min(k, c), average="micro") * 100)


def head_logits(x: Tensor, w: Tensor, b: Tensor) -> Tensor:
    """(H, N, C) logits of standardised features ``x`` (N, D) under heads (H, C, D), (H, C)."""
    return torch.einsum("nd,hcd->hnc", x, w) + b[:, None, :]
