"""Colorization quality, as in the paper's Table 1 (SPEC.md: Colorization quality).

    python pretext/evaluate.py data.root=/imagenet/val                  # Ground truth, Gray, Random
    python pretext/evaluate.py ckpt=FILE data.root=DIR [sweep_T=true]   # + the checkpoint
    python pretext/evaluate.py ckpt=FILE data.root=DIR classifier.arch=vgg16 classifier.weights=FILE

AuC of the cumulative accuracy curve over thresholds 0..150 (ab L2 error), plain and rebalanced
(each pixel weighted by the pure inverse prior of its true bin), at full image resolution,
streaming over the dataset. Writes results.json, table.md, best_worst.png (and auc_vs_T.png) and
prints where they are. An unreadable image is skipped and named; the Random row pairs each image
with another readable one, so an unreadable partner never drops a good image.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.progress import track
from rich.table import Table

from pretext.ab_histogram import dataset_grid_histogram
from pretext.assets import stats_file
from pretext.checkpoint_files import Colorizer, load_colorizer
from pretext.cli import entry
from pretext.color import TEMPERATURE, Gamut, SoftEncoder, lab_to_rgb, rgb_to_lab
from pretext.images import list_images, read_rgb
from pretext.metrics import AuC, ab_error, auc, inverse_prior_weights
from pretext.predict import net_output, predict_ab

log = logging.getLogger("pretext.evaluate")


def full_size_ab(out: torch.Tensor, model: Colorizer, T: float, size: tuple[int, int]) -> torch.Tensor:
    """Predicted ab upsampled to the image's full size."""
    ab = predict_ab(out, model.gamut.centers.to(out.device), T)
    return F.interpolate(ab, size=size, mode="bilinear", align_corners=False)


def load_classifier(cfg: DictConfig, device: str):
    import torchvision

    if cfg.classifier.weights is None:
        raise ValueError("classifier.arch is set but classifier.weights is not: give the classifier's weights file")
    state = torch.load(cfg.classifier.weights, map_location="cpu", weights_only=True)
    if isinstance(state, dict):
        state = state.get("state_dict", state.get("model", state))
    head = [v for k, v in state.items() if k.endswith("weight") and v.dim() == 2][-1]
    net = torchvision.models.get_model(cfg.classifier.arch, weights=None, num_classes=head.shape[0])
    net.load_state_dict(state)
    return net.to(device).eval()


def class_labels(files: list[Path], root: Path, classes_file: str | None) -> list[int]:
    folders = [f.relative_to(root).parts[0] if len(f.relative_to(root).parts) > 1 else "" for f in files]
    names = Path(classes_file).read_text().split() if classes_file else sorted(set(folders))
    index = {n: i for i, n in enumerate(names)}
    missing = sorted(set(folders) - set(index))
    if missing:
        raise ValueError(f"class folders {missing[:5]} are not among the classifier's classes")
    return [index[d] for d in folders]


