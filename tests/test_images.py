import io
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from pretext.images import list_images, read_rgb


def _rgb(h=6, w=7, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _png16(path, arr: np.ndarray):
    """A 16-bit RGB PNG written by hand (PIL cannot write one)."""
    h, w, _ = arr.shape
    raw = b"".join(b"\x00" + arr[y].astype(">u2").tobytes() for y in range(h))

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    )


def _hwc(t: torch.Tensor) -> np.ndarray:
    assert t.dtype == torch.uint8 and t.shape[0] == 3
    return t.permute(1, 2, 0).numpy()


@pytest.mark.parametrize("mode", ["RGB", "L", "LA", "RGBA", "P"])
def test_png_modes_read_as_rgb(tmp_path, mode):
    img = Image.fromarray(_rgb()).convert(mode)
    img.save(tmp_path / "x.png")
    expected = np.array(img.convert("RGB"))  # PIL's own RGB view: grey replicated, alpha dropped, palette applied
    assert np.array_equal(_hwc(read_rgb(tmp_path / "x.png")), expected)


def test_cmyk_jpeg_reads_as_rgb(tmp_path):
    img = Image.fromarray(_rgb(16, 16)).convert("CMYK")
    img.save(tmp_path / "x.jpg", quality=100)
    expected = np.array(Image.open(tmp_path / "x.jpg").convert("RGB")).astype(int)
    assert np.abs(_hwc(read_rgb(tmp_path / "x.jpg")).astype(int) - expected).max() <= 2


def test_16bit_grey_png_keeps_its_high_byte(tmp_path):
    grey = np.random.default_rng(1).integers(0, 65536, (5, 4), dtype=np.uint16)
    Image.fromarray(grey).save(tmp_path / "g16.png")
    out = _hwc(read_rgb(tmp_path / "g16.png"))
    assert np.array_equal(out, np.repeat((grey >> 8).astype(np.uint8)[..., None], 3, 2))


def test_16bit_rgb_png_keeps_its_high_byte(tmp_path):
    arr = np.random.default_rng(2).integers(0, 65536, (5, 4, 3), dtype=np.uint16)
    _png16(tmp_path / "c16.png", arr)
    assert np.array_equal(_hwc(read_rgb(tmp_path / "c16.png")), (arr >> 8).astype(np.uint8))


def test_a_png_named_jpg_is_read_by_its_content(tmp_path):
    buf = io.BytesIO()
    Image.fromarray(_rgb()).save(buf, "PNG")
    (tmp_path / "x.jpg").write_bytes(buf.getvalue())
    assert np.array_equal(_hwc(read_rgb(tmp_path / "x.jpg")), _rgb())


def test_corrupt_file_raises(tmp_path):
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    with pytest.raises(RuntimeError):
        read_rgb(tmp_path / "bad.jpg")


def test_list_images_is_recursive_sorted_and_filters_extensions(tmp_path):
    (tmp_path / "cls_b").mkdir()
    (tmp_path / "cls_a" / "deep").mkdir(parents=True)
    for p in ["cls_b/2.JPEG", "cls_a/deep/1.png", "top.webp", "notes.txt"]:
        (tmp_path / p).write_bytes(b"x")
    got = [p.relative_to(tmp_path).as_posix() for p in list_images(tmp_path)]
    assert got == ["cls_a/deep/1.png", "cls_b/2.JPEG", "top.webp"]


def test_list_images_names_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a folder"):
        list_images(tmp_path / "missing")
    (tmp_path / "a.txt").write_text("x")
    with pytest.raises(FileNotFoundError, match="no images under"):
        list_images(tmp_path)
