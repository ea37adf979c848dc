"""Frozen-encoder features of a labelled image set, extracted in batches and cached: what the SVM
probe (``downstream/svm_probe.py``) and the cached linear probe (``downstream/linear_probe_cached.py``)
train on.

The images are the validation view (resized to ``data.resize`` on the shorter side, centre crop
``data.crop``), optionally with its mirror image too (``flip``); each layer's map is reduced by the
``pool`` protocol (:mod:`downstream.reduce`) and flattened. Features are cached as float32 under
``cache_dir``, one folder per (encoder, dataset, split, pool, precision, view, exact image list), and
read back by any later run.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger("downstream.features")
PRECISIONS = ("fp32", "bf16")
# left free on the cache's disk: one checkpoint's cached features are ~5 GB (alexnet_small, all
# layers, Imagenette train with mirrors); a full disk must not stop the suite's other writes
CACHE_SPARE_BYTES = 2 * 1024**3


# ------------------------------------------------------------------------------- progress
class Progress:
    """A rich progress bar on a terminal; elsewhere (logs, CI) a plain line every ``every`` steps."""

    def __init__(self, description: str, total: int, unit: str = "", every: int | None = None):
        self.description, self.total, self.unit, self.done = description, max(total, 1), unit, 0
        self.every = every or max(1, self.total // 10)
        self.start = time.perf_counter()
        self._bar = None
        if sys.stdout.isatty():
            from rich.progress import BarColumn, MofNCompleteColumn, TimeElapsedColumn, TimeRemainingColumn
            from rich.progress import Progress as Bar

            self._bar = Bar("{task.description}", BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                            TimeRemainingColumn())  # fmt: skip
            self._task = self._bar.add_task(description, total=self.total)
            self._bar.start()

    def advance(self, n: int = 1, description: str | None = None) -> None:
        before, self.done = self.done, self.done + n
        if self._bar is not None:
            self._bar.update(self._task, completed=self.done, description=description or self.description)
        elif self.done // self.every != before // self.every or self.done >= self.total:
            took = time.perf_counter() - self.start
            left = took / self.done * (self.total - self.done)
            print(f"{description or self.description}: {self.done}/{self.total}{self.unit} ({took:.0f} s, "
                  f"about {left:.0f} s left)", flush=True)  # fmt: skip

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()


# ------------------------------------------------------------------------------- data
def even_subset(n: int, m: int | None) -> np.ndarray:
    """Indices of ``m`` of ``n`` items spread evenly (every k-th, first and last included); all when
    ``m`` is None or >= n."""
    if m is None or m >= n:
        return np.arange(n)
    if m <= 0:
        raise ValueError(f"max_images={m} must be positive (or null: all)")
    return np.unique(np.linspace(0, n - 1, m).round().astype(int))


def split_names(cfg: DictConfig) -> tuple[str, str]:
    defaults = {"voc07": ("trainval", "test"), "folder": ("train", "val")}
    if cfg.data.kind not in defaults:
        raise ValueError(f"data.kind={cfg.data.kind!r} is not a dataset kind; valid: voc07, folder")
    train, test = defaults[cfg.data.kind]
    return cfg.data.train_split or train, cfg.data.test_split or test


def dataset_name(cfg: DictConfig) -> str:
    if cfg.data.name:
        return str(cfg.data.name)
    return "voc07" if cfg.data.kind == "voc07" else Path(cfg.data.root).expanduser().resolve().name


def dataset_items(cfg: DictConfig, split: str):
    """(paths, labels (N, K) in {1, 0, -1}, class names), an even subset of ``max_images`` of them."""
    from downstream.voc import VOC_CLASSES, classification_set
    from pretext.data import class_folders

    if cfg.data.kind == "voc07":
        paths, labels = classification_set(cfg.data.root, 2007, split)
        classes = list(VOC_CLASSES)
    elif cfg.data.kind == "folder":
        root = Path(cfg.data.root).expanduser()
        if not (root / split).is_dir():
            subs = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
            where = f"its sub-folders: {', '.join(subs)}" if subs else f"{root} is not a folder of splits"
            raise FileNotFoundError(
                f"{root / split} is not a folder: data.kind=folder reads data.root/<split>/<class>/<image>, by default "
                f"train/ and val/; name the splits with data.train_split=NAME data.test_split=NAME ({where})"
            )
        classes, files, idx = class_folders(root / split)
        paths = files
        labels = -np.ones((len(files), len(classes)), dtype=np.int8)
        labels[np.arange(len(files)), idx] = 1
    else:
        raise ValueError(f"data.kind={cfg.data.kind!r} is not a dataset kind; valid: voc07, folder")
    keep = even_subset(len(paths), cfg.max_images)
    return [paths[i] for i in keep], labels[keep], classes


def labelled_splits(cfg: DictConfig) -> tuple[tuple, tuple, list[str]]:
    """((train split, paths, labels), (test split, paths, labels), classes) of ``cfg.data``
    (:func:`dataset_items`), the two splits checked to hold the same classes."""
    train_split, test_split = split_names(cfg)
    train_paths, train_labels, classes = dataset_items(cfg, train_split)
    test_paths, test_labels, test_classes = dataset_items(cfg, test_split)
    if test_classes != classes:
        raise ValueError(f"{test_split} has other classes than {train_split}: "
                         f"{sorted(set(test_classes) ^ set(classes))[:5]} are in one only")  # fmt: skip
    return (train_split, train_paths, train_labels), (test_split, test_paths, test_labels), classes


# ------------------------------------------------------------------------------- features
class _Indexed(torch.utils.data.Dataset):
    def __init__(self, data):
        self.data = data

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int):
        return i, self.data[i]


def _collate_indexed(batch):
    """(indices of the readable images, their crops stacked or None, indices of the unreadable ones)."""
    from pretext.images import Unreadable

    good = [(i, x) for i, x in batch if not isinstance(x, Unreadable)]
    crops = torch.stack([x for _, x in good]) if good else None
    return [i for i, _ in good], crops, [i for i, x in batch if isinstance(x, Unreadable)]


class ExtractionClock:
    """Times the first batches of the extraction and then says once what the whole run should take."""

    def __init__(self, images: int, after_batches: int = 4, svm_estimate=None):
        self.images, self.after, self.svm_estimate = images, after_batches, svm_estimate
        self.seen = self.batches = 0
        self.took = 0.0
        self.said = False

    def batch(self, n: int, seconds: float) -> None:
        self.batches += 1
        if self.batches > 2:  # the first batches pay one-off set-up costs (the worker's start, oneDNN's kernels)
            self.seen, self.took = self.seen + n, self.took + seconds
        if not self.said and self.batches >= self.after + 2 and self.seen:
            extraction = self.took / self.seen * self.images
            svm = self.svm_estimate() if self.svm_estimate else None
            then = f", then the SVMs about {svm / 60:.1f} min" if svm is not None else ""
            print(f"expected: features of {self.images} images in about {extraction / 60:.1f} min "
                  f"({1000 * self.took / self.seen:.0f} ms an image){then}", flush=True)  # fmt: skip
            self.said = True


def feature_device(name: str) -> torch.device:
    """``auto``: the GPU when there is one, else the CPU; or ``cpu`` / ``cuda`` / ``cuda:N``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={name} but no GPU is available here; use device=auto or device=cpu")
    return torch.device(name)


