"""Linear probes on cached features, several seeds, the learning rate chosen per layer on held-out
training images (``conf/linear_probe_cached.yaml``).

    python downstream/linear_probe_cached.py init=gaussian                      # Imagenette, all layers, 3 seeds
    python downstream/linear_probe_cached.py ckpt=PATH layer=[conv3,conv4,conv5] seeds=[0,1,2,3,4]

Each image's features are computed once (the validation view and its mirror image; cached, see
:mod:`downstream.features`), so a probe trains many epochs for the cost of one encoder pass. Per layer
and seed: the heads of every rate in ``probe.lrs`` train together on the training split less a
held-out part (``probe.held_out``), the rate with the best held-out top-1 is kept (ties: the smaller),
and a head at that rate is trained on the whole training split and scored on the test split. Records
(top-1, top-5) go to ``results`` with options ``schedule: cached`` and ``seed``, so the report shows
each cell as a mean with its 95% interval over seeds.
"""

from __future__ import annotations

import logging
import math
import os
import time
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig

from downstream.encoder import FrozenEncoder, encoder_from_config
from downstream.evaluation import Outcome
from downstream.features import (
    ExtractionClock,
    cached_features,
    dataset_name,
    feature_device,
    is_cached,
    labelled_splits,
)
from downstream.linear_heads import channel_statistics, head_logits, held_out_split, top_k, train_heads
from downstream.results import make_record, write_records
from pretext.cli import entry

log = logging.getLogger("downstream.linear_probe_cached")


def fit_layer(xtr: torch.Tensor, ytr: torch.Tensor, xte: torch.Tensor, yte: torch.Tensor, views: int,
              num_classes: int, p, seed: int) -> dict:  # fmt: skip
    """One seed on one layer's standardised features: the rate chosen on held-out images, then the
    head at that rate trained on all of them; ``xtr`` holds ``views`` rows per image (image-major
    blocks: all images, then all mirrors)."""
    n = len(ytr) // views
    held = held_out_split(ytr[:n].cpu().numpy(), float(p.held_out), seed)
    keep = torch.from_numpy(np.tile(~held, views)).to(xtr.device)
    train = dict(epochs=int(p.epochs), batch_size=int(p.batch_size), momentum=float(p.momentum),
                 weight_decay=float(p.weight_decay), lr_steps=list(p.lr_steps), lr_gamma=float(p.lr_gamma))  # fmt: skip
    lrs = [float(r) for r in p.lrs]
    w, b = train_heads(xtr[keep], ytr[keep], num_classes, lrs, seed=seed, **train)
    held_mask = torch.from_numpy(held).to(xtr.device)
    out = head_logits(xtr[:n][held_mask], w, b)
    held_top1 = [top_k(z, ytr[:n][held_mask], 1) for z in out]
    best = max(range(len(lrs)), key=lambda i: (held_top1[i], -lrs[i]))
    w, b = train_heads(xtr, ytr, num_classes, [lrs[best]], seed=seed, **train)
    z = head_logits(xte, w, b)[0]
    return {"top1": top_k(z, yte, 1), "top5": top_k(z, yte, 5), "lr": lrs[best],
            "held_out_top1": dict(zip(map(str, lrs), held_top1, strict=True))}  # fmt: skip


