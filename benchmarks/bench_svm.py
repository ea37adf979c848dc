"""The SVM probe on Imagenette conv5 (Gaussian init): end to end, and its torch solver against
scikit-learn's LinearSVC on the same cached features.

    python benchmarks/bench_svm.py [--root ../shared/data/imagenette] [--subset 1500] [--no-bf16]
    python benchmarks/bench_svm.py --only-end-to-end 2      # step 1 alone, twice: bench_svm_end_to_end.json

1. End to end: ``python downstream/svm_probe.py init=gaussian layer=conv5 data.kind=folder
   data.root=ROOT`` as a user runs it, with an empty feature cache (extraction included), timed.
2. On its cached features (all 9469 train -> 3925 val photos): the torch solver's whole protocol
   (3-fold CV over the 7 costs, refit), then LinearSVC refit on all of train at the costs the torch
   solver chose, class by class: wall times, mAP, top-1, per-class AP, the primal objective each
   reached, and the largest gap of test decision values.
3. The whole protocol with LinearSVC (CV and refit, class by class) is too slow for all of train
   on this CPU (its dual solver takes minutes a fit at cost 100 and stops at max_iter), so both
   protocols are compared on an even subset of train (``--subset``), scored on all of val: the
   costs each chose, mAP, top-1 and wall times.
4. bf16 against fp32 feature extraction: seconds an image on the same photos, interleaved, and the
   torch protocol's scores on bf16 features of all photos (``--no-bf16`` leaves this out).

The machine is shared: the 1-minute load average is recorded before and after each part.
Writes benchmarks/results/bench_svm.json.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from benchmarks.common import write_result
from downstream import svm_probe as svm
from downstream.encoder import FrozenEncoder, encoder_from_config
from downstream.features import extract_features
from pretext.checkpoint_files import repo_path

ROOT = Path(__file__).resolve().parents[1]


def loadavg() -> float:
    return round(os.getloadavg()[0], 2)


def config(root: Path, cache: Path, *extra: str):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        base = ["init=gaussian", "layer=conv5", "data.kind=folder", f"data.root={root}", f"cache_dir={cache}"]
        return compose("svm_probe", overrides=[*base, "results=null", *extra])


def features(cfg):
    """(train x, train labels (n, K), test x, test labels, classes) through the probe's own cache."""
    net, info, layers = encoder_from_config(cfg)
    encoder = FrozenEncoder(net, layers)
    out = []
    for split in svm.split_names(cfg):
        paths, labels, classes = svm.dataset_items(cfg, split)
        f = svm.normalised_features(cfg, encoder, info, split, paths, layers)
        out += [f["conv5"], labels[f["readable"]]]
    return (*out, classes)


def objective(x: np.ndarray, y: np.ndarray, w: np.ndarray, cost: float, pos_weight: float) -> float:
    """LinearSVC's primal objective (regularised intercept, as liblinear) at weights w = (coef, b)."""
    z = x.astype(np.float64) @ w[:-1] + w[-1]
    c = cost * np.where(y == 1, pos_weight, 1.0)
    return float(0.5 * w @ w + (c * np.maximum(0.0, 1 - y * z) ** 2).sum())


def top1(decisions: np.ndarray, labels: np.ndarray) -> float:
    return float((decisions.argmax(1) == labels.argmax(1)).mean() * 100)


def torch_protocol(xtr, ytr, xte, yte, cfg) -> tuple[dict, list[dict]]:
    t = time.perf_counter()
    per = svm.torch_svms(xtr, ytr, xte, yte, list(cfg.costs), cfg.cv_folds, cfg.positive_weight, cfg.seed,
                         cfg.fallback_cost, cfg.tol, cfg.precond_rank, "torch SVMs")  # fmt: skip
    seconds = time.perf_counter() - t
    dec = np.stack([r["decision"] for r in per], 1)
    return {"seconds": round(seconds, 1), "mAP": np.mean([r["ap"] for r in per]), "top1": top1(dec, yte),
            "costs": [r["cost"] for r in per], "per_class_ap": [r["ap"] for r in per]}, per  # fmt: skip


