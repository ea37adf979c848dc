"""Linear-probe records of the results store as a Markdown table (methods x layers), with the
published numbers of SPEC.md in their own, marked rows.

    python benchmarks/probe_table.py [--store outputs/results.jsonl] [--dataset imagenette] [--out NAME]

Writes benchmarks/results/NAME.md and NAME.jsonl (the records it used).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import RESULTS  # noqa: E402
from downstream.results import read_records  # noqa: E402

LAYERS = ("conv1", "conv2", "conv3", "conv4", "conv5", "pool5")
# SPEC.md, Reported numbers: ImageNet linear top-1 by layer (released resize protocol), read from the
# authors' plot (+-0.3).
PUBLISHED = {
    "ImageNet labels (ceiling)": (19.3, 36.3, 44.2, 48.3, 50.5),
    "Gaussian random": (11.6, 17.1, 16.9, 16.3, 14.1),
    "Kraehenbuehl init": (17.5, 23.0, 24.5, 23.2, 20.6),
    "Context Encoders": (14.1, 20.7, 21.0, 19.8, 15.5),
    "Colorization": (13.1, 24.7, 31.0, 32.6, 31.8),
}


def table(records: list[dict], metric: str) -> list[str]:
    rows: dict[tuple, dict] = {}
    for r in records:
        if r["metric"] != metric:
            continue
        o = r["options"]
        key = (r["method"], r["checkpoint_digest"], o.get("pool"), o.get("schedule"), o.get("steps"), o.get("input"))
        rows.setdefault(key, {})[r["layer"]] = r["value"]
    out = [f"| method (checkpoint) | pool | schedule (steps) | input | {' | '.join(LAYERS)} |",
           "|---|---|---|---|" + "---|" * len(LAYERS)]  # fmt: skip
    for (method, digest, pool, sched, steps, inp), vals in sorted(rows.items(), key=lambda kv: str(kv[0])):
        cells = " | ".join(f"{vals[x]:.1f}" if x in vals else "-" for x in LAYERS)
        out.append(f"| {method} ({digest[:8]}) | {pool} | {sched} ({steps}) | {inp} | {cells} |")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", default="outputs/results.jsonl")
    ap.add_argument("--dataset", default="imagenette")
    ap.add_argument("--out", default="linear_probe_imagenette")
    ap.add_argument("--note", default="", help="a paragraph placed under the title (commands, machine)")
    args = ap.parse_args()
    records = [
        r for r in read_records(args.store) if r["evaluation"] == "linear_probe" and r["dataset"] == args.dataset
    ]
    if not records:
        raise SystemExit(f"no linear_probe records for dataset {args.dataset} in {args.store}")
    lines = (
        [f"# Linear probes on {args.dataset}", "", args.note, ""]
        if args.note
        else [f"# Linear probes on {args.dataset}", ""]
    )
    for metric in ("top1", "top5"):
        lines += [f"## {metric} (%) on {args.dataset} val", "", *table(records, metric), ""]
    lines += ["## Published (SPEC.md; ImageNet-1k, AlexNet, resize protocol, 140k iterations: not comparable to",
              "the short runs above, shown for the ordering)", "",
              "| method | conv1 | conv2 | conv3 | conv4 | conv5 |", "|---|---|---|---|---|---|"]  # fmt: skip
    lines += [f"| *published* {m} | " + " | ".join(f"{v:.1f}" for v in vals) + " |" for m, vals in PUBLISHED.items()]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.out}.md").write_text("\n".join(lines) + "\n")
    with open(RESULTS / f"{args.out}.jsonl", "w") as f:
        for r in records:
            f.write(json.dumps(r, sort_keys=True) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
