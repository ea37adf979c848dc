"""PASCAL VOC detection: torchvision's Faster R-CNN losses in training, VOC07 AP at IoU 0.5 in
validation (difficult boxes ignored, duplicates false positives)."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import torch
from torchvision.models.detection import FasterRCNN

from downstream.det_metrics import detection_aps
from downstream.detector import set_scales, to_float
from downstream.evaluation import gather_rows
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
        # rows gathered from every rank at compute (DDP): the AP covers the whole test set
        self._dets: list = []  # (class, image, score, x0, y0, x1, y1)
        self._truths: list = []  # (class, image, difficult, x0, y0, x1, y1)

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
            index = torch.full((len(out["boxes"]), 1), float(t["index"]), device=self.device)
            self._dets.append(torch.cat([out["labels"][:, None].float(), index, out["scores"][:, None].float(),
                                            out["boxes"].float()], 1))  # fmt: skip
            index = torch.full((len(t["boxes"]), 1), float(t["index"]), device=self.device)
            self._truths.append(torch.cat([t["labels"][:, None].float(), index, t["difficult"][:, None].float(),
                                              t["boxes"].float()], 1))  # fmt: skip

    def compute_scores(self) -> dict:
        dets, truths = defaultdict(list), defaultdict(dict)
        rows, self._dets = gather_rows(self._dets, 7), []
        for c, i, score, *box in rows:
            dets[int(c)].append((int(i), float(score), np.array(box)))
        rows, self._truths = gather_rows(self._truths, 7), []
        for c, i in {(int(r[0]), int(r[1])) for r in rows}:
            mine = rows[(rows[:, 0] == c) & (rows[:, 1] == i)]
            truths[c][i] = (mine[:, 3:7], mine[:, 2].astype(bool))
        aps = detection_aps(dets, truths, self.num_classes)
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