def extract_features(encoder, paths, layers, pool: str, pool_spec: dict, crop: int, resize: int, cfg,
                     clock: ExtractionClock | None = None, description: str = "features",
                     flip: bool = False) -> dict:  # fmt: skip
    """{layer: (N, D) float32} for the N readable images, plus ``readable`` (all images,) bool. ``flip``:
    (2N, D), the mirror images' features after the images' own."""
    from torch.utils.data import DataLoader

    from downstream.reduce import reduce_map
    from pretext.data import CropDataset

    if cfg.precision not in PRECISIONS:
        raise ValueError(f"precision={cfg.precision!r} is not valid; valid: {', '.join(PRECISIONS)}")
    device = feature_device(cfg.device)
    data = _Indexed(CropDataset(paths, crop, resize, train=False, min_scale=None))
    readable = np.ones(len(paths), dtype=bool)
    out: dict[str, np.ndarray] = {}
    specs = {k: {**pool_spec["layers"][k], "align_corners": pool_spec.get("align_corners")} for k in layers}
    encoder.to(device, memory_format=torch.channels_last)  # measured faster for these convolutions on CPU
    loader = DataLoader(data, batch_size=cfg.batch_size, num_workers=cfg.num_workers, collate_fn=_collate_indexed,
                        pin_memory=device.type == "cuda")  # fmt: skip
    progress = Progress(description, len(paths), " images")
    t = time.perf_counter()
    for idx, crops, bad in loader:
        readable[bad] = False
        if crops is not None:
            crops = crops.to(device, non_blocking=True)
            bf16 = cfg.precision == "bf16"
            for view, batch in enumerate([crops, crops.flip(-1)] if flip else [crops]):
                with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                    feats = encoder(batch)
                for k in layers:
                    f = reduce_map(feats[k].float(), pool, specs[k]).flatten(1).cpu().numpy()
                    if k not in out:
                        out[k] = np.zeros((len(paths) * (2 if flip else 1), f.shape[1]), dtype=np.float32)
                    out[k][np.asarray(idx) + view * len(paths)] = f
        now = time.perf_counter()
        if clock is not None:
            clock.batch(len(idx) + len(bad), now - t)
        t = now
        progress.advance(len(idx) + len(bad))
    progress.close()
    if bad_paths := [str(paths[i]) for i in np.flatnonzero(~readable)]:
        log.warning("%d unreadable images skipped: %s", len(bad_paths), ", ".join(bad_paths[:10]))
    rows = np.concatenate([readable, readable]) if flip else readable
    return {k: out[k][rows] if k in out else np.zeros((0, 0), np.float32) for k in layers} | {"readable": readable}


