"""PASCAL VOC data modules: the suite's resumable data machinery (``pretext.data.ColorizationData``:
sampler, mid-epoch resume, skipped-image counts) over the devkit readers of ``downstream/voc.py``."""

from __future__ import annotations

import logging

import numpy as np
from torch.utils.data import DataLoader, Dataset

from downstream.voc import (
    RandomScaleCrop,
    TenCrops,
    VocBoxes,
    VocImages,
    VocMasks,
    classification_set,
    collate_images,
    detection_targets,
    parse_annotation,
    read_split,
    segmentation_set,
    year_dir,
)
from pretext.data import ColorizationData, ResumableSampler, collate_labelled

log = logging.getLogger(__name__)


class VocClassificationData(ColorizationData):
    """PASCAL VOC image-level labels (``downstream/voc.py``): training images of ``train_split``
    under Kraehenbuehl et al.'s random scale, crop and flip; ``test_split`` as 10 crops each."""

    def __init__(
        self,
        name: str,
        root: str,
        year: int = 2007,
        train_split: str = "trainval",
        test_split: str = "test",
        scale: tuple[float, float] = (0.5, 2.0),
        test_resize: int | None = None,
        **kw,
    ):
        super().__init__(name, root=root, **kw)
        self.year, self.train_split, self.test_split = year, train_split, test_split
        self.scale, self.test_resize = tuple(scale), test_resize

    def setup(self, stage: str | None = None) -> None:
        if self.train_items:
            return
        self.train_items, self.train_labels = classification_set(self.root, self.year, self.train_split)
        self.val_items, self.val_labels = classification_set(self.root, self.year, self.test_split)
        self.images = list(self.train_items)
        self.train_items = self.train_items * self.repeats
        self.train_labels = np.concatenate([self.train_labels] * self.repeats)
        log.info("VOC%s: %d %s and %d %s images", self.year, len(self.images), self.train_split,
                 len(self.val_items), self.test_split)  # fmt: skip

    def _dataset(self, items: list, train: bool) -> Dataset:
        if train:
            return VocImages(items, self.train_labels, RandomScaleCrop(self.crop, self.scale))
        return VocImages(items, self.val_labels, TenCrops(self.crop, self.test_resize))

    collate = staticmethod(collate_labelled)


class VocSegmentationData(ColorizationData):
    """PASCAL VOC segmentation (``downstream/voc.py``): ``train_split`` images with their class masks
    (plus ``extra_root``), randomly cropped to ``crop`` (padded with the mean pixel / 255) and
    flipped; ``val_split`` whole, one image per batch, at its own size."""

    def __init__(self, name: str, root: str, year: int = 2012, train_split: str = "train",
                 val_split: str = "val", extra_root: str | None = None, **kw):  # fmt: skip
        super().__init__(name, root=root, **kw)
        self.year, self.train_split, self.val_split, self.extra_root = year, train_split, val_split, extra_root

    def setup(self, stage: str | None = None) -> None:
        if self.train_items:
            return
        val_ids = set(read_split(self.root, self.year, self.val_split, kind="Segmentation"))
        images, masks = segmentation_set(self.root, self.year, self.train_split, self.extra_root, val_ids)
        self.val_items = list(zip(*segmentation_set(self.root, self.year, self.val_split), strict=True))
        self.images = images
        self.train_items = list(zip(images, masks, strict=True)) * self.repeats
        log.info("VOC%s segmentation: %d %s and %d %s images", self.year, len(images), self.train_split,
                 len(self.val_items), self.val_split)  # fmt: skip

    def _dataset(self, items: list, train: bool) -> Dataset:
        return VocMasks(items, self.crop if train else None)

    collate = staticmethod(collate_labelled)

    def val_dataloader(self) -> DataLoader:
        rank = self.trainer.global_rank if self.trainer else 0
        world = self.trainer.world_size if self.trainer else 1
        sampler = ResumableSampler(len(self.val_items), shuffle=False, rank=rank, world=world, pad=False)
        return DataLoader(self._dataset(self.val_items, False), batch_size=1, sampler=sampler,
                          num_workers=self.num_workers, collate_fn=self.collate)  # fmt: skip


class VocDetectionData(ColorizationData):
    """PASCAL VOC boxes (``downstream/voc.py``): ``train_sets`` ([year, split] pairs: VOC07 trainval,
    optionally + VOC12 trainval) flipped at random, without difficult boxes; ``test_set`` with them
    (flagged, ignored by the AP). Boxes are clipped to the image and degenerate ones dropped, counted."""

    def __init__(self, name: str, root: str, train_sets=((2007, "trainval"),), test_set=(2007, "test"), **kw):
        super().__init__(name, root=root, **kw)
        self.train_sets, self.test_set = [tuple(x) for x in train_sets], tuple(test_set)
        self.boxes_clipped = self.boxes_dropped = 0

    def _read(self, year, split, keep_difficult: bool):
        base = year_dir(self.root, year)
        paths, targets = [], []
        for i in read_split(self.root, year, split):
            path = base / "JPEGImages" / f"{i}.jpg"
            if not path.is_file():
                raise FileNotFoundError(f"image {path} of VOC{year} {split} is missing")
            target, clipped, dropped = detection_targets(parse_annotation(base / "Annotations" / f"{i}.xml"),
                                                         keep_difficult)  # fmt: skip
            self.boxes_clipped += clipped
            self.boxes_dropped += dropped
            paths.append(path)
            targets.append(target)
        return paths, targets

    def setup(self, stage: str | None = None) -> None:
        if self.train_items:
            return
        self.train_targets = []
        for year, split in self.train_sets:
            paths, targets = self._read(year, split, keep_difficult=False)
            self.train_items += paths
            self.train_targets += targets
        self.val_items, self.val_targets = self._read(*self.test_set, keep_difficult=True)
        self.images = list(self.train_items)
        self.train_items, self.train_targets = self.train_items * self.repeats, self.train_targets * self.repeats
        log.info("VOC detection: %d training and %d test images; %d boxes clipped to their image, %d degenerate "
                 "boxes dropped", len(self.images), len(self.val_items), self.boxes_clipped,
                 self.boxes_dropped)  # fmt: skip

    def _dataset(self, items: list, train: bool) -> Dataset:

        return VocBoxes(items, self.train_targets if train else self.val_targets, flip=train)

    collate = staticmethod(collate_images)
