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


class VocImages:
    """(transformed image, (20,) int8 labels) per listed image; None for an unreadable file."""

    def __init__(self, paths, labels, transform):
        self.paths, self.labels, self.transform = list(paths), labels, transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, key):
        import torch

        from pretext.images import read_rgb

        i, seed = key if isinstance(key, tuple) else (key, key)
        try:
            img = read_rgb(self.paths[i])
        except (RuntimeError, OSError, ValueError):
            return None
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return self.transform(img), torch.from_numpy(self.labels[i].astype("int64"))
