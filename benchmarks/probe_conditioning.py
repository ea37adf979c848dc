"""Why a linear probe diverges on one encoder's features and not on another's: measured on the
features a suite cached (``linear_probe_cached`` / ``svm_probe`` jobs), layer by layer.

    python benchmarks/probe_conditioning.py --features outputs/suite/imagenette_cpu/features \\
        --out benchmarks/results/imagenette_cpu/probe_conditioning.json

For each encoder and layer, on the training images' features (the images, not their mirrors), after
the probe's BatchNorm (per channel, without affine):
- ``mean_direction_energy``: the share of the features' energy along their mean vector: near 1 means
  every image gives almost the same vector, the differences a probe must learn from being tiny;
- ``top_eigenvalue_share``: the largest eigenvalue of their second-moment matrix over its trace;
- ``dead_channels``: channels that are zero on every image and position; ``max_standardised``: the
  largest value a channel reaches after BatchNorm (rare, huge activations would show here);
- ``loss_after_100_steps``: the protocol's head (SGD, momentum 0.9, weight decay 5e-4, batch 64) at
  lr 0.01 for 100 steps, with BatchNorm on each batch's statistics (as the protocol trains) and with
  the whole set's, and its top-1 on the images it trained on (BatchNorm in evaluation mode).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from benchmarks.common import machine
from pretext.data import class_folders

CHANNELS = {"conv1": 96, "conv2": 256, "conv3": 384, "conv4": 384, "conv5": 256, "pool5": 256}


def conditioning(x: np.ndarray, channels: int) -> dict:
    """The spectrum measures of (N, C x S) features after per-channel standardisation."""
    n, d = x.shape
    maps = x.reshape(n, channels, -1).astype(np.float64)
    mean, var = maps.mean(axis=(0, 2), keepdims=True), maps.var(axis=(0, 2), keepdims=True)
    z = ((maps - mean) / np.sqrt(var + 1e-5)).reshape(n, d)
    gram = z @ z.T / n
    eig = np.linalg.eigvalsh(gram)
    return {
        "mean_direction_energy": float((z.mean(0) ** 2).sum() / (z**2).sum(1).mean()),
        "top_eigenvalue_share": float(eig[-1] / eig.sum()),
        "dead_channels": float((maps.max(axis=(0, 2)) <= 0).mean()),
        "max_standardised": float(((maps.max(axis=(0, 2)) - mean[0, :, 0]) / np.sqrt(var[0, :, 0] + 1e-5)).max()),
    }


def short_probe(x: np.ndarray, y: np.ndarray, channels: int, batch_stats: bool, lr: float = 0.01, steps: int = 100,
                seed: int = 0) -> dict:  # fmt: skip
    """The protocol's head for ``steps`` steps: the last 10 steps' mean loss, and its top-1 on ``x``."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)  # the head's initial weights
    maps = torch.from_numpy(x).reshape(len(x), channels, -1, 1)
    bn = torch.nn.BatchNorm2d(channels, affine=False)
    fc = torch.nn.Linear(x.shape[1], int(y.max()) + 1)
    opt = torch.optim.SGD(fc.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
    mean = maps.mean(dim=(0, 2, 3), keepdim=True)
    std = (maps.var(dim=(0, 2, 3), unbiased=False, keepdim=True) + 1e-5).sqrt()
    labels, losses = torch.from_numpy(y), []
    for _ in range(steps):
        idx = torch.randint(0, len(x), (64,), generator=g)
        z = bn.train()(maps[idx]) if batch_stats else (maps[idx] - mean) / std
        loss = F.cross_entropy(fc(z.flatten(1)), labels[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    with torch.no_grad():
        z = bn.eval()(maps) if batch_stats else (maps - mean) / std
        top1 = float((fc(z.flatten(1)).argmax(1) == labels).float().mean() * 100)
    return {"loss_last_10_steps": float(np.mean(losses[-10:])), "top1_on_its_training_images": top1}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--features", default="outputs/suite/imagenette_cpu/features")
    ap.add_argument("--data", default="../shared/data/imagenette/train", help="the labelled split the features are of")
    ap.add_argument("--layers", nargs="+", default=["conv2", "conv3", "conv4", "conv5"])
    ap.add_argument("--images", type=int, default=2000, help="training images measured (every k-th)")
    ap.add_argument("--out", default="benchmarks/results/imagenette_cpu/probe_conditioning.json")
    args = ap.parse_args()
    _, files, labels = class_folders(args.data)
    labels = np.asarray(labels)
    start, result = time.time(), {}
    for enc in sorted(Path(args.features).iterdir()):
        split = next(enc.glob("*_train_*"), None)
        if split is None:
            continue
        for layer in args.layers:
            f = split / f"{layer}_227_raw.npy"
            if not f.is_file():
                continue
            x = np.load(f, mmap_mode="r")[: len(files)]  # the images; their mirrors follow
            keep = np.unique(np.linspace(0, len(files) - 1, args.images).round().astype(int))
            xs, ys = np.ascontiguousarray(x[keep], dtype=np.float32), labels[keep]
            row = conditioning(xs, CHANNELS[layer])
            row["loss_after_100_steps"] = {
                "batch_statistics": short_probe(xs, ys, CHANNELS[layer], batch_stats=True),
                "whole_set_statistics": short_probe(xs, ys, CHANNELS[layer], batch_stats=False),
            }
            result.setdefault(enc.name, {})[layer] = row
            print(enc.name, layer, json.dumps(row), flush=True)
    out = {"command": " ".join(["python", *sys.argv]), "machine": machine(), "features": args.features,
           "images": args.images, "wall_s": round(time.time() - start, 1), "encoders": result}  # fmt: skip
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