def linear_probe_cached(cfg: DictConfig) -> Outcome:
    os.environ.setdefault("WANDB_MODE", "offline")
    if cfg.data.kind != "folder":
        raise ValueError(f"data.kind={cfg.data.kind}: the cached linear probe is single-label, a folder per "
                         "class (data.kind=folder); VOC07 is multi-label: downstream/svm_probe.py")  # fmt: skip
    net, info, layers = encoder_from_config(cfg)
    encoder = FrozenEncoder(net, layers)
    (train_split, train_paths, train_labels), (test_split, test_paths, test_labels), classes = labelled_splits(cfg)
    name = dataset_name(cfg)
    flip = bool(cfg.flip)
    # images to read (a train image's time includes its mirror's pass)
    to_extract = (0 if is_cached(cfg, info, train_split, train_paths, flip) else len(train_paths)) + (
        0 if is_cached(cfg, info, test_split, test_paths) else len(test_paths))
    seeds = [int(s) for s in cfg.seeds]
    if not seeds:
        raise ValueError("seeds=[] names no probe seed: give at least one, e.g. seeds=[0,1,2]")
    print(f"{info.method} on {name}: {len(train_paths)} {train_split} -> {len(test_paths)} {test_split} images, "
          f"{len(classes)} classes, layers {', '.join(layers)}, seeds {seeds}", flush=True)  # fmt: skip
    clock = ExtractionClock(to_extract)
    train = cached_features(cfg, encoder, info, train_split, train_paths, layers, clock, flip=flip)
    test = cached_features(cfg, encoder, info, test_split, test_paths, layers, clock)
    views = 2 if flip else 1
    device = feature_device(cfg.device)  # the heads train where the features were made
    ytr = torch.from_numpy(np.tile(train_labels[train["readable"]].argmax(1), views)).to(device)
    yte = torch.from_numpy(test_labels[test["readable"]].argmax(1)).to(device)
    skipped = int((~train["readable"]).sum() + (~test["readable"]).sum())
    p = cfg.probe
    steps = int(p.epochs) * math.ceil(len(ytr) / int(p.batch_size))
    options = {"pool": cfg.pool.name, "schedule": "cached", "steps": steps, "crop": int(cfg.data.crop),
               "input": info.input}  # fmt: skip
    if cfg.max_images is not None:
        options["max_images"] = int(cfg.max_images)
    scores, records, start = {}, [], time.perf_counter()
    for li, layer in enumerate(layers):
        xtr = torch.from_numpy(np.ascontiguousarray(train[layer], dtype=np.float32)).to(device)
        mean, inv = channel_statistics(xtr, encoder.net.channels(layer))
        xtr = (xtr - mean) * inv
        xte = (torch.from_numpy(np.asarray(test[layer], dtype=np.float32)).to(device) - mean) * inv
        for si, seed in enumerate(seeds):
            m = fit_layer(xtr, ytr, xte, yte, views, len(classes), p, seed)
            scores.setdefault(layer, {})[seed] = m
            records += [
                make_record(info, "linear_probe", layer, options | {"seed": seed}, name, metric, m[metric],
                            label=cfg.label, pretext=info.extra, lr=m["lr"], held_out_top1=m["held_out_top1"],
                            epochs=int(p.epochs), skipped_images=skipped)  # fmt: skip
                for metric in ("top1", "top5")
            ]
            done = li * len(seeds) + si + 1
            took = time.perf_counter() - start
            left = took / done * (len(layers) * len(seeds) - done)
            print(f"{layer:6s} seed {seed}: top-1 {m['top1']:6.2f}  top-5 {m['top5']:6.2f}  lr {m['lr']:g}  "
                  f"({done}/{len(layers) * len(seeds)}, about {left:.0f} s left)", flush=True)  # fmt: skip
        del xtr, xte
    if cfg.results:
        write_records(cfg.results, records)
    return Outcome(records, Path(cfg.cache_dir), steps, scores=scores)


@entry("linear_probe_cached")
def main(cfg: DictConfig) -> None:
    start = time.perf_counter()
    outcome = linear_probe_cached(cfg)
    for layer, per_seed in outcome.scores.items():
        top1 = [m["top1"] for m in per_seed.values()]
        print(f"{layer:6s} top-1 {np.mean(top1):6.2f} (seeds: {', '.join(f'{t:.2f}' for t in top1)})")
    where = f"; {len(outcome.records)} records -> {cfg.results}" if cfg.results else ""
    print(f"done in {time.perf_counter() - start:.0f} s{where}")


if __name__ == "__main__":
    main()