def classify(net, rgb: torch.Tensor, size: int) -> int:
    """Top-1 class of one image (1, 3, H, W) float in [0, 1], ImageNet normalisation, centre crop."""
    from torchvision.transforms.v2.functional import center_crop, normalize, resize

    x = center_crop(resize(rgb, 256, antialias=True), size)
    x = normalize(x, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
    with torch.no_grad():
        return int(net(x).argmax(1))


def read_image(path: Path, device) -> torch.Tensor | None:
    """(1, 3, H, W) uint8 on ``device``, or None when the file cannot be decoded."""
    try:
        return read_rgb(path).to(device)[None]
    except (RuntimeError, OSError, ValueError) as err:
        log.debug("unreadable image %s: %s", path, err)
        return None


def random_partner(i: int, order: list[int], files: list[Path], unreadable: set[int], device) -> torch.Tensor:
    """The Random row's colours for image ``i``: those of image ``order[i]``, else of the next image in
    ``order`` that reads (never ``i`` itself while another is readable; ``i`` alone: itself)."""
    n = len(files)
    for step in range(n):
        j = order[(i + step) % n]
        if j == i or j in unreadable:
            continue
        img = read_image(files[j], device)
        if img is not None:
            return img
        unreadable.add(j)
    return read_image(files[i], device)


def measure_prior(files: list[Path], gamut: Gamut) -> Gamut:
    counts, unreadable = dataset_grid_histogram(files, num_workers=0)
    if len(unreadable) == len(files):
        raise ValueError(f"none of the {len(files)} images under {files[0].parent} could be read: check the folder")
    return gamut.with_prior_from(counts)[0]


def evaluate(cfg: DictConfig) -> dict:
    device = cfg.device if cfg.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    out_dir = Path(cfg.output)
    root = Path(cfg.data.root)
    files = list_images(root)[: cfg.data.max_images]
    model = load_colorizer(cfg.ckpt, device) if cfg.ckpt else None
    if cfg.color.stats:
        gamut = Gamut.from_file(stats_file(cfg.color.stats))
        if model is not None and not torch.equal(gamut.centers, model.gamut.centers):
            raise ValueError(f"{cfg.color.stats} holds another gamut than the checkpoint's: drop color.stats")
        prior_source = str(stats_file(cfg.color.stats))
    elif model is not None and model.gamut.prior is not None:
        gamut, prior_source = model.gamut, f"checkpoint {cfg.ckpt}"
    else:
        gamut, prior_source = measure_prior(files, Gamut.from_srgb()), "the evaluated images (sRGB gamut)"
    prior = gamut.prior.to(device)
    encoder = SoftEncoder(gamut.centers, k=1).to(device)
    if cfg.temperature is not None:
        T = float(cfg.temperature)
    else:
        T = model.temperature if model is not None else TEMPERATURE
    Ts = sorted(set(cfg.T_values) | {T}) if (cfg.sweep_T and model is not None) else [T]

    rows = {name: AuC(prior).to(device) for name in ("Ground truth", "Gray", "Random")}
    if model is not None:
        for t in Ts:
            rows[f"checkpoint T={t:g}"] = AuC(prior).to(device)
    classifier = load_classifier(cfg, device) if cfg.classifier.arch else None
    labels = class_labels(files, root, cfg.classifier.classes) if classifier is not None else None
    hits = {"colour": 0, "grey": 0, "colorized": 0}
    order = torch.randperm(len(files), generator=torch.Generator().manual_seed(cfg.seed)).tolist()
    per_image: list[tuple[float, int]] = []
    skipped, unreadable = [], set()
    for i in track(range(len(files)), description="scoring"):
        rgb = None if i in unreadable else read_image(files[i], device)
        if rgb is None:
            skipped.append(str(files[i]))
            unreadable.add(i)
            continue
        other = random_partner(i, order, files, unreadable, device)
        lab = rgb_to_lab(rgb)
        ab = lab[:, 1:]
        _, _, nearest = encoder(ab)
        rows["Ground truth"].update(ab, ab, nearest)
        rows["Gray"].update(torch.zeros_like(ab), ab, nearest)
        random_ab = F.interpolate(rgb_to_lab(other)[:, 1:], size=ab.shape[-2:], mode="bilinear", align_corners=False)
        rows["Random"].update(random_ab, ab, nearest)
        pred = torch.zeros_like(ab)
        if model is not None:
            out = net_output(model.net, rgb, cfg.net_size)
            for t in Ts:
                pred_t = full_size_ab(out, model, t, ab.shape[-2:])
                rows[f"checkpoint T={t:g}"].update(pred_t, ab, nearest)
                if t == T:
                    pred = pred_t
        err = ab_error(pred, ab)
        per_image.append((float(auc(err, inverse_prior_weights(nearest, prior))), i))
        if classifier is not None:
            colorized = lab_to_rgb(torch.cat([lab[:, :1], pred], 1))
            grey = lab_to_rgb(torch.cat([lab[:, :1], torch.zeros_like(ab)], 1))
            for key, img in (("colour", rgb.float() / 255), ("grey", grey), ("colorized", colorized)):
                hits[key] += classify(classifier, img, cfg.classifier.size) == labels[i]

    n = len(files) - len(skipped)
    if n == 0:
        raise ValueError(f"none of the {len(files)} images under {root} could be read")
    scored_by_classifier = {"Ground truth": "colour", "Gray": "grey"}
    if model is not None:
        scored_by_classifier[f"checkpoint T={T:g}"] = "colorized"
    table = []
    for name, metric in rows.items():
        m = metric.compute()
        kind, _, t = name.partition(" T=")
        row = {"method": name, "kind": ROW_KINDS.get(kind, "checkpoint"), "auc": float(m["auc"]),
               "auc_rebal": float(m["auc_rebal"])}  # fmt: skip
        if t:
            row["temperature"] = float(t)
        if classifier is not None and name in scored_by_classifier:
            row["classifier_top1"] = 100.0 * hits[scored_by_classifier[name]] / n
        table.append(row)
    result = {
        "command": " ".join(sys.argv),
        "data": str(root),
        "images": n,
        "skipped": skipped,
        "checkpoint": cfg.ckpt,
        "temperature": T,
        "net_size": cfg.net_size,
        "resolution": "full image resolution",
        "rebalanced_auc_weights": "pure inverse prior of the true bin",
        "prior": prior_source,
        "gamut_bins": gamut.Q,
        "rows": table,
        "checkpoint_row": next((r for r in table if r.get("temperature") == T), None),  # the model at its T
        "config": OmegaConf.to_container(cfg, resolve=True),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    written = {"results": out_dir / "results.json", "table": out_dir / "table.md",
               "best and worst": out_dir / "best_worst.png"}  # fmt: skip
    written["results"].write_text(json.dumps(result, indent=2) + "\n")
    written["table"].write_text(markdown_table(table))
    best_worst(files, per_image, model, T, cfg.net_size, device, written["best and worst"])
    if len(Ts) > 1:
        written["AuC against T"] = out_dir / "auc_vs_T.png"
        plot_sweep([r for r in table if r["method"].startswith("checkpoint")], written["AuC against T"])
    print_table(table, result)
    if skipped:
        print(f"skipped {len(skipped)} unreadable image{'s' if len(skipped) > 1 else ''}: " + ", ".join(skipped))
    for what, path in written.items():
        print(f"{what}: {path}")
    return result


ROW_KINDS = {"Ground truth": "ground_truth", "Gray": "gray", "Random": "random", "checkpoint": "checkpoint"}


def markdown_table(rows: list[dict]) -> str:
    top1 = any("classifier_top1" in r for r in rows)
    head = "| method | AuC | rebal AuC |" + (" top-1 |" if top1 else "")
    lines = [head, "|---|---|---|" + ("---|" if top1 else "")]
    for r in rows:
        cell = f" {r['classifier_top1']:.1f} |" if "classifier_top1" in r else (" - |" if top1 else "")
        lines.append(f"| {r['method']} | {r['auc']:.1f} | {r['auc_rebal']:.1f} |" + cell)
    return "\n".join(lines) + "\n"


def print_table(rows: list[dict], result: dict) -> None:
    t = Table(title=f"{result['images']} images from {result['data']} (prior: {result['prior']})")
    for col in ("method", "AuC", "rebal AuC", "classifier top-1"):
        t.add_column(col)
    for r in rows:
        top1 = f"{r['classifier_top1']:.1f}" if "classifier_top1" in r else "-"
        t.add_row(r["method"], f"{r['auc']:.1f}", f"{r['auc_rebal']:.1f}", top1)
    Console().print(t)


def best_worst(files, per_image, model, T, net_size, device, path: Path, n: int = 4) -> None:
    """Rows of grey | colorized (Gray when no checkpoint) | truth for the worst and best images by
    rebalanced AuC, each row labelled with its rank, its score and its file."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from torchvision.transforms.v2.functional import center_crop, resize

    ranked = sorted(per_image)
    if len(ranked) <= 2 * n:  # few images: all of them, the lower half as worst
        half = (len(ranked) + 1) // 2
        picks = [(f"worst {k + 1}", *ranked[k]) for k in range(half)]
        picks += [(f"best {len(ranked) - k}", *ranked[k]) for k in range(half, len(ranked))]
    else:
        picks = [(f"worst {k + 1}", *ranked[k]) for k in range(n)]
        picks += [(f"best {n - k}", *ranked[len(ranked) - n + k]) for k in range(n)]
    middle = f"colorized (T={T:g})" if model is not None else "Gray (no checkpoint)"
    fig, axes = plt.subplots(len(picks), 3, figsize=(7.5, 2.3 * len(picks) + 0.3), squeeze=False)
    for row, (label, score, i) in enumerate(picks):
        rgb = center_crop(resize(read_rgb(files[i]), 192, antialias=True), 192).to(device)[None]
        lab = rgb_to_lab(rgb)
        pred = torch.zeros_like(lab[:, 1:])
        if model is not None:
            pred = full_size_ab(net_output(model.net, rgb, net_size), model, T, lab.shape[-2:])
        grey = lab_to_rgb(torch.cat([lab[:, :1], torch.zeros_like(pred)], 1))
        tiles = (grey[0], lab_to_rgb(torch.cat([lab[:, :1], pred], 1))[0], rgb[0].float() / 255)
        for col, (tile, title) in enumerate(zip(tiles, ("grey", middle, "truth"), strict=True)):
            ax = axes[row, col]
            ax.imshow(tile.permute(1, 2, 0).clamp(0, 1).cpu().numpy())
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"{label} | {title}", fontsize=8)
        axes[row, 0].set_ylabel(f"{label}\nrebal AuC {score:.1f}\n{Path(files[i]).name}", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_sweep(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ts = [float(r["method"].split("T=")[1]) for r in rows]
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(ts, [r["auc"] for r in rows], "o-", label="AuC")
    ax.plot(ts, [r["auc_rebal"] for r in rows], "s-", label="rebalanced AuC")
    ax.set_xlabel("annealed-mean temperature T")
    ax.set_ylabel("%")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


@entry("evaluate")
def main(cfg: DictConfig) -> None:
    evaluate(cfg)


if __name__ == "__main__":
    main()
