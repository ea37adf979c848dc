"""Training data: an ImageNet-style folder or the embedded sample photos.

``decode="cpu"`` (default): workers decode and crop (uint8). ``decode="device"``: workers only read
the files' bytes and draw the crop boxes; the JPEGs are decoded in batches (``decode_jpeg`` on a
list, nvJPEG on CUDA), resized and cut on the training device, in the module's
``on_after_batch_transfer`` (:func:`finish_on_device`); files a batched decoder does not take (PNG,
CMYK, 16-bit, ...) are decoded in the worker as on the CPU path. Either way the Lab conversion and
the encoding run on the training device, and an unreadable file is skipped and counted, never a
crash. The sampler yields (index, seed) pairs from (seed, epoch) alone and can start part-way
through an epoch, so a resumed run sees the same crops in the same order as an uninterrupted one;
the crop box depends on that seed and the image's size only, so both decode paths cut the same.
"""

from __future__ import annotations

import copy
import logging
import math
import os
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import lightning as L
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler
from torchvision.datasets.folder import find_classes
from torchvision.io import ImageReadMode, decode_jpeg, read_file
from torchvision.transforms.v2 import functional as TF

from pretext.images import Unreadable, decode_rgb, jpeg_size, list_images, split_unreadable

log = logging.getLogger(__name__)

# The photos that ship inside scikit-image and scikit-learn: colour ones to train and validate on;
# the grey ones are held back for the colorize demo (a legacy black-and-white photo).
SAMPLE_TRAIN = (
    "astronaut",
    "chelsea",
    "coffee",
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
    "sklearn:china.jpg",
)
SAMPLE_VAL = ("rocket", "sklearn:flower.jpg")
SAMPLE_GREY = ("camera",)


def sample_photo(name: str) -> Tensor:
    """One embedded photo as a (3, H, W) uint8 tensor."""
    if name.startswith("sklearn:"):
        from sklearn.datasets import load_sample_image

        arr = load_sample_image(name.split(":", 1)[1])
    else:
        import skimage.data

        arr = getattr(skimage.data, name)()
    t = torch.from_numpy(np.array(arr, dtype=np.uint8))
    return t.expand(3, *t.shape) if t.dim() == 2 else t.permute(2, 0, 1).contiguous()


class ResumableSampler(Sampler):
    """Yields ``(index, seed)``: a permutation fixed by (seed, epoch), this rank's share of it, and
    a per-sample seed for the crop. ``start`` skips samples already seen this epoch (on resume).
    ``pad``: repeat samples so every rank gets as many (training: ranks step together); without it
    (validation) the ranks share the samples exactly, none dropped and none seen twice."""

    def __init__(self, n: int, shuffle: bool = True, seed: int = 0, rank: int = 0, world: int = 1, pad: bool = True):
        self.n, self.shuffle, self.seed, self.rank, self.world, self.pad = n, shuffle, seed, rank, world, pad
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int) -> None:
        if epoch != self.epoch:
            self.start = 0  # the skip applies to the epoch the run was resumed in only
        self.epoch = epoch

    def __len__(self) -> int:  # the whole epoch: the loop counts the skipped part as done
        return math.ceil(self.n / self.world) if self.pad else len(range(self.rank, self.n, self.world))

    def __iter__(self) -> Iterator[tuple[int, int]]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        order = torch.randperm(self.n, generator=g) if self.shuffle else torch.arange(self.n)
        per_rank = math.ceil(self.n / self.world)
        if self.pad:
            order = torch.cat([order, order[: per_rank * self.world - self.n]])  # pad so ranks match
        mine = order[self.rank :: self.world]
        seeds = torch.randint(0, 2**62, (self.n,), generator=g)
        for i in mine[self.start :].tolist():
            yield i, int(seeds[i])


DECODE = ("cpu", "device")


