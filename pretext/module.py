"""The colorization pretext as a LightningModule: thin glue around the pure colour and loss code.

Batches arrive as uint8 RGB crops; the Lab conversion, soft encoding and rebalancing run here, on
the training device. The gamut, prior and full config travel inside every checkpoint.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.utils import make_grid, save_image

from pretext.color import (
    LAMBDA,
    SIGMA,
    TEMPERATURE,
    Gamut,
    SoftEncoder,
    lab_to_rgb,
    nongrey_mask,
    rebalance_weights,
    rgb_to_lab,
)
from pretext.losses import l2_ab, pixel_weights, plain_and_weighted, soft_cross_entropy
from pretext.metrics import AuC
from pretext.predict import net_input, predict_ab

log = logging.getLogger(__name__)
LOSSES = ("full", "class", "l2")


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


class ColorizationModule(L.LightningModule):
    """``loss``: ``full`` (classification + rebalancing, lambda = 1/2), ``class`` (lambda = 1: no
    rebalancing), ``l2`` (regression on ab; fine-tune from a checkpoint with ``init_from``).

    ``optimizer``: a partial taking the parameters (Hydra ``_partial_: true``). The learning rate
    follows ``lr_milestones`` (fractions of the run's steps) and ``lr_factors`` (multiples of the
    base rate), the paper's steps scaled to any run length. ``lr_reference_batch``: when set, the
    rate is scaled by global batch / this.
    """

    def __init__(
        self,
        net: nn.Module,
        gamut: Gamut,
        optimizer: Callable,
        loss: str = "full",
        lam: float = LAMBDA,
        k: int = 5,
        sigma: float = SIGMA,
        temperature: float = TEMPERATURE,
        lr_milestones: tuple[float, ...] = (),
        lr_factors: tuple[float, ...] = (),
        lr_reference_batch: int | None = None,
        sample_every_n_epochs: int = 1,
        samples_dir: str | None = None,
        config: dict | None = None,
    ):
        super().__init__()
        if loss not in LOSSES:
            raise ValueError(f"unknown loss {loss!r}; valid: {', '.join(LOSSES)}")
        if gamut.prior is None and loss == "full":
            raise ValueError("the full loss needs the gamut's prior: give color.stats=FILE from pretext/stats.py")
        if len(lr_milestones) != len(lr_factors):
            raise ValueError("lr_milestones and lr_factors must have the same length")
        self.net, self.gamut, self.optimizer_factory = net, gamut, optimizer
        self.loss_name, self.lam, self.temperature = loss, (1.0 if loss == "class" else lam), temperature
        self.lr_milestones, self.lr_factors, self.lr_reference_batch = (
            list(lr_milestones),
            list(lr_factors),
            lr_reference_batch,
        )
        self.sample_every_n_epochs, self.samples_dir = sample_every_n_epochs, samples_dir
        self.config = config or {}
        self.encoder = SoftEncoder(gamut.centers, k=k, sigma=sigma)
        # The encoder's lookup tables are derived identically on every rank (and gloo cannot
        # broadcast their bool / int16 dtypes): DDP leaves them out of its start-up sync.
        self._ddp_params_and_buffers_to_ignore = [f"encoder.{name}" for name, _ in self.encoder.named_buffers()]
        prior = gamut.prior if gamut.prior is not None else torch.full((gamut.Q,), 1.0 / gamut.Q)
        self.register_buffer("bin_weights", rebalance_weights(prior, self.lam), persistent=False)
        self.register_buffer("skipped", torch.zeros((), dtype=torch.long), persistent=False)
        self.val_auc = AuC(prior)
        self.val_auc_grey = AuC(prior)  # the Gray baseline (ab = 0) on the same pixels
        self._val_grid: Tensor | None = None

    # ----------------------------------------------------------------------------------- steps
    def _targets(self, rgb: Tensor) -> tuple[Tensor, Tensor]:
        lab = rgb_to_lab(rgb)
        return lab, net_input(lab, self.net.in_channels, rgb)

    def _losses(self, out: Tensor, ab_t: Tensor) -> dict[str, Tensor]:
        nongrey = nongrey_mask(ab_t)
        if self.loss_name == "l2":
            per_pixel = l2_ab(out, ab_t)
            weights = nongrey.to(per_pixel.dtype)[:, None, None].expand_as(per_pixel)
            nearest = None
        else:
            idx, w, nearest = self.encoder(ab_t)
            per_pixel = soft_cross_entropy(out, idx, w)
            weights = pixel_weights(nearest, self.bin_weights, nongrey)
        plain, weighted = plain_and_weighted(per_pixel, weights)
        return {
            "loss": plain,
            "loss_weighted": weighted,
            "grey_fraction": 1 - nongrey.float().mean(),
            "nearest": nearest,
        }

    def _forward_batch(self, batch) -> tuple[Tensor, Tensor, Tensor, dict[str, Tensor]] | None:
        rgb, _ = batch
        if rgb.shape[0] == 0:
            return None
        lab, x = self._targets(rgb)
        out = self.net(x)
        # targets point-sampled at the output resolution (no averaging)
        ab_t = F.interpolate(lab[:, 1:], size=out.shape[-2:], mode="nearest")
        return lab, out, ab_t, self._losses(out, ab_t)

    def training_step(self, batch, batch_idx: int):
        self.skipped += batch[1].to(self.skipped.device)  # unreadable training files (this rank)
        res = self._forward_batch(batch)
        self.log("train/skipped_images", self.skipped.float(), reduce_fx="max", sync_dist=False)
        if res is None:
            return None
        _, _, _, losses = res
        n = batch[0].shape[0]
        self.log("train/loss", losses["loss"], prog_bar=True, batch_size=n)
        self.log("train/loss_weighted", losses["loss_weighted"], batch_size=n)
        self.log("train/grey_fraction", losses["grey_fraction"], batch_size=n)
        return losses["loss_weighted"]

    def validation_step(self, batch, batch_idx: int) -> None:
        res = self._forward_batch(batch)
        if res is None:
            return
        lab, out, ab_t, losses = res
        n = batch[0].shape[0]
        self.log("val/loss", losses["loss"], batch_size=n, sync_dist=True)
        self.log("val/loss_weighted", losses["loss_weighted"], batch_size=n, sync_dist=True)
        pred = predict_ab(out, self.encoder.centers, self.temperature)
        nearest = losses["nearest"]
        if nearest is None:
            _, _, nearest = self.encoder(ab_t)
        self.val_auc.update(pred, ab_t, nearest)
        self.val_auc_grey.update(torch.zeros_like(ab_t), ab_t, nearest)
        if batch_idx == 0:
            self._val_grid = self._grid(lab[:8], pred[:8])

    def on_validation_epoch_end(self) -> None:
        for metric, suffix in ((self.val_auc, ""), (self.val_auc_grey, "_grey")):
            for name, value in metric.compute().items():
                self.log(f"val/{name}{suffix}", value, sync_dist=False)
            metric.reset()
        if self._val_grid is not None and self.trainer.is_global_zero and not self.trainer.sanity_checking:
            if self.current_epoch % self.sample_every_n_epochs == 0:
                self._save_grid(self._val_grid)
        self._val_grid = None

    def _grid(self, lab: Tensor, pred_ab: Tensor) -> Tensor:
        """Rows of grey input | prediction | truth."""
        ab = F.interpolate(pred_ab.float(), size=lab.shape[-2:], mode="bilinear", align_corners=False)
        grey = lab_to_rgb(torch.cat([lab[:, :1], torch.zeros_like(ab)], 1))
        pred = lab_to_rgb(torch.cat([lab[:, :1], ab], 1))
        truth = lab_to_rgb(lab)
        rows = torch.stack([grey, pred, truth], 1).flatten(0, 1)
        return make_grid(rows.cpu(), nrow=3, padding=2)

    def _save_grid(self, grid: Tensor) -> None:
        if self.samples_dir:
            path = Path(self.samples_dir) / f"val_epoch{self.current_epoch:04d}_step{self.global_step:07d}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            save_image(grid, path)
        for logger in self.loggers:
            if hasattr(logger, "log_image"):
                logger.log_image("val/colorizations", [grid], step=self.global_step)

    # ------------------------------------------------------------------------------ optimizers
    def configure_optimizers(self):
        opt = self.optimizer_factory(self.net.parameters())
        if self.lr_reference_batch:
            global_batch = self.trainer.world_size * self.trainer.datamodule.batch_size
            for group in opt.param_groups:
                group["lr"] *= global_batch / self.lr_reference_batch
        total = max(1, int(self.trainer.estimated_stepping_batches))
        sched = torch.optim.lr_scheduler.LambdaLR(opt, step_factor(self.lr_milestones, self.lr_factors, total))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    # ------------------------------------------------------------------------------ checkpoints
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["suite"] = {"method": "colorization"}  # read by downstream/encoder.py
        checkpoint["colorization"] = {
            "centers": self.gamut.centers.cpu(),
            "prior": None if self.gamut.prior is None else self.gamut.prior.cpu(),
            "gamut_source": self.gamut.source,
            "loss": self.loss_name,
            "temperature": self.temperature,
            "skipped_images": int(self.skipped),
            "config": self.config,
        }

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        saved = checkpoint.get("colorization")
        if saved is not None:
            if not torch.equal(saved["centers"], self.gamut.centers):
                raise ValueError("the checkpoint was trained on another gamut than this run's: use its color.stats")
            self.skipped.fill_(int(saved.get("skipped_images", 0)))
