"""The ab histogram of a dataset, written as a gamut + prior file for training (``color.stats``).

    python pretext/stats.py data.root=DIR [gamut=srgb|data|PATH] [output=FILE]

Streams the images (decoded in worker processes, one histogram each), so memory does not grow
with the dataset. Unreadable files are skipped and counted.
"""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
import numpy as np
import torch
from omegaconf import DictConfig
from rich.progress import track

from pretext.color import Gamut, ab_grid_histogram, rgb_to_lab
from pretext.images import list_images, read_rgb

log = logging.getLogger(__name__)


class _Histograms(torch.utils.data.Dataset):
    """One ab grid histogram per image (a file or a uint8 tensor); an unreadable file gives None."""

    def __init__(self, items: list[Path | torch.Tensor]):
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        item = self.items[i]
        try:
            rgb = read_rgb(item) if isinstance(item, Path) else item
        except (RuntimeError, OSError, ValueError):
            return i, None
        return i, ab_grid_histogram(rgb_to_lab(rgb)[1:])


def dataset_grid_histogram(
    items: list[Path | torch.Tensor], num_workers: int = 2
) -> tuple[torch.Tensor, list[Path | torch.Tensor]]:
    """Summed ab grid counts over images (files or tensors), and the files that could not be
    read. Streams: one image at a time per worker."""
    loader = torch.utils.data.DataLoader(
        _Histograms(items), batch_size=None, num_workers=num_workers, collate_fn=lambda x: x
    )
    total = torch.zeros_like(ab_grid_histogram(torch.zeros(2, 1, 1)))
    skipped = []
    for i, hist in track(loader, total=len(items), description="ab histogram"):
        if hist is None:
            skipped.append(items[i])
        else:
            total += hist
    return total, skipped


def choose_gamut(name: str, grid_counts: torch.Tensor, sigma: float) -> tuple[Gamut, int]:
    """The gamut named by the config, with its prior from ``grid_counts``."""
    if name == "data":
        return Gamut.from_grid_histogram(grid_counts, sigma), 0
    base = Gamut.from_srgb() if name == "srgb" else Gamut.from_file(name)
    return base.with_prior_from(grid_counts, sigma)


def compute_stats(cfg: DictConfig) -> Path:
    files = list_images(cfg.data.root)
    if cfg.data.max_images:
        files = files[: cfg.data.max_images]
    counts, skipped = dataset_grid_histogram(files, cfg.num_workers)
    if len(skipped) == len(files):
        raise RuntimeError(f"none of the {len(files)} images under {cfg.data.root} could be read")
    gamut, outside = choose_gamut(str(cfg.gamut), counts, cfg.sigma)
    out = Path(cfg.output)
    gamut.save(
        out,
        grid_counts=counts.numpy(),
        n_images=np.array(len(files) - len(skipped)),
        n_skipped=np.array(len(skipped)),
        pixels_outside_gamut=np.array(outside),
    )
    for f in skipped[:10]:
        log.warning("skipped unreadable image %s", f)
    log.info(
        "%d images (%d skipped), %d pixels, gamut %s with Q=%d bins (%d pixels outside it) -> %s",
        len(files) - len(skipped),
        len(skipped),
        int(counts.sum()),
        gamut.source,
        gamut.Q,
        outside,
        out.resolve(),
    )
    return out


@hydra.main(config_path="../conf", config_name="stats", version_base="1.3")
def main(cfg: DictConfig) -> None:
    compute_stats(cfg)


if __name__ == "__main__":
    main()
