"""Record a pretext run's curves into benchmarks/results/: NAME.csv, NAME.png and NAME.json.

    python benchmarks/record_run.py outputs/pretext/RUN --name imagenette_cpu20

Reads the run's CSV log (validation loss, AuC and rebalanced AuC, and the Gray baseline's AuC on
the same pixels) and states whether the validation loss fell and the rebalanced AuC ended above
the Gray baseline.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from benchmarks.common import RESULTS, write_result
from pretext.checkpoint_files import repo_path

VAL_KEYS = ("val/loss", "val/loss_weighted", "val/auc", "val/auc_rebal", "val/auc_grey", "val/auc_rebal_grey")


def read_curves(run_dir: Path) -> tuple[list[dict], list[dict]]:
    files = sorted(run_dir.glob("csv/version_*/metrics.csv"))
    if not files:
        raise FileNotFoundError(f"no csv/version_*/metrics.csv under {run_dir}")
    val, train = [], []
    for f in files:
        for row in csv.DictReader(open(f)):
            if row.get("val/auc"):
                val.append({"step": int(row["step"]), **{k: float(row[k]) for k in VAL_KEYS if row.get(k)}})
            elif row.get("train/loss"):
                train.append({"step": int(row["step"]), "train/loss": float(row["train/loss"])})
    return val, train


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--name", required=True)
    args = ap.parse_args()
    val, train = read_curves(args.run_dir)
    if len(val) < 2:
        raise SystemExit(f"{args.run_dir}: fewer than two validation points")
    with open(RESULTS / f"{args.name}.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["step", *VAL_KEYS])
        writer.writeheader()
        writer.writerows(val)

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    axes[0].plot([r["step"] for r in train], [r["train/loss"] for r in train], lw=0.6, label="train loss (plain)")
    axes[0].plot([r["step"] for r in val], [r["val/loss"] for r in val], "o-", label="val loss (plain)")
    axes[0].set_xlabel("step")
    axes[0].legend()
    for ax, key in ((axes[1], "auc"), (axes[2], "auc_rebal")):
        ax.plot([r["step"] for r in val], [r[f"val/{key}"] for r in val], "o-", label="model")
        ax.plot([r["step"] for r in val], [r[f"val/{key}_grey"] for r in val], "--", label="Gray baseline (ab = 0)")
        ax.set_title(f"val {key.replace('_', ' ')} (%)")
        ax.set_xlabel("step")
        ax.legend()
    fig.tight_layout()
    fig.savefig(RESULTS / f"{args.name}.png", dpi=90)

    first, last = val[0], val[-1]
    summary = {
        "run_dir": repo_path(args.run_dir),
        "overrides": (args.run_dir / "hydra" / "overrides.yaml").read_text()
        if (args.run_dir / "hydra").is_dir()
        else None,
        "first_val": first,
        "last_val": last,
        "best_val_auc_rebal": max(r["val/auc_rebal"] for r in val),
        "val_loss_fell": last["val/loss"] < first["val/loss"],
        "auc_rebal_above_gray": last["val/auc_rebal"] > last["val/auc_rebal_grey"],
    }
    print({k: v for k, v in summary.items() if k not in ("first_val", "overrides")})
    print(f"wrote {write_result(args.name, summary)}")


if __name__ == "__main__":
    main()
