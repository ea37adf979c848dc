"""Training data: an ImageNet-style folder or the embedded sample photos.

Workers only decode and crop (uint8); the Lab conversion and the encoding run on the training
device. An unreadable file is skipped and counted, never a crash. The sampler yields (index, seed)
pairs from (seed, epoch) alone and can start part-way through an epoch, so a resumed run sees the
same crops in the same order as an uninterrupted one.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler
from torchvision.datasets.folder import find_classes
from torchvision.transforms import v2

from pretext.images import list_images, read_rgb

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
    a per-sample seed for the crop. ``start`` skips samples already seen this epoch (on resume)."""

    def __init__(self, n: int, shuffle: bool = True, seed: int = 0, rank: int = 0, world: int = 1):
        self.n, self.shuffle, self.seed, self.rank, self.world = n, shuffle, seed, rank, world
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int) -> None:
        if epoch != self.epoch:
            self.start = 0  # the skip applies to the epoch the run was resumed in only
        self.epoch = epoch

    def __len__(self) -> int:
        return math.ceil(self.n / self.world)  # the whole epoch: the loop counts the skipped part as done

    def __iter__(self) -> Iterator[tuple[int, int]]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        order = torch.randperm(self.n, generator=g) if self.shuffle else torch.arange(self.n)
        per_rank = math.ceil(self.n / self.world)
        order = torch.cat([order, order[: per_rank * self.world - self.n]])  # pad so ranks match
        mine = order[self.rank :: self.world]
        seeds = torch.randint(0, 2**62, (self.n,), generator=g)
        for i in mine[self.start :].tolist():
            yield i, int(seeds[i])


class CropDataset(Dataset):
    """Images (files or tensors) -> uint8 crops, or (crop, label) when ``labels`` are given; ``None``
    for an unreadable file."""

    def __init__(
        self,
        items: Sequence[Path | Tensor],
        crop: int,
        resize: int,
        train: bool,
        min_scale: float | None,
        labels: Sequence[int] | None = None,
    ):
        self.items, self.train, self.labels = list(items), train, labels
        if train and min_scale is not None:
            self.transform = v2.Compose(
                [v2.RandomResizedCrop(crop, scale=(min_scale, 1.0), antialias=True), v2.RandomHorizontalFlip()]
            )
        elif train:  # the paper: crops of images resized to 256 on the shorter side, flipped
            self.transform = v2.Compose(
                [v2.Resize(resize, antialias=True), v2.RandomCrop(crop), v2.RandomHorizontalFlip()]
            )
        else:
            self.transform = v2.Compose([v2.Resize(resize, antialias=True), v2.CenterCrop(crop)])

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, key: tuple[int, int] | int) -> Tensor | None:
        i, seed = key if isinstance(key, tuple) else (key, key)
        item = self.items[i]
        if isinstance(item, Path):
            try:
                item = read_rgb(item)
            except (RuntimeError, OSError, ValueError) as err:
                log.debug("unreadable image %s: %s", item, err)
                return None
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            crop = self.transform(item)
        return crop if self.labels is None else (crop, int(self.labels[i]))


def collate_crops(batch: list[Tensor | None]) -> tuple[Tensor, Tensor]:
    """Stack the readable crops; also return how many were skipped."""
    good = [x for x in batch if x is not None]
    skipped = torch.tensor(len(batch) - len(good))
    if not good:
        return torch.zeros(0, 3, 1, 1, dtype=torch.uint8), skipped
    return torch.stack(good), skipped


def collate_labelled(batch: list[tuple[Tensor, int] | None]) -> tuple[tuple[Tensor, Tensor], Tensor]:
    """``((crops, labels), skipped)``: the readable crops with their labels, and how many were skipped."""
    good = [x for x in batch if x is not None]
    skipped = torch.tensor(len(batch) - len(good))
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


class ColorizationData(L.LightningDataModule):
    """``root``: a folder of images (recursive, class folders optional); None: the embedded sample
    photos. ``val_root``: a validation folder; None: every ``1/val_fraction``-th file of ``root``."""

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
    ):
        super().__init__()
        self.name, self.root, self.val_root, self.val_fraction = name, root, val_root, val_fraction
        self.crop, self.resize, self.min_scale = crop, resize, min_scale
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
        sampler = ResumableSampler(len(self.val_items), shuffle=False, rank=rank, world=world)
        return self._loader(self._dataset(self.val_items, False), sampler)

    def _dataset(self, items: list, train: bool) -> Dataset:
        return CropDataset(items, self.crop, self.resize, train, self.min_scale if train else None)

    collate = staticmethod(collate_crops)

    def _loader(self, dataset: Dataset, sampler: Sampler) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            sampler=sampler,
            num_workers=self.num_workers,
            collate_fn=self.collate,
            pin_memory=torch.cuda.is_available(),
            persistent_workers=False,
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
        return CropDataset(items, self.crop, self.resize, train, self.min_scale if train else None, labels)

    collate = staticmethod(collate_labelled)
