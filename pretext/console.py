"""A quiet console: noise that is expected in this suite's runs is silenced where it is expected, each
with the reason, so that what remains (progress, results, real warnings) can be read."""

from __future__ import annotations

import logging
import os
import warnings

from lightning.pytorch.loggers import WandbLogger


def _drop_litlogger_tip(record: logging.LogRecord) -> bool:
    return "litlogger" not in record.getMessage()  # Lightning's advertisement for its cloud logger


def quiet_console() -> None:
    # wandb offline (the default): its console lines (the deprecated `anonymous` setting Lightning
    # passes, "git root does not exist" for run folders outside git, sync hints) say nothing to do;
    # the run folder's wandb/ holds the offline run, synced with `wandb sync` as the README says.
    if os.environ.get("WANDB_MODE", "offline") == "offline":
        os.environ.setdefault("WANDB_SILENT", "true")
    # Lightning gives its "lightning" logger a console handler of its own; when the root logger has
    # handlers (Hydra's, in every entry point), lines that reach both print twice: the root's stay.
    if logging.getLogger().handlers:
        lit = logging.getLogger("lightning")
        for h in [h for h in lit.handlers if type(h) is logging.StreamHandler]:
            lit.removeHandler(h)
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        if _drop_litlogger_tip not in logging.getLogger(name).filters:
            logging.getLogger(name).addFilter(_drop_litlogger_tip)
    # Epochs shorter than the logging interval are expected: a few photos repeated, short probe epochs.
    warnings.filterwarnings("ignore", message=r"The number of training batches \(\d+\) is smaller than the logging")
    # The model summary cannot estimate sizes under bf16 autocast; the parameter counts it prints are right.
    warnings.filterwarnings("ignore", message=r"Precision bf16-mixed is not supported by the model summary")
    # Lightning 2.6's own use of a torch API that torch 2.14 deprecates: nothing for a user to change.
    warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated")


def expect_frozen_modules() -> None:
    """Evaluations keep their frozen encoder (and every BatchNorm when fine-tuning) in eval mode by
    design: Lightning's warning about modules in eval mode at the start of training is expected."""
    warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode at the start of training")


class QuietWandbLogger(WandbLogger):
    """Lightning's WandbLogger without the ``anonymous`` setting it always passes, which wandb has
    deprecated and warns about on every run."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._wandb_init.pop("anonymous", None)
