"""Colorize people's photos with a trained checkpoint.

    python pretext/colorize.py ckpt=FILE input=old_photo.jpg output=colour.png [side_by_side=true]
    python pretext/colorize.py ckpt=FILE input=album/ output=album_colour/

Any size and mode (grey, RGB, RGBA, palette, 16-bit). The result keeps the input's L at full
resolution and takes the predicted ab, predicted at ``net_size`` and upsampled: the net never runs
at full size. Outputs are written whole or not at all (temporary file, then rename).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig
from PIL import Image

from pretext.checkpoint_files import Colorizer, load_colorizer
from pretext.cli import entry
from pretext.images import IMAGE_EXTENSIONS, list_images, read_rgb
from pretext.predict import colorize

log = logging.getLogger("pretext.colorize")
WRITABLE = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG"}


def save_atomic(rgb: torch.Tensor, path: Path) -> None:
    """Write a (3, H, W) uint8 image as PNG or JPEG (by extension), whole or not at all."""
    fmt = WRITABLE.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"output {path}: write .png, .jpg or .jpeg")
    arr = rgb.permute(1, 2, 0).cpu().numpy()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        Image.fromarray(np.ascontiguousarray(arr)).save(tmp, format=fmt, **({"quality": 95} if fmt == "JPEG" else {}))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def colorize_file(
    model: Colorizer, src: Path, dst: Path, side_by_side: bool, temperature: float, net_size: int
) -> None:
    device = next(model.net.parameters()).device
    rgb = read_rgb(src).to(device)[None]
    out = colorize(model.net, rgb, model.gamut.centers.to(device), temperature, net_size)[0]
    if side_by_side:
        out = torch.cat([rgb[0], out], dim=-1)
    save_atomic(out, dst)


def run(cfg: DictConfig) -> list[Path]:
    src, dst = Path(cfg.input), Path(cfg.output)
    if not src.exists():
        raise FileNotFoundError(f"input {src} does not exist: give an image file or a folder of images")
    if src.is_file() and src.suffix.lower() not in IMAGE_EXTENSIONS:
        raise ValueError(f"input {src} is not an image: expected one of {', '.join(IMAGE_EXTENSIONS)}")
    if src.is_file() and dst.suffix.lower() not in WRITABLE:
        raise ValueError(f"output {dst}: for a file input write .png, .jpg or .jpeg")
    device = cfg.device if cfg.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    model = load_colorizer(cfg.ckpt, device)
    temperature = model.temperature if cfg.temperature is None else float(cfg.temperature)
    if src.is_file():
        pairs = [(src, dst)]
    else:
        pairs = []
        for f in list_images(src):
            rel = f.relative_to(src)
            pairs.append((f, dst / (rel if rel.suffix.lower() in WRITABLE else rel.with_suffix(".png"))))
    written, failed = [], []
    for s, d in pairs:
        try:
            colorize_file(model, s, d, cfg.side_by_side, temperature, cfg.net_size)
            written.append(d)
        except RuntimeError as err:  # an unreadable image in a folder: skip it, say so
            if len(pairs) == 1:
                raise ValueError(f"cannot read {s} as an image: {err}") from err
            failed.append(s)
            log.warning("skipped %s: %s", s, err)
    log.info("wrote %d images to %s (%d skipped)", len(written), dst, len(failed))
    return written


@entry("colorize")
def main(cfg: DictConfig) -> None:
    for path in run(cfg):
        print(path)


if __name__ == "__main__":
    main()
