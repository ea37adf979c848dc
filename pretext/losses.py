"""The pretext's losses as pure functions of tensors (SPEC.md: Class rebalancing, Loss variants)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def soft_cross_entropy(logits: Tensor, idx: Tensor, weights: Tensor) -> Tensor:
    """Per-pixel cross entropy against a sparse soft target: -sum_k w_k log softmax(logits)[idx_k].

    logits (N, Q, H, W); idx, weights (N, k, H, W) from :class:`pretext.color.SoftEncoder`.
    Returns (N, H, W). Only the k target log-probabilities are gathered: no dense target.
    """
    # at least fp32: CPU autocast would keep bf16 logits in bf16 (log-probs 0.03 apart near -6)
    logp = F.log_softmax(logits, dim=1, dtype=torch.promote_types(logits.dtype, torch.float32))
    return -(logp.gather(1, idx) * weights).sum(1)


def pixel_weights(nearest: Tensor, bin_weights: Tensor, nongrey: Tensor) -> Tensor:
    """The weight of each pixel: the rebalancing weight of the bin nearest its true colour, and 0
    for every pixel of a grey image. nearest (N, H, W), bin_weights (Q,), nongrey (N,) -> (N, H, W)."""
    return bin_weights[nearest] * nongrey.to(bin_weights.dtype)[:, None, None]


def l2_ab(pred_ab: Tensor, true_ab: Tensor) -> Tensor:
    """Per-pixel regression loss 1/2 ||ab - ab_hat||^2, (N, 2, H, W) -> (N, H, W)."""
    return 0.5 * (pred_ab - true_ab).square().sum(1)


def plain_and_weighted(per_pixel: Tensor, weights: Tensor) -> tuple[Tensor, Tensor]:
    """The plain mean (the loss the released code reports) and the weighted mean over all pixels
    (the one whose gradient trains: rebalancing scales the gradient, as in the released code)."""
    return per_pixel.mean(), (per_pixel * weights).mean()