@dataclass(frozen=True)
class CropPlan:
    """Where a crop comes from, drawn before any pixel is decoded, so the CPU and device paths cut
    the same boxes: resize the whole image to ``size`` (``None``: keep it), cut ``box`` (top, left,
    height, width; zeros beyond the image), resize that to ``out`` (``None``: keep), flip when ``flip``."""

    size: tuple[int, int] | None
    box: tuple[int, int, int, int]
    out: tuple[int, int] | None
    flip: bool


def shorter_side_to(h: int, w: int, side: int) -> tuple[int, int]:
    """The size torchvision's ``Resize(side)`` gives an ``h x w`` image (shorter side to ``side``)."""
    if w <= h:
        return int(side * h / w), side
    return side, int(side * w / h)


def plan_crop(h: int, w: int, crop: int, resize: int, train: bool, min_scale: float | None,
              generator: torch.Generator) -> CropPlan:  # fmt: skip
    """The crop of an ``h x w`` image, with torchvision's draws: training, ``RandomResizedCrop(crop,
    scale=(min_scale, 1))`` when ``min_scale`` is set, else ``Resize(resize)`` + ``RandomCrop(crop)``
    (the paper), then a horizontal flip with probability 1/2; validation, ``Resize(resize)`` +
    ``CenterCrop(crop)``."""
    if train and min_scale is not None:  # RandomResizedCrop's draws (ratio 3/4 .. 4/3)
        log_ratio = (math.log(3 / 4), math.log(4 / 3))
        for _ in range(10):
            area = h * w * torch.empty(1).uniform_(min_scale, 1.0, generator=generator).item()
            aspect = math.exp(torch.empty(1).uniform_(*log_ratio, generator=generator).item())
            bw, bh = int(round(math.sqrt(area * aspect))), int(round(math.sqrt(area / aspect)))
            if 0 < bw <= w and 0 < bh <= h:
                top = int(torch.randint(0, h - bh + 1, (1,), generator=generator))
                left = int(torch.randint(0, w - bw + 1, (1,), generator=generator))
                break
        else:  # the central crop at the nearest allowed ratio
            bw, bh = w, h
            if w / h < 3 / 4:
                bh = int(round(w / (3 / 4)))
            elif w / h > 4 / 3:
                bw = int(round(h * (4 / 3)))
            top, left = (h - bh) // 2, (w - bw) // 2
        flip = bool(torch.rand(1, generator=generator) < 0.5)
        return CropPlan(None, (top, left, bh, bw), (crop, crop), flip)
    rh, rw = shorter_side_to(h, w, resize)
    if train:
        # RandomCrop draws only along a side longer than the crop (a shorter one is padded with zeros)
        top = int(torch.randint(0, rh - crop + 1, (1,), generator=generator)) if rh > crop else 0
        left = int(torch.randint(0, rw - crop + 1, (1,), generator=generator)) if rw > crop else 0
        flip = bool(torch.rand(1, generator=generator) < 0.5)
    else:
        top, left, flip = int(round((rh - crop) / 2.0)), int(round((rw - crop) / 2.0)), False
    return CropPlan((rh, rw), (top, left, crop, crop), None, flip)


def apply_plan(img: Tensor, plan: CropPlan) -> Tensor:
    """A ``(3, H, W)`` uint8 image, on any device, cut as ``plan`` says (antialiased resizes)."""
    if plan.size is not None:
        img = TF.resize(img, list(plan.size), antialias=True)
    top, left, h, w = plan.box
    img = TF.crop(img, top, left, h, w)
    if plan.out is not None:
        img = TF.resize(img, list(plan.out), antialias=True)
    return img.flip(-1) if plan.flip else img


class Pending(NamedTuple):
    """One image of a ``decode=device`` batch as a worker leaves it. ``kind``: ``jpeg`` (``data``:
    the file's bytes, decoded on the device), ``image`` (an in-memory photo, cut on the device) or
    ``crop`` (a file the batched decoder does not take, decoded and cut in the worker). ``path``:
    the file (named if it fails to decode on the device)."""

    kind: str
    data: Tensor | None
    plan: CropPlan | None
    label: int | None
    path: str = ""