def liblinear_protocol(xtr, ytr, xte, yte, cfg) -> tuple[dict, list[dict]]:
    t = time.perf_counter()
    per = []
    for j in range(ytr.shape[1]):
        per.append(svm.svm_class_ap(xtr, ytr[:, j], xte, yte[:, j], list(cfg.costs), cfg.cv_folds, cfg.positive_weight,
                                    cfg.max_iter, cfg.seed, cfg.fallback_cost))  # fmt: skip
        print(f"liblinear protocol: class {j + 1}/{ytr.shape[1]} ({time.perf_counter() - t:.0f} s)", flush=True)
    seconds = time.perf_counter() - t
    dec = np.stack([r["decision"] for r in per], 1)
    return {"seconds": round(seconds, 1), "mAP": np.mean([r["ap"] for r in per]), "top1": top1(dec, yte),
            "costs": [r["cost"] for r in per], "per_class_ap": [r["ap"] for r in per]}, per  # fmt: skip


def end_to_end(root: Path, cache: Path) -> dict:
    cmd = [sys.executable, "downstream/svm_probe.py", "init=gaussian", "layer=conv5", "data.kind=folder",
           f"data.root={repo_path(root)}", f"cache_dir={repo_path(cache)}", "results=null"]  # fmt: skip
    before = loadavg()
    t = time.perf_counter()
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env={**os.environ, "WANDB_MODE": "offline"})
    wall = time.perf_counter() - t
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-3000:])
    lines = out.stdout.splitlines()
    keep = [x for x in lines if x.startswith(("expected", "conv5", "done", "gaussian on", "SVMs conv5"))]
    score = next(x for x in lines if x.startswith("conv5")).split()
    return {"command": " ".join(["python", *cmd[1:]]), "wall_s": round(wall, 1), "printed": keep,
            "mAP": float(score[2]), "top1": float(score[score.index("top-1") + 1]),
            "loadavg_1min_before": before, "loadavg_1min_after": loadavg()}  # fmt: skip


