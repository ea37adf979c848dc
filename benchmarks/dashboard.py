"""Dashboards comparing colorization against Context Encoders, from a results store alone.

    python -m benchmarks.dashboard [--store STORE] [--out DIR] [--samples IMG ...] [--screenshot PNG]
    python -m benchmarks.dashboard --entity ENTITY --project PROJECT          # also publish to W&B
    python -m benchmarks.dashboard --push DIR --entity ENTITY --project PROJECT  # publish an offline DIR later
    make dashboard [STORE=...] [ARGS="--out DIR"]

Panels: linear top-1 by layer per method beside the paper's published curves; colorization minus
Context Encoders and minus Gaussian init, layer by layer; PASCAL VOC classification / detection /
segmentation; colorization AuC beside the Gray and Random baselines; sample colorizations. Records
that differ only in an option `seed` (and so perhaps in their checkpoint) are seeds of one
measurement: the mean is shown with its 95% t-interval; a single seed shows its value and n=1.

Writes DIR/index.html (one self-contained page: inline CSS, plots as inline SVG, images as data
URIs, no script, nothing fetched) and DIR/report_spec.json (the W&B report built with
wandb-workspaces, the run data its charts read, and the panels' data, so --push can publish it
later). With --entity and --project and a logged-in wandb it also logs a `dashboard` run holding
that data and saves the report, printing its URL.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import html
import io
import json
import math
import os
import re
import select
import shutil
import subprocess
import tempfile
import time
import warnings
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path

from benchmarks.report import COMPARED, LAYERS, PUBLISHED_LINEAR, PUBLISHED_PASCAL
from benchmarks.stats import Stat, difference, measurement_key, measurements, summarize, t_half_width  # noqa: F401
from benchmarks.stats import protocol_key as _protocol
from downstream.results import read_records
from pretext.cli import user_errors

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_STORE = ROOT / "benchmarks" / "results" / "imagenette_cpu" / "results.jsonl"
SPEC_FORMAT = "colorization-ssl-dashboard/1"
OURS = "colorization"
PAPER_NAME = {"context_encoder": "Context Encoders", "gaussian": "Gaussian random"}
PASCAL_COLUMNS = ("cls fc6-8", "cls all", "det", "seg")
PANELS = (
    ("linear_by_layer", "Linear top-1 by layer"),
    ("colorization_minus", "Colorization minus Context Encoders and minus Gaussian init"),
    ("pascal", "PASCAL VOC: classification, detection, segmentation"),
    ("colorization_auc", "Colorization quality: AuC beside Gray and Random"),
    ("samples", "Sample colorizations"),
)
COLORS = {
    "colorization": "#1f77b4",
    "context_encoder": "#ff7f0e",
    "gaussian": "#7f7f7f",
    "supervised": "#2ca02c",
    "kraehenbuehl": "#9467bd",
    "Gray": "#bcbd22",
    "Random": "#8c564b",
}
PUBLISHED_ROLE = {
    "Colorization": "colorization",
    "Context Encoders": "context_encoder",
    "Gaussian random": "gaussian",
    "Gaussian": "gaussian",
    "ImageNet labels (ceiling)": "supervised",
    "ImageNet labels": "supervised",
    "Kraehenbuehl init": "kraehenbuehl",
    "Kraehenbuehl": "kraehenbuehl",
}


def _readable(protocol: str, drop=("input",)) -> str:
    opts = {k: v for k, v in json.loads(protocol).items() if k not in drop}
    return ", ".join(f"{k}={v}" for k, v in opts.items()) or "default options"


def series_labels(keys: list[tuple]) -> dict[tuple, str]:
    """The method's name, plus whatever tells apart the series that share it (dataset, protocol, checkpoint)."""
    by_method = defaultdict(list)
    for k in keys:
        by_method[k[0]].append(k)
    labels = {}
    for method, ks in by_method.items():
        for k in ks:
            extra = []
            if len({x[2] for x in ks}) > 1:
                extra.append(k[2])
            if len({x[3] for x in ks}) > 1:
                extra.append(_readable(k[3]))
            if len({x[4] for x in ks}) > 1:
                extra.append(f"ckpt {str(k[4])[:8]}" if k[4] else "seeds")
            labels[k] = method + (f" ({'; '.join(extra)})" if extra else "")
    return labels


def suite_name(store: Path, records: list[dict]) -> str:
    inv = store.parent / "invocations.jsonl"
    if inv.is_file():
        for line in reversed(inv.read_text().splitlines()):
            try:
                if json.loads(line).get("suite"):
                    return json.loads(line)["suite"]
            except json.JSONDecodeError:
                continue
    names = {m.group(1) for r in records for m in [re.search(r"\bsuite=(\S+)", r.get("command") or "")] if m}
    return ", ".join(sorted(names)) if names else "unknown (no suite invocation beside the store)"


def git_info(store: Path) -> dict:
    """The commit the store came from: the last commit that changed it (and whether it changed since),
    or the checkout's HEAD when git does not track it."""

    def git(*args: str) -> str | None:
        try:
            p = subprocess.run(["git", "-C", str(store.parent), *args], capture_output=True, text=True, timeout=20)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return p.stdout.strip() if p.returncode == 0 else None

    head = git("rev-parse", "HEAD")
    if head is None:
        return {"head": None, "store_commit": None, "text": "unknown (the store is not inside a git checkout)"}
    last = git("log", "-1", "--format=%H %cs", "--", store.name) or ""
    modified = bool(git("status", "--porcelain", "--", store.name))
    info = {"head": head, "store_commit": None, "store_commit_date": None, "store_modified": modified}
    if last:
        info["store_commit"], info["store_commit_date"] = last.split(" ", 1)
        info["text"] = (
            f"{info['store_commit'][:10]} ({info['store_commit_date']}), the last commit of the store"
            + ("; the store has changed since" if modified else "")
            + f"; checkout at {head[:10]}"
        )
    else:
        info["text"] = f"the store is not committed; checkout at {head[:10]}"
    return info


