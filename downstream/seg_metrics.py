"""Segmentation scores (PASCAL VOC: 21 classes, label 255 ignored) with torchmetrics: per-class IoU
(NaN for a class absent from both truth and prediction, left out of the mean), mean IoU and pixel
accuracy, accumulated image by image at each image's own size and reduced across DDP ranks."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torchmetrics.classification import MulticlassAccuracy, MulticlassJaccardIndex

IGNORE = 255


class SegmentationScores(nn.Module):
    def __init__(self, num_classes: int = 21, ignore: int = IGNORE):
        super().__init__()
        self.iou = MulticlassJaccardIndex(num_classes, average="none", ignore_index=ignore, zero_division=float("nan"))
        self.acc = MulticlassAccuracy(num_classes, average="micro", ignore_index=ignore)
        self.ignore = ignore
        self.pixels = 0

    def update(self, pred: Tensor, truth: Tensor) -> None:
        """``pred``, ``truth``: label maps of one size (any shape); ``truth`` may hold ``ignore``."""
        self.iou.update(pred.flatten(), truth.flatten())
        self.acc.update(pred.flatten(), truth.flatten())
        self.pixels += int((truth != self.ignore).sum())

    def compute(self) -> dict:
        iou = self.iou.compute().double() * 100
        defined = ~torch.isnan(iou)
        return {
            "iou": iou.tolist(),
            "mIoU": float(iou[defined].mean()) if defined.any() else float("nan"),
            "pixel_acc": float(self.acc.compute()) * 100,
        }

    def reset(self) -> None:
        self.iou.reset()
        self.acc.reset()
        self.pixels = 0
