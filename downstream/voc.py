"""PASCAL VOC devkit readers (VOC2007 / VOC2012 layout): splits, annotations, image-level labels."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np

VOC_CLASSES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)  # fmt: skip


@dataclass(frozen=True)
class VocObject:
    name: str
    box: tuple[float, float, float, float]  # xmin, ymin, xmax, ymax (VOC's 1-based pixel coordinates)
    difficult: bool


@dataclass(frozen=True)
class VocAnnotation:
    image_id: str
    width: int
    height: int
    objects: tuple[VocObject, ...]


def year_dir(devkit: str | Path, year: int | str) -> Path:
    path = Path(devkit).expanduser() / f"VOC{year}"
    if not path.is_dir():
        raise FileNotFoundError(f"{path} does not exist: data.root must be a VOCdevkit folder holding VOC{year}/")
    return path


def read_split(devkit: str | Path, year: int | str, split: str, kind: str = "Main") -> list[str]:
    """Image ids of ``ImageSets/<kind>/<split>.txt``."""
    path = year_dir(devkit, year) / "ImageSets" / kind / f"{split}.txt"
    if not path.is_file():
        raise FileNotFoundError(f"split file {path} is missing: the devkit needs ImageSets/{kind}/{split}.txt")
    return [line.split()[0] for line in path.read_text().splitlines() if line.strip()]


def parse_annotation(path: str | Path) -> VocAnnotation:
    path = Path(path)
    try:
        root = ET.parse(path).getroot()
        size = root.find("size")
        width, height = int(size.findtext("width")), int(size.findtext("height"))
        objects = []
        for obj in root.iter("object"):
            bb = obj.find("bndbox")
            box = tuple(float(bb.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax"))
            objects.append(VocObject(obj.findtext("name").strip(), box, obj.findtext("difficult", "0").strip() == "1"))
    except (ET.ParseError, AttributeError, TypeError, ValueError) as err:
        raise ValueError(f"annotation {path} does not parse as a VOC XML ({type(err).__name__}: {err})") from err
    unknown = [o.name for o in objects if o.name not in VOC_CLASSES]
    if unknown:
        raise ValueError(f"annotation {path} names unknown classes {unknown}; VOC classes: {', '.join(VOC_CLASSES)}")
    return VocAnnotation(path.stem, width, height, tuple(objects))


def image_labels(objects: tuple[VocObject, ...]) -> np.ndarray:
    """(20,) int8: 1 where a class has a non-difficult object, 0 where only difficult ones (ignored
    by the classification protocol), -1 where absent: the convention of the devkit's class files."""
    labels = np.full(len(VOC_CLASSES), -1, dtype=np.int8)
    for o in objects:
        i = VOC_CLASSES.index(o.name)
        labels[i] = max(labels[i], 0 if o.difficult else 1)
    return labels


def classification_set(devkit: str | Path, year: int | str, split: str) -> tuple[list[Path], np.ndarray]:
    """(image paths, (N, 20) labels) of a split; images listed but missing are an error naming them."""
    base = year_dir(devkit, year)
    ids = read_split(devkit, year, split)
    paths = [base / "JPEGImages" / f"{i}.jpg" for i in ids]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"{len(missing)} images of {split} are missing, e.g. {', '.join(missing[:3])}")
    labels = np.stack([image_labels(parse_annotation(base / "Annotations" / f"{i}.xml").objects) for i in ids])
    return paths, labels


# ----------------------------------------------------------------------------------- classification data
class RandomScaleCrop:
    """The image scaled by a random factor in ``scale`` (log-uniform), padded with the mean pixel
    where smaller than ``crop``, randomly cropped and flipped: Kraehenbuehl et al.'s VOC transform."""

    MEAN = (124, 116, 104)  # RGB mean pixel

    def __init__(self, crop: int, scale: tuple[float, float]):
        self.crop, self.scale = crop, scale

    def __call__(self, img):
        import math

        import torch
        from torchvision.transforms.v2 import functional as TF

        lo, hi = math.log(self.scale[0]), math.log(self.scale[1])
        s = math.exp(lo + (hi - lo) * torch.rand(()).item())
        h, w = img.shape[-2:]
        img = TF.resize(img, [max(1, round(h * s)), max(1, round(w * s))], antialias=True)
        img = pad_to(img, self.crop, self.MEAN)
        h, w = img.shape[-2:]
        y = torch.randint(0, h - self.crop + 1, ()).item()
        x = torch.randint(0, w - self.crop + 1, ()).item()
        img = img[:, y : y + self.crop, x : x + self.crop]
        return img.flip(-1) if torch.rand(()).item() < 0.5 else img


