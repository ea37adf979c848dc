"""Progress a person can read: the run's expected duration once its first steps are timed, a line
every few steps when the output is not a terminal (a log file, a cluster job), and a progress bar that
counts epochs without the ``-2`` Lightning shows for runs bounded by steps."""

from __future__ import annotations

import logging
import sys
import time
from datetime import datetime, timedelta

import lightning as L
from lightning.pytorch.callbacks import RichProgressBar

log = logging.getLogger(__name__)


def duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


class StepsProgressBar(RichProgressBar):
    """Rich's bar, with "epoch N" (and "/M" only when the run is bounded by epochs)."""

    def _get_train_description(self, current_epoch: int) -> str:
        bounded = self.trainer.max_epochs is not None and self.trainer.max_epochs > 0
        text = f"epoch {current_epoch}" + (f"/{self.trainer.max_epochs - 1}" if bounded else "")
        return f"{text:{len(self.validation_description)}}"


class StepProgress(L.Callback):
    """After ``time_after`` steps (the first steps, start-up excluded): one line with the steps left
    x the measured step time. Then, when stdout is not a terminal, a line every ``every_n_steps``."""

    def __init__(self, time_after: int = 20, every_n_steps: int = 100):
        self.time_after, self.every_n_steps = time_after, every_n_steps
        self._t0: float | None = None
        self._s0 = 0
        self._announced = False

    def _rate(self, trainer) -> float | None:
        done = trainer.global_step - self._s0
        return (time.time() - self._t0) / done if done > 0 and self._t0 else None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self._t0 is None:  # from the first step on: the start-up is not a step
            self._t0, self._s0 = time.time(), trainer.global_step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if not trainer.is_global_zero or trainer.max_steps is None or trainer.max_steps < 0:
            return
        step, rate = trainer.global_step, self._rate(trainer)
        if rate is None:
            return
        left = (trainer.max_steps - step) * rate
        if not self._announced and step - self._s0 >= self.time_after:
            self._announced = True
            end = (datetime.now() + timedelta(seconds=left)).strftime("%H:%M")
            log.info("expected: %d steps left x %.2f s a step = %s more (ends about %s; validation not counted)",
                     trainer.max_steps - step, rate, duration(left), end)  # fmt: skip
        if not sys.stdout.isatty() and self.every_n_steps and step % self.every_n_steps == 0:
            loss = trainer.callback_metrics.get("train/loss")
            log.info("step %d/%d%s, %.2f s a step, %s left", step, trainer.max_steps,
                     f", train/loss {float(loss):.4f}" if loss is not None else "", rate, duration(left))  # fmt: skip
