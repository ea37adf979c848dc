"""Never lose a run: atomic checkpoint writes, and a checkpoint on SIGTERM / SIGUSR1 (preemption)."""

from __future__ import annotations

import logging
import os
import signal
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

log = logging.getLogger(__name__)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Write to a temporary file beside the target, then rename: a kill mid-write leaves the
    previous checkpoint intact, never a truncated one."""

    def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
        torch.save(checkpoint, tmp)
        os.replace(tmp, path)

    def load_checkpoint(self, path, map_location=None, weights_only=True):
        return torch.load(path, map_location=map_location or "cpu", weights_only=True)


class PreemptionCheckpoint(L.Callback):
    """On SIGTERM or SIGUSR1, finish the current step, save ``last.ckpt`` and stop cleanly, so
    ``resume=true`` continues from there. In DDP every rank agrees before stopping."""

    SIGNALS = (signal.SIGTERM, signal.SIGUSR1)
    preempted = False  # process-wide: set once a run stopped on a signal (benchmarks/suite.py stops too)

    def __init__(self, last_path: str | Path):
        self.last_path = Path(last_path)
        self.received: int | None = None
        self._previous: dict = {}

    def _handler(self, signum, frame) -> None:
        self.received = signum

    def on_train_start(self, trainer, pl_module) -> None:
        try:
            for sig in self.SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handler)
        except ValueError:  # not the main thread (e.g. a spawned helper): leave signals alone
            log.debug("signal handlers not installed: not in the main thread")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        stop = trainer.strategy.reduce_boolean_decision(self.received is not None, all=False)
        if stop:
            name = signal.Signals(self.received).name if self.received else "a peer's signal"
            log.warning("received %s: saving %s at step %d and stopping", name, self.last_path, trainer.global_step)
            trainer.save_checkpoint(self.last_path)
            trainer.should_stop = True
            self.received = None
            PreemptionCheckpoint.preempted = True

    def on_train_end(self, trainer, pl_module) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()
