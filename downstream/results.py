"""The suite's results store: one JSON record per line, one line per result.

A record is keyed by what identifies the measurement (method, checkpoint digest, evaluation, layer,
protocol options, dataset, metric); writing a record with the key of an existing one replaces it.
The file is rewritten atomically, and a half-written last line (a run killed mid-write by an older
writer or another tool) is dropped with a warning rather than failing the reader.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timezone
from pathlib import Path

log = logging.getLogger(__name__)
KEY_FIELDS = ("method", "checkpoint_digest", "evaluation", "layer", "options", "dataset", "metric")
DEFAULT_STORE = "outputs/results.jsonl"


def record_key(record: dict) -> str:
    missing = [k for k in KEY_FIELDS if k not in record]
    if missing:
        raise ValueError(f"a result record needs {', '.join(KEY_FIELDS)}; missing {', '.join(missing)}")
    return json.dumps([record[k] for k in KEY_FIELDS], sort_keys=True)


def read_records(path: str | Path) -> list[dict]:
    """The store's lines as dicts (the file format; :meth:`Record.from_dict` types one)."""
    path = Path(path)
    if not path.is_file():
        return []
    records = []
    lines = path.read_text().splitlines()
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            log.warning("%s line %d is not a complete record (a write was cut short): ignored", path, n)
    return records


def write_records(path: str | Path, new: Iterable[Record]) -> Path:
    """Add ``new`` records to the store, replacing any with the same key."""
    path = Path(path)
    new = [r.to_dict() for r in new]
    keys = {record_key(r) for r in new}
    kept = [r for r in read_records(path) if record_key(r) not in keys]
    _rewrite(path, kept + new)
    return path


def _rewrite(path: Path, records: list[dict]) -> None:
    """The store as exactly ``records``, written to a temporary file and renamed over it; temporary
    files that a killed writer left behind are removed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as f:
        for r in records:
            f.write(json.dumps(r, sort_keys=True) + "\n")
    tmp.replace(path)
    for stale in path.parent.glob(f".{path.name}.*.tmp"):
        if not _alive(stale.name.rsplit(".", 2)[-2]):
            stale.unlink(missing_ok=True)


def _alive(pid: str) -> bool:
    """Whether the process ``pid`` (from a temporary file's name) still runs."""
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


def drop_records(path: str | Path, predicate) -> int:
    """Remove the records for which ``predicate(record)`` holds; how many went."""
    path = Path(path)
    records = read_records(path)
    kept = [r for r in records if not predicate(r)]
    if len(kept) != len(records):
        _rewrite(path, kept)
    return len(records) - len(kept)


@dataclass(frozen=True)
class Record:
    """One measurement. ``details`` holds what describes it without identifying it (per-class
    scores, the pretext's choices, skipped images, baselines); on disk its keys sit beside the
    others, so a store line is one flat JSON object."""

    method: str  # the name in results (a suite's method name, or the checkpoint's method)
    pretext_method: str  # the method inside the checkpoint (or the init's name)
    checkpoint: str
    checkpoint_digest: str
    evaluation: str
    layer: str
    options: dict
    dataset: str
    metric: str
    value: float
    suite_job: str | None = None  # the suite job that made it
    details: dict = field(default_factory=dict)
    date: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    command: str = field(default_factory=lambda: " ".join(shlex.quote(a) for a in sys.argv))

    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "details"}
        return {**self.details, **d, "options": dict(sorted(self.options.items())), "value": float(self.value)}

    @classmethod
    def from_dict(cls, d: dict) -> Record:
        names = {f.name for f in fields(cls)} - {"details"}
        record_key(d)  # the identifying fields are all there, or a clear error
        return cls(**{k: v for k, v in d.items() if k in names}, details={k: v for k, v in d.items() if k not in names})

    def relabel(self, method: str, suite_job: str | None) -> Record:
        return replace(self, method=method, suite_job=suite_job)


def make_record(info, evaluation: str, layer: str, options: dict, dataset: str, metric: str, value: float,
                label: str | None = None, **details) -> Record:  # fmt: skip
    """A record for an encoder (:class:`downstream.encoder.EncoderInfo`); ``label``: the method's name
    in results (default: the checkpoint's)."""
    return Record(method=label or info.method, pretext_method=info.method, checkpoint=info.source,
                  checkpoint_digest=info.digest, evaluation=evaluation, layer=layer, options=options,
                  dataset=dataset, metric=metric, value=float(value), details=details)  # fmt: skip
