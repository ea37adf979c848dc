"""data.decode=device: workers read bytes and draw the boxes, the JPEGs are decoded, resized and cut
on the training device (here the CPU); the crops match the CPU path's for the same seed, unreadable
files are skipped and counted, other formats fall back to the CPU decoder in the worker."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms import v2

from pretext import train as train_mod
from pretext.data import (
    ColorizationData,
    CropDataset,
    LabelledFolderData,
    Pending,
    Undecoded,
    apply_plan,
    finish_on_device,
    plan_crop,
    prefetch_factor,
    sample_photo,
)
from pretext.images import jpeg_size
from tests.test_train import cfg_for

# Both paths decode with libjpeg on the CPU here: identical. nvJPEG on CUDA differs by a few levels.
JPEG_TOLERANCE = {"max": 12, "mean": 1.0}


def _photo(h: int, w: int, seed: int) -> np.ndarray:
    """A smooth colour image (JPEG-friendly), h x w x 3 uint8."""
    rng = np.random.default_rng(seed)
    small = (rng.random((6, 8, 3)) * 255).astype(np.uint8)
    return np.asarray(Image.fromarray(small).resize((w, h), Image.BILINEAR))


def _folder(root: Path) -> dict[str, Path]:
    """JPEGs of several sizes (one progressive, one grey), a truncated JPEG and the files the
    batched decoder does not take: PNG, 16-bit PNG, CMYK JPEG."""
    root.mkdir(parents=True)
    files = {}
    for i, (h, w) in enumerate([(120, 160), (160, 120), (150, 200), (97, 131), (200, 150), (140, 140)]):
        files[f"rgb{i}"] = root / f"rgb{i}.jpg"
        Image.fromarray(_photo(h, w, i)).save(files[f"rgb{i}"], quality=90, progressive=(i == 3))
    files["grey"] = root / "grey.jpg"
    Image.fromarray(_photo(110, 150, 7)[..., 0]).save(files["grey"], quality=90)
    files["cmyk"] = root / "cmyk.jpg"
    Image.fromarray(_photo(130, 170, 8)).convert("CMYK").save(files["cmyk"], quality=90)
    files["png"] = root / "png.png"
    Image.fromarray(_photo(125, 125, 9)).save(files["png"])
    files["png16"] = root / "png16.png"
    Image.fromarray(_photo(120, 130, 10)[..., 1].astype(np.uint16) * 257).save(files["png16"])
    files["truncated"] = root / "truncated.jpg"
    data = files["rgb0"].read_bytes()
    files["truncated"].write_bytes(data[: len(data) // 2])
    return files


def _crops(data: ColorizationData, device: str = "cpu") -> tuple[list, int]:
    """Every training batch of an epoch, finished as the module's hook does; the skipped total."""
    data.setup("fit")
    out, skipped = [], 0
    for batch in data.train_dataloader():
        payload, names = finish_on_device(batch, device)
        out.append(payload)
        skipped += len(names)
    return out, skipped


# ------------------------------------------------------------------------------ unit-level
def test_jpeg_header_says_which_files_the_device_decoder_takes(tmp_path):
    files = _folder(tmp_path / "f")
    assert jpeg_size(files["rgb0"].read_bytes()) == (120, 160)
    assert jpeg_size(files["rgb3"].read_bytes()) == (97, 131)  # progressive
    assert jpeg_size(files["grey"].read_bytes()) == (110, 150)
    assert jpeg_size(files["truncated"].read_bytes()) == (120, 160)  # header intact: fails at decode time
    for name in ("cmyk", "png", "png16"):
        assert jpeg_size(files[name].read_bytes()) is None, name
    assert jpeg_size(b"") is None and jpeg_size(b"\xff\xd8\xff") is None


@pytest.mark.parametrize("train,min_scale", [(True, None), (True, 0.08), (False, None)])
def test_the_crop_plan_draws_as_torchvision_transforms_do(train, min_scale):
    img = sample_photo("chelsea")
    if train and min_scale is not None:
        ref = v2.Compose([v2.RandomResizedCrop(96, scale=(min_scale, 1.0), antialias=True), v2.RandomHorizontalFlip()])
    elif train:
        ref = v2.Compose([v2.Resize(128, antialias=True), v2.RandomCrop(96), v2.RandomHorizontalFlip()])
    else:
        ref = v2.Compose([v2.Resize(128, antialias=True), v2.CenterCrop(96)])
    for seed in range(12):
        torch.manual_seed(seed)
        expected = ref(img)
        plan = plan_crop(*img.shape[-2:], 96, 128, train, min_scale, torch.Generator().manual_seed(seed))
        assert torch.equal(apply_plan(img, plan), expected), seed


