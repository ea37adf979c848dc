"""Fitting an evaluation's LightningModule the way every suite run is fitted: one run folder,
atomic checkpoints every few steps and on SIGTERM / SIGUSR1, ``resume=true`` to continue, wandb
(grouped by method and evaluation) and CSV logs, and a final evaluation of the finished model."""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)


def fit_evaluation(cfg, module, datamodule, method: str, evaluation: str):
    """(trainer, complete): ``complete`` is False when the run stopped before ``trainer.max_steps``
    (time limit, preemption); the module's ``final`` then holds nothing new."""
    import lightning as L
    from hydra.utils import instantiate
    from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint, RichProgressBar

    from pretext.checkpointing import AtomicCheckpointIO, PreemptionCheckpoint
    from pretext.train import last_checkpoint, trainer_kwargs

    run_dir = Path(cfg.run_dir)
    last = last_checkpoint(run_dir, cfg.resume)
    loggers = []
    for c in (cfg.logger or {}).values():
        extra = {"group": f"{method}/{evaluation}"} if str(c._target_).endswith("WandbLogger") else {}
        loggers.append(instantiate(c, **extra))
    callbacks = [
        ModelCheckpoint(dirpath=run_dir / "checkpoints", filename="step{step:07d}", auto_insert_metric_name=False,
                        every_n_train_steps=cfg.trainer.ckpt_every_n_steps, save_top_k=1, save_last=True),
        PreemptionCheckpoint(last),
        RichProgressBar(),
    ]  # fmt: skip
    if loggers:
        callbacks.append(LearningRateMonitor(logging_interval="step"))
    trainer = L.Trainer(
        default_root_dir=run_dir,
        logger=loggers or False,
        callbacks=callbacks,
        plugins=[AtomicCheckpointIO()],
        use_distributed_sampler=False,
        **trainer_kwargs(cfg.trainer),
    )
    trainer.fit(module, datamodule=datamodule, ckpt_path=str(last) if cfg.resume else None, weights_only=True)
    if trainer.global_step < int(cfg.trainer.max_steps):
        log.warning("stopped at step %d of %d: resume=true continues it", trainer.global_step, cfg.trainer.max_steps)
        return trainer, False
    if getattr(module, "final_step", -1) != trainer.global_step:  # the finished model, on all of val
        trainer.validate(module, datamodule=datamodule, verbose=False)
    return trainer, True
