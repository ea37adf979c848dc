"""Colorization quality (SPEC.md: Colorization quality): ab error and the AuC of the cumulative
accuracy curve over thresholds 0..150, plain and class-rebalanced. Pure functions plus one
torchmetrics accumulator that streams over a dataset (and sums across DDP ranks)."""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics import Metric

MAX_THRESHOLD = 150  # thresholds t = 0, 1, ..., 150 in ab units


def ab_error(pred_ab: Tensor, true_ab: Tensor) -> Tensor:
    """Per-pixel L2 distance in ab, (N, 2, H, W) -> (N, H, W)."""
    return (pred_ab - true_ab).square().sum(1).sqrt()


def inverse_prior_weights(nearest: Tensor, prior: Tensor) -> Tensor:
    """Rebalanced-metric pixel weights: the pure inverse prior of each pixel's true bin (no uniform
    mix; SPEC.md). Bins with zero prior get weight 0."""
    inv = torch.where(prior > 0, 1.0 / prior.clamp_min(1e-30), torch.zeros_like(prior))
    return inv[nearest]


def error_histogram(err: Tensor, weights: Tensor | None = None) -> Tensor:
    """Weighted counts of pixels by the smallest integer threshold they are within, ceil(err),
    in 0..150 plus one bin for anything beyond: (152,)."""
    bucket = torch.ceil(err).clamp_(max=MAX_THRESHOLD + 1).long().reshape(-1)
    w = None if weights is None else weights.reshape(-1).to(torch.float64)
    return torch.bincount(bucket, weights=w, minlength=MAX_THRESHOLD + 2).to(torch.float64)


def auc_from_histogram(hist: Tensor) -> Tensor:
    """AuC in percent: the mean over t = 0..150 of the fraction of pixels within t."""
    cumulative = hist.cumsum(0)[: MAX_THRESHOLD + 1] / hist.sum().clamp_min(1e-30)
    return 100.0 * cumulative.mean()


def auc(err: Tensor, weights: Tensor | None = None) -> Tensor:
    """AuC (%) of one batch of per-pixel errors, optionally weighted."""
    return auc_from_histogram(error_histogram(err, weights))


class AuC(Metric):
    """Streaming AuC, plain and rebalanced: ``update(pred_ab, true_ab, nearest)``."""

    full_state_update = False

    def __init__(self, prior: Tensor | None = None, **kwargs):
        super().__init__(**kwargs)
        self.add_state("hist", default=torch.zeros(MAX_THRESHOLD + 2, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("hist_rebal", default=torch.zeros(MAX_THRESHOLD + 2, dtype=torch.float64), dist_reduce_fx="sum")
        self.prior = prior

    def update(self, pred_ab: Tensor, true_ab: Tensor, nearest: Tensor | None = None) -> None:
        err = ab_error(pred_ab, true_ab)
        self.hist += error_histogram(err)
        if self.prior is not None and nearest is not None:
            w = inverse_prior_weights(nearest, self.prior.to(err.device))
            self.hist_rebal += error_histogram(err, w)

    def compute(self) -> dict[str, Tensor]:
        out = {"auc": auc_from_histogram(self.hist)}
        if self.hist_rebal.sum() > 0:
            out["auc_rebal"] = auc_from_histogram(self.hist_rebal)
        return out
