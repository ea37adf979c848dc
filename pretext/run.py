"""One place that turns a run's config into a Lightning Trainer, for the pretext and every evaluation.

A run has one folder (``run_dir``): loggers (``cfg.logger``) and callbacks (``cfg.callbacks``)
built with ``hydra.utils.instantiate``, checkpoints written atomically, a checkpoint and a clean
stop on SIGTERM / SIGUSR1, ``trainer.gpus=N`` as in old Lightning, and ``resume=true|auto`` to
continue from the newest checkpoint that loads. :func:`fit` says how the run ended as a :class:`FitOutcome`.
"""

from __future__ import annotations

import logging
import os
import signal
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import lightning as L
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import LearningRateMonitor
from lightning.pytorch.plugins.io import TorchCheckpointIO
from omegaconf import DictConfig, OmegaConf

from pretext.console import quiet_console

log = logging.getLogger(__name__)
NOT_TRAINER_ARGS = ("gpus", "ckpt_every_n_steps")  # the suite's own trainer keys


# ----------------------------------------------------------------------------------- pieces
CPU_BF16_FLAGS = ("amx_bf16", "avx512_bf16")  # /proc/cpuinfo flags of CPUs with native bf16
# On such a CPU, bf16-mixed is the default only if 200 demo steps under it end within 1% of fp32's
# losses: benchmarks/results/precision_check_cpu.json (the command is in it).
CPU_BF16_MATCHES_FP32 = True


class PrecisionChoice(NamedTuple):
    precision: str | int
    reason: str
    matmul: str | None  # torch.set_float32_matmul_precision to apply (GPUs), or None


def choose_precision(requested, accelerator: str, cuda_bf16_supported: bool, cpu_flags) -> PrecisionChoice:
    """``trainer.precision`` as the hardware suggests when it is ``auto``: bf16-mixed on GPUs that
    support bf16 (else 32-true), fp32 matmuls at ``high`` (TF32) on GPUs; on CPUs, bf16-mixed when the
    CPU has native bf16 (``cpu_flags`` holds amx_bf16 or avx512_bf16) and the check passed, else
    32-true. Anything else than ``auto`` is kept. ``accelerator``: as resolved (gpu, cuda, cpu, ...)."""
    if str(requested) != "auto":
        return PrecisionChoice(requested, "set by trainer.precision", None)
    if accelerator in ("gpu", "cuda"):
        if cuda_bf16_supported:
            return PrecisionChoice("bf16-mixed", "auto: the GPU supports bf16", "high")
        return PrecisionChoice("32-true", "auto: the GPU has no native bf16 (fp32, TF32 matmuls where it has them)",
                               "high")  # fmt: skip
    if accelerator == "cpu":
        native = [f for f in CPU_BF16_FLAGS if f in set(cpu_flags)]
        if not native:
            return PrecisionChoice("32-true", "auto: the CPU has no native bf16 (no amx_bf16 / avx512_bf16)", None)
        check = "200 demo steps against fp32 (benchmarks/results/precision_check_cpu.json)"
        if CPU_BF16_MATCHES_FP32:
            return PrecisionChoice("bf16-mixed", f"auto: the CPU has native bf16 ({', '.join(native)}) and bf16 "
                                   f"matched fp32 within 1% in {check}", None)  # fmt: skip
        return PrecisionChoice("32-true", f"auto: the CPU has native bf16 ({', '.join(native)}) but bf16 did not "
                               f"match fp32 within 1% in {check}", None)  # fmt: skip
    return PrecisionChoice("32-true", f"auto: no automatic choice on accelerator {accelerator!r}", None)


