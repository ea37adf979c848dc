"""The supervised ceiling: the same AlexNet encoder trained on class labels.

The net's fc8 is a 1x1 conv to the classes over the spatial map; its logits are averaged over
positions (global average pooling) into one prediction per image.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import DictConfig
from torch import Tensor
from torchmetrics.classification import MulticlassAccuracy

from pretext.context_module import input_channels
from pretext.nets import AlexNetCC
from pretext.pretext_module import PretextModule


class SupervisedModule(PretextModule):
    """``input``: ``rgb`` (the paper's supervised AlexNet) or ``l``; the optimizer and its lr steps
    are :class:`PretextModule`'s."""

    def __init__(
        self,
        name: str,
        net: AlexNetCC,
        optimizer: Callable,
        classes: Sequence[str],
        input: str = "rgb",
        loss: str = "cross_entropy",
        lr_milestones: Sequence[float] = (),
        lr_factors: Sequence[float] = (),
    ):
        super().__init__(name, net, optimizer, lr_milestones, lr_factors)
        if net.out_channels != len(classes):
            raise ValueError(f"the net has {net.out_channels} outputs for {len(classes)} classes")
        if net.in_channels != input_channels(input):
            raise ValueError(f"task.input={input} but the net takes {net.in_channels} channels")
        if loss != "cross_entropy":
            raise ValueError(f"task.loss={loss!r}: the supervised task's loss is cross_entropy")
        self.classes, self.input = list(classes), input
        self.top1 = MulticlassAccuracy(len(classes), top_k=1, average="micro")

    @classmethod
    def prepare(cls, cfg: DictConfig, run_dir: Path, datamodule) -> dict:
        """The classes of the labelled training data, and a net with one output per class."""
        datamodule.setup("fit")
        if not getattr(datamodule, "classes", None):
            raise ValueError(
                "task=supervised needs labelled data: data=labelled data.root=DIR (DIR/train/<class>/*, "
                "DIR/val/<class>/*) or data=imagenette_labelled"
            )
        classes = list(datamodule.classes)
        net = instantiate(cfg.model.net, out_channels=len(classes), in_channels=input_channels(cfg.task.input))
        return {"net": net, "classes": classes}

    def logits(self, rgb: Tensor) -> Tensor:
        return self.net(self.encoder_input(rgb)).mean((2, 3))

    def train_step(self, payload):
        rgb, y = payload
        loss = F.cross_entropy(self.logits(rgb), y)
        self.log("train/loss", loss, prog_bar=True, batch_size=len(rgb))
        return loss

    def val_step(self, payload, batch_idx: int) -> None:
        rgb, y = payload
        z = self.logits(rgb)
        self.top1.update(z, y)
        self.log("val/loss", F.cross_entropy(z, y), sync_dist=True, batch_size=len(rgb))

    def on_validation_epoch_end(self) -> None:
        self.log("val/top1", self.top1.compute() * 100, sync_dist=True)
        self.top1.reset()

    def checkpoint_meta(self) -> dict:
        return {"classes": self.classes}
