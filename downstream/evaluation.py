"""What every evaluation shares: its LightningModule's base and the one way an evaluation runs.

An evaluation is a subclass of :class:`Evaluation` (how to build its module from a config and which
records its scores make) and a config ``conf/<name>.yaml``; :func:`run` does the rest for all of
them: the encoder loaded, the run folder named, the module fitted by ``pretext/run.py`` (resume,
checkpoints, stop on a signal), the finished model validated, records written to the store.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import lightning as L
import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig
from torch import Tensor

from downstream.results import Record, write_records
from pretext.cli import removed_on_mistake
from pretext.console import expect_frozen_modules
from pretext.encoders import EncoderInfo, load_encoder
from pretext.pretext_module import is_empty
from pretext.run import SKIPPED_NAMED, fit, skipped_line

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Scores:
    """What a module's last full validation measured, and at which step."""

    step: int
    values: dict


class EvaluationModule(L.LightningModule):
    """Base of the evaluation modules. Batches are ``(payload, skipped)`` (the count is the
    SkippedImages callback's); an empty payload is skipped here. Subclasses implement
    :meth:`train_step`, :meth:`val_step` and :meth:`compute_scores` (which may log); the scores of
    the last validation are kept as :attr:`scores`."""

    def __init__(self):
        super().__init__()
        self.scores: Scores | None = None

    def train_step(self, payload):
        raise NotImplementedError

    def val_step(self, payload) -> None:
        raise NotImplementedError

    def compute_scores(self) -> dict:
        """The scores over everything :meth:`val_step` saw since the last call (then reset)."""
        raise NotImplementedError

    def training_step(self, batch, batch_idx: int):
        payload, _ = batch
        return None if is_empty(payload) else self.train_step(payload)

    def validation_step(self, batch, batch_idx: int) -> None:
        payload, _ = batch
        if not is_empty(payload):
            self.val_step(payload)

    def on_validation_epoch_end(self) -> None:
        self.scores = Scores(self.global_step, self.compute_scores())


def gather_rows(rows: list[Tensor], width: int) -> np.ndarray:
    """This rank's score rows (tensors of ``width`` columns) concatenated with every other rank's
    (DDP): an AP over the whole validation set, whatever the ranks held (none included)."""
    local = torch.cat(rows).float().cpu().numpy() if rows else np.zeros((0, width), np.float32)
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return local
    every: list = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(every, local)
    return np.concatenate(every)


@dataclass
class Outcome:
    """How an evaluation run ended: its records when complete; else why it stopped (a signal, a
    time limit), so that the same command continues it with ``resume=true``."""

    records: list[Record]
    run_dir: Path
    step: int
    stopped: str | None = None
    scores: dict = field(default_factory=dict)
    files: dict = field(default_factory=dict)  # pictures and other outputs, by name
    summary: str = ""  # one line for the console

    def print(self) -> None:
        """What an entry point prints at the end: the scores, or how to continue a stopped run."""
        if not self.complete:
            print(f"stopped ({self.stopped}) at step {self.step}: the same command with resume=true continues it")
            return
        print(self.summary)
        for name, path in self.files.items():
            print(f"{name}: {path}")

    @property
    def complete(self) -> bool:
        return self.stopped is None


class Evaluation:
    """One evaluation. ``name``: its name in records and logs."""

    name: str = ""

    def load(self, cfg: DictConfig):
        """The encoder and anything derived from it (checks first, before anything loads)."""
        return load_encoder(cfg.ckpt, cfg.init, cfg.init_channels, cfg.seed, cfg.get("init_data"))

    def run_name(self, cfg: DictConfig, info: EncoderInfo, loaded) -> str:
        raise NotImplementedError

    def build(self, cfg: DictConfig, loaded, datamodule) -> EvaluationModule:
        raise NotImplementedError

    def records(self, cfg: DictConfig, info: EncoderInfo, loaded, scores: dict, step: int, datamodule) -> list[Record]:
        raise NotImplementedError

    def finish(self, cfg: DictConfig, module, datamodule) -> dict:
        """Outputs beside the records, on rank zero (pictures): {name: path}."""
        return {}

    def summary(self, info: EncoderInfo, scores: dict) -> str:
        return ""


def log_results(trainer: L.Trainer, records: list[Record]) -> None:
    """The final scores in every logger (``final/<layer>/<metric>``: wandb keeps them in the run's
    summary), and as one wandb Table of (layer, metric, value) that dashboards read."""
    final = {f"final/{r.layer}/{r.metric}": r.value for r in records}
    for logger in trainer.loggers:
        logger.log_metrics(final, step=trainer.global_step)
        logger.save()  # after fit: written now, not at a finalize that has passed
        if hasattr(logger, "log_table"):
            logger.log_table("results", columns=["layer", "metric", "value"],
                             data=[[r.layer, r.metric, r.value] for r in records])  # fmt: skip


def run(evaluation: Evaluation, cfg: DictConfig) -> Outcome:
    """Fit and score ``evaluation`` as ``cfg`` says; its records go to ``cfg.results`` (null: none)."""
    os.environ.setdefault("WANDB_MODE", "offline")
    expect_frozen_modules()
    loaded = evaluation.load(cfg)
    info: EncoderInfo = loaded[1]
    if cfg.run_name is None:
        cfg.run_name = f"{info.method}-{info.digest}_{evaluation.run_name(cfg, info, loaded)}"
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    with removed_on_mistake(cfg.run_dir):
        datamodule = instantiate(cfg.data)
        module = evaluation.build(cfg, loaded, datamodule)
        fitted = fit(cfg, module, datamodule, group=cfg.label or info.method, job_type=evaluation.name)
    trainer, run_dir = fitted.trainer, Path(cfg.run_dir)
    if not fitted.complete:
        return Outcome([], run_dir, trainer.global_step, stopped=fitted.stopped_by or "before its last step")
    if module.scores is None or module.scores.step != trainer.global_step:  # the finished model, on all of val
        trainer.validate(module, datamodule=datamodule, verbose=False)
    scores = module.scores.values
    records = evaluation.records(cfg, info, loaded, scores, trainer.global_step, datamodule)
    skipped = {"skipped_images": fitted.skipped_images, "skipped_files": fitted.skipped_files[:SKIPPED_NAMED]}
    records = [replace(r, details={**r.details, **skipped}) for r in records]
    outcome = Outcome(records, run_dir, trainer.global_step, scores=scores, summary=evaluation.summary(info, scores))
    if trainer.is_global_zero:
        log_results(trainer, records)
        if cfg.results:
            write_records(cfg.results, records)
        outcome.files = evaluation.finish(cfg, module, datamodule)
        log.info("%s; %d records -> %s; %s", outcome.summary, len(records), cfg.results,
                 skipped_line(fitted.skipped_files))  # fmt: skip
    return outcome