def read_cpu_flags(path: str = "/proc/cpuinfo") -> set[str]:
    """The CPU's feature flags (Linux); empty where unreadable."""
    try:
        with open(path) as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def trainer_kwargs(cfg: DictConfig, cuda_available: bool | None = None, cuda_bf16_supported: bool | None = None,
                   cpu_flags=None) -> dict:  # fmt: skip
    """Trainer arguments from ``cfg.trainer``, with old Lightning's ``gpus=N`` mapped to accelerator,
    devices and strategy (DDP for N > 1; without GPUs, ``gpus`` falls back to CPU with a warning),
    and ``precision: auto`` resolved by :func:`choose_precision`; the choice and why are logged."""
    cuda_available = torch.cuda.is_available() if cuda_available is None else cuda_available
    kw = _placement(cfg, cuda_available)
    accelerator = str(kw.get("accelerator", "auto"))
    if accelerator == "auto":
        accelerator = "gpu" if cuda_available else "cpu"
    if cuda_bf16_supported is None:
        cuda_bf16_supported = torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)
    choice = choose_precision(kw.get("precision", "32-true"), accelerator, cuda_bf16_supported,
                              read_cpu_flags() if cpu_flags is None else cpu_flags)  # fmt: skip
    if choice.matmul and torch.cuda.is_available():
        torch.set_float32_matmul_precision(choice.matmul)
    log.info("precision %s: %s%s", choice.precision, choice.reason,
             f"; float32 matmul precision {choice.matmul}" if choice.matmul else "")  # fmt: skip
    return {**kw, "precision": choice.precision}


def _placement(cfg: DictConfig, cuda_available: bool) -> dict:
    """``cfg.trainer`` as Trainer arguments, ``gpus=N`` mapped to accelerator, devices and strategy."""
    kw = OmegaConf.to_container(cfg, resolve=True)
    gpus = kw.pop("gpus", None)
    for key in NOT_TRAINER_ARGS:
        kw.pop(key, None)
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


RESUME_MODES = ("false", "true", "auto")


def resume_mode(resume) -> str:
    """``resume`` as one of :data:`RESUME_MODES` (a bool or the string ``auto``), or a clear error."""
    mode = str(resume).lower()
    if mode not in RESUME_MODES:
        raise ValueError(f"resume={resume!r} is not valid: true (continue; a checkpoint must exist), false "
                         "(a new run; the folder must hold none), auto (continue if a checkpoint exists, else start)")
    return mode


def checkpoint_step(path: Path) -> int | None:
    """The global step of a checkpoint that loads; None for a truncated or corrupt file (warned)."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        return int(ckpt["global_step"])
    except Exception as err:  # truncated zip, pickle error, not a Lightning checkpoint
        log.warning("skipping %s: it does not load (%s: %s)", path, type(err).__name__, str(err)[:120])
        return None


def newest_checkpoint(ckpt_dir: Path) -> Path | None:
    """The checkpoint to resume from: of ``last.ckpt`` and the highest-numbered step file that load,
    the one at the later step (``last.ckpt`` on a tie). A kill between writing a step file and
    ``last.ckpt``, or before ``last.ckpt`` ever existed, loses nothing that reached the disk."""
    if not ckpt_dir.is_dir():
        return None
    steps = sorted(ckpt_dir.glob("step*.ckpt"), key=lambda p: (len(p.stem), p.stem), reverse=True)
    step_file = next(((p, n) for p in steps if (n := checkpoint_step(p)) is not None), None)
    last = ckpt_dir / "last.ckpt"
    last_step = checkpoint_step(last) if last.is_file() else None
    found = [(n, 1, p) for p, n in ([step_file] if step_file else [])]
    if last_step is not None:
        found.append((last_step, 2, last))
    return max(found)[2] if found else None


def resume_checkpoint(run_dir: str | Path, resume) -> Path | None:
    """What ``resume`` (true / false / auto) means for ``run_dir``: the checkpoint to continue from,
    None to start afresh, or a clear error; a run never overwrites another."""
    mode, ckpt_dir = resume_mode(resume), Path(run_dir) / "checkpoints"
    for tmp in ckpt_dir.glob(".*.ckpt.tmp*") if ckpt_dir.is_dir() else []:  # a write a kill cut short
        log.warning("removing %s: a checkpoint write that never finished", tmp)
        tmp.unlink(missing_ok=True)
    present = sorted(ckpt_dir.glob("*.ckpt")) if ckpt_dir.is_dir() else []
    if mode == "false":
        if present:
            raise FileExistsError(f"{ckpt_dir} holds checkpoints ({present[-1].name}): pass resume=true to continue "
                                  "that run, or a new run_name")  # fmt: skip
        return None
    found = newest_checkpoint(ckpt_dir)
    if found is None and mode == "true":
        what = "no checkpoint that loads" if present else "no checkpoint"
        raise FileNotFoundError(f"resume=true but {ckpt_dir} holds {what}: check run_dir / run_name, or pass "
                                "resume=auto to start when there is none")  # fmt: skip
    if found is not None:
        log.info("resuming from %s", found)
    return found


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


class StopOnSignal(L.Callback):
    """On SIGTERM or SIGUSR1, finish the current step, save ``last_path`` and stop cleanly, so
    ``resume=true`` continues from there. In DDP every rank agrees before stopping. ``stopped_by``
    names the signal once the run stopped on one. At the end of training, ``last_path`` is saved
    when no checkpoint holds the last step (``max_steps`` off the checkpoint interval, a time limit),
    so the run's checkpoint is always its final weights."""

    SIGNALS = (signal.SIGTERM, signal.SIGUSR1)

    def __init__(self, last_path: str | Path):
        self.last_path = Path(last_path)
        self.received: int | None = None
        self.stopped_by: str | None = None
        self._previous: dict = {}
        self._saved_at: int | None = None  # the step of the newest checkpoint written

    def _handler(self, signum, frame) -> None:
        self.received = signum

    def on_train_start(self, trainer, pl_module) -> None:
        if trainer.ckpt_path:  # resumed: the checkpoint it resumed from holds this step
            self._saved_at = trainer.global_step
        try:
            for sig in self.SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handler)
        except ValueError:  # not the main thread (e.g. a spawned helper): leave signals alone
            log.debug("signal handlers not installed: not in the main thread")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step >= trainer.max_steps > 0:  # the last step: the run ends and saves anyway
            return
        if trainer.strategy.reduce_boolean_decision(self.received is not None, all=False):
            name = signal.Signals(self.received).name if self.received else "a peer's signal"
            log.warning("received %s: saving %s at step %d and stopping", name, self.last_path, trainer.global_step)
            trainer.save_checkpoint(self.last_path)
            trainer.should_stop = True
            self.received, self.stopped_by = None, name

    def on_save_checkpoint(self, trainer, pl_module, checkpoint) -> None:
        self._saved_at = trainer.global_step

    def on_train_end(self, trainer, pl_module) -> None:
        if trainer.global_step != self._saved_at:
            log.info("saving %s at the final step %d", self.last_path, trainer.global_step)
            trainer.save_checkpoint(self.last_path)
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()


