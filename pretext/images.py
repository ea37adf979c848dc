"""Reading image files as 8-bit sRGB tensors, whatever their mode; which JPEGs a batched (device)
decoder takes as they are."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import NamedTuple

import torch
from torch import Tensor
from torchvision.io import ImageReadMode, decode_image, read_file
from torchvision.transforms.v2.functional import to_dtype

# torchvision 0.29 marks its decoders deprecated in favour of TorchCodec, which needs FFmpeg; they
# remain the pinned, tested decoders here, so the notice is silenced rather than shown per worker.
warnings.filterwarnings("ignore", message="The image decoding and encoding capabilities", category=DeprecationWarning)

# What torchvision decodes (by content, not by name): the folder scan keeps these.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".webp")


class Unreadable(NamedTuple):
    """What a dataset gives for a file it cannot read: the file, so that a run counts each
    unreadable file once and names it (:class:`pretext.run.SkippedImages`)."""

    path: str


def split_unreadable(batch: list) -> tuple[list, list[str]]:
    """A batch's readable items, and the paths of its unreadable files (for the collate functions)."""
    return [x for x in batch if not isinstance(x, Unreadable)], [x.path for x in batch if isinstance(x, Unreadable)]


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


# Start-of-frame markers of the JPEGs a batched decoder (``decode_jpeg`` on a list, nvJPEG on CUDA)
# takes: baseline, extended sequential and progressive Huffman. Lossless (C3), hierarchical (C5-C7)
# and arithmetic-coded (C9-CB, CD-CF) ones go to the CPU decoder.
_DEVICE_SOF = (0xC0, 0xC1, 0xC2)
_OTHER_SOF = (0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF)
_STANDALONE = {0x01, 0xD8, *range(0xD0, 0xD8)}  # markers without a length field


def jpeg_size(data: Tensor | bytes) -> tuple[int, int] | None:
    """``(height, width)`` of an 8-bit grey or YCbCr JPEG read from its header alone, without
    decoding; ``None`` for anything a batched device decoder should not be given: another format
    (PNG, GIF, WebP), a CMYK / YCCK or Adobe-RGB JPEG, 12 / 16 bits, lossless or arithmetic
    coding, or a header that does not parse. Those files are decoded on the CPU instead."""
    buf = data.numpy().tobytes() if isinstance(data, Tensor) else bytes(data)
    if buf[:2] != b"\xff\xd8":
        return None
    i, n, adobe_transform = 2, len(buf), None
    while i + 4 <= n:
        if buf[i] != 0xFF:
            return None
        marker = buf[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in _STANDALONE:
            i += 2
            continue
        length = int.from_bytes(buf[i + 2 : i + 4], "big")
        seg = buf[i + 4 : i + 2 + length]
        if length < 2 or len(seg) != length - 2:
            return None
        if marker == 0xEE and seg[:5] == b"Adobe" and len(seg) >= 12:
            adobe_transform = seg[11]
        if marker in _DEVICE_SOF:
            if len(seg) < 6:
                return None
            bits, h, w, components = seg[0], int.from_bytes(seg[1:3], "big"), int.from_bytes(seg[3:5], "big"), seg[5]
            if bits != 8 or h == 0 or w == 0 or components not in (1, 3):
                return None
            if components == 3 and adobe_transform == 0:  # RGB-coded, not YCbCr
                return None
            return h, w
        if marker in _OTHER_SOF or marker == 0xDA:  # another coding, or scan data before any frame
            return None
        i += 2 + length
    return None


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