def pad_to(img, size: int, fill: tuple[int, int, int]):
    import torch

    h, w = img.shape[-2:]
    if h >= size and w >= size:
        return img
    out = torch.tensor(fill, dtype=img.dtype).view(3, 1, 1).expand(3, max(h, size), max(w, size)).clone()
    out[:, :h, :w] = img
    return out


class TenCrops:
    """The 4 corner and centre crops and their mirror images, of the image resized so its shorter
    side is ``resize`` (None: as it is), as a (10, 3, crop, crop) stack."""

    def __init__(self, crop: int, resize: int | None):
        self.crop, self.resize = crop, resize

    def __call__(self, img):
        import torch
        from torchvision.transforms.v2 import functional as TF

        if self.resize:
            img = TF.resize(img, self.resize, antialias=True)
        img = pad_to(img, self.crop, RandomScaleCrop.MEAN)
        return torch.stack(TF.ten_crop(img, [self.crop, self.crop]))


def read_or_unreadable(path):
    """The image as uint8 RGB, or :class:`~pretext.images.Unreadable` when it cannot be read (the
    loader skips it; the run counts and names it)."""
    from pretext.images import Unreadable, read_rgb

    try:
        return read_rgb(path)
    except (RuntimeError, OSError, ValueError):
        return Unreadable(str(path))


class VocImages:
    """(transformed image, (20,) int8 labels) per listed image; ``Unreadable`` for an unreadable file."""

    def __init__(self, paths, labels, transform):
        self.paths, self.labels, self.transform = list(paths), labels, transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, key):
        import torch

        i, seed = key if isinstance(key, tuple) else (key, key)
        img = read_or_unreadable(self.paths[i])
        if not torch.is_tensor(img):
            return img
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return self.transform(img), torch.from_numpy(self.labels[i].astype("int64"))


# ----------------------------------------------------------------------------------- segmentation data
VOC_PALETTE = [  # the devkit's colour map for classes 0..20 (background, aeroplane, ...)
    (0, 0, 0), (128, 0, 0), (0, 128, 0), (128, 128, 0), (0, 0, 128), (128, 0, 128), (0, 128, 128),
    (128, 128, 128), (64, 0, 0), (192, 0, 0), (64, 128, 0), (192, 128, 0), (64, 0, 128), (192, 0, 128),
    (64, 128, 128), (192, 128, 128), (0, 64, 0), (128, 64, 0), (0, 192, 0), (128, 192, 0), (0, 64, 128),
]  # fmt: skip


def segmentation_set(devkit, year, split: str, extra_root=None, exclude: set[str] | None = None):
    """(image paths, mask paths) of ``ImageSets/Segmentation/<split>.txt``; with ``extra_root`` (a
    folder of extra masks in the same PNG format, e.g. SBD converted), every image there that has a
    JPEG in the devkit and is not in ``exclude`` is added."""
    from pathlib import Path

    base = year_dir(devkit, year)
    ids = read_split(devkit, year, split, kind="Segmentation")
    pairs = [(base / "JPEGImages" / f"{i}.jpg", base / "SegmentationClass" / f"{i}.png") for i in ids]
    if extra_root is not None:
        have = set(ids) | (exclude or set())
        for png in sorted(Path(extra_root).expanduser().glob("*.png")):
            jpg = base / "JPEGImages" / f"{png.stem}.jpg"
            if png.stem not in have and jpg.is_file():
                pairs.append((jpg, png))
    missing = [str(p) for pair in pairs for p in pair if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"{len(missing)} files of {split} are missing, e.g. {', '.join(missing[:3])}")
    return [a for a, _ in pairs], [b for _, b in pairs]


