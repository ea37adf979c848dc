"""PASCAL VOC classification by fine-tuning: multi-label sigmoid cross-entropy with "difficult"
labels ignored, 10-crop test, 11-point and area AP per class."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from downstream.ap import class_aps
from downstream.evaluation import gather_rows
from downstream.finetune import FinetuneModule, run_blocks
from pretext.nets import AlexNetCC
from pretext.predict import encoder_input

HEAD_LAYERS = ("fc6", "fc7", "fc8")


class VocClassifier(FinetuneModule):
    """``net``: the encoder grown to fc7 (:func:`downstream.finetune.grow_to_fc7`); fc8 is a new
    linear layer on fc7's spatially averaged map. SGD (``lr``, ``momentum``, ``weight_decay``),
    ``head_lr_mult`` x lr for fc6-8, lr x ``lr_gamma`` every ``lr_step`` steps."""

    def __init__(
        self,
        net: AlexNetCC,
        num_classes: int = 20,
        freeze: str = "none",
        lr: float = 0.001,
        momentum: float = 0.9,
        weight_decay: float = 1e-6,
        head_lr_mult: float = 10.0,
        lr_step: int = 10000,
        lr_gamma: float = 0.5,
        dropout: float = 0.5,
    ):
        super().__init__(net, freeze, lr, momentum, weight_decay, lr_step, lr_gamma)
        self.net = net
        self.fc8 = nn.Linear(net.fc_width, num_classes)
        nn.init.normal_(self.fc8.weight, 0.0, 0.01)
        nn.init.zeros_(self.fc8.bias)
        self.head_lr_mult, self.dropout = head_lr_mult, dropout
        self._rows: list[Tensor] = []  # (scores | labels) per image, gathered from every rank at compute

    def forward(self, rgb: Tensor) -> Tensor:
        x = encoder_input(rgb, self.net.in_channels)
        fc7 = x
        for _, fc7 in run_blocks(self.net, x, self.dropout, self.training):  # noqa: B007 (the last output)
            pass
        return self.fc8(fc7.mean((2, 3)))

    def train_step(self, payload):
        rgb, labels = payload
        z = self(rgb)
        weight = (labels != 0).float()  # difficult: ignored
        loss = F.binary_cross_entropy_with_logits(z, (labels == 1).float(), weight=weight, reduction="sum")
        loss = loss / weight.sum().clamp_min(1)
        self.log("train/loss", loss, prog_bar=True, batch_size=len(rgb))
        return loss

    def val_step(self, payload) -> None:
        crops, labels = payload
        n, k = crops.shape[:2]
        z = self(crops.flatten(0, 1)).view(n, k, -1).mean(1)  # the crops' mean score
        self._rows.append(torch.cat([z.float(), labels.float()], 1).detach())

    def compute_scores(self) -> dict:
        k = self.fc8.out_features
        rows, self._rows = gather_rows(self._rows, 2 * k), []
        if not len(rows):
            return {}
        scores, labels = rows[:, :k], rows[:, k:]
        aps = class_aps(scores, labels)
        defined = ~np.isnan(aps["ap11"])
        final = {
            "mAP11": float(np.nanmean(aps["ap11"])) if defined.any() else float("nan"),
            "mAP_area": float(np.nanmean(aps["ap_area"])) if defined.any() else float("nan"),
            "classes_scored": int(defined.sum()),
            "ap11": aps["ap11"].tolist(),
            "ap_area": aps["ap_area"].tolist(),
        }
        if defined.any():
            self.log("val/mAP11", final["mAP11"])
            self.log("val/mAP_area", final["mAP_area"])
        return final

    def configure_optimizers(self):
        head, body = [], []
        for name, block in self.net.blocks.named_children():
            params = [p for p in block.parameters() if p.requires_grad]
            (head if name in HEAD_LAYERS else body).extend(params)
        head += list(self.fc8.parameters())
        groups = [{"params": body, "lr": self.opt["lr"]}] if body else []
        groups.append({"params": head, "lr": self.opt["lr"] * self.head_lr_mult})
        return self.sgd(groups)
