"""The FAIR benchmark's linear SVM probe on frozen, pooled, L2-normalised features.

    python downstream/svm_probe.py ckpt=PATH layer=conv5                  # VOC07 trainval -> test
    python downstream/svm_probe.py init=gaussian data.kind=folder data.root=DIR data.name=NAME  # any labelled folder

One linear SVM per class (squared hinge, positives weighted 2:1), its cost chosen from ``costs`` by
``cv_folds``-fold cross-validated AP on the training split, then refit on all of it and scored on
the test split. VOC07: images whose only objects of a class are "difficult" are left out of that
class's training and AP. Features are cached under ``cache_dir``; a second run (another cost sweep)
reads them back. AP is scikit-learn's average precision (area under the precision-recall steps).
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

import hydra
import numpy as np
from omegaconf import DictConfig, OmegaConf

from downstream.encoder import FrozenEncoder, encoder_from_config
from downstream.evaluation import Outcome
from downstream.results import make_record, write_records

log = logging.getLogger("downstream.svm_probe")


# ------------------------------------------------------------------------------- pure parts
def l2_normalise(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def choose_cost(x: np.ndarray, y: np.ndarray, costs, folds: int, pos_weight: float, max_iter: int, seed: int = 0):
    """(best cost, {cost: mean CV AP}) for one class; ``y`` in {-1, 1}."""
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.svm import LinearSVC

    cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
    scores = {}
    for c in costs:
        svm = LinearSVC(C=c, loss="squared_hinge", class_weight={1: pos_weight, -1: 1.0}, max_iter=max_iter)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ConvergenceWarning at extreme costs: the CV score judges them
            scores[float(c)] = float(cross_val_score(svm, x, y, cv=cv, scoring="average_precision").mean())
    best = max(scores, key=lambda c: (scores[c], -c))  # ties: the smaller cost
    return best, scores


def svm_class_ap(train_x, train_y, test_x, test_y, costs, folds, pos_weight, max_iter, seed=0) -> dict | None:
    """AP of one class (labels in {1, 0, -1}; 0 = ignored); None when the class cannot be
    cross-validated (fewer positives or negatives than folds) or has no test positive."""
    from sklearn.metrics import average_precision_score
    from sklearn.svm import LinearSVC

    keep, tkeep = train_y != 0, test_y != 0
    xtr, ytr, xte, yte = train_x[keep], train_y[keep], test_x[tkeep], test_y[tkeep]
    if min((ytr == 1).sum(), (ytr == -1).sum()) < folds or (yte == 1).sum() == 0:
        return None
    best, scores = choose_cost(xtr, ytr, costs, folds, pos_weight, max_iter, seed)
    svm = LinearSVC(C=best, loss="squared_hinge", class_weight={1: pos_weight, -1: 1.0}, max_iter=max_iter)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        svm.fit(xtr, ytr)
    ap = average_precision_score(yte == 1, svm.decision_function(xte)) * 100
    return {"ap": float(ap), "cost": best, "cv_ap": scores, "decision": svm.decision_function(test_x)}


# ------------------------------------------------------------------------------- features
def dataset_items(cfg: DictConfig, split: str):
    """(paths, labels (N, K) in {1, 0, -1}, class names)."""
    from downstream.voc import VOC_CLASSES, classification_set
    from pretext.data import class_folders

    if cfg.data.kind == "voc07":
        paths, labels = classification_set(cfg.data.root, 2007, split)
        return paths, labels, list(VOC_CLASSES)
    if cfg.data.kind == "folder":
        classes, files, idx = class_folders(Path(cfg.data.root) / split)
        labels = -np.ones((len(files), len(classes)), dtype=np.int8)
        labels[np.arange(len(files)), idx] = 1
        return files, labels, classes
    raise ValueError(f"data.kind={cfg.data.kind!r} is not a dataset kind; valid: voc07, folder")


def extract_features(encoder, paths, layers, pool: str, pool_spec: dict, crop: int, resize: int, cfg) -> dict:
    """{layer: (N, D) float32 L2-normalised} for every readable image, plus ``readable`` (N,) bool."""
    import torch
    from torch.utils.data import DataLoader

    from downstream.reduce import reduce_map
    from pretext.data import CropDataset, collate_crops

    data = CropDataset(paths, crop, resize, train=False, min_scale=None)
    readable = np.ones(len(paths), dtype=bool)
    out = {k: [] for k in layers}
    loader = DataLoader(data, batch_size=1, num_workers=cfg.num_workers, collate_fn=lambda b: b)
    batch: list = []
    for i, (item,) in enumerate(loader):
        if item is None:
            readable[i] = False
        else:
            batch.append(item)
        if batch and (len(batch) == cfg.batch_size or i == len(paths) - 1):
            x, _ = collate_crops(batch)
            with torch.no_grad():
                feats = encoder(x)
            for k in layers:
                spec = {**pool_spec["layers"][k], "align_corners": pool_spec.get("align_corners")}
                out[k].append(reduce_map(feats[k], pool, spec).flatten(1).numpy())
            batch = []
    return {k: l2_normalise(np.concatenate(v).astype(np.float32)) for k, v in out.items()} | {"readable": readable}


def cached_features(cfg, encoder, info, split: str, paths, layers) -> dict:
    cache = Path(cfg.cache_dir) / f"{info.method}-{info.digest}" / f"{cfg.data.name}_{split}_{cfg.pool.name}"
    files = {k: cache / f"{k}_{cfg.data.crop}.npy" for k in layers}
    rfile = cache / f"readable_{cfg.data.crop}.npy"
    if rfile.is_file() and all(f.is_file() for f in files.values()):
        log.info("features of %s %s read from %s", cfg.data.name, split, cache)
        return {k: np.load(f) for k, f in files.items()} | {"readable": np.load(rfile)}
    feats = extract_features(encoder, paths, layers, cfg.pool.name, OmegaConf.to_container(cfg.pool, resolve=True),
                             cfg.data.crop, cfg.data.resize, cfg)  # fmt: skip
    cache.mkdir(parents=True, exist_ok=True)
    for k, f in [*files.items(), ("readable", rfile)]:
        tmp = f.with_name(f.stem + ".tmp.npy")
        np.save(tmp, feats[k])
        tmp.replace(f)
    return feats


# ------------------------------------------------------------------------------- main
def svm_probe(cfg: DictConfig) -> Outcome:
    """One SVM per class on each layer's cached features; records go to ``cfg.results`` (null: none)."""
    os.environ.setdefault("WANDB_MODE", "offline")
    net, info, layers = encoder_from_config(cfg)
    encoder = FrozenEncoder(net, layers)
    train_paths, train_labels, classes = dataset_items(cfg, cfg.data.train_split)
    test_paths, test_labels, _ = dataset_items(cfg, cfg.data.test_split)
    train = cached_features(cfg, encoder, info, cfg.data.train_split, train_paths, layers)
    test = cached_features(cfg, encoder, info, cfg.data.test_split, test_paths, layers)
    ytr, yte = train_labels[train["readable"]], test_labels[test["readable"]]
    skipped = int((~train["readable"]).sum() + (~test["readable"]).sum())
    options = {"pool": cfg.pool.name, "crop": int(cfg.data.crop), "input": info.input, "cv_folds": int(cfg.cv_folds),
               "positive_weight": float(cfg.positive_weight)}  # fmt: skip
    results, records = {}, []
    for layer in layers:
        per_class, decisions = {}, []
        for j, name in enumerate(classes):
            r = svm_class_ap(train[layer], ytr[:, j], test[layer], yte[:, j], list(cfg.costs), cfg.cv_folds,
                             cfg.positive_weight, cfg.max_iter, cfg.seed)  # fmt: skip
            if r is None:
                log.warning("%s: class %s skipped (too few positives to cross-validate, or none in test)", layer, name)
                continue
            per_class[name] = {"ap": r["ap"], "cost": r["cost"]}
            decisions.append((j, r["decision"]))
        if not per_class:
            raise ValueError(f"no class of {cfg.data.name} has enough positives for {cfg.cv_folds}-fold CV")
        m = {"mAP": float(np.mean([v["ap"] for v in per_class.values()])), "classes": len(per_class)}
        if cfg.data.kind == "folder" and len(decisions) == len(classes):  # single-label: top-1 of the SVM scores
            scores = np.stack([d for _, d in decisions], 1)
            m["top1"] = float((scores.argmax(1) == yte.argmax(1)).mean() * 100)
        results[layer] = m | {"per_class": per_class}
        records += [
            make_record(info, "svm_probe", layer, options, cfg.data.name, metric, m[metric], label=cfg.label,
                        classes_scored=len(per_class), per_class=per_class, skipped_images=skipped)  # fmt: skip
            for metric in ("mAP", "top1")
            if metric in m
        ]
        log.info("%s %s: mAP %.2f over %d classes", info.method, layer, m["mAP"], len(per_class))
    if cfg.results:
        write_records(cfg.results, records)
    return Outcome(records, Path(cfg.cache_dir), 0, scores=results)


@hydra.main(config_path="../conf", config_name="svm_probe", version_base="1.3")
def main(cfg: DictConfig) -> None:
    for layer, m in svm_probe(cfg).scores.items():
        extra = f"  top-1 {m['top1']:.2f}" if "top1" in m else ""
        print(f"{layer:6s} mAP {m['mAP']:6.2f} ({m['classes']} classes){extra}")


if __name__ == "__main__":
    main()