def _display_path(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


# ----------------------------------------------------------------------------------------- panels
def linear_panel(ms) -> dict:
    series = defaultdict(dict)  # (method, role, dataset, protocol, digest) -> {layer: Stat}
    for (method, role, ev, layer, dataset, metric, proto, digest), (stat, _) in ms.items():
        if ev == "linear_probe" and metric == "top1":
            series[(method, role, dataset, proto, digest)][layer] = stat
    keys = sorted(series, key=lambda k: (k[1] != OURS, str(k)))
    labels = series_labels(keys)
    layers = [x for x in LAYERS if any(x in v for v in series.values())]
    layers += sorted({x for v in series.values() for x in v} - set(layers))
    common = {(k[2], _readable(k[3])) for k in keys}
    caption = (
        "Frozen encoder, one linear head per layer; top-1 (%) on the probe's validation split. "
        + ("Protocol: " + "; ".join(f"{d}, {p}" for d, p in sorted(common)) + ". " if common else "")
        + "Right: the paper's curves (SPEC.md: AlexNet on ImageNet-1k, resize protocol), not comparable in "
        "scale: shown for the ordering."
    )
    rows = [
        [
            labels[k],
            *(series[k][x].text() if x in series[k] else "-" for x in layers),
            "/".join(sorted({series[k][x].n_label for x in series[k]})),
        ]
        for k in keys
    ]
    pub_layers = list(LAYERS[:5])
    return {
        "id": "linear_by_layer",
        "caption": caption,
        "layers": layers,
        "series": [
            {"label": labels[k], "role": k[1], "method": k[0], "values": {x: s.as_dict() for x, s in series[k].items()}}
            for k in keys
        ],
        "published": [
            {"label": m, "role": PUBLISHED_ROLE.get(m, m), "values": dict(zip(pub_layers, v, strict=True))}
            for m, v in PUBLISHED_LINEAR.items()
        ],
        "tables": [
            {"columns": ["method", *layers, "n (seeds)"], "rows": rows},
            {
                "title": "published (SPEC.md)",
                "columns": ["method", *pub_layers],
                "rows": [[f"published: {m}", *(f"{x:.1f}" for x in v)] for m, v in PUBLISHED_LINEAR.items()],
            },
        ],
        "notes": [] if rows else ["No linear-probe records (evaluation linear_probe, metric top1) in the store."],
    }


def difference_panel(ms) -> dict:
    series = defaultdict(dict)
    for (method, role, ev, layer, dataset, metric, _proto, digest), (stat, rs) in ms.items():
        if ev == "linear_probe" and metric == "top1":
            # compared under the same protocol: the same options except the input, which is the encoder's own
            same = (dataset, _protocol(rs[0].get("options", {}), drop=("seed", "input")))
            series[same, (method, role, digest)][layer] = stat
    # names tell apart two checkpoints of one method; the protocol is named in the label when there are several
    labels = series_labels([(m, r, "", "{}", dg) for (_, (m, r, dg)) in series])
    protocols = sorted({p for p, _ in series})
    comparisons, rows = [], []
    for proto in protocols:
        here = {who: v for (p, who), v in series.items() if p == proto}
        for ours in (w for w in here if w[1] == OURS):
            for other in sorted((w for w in here if w[1] in COMPARED), key=lambda w: COMPARED.index(w[1])):
                layers = [x for x in LAYERS if x in here[ours] and x in here[other]]
                diffs = {x: difference(here[ours][x], here[other][x]) for x in layers}
                paper = PAPER_NAME[other[1]]
                pub = {
                    x: c - o
                    for x, c, o in zip(
                        LAYERS[:5], PUBLISHED_LINEAR["Colorization"], PUBLISHED_LINEAR[paper], strict=True
                    )
                }
                name, oname = (labels[(w[0], w[1], "", "{}", w[2])] for w in (ours, other))
                where = f"{proto[0]}, {_readable(proto[1])}" if len(protocols) > 1 else ""
                label = f"{name} minus {oname}" + (f" ({where})" if where else "")
                comparisons.append(
                    {
                        "label": label,
                        "role": other[1],
                        "paper": paper,
                        "layers": layers,
                        "values": {x: d.as_dict() for x, d in diffs.items()},
                        "published": pub,
                    }
                )
                rows.append(
                    [
                        label,
                        *(diffs[x].text(signed=True) if x in diffs else "-" for x in LAYERS),
                        "/".join(sorted({d.n_label for d in diffs.values()})) or "-",
                    ]
                )
                rows.append(
                    [
                        f"paper: Colorization minus {paper}",
                        *(f"{pub[x]:+.1f}" if x in pub else "-" for x in LAYERS),
                        "-",
                    ]
                )
    notes = []
    if not comparisons:
        notes.append("No colorization linear probe shares a protocol with a Context Encoders or Gaussian one.")
    caption = (
        "Top-1 points, colorization minus each compared method under the same probe protocol; in brackets, "
        "the 95% t-interval over seeds (paired over the seeds both hold). n=1: a single seed, no "
        "interval. Dashed: the paper's differences (ImageNet-1k)."
    )
    return {
        "id": "colorization_minus",
        "caption": caption,
        "comparisons": comparisons,
        "notes": notes,
        "tables": [{"columns": ["difference", *LAYERS, "n (seeds)"], "rows": rows}],
    }


def _pascal_column(ev: str, layer: str, metric: str) -> str | None:
    if ev == "pascal_cls" and metric == "mAP11":
        return {"freeze:conv5": "cls fc6-8", "freeze:none": "cls all"}.get(layer, f"cls {layer}")
    if ev == "pascal_det" and metric == "mAP11":
        return "det"
    if ev == "pascal_seg" and metric == "mIoU":
        return "seg"
    return None


def pascal_panel(ms) -> dict:
    cells = defaultdict(list)  # (row key, column) -> [(protocol, Stat)]
    datasets = set()
    for (method, role, ev, layer, dataset, metric, proto, digest), (stat, _) in ms.items():
        col = _pascal_column(ev, layer, metric)
        if col:
            cells[(method, role, "", "{}", digest), col].append((proto, stat))
            datasets.add(dataset)
    row_keys = sorted({rk for rk, _ in cells}, key=lambda k: (k[1] != OURS, str(k)))
    labels = series_labels(row_keys)
    table: dict[str, dict[str, Stat]] = defaultdict(dict)
    for (rk, col), entries in cells.items():
        for proto, stat in entries:
            # the same method measured under several protocols: one column each, named by what differs
            differing = {
                k
                for p, _ in entries
                for k, v in json.loads(p).items()
                if any(json.loads(q).get(k) != v for q, _ in entries)
            }
            name = col + (
                f" ({', '.join(f'{k}={json.loads(proto).get(k)}' for k in sorted(differing))})" if differing else ""
            )
            table[labels[rk]][name] = stat
    cols = [c for c in PASCAL_COLUMNS if any(c in v for v in table.values())]
    cols += sorted({c for v in table.values() for c in v} - set(cols))
    rows = [
        [
            lab,
            *(table[lab][c].text() if c in table[lab] else "-" for c in cols),
            "/".join(sorted({s.n_label for s in table[lab].values()})),
        ]
        for lab in (labels[k] for k in row_keys)
    ]
    pub_rows = [
        [f"published: {m}", *("-" if x is None else f"{x:.1f}" for x in v)] for m, v in PUBLISHED_PASCAL.items()
    ]
    caption = (
        f"Datasets: {', '.join(sorted(datasets)) or '-'}. cls: VOC07 mAP (11-point); det: VOC07 mAP@0.5 "
        "(11-point); seg: mean IoU (21 classes). Bracketed: 95% t-interval over seeds."
    )
    return {
        "id": "pascal",
        "caption": caption,
        "columns": cols,
        "methods": [
            {"label": lab, "role": k[1], "values": {c: s.as_dict() for c, s in table[lab].items()}}
            for k, lab in ((k, labels[k]) for k in row_keys)
        ],
        "published": [
            {"label": m, "role": PUBLISHED_ROLE.get(m, m), "values": dict(zip(PASCAL_COLUMNS, v, strict=True))}
            for m, v in PUBLISHED_PASCAL.items()
        ],
        "tables": [
            {"columns": ["method", *cols, "n (seeds)"], "rows": rows},
            {"title": "published (SPEC.md)", "columns": ["method", *PASCAL_COLUMNS], "rows": pub_rows},
        ],
        "notes": [] if rows else ["No PASCAL records (pascal_cls / pascal_det mAP11, pascal_seg mIoU) in the store."],
    }


def auc_panel(ms) -> dict:
    entries = defaultdict(dict)  # series key -> {metric: (Stat, records)}
    for (method, role, ev, _layer, dataset, metric, proto, digest), (stat, rs) in ms.items():
        if ev == "colorization_auc" and metric in ("auc", "auc_rebal"):
            entries[(method, role, dataset, proto, digest)][metric] = (stat, rs)
    keys = sorted(entries, key=str)
    labels = series_labels(keys)
    bars = []  # [{"label", "role", "values": {metric: Stat}}]
    for key in keys:
        bars.append({"label": labels[key], "role": key[1], "values": {m: s for m, (s, _) in entries[key].items()}})
        names = sorted({b for _, rs in entries[key].values() for r in rs for b in r.get("baselines", {})})
        for b in names:  # Gray and Random, scored on the same images as the method
            values = {
                m: summarize([r["baselines"][b][m] for r in rs])
                for m, (_, rs) in entries[key].items()
                if all(b in r.get("baselines", {}) for r in rs)
            }
            where = f"{labels[key]}'s images" if len(keys) > 1 else "same images"
            bars.append({"label": f"{b} ({where})", "role": b, "values": values})
    metrics = ("auc", "auc_rebal")
    rows = [
        [
            b["label"],
            *(b["values"][m].text() if m in b["values"] else "-" for m in metrics),
            "/".join(sorted({s.n_label for s in b["values"].values()})),
        ]
        for b in bars
    ]
    opts = sorted({f"{k[2]}, {_readable(k[3])}" for k in keys})
    caption = (
        "AuC (%) of the per-pixel ab error below thresholds 0..150, and its rebalanced form; Gray and Random "
        "scored on the same images. "
        + ("Options: " + "; ".join(opts) + ". " if opts else "")
        + "Published (ImageNet val): ours (full) 89.5 / 67.3; Gray 89.1 / 58.0."
    )
    return {
        "id": "colorization_auc",
        "caption": caption,
        "bars": [b | {"values": {m: s.as_dict() for m, s in b["values"].items()}} for b in bars],
        "tables": [{"columns": ["method / baseline", "AuC", "rebalanced AuC", "n (seeds)"], "rows": rows}],
        "notes": [] if rows else ["No colorization_auc records in the store."],
    }


def sample_sources(store: Path, records: list[dict], extra: list[str]) -> list[dict]:
    """The images the store's records point at: each colorization_auc job's best_worst.png (beside the
    store, in the suite's jobs folder) and each colorization pretext run's samples.png; then --samples."""
    found, seen = [], set()

    def add(path: Path, caption: str) -> None:
        if str(path) not in seen:
            seen.add(str(path))
            found.append({"source": str(path), "caption": caption, "exists": path.is_file()})

    roots = [store.parent]  # the suite's folder: beside the store, or where its invocations say it wrote it
    inv = store.parent / "invocations.jsonl"
    if inv.is_file():
        for line in inv.read_text().splitlines():
            with contextlib.suppress(json.JSONDecodeError, AttributeError, TypeError, KeyError):
                path = Path(json.loads(line)["store"]).parent
                roots += [p for p in (path, ROOT / path) if p not in roots]
    for r in records:
        job = r.get("suite_job") or ""
        if r["evaluation"] == "colorization_auc" and "#" in job:
            name, h = job.split("#", 1)
            candidates = [root / "jobs" / name / h / "best_worst.png" for root in roots]
            add(
                next((c for c in candidates if c.is_file()), candidates[-1]),
                f"{r['method']}: worst and best images (grey | colorized | truth), from {name}",
            )
    for r in records:
        ckpt = r.get("checkpoint") or ""
        if (r.get("pretext_method") or r["method"]) == OURS and ckpt.endswith(".ckpt"):
            add(
                Path(ckpt).parent.parent / "samples.png", f"{r['method']}: held-out photos colorized by the pretext run"
            )
    for path in extra:
        add(Path(path), "given with --samples (not one of the store's runs)")
    return found


def _image_bytes(path: Path, max_width: int = 1000) -> tuple[bytes, str]:
    """The image as a JPEG (or PNG when it has transparency), at most max_width wide."""
    from PIL import Image

    with Image.open(path) as im:
        im.load()
        if im.width > max_width:
            im = im.resize((max_width, round(im.height * max_width / im.width)), Image.Resampling.LANCZOS)
        buf = io.BytesIO()
        if im.mode in ("RGBA", "LA", "P"):
            im.save(buf, "PNG", optimize=True)
            return buf.getvalue(), "png"
        im.convert("RGB").save(buf, "JPEG", quality=88)
        return buf.getvalue(), "jpeg"


def samples_panel(store: Path, records: list[dict], extra: list[str], out: Path) -> dict:
    images, notes = [], []
    for s in sample_sources(store, records, extra):
        if not s["exists"]:
            notes.append(f"not found: {_display_path(Path(s['source']))} ({s['caption']})")
            continue
        data, kind = _image_bytes(Path(s["source"]))
        name = f"media/sample-{len(images) + 1}.{'png' if kind == 'png' else 'jpg'}"
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_bytes(data)
        images.append(
            {"file": name, "mime": f"image/{kind}", "caption": s["caption"], "source": _display_path(Path(s["source"]))}
        )
    if not images:
        notes.insert(
            0,
            "No sample image was found at the paths the store's records name (the suite's run "
            "folders are not committed); pass --samples IMAGE to show one.",
        )
    return {
        "id": "samples",
        "caption": "Grey input, colorization and truth, as the runs saved them.",
        "images": images,
        "notes": notes,
        "tables": [],
    }


def collect(store: Path, out: Path, extra_samples: list[str] | None = None) -> dict:
    records = read_records(store)
    if not records:
        raise SystemExit(f"{store} holds no records: run benchmarks/suite.py (or an evaluation) first")
    ms = measurements(records)
    suite = suite_name(store, records)
    panels = [
        linear_panel(ms),
        difference_panel(ms),
        pascal_panel(ms),
        auc_panel(ms),
        samples_panel(store, records, extra_samples or [], out),
    ]
    titles = dict(PANELS)
    for p in panels:
        p["title"] = titles[p["id"]]
    return {
        "title": f"Colorization vs Context Encoders: suite {suite}",
        "store": _display_path(store),
        "suite": suite,
        "commit": git_info(store),
        "records": len(records),
        "methods": sorted({r["method"] for r in records}),
        "generated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "run_name": f"dashboard-{re.sub(r'[^A-Za-z0-9_.-]+', '_', suite)}",
        "panels": panels,
    }


# ----------------------------------------------------------------------------------------- plots
def _color(role: str, i: int) -> str:
    import matplotlib

    return COLORS.get(role) or matplotlib.colormaps["tab10"](i % 10)


def _svg(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None}, bbox_inches="tight")
    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg") :]