class Undecoded:
    """A ``decode=device`` batch: the readable images' :class:`Pending` entries, the JPEG bytes
    packed into one tensor (one shared-memory block per batch from a worker, not one per file). It
    is no tensor collection on purpose: Lightning's transfer leaves it on the host (the decoders
    read host memory) and :meth:`finish` makes the crops on the training device."""

    def __init__(self, entries: list[Pending]):
        jpegs = [e.data for e in entries if e.kind == "jpeg"]
        self.sizes = [len(d) for d in jpegs]
        self.blob = torch.cat(jpegs) if jpegs else torch.zeros(0, dtype=torch.uint8)
        self.entries = [e._replace(data=None) if e.kind == "jpeg" else e for e in entries]

    def __len__(self) -> int:
        return len(self.entries)

    def pin_memory(self) -> Undecoded:  # the DataLoader's pin_memory thread calls this
        out = copy.copy(self)
        out.blob = self.blob.pin_memory()
        out.entries = [e if e.data is None else e._replace(data=e.data.pin_memory()) for e in self.entries]
        return out

    def finish(self, device: torch.device | str) -> tuple[Tensor | tuple[Tensor, Tensor], list[str]]:
        """The crops on ``device`` (with their labels when the data has labels) and the files that
        turned out unreadable here."""
        images = iter(decode_jpegs(list(torch.split(self.blob, self.sizes)), device))
        crops, labels, failed = [], [], []
        for e in self.entries:
            if e.kind == "jpeg":
                img = next(images)
                if img is None:
                    failed.append(e.path)
                    continue
            else:
                img = e.data.to(device, non_blocking=True)
            crops.append(apply_plan(img, e.plan) if e.plan is not None else img)
            labels.append(e.label)
        x = torch.stack(crops) if crops else torch.zeros(0, 3, 1, 1, dtype=torch.uint8, device=device)
        if self.entries and self.entries[0].label is not None:
            return (x, torch.tensor(labels, dtype=torch.long).to(device)), failed
        return x, failed


def decode_jpegs(datas: list[Tensor], device: torch.device | str) -> list[Tensor | None]:
    """JPEG bytes to ``(3, H, W)`` uint8 RGB on ``device``, in one batched call; when the batch
    fails, file by file, each retried on the CPU decoder before it counts as unreadable (``None``)."""
    if not datas:
        return []
    try:
        return list(decode_jpeg(datas, mode=ImageReadMode.RGB, device=device))
    except RuntimeError:
        pass
    out: list[Tensor | None] = []
    for data in datas:
        try:
            out.append(decode_jpeg(data, mode=ImageReadMode.RGB, device=device))
        except RuntimeError:
            try:
                out.append(decode_rgb(data).to(device))
            except (RuntimeError, ValueError) as err:
                log.debug("unreadable JPEG: %s", err)
                out.append(None)
    return out


# The pretext modules finish decode=device batches in their own on_after_batch_transfer by design;
# Lightning's notice that a datamodule was passed beside that hook says nothing to act on.
warnings.filterwarnings("ignore", message="You have overridden `on_after_batch_transfer` in `LightningModule`")


def finish_on_device(batch, device: torch.device | str):
    """``on_after_batch_transfer`` of every pretext module: a ``decode=device`` batch
    ``(Undecoded, skipped)`` becomes ``(crops, skipped)`` (or ``((crops, labels), skipped)``), the
    files that failed to decode here added to ``skipped`` (a list of paths). Any other batch passes
    unchanged."""
    payload, skipped = batch
    if not isinstance(payload, Undecoded):
        return batch
    out, failed = payload.finish(device)
    return out, [*skipped, *failed]


