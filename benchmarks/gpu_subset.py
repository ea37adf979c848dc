"""An even subset of an ImageNet-layout folder (``split/<class>/<image>``), copied for a machine that
cannot read the original (``benchmarks/gpu/prepare.sh``): ``--train`` and ``--val`` photos per class,
every k-th in name order, the photos listed in ``near_grayscale.txt`` left out.

    python -m benchmarks.gpu_subset --src ../shared/data/imagenette --dst benchmarks/gpu/payload/imagenette
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from downstream.features import even_subset
from pretext.images import list_images


def copy_subset(src: Path, dst: Path, per_class: dict[str, int]) -> dict[str, int]:
    """Copy ``per_class[split]`` photos of each class of each split; returns the photos per split."""
    grey = src / "near_grayscale.txt"
    left_out = set(grey.read_text().split()) if grey.is_file() else set()
    counts = {}
    for split, n in per_class.items():
        classes = sorted(p for p in (src / split).iterdir() if p.is_dir())
        if not classes:
            raise FileNotFoundError(f"{src / split} has no class folders")
        counts[split] = 0
        for c in classes:
            files = [f for f in list_images(c) if str(f.relative_to(src)) not in left_out]
            (dst / split / c.name).mkdir(parents=True, exist_ok=True)
            for i in even_subset(len(files), n):
                shutil.copy2(files[i], dst / split / c.name / files[i].name)
                counts[split] += 1
    return counts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--src", default="../shared/data/imagenette")
    ap.add_argument("--dst", default="benchmarks/gpu/payload/imagenette")
    ap.add_argument("--train", type=int, default=250, help="photos per class of train")
    ap.add_argument("--val", type=int, default=40, help="photos per class of val")
    args = ap.parse_args()
    dst = Path(args.dst)
    if dst.exists():
        shutil.rmtree(dst)  # a fresh copy: an older subset's extra photos would stay otherwise
    counts = copy_subset(Path(args.src), dst, {"train": args.train, "val": args.val})
    print(f"copied {counts} to {dst}")


if __name__ == "__main__":
    main()
