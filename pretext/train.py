"""Train the colorization pretext.

    python pretext/train.py                                   # the paper's AlexNet on the sample photos
    python pretext/train.py data=folder data.root=/imagenet/train data.val_root=/imagenet/val trainer.gpus=8
    python pretext/train.py experiment=demo                   # what `make pretext` runs (CPU, minutes)
    python pretext/train.py ... resume=true                   # continue a killed or preempted run

Config: conf/pretext.yaml, composed from task / model / data / trainer / logger.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig, OmegaConf

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

log = logging.getLogger("pretext.train")


def trainer_kwargs(cfg: DictConfig, cuda_available: bool | None = None) -> dict:
    """Trainer arguments from the config, with old Lightning's ``gpus=N`` mapped to accelerator,
    devices and strategy (DDP for N > 1). Without GPUs, ``gpus`` falls back to CPU with a warning."""
    kw = OmegaConf.to_container(cfg, resolve=True)
    gpus = kw.pop("gpus", None)
    kw.pop("ckpt_every_n_steps", None)
    cuda_available = torch.cuda.is_available() if cuda_available is None else cuda_available
    if gpus is None:
        return kw
    if isinstance(gpus, bool) or not isinstance(gpus, int) or gpus < 0:
        raise ValueError(
            f"trainer.gpus={gpus!r} is not valid: give a number of GPUs (1, 2, ... per node) or 0 for CPU; "
            "or set trainer.devices and trainer.accelerator directly"
        )
    if gpus == 0:
        return {**kw, "accelerator": "cpu", "devices": 1}
    if not cuda_available:
        warnings.warn(f"trainer.gpus={gpus} but no GPU is available: training on the CPU", stacklevel=2)
        return {**kw, "accelerator": "cpu", "devices": 1, "strategy": "auto"}
    strategy = kw.get("strategy", "auto")
    if gpus > 1 and strategy == "auto":
        strategy = "ddp"
    return {**kw, "accelerator": "gpu", "devices": gpus, "strategy": strategy}


def load_gamut(cfg: DictConfig, run_dir: Path, datamodule) -> Gamut:
    """The gamut and prior: from ``color.stats``, else measured on the training data here."""
    if cfg.color.stats:
        gamut = Gamut.from_file(cfg.color.stats)
        if gamut.prior is None and cfg.task.loss == "full":
            raise ValueError(f"{cfg.color.stats} has no prior: make one with pretext/stats.py")
        return gamut
    stats_file = run_dir / "color_stats.npz"
    if stats_file.is_file():  # a resumed run keeps the prior it started with
        return Gamut.from_file(stats_file)
    datamodule.setup("fit")
    items = datamodule.images[: cfg.color.prior_images]
    counts, skipped = dataset_grid_histogram(items, num_workers=min(2, datamodule.num_workers))
    gamut, outside = choose_gamut(str(cfg.color.gamut), counts, cfg.color.sigma)
    gamut.save(stats_file, grid_counts=counts.numpy())
    log.info(
        "prior measured on %d training images (%d unreadable, %d pixels outside the gamut) -> %s; "
        "for the whole set run pretext/stats.py and pass color.stats=FILE",
        len(items) - len(skipped), len(skipped), outside, stats_file,
    )  # fmt: skip
    return gamut


def init_weights_from(net: torch.nn.Module, ckpt: str) -> None:
    """Start from a checkpoint's weights (all layers whose shapes match: an L2 fine-tune keeps
    everything but the classifier)."""
    state = torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]
    own = net.state_dict()
    taken = {
        k[len("net.") :]: v for k, v in state.items() if k.startswith("net.") and own.get(k[4:], v).shape == v.shape
    }
    missing = sorted(set(own) - set(taken))
    net.load_state_dict(taken, strict=False)
    log.info("initialised from %s; %d tensors kept at their init: %s", ckpt, len(missing), ", ".join(missing[:6]))


TASKS = ("colorization", "context_encoder", "supervised")


def last_checkpoint(run_dir: Path, resume: bool) -> Path:
    """``run_dir/checkpoints/last.ckpt``, checked against ``resume``: a run never overwrites another."""
    last = run_dir / "checkpoints" / "last.ckpt"
    if resume and not last.is_file():
        raise FileNotFoundError(f"resume=true but there is no {last}: check run_dir / run_name")
    if not resume and last.is_file():
        raise FileExistsError(f"{last} exists: pass resume=true to continue that run, or a new run_name")
    return last


def build_module(cfg: DictConfig, run_dir: Path, datamodule):
    """The pretext task's LightningModule (``task.name``), its encoder built from ``model.net``."""
    from hydra.utils import instantiate

    config = OmegaConf.to_container(cfg, resolve=True)
    if cfg.task.name == "colorization":
        gamut = load_gamut(cfg, run_dir, datamodule)
        out_channels = 2 if cfg.task.loss == "l2" else gamut.Q
        net = instantiate(cfg.model.net, out_channels=out_channels)
        if cfg.task.init_from and not cfg.resume:
            init_weights_from(net, cfg.task.init_from)
        return ColorizationModule(
            net=net,
            gamut=gamut,
            optimizer=instantiate(cfg.model.optimizer),
            loss=cfg.task.loss,
            lam=cfg.task.lam,
            k=cfg.color.k,
            sigma=cfg.color.sigma,
            temperature=cfg.task.temperature,
            lr_milestones=tuple(cfg.model.lr_milestones),
            lr_factors=tuple(cfg.model.lr_factors),
            lr_reference_batch=cfg.model.lr_reference_batch,
            sample_every_n_epochs=cfg.task.sample_every_n_epochs,
            samples_dir=str(run_dir / "samples"),
            config=config,
        )
    if cfg.task.name == "context_encoder":
        from pretext.context_module import INPUTS, ContextEncoderModule

        if cfg.task.input not in INPUTS:
            raise ValueError(f"task.input={cfg.task.input!r} is not an input; valid: {', '.join(INPUTS)}")
        in_channels = 3 if cfg.task.input == "rgb" else 1
        net = instantiate(cfg.model.net, out_channels=1, in_channels=in_channels, last="pool5")
        return ContextEncoderModule(
            net=net,
            optimizer=instantiate(cfg.task.optimizer),
            crop=cfg.model.crop,
            mask=cfg.task.mask,
            mask_fraction=cfg.task.mask_fraction,
            l2_only=cfg.task.l2_only,
            mean_pixel=tuple(cfg.task.mean_pixel),
            config=config,
        )
    if cfg.task.name == "supervised":
        from pretext.supervised_module import SupervisedModule

        datamodule.setup("fit")
        if not getattr(datamodule, "classes", None):
            raise ValueError(
                "task=supervised needs labelled data: data=labelled data.root=DIR (DIR/train/<class>/*, "
                "DIR/val/<class>/*) or data=imagenette_labelled"
            )
        if cfg.task.input not in ("rgb", "l"):
            raise ValueError(f"task.input={cfg.task.input!r} is not an input; valid: rgb, l")
        in_channels = 3 if cfg.task.input == "rgb" else 1
        net = instantiate(cfg.model.net, out_channels=len(datamodule.classes), in_channels=in_channels)
        return SupervisedModule(
            net=net,
            optimizer=instantiate(cfg.task.optimizer),
            classes=datamodule.classes,
            lr_milestones=tuple(cfg.task.lr_milestones),
            lr_factors=tuple(cfg.task.lr_factors),
            config=config,
        )
    raise ValueError(f"task={cfg.task.name!r} is not a pretext task; valid: {', '.join(TASKS)}")