class CropDataset(Dataset):
    """Images (files or tensors) -> uint8 crops, or (crop, label) when ``labels`` are given;
    :class:`Unreadable` for a file that cannot be read. The crop box and flip come from the
    sampler's per-sample seed alone (:func:`plan_crop`). ``decode="device"``: a JPEG is only read
    (bytes and header) and returned as a :class:`Pending` entry to be decoded and cut on the
    training device; other files are decoded and cut here, as with ``decode="cpu"``."""

    def __init__(
        self,
        items: Sequence[Path | Tensor],
        crop: int,
        resize: int,
        train: bool,
        min_scale: float | None,
        labels: Sequence[int] | None = None,
        decode: str = "cpu",
    ):
        if decode not in DECODE:
            raise ValueError(f"data.decode={decode!r} is not valid; valid: {', '.join(DECODE)}")
        self.items, self.train, self.labels, self.decode = list(items), train, labels, decode
        self.crop, self.resize, self.min_scale = crop, resize, min_scale

    def __len__(self) -> int:
        return len(self.items)

    def plan(self, h: int, w: int, seed: int) -> CropPlan:
        return plan_crop(h, w, self.crop, self.resize, self.train, self.min_scale, torch.Generator().manual_seed(seed))

    def __getitem__(self, key: tuple[int, int] | int) -> Tensor | tuple[Tensor, int] | Pending | Unreadable:
        i, seed = key if isinstance(key, tuple) else (key, key)
        item = self.items[i]
        label = None if self.labels is None else int(self.labels[i])
        if isinstance(item, Path):
            try:
                data = read_file(str(item))
                size = jpeg_size(data) if self.decode == "device" else None
                if size is not None:
                    return Pending("jpeg", data, self.plan(*size, seed), label, str(item))
                item = decode_rgb(data)
            except (RuntimeError, OSError, ValueError) as err:
                log.debug("unreadable image %s: %s", item, err)
                return Unreadable(str(item))
        elif self.decode == "device":
            return Pending("image", item, self.plan(*item.shape[-2:], seed), label)
        crop = apply_plan(item, self.plan(*item.shape[-2:], seed))
        if self.decode == "device":
            return Pending("crop", crop, None, label)
        return crop if label is None else (crop, label)


def collate_crops(batch: list[Tensor | Unreadable]) -> tuple[Tensor, list[str]]:
    """Stack the readable crops; also return the unreadable files' paths."""
    good, skipped = split_unreadable(batch)
    if not good:
        return torch.zeros(0, 3, 1, 1, dtype=torch.uint8), skipped
    return torch.stack(good), skipped


def collate_undecoded(batch: list[Pending | Unreadable]) -> tuple[Undecoded, list[str]]:
    """``decode=device``: the readable files' entries (decoded later, on the device) and the files
    the workers could not read."""
    good, skipped = split_unreadable(batch)
    return Undecoded(good), skipped


def collate_labelled(batch: list[tuple[Tensor, int] | Unreadable]) -> tuple[tuple[Tensor, Tensor], list[str]]:
    """``((crops, labels), skipped)``: the readable crops with their labels, and the unreadable files' paths."""
    good, skipped = split_unreadable(batch)
    if not good:
        return (torch.zeros(0, 3, 1, 1, dtype=torch.uint8), torch.zeros(0, dtype=torch.long)), skipped
    labels = [y for _, y in good]
    y = torch.stack(labels) if torch.is_tensor(labels[0]) else torch.tensor(labels)
    return (torch.stack([c for c, _ in good]), y), skipped


