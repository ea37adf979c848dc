"""PASCAL VOC segmentation: an FCN trained with per-pixel cross-entropy (255 ignored), scored by a
confusion matrix at each image's own size."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from downstream.fcn import FCN
from downstream.finetune import FinetuneModule
from downstream.seg_metrics import IGNORE, SegmentationScores
from downstream.voc import RandomScaleCrop
from pretext.predict import encoder_input

HEAD = ("fc6", "fc7")


def pad_multiple(rgb: Tensor, multiple: int = 32) -> Tensor:
    """Pad (bottom, right) with the mean pixel to a multiple of ``multiple``: any image size works."""
    h, w = rgb.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if not ph and not pw:
        return rgb
    mean = torch.tensor(RandomScaleCrop.MEAN, dtype=rgb.dtype, device=rgb.device).view(1, 3, 1, 1)
    out = mean.expand(rgb.shape[0], 3, h + ph, w + pw).clone()
    out[..., :h, :w] = rgb
    return out


class Segmenter(FinetuneModule):
    def __init__(
        self,
        fcn: FCN,
        freeze: str = "none",
        lr: float = 1e-3,
        momentum: float = 0.9,
        weight_decay: float = 5e-4,
        head_lr_mult: float = 1.0,
        num_classes: int = 21,
    ):
        super().__init__(fcn.net, freeze, lr, momentum, weight_decay)
        self.fcn, self.num_classes, self.head_lr_mult = fcn, num_classes, head_lr_mult
        self.seg_scores = SegmentationScores(num_classes)

    def forward(self, rgb: Tensor) -> Tensor:
        """Scores (N, classes, H, W) at the size of ``rgb`` (uint8 (N, 3, H, W), any size)."""
        h, w = rgb.shape[-2:]
        padded = pad_multiple(rgb)
        return self.fcn(encoder_input(padded, self.fcn.net.in_channels))[..., :h, :w]

    def train_step(self, payload):
        rgb, mask = payload
        loss = F.cross_entropy(self(rgb), mask.long(), ignore_index=IGNORE)
        self.log("train/loss", loss, prog_bar=True, batch_size=len(rgb))
        return loss

    def val_step(self, payload) -> None:
        rgb, mask = payload
        for i in range(len(rgb)):  # each image at its own size (the loader gives lists of one)
            pred = self(rgb[i][None]).argmax(1)[0]
            self.seg_scores.update(pred, mask[i])

    def compute_scores(self) -> dict:
        s = self.seg_scores.compute()  # torchmetrics: reduced across ranks
        pixels = self.seg_scores.pixels
        if self.trainer.world_size > 1:
            pixels = int(self.trainer.strategy.reduce(torch.tensor(pixels, device=self.device), reduce_op="sum"))
        self.seg_scores.reset()
        self.log_dict({"val/mIoU": s["mIoU"], "val/pixel_acc": s["pixel_acc"]})
        return s | {"pixels": pixels}

    def configure_optimizers(self):
        head, body = [], []
        for name, block in self.fcn.net.blocks.named_children():
            params = [p for p in block.parameters() if p.requires_grad]
            (head if name in HEAD else body).extend(params)
        head += list(self.fcn.score.parameters()) + list(self.fcn.skips.parameters())
        groups = [{"params": body, "lr": self.opt["lr"]}] if body else []
        groups.append({"params": head, "lr": self.opt["lr"] * self.head_lr_mult})
        return self.sgd(groups)
