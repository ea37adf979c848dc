"""The colorization pretext as a LightningModule: thin glue around the pure colour and loss code.

Batches arrive as uint8 RGB crops; the Lab conversion, soft encoding and rebalancing run here, on
the training device. The gamut, prior and full config travel inside every checkpoint.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import DictConfig
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
from pretext.predict import predict_ab
from pretext.pretext_module import PretextModule

log = logging.getLogger(__name__)
LOSSES = ("full", "class", "l2")


class ColorizationModule(PretextModule):
    """``loss``: ``full`` (classification + rebalancing, lambda = 1/2), ``class`` (lambda = 1: no
    rebalancing), ``l2`` (regression on ab; fine-tune from a checkpoint with ``init_from``).
    ``k``, ``sigma``: the soft encoding; ``temperature``: the annealed mean of validation pictures
    and AuC. The optimizer and lr schedule are :class:`PretextModule`'s."""

    def __init__(
        self,
        name: str,
        net: nn.Module,
        gamut: Gamut,
        optimizer: Callable,
        loss: str = "full",
        lam: float = LAMBDA,
        k: int = 5,
        sigma: float = SIGMA,
        temperature: float = TEMPERATURE,
        init_from: str | None = None,
        lr_milestones: tuple[float, ...] = (),
        lr_factors: tuple[float, ...] = (),
        lr_reference_batch: int | None = None,
        sample_every_n_epochs: int = 1,
        samples_dir: str | None = None,
    ):
        super().__init__(name, net, optimizer, lr_milestones, lr_factors, lr_reference_batch)
        if loss not in LOSSES:
            raise ValueError(f"unknown loss {loss!r}; valid: {', '.join(LOSSES)}")
        if gamut.prior is None and loss == "full":
            raise ValueError("the full loss needs the gamut's prior: give color.stats=FILE from pretext/stats.py")
        if init_from:
            init_weights_from(net, init_from)  # a resumed run then loads its own weights over these
        self.gamut = gamut
        self.loss_name, self.lam, self.temperature = loss, (1.0 if loss == "class" else lam), temperature
        self.sample_every_n_epochs, self.samples_dir = sample_every_n_epochs, samples_dir
        self.encoder = SoftEncoder(gamut.centers, k=k, sigma=sigma)
        # The encoder's lookup tables are derived identically on every rank (and gloo cannot
        # broadcast their bool / int16 dtypes): DDP leaves them out of its start-up sync.
        self._ddp_params_and_buffers_to_ignore = [f"encoder.{name}" for name, _ in self.encoder.named_buffers()]
        prior = gamut.prior if gamut.prior is not None else torch.full((gamut.Q,), 1.0 / gamut.Q)
        self.register_buffer("bin_weights", rebalance_weights(prior, self.lam), persistent=False)
        self.val_auc = AuC(prior)
        self.val_auc_grey = AuC(prior)  # the Gray baseline (ab = 0) on the same pixels
        self._val_grid: Tensor | None = None

    @classmethod
    def prepare(cls, cfg: DictConfig, run_dir: Path, datamodule) -> dict:
        """The gamut (with its prior) and a net with one output per bin (2 for the L2 loss)."""
        gamut = load_gamut(cfg, run_dir, datamodule)
        net = instantiate(cfg.model.net, out_channels=2 if cfg.task.loss == "l2" else gamut.Q)
        if cfg.model.get("compile", False):
            net.compile()  # torch.compile in place: the state_dict keys stay those of the plain net
        return {"gamut": gamut, "net": net}

    # ----------------------------------------------------------------------------------- steps
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

    def _forward(self, rgb: Tensor) -> tuple[Tensor, Tensor, Tensor, dict[str, Tensor]]:
        lab = rgb_to_lab(rgb)
        out = self.net(self.encoder_input(rgb, lab))
        # targets point-sampled at the output resolution (no averaging)
        ab_t = F.interpolate(lab[:, 1:], size=out.shape[-2:], mode="nearest")
        return lab, out, ab_t, self._losses(out, ab_t)

    def train_step(self, rgb: Tensor):
        _, _, _, losses = self._forward(rgb)
        n = len(rgb)
        self.log("train/loss", losses["loss"], prog_bar=True, batch_size=n)
        self.log("train/loss_weighted", losses["loss_weighted"], batch_size=n)
        self.log("train/grey_fraction", losses["grey_fraction"], batch_size=n)
        return losses["loss_weighted"]

    def val_step(self, rgb: Tensor, batch_idx: int) -> None:
        lab, out, ab_t, losses = self._forward(rgb)
        n = len(rgb)
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

    def write_samples(self, datamodule, path: Path) -> Path:
        """Held-out photos (and a legacy grey one) as rows of grey input | colorized | original."""
        from torchvision.transforms.v2.functional import center_crop, resize

        from pretext.data import SAMPLE_GREY, sample_photo
        from pretext.images import read_rgb
        from pretext.predict import colorize, grey_rgb

        photos = list(datamodule.val_items[:4]) + [sample_photo(n) for n in SAMPLE_GREY]
        size = 256
        imgs = [center_crop(resize(read_rgb(p) if isinstance(p, Path) else p, size, antialias=True), size)
                for p in photos]  # fmt: skip
        rgb = torch.stack(imgs).to(self.device)
        self.eval()
        out = colorize(self.net, rgb, self.encoder.centers, self.temperature).float() / 255
        rows = torch.stack([grey_rgb(rgb), out, rgb.float() / 255], 1).flatten(0, 1)
        path.parent.mkdir(parents=True, exist_ok=True)
        save_image(make_grid(rows.cpu(), nrow=3, padding=4, pad_value=1.0), path)
        return path

    # ------------------------------------------------------------------------------ checkpoints
    def checkpoint_meta(self) -> dict:
        return {"loss": self.loss_name, "k": self.encoder.k}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["colorization"] = {  # read by pretext/checkpoint_files.py's load_colorizer
            "centers": self.gamut.centers.cpu(),
            "prior": None if self.gamut.prior is None else self.gamut.prior.cpu(),
            "gamut_source": self.gamut.source,
            "loss": self.loss_name,
            "temperature": self.temperature,
            "config": self.config,
        }

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        saved = checkpoint.get("colorization")
        if saved is not None and not torch.equal(saved["centers"], self.gamut.centers):
            raise ValueError("the checkpoint was trained on another gamut than this run's: use its color.stats")


