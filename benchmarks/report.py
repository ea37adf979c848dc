"""The suite's report: paper-style tables and plots from the results store alone.

    python benchmarks/report.py [--store outputs/suite/imagenette_cpu/results.jsonl] [--out DIR]
    make report

Writes DIR/report.md (linear top-1 by layer per method; PASCAL classification / detection /
segmentation per method; colorization AuC; the published numbers of SPEC.md in their own, marked
rows) and DIR/linear_by_layer.png (accuracy by layer per method, beside the published curves).

Records that differ only in an option ``seed`` are seeds of one cell: the cell shows their mean ± the
half-width of the 95% t-interval, and each colorization-minus-baseline difference its own interval
(``benchmarks/stats.py``, shared with the dashboard); a single seed shows its value, marked n=1.
PASCAL scores on fewer than 100 test images (the records' option ``images``) sit in rows labelled
"pipeline check (N images)".
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

from benchmarks.stats import Stat, difference, measurements
from downstream.results import read_records
from pretext.cli import user_errors
from pretext.nets import PROBE_LAYERS

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_STORE = ROOT / "benchmarks" / "results" / "imagenette_cpu" / "results.jsonl"  # the committed suite

LAYERS = PROBE_LAYERS
# SPEC.md, Reported numbers (AlexNet, ImageNet-1k). Linear top-1 by layer, released resize protocol
# (read from the authors' plot, +-0.3); PASCAL cls fc6-8 / cls all / det / seg.
PUBLISHED_LINEAR = {
    "ImageNet labels (ceiling)": (19.3, 36.3, 44.2, 48.3, 50.5),
    "Gaussian random": (11.6, 17.1, 16.9, 16.3, 14.1),
    "Kraehenbuehl init": (17.5, 23.0, 24.5, 23.2, 20.6),
    "Context Encoders": (14.1, 20.7, 21.0, 19.8, 15.5),
    "Colorization": (13.1, 24.7, 31.0, 32.6, 31.8),
}
PUBLISHED_PASCAL = {
    "ImageNet labels": (78.9, 79.9, 56.8, 48.0),
    "Gaussian": (None, 53.3, 43.4, 19.8),
    "Kraehenbuehl": (39.2, 56.6, 45.6, 32.6),
    "Context Encoders": (None, 56.5, 44.5, 29.7),
    "Colorization": (61.5, 65.9, 46.9, 35.6),
}
COMPARED = ("context_encoder", "gaussian")


PIPELINE_CHECK_BELOW = 100  # a PASCAL score on fewer test images checks the pipeline; it is not a score


def fmt(v) -> str:
    return "-" if v is None else f"{v:.1f}"


def cell(stat: Stat | None, signed: bool = False) -> str:
    """``mean ± half-width`` of the 95% t-interval over seeds, or the value alone for one seed (the
    table's n column says which)."""
    if stat is None:
        return "-"
    f = "{:+.1f}" if signed else "{:.1f}"
    if stat.lo is None:
        return f.format(stat.mean)
    return f"{f.format(stat.mean)} ± {(stat.hi - stat.lo) / 2:.1f}"


def n_column(stats) -> str:
    return "/".join(sorted({s.n_label for s in stats})) or "-"


def linear_rows(records: list[dict]) -> dict[tuple, dict[str, Stat]]:
    """{(method, dataset, pool, schedule, steps): {layer: top-1 over seeds}}: records that differ only
    in an option ``seed`` are seeds of one cell (:func:`benchmarks.stats.measurements`)."""
    rows: dict[tuple, dict] = defaultdict(dict)
    for (method, _role, ev, layer, dataset, metric, _proto, _digest), (stat, rs) in measurements(records).items():
        if ev == "linear_probe" and metric == "top1":
            o = rs[0]["options"]
            rows[(method, dataset, o.get("pool"), o.get("schedule"), o.get("steps"))][layer] = stat
    return dict(rows)


def linear_table(rows) -> list[str]:
    out = ["Each cell: the mean over seeds ± the half-width of its 95% t-interval; n: the seeds (n=1: one run, "
           "no interval).", "",
           "| method | dataset | pool | schedule (steps) | " + " | ".join(LAYERS) + " | n (seeds) |",
           "|---|---|---|---|" + "---|" * len(LAYERS) + "---|"]  # fmt: skip
    for (method, dataset, pool, sched, steps), vals in sorted(rows.items(), key=lambda kv: str(kv[0])):
        out.append(f"| {method} | {dataset} | {pool} | {sched} ({steps}) | "
                   + " | ".join(cell(vals.get(x)) for x in LAYERS) + f" | {n_column(vals.values())} |")  # fmt: skip
    out += ["", "Published (SPEC.md: AlexNet on ImageNet-1k, resize protocol, 140k steps; not comparable in "
            "scale, shown for the ordering):", "", "| *published* method | conv1 | conv2 | conv3 | conv4 | conv5 |",
            "|---|---|---|---|---|---|"]  # fmt: skip
    out += [f"| *published* {m} | " + " | ".join(fmt(v) for v in vals) + " |" for m, vals in PUBLISHED_LINEAR.items()]
    return out


def comparison(rows) -> list[str]:
    """Colorization minus each compared method, layer by layer, under the same protocol (dataset,
    pool, schedule), beside the paper's difference: with several seeds, the difference ± the
    half-width of its 95% t-interval (paired over the seeds both hold, else Welch's)."""
    paper = {"context_encoder": "Context Encoders", "gaussian": "Gaussian random"}
    groups: dict[tuple, dict[str, dict]] = defaultdict(dict)
    for (method, dataset, pool, sched, _steps), vals in rows.items():
        groups[(dataset, pool, sched)][method] = vals
    out = []
    for (dataset, pool, sched), methods in sorted(groups.items(), key=lambda kv: str(kv[0])):
        if "colorization" not in methods or not any(m in methods for m in COMPARED):
            continue
        color = methods["colorization"]
        out += [f"{dataset}, pool={pool}, schedule={sched}:", "",
                "| colorization minus | " + " | ".join(LAYERS[:5]) + " | n (seeds) |",
                "|---|" + "---|" * 5 + "---|"]  # fmt: skip
        for other in (m for m in COMPARED if m in methods):
            vals = methods[other]
            ours = {x: difference(color[x], vals[x]) for x in LAYERS[:5] if x in color and x in vals}
            pub = [c - o for c, o in zip(PUBLISHED_LINEAR["Colorization"], PUBLISHED_LINEAR[paper[other]], strict=True)]
            out.append(f"| {other} (here) | " + " | ".join(cell(ours.get(x), signed=True) for x in LAYERS[:5])
                       + f" | {n_column(ours.values())} |")  # fmt: skip
            out.append(f"| *{paper[other]} (paper)* | " + " | ".join(f"{v:+.1f}" for v in pub) + " | - |")
        out.append("")
    return out


ORDERING_LAYERS = ("conv3", "conv4", "conv5")  # where the paper's representation claims are made
AUC_MARGIN = 3.0  # points of rebalanced AuC over Gray's that count as the paper's colour effect


def verdict(stat: Stat) -> str:
    """Whether a difference (colorization minus a baseline) shows the paper's ordering, by its 95%
    interval: above 0, below 0, or including it; a single seed has no interval to decide with."""
    if stat.lo is None:
        return f"not settled: {stat.n_label}, no interval ({stat.mean:+.1f})"
    if stat.lo > 0:
        return f"yes ({stat.pm_text(signed=True)}, interval above 0)"
    if stat.hi < 0:
        return f"no: reversed ({stat.pm_text(signed=True)}, interval below 0)"
    return f"not settled ({stat.pm_text(signed=True)}, interval includes 0)"


def orderings(rows, records: list[dict]) -> list[str]:
    """The paper's orderings, each stated as reproduced or not by these records: colorization ahead of
    Gaussian init and of Context Encoders at conv3-conv5 (per protocol), and colorization's
    rebalanced AuC at least ``AUC_MARGIN`` points above Gray's on the same photos."""
    paper = {"gaussian": "Gaussian init", "context_encoder": "Context Encoders"}
    groups: dict[tuple, dict[str, dict]] = defaultdict(dict)
    for (method, dataset, pool, sched, _steps), vals in rows.items():
        groups[(dataset, pool, sched)][method] = vals
    out = ["| ordering (paper) | protocol | layer | reproduced here? |", "|---|---|---|---|"]
    for (dataset, pool, sched), methods in sorted(groups.items(), key=lambda kv: str(kv[0])):
        if "colorization" not in methods:
            continue
        for other in (m for m in ("gaussian", "context_encoder") if m in methods):
            for layer in ORDERING_LAYERS:
                a, b = methods["colorization"].get(layer), methods[other].get(layer)
                if a is not None and b is not None:
                    out.append(f"| colorization > {paper[other]} | {dataset}, {pool}, {sched} | {layer} | "
                               f"{verdict(difference(a, b))} |")  # fmt: skip
    for r in records:
        if r["evaluation"] == "colorization_auc" and r["metric"] == "auc_rebal" and r["method"] == "colorization":
            gray = r.get("baselines", {}).get("Gray", {}).get("auc_rebal")
            if gray is not None:
                gap = r["value"] - gray
                ok = "yes" if gap >= AUC_MARGIN else "no"
                out.append(f"| rebalanced AuC >= Gray + {AUC_MARGIN:g} | {r['dataset']}, "
                           f"{r['options'].get('images')} photos | - | {ok} ({r['value']:.1f} vs Gray {gray:.1f}: "
                           f"{gap:+.1f}; one evaluation of fixed photos, no interval) |")  # fmt: skip
    return out if len(out) > 2 else []


def curve_points(records: list[dict]) -> dict[tuple, dict]:
    """{(dataset, protocol): {"gaussian": {layer: Stat}, role: {crops_seen: {layer: Stat}}}}: linear
    top-1 of every checkpoint of a pretext run that records its crops seen (the suite's ``of``/``step``
    methods), beside Gaussian init under the same protocol."""
    out: dict[tuple, dict] = defaultdict(lambda: defaultdict(dict))
    for (_method, role, ev, layer, dataset, metric, proto, _digest), (stat, rs) in measurements(records).items():
        if ev != "linear_probe" or metric != "top1":
            continue
        # the encoders' input (L, RGB) differs by method, not by protocol: compared across it
        proto = json.dumps({k: v for k, v in json.loads(proto).items() if k != "input"}, sort_keys=True)
        if role == "gaussian":
            out[(dataset, proto)]["gaussian"][layer] = stat
        elif (crops := (rs[0].get("pretext") or {}).get("crops_seen")) is not None:
            out[(dataset, proto)][role].setdefault(int(crops), {})[layer] = stat
    return out


def learning_curve(records: list[dict], out_dir: Path | None = None) -> list[str]:
    """Colorization minus Gaussian init and minus Context Encoders (at the same crops seen) at
    conv3-conv5 against the crops each pretext has seen, with the 95% intervals; a plot beside."""
    lines, series = [], []
    for (dataset, proto), by in sorted(curve_points(records).items(), key=lambda kv: str(kv[0])):
        color = by.get("colorization", {})
        if len(color) < 2:
            continue
        pool = json.loads(proto).get("pool")
        sched = json.loads(proto).get("schedule")
        lines += [f"{dataset}, pool={pool}, schedule={sched}:", "",
                  "| crops seen | " + " | ".join(f"minus Gaussian {x}" for x in ORDERING_LAYERS) + " | "
                  + " | ".join(f"minus Context Encoders {x}" for x in ORDERING_LAYERS) + " |",
                  "|---|" + "---|" * (2 * len(ORDERING_LAYERS))]  # fmt: skip
        ce = by.get("context_encoder", {})
        for crops in sorted(color):
            cells = []
            for base in (by.get("gaussian", {}), ce.get(crops, {})):
                for x in ORDERING_LAYERS:
                    d = difference(color[crops][x], base[x]) if x in color[crops] and x in base else None
                    cells.append(cell(d, signed=True))
                    if d is not None:
                        series.append(("Gaussian" if base is by.get("gaussian") else "Context Encoders", x, crops, d))
            lines.append(f"| {crops:,} | " + " | ".join(cells) + " |")
        lines.append("")
    if series and out_dir is not None:
        plot_curve(series, out_dir / "learning_curve.png")
        lines += ["![colorization minus the baselines against crops seen](learning_curve.png)", ""]
    return lines


def plot_curve(series, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, base in zip(axes, ("Gaussian", "Context Encoders"), strict=True):
        if not any(b == base for b, *_ in series):  # e.g. a suite cut short before that baseline's run
            ax.text(0.5, 0.5, f"no {base} records", ha="center", va="center", transform=ax.transAxes)
        for layer in ORDERING_LAYERS:
            pts = sorted((c, d) for b, x, c, d in series if b == base and x == layer)
            if not pts:
                continue
            err = [[d.mean - d.lo if d.lo is not None else 0 for _, d in pts],
                   [d.hi - d.mean if d.hi is not None else 0 for _, d in pts]]  # fmt: skip
            ax.errorbar([c for c, _ in pts], [d.mean for _, d in pts], yerr=err, marker="o", capsize=3, label=layer)
        ax.axhline(0, color="grey", linewidth=0.8)
        ax.set_title(f"colorization minus {base} (95% CI)")
        ax.set_xlabel("crops seen by the pretext")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    axes[0].set_ylabel("linear top-1 difference (points)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def pascal_column(evaluation: str, layer: str, metric: str) -> str | None:
    if evaluation == "pascal_cls" and metric == "mAP11":
        return {"freeze:conv5": "cls fc6-8", "freeze:none": "cls all"}.get(layer, f"cls {layer}")
    if evaluation == "pascal_det" and metric == "mAP11":
        return "det"
    if evaluation == "pascal_seg" and metric == "mIoU":
        return "seg"
    return None


def pipeline_check(options: dict) -> str | None:
    """How a PASCAL record that only checks the pipeline is labelled, or None for a score: fewer than
    PIPELINE_CHECK_BELOW test images (the records' option ``images``), or, in records older than that
    option, the short schedule (``conf/*_schedule/short.yaml``: made for a handful of images)."""
    images = options.get("images")
    if images is not None:
        return f"pipeline check ({images} images)" if images < PIPELINE_CHECK_BELOW else None
    if options.get("schedule") == "short":
        return "pipeline check (short schedule; test images not recorded)"
    return None


def pascal_table(records: list[dict]) -> list[str]:
    """One row per method and kind of data: scores on fewer than PIPELINE_CHECK_BELOW test images sit in
    rows of their own, labelled "pipeline check (N images)" in the table itself."""
    rows: dict[tuple[str, str], dict[str, tuple[Stat, int | None]]] = defaultdict(dict)
    datasets = set()
    for (method, _role, ev, layer, dataset, metric, _proto, _digest), (stat, rs) in measurements(records).items():
        col = pascal_column(ev, layer, metric)
        if col is None:
            continue
        options = rs[0]["options"]
        rows[(method, pipeline_check(options) or "")][col] = (stat, options.get("images"))
        datasets.add(dataset)
    cols = ["cls fc6-8", "cls all", "det", "seg"]
    cols += sorted({c for v in rows.values() for c in v} - set(cols))
    names = ", ".join(sorted(datasets)) or "-"
    out = [f"Datasets: {names}. cls: VOC07 mAP (11-point); det: VOC07 mAP@0.5 (11-point); seg: mean IoU (21 classes). "
           f"Scores on fewer than {PIPELINE_CHECK_BELOW} test images are pipeline checks, not scores: their rows say "
           "so. Each cell: the mean over seeds (± the half-width of its 95% t-interval with two seeds or more).", "",
           "| method | test data | " + " | ".join(cols) + " | n (seeds) |",
           "|---|---|" + "---|" * len(cols) + "---|"]  # fmt: skip
    for (method, check), v in sorted(rows.items()):
        counts = sorted({n for _, n in v.values() if n is not None})
        data = check or (" / ".join(f"{n} images" for n in counts) if counts else "-")
        out.append(f"| {method} | {data} | " + " | ".join(cell(v[c][0]) if c in v else "-" for c in cols)
                   + f" | {n_column(s for s, _ in v.values())} |")  # fmt: skip
    out += ["", "| *published* method | cls fc6-8 | cls all | det | seg |", "|---|---|---|---|---|"]
    out += [f"| *published* {m} | " + " | ".join(fmt(v) for v in vals) + " |" for m, vals in PUBLISHED_PASCAL.items()]
    return out


def auc_table(records: list[dict]) -> list[str]:
    rows: dict[str, dict] = defaultdict(dict)
    baselines = {}
    for r in records:
        if r["evaluation"] == "colorization_auc":
            rows[r["method"]][r["metric"]] = r["value"]
            rows[r["method"]]["images"] = r["options"].get("images")
            baselines.update(r.get("baselines", {}))
    out = ["| method | AuC | rebalanced AuC | images |", "|---|---|---|---|"]
    out += [f"| {m} | {fmt(v.get('auc'))} | {fmt(v.get('auc_rebal'))} | {v.get('images')} |" for m, v in rows.items()]
    out += [f"| {name} (same images) | {fmt(b['auc'])} | {fmt(b['auc_rebal'])} | |" for name, b in baselines.items()]
    out += ["| *published* Ours (full), ImageNet val | 89.5 | 67.3 | 10000 |", "| *published* Gray | 89.1 | 58.0 | |"]
    return out


def plot_linear(rows, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4), sharex=True)
    for (method, _dataset, pool, sched, _steps), vals in sorted(rows.items(), key=lambda kv: str(kv[0])):
        xs = [x for x in LAYERS[:5] if x in vals]  # placed by index: conv1..conv5 whatever is present
        means = [vals[x].mean for x in xs]
        err = [[vals[x].mean - vals[x].lo if vals[x].lo is not None else 0 for x in xs],
               [vals[x].hi - vals[x].mean if vals[x].hi is not None else 0 for x in xs]]  # fmt: skip
        ax.errorbar([LAYERS.index(x) for x in xs], means, yerr=err, marker="o", capsize=3,
                    label=f"{method} ({pool}, {sched})")  # fmt: skip
    ax.set_title("this suite: linear top-1 by layer (bars: 95% CI over seeds)")
    ax.set_ylabel("top-1 (%)")
    ax.legend(fontsize=7)
    for m, vals in PUBLISHED_LINEAR.items():
        ax2.plot(range(5), vals, marker="s", linestyle="--", label=m)
    ax.set_xticks(range(5), LAYERS[:5])
    ax2.set_title("published (SPEC.md, ImageNet-1k)")
    ax2.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def render(store: Path, out: Path, header: list[str] | None = None) -> Path:
    records = read_records(store)
    if not records:
        raise SystemExit(f"{store} holds no records: run benchmarks/suite.py (or an evaluation) first")
    rows = linear_rows(records)
    lines = ["# Benchmark report", "", f"Results store: `{store}` ({len(records)} records).", *(header or []), ""]
    lines += ["## Linear probes: top-1 by layer", "", *linear_table(rows), ""]
    comp = comparison(rows)
    if comp:
        lines += ["## Colorization against Context Encoders and Gaussian init (top-1 points, by layer)", "", *comp, ""]
    if order := orderings(rows, records):
        lines += ["## The paper's orderings: reproduced here?", "",
                  "Each difference's 95% interval over probe seeds decides: above 0, the ordering is reproduced; "
                  "below 0, reversed; including 0 (or a single seed), not settled. The interval covers the probes' "
                  "seeds only: each pretext is one run, so it says nothing of the spread between pretext runs.",
                  "", *order, ""]  # fmt: skip
    if curve := learning_curve(records, out):
        lines += ["## Learning curve: colorization minus the baselines against crops seen (top-1 points)", "",
                  "Each difference pairs the probe seeds both sides hold: a point probed with fewer seeds than "
                  "its baseline is compared on those seeds alone.", "", *curve]  # fmt: skip
    lines += ["## PASCAL VOC", "", *pascal_table(records), ""]
    lines += ["## Colorization quality", "", *auc_table(records), ""]
    if rows:
        plot_linear(rows, out / "linear_by_layer.png")
        lines += ["![linear top-1 by layer](linear_by_layer.png)", ""]
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.md").write_text("\n".join(lines) + "\n")
    return out / "report.md"


def report_cli() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", default=str(DEFAULT_STORE), help="results store (JSONL); default: %(default)s")
    ap.add_argument("--out", default=None, help="output folder; default: the store's folder")
    args = ap.parse_args()
    store = Path(args.store)
    if not store.is_file():
        raise FileNotFoundError(f"no results store at {store}: give --store FILE (a suite writes "
                                "outputs/suite/<name>/results.jsonl)")  # fmt: skip
    out = Path(args.out) if args.out else store.parent
    header = []
    inv = store.parent / "invocations.jsonl"
    if inv.is_file():
        runs = [json.loads(x) for x in inv.read_text().splitlines() if x.strip()]
        total = sum(r["wall_s"] for r in runs)
        header = ["", f"Suite invocations: {len(runs)}, total wall time {total / 60:.1f} min; commands: "
                  + "; ".join(sorted({f'`{r["command"]}`' for r in runs}))]  # fmt: skip
    print(f"wrote {render(store, out, header)}")


def main() -> None:
    with user_errors():
        report_cli()


if __name__ == "__main__":
    main()