class SkippedImages(L.Callback):
    """Counts the unreadable files the batches report (a batch is ``(payload, skipped)``, ``skipped``
    the paths of its unreadable files), each file once however often it is drawn, in training and
    validation; names the first ``name_first`` in the log as they are met; logs the count as
    ``train/skipped_images`` (the rank's own); keeps the files across a resume (callback state) and,
    under DDP, every rank's files in each checkpoint and at the end of the fit. Training gives up
    with a clear error when no file could be read in ``give_up_after`` batches in a row or in a whole
    epoch."""

    def __init__(self, give_up_after: int = 50, name_first: int = 5):
        self.files: dict[str, None] = {}  # insertion-ordered set: the first met come first
        self.give_up_after, self.name_first = give_up_after, name_first
        self._empty_run = 0  # batches in a row in which no file could be read

    @property
    def count(self) -> int:
        return len(self.files)

    def _add(self, paths) -> None:
        for path in paths:
            if path not in self.files:
                self.files[path] = None
                if self.count <= self.name_first:
                    more = " (further ones are counted, not named)" if self.count == self.name_first else ""
                    log.warning("unreadable image skipped: %s%s", path, more)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        from pretext.pretext_module import is_empty

        self._add(batch[1])
        pl_module.log("train/skipped_images", float(self.count), reduce_fx="max")
        self._empty_run = self._empty_run + 1 if is_empty(batch[0]) else 0
        if self._empty_run >= self.give_up_after:
            self._give_up(f"the last {self._empty_run} batches")

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0) -> None:
        self._add(batch[1])

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if self._empty_run and self._empty_run == trainer.num_training_batches:
            self._give_up("a whole epoch")

    def _merge_ranks(self, trainer) -> None:
        """Under DDP each rank meets its own unreadable files: every rank takes the union, so rank 0's
        checkpoint and the run's summary name them all (a collective: the hooks calling it run on every
        rank)."""
        import torch.distributed as dist

        if trainer.world_size < 2 or not (dist.is_available() and dist.is_initialized()):
            return
        per_rank: list = [None] * trainer.world_size
        dist.all_gather_object(per_rank, list(self.files))
        for files in per_rank:
            self.files.update(dict.fromkeys(files))  # those already known keep their place

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        self._merge_ranks(trainer)
        if "callbacks" in checkpoint:  # a full checkpoint: its copy of this state, made before the merge
            checkpoint["callbacks"][self.state_key] = self.state_dict()

    def on_fit_end(self, trainer, pl_module) -> None:
        self._merge_ranks(trainer)

    def _give_up(self, span: str) -> None:
        first = ", ".join(list(self.files)[:3])
        raise ValueError(f"no training image could be read in {span} ({self.count} unreadable files skipped, "
                         f"e.g. {first}): check the data folder")  # fmt: skip

    def state_dict(self) -> dict:
        return {"files": list(self.files)}

    def load_state_dict(self, state: dict) -> None:
        self.files = dict.fromkeys(state.get("files", []))


