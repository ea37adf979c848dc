"""Colorization quality as an evaluation of the suite: ``pretext/evaluate.py``'s AuC and rebalanced
AuC of a colorizer checkpoint as records, with the Gray and Random rows scored on the same photos
beside them (``baselines``).

    python benchmarks/colorization_auc.py ckpt=RUN/checkpoints/last.ckpt data.root=DIR

Config: conf/evaluate.yaml (plus ``results`` and ``label``).
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from downstream.evaluation import Outcome
from downstream.results import make_record, write_records
from pretext.checkpoint_files import read_checkpoint
from pretext.cli import entry
from pretext.encoders import load_encoder
from pretext.evaluate import evaluate


def is_colorizer(ckpt: str | Path) -> bool:
    """Whether a checkpoint colours (its file says so)."""
    return "colorization" in read_checkpoint(ckpt)


def colorization_auc(cfg: DictConfig) -> Outcome:
    _, info = load_encoder(cfg.ckpt)
    result = evaluate(cfg)
    row = result["checkpoint_row"]
    options = {"net_size": int(cfg.net_size), "temperature": float(result["temperature"]),
               "images": int(result["images"]), "rebalanced": "pure inverse prior"}  # fmt: skip
    baselines = {r["method"]: {"auc": r["auc"], "auc_rebal": r["auc_rebal"]}
                 for r in result["rows"] if r["kind"] in ("gray", "random")}  # fmt: skip
    dataset = Path(cfg.data.root).parent.name or "data"
    records = [
        make_record(info, "colorization_auc", "-", options, dataset, metric, row[metric], label=cfg.get("label"),
                    baselines=baselines, pretext=info.extra)  # fmt: skip
        for metric in ("auc", "auc_rebal")
    ]
    if cfg.get("results"):
        write_records(cfg.results, records)
    return Outcome(records, Path(cfg.output), 0, scores={"rows": result["rows"]})


@entry("evaluate")
def main(cfg: DictConfig) -> None:
    for r in colorization_auc(cfg).records:
        print(f"{r.metric} {r.value:.2f} -> {cfg.results}")


if __name__ == "__main__":
    main()
