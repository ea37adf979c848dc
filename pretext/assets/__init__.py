"""Files shipped inside the package, found relative to it (an editable checkout or an install).

``imagenette_train_stats.npz``: the gamut + prior that training takes by default
(``color.stats=imagenette_train``): the sRGB gamut (309 bins) and the smoothed (sigma = 5) ab prior
of all 9469 Imagenette train photos, written by

    python pretext/stats.py data.root=../shared/data/imagenette/train output=pretext/assets/imagenette_train_stats.npz
"""

from __future__ import annotations

from pathlib import Path

ASSETS = Path(__file__).resolve().parent
STATS = {"imagenette_train": ASSETS / "imagenette_train_stats.npz"}  # color.stats=<name> -> file
MEASURE = "measure"  # color.stats=measure: the prior is measured on the training images at start


def stats_file(value: str | Path) -> Path:
    """A ``color.stats`` value as a file: a shipped name (:data:`STATS`) or a path."""
    if str(value) in STATS:
        return STATS[str(value)]
    path = Path(value).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"color.stats={value}: no such file; give a file from pretext/stats.py, a shipped name "
            f"({', '.join(STATS)}) or {MEASURE} (measured on the training images at start)"
        )
    return path