def cache_folder(cfg: DictConfig, info, split: str, paths, flip: bool = False) -> Path:
    """One folder per (encoder, dataset, split, pool, precision, view, the exact image list and sizes)."""
    key = hashlib.sha1("\n".join([str(cfg.data.crop), str(cfg.data.resize), *map(str, paths)]).encode()).hexdigest()
    view = "_flip" if flip else ""
    name = f"{dataset_name(cfg)}_{split}_{cfg.pool.name}_{cfg.precision}{view}_{len(paths)}img_{key[:8]}"
    return Path(cfg.cache_dir) / f"{info.method}-{info.digest}" / name


def is_cached(cfg, info, split: str, paths, flip: bool = False) -> bool:
    return (cache_folder(cfg, info, split, paths, flip) / f"readable_{cfg.data.crop}.npy").is_file()


def cached_features(cfg, encoder, info, split: str, paths, layers, clock=None, flip: bool = False) -> dict:
    """:func:`extract_features` of ``paths`` (raw: not normalised), read from the cache when there."""
    cache = cache_folder(cfg, info, split, paths, flip)
    files = {k: cache / f"{k}_{cfg.data.crop}_raw.npy" for k in layers}
    rfile = cache / f"readable_{cfg.data.crop}.npy"
    if rfile.is_file() and all(f.is_file() for f in files.values()):
        log.info("features of %s %s read from %s", dataset_name(cfg), split, cache)
        return {k: np.load(f) for k, f in files.items()} | {"readable": np.load(rfile)}
    feats = extract_features(encoder, paths, layers, cfg.pool.name, OmegaConf.to_container(cfg.pool, resolve=True),
                             cfg.data.crop, cfg.data.resize, cfg, clock, f"features {split}", flip)  # fmt: skip
    cache.mkdir(parents=True, exist_ok=True)
    need = sum(feats[k].nbytes for k in [*layers, "readable"])
    free = shutil.disk_usage(cache).free
    if need + CACHE_SPARE_BYTES > free:  # the cache only saves time: the run goes on without it, and says so
        log.warning("features of %s %s not cached: they need %.1f GB and %s has %.1f GB free (%.1f GB kept "
                    "spare); free space or set cache_dir= elsewhere to cache them", dataset_name(cfg), split,
                    need / 1e9, cache, free / 1e9, CACHE_SPARE_BYTES / 1e9)  # fmt: skip
        return feats
    for k, f in [*files.items(), ("readable", rfile)]:
        tmp = f.with_name(f.stem + ".tmp.npy")
        np.save(tmp, feats[k])
        tmp.replace(f)
    return feats