def load_gamut(cfg: DictConfig, run_dir: Path, datamodule) -> Gamut:
    """The gamut and prior: ``color.stats`` is a file from pretext/stats.py or a shipped name
    (``imagenette_train``, the default); ``measure`` (or null): measured on the training data here."""
    from pretext import assets
    from pretext.ab_histogram import choose_gamut, dataset_grid_histogram

    if cfg.color.stats is not None and str(cfg.color.stats) != assets.MEASURE:
        if str(cfg.color.gamut) != "srgb":
            raise ValueError(f"color.gamut={cfg.color.gamut} applies to a measured prior: add color.stats=measure")
        path = assets.stats_file(cfg.color.stats)
        gamut = Gamut.from_file(path)
        if gamut.prior is None and cfg.task.loss == "full":
            raise ValueError(f"{path} has no prior: make one with pretext/stats.py")
        return gamut
    stats_file = run_dir / "color_stats.npz"
    if stats_file.is_file():  # a resumed run keeps the prior it started with
        return Gamut.from_file(stats_file)
    datamodule.setup("fit")
    items = datamodule.images[: cfg.color.prior_images]
    # The loader draws its base seed from torch's global generator: measuring must not move it, or the
    # net's initial weights would depend on whether a killed start had already saved the prior.
    with torch.random.fork_rng(devices=[]):
        counts, skipped = dataset_grid_histogram(items, num_workers=min(2, datamodule.num_workers))
    if items and len(skipped) == len(items):
        raise ValueError(f"none of the {len(items)} training images the prior is measured on could be read "
                         f"(e.g. {skipped[0]}): check the data folder")  # fmt: skip
    gamut, outside = choose_gamut(str(cfg.color.gamut), counts, cfg.color.sigma)
    gamut.save(stats_file, grid_counts=counts.numpy())
    log.info(
        "prior measured on %d training images (%d unreadable, %d pixels outside the gamut) -> %s; "
        "for the whole set run pretext/stats.py and pass color.stats=FILE",
        len(items) - len(skipped), len(skipped), outside, stats_file,
    )  # fmt: skip
    return gamut


def init_weights_from(net: nn.Module, ckpt: str) -> None:
    """Start from a checkpoint's weights (all layers whose shapes match: an L2 fine-tune keeps
    everything but the classifier)."""
    from pretext.checkpoint_files import read_checkpoint

    loaded = read_checkpoint(ckpt)
    if "state_dict" not in loaded:
        raise ValueError(f"task.init_from={ckpt} is not a pretext checkpoint (pretext/train.py writes them)")
    state, own = loaded["state_dict"], net.state_dict()
    taken = {
        k[len("net.") :]: v for k, v in state.items() if k.startswith("net.") and own.get(k[4:], v).shape == v.shape
    }
    missing = sorted(set(own) - set(taken))
    net.load_state_dict(taken, strict=False)
    log.info("initialised from %s; %d tensors kept at their init: %s", ckpt, len(missing), ", ".join(missing[:6]))
