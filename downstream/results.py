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


def write_records(path: str | Path, new: Iterable[dict]) -> Path:
    """Add ``new`` records to the store, replacing any with the same key."""
    path = Path(path)
    new = [dict(r) for r in new]
    keys = {record_key(r) for r in new}
    kept = [r for r in read_records(path) if record_key(r) not in keys]
    _rewrite(path, kept + new)
    return path


def _rewrite(path: Path, records: list[dict]) -> None:
    """The store as exactly ``records``, written to a temporary file and renamed over it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as f:
        for r in records:
            f.write(json.dumps(r, sort_keys=True) + "\n")
    tmp.replace(path)


def drop_records(path: str | Path, predicate) -> int:
    """Remove the records for which ``predicate(record)`` holds; how many went."""
    path = Path(path)
    records = read_records(path)
    kept = [r for r in records if not predicate(r)]
    if len(kept) != len(records):
        _rewrite(path, kept)
    return len(records) - len(kept)


def make_record(info, evaluation: str, layer: str, options: dict, dataset: str, metric: str, value: float,
                cfg=None) -> dict:  # fmt: skip
    """A record for an encoder (:class:`downstream.encoder.EncoderInfo`). ``cfg``: the evaluation's
    config, whose ``label`` (the method's name in results; default the checkpoint's) and ``tag``
    (the suite job that asked for it) are kept."""
    label = cfg.get("label") if cfg is not None else None
    tag = cfg.get("tag") if cfg is not None else None
    return {
        "method": label or info.method,
        "pretext_method": info.method,
        "suite_job": tag,
        "checkpoint": info.source,
        "checkpoint_digest": info.digest,
        "evaluation": evaluation,
        "layer": layer,
        "options": dict(sorted(options.items())),
        "dataset": dataset,
        "metric": metric,
        "value": float(value),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(shlex.quote(a) for a in sys.argv),
    }
