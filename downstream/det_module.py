"""PASCAL VOC detection: torchvision's Faster R-CNN losses in training, VOC07 AP at IoU 0.5 in
validation (difficult boxes ignored, duplicates false positives)."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import torch
from torchvision.models.detection import FasterRCNN

from downstream.det_metrics import detection_aps
from downstream.detector import set_scales, to_float
from downstream.finetune import FinetuneModule
from pretext.nets import AlexNetCC


class Detector(FinetuneModule):
    def __init__(
        self,
        model: FasterRCNN,
        net: AlexNetCC,
        freeze: str = "conv2",
        lr: float = 0.001,
        momentum: float = 0.9,
        weight_decay: float = 5e-4,
        lr_step: int = 50000,
        lr_gamma: float = 0.1,
        num_classes: int = 21,
    ):
        super().__init__(net, freeze, lr, momentum, weight_decay, lr_step, lr_gamma)
        self.model, self.num_classes = model, num_classes
        self._reset()

    def _reset(self) -> None:
        self._dets: dict[int, list] = defaultdict(list)
        self._truths: dict[int, dict] = defaultdict(dict)

    def train_step(self, payload):
        images, targets = payload
        set_scales(self.model, training=True)
        losses = self.model(to_float(images), [{"boxes": t["boxes"], "labels": t["labels"]} for t in targets])
        loss = sum(losses.values())
        self.log_dict({f"train/{k}": v for k, v in losses.items()}, batch_size=len(images))
        self.log("train/loss", loss, prog_bar=True, batch_size=len(images))
        return loss

    @torch.no_grad()
    def predict(self, images):
        """Detections per image in its own pixel coordinates (torchvision maps them back)."""
        set_scales(self.model, training=False)
        return self.model(to_float(images))

    def val_step(self, payload) -> None:
        images, targets = payload
        for out, t in zip(self.predict(images), targets, strict=True):
            index = int(t["index"])
            for box, label, score in zip(out["boxes"].cpu().numpy(), out["labels"].tolist(),
                                         out["scores"].tolist(), strict=True):  # fmt: skip
                self._dets[label].append((index, score, box))
            boxes, labels, difficult = t["boxes"].cpu().numpy(), t["labels"].cpu().numpy(), t["difficult"].cpu().numpy()
            for c in np.unique(labels):
                self._truths[int(c)][index] = (boxes[labels == c], difficult[labels == c])

    def compute_scores(self) -> dict:
        aps = detection_aps(self._dets, self._truths, self.num_classes)
        self._reset()
        defined = ~np.isnan(aps["ap11"])
        final = {
            "mAP11": float(np.nanmean(aps["ap11"])) if defined.any() else float("nan"),
            "mAP_area": float(np.nanmean(aps["ap_area"])) if defined.any() else float("nan"),
            "classes_scored": int(defined.sum()),
            "ap11": aps["ap11"].tolist(),
        }
        if defined.any():
            self.log_dict({"val/mAP11": final["mAP11"], "val/mAP_area": final["mAP_area"]})
        return final

    def configure_optimizers(self):
        return self.sgd([{"params": [p for p in self.model.parameters() if p.requires_grad]}])