def _legend(ax) -> None:
    """Below the axes, where it hides no data."""
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=2, frameon=False)


def _errorbar(ax, xs, stats: list[dict], **kw):
    ys = [s["mean"] for s in stats]
    err = [
        [s["mean"] - s["lo"] if s["lo"] is not None else 0 for s in stats],
        [s["hi"] - s["mean"] if s["hi"] is not None else 0 for s in stats],
    ]
    ax.errorbar(xs, ys, yerr=err if any(any(e) for e in err) else None, capsize=3, **kw)


def plot_linear(panel: dict):
    import matplotlib.pyplot as plt

    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for i, s in enumerate(panel["series"]):
        xs = [x for x in panel["layers"] if x in s["values"]]
        _errorbar(ax, xs, [s["values"][x] for x in xs], marker="o", label=s["label"], color=_color(s["role"], i))
    ax.set_title("this store: linear top-1 by layer")
    ax.set_ylabel("top-1 (%)")
    if panel["series"]:
        _legend(ax)
    for i, p in enumerate(panel["published"]):
        xs = list(p["values"])
        ax2.plot(
            xs, [p["values"][x] for x in xs], marker="s", linestyle="--", label=p["label"], color=_color(p["role"], i)
        )
    ax2.set_title("published (SPEC.md, ImageNet-1k)")
    _legend(ax2)
    for a in (ax, ax2):
        a.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def plot_difference(panel: dict):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(11, 3.8))
    for i, c in enumerate(panel["comparisons"]):
        color = _color(c["role"], i)
        _errorbar(ax, c["layers"], [c["values"][x] for x in c["layers"]], marker="o", color=color, label=c["label"])
        ax.plot(
            list(c["published"]),
            list(c["published"].values()),
            linestyle="--",
            marker="s",
            color=color,
            alpha=0.6,
            label=f"paper: Colorization minus {c['paper']}",
        )
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_ylabel("top-1 difference (points)")
    ax.set_title("colorization minus Context Encoders / Gaussian init, by layer")
    ax.grid(alpha=0.3)
    if panel["comparisons"]:
        _legend(ax)
    fig.tight_layout()
    return fig


