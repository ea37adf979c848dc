"""The ab histogram of a dataset, written as a gamut + prior file for training (``color.stats``).

    python pretext/stats.py data.root=DIR [gamut=srgb|data|PATH] [output=FILE]

Streams the images (decoded in worker processes, one histogram each), so memory does not grow
with the dataset. Unreadable files are skipped and counted.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from pretext.ab_histogram import choose_gamut, dataset_grid_histogram
from pretext.cli import entry
from pretext.images import list_images

log = logging.getLogger(__name__)


def compute_stats(cfg: DictConfig) -> Path:
    files = list_images(cfg.data.root)
    if cfg.data.max_images:
        files = files[: cfg.data.max_images]
    counts, skipped = dataset_grid_histogram(files, cfg.num_workers)
    if len(skipped) == len(files):
        raise ValueError(f"none of the {len(files)} images under {cfg.data.root} could be read")
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


@entry("stats")
def main(cfg: DictConfig) -> None:
    compute_stats(cfg)


if __name__ == "__main__":
    main()