SKIPPED_NAMED = 5  # unreadable files named in a run's summary (all are counted)


def skipped_line(files: list[str]) -> str:
    """The run summary's line on unreadable files: how many, and the first few by name."""
    if not files:
        return "no unreadable image"
    more = f" and {len(files) - SKIPPED_NAMED} more" if len(files) > SKIPPED_NAMED else ""
    images = "image" if len(files) == 1 else "images"
    return f"skipped {len(files)} unreadable {images}: {', '.join(files[:SKIPPED_NAMED])}{more}"


# ----------------------------------------------------------------------------------- assembly
@dataclass
class FitOutcome:
    trainer: L.Trainer
    last: Path  # the run's last.ckpt
    resumed_from: Path | None
    stopped_by: str | None  # the signal the run stopped on
    complete: bool  # reached trainer.max_steps
    skipped_files: list[str]  # each unreadable file once, in the order met

    @property
    def skipped_images(self) -> int:
        return len(self.skipped_files)


def build_trainer(cfg: DictConfig, group: str | None = None, job_type: str | None = None) -> L.Trainer:
    """The Trainer of a run: ``cfg.trainer``, ``cfg.logger`` (wandb runs grouped by ``group`` and
    ``job_type``), ``cfg.callbacks`` and atomic checkpoint writes, in ``cfg.run_dir``."""
    quiet_console()
    loggers = []
    for c in (cfg.logger or {}).values():
        extra = {"group": group, "job_type": job_type} if str(c._target_).endswith("WandbLogger") else {}
        loggers.append(instantiate(c, **{k: v for k, v in extra.items() if v}))
    callbacks = [instantiate(c) for c in (cfg.callbacks or {}).values() if c is not None]  # null: left out
    if not loggers:  # nothing to log the rate to
        callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]
    return L.Trainer(
        default_root_dir=cfg.run_dir,
        logger=loggers or False,
        callbacks=callbacks,
        plugins=[AtomicCheckpointIO()],
        use_distributed_sampler=False,  # the suite's samplers shard by rank themselves
        **trainer_kwargs(cfg.trainer),
    )


def fit(cfg: DictConfig, module: L.LightningModule, datamodule, group: str | None = None,
        job_type: str | None = None) -> FitOutcome:  # fmt: skip
    """Fit ``module`` as ``cfg`` says, resuming as ``cfg.resume`` says (:func:`resume_checkpoint`)."""
    start = resume_checkpoint(cfg.run_dir, cfg.resume)
    trainer = build_trainer(cfg, group, job_type)
    for logger in trainer.loggers:  # the run's full config beside its curves (wandb config, hparams.yaml)
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
    trainer.fit(module, datamodule=datamodule, ckpt_path=str(start) if start else None, weights_only=True)
    last = Path(cfg.run_dir) / "checkpoints" / "last.ckpt"
    stop = next((c for c in trainer.callbacks if isinstance(c, StopOnSignal)), None)
    skipped = next((list(c.files) for c in trainer.callbacks if isinstance(c, SkippedImages)), [])
    complete = trainer.global_step >= int(cfg.trainer.max_steps)
    if not complete:
        log.warning("stopped at step %d of %d: resume=true continues it", trainer.global_step, cfg.trainer.max_steps)
    return FitOutcome(trainer, last, start, stop.stopped_by if stop else None, complete, skipped)