def _bars(ax, groups: list[str], entries: list[dict], title: str, ylabel: str, values: bool = True):
    import numpy as np

    width = 0.8 / max(len(entries), 1)
    x = np.arange(len(groups))
    for i, e in enumerate(entries):
        stats = [e["values"].get(g) for g in groups]
        ys = [np.nan if s is None else (s["mean"] if isinstance(s, dict) else s) for s in stats]
        err = [
            [s["mean"] - s["lo"] if isinstance(s, dict) and s["lo"] is not None else 0 for s in stats],
            [s["hi"] - s["mean"] if isinstance(s, dict) and s["hi"] is not None else 0 for s in stats],
        ]
        ax.bar(
            x + (i - (len(entries) - 1) / 2) * width,
            ys,
            width,
            label=e["label"],
            color=_color(e["role"], i),
            yerr=err if any(any(v) for v in err) else None,
            capsize=3,
        )
    for bars in ax.containers if values else ():
        if hasattr(bars, "patches"):
            ax.bar_label(bars, fmt="%.1f", fontsize=7, padding=2)
    ax.set_xticks(x, groups)
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3, axis="y")
    if entries:
        _legend(ax)


def plot_pascal(panel: dict):
    import matplotlib.pyplot as plt

    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    _bars(ax, panel["columns"], panel["methods"], "this store", "mAP / mIoU (%)")
    _bars(ax2, list(PASCAL_COLUMNS), panel["published"], "published (SPEC.md)", "mAP / mIoU (%)", values=False)
    fig.tight_layout()
    return fig


