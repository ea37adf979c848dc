"""Segmentation scores from a confusion matrix (PASCAL VOC: 21 classes, label 255 ignored). Pure."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

IGNORE = 255


def confusion_matrix(pred: Tensor, truth: Tensor, num_classes: int = 21, ignore: int = IGNORE) -> Tensor:
    """(C, C) int64 counts, rows = truth, columns = prediction; pixels labelled ``ignore`` never count."""
    keep = truth != ignore
    t, p = truth[keep].long(), pred[keep].long()
    return torch.bincount(t * num_classes + p, minlength=num_classes**2).view(num_classes, num_classes)


def scores(conf: np.ndarray | Tensor) -> dict:
    """Per-class IoU (NaN for a class absent from both truth and prediction), mean IoU over the
    classes that are defined, pixel accuracy."""
    conf = np.asarray(conf, dtype=np.float64)
    tp = np.diag(conf)
    union = conf.sum(0) + conf.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, tp / union, np.nan)
    total = conf.sum()
    return {
        "iou": iou * 100,
        "mIoU": float(np.nanmean(iou) * 100) if np.any(union > 0) else float("nan"),
        "pixel_acc": float(tp.sum() / total * 100) if total else float("nan"),
    }