def extraction_precision(root: Path, images: int, repeats: int = 2) -> dict:
    """Seconds an image of the probe's own extraction, fp32 and bf16 alternately on the same photos."""
    cfg = config(root, Path("unused"))
    paths, _, _ = svm.dataset_items(cfg, "val")
    paths = [paths[i] for i in svm.even_subset(len(paths), images)]
    pool = OmegaConf.to_container(cfg.pool, resolve=True)
    times: dict[str, list[float]] = {"fp32": [], "bf16": []}
    feats = {}
    before = loadavg()
    for _ in range(repeats):
        for precision in ("fp32", "bf16"):
            cfg.precision = precision
            net, _, layers = encoder_from_config(cfg)
            t = time.perf_counter()
            f = extract_features(FrozenEncoder(net, layers), paths, layers, "avg", pool, 227, 256, cfg)
            times[precision].append(time.perf_counter() - t)
            feats[precision] = f["conv5"]
    diff = np.linalg.norm(feats["fp32"] - feats["bf16"]) / np.linalg.norm(feats["fp32"])
    return {"images": len(paths), "repeats": repeats,
            "ms_per_image": {k: round(1000 * min(v) / len(paths), 2) for k, v in times.items()},
            "all_seconds": {k: [round(x, 1) for x in v] for k, v in times.items()},
            "feature_relative_difference": float(diff),
            "loadavg_1min_before": before, "loadavg_1min_after": loadavg()}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", default=str(ROOT.parent / "shared" / "data" / "imagenette"))
    ap.add_argument("--cache", default=str(ROOT / "outputs" / "bench_svm_cache"))
    ap.add_argument("--subset", type=int, default=1500, help="train images for the whole-protocol comparison")
    ap.add_argument("--no-bf16", action="store_true")
    ap.add_argument("--skip-end-to-end", action="store_true", help="reuse the cache (the timing is then left out)")
    ap.add_argument("--only-end-to-end", type=int, default=0, metavar="N",
                    help="only time the command N times (cache emptied each time): bench_svm_end_to_end.json")
    args = ap.parse_args()
    root, cache = Path(args.root).resolve(), Path(args.cache)
    result: dict = {"dataset": repo_path(root), "layer": "conv5", "encoder": "init=gaussian",
                    "loadavg_1min_start": loadavg()}
    if args.only_end_to_end:
        import shutil

        runs = []
        for _ in range(args.only_end_to_end):
            shutil.rmtree(cache, ignore_errors=True)
            runs.append(end_to_end(root, cache))
            print(runs[-1], flush=True)
        print(write_result("bench_svm_end_to_end", result | {"runs": runs, "loadavg_1min_end": loadavg()}))
        return

    if not args.skip_end_to_end:
        import shutil

        shutil.rmtree(cache, ignore_errors=True)  # extraction included
        result["end_to_end"] = end_to_end(root, cache)
        print(result["end_to_end"], flush=True)

    cfg = config(root, cache)
    xtr, ytr, xte, yte, classes = features(cfg)
    result["classes"] = classes
    before = loadavg()
    ours, per = torch_protocol(xtr, ytr, xte, yte, cfg)
    # LinearSVC on all of train at the costs the torch protocol chose
    t0 = time.perf_counter()
    ref_dec, seconds, objectives, max_gap = [], [], [], 0.0
    for j, r in enumerate(per):
        t = time.perf_counter()
        s = svm.liblinear_fit(xtr, ytr[:, j], r["cost"], cfg.positive_weight, cfg.max_iter)
        seconds.append(round(time.perf_counter() - t, 1))
        ref_dec.append(s.decision_function(xte))
        w_ref = np.r_[s.coef_[0], s.intercept_].astype(np.float64)
        objectives.append({"cost": r["cost"], "torch": objective(xtr, ytr[:, j], r["weights"], r["cost"], 2.0),
                           "liblinear": objective(xtr, ytr[:, j], w_ref, r["cost"], 2.0),
                           "liblinear_iterations": int(np.max(s.n_iter_))})  # fmt: skip
        max_gap = max(max_gap, float(np.abs(ref_dec[-1] - r["decision"]).max()))
        print(f"LinearSVC refit {j + 1}/{len(per)} at C={r['cost']:g}: {seconds[-1]} s", flush=True)
    ref_dec = np.stack(ref_dec, 1)
    ref_ap = [svm.average_precision(yte[:, j], ref_dec[:, j]) for j in range(len(per))]
    ref = {"seconds": round(time.perf_counter() - t0, 1), "per_class_seconds": seconds, "mAP": float(np.mean(ref_ap)),
           "top1": top1(ref_dec, yte), "per_class_ap": ref_ap, "max_iter": int(cfg.max_iter)}  # fmt: skip
    result["all_of_imagenette"] = {
        "train_images": len(xtr), "test_images": len(xte), "dims": int(xtr.shape[1]),
        "torch_protocol": ours, "liblinear_refit_at_torch_costs": ref,
        "agreement": {"mAP_difference": ours["mAP"] - ref["mAP"], "top1_difference": ours["top1"] - ref["top1"],
                      "largest_class_ap_difference": float(np.abs(np.subtract(ours["per_class_ap"], ref_ap)).max()),
                      "largest_test_decision_difference": max_gap, "objectives": objectives},
        "loadavg_1min_before": before, "loadavg_1min_after": loadavg(),
    }  # fmt: skip
    print(result["all_of_imagenette"]["agreement"], flush=True)

    keep = svm.even_subset(len(xtr), args.subset)
    before = loadavg()
    sub_ours, _ = torch_protocol(xtr[keep], ytr[keep], xte, yte, cfg)
    sub_ref, _ = liblinear_protocol(xtr[keep], ytr[keep], xte, yte, cfg)
    result["subset"] = {
        "train_images": len(keep), "test_images": len(xte), "how": "an even subset of train (every k-th photo)",
        "torch_protocol": sub_ours, "liblinear_protocol": sub_ref,
        "agreement": {"same_costs": int(sum(a == b for a, b in zip(sub_ours["costs"], sub_ref["costs"], strict=True))),
                      "mAP_difference": sub_ours["mAP"] - sub_ref["mAP"],
                      "top1_difference": sub_ours["top1"] - sub_ref["top1"],
                      "speedup": sub_ref["seconds"] / sub_ours["seconds"]},
        "loadavg_1min_before": before, "loadavg_1min_after": loadavg(),
    }  # fmt: skip
    print(result["subset"]["agreement"], flush=True)

    if not args.no_bf16:
        result["precision"] = {"extraction": extraction_precision(root, 512)}
        bcfg = config(root, cache, "precision=bf16")
        t = time.perf_counter()
        bx, by, bxt, byt, _ = features(bcfg)
        extract = time.perf_counter() - t
        scores, _ = torch_protocol(bx, by, bxt, byt, bcfg)
        result["precision"]["bf16_features_all_of_imagenette"] = {
            "extraction_seconds": round(extract, 1), "torch_protocol": scores,
            "mAP_difference_to_fp32": scores["mAP"] - ours["mAP"],
            "top1_difference_to_fp32": scores["top1"] - ours["top1"],
        }  # fmt: skip
    result["loadavg_1min_end"] = loadavg()
    print(write_result("bench_svm", result))


if __name__ == "__main__":
    main()
