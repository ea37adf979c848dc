"""Reading image files as 8-bit sRGB tensors, whatever their mode."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import Tensor
from torchvision.io import ImageReadMode, decode_image, read_file
from torchvision.transforms.v2.functional import to_dtype

# torchvision 0.29 marks its decoders deprecated in favour of TorchCodec, which needs FFmpeg; they
# remain the pinned, tested decoders here, so the notice is silenced rather than shown per worker.
warnings.filterwarnings("ignore", message="The image decoding and encoding capabilities", category=DeprecationWarning)

# What torchvision decodes (by content, not by name): the folder scan keeps these.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".webp")


def decode_rgb(data: Tensor) -> Tensor:
    """Encoded bytes (uint8, 1-D) to a (3, H, W) uint8 sRGB image.

    Grey, grey + alpha, palette, RGBA and CMYK become RGB (alpha is dropped: the colour values are
    kept as they are); 16-bit images are rounded to 8 bits.
    """
    img = decode_image(data, mode=ImageReadMode.RGB)
    if img.dtype != torch.uint8:
        img = to_dtype(img, torch.uint8, scale=True)
    return img


def read_rgb(path: str | Path) -> Tensor:
    """Read an image file as a (3, H, W) uint8 sRGB tensor (see :func:`decode_rgb`)."""
    return decode_rgb(read_file(str(path)))


def list_images(root: str | Path) -> list[Path]:
    """Every image file under ``root`` (recursive, sorted). Fails with a clear message when the
    folder is missing or holds no image."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"data root {root} is not a folder: set data.root to a folder of images")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
    if not files:
        raise FileNotFoundError(
            f"no images under {root}: expected files ending in {', '.join(IMAGE_EXTENSIONS)} (any depth)"
        )
    return files
