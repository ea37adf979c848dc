"""The ab histogram of a set of images on the grid of step 10, streamed through workers (unreadable
files skipped and counted), and the gamut + prior it gives. ``pretext/stats.py`` writes it to a file."""

from __future__ import annotations

from pathlib import Path

import torch
from rich.progress import track

from pretext.color import Gamut, ab_grid_histogram, rgb_to_lab
from pretext.images import read_rgb


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


