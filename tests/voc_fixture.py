"""A tiny VOCdevkit in the real on-disk layout (JPEGImages, Annotations, ImageSets/Main)."""

from pathlib import Path

import torch
from torchvision.io import encode_jpeg, write_file

OBJ = (
    "<object><name>{name}</name><difficult>{difficult}</difficult><bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin>"
    "<xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>"
)


def write_devkit(root: Path, splits: dict[str, list[list[tuple[str, int]]]], size: int = 64, year: int = 2007):
    """``splits``: split name -> one list per image of (class name, difficult) objects. Each class
    gets its own brightness so that a classifier can tell them apart. Returns the devkit folder."""
    base = root / "VOCdevkit" / f"VOC{year}"
    for sub in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(0)
    n = 0
    for split, images in splits.items():
        ids = []
        for objects in images:
            n += 1
            image_id = f"{n:06d}"
            ids.append(image_id)
            level = 40 + 50 * (hash(objects[0][0]) % 4) if objects else 128
            img = (torch.rand(3, size, size + 8, generator=g) * 40 + level).clamp(0, 255).to(torch.uint8)
            write_file(str(base / "JPEGImages" / f"{image_id}.jpg"), encode_jpeg(img))
            objs = "".join(OBJ.format(name=c, difficult=d, x0=2, y0=3, x1=size - 4, y1=size - 5) for c, d in objects)
            (base / "Annotations" / f"{image_id}.xml").write_text(
                f"<annotation><filename>{image_id}.jpg</filename><size><width>{size + 8}</width>"
                f"<height>{size}</height><depth>3</depth></size>{objs}</annotation>"
            )
        (base / "ImageSets" / "Main" / f"{split}.txt").write_text("\n".join(ids) + "\n")
    return root / "VOCdevkit"