def plot_auc(panel: dict):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.6))
    _bars(ax, ["auc", "auc_rebal"], panel["bars"], "AuC and rebalanced AuC", "AuC (%)")
    ax.set_xticks(ax.get_xticks(), ["AuC", "rebalanced AuC"])
    fig.tight_layout()
    return fig


PLOTS = {
    "linear_by_layer": plot_linear,
    "colorization_minus": plot_difference,
    "pascal": plot_pascal,
    "colorization_auc": plot_auc,
}


def figures(data: dict) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    svgs = {}
    for panel in data["panels"]:
        if panel["id"] in PLOTS:
            # text stays text (readable, searchable); a salt per panel keeps the SVG ids of one page distinct
            with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": f"dashboard-{panel['id']}"}):
                svgs[panel["id"]] = _svg(PLOTS[panel["id"]](panel))
    return svgs


# ----------------------------------------------------------------------------------------- HTML
CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;margin:0;color:#1d2329;
  background:#f5f6f8}
header{background:#1d2a3a;color:#fff;padding:18px 32px}
header h1{margin:0 0 8px;font-size:24px}
header dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;margin:0;font-size:14px}
header dt{color:#9fb3c8}header dd{margin:0;font-family:ui-monospace,Menlo,Consolas,monospace}
nav{padding:8px 32px;background:#e6e9ee;font-size:14px}nav a{margin-right:16px;color:#1d4e89}
main{padding:8px 32px 32px;max-width:1300px}
section{background:#fff;border:1px solid #d8dde3;border-radius:6px;padding:12px 20px;margin:16px 0}
section h2{margin:4px 0 6px;font-size:19px}
.caption{color:#4a5560;font-size:14px;margin:0 0 8px}
.plot svg{max-width:100%;height:auto}
table{border-collapse:collapse;font-size:13px;margin:8px 0}
th,td{border:1px solid #d8dde3;padding:3px 8px;text-align:right}th{background:#eef1f5}
td:first-child,th:first-child{text-align:left}
.note{color:#8a5a00;font-size:13px}
.samples figure{display:inline-block;margin:6px 12px 6px 0;vertical-align:top}
.samples img{max-width:100%;border:1px solid #d8dde3}
figcaption{font-size:13px;color:#4a5560}
footer{color:#6b7580;font-size:12px;padding:0 32px 24px}
"""


def _table_html(t: dict) -> str:
    e = html.escape
    head = "".join(f"<th>{e(str(c))}</th>" for c in t["columns"])
    body = "".join("<tr>" + "".join(f"<td>{e(str(v))}</td>" for v in row) + "</tr>" for row in t["rows"])
    title = f"<caption>{e(t['title'])}</caption>" if t.get("title") else ""
    return f"<table>{title}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>" if t["rows"] else ""


def render_html(data: dict, svgs: dict[str, str], out: Path) -> str:
    e = html.escape
    commit = data["commit"]
    meta = [
        ("results store", data["store"]),
        ("suite", data["suite"]),
        ("git commit", commit["text"]),
        ("records", f"{data['records']} ({', '.join(data['methods'])})"),
        ("generated", f"{data['generated']} by benchmarks/dashboard.py"),
    ]
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{e(data['title'])}</title><style>{CSS}</style></head><body>",
        f"<header><h1>{e(data['title'])}</h1><dl>"
        + "".join(f"<dt>{e(k)}</dt><dd>{e(v)}</dd>" for k, v in meta)
        + "</dl></header>",
        "<nav>" + "".join(f'<a href="#panel-{p["id"]}">{e(p["title"])}</a>' for p in data["panels"]) + "</nav><main>",
    ]
    for p in data["panels"]:
        parts.append(f'<section id="panel-{p["id"]}"><h2>{e(p["title"])}</h2><p class="caption">{e(p["caption"])}</p>')
        if p["id"] in svgs:
            parts.append(f'<figure class="plot" id="plot-{p["id"]}">{svgs[p["id"]]}</figure>')
        for img in p.get("images", []):
            b64 = base64.b64encode((out / img["file"]).read_bytes()).decode()
            parts.append(
                f'<div class="samples"><figure><img alt="{e(img["caption"])}" src="data:{img["mime"]};base64,'
                f'{b64}"><figcaption>{e(img["caption"])}<br>{e(img["source"])}</figcaption></figure></div>'
            )
        parts += [_table_html(t) for t in p.get("tables", [])]
        parts += [f'<p class="note">{e(n)}</p>' for n in p.get("notes", [])]
        parts.append("</section>")
    parts.append(
        "</main><footer>The W&amp;B report of these panels is in report_spec.json beside this page "
        "(python -m benchmarks.dashboard --push DIR --entity E --project P publishes it).</footer>"
    )
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


# ----------------------------------------------------------------------------------------- W&B report
def _key(*parts: str) -> str:
    return "/".join(re.sub(r"[/\n]+", "_", p) for p in parts)


def run_payload(data: dict) -> dict:
    """What the dashboard run logs: one history row per layer (x = layer_index) for the line plots, and
    summary values for the bar plots. The report's panels read exactly these keys."""
    panels = {p["id"]: p for p in data["panels"]}
    lin, diff = panels["linear_by_layer"], panels["colorization_minus"]
    layers = list(lin["layers"])
    layers += [x for c in diff["comparisons"] for x in c["layers"] if x not in layers]
    layers += [x for p in lin["published"] for x in p["values"] if x not in layers]
    history = []
    for i, layer in enumerate(layers, 1):
        row = {"layer_index": i}
        for s in lin["series"]:
            if layer in s["values"]:
                row[_key("linear", s["label"])] = s["values"][layer]["mean"]
        for p in lin["published"]:
            if layer in p["values"]:
                row[_key("published", p["label"])] = p["values"][layer]
        for c in diff["comparisons"]:
            v = c["values"].get(layer)
            if v:
                row[_key("diff", c["label"])] = v["mean"]
                if v["lo"] is not None:
                    row[_key("diff", c["label"], "ci_lo")] = v["lo"]
                    row[_key("diff", c["label"], "ci_hi")] = v["hi"]
            if layer in c["published"]:
                row[_key("paper_diff", c["paper"])] = c["published"][layer]
        history.append(row)
    summary = {}
    for m in panels["pascal"]["methods"]:
        for col, v in m["values"].items():
            summary[_key("pascal", m["label"], col)] = v["mean"]
    for b in panels["colorization_auc"]["bars"]:
        for metric, v in b["values"].items():
            summary[_key("auc", b["label"], metric)] = v["mean"]
    return {"layers": layers, "history": history, "summary": summary}


def _markdown_table(t: dict) -> str:
    if not t["rows"]:
        return ""
    esc = lambda v: str(v).replace("|", "\\|")  # noqa: E731
    lines = ["| " + " | ".join(esc(c) for c in t["columns"]) + " |", "|" + "---|" * len(t["columns"])]
    lines += ["| " + " | ".join(esc(v) for v in row) + " |" for row in t["rows"]]
    return (f"**{t['title']}**\n\n" if t.get("title") else "") + "\n".join(lines)


def reports_api():
    """wandb_workspaces.reports.v2, without the deprecation warnings its pydantic validators raise on import."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import wandb_workspaces.reports.v2 as wr
    return wr


def build_report(data: dict, entity: str = "", project: str = "", run_id: str | None = None):
    """The W&B report (wandb-workspaces): per panel a heading, its caption, its tables as markdown and a
    panel grid whose charts read the dashboard run. Offline (no entity), the run sets name no project."""
    wr = reports_api()
    payload = run_payload(data)
    keys = {k for row in payload["history"] for k in row} | set(payload["summary"])
    panels = {p["id"]: p for p in data["panels"]}
    filters = f"ID = '{run_id}'" if run_id else f"Name = '{data['run_name']}'"

    def grid(*charts):
        runset = wr.Runset(entity=entity, project=project, name=data["run_name"], filters=filters)
        return wr.PanelGrid(runsets=[runset], panels=list(charts))

    def ys(prefix: str) -> list[str]:
        return sorted(k for k in keys if k.startswith(prefix + "/"))

    axis = ", ".join(f"{i}={x}" for i, x in enumerate(payload["layers"], 1))
    charts = {
        "linear_by_layer": [
            wr.LinePlot(
                title="Linear top-1 by layer, this store (x: layer_index)",
                x="layer_index",
                y=ys("linear"),
                title_x=f"layer ({axis})",
                title_y="top-1 (%)",
            ),
            wr.LinePlot(
                title="Published curves (SPEC.md, ImageNet-1k)",
                x="layer_index",
                y=ys("published"),
                title_x=f"layer ({axis})",
                title_y="top-1 (%)",
            ),
        ],
        "colorization_minus": [
            wr.LinePlot(
                title="Colorization minus Context Encoders / Gaussian (95% CI bounds when seeded)",
                x="layer_index",
                y=ys("diff") + ys("paper_diff"),
                title_x=f"layer ({axis})",
                title_y="top-1 points",
            ),
        ],
        "pascal": [wr.BarPlot(title="PASCAL VOC (this store)", metrics=ys("pascal"), orientation="v")],
        "colorization_auc": [wr.BarPlot(title="AuC with Gray and Random", metrics=ys("auc"), orientation="v")],
        "samples": [wr.MediaBrowser(title="Sample colorizations", media_keys=["samples"], num_columns=1)],
    }
    blocks = [
        wr.P(
            f"Results store: {data['store']}. Suite: {data['suite']}. Git commit: {data['commit']['text']}. "
            f"{data['records']} records; generated {data['generated']} by benchmarks/dashboard.py."
        ),
        wr.TableOfContents(),
    ]
    for pid, title in PANELS:
        p = panels[pid]
        text = "\n\n".join(
            x for x in [*(_markdown_table(t) for t in p["tables"]), *(f"*{n}*" for n in p["notes"])] if x
        )
        has_data = {"samples": bool(p.get("images"))}.get(pid, True)
        charts_here = [
            c
            for c in charts[pid]
            if has_data and (getattr(c, "y", None) or getattr(c, "metrics", None) or isinstance(c, wr.MediaBrowser))
        ]
        blocks += [wr.H2(title), wr.P(p["caption"])]
        if text:
            blocks.append(wr.MarkdownBlock(text=text))
        if not charts_here:  # a grid needs a panel: then the panel's notes
            charts_here = [wr.MarkdownPanel(markdown=f"**{title}**\n\n{text or p['caption']}")]
        blocks.append(grid(*charts_here))
    return wr.Report(
        project=project,
        entity=entity,
        title=data["title"][:128],
        description=f"{data['store']} @ {data['commit']['text']}",
        blocks=blocks,
    )


def report_spec(data: dict, report) -> dict:
    from importlib.metadata import version

    model = report._to_model()  # the view spec that Report.save() uploads
    return {
        "format": SPEC_FORMAT,
        "wandb_workspaces": version("wandb-workspaces"),
        "panels": [{"id": pid, "title": title} for pid, title in PANELS],
        "run": {"name": data["run_name"], "job_type": "dashboard", **run_payload(data)},
        "report": model.model_dump(mode="json", by_alias=True, exclude_none=True),
        "data": data,
    }


def publish(data: dict, out: Path, entity: str, project: str) -> str:
    """Log the dashboard run (tables, per-layer history, summary, sample images) and save the report."""
    import wandb

    try:
        wandb.Api()
    except Exception as exc:  # wandb raises its own error types for a missing key
        raise SystemExit(f"--entity/--project need a logged-in wandb (wandb login): {exc}") from exc
    payload = run_payload(data)
    run = wandb.init(
        entity=entity,
        project=project,
        name=data["run_name"],
        job_type="dashboard",
        mode="online",
        config={"store": data["store"], "suite": data["suite"], "commit": data["commit"]},
    )
    for row in payload["history"]:
        run.log(row)
    run.summary.update(payload["summary"])
    tables = {
        f"tables/{p['id']}": wandb.Table(columns=[str(c) for c in t["columns"]], data=t["rows"])
        for p in data["panels"]
        for t in p["tables"][:1]
        if t["rows"]
    }
    images = [
        wandb.Image(str(out / img["file"]), caption=img["caption"])
        for p in data["panels"]
        for img in p.get("images", [])
    ]
    run.log({**tables, **({"samples": images} if images else {})})
    run_id = run.id
    run.finish()
    report = build_report(data, entity, project, run_id)
    report.save()
    return report.url


# ----------------------------------------------------------------------------------------- headless Chromium
BROWSERS = (
    "chromium",
    "chromium-browser",
    "google-chrome",
    "google-chrome-stable",
    "chrome",
    "chromium-headless-shell",
)


def find_chromium() -> str | None:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None


class Chromium:
    """Headless Chromium driven over the DevTools protocol on a pipe (--remote-debugging-pipe): no
    package beyond the browser. Collects console errors, uncaught exceptions, error log entries and
    every requested URL of each page it opens."""

    def __init__(self, binary: str | None = None, timeout: float = 30.0):
        self.binary = binary or find_chromium()
        if not self.binary:
            raise FileNotFoundError(f"no headless browser found (looked for {', '.join(BROWSERS)})")
        self.timeout = timeout
        self._profile = tempfile.TemporaryDirectory(prefix="dashboard-chromium-")
        to_child, self._to_browser = os.pipe()
        self._from_browser, from_child = os.pipe()

        def fds():  # the protocol's pipe: the browser reads fd 3 and writes fd 4
            # first above 3 and 4 (a dup2 onto itself would keep the close-on-exec flag)
            import fcntl

            a, b = (fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (to_child, from_child))
            os.dup2(a, 3)
            os.dup2(b, 4)

        args = [
            self.binary,
            "--headless",
            "--remote-debugging-pipe",
            "--disable-gpu",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-extensions",
            "--hide-scrollbars",
            "--mute-audio",
            f"--user-data-dir={self._profile.name}",
            "about:blank",
        ]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            args.insert(1, "--no-sandbox")  # Chromium refuses to run as root with its sandbox
        self.proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=fds,
            close_fds=False,  # keeps fds 3 and 4; the pipes themselves close on exec
        )
        os.close(to_child)
        os.close(from_child)
        self._buf = b""
        self._id = 0
        self.events: list[dict] = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _read(self, deadline: float) -> dict:
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from_browser], [], [], left)[0]:
                raise TimeoutError("the browser did not answer in time")
            chunk = os.read(self._from_browser, 1 << 20)
            if not chunk:
                raise ConnectionError(f"the browser closed its pipe (exit code {self.proc.poll()})")
            self._buf += chunk
        msg, self._buf = self._buf.split(b"\0", 1)
        return json.loads(msg)

    def send(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params or {}} | ({"sessionId": session} if session else {})
        data = json.dumps(msg).encode() + b"\0"
        while data:
            data = data[os.write(self._to_browser, data) :]
        deadline = time.monotonic() + self.timeout
        while True:
            m = self._read(deadline)
            if m.get("id") == self._id:
                if "error" in m:
                    raise RuntimeError(f"{method}: {m['error']}")
                return m.get("result", {})
            self.events.append(m)

    def wait_for(self, method: str, session: str) -> dict:
        deadline = time.monotonic() + self.timeout
        while True:
            for m in self.events:
                if m.get("method") == method and m.get("sessionId") == session and not m.get("_seen"):
                    m["_seen"] = True
                    return m
            self.events.append(self._read(deadline))

    def open(self, url: str, width: int = 1400, height: int = 1000) -> str:
        """Load url in a new tab; returns the tab's session once its load event has fired."""
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.send(f"{domain}.enable", session=session)
        self.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
            session,
        )
        self.send("Page.navigate", {"url": url}, session)
        self.wait_for("Page.loadEventFired", session)
        self.send("Runtime.evaluate", {"expression": "1"}, session)  # flushes the events of the load
        return session

    def errors(self, session: str) -> list[str]:
        out = []
        for m in self.events:
            if m.get("sessionId") != session:
                continue
            p = m.get("params", {})
            if m.get("method") == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                out.append(
                    "console."
                    + p["type"]
                    + ": "
                    + " ".join(str(a.get("value", a.get("description"))) for a in p.get("args", []))
                )
            elif m.get("method") == "Runtime.exceptionThrown":
                d = p.get("exceptionDetails", {})
                out.append("exception: " + str(d.get("exception", {}).get("description") or d.get("text")))
            elif m.get("method") == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
                out.append("log: " + p["entry"].get("text", "") + " " + p["entry"].get("url", ""))
        return out

    def requests(self, session: str) -> list[str]:
        return [
            m["params"]["request"]["url"]
            for m in self.events
            if m.get("sessionId") == session and m.get("method") == "Network.requestWillBeSent"
        ]

    def evaluate(self, session: str, expression: str):
        r = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True}, session)
        if "exceptionDetails" in r:
            raise RuntimeError(f"{expression}: {r['exceptionDetails']}")
        return r["result"].get("value")

    def screenshot(self, session: str, path: Path, width: int = 1400) -> Path:
        """The whole page, width CSS pixels wide, as a PNG."""
        size = self.send("Page.getLayoutMetrics", session=session)["cssContentSize"]
        self.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": math.ceil(size["height"]), "deviceScaleFactor": 1, "mobile": False},
            session,
        )
        shot = self.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}, session)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))
        return path

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.timeout = 5
                self.send("Browser.close")
            except (OSError, TimeoutError, ConnectionError, RuntimeError):
                pass
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for fd in (self._to_browser, self._from_browser):
            try:
                os.close(fd)
            except OSError:
                pass
        self._profile.cleanup()


def screenshot(page: Path, png: Path, width: int = 1400) -> list[str]:
    """A full-page screenshot of page; returns the page's console errors."""
    with Chromium() as browser:
        session = browser.open(Path(page).resolve().as_uri(), width=width)
        browser.screenshot(session, png, width)
        return browser.errors(session)


# ----------------------------------------------------------------------------------------- main
def write_dashboard(store: Path, out: Path, samples: list[str] | None = None) -> dict:
    """DIR/index.html and DIR/report_spec.json from the store; returns the spec."""
    out.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(out / "media", ignore_errors=True)  # the images of an earlier run into DIR
    data = collect(store, out, samples)
    (out / "index.html").write_text(render_html(data, figures(data), out))
    spec = report_spec(data, build_report(data))
    (out / "report_spec.json").write_text(json.dumps(spec, indent=1, allow_nan=False) + "\n")
    return spec


def dashboard_cli(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", default=str(DEFAULT_STORE), help="results store (JSONL); default: %(default)s")
    ap.add_argument("--out", default="outputs/dashboard", help="output folder; default: %(default)s")
    ap.add_argument("--entity", help="W&B entity: with --project, publish the run and the report")
    ap.add_argument("--project", help="W&B project: with --entity, publish the run and the report")
    ap.add_argument("--push", metavar="DIR", help="publish the report_spec.json of an earlier offline DIR")
    ap.add_argument("--samples", nargs="+", default=[], metavar="IMAGE", help="more sample images to show")
    ap.add_argument("--screenshot", metavar="PNG", help="also save a full-page screenshot (headless Chromium)")
    args = ap.parse_args(argv)
    online = bool(args.entity and args.project)
    if (args.entity or args.project or args.push) and not online:
        ap.error("publishing needs both --entity and --project")
    if args.push:
        spec = json.loads((Path(args.push) / "report_spec.json").read_text())
        print(f"published: {publish(spec['data'], Path(args.push), args.entity, args.project)}")
        return
    out = Path(args.out)
    spec = write_dashboard(Path(args.store), out, args.samples)
    print(f"wrote {out / 'index.html'} and {out / 'report_spec.json'} ({len(spec['panels'])} panels)")
    if args.screenshot:
        errors = screenshot(out / "index.html", Path(args.screenshot))
        print(f"wrote {args.screenshot}" + (f"; console errors: {errors}" if errors else ""))
    if online:
        print(f"published: {publish(spec['data'], out, args.entity, args.project)}")


def main(argv: list[str] | None = None) -> None:
    with user_errors():
        dashboard_cli(argv)


if __name__ == "__main__":
    main()