def train(cfg: DictConfig) -> dict:
    import lightning as L
    from hydra.utils import instantiate
    from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint, RichProgressBar

    os.environ.setdefault("WANDB_MODE", "offline")
    run_dir = Path(cfg.run_dir)
    last = last_checkpoint(run_dir, cfg.resume)
    kw = trainer_kwargs(cfg.trainer)
    L.seed_everything(cfg.seed, workers=True, verbose=False)

    datamodule = instantiate(cfg.data)
    module = build_module(cfg, run_dir, datamodule)
    loggers = [instantiate(c) for c in cfg.logger.values()] if cfg.logger else False
    callbacks = [
        ModelCheckpoint(
            dirpath=run_dir / "checkpoints",
            filename="step{step:07d}",
            auto_insert_metric_name=False,
            every_n_train_steps=cfg.trainer.ckpt_every_n_steps,
            save_top_k=-1,
            save_last=True,
        ),
        PreemptionCheckpoint(last),
        RichProgressBar(),
    ]
    if loggers:
        callbacks.append(LearningRateMonitor(logging_interval="step"))
    trainer = L.Trainer(
        default_root_dir=run_dir,
        logger=loggers,
        callbacks=callbacks,
        plugins=[AtomicCheckpointIO()],
        use_distributed_sampler=False,  # the ResumableSampler shards by rank itself
        **kw,
    )
    trainer.fit(module, datamodule=datamodule, ckpt_path=str(last) if cfg.resume else None, weights_only=True)
    result = {
        "run_dir": str(run_dir.resolve()),
        "last_checkpoint": str(last.resolve()) if last.is_file() else None,
        "global_step": trainer.global_step,
        "skipped_images": int(module.skipped),
        "metrics": {k: float(v) for k, v in trainer.callback_metrics.items()},
    }
    if trainer.is_global_zero:
        if cfg.samples and cfg.task.name == "colorization":
            result["samples"] = str(write_samples(module, datamodule, run_dir / "samples.png"))
        log.info("skipped %d unreadable images", result["skipped_images"])
        log.info("checkpoint: %s", result["last_checkpoint"])
        if "samples" in result:
            log.info("colorized held-out photos: %s", result["samples"])
    return result


def write_samples(module, datamodule, path: Path) -> Path:
    """Held-out photos (and a legacy grey one) as rows of grey input | colorized | original."""
    from torchvision.transforms.v2.functional import center_crop, resize
    from torchvision.utils import make_grid, save_image

    from pretext.data import SAMPLE_GREY, sample_photo
    from pretext.predict import colorize, grey_rgb

    photos = list(datamodule.val_items[:4]) + [sample_photo(n) for n in SAMPLE_GREY]
    size = 256
    imgs = [center_crop(resize(read_rgb(p) if isinstance(p, Path) else p, size, antialias=True), size) for p in photos]
    rgb = torch.stack(imgs).to(module.device)
    module.eval()
    out = colorize(module.net, rgb, module.encoder.centers, module.temperature).float() / 255
    rows = torch.stack([grey_rgb(rgb), out, rgb.float() / 255], 1).flatten(0, 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_image(make_grid(rows.cpu(), nrow=3, padding=4, pad_value=1.0), path)
    return path


@hydra.main(config_path="../conf", config_name="pretext", version_base="1.3")
def main(cfg: DictConfig) -> None:
    result = train(cfg)
    print(f"run directory: {result['run_dir']}")
    print(f"checkpoint:    {result['last_checkpoint']}")
    if "samples" in result:
        print(f"samples:       {result['samples']}")


from pretext.checkpointing import AtomicCheckpointIO, PreemptionCheckpoint  # noqa: E402
from pretext.color import Gamut  # noqa: E402
from pretext.images import read_rgb  # noqa: E402
from pretext.module import ColorizationModule  # noqa: E402
from pretext.stats import choose_gamut, dataset_grid_histogram  # noqa: E402

if __name__ == "__main__":
    main()
