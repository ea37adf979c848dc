"""What every pretext task's LightningModule shares, so that each task is a short subclass.

A task is built by ``pretext/train.py`` as ``instantiate(cfg.task, **Task.prepare(cfg, run_dir,
datamodule))``: the config names the class (``_target_``) and its options; ``prepare`` adds what
comes from the model and the data (the net, the gamut, the classes).

The base owns: batches as ``(payload, skipped)`` (the count is the SkippedImages callback's), the
empty-batch check, the encoder's input (L - 50, or RGB in [-1, 1]), the optimizer with the paper's
lr steps as fractions of the run, and the ``suite`` entry of every checkpoint that
``downstream/encoder.py`` reads (the method's name, its input and the full config).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig
from torch import Tensor, nn

from pretext.data import finish_on_device
from pretext.predict import encoder_input


def step_factor(milestones: Sequence[float], factors: Sequence[float], total: int) -> Callable[[int], float]:
    """The lr multiple at a step: ``factors[i]`` from step ``int(milestones[i] * total)`` on."""
    steps = [int(f * total) for f in milestones]

    def factor(step: int) -> float:
        value = 1.0
        for at, f in zip(steps, factors, strict=True):
            if step >= at:
                value = f
        return value

    return factor


def is_empty(payload) -> bool:
    """A batch whose every file was unreadable."""
    first = payload[0] if isinstance(payload, (tuple, list)) else payload
    return len(first) == 0


class PretextModule(L.LightningModule):
    """``name``: the method's name in checkpoints and results. ``optimizer``: a partial taking the
    parameters (Hydra ``_partial_: true``); its rate follows ``lr_milestones`` (fractions of the
    run's steps) and ``lr_factors`` (multiples of the base rate); ``lr_reference_batch``: when set,
    the rate is scaled by global batch / this. Subclasses implement :meth:`train_step` and
    :meth:`val_step` on the payload, and :meth:`prepare`."""

    def __init__(
        self,
        name: str,
        net: nn.Module,
        optimizer: Callable,
        lr_milestones: Sequence[float] = (),
        lr_factors: Sequence[float] = (),
        lr_reference_batch: int | None = None,
    ):
        super().__init__()
        if len(lr_milestones) != len(lr_factors):
            raise ValueError("lr_milestones and lr_factors must have the same length")
        self.name, self.net, self.optimizer_factory = name, net, optimizer
        self.lr_milestones, self.lr_factors = list(lr_milestones), list(lr_factors)
        self.lr_reference_batch = lr_reference_batch
        self.config: dict = {}  # the run's full config, set by pretext/train.py; saved in every checkpoint

    @classmethod
    def prepare(cls, cfg: DictConfig, run_dir: Path, datamodule) -> dict:
        """Constructor arguments that come from the model and the data: by default the net of
        ``cfg.model.net`` with one output channel."""
        return {"net": instantiate(cfg.model.net, out_channels=1)}

    # ----------------------------------------------------------------------------------- steps
    def encoder_input(self, rgb: Tensor, lab: Tensor | None = None) -> Tensor:
        """uint8 RGB -> what the encoder sees: L - 50 (1 channel) or RGB in [-1, 1] (3 channels)."""
        return encoder_input(rgb, self.net.in_channels, lab)

    def train_step(self, payload):
        raise NotImplementedError

    def val_step(self, payload, batch_idx: int) -> None:
        raise NotImplementedError

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        # data.decode=device: the workers sent file bytes; decode, resize and crop here, on this device
        return finish_on_device(batch, self.device)

    def training_step(self, batch, batch_idx: int):
        payload, _ = batch  # the skipped count is the SkippedImages callback's
        return None if is_empty(payload) else self.train_step(payload)

    def validation_step(self, batch, batch_idx: int) -> None:
        payload, _ = batch
        if not is_empty(payload):
            self.val_step(payload, batch_idx)

    def write_samples(self, datamodule, path: Path) -> Path | None:
        """Pictures of what the finished model does (a task without any returns None)."""
        return None

    # ------------------------------------------------------------------------------ optimizers
    def trainable_parameters(self):
        return self.net.parameters()

    def configure_optimizers(self):
        opt = self.optimizer_factory(self.trainable_parameters())
        if self.lr_reference_batch:
            global_batch = self.trainer.world_size * self.trainer.datamodule.batch_size
            for group in opt.param_groups:
                group["lr"] *= global_batch / self.lr_reference_batch
        total = max(1, int(self.trainer.estimated_stepping_batches))
        sched = torch.optim.lr_scheduler.LambdaLR(opt, step_factor(self.lr_milestones, self.lr_factors, total))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    # ------------------------------------------------------------------------------ checkpoints
    def checkpoint_meta(self) -> dict:
        """What a task adds to the checkpoint's ``suite`` entry (its protocol choices)."""
        return {}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["suite"] = {  # read by downstream/encoder.py
            "method": self.name,
            "input": "l" if self.net.in_channels == 1 else "rgb",
            "config": self.config,
            "precision": str(self._trainer.precision) if self._trainer is not None else None,  # as the run chose it
            "step": self.trainer_step(),  # as the step files are named
            "crops_seen": self.crops_seen(self.trainer_step()),  # the scale a result is at
            **self.checkpoint_meta(),
        }

    def trainer_step(self) -> int:
        return int(self._trainer.global_step) if self._trainer is not None else 0

    def crops_seen(self, step: int) -> int | None:
        """Training crops drawn up to ``step``: steps x the batch on each device x devices."""
        if self._trainer is None or self._trainer.datamodule is None:
            return None
        return step * int(self._trainer.datamodule.batch_size) * int(self._trainer.world_size)