def class_folders(root: str | Path) -> tuple[list[str], list[Path], list[int]]:
    """An ImageNet-style folder (one sub-folder of images per class): (classes, files, labels)."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a folder: give a folder with one sub-folder of images per class")
    try:
        classes, _ = find_classes(str(root))  # torchvision's ImageFolder class discovery
    except FileNotFoundError:
        classes = []
    if not classes:
        raise FileNotFoundError(
            f"{root} has no class folders: a labelled set needs one sub-folder of images per class "
            "(ImageNet layout: train/<class>/*.JPEG)"
        )
    files, labels = [], []
    for i, c in enumerate(classes):
        found = list_images(root / c)
        files += found
        labels += [i] * len(found)
    return classes, files, labels


PREFETCH_IMAGES = 64  # images each worker keeps ready ahead of the training loop


def prefetch_factor(batch_size: int) -> int:
    """Batches each worker loads ahead: about ``PREFETCH_IMAGES`` images, 2 (PyTorch's default) to 8."""
    return max(2, min(8, math.ceil(PREFETCH_IMAGES / max(1, batch_size))))


class ColorizationData(L.LightningDataModule):
    """``root``: a folder of images (recursive, class folders optional); None: the embedded sample
    photos. ``val_root``: a validation folder; None: every ``1/val_fraction``-th file of ``root``.
    ``decode``: ``cpu`` (workers decode and crop) or ``device`` (workers read bytes; decoding, resize
    and crop run on the training device, see the module docstring). Loaders keep their workers
    between epochs, pin memory when training on CUDA, and prefetch by the batch size."""

    def __init__(
        self,
        name: str,
        root: str | None = None,
        val_root: str | None = None,
        val_fraction: float = 0.02,
        crop: int = 180,
        resize: int = 256,
        min_scale: float | None = None,
        batch_size: int = 80,
        num_workers: int = 4,
        repeats: int = 1,
        seed: int = 0,
        max_images: int | None = None,
        decode: str = "cpu",
    ):
        super().__init__()
        if decode not in DECODE:
            raise ValueError(f"data.decode={decode!r} is not valid; valid: {', '.join(DECODE)}")
        self.decode = decode
        self.name, self.root, self.val_root, self.val_fraction = name, root, val_root, val_fraction
        self.crop, self.resize, self.min_scale = crop, resize, min_scale
        # workers capped by the cores present: more only compete (and torch warns about it)
        num_workers = min(num_workers, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1)
        self.batch_size, self.num_workers, self.repeats, self.seed = batch_size, num_workers, repeats, seed
        self.max_images = max_images
        self.train_items: list = []
        self.val_items: list = []
        self.images: list = []
        self._resume_batches = 0

    def setup(self, stage: str | None = None) -> None:
        if self.train_items:
            return
        if self.root is None:
            self.train_items = [sample_photo(n) for n in SAMPLE_TRAIN]
            self.val_items = [sample_photo(n) for n in SAMPLE_VAL]
        else:
            files = list_images(self.root)[: self.max_images]
            if self.val_root is not None:
                self.train_items, self.val_items = files, list_images(self.val_root)[: self.max_images]
            else:
                step = max(2, round(1 / self.val_fraction))
                self.val_items = files[::step]
                self.train_items = [f for i, f in enumerate(files) if i % step]
        self.images = list(self.train_items)  # each training image once (for the prior)
        self.train_items = self.train_items * self.repeats
        log.info("data %s: %d training and %d validation images", self.name, len(self.train_items), len(self.val_items))

    def train_dataloader(self) -> DataLoader:
        rank = self.trainer.global_rank if self.trainer else 0
        world = self.trainer.world_size if self.trainer else 1
        self.sampler = ResumableSampler(len(self.train_items), shuffle=True, seed=self.seed, rank=rank, world=world)
        if self.trainer is not None:
            self.sampler.set_epoch(self.trainer.current_epoch)
        self.sampler.start, self._resume_batches = self._resume_batches * self.batch_size, 0
        return self._loader(self._dataset(self.train_items, True), self.sampler)

    def val_dataloader(self) -> DataLoader:
        rank = self.trainer.global_rank if self.trainer else 0
        world = self.trainer.world_size if self.trainer else 1
        sampler = ResumableSampler(len(self.val_items), shuffle=False, rank=rank, world=world, pad=False)
        return self._loader(self._dataset(self.val_items, False), sampler)

    def _dataset(self, items: list, train: bool) -> Dataset:
        return CropDataset(items, self.crop, self.resize, train, self.min_scale if train else None,
                           decode=self.decode)  # fmt: skip

    collate = staticmethod(collate_crops)

    def _loader(self, dataset: Dataset, sampler: Sampler) -> DataLoader:
        device = self.trainer.strategy.root_device if self.trainer else None
        if self.decode == "device" and self.trainer:
            module = self.trainer.lightning_module
            if type(module).on_after_batch_transfer is L.LightningModule.on_after_batch_transfer:
                raise ValueError(
                    f"data.decode=device needs a module that finishes the batch on the device "
                    f"(pretext.data.finish_on_device in on_after_batch_transfer); {type(module).__name__} "
                    "does not: use data.decode=cpu"
                )
        workers = self.num_workers > 0
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            sampler=sampler,
            num_workers=self.num_workers,
            collate_fn=collate_undecoded if self.decode == "device" else self.collate,
            pin_memory=device.type == "cuda" if device is not None else torch.cuda.is_available(),
            persistent_workers=workers,
            prefetch_factor=prefetch_factor(self.batch_size) if workers else None,
            drop_last=False,
        )

    # Where in the epoch a checkpoint was taken travels in the checkpoint, so a resumed run
    # continues with the next batch of the same permutation.
    def state_dict(self) -> dict:
        # batches processed this epoch (a checkpoint taken in on_train_batch_end counts its batch)
        done = self.trainer.fit_loop.epoch_loop.batch_progress.current.processed if self.trainer else 0
        return {"batches_done_in_epoch": int(done)}

    def load_state_dict(self, state: dict) -> None:
        self._resume_batches = int(state.get("batches_done_in_epoch", 0))


