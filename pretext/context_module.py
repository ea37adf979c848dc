"""Context Encoders as a pretext task: a thin LightningModule around pretext/context_encoder.py.

The encoder (``net``: AlexNetCC up to pool5) sees the crop with a hole filled with the mean pixel;
the decoder reconstructs the crop; the loss is 0.999 x masked L2 (4 px overlap band x10) + 0.001 x
adversarial (``loss=l2_adversarial``), or the masked L2 alone (``loss=l2``: the released feature-learning
model).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig
from torch import Tensor

from pretext.context_encoder import (
    MASKS,
    ContextDecoder,
    Discriminator,
    check_crop,
    discriminator_loss,
    generator_loss,
    loss_weights,
    make_mask,
    masked_l2,
)
from pretext.nets import AlexNetCC
from pretext.predict import L_CENTER
from pretext.pretext_module import PretextModule

INPUTS = ("rgb", "l")
LOSSES = ("l2_adversarial", "l2")


def input_channels(task_input: str) -> int:
    if task_input not in INPUTS:
        raise ValueError(f"task.input={task_input!r} is not an input; valid: {', '.join(INPUTS)}")
    return 3 if task_input == "rgb" else 1


class ContextEncoderModule(PretextModule):
    """``input``: ``rgb`` (the paper) or ``l``; ``mask``: one of ``MASKS`` covering
    ``mask_fraction`` of the crop; ``loss``: ``l2_adversarial`` (the paper) or ``l2`` (no
    discriminator). Generator and discriminator take the same ``optimizer`` at a constant rate."""

    def __init__(
        self,
        name: str,
        net: AlexNetCC,
        optimizer: Callable,
        crop: int,
        input: str = "rgb",
        mask: str = "central",
        mask_fraction: float = 0.25,
        loss: str = "l2_adversarial",
        mean_pixel: Sequence[float] = (0.485, 0.456, 0.406),
    ):
        super().__init__(name, net, optimizer)
        if loss not in LOSSES:
            raise ValueError(f"task.loss={loss!r} is not a Context Encoders loss; valid: {', '.join(LOSSES)}")
        if mask not in MASKS:
            raise ValueError(f"task.mask={mask!r} is not a mask kind; valid: {', '.join(MASKS)}")
        if net.in_channels != input_channels(input):
            raise ValueError(f"task.input={input} but the net takes {net.in_channels} channels")
        check_crop(crop, mask, mask_fraction)
        self.automatic_optimization = False
        self.crop, self.input = crop, input
        self.mask_kind, self.mask_fraction, self.l2_only = mask, mask_fraction, loss == "l2"
        with torch.no_grad():
            grid = net(torch.zeros(1, net.in_channels, crop, crop)).shape[-1]
        self.decoder = ContextDecoder(net.in_channels, grid)
        self.discriminator = None if self.l2_only else Discriminator(net.in_channels)
        self.register_buffer("mean_pixel", torch.tensor(mean_pixel).view(1, 3, 1, 1) * 255, persistent=False)

    @classmethod
    def prepare(cls, cfg: DictConfig, run_dir: Path, datamodule) -> dict:
        """The encoder up to pool5, on RGB or L as ``task.input`` says."""
        return {"net": instantiate(cfg.model.net, out_channels=1, in_channels=input_channels(cfg.task.input),
                                   last="pool5")}  # fmt: skip

    # -------------------------------------------------------------------------------- pieces
    def to_space(self, rgb: Tensor) -> Tensor:
        """uint8 / float 0..255 RGB -> the encoder's input space: RGB in [-1, 1], or L - 50."""
        return self.encoder_input(rgb)

    def target_of(self, x: Tensor) -> Tensor:
        return x if self.input == "rgb" else x / L_CENTER  # both in [-1, 1], as the tanh output

    def masks(self, n: int, train: bool) -> Tensor:
        kind = self.mask_kind if train else "central"  # validation: one fixed, comparable hole
        return make_mask(kind, n, self.crop, self.mask_fraction).to(self.device)

    def reconstruct(self, rgb: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """(prediction, target) in [-1, 1]: the hole filled with the mean pixel, encoded, decoded."""
        filled = torch.where(mask, self.mean_pixel, rgb.float())
        pred = self.decoder(self.net(self.to_space(filled)), rgb.shape[-1])
        return pred, self.target_of(self.to_space(rgb))

    def losses(self, rgb: Tensor, mask: Tensor) -> dict[str, Tensor]:
        pred, target = self.reconstruct(rgb, mask)
        l2 = masked_l2(pred, target, loss_weights(mask))
        composite = torch.where(mask, pred, target)
        fake = None if self.discriminator is None else self.discriminator(composite)
        return {"l2": l2, "g": generator_loss(l2, fake), "composite": composite, "target": target}

    # -------------------------------------------------------------------------------- steps
    def train_step(self, rgb: Tensor) -> None:
        opts = self.optimizers()
        opt_g, opt_d = opts if isinstance(opts, list) else (opts, None)
        out = self.losses(rgb, self.masks(len(rgb), train=True))
        opt_g.zero_grad(set_to_none=True)
        self.manual_backward(out["g"])
        opt_g.step()
        self.log_dict({"train/l2": out["l2"], "train/loss": out["g"]}, prog_bar=True, batch_size=len(rgb))
        if self.discriminator is not None:
            d = discriminator_loss(self.discriminator(out["target"]), self.discriminator(out["composite"].detach()))
            opt_d.zero_grad(set_to_none=True)
            self.manual_backward(d)
            # the wrapped optimizer's step() would advance global_step a second time per batch, so that
            # max_steps and checkpoint intervals counted half the batches: the raw torch step does not
            opt_d.optimizer.step()
            self.log("train/d_loss", d, batch_size=len(rgb))

    def val_step(self, rgb: Tensor, batch_idx: int) -> None:
        l2 = self.losses(rgb, self.masks(len(rgb), train=False))["l2"]
        self.log("val/l2", l2, sync_dist=True, batch_size=len(rgb))

    def configure_optimizers(self):
        opt_g = self.optimizer_factory(list(self.net.parameters()) + list(self.decoder.parameters()))
        if self.discriminator is None:
            return opt_g
        return [opt_g, self.optimizer_factory(self.discriminator.parameters())]

    def checkpoint_meta(self) -> dict:
        return {"mask": self.mask_kind, "loss": "l2" if self.l2_only else "l2_adversarial", "l2_only": self.l2_only}