def read_mask(path, size: tuple[int, int] | None = None):
    """A VOC class PNG as a (H, W) uint8 tensor of class indices: palette or grey PNGs with values in
    0..20 and 255 (boundary, ignored). ``size`` (H, W): the image's, which the mask must match."""
    import torch
    from torchvision.io import ImageReadMode, decode_image, read_file

    mask = decode_image(read_file(str(path)), mode=ImageReadMode.UNCHANGED)
    if mask.shape[0] != 1:
        raise ValueError(
            f"mask {path} has {mask.shape[0]} channels: VOC masks are palette (or grey) PNGs of class indices"
        )
    mask = mask[0]
    if size is not None and tuple(mask.shape) != tuple(size):
        raise ValueError(f"mask {path} is {tuple(mask.shape)} (H, W) but its image is {tuple(size)}")
    bad = torch.unique(mask[(mask > 20) & (mask != 255)])
    if len(bad):
        raise ValueError(f"mask {path} holds values {bad.tolist()[:5]} outside the classes 0..20 and 255 (ignored)")
    return mask


class VocMasks:
    """(image uint8 (3, H, W), mask uint8 (H, W)) per (jpg, png) pair, checked against each other;
    with ``crop``, a random crop (padded with the mean pixel / 255 where smaller) and a flip."""

    def __init__(self, pairs, crop: int | None):
        self.pairs, self.crop = list(pairs), crop

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, key):
        import torch

        from pretext.images import read_rgb

        i, seed = key if isinstance(key, tuple) else (key, key)
        jpg, png = self.pairs[i]
        try:
            img = read_rgb(jpg)
        except (RuntimeError, OSError) as err:
            raise ValueError(f"image {jpg} cannot be read ({err})") from err
        mask = read_mask(png, tuple(img.shape[-2:]))
        if self.crop is None:
            return img, mask
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            img = pad_to(img, self.crop, RandomScaleCrop.MEAN)
            mask = pad_to(mask.expand(3, *mask.shape), self.crop, (255, 255, 255))[0]
            h, w = img.shape[-2:]
            y = torch.randint(0, h - self.crop + 1, ()).item()
            x = torch.randint(0, w - self.crop + 1, ()).item()
            img, mask = img[:, y : y + self.crop, x : x + self.crop], mask[y : y + self.crop, x : x + self.crop]
            if torch.rand(()).item() < 0.5:
                img, mask = img.flip(-1), mask.flip(-1)
        return img, mask


# ----------------------------------------------------------------------------------- detection data
def detection_targets(ann: VocAnnotation, keep_difficult: bool) -> tuple[dict, int, int]:
    """torchvision targets from an annotation, in 0-based pixel coordinates (VOC's minus one, as
    py-faster-rcnn): boxes clipped to the image, degenerate ones dropped. Returns (target, clipped,
    dropped)."""
    import torch

    boxes, labels, difficult = [], [], []
    clipped = dropped = 0
    for o in ann.objects:
        if o.difficult and not keep_difficult:
            continue
        x0, y0, x1, y1 = (v - 1 for v in o.box)
        c = (max(0.0, x0), max(0.0, y0), min(ann.width - 1.0, x1), min(ann.height - 1.0, y1))
        clipped += c != (x0, y0, x1, y1)
        if c[2] <= c[0] or c[3] <= c[1]:
            dropped += 1
            continue
        boxes.append(c)
        labels.append(VOC_CLASSES.index(o.name) + 1)  # 0 is background
        difficult.append(o.difficult)
    target = {
        "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        "labels": torch.tensor(labels, dtype=torch.int64),
        "difficult": torch.tensor(difficult, dtype=torch.bool),
    }
    return target, clipped, dropped


class VocBoxes:
    """(image uint8 (3, H, W), target) per image; flipped at random when ``flip``."""

    def __init__(self, paths, targets, flip: bool):
        self.paths, self.targets, self.flip = list(paths), list(targets), flip

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, key):
        import torch

        i, seed = key if isinstance(key, tuple) else (key, key)
        img = read_or_unreadable(self.paths[i])
        if not torch.is_tensor(img):
            return img
        target = {k: v.clone() for k, v in self.targets[i].items()} | {"index": torch.tensor(i)}
        g = torch.Generator().manual_seed(seed)
        if self.flip and torch.rand((), generator=g).item() < 0.5:
            w = img.shape[-1]
            img = img.flip(-1)
            b = target["boxes"]
            target["boxes"] = torch.stack([w - 1 - b[:, 2], b[:, 1], w - 1 - b[:, 0], b[:, 3]], 1)
        return img, target


def collate_images(batch):
    """((images list, targets list), skipped): detection images keep their own sizes; ``skipped``
    lists the unreadable files."""
    from pretext.images import split_unreadable

    good, skipped = split_unreadable(batch)
    return ([im for im, _ in good], [t for _, t in good]), skipped
