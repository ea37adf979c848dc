"""The supervised ceiling: the same AlexNet encoder trained on class labels.

The net's fc8 is a 1x1 conv to the classes over the spatial map; its logits are averaged over
positions (global average pooling) into one prediction per image.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor
from torchmetrics.classification import MulticlassAccuracy

from pretext.color import rgb_to_lab
from pretext.module import step_factor
from pretext.nets import AlexNetCC
from pretext.predict import net_input


class SupervisedModule(L.LightningModule):
    def __init__(
        self,
        net: AlexNetCC,
        optimizer: Callable,
        classes: Sequence[str],
        lr_milestones: Sequence[float] = (),
        lr_factors: Sequence[float] = (),
        config: dict | None = None,
    ):
        super().__init__()
        if net.out_channels != len(classes):
            raise ValueError(f"the net has {net.out_channels} outputs for {len(classes)} classes")
        self.net, self.optimizer_factory, self.classes = net, optimizer, list(classes)
        self.lr_milestones, self.lr_factors = list(lr_milestones), list(lr_factors)
        self.top1 = MulticlassAccuracy(len(classes), top_k=1, average="micro")
        self.register_buffer("skipped", torch.zeros((), dtype=torch.long), persistent=False)
        self.config = config or {}

    def logits(self, rgb: Tensor) -> Tensor:
        return self.net(net_input(rgb_to_lab(rgb), self.net.in_channels, rgb)).mean((2, 3))

    def training_step(self, batch, batch_idx: int):
        (rgb, y), skipped = batch
        self.skipped += skipped.to(self.skipped.device)
        if len(rgb) == 0:
            return None
        loss = F.cross_entropy(self.logits(rgb), y)
        self.log("train/loss", loss, prog_bar=True, batch_size=len(rgb))
        return loss

    def validation_step(self, batch, batch_idx: int) -> None:
        (rgb, y), _ = batch
        if len(rgb):
            z = self.logits(rgb)
            self.top1.update(z, y)
            self.log("val/loss", F.cross_entropy(z, y), sync_dist=True, batch_size=len(rgb))

    def on_validation_epoch_end(self) -> None:
        self.log("val/top1", self.top1.compute() * 100, sync_dist=True)
        self.top1.reset()

    def configure_optimizers(self):
        opt = self.optimizer_factory(self.net.parameters())
        total = max(1, int(self.trainer.estimated_stepping_batches))
        sched = torch.optim.lr_scheduler.LambdaLR(opt, step_factor(self.lr_milestones, self.lr_factors, total))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["suite"] = {"method": "supervised", "classes": self.classes, "config": self.config}