def test_workers_send_bytes_for_jpegs_and_crops_for_the_rest(tmp_path):
    files = _folder(tmp_path / "f")
    order = ["rgb0", "grey", "cmyk", "png", "png16", "truncated"]
    ds = CropDataset([files[k] for k in order], crop=64, resize=80, train=True, min_scale=None, decode="device")
    kinds = [ds[(i, 5)].kind for i in range(len(order))]
    assert kinds == ["jpeg", "jpeg", "crop", "crop", "crop", "jpeg"]
    assert ds[(0, 5)].data.dim() == 1  # the file's bytes, undecoded
    assert ds[(2, 5)].data.shape == (3, 64, 64)
    assert prefetch_factor(80) == 2 and prefetch_factor(16) == 4 and prefetch_factor(1) == 8


# ------------------------------------------------------------------------------ both paths
@pytest.mark.parametrize("min_scale", [None, 0.2])
def test_device_path_crops_match_the_cpu_path_and_count_the_truncated_jpeg(tmp_path, min_scale):
    files = _folder(tmp_path / "f")
    kw = dict(root=str(tmp_path / "f"), val_root=str(tmp_path / "f"), crop=64, resize=80, min_scale=min_scale,
              batch_size=4, num_workers=0, seed=3)  # fmt: skip
    cpu, cpu_skipped = _crops(ColorizationData("t", decode="cpu", **kw))
    dev, dev_skipped = _crops(ColorizationData("t", decode="device", **kw))
    assert cpu_skipped == dev_skipped == 1  # the truncated JPEG, once per epoch
    cpu, dev = torch.cat(cpu), torch.cat(dev)
    assert cpu.shape == dev.shape == (len(files) - 1, 3, 64, 64) and dev.dtype == torch.uint8
    diff = (cpu.int() - dev.int()).abs()
    assert diff.max() <= JPEG_TOLERANCE["max"] and diff.float().mean() <= JPEG_TOLERANCE["mean"]


def test_device_path_keeps_labels_with_their_crops(tmp_path):
    for split in ("train", "val"):
        for c, seed in (("a", 0), ("b", 1)):
            d = tmp_path / "d" / split / c
            d.mkdir(parents=True)
            for i in range(3):
                Image.fromarray(_photo(90 + 10 * i, 100, seed * 10 + i)).save(d / f"{i}.jpg", quality=90)
    bad = tmp_path / "d" / "train" / "a" / "0.jpg"
    bad.write_bytes(bad.read_bytes()[:200])
    kw = dict(root=str(tmp_path / "d"), crop=48, resize=56, batch_size=4, num_workers=0, seed=1)
    cpu, cpu_skipped = _crops(LabelledFolderData("t", decode="cpu", **kw))
    dev, dev_skipped = _crops(LabelledFolderData("t", decode="device", **kw))
    assert cpu_skipped == dev_skipped == 1
    assert torch.equal(torch.cat([y for _, y in cpu]), torch.cat([y for _, y in dev]))
    assert (torch.cat([x for x, _ in cpu]).int() - torch.cat([x for x, _ in dev]).int()).abs().max() <= 12


def test_a_batch_of_only_unreadable_files_is_empty_and_names_them():
    junk = Undecoded([Pending("jpeg", torch.tensor([0xFF, 0xD8, 0xFF, 0xC0, 1, 2], dtype=torch.uint8), None, None,
                              "c.jpg")])  # fmt: skip
    x, skipped = finish_on_device((junk, ["a.jpg", "b.jpg"]), "cpu")  # two already failed in the workers
    assert x.shape[0] == 0 and skipped == ["a.jpg", "b.jpg", "c.jpg"]


# ------------------------------------------------------------------------------ runs
def test_training_with_device_decode_skips_and_counts_a_truncated_jpeg(tmp_path):
    root = tmp_path / "train"
    root.mkdir()
    for i in range(12):
        Image.fromarray(_photo(96 + 8 * (i % 3), 120, i)).save(root / f"{i:03d}.jpg", quality=90)
    data = (root / "000.jpg").read_bytes()
    (root / "000.jpg").write_bytes(data[: len(data) // 2])
    result = train_mod.train(cfg_for(tmp_path / "run", "data=folder", f"data.root={root}", f"data.val_root={root}",
                                     "data.decode=device", "data.repeats=1", "model.max_steps=-1",
                                     "trainer.max_epochs=1", "color.prior_images=100"))  # fmt: skip
    assert result["global_step"] == 3  # 11 readable images in batches of 4
    assert result["skipped_images"] == 1 and result["skipped_files"] == [str(root / "000.jpg")]


def test_demo_data_trains_with_device_decode(tmp_path):
    result = train_mod.train(cfg_for(tmp_path / "run", "data.decode=device", "model.max_steps=3"))
    assert result["global_step"] == 3 and result["skipped_images"] == 0
