"""The console shows each log line once."""

import io
import logging

from pretext.console import quiet_console


def test_each_lightning_line_reaches_the_console_once_when_the_root_logger_has_handlers(monkeypatch):
    import lightning  # noqa: F401 (adds its own console handler to the "lightning" logger)

    root_stream = io.StringIO()
    handler = logging.StreamHandler(root_stream)
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [handler])  # as Hydra configures it
    lit = logging.getLogger("lightning")
    monkeypatch.setattr(lit, "handlers", list(lit.handlers))
    mine = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    monkeypatch.setattr(logging.getLogger("lightning.pytorch"), "propagate", True)
    monkeypatch.setattr(logging.getLogger("lightning.pytorch"), "handlers", [])
    quiet_console()
    assert not [h for h in lit.handlers if type(h) is logging.StreamHandler]
    mine.info("`Trainer.fit` stopped")
    assert root_stream.getvalue().count("`Trainer.fit` stopped") == 1