class LabelledFolderData(ColorizationData):
    """Crops with class labels from an ImageNet-style folder: ``root/train`` and ``root/val`` each
    hold one sub-folder per class, with the same class names. Training: ``crop`` random crops of images
    resized to ``resize`` on the shorter side, flipped; validation: the centre crop."""

    def __init__(self, name: str, root: str, train_split: str = "train", val_split: str = "val", **kw):
        base = Path(root).expanduser()
        for split in (train_split, val_split):
            if not (base / split).is_dir():
                raise FileNotFoundError(
                    f"data root {base} has no {split}/ folder: expected the ImageNet layout "
                    f"{base}/{train_split}/<class>/*.JPEG and {base}/{val_split}/<class>/*.JPEG"
                )
        super().__init__(name, root=str(base / train_split), val_root=str(base / val_split), **kw)
        self.classes: list[str] = []

    def setup(self, stage: str | None = None) -> None:
        if self.train_items:
            return
        self.classes, files, labels = class_folders(self.root)
        val_classes, val_files, val_labels = class_folders(self.val_root)
        if val_classes != self.classes:
            only_train = sorted(set(self.classes) - set(val_classes))
            only_val = sorted(set(val_classes) - set(self.classes))
            raise ValueError(
                f"the classes of {self.val_root} differ from those of {self.root}: only in train "
                f"{only_train[:5]}, only in val {only_val[:5]}; both need the same class folders"
            )
        if self.max_images:  # an even subset: every k-th file keeps every class
            step = max(1, len(files) // self.max_images)
            files, labels = files[::step], labels[::step]
            vstep = max(1, len(val_files) // self.max_images)
            val_files, val_labels = val_files[::vstep], val_labels[::vstep]
        self.train_items, self.train_labels = files * self.repeats, labels * self.repeats
        self.val_items, self.val_labels = val_files, val_labels
        self.images = files
        log.info(
            "data %s: %d classes, %d training and %d validation images",
            self.name, len(self.classes), len(files), len(val_files),
        )  # fmt: skip

    def _dataset(self, items: list, train: bool) -> Dataset:
        labels = self.train_labels if train else self.val_labels
        return CropDataset(items, self.crop, self.resize, train, self.min_scale if train else None, labels,
                           decode=self.decode)  # fmt: skip

    collate = staticmethod(collate_labelled)
