"""Overfit checks of the PASCAL pipelines: train on ../shared/data/voc_mini and score the same images.

A pipeline that is wired right (images and labels aligned, boxes in the image's coordinates, masks
aligned with their images, scores gathered in order) can learn a handful of images by heart, so
each evaluation, run through its real entry point with its test split pointed at its training split,
must reach a high score on them: classification mAP >= 90, detection mAP@0.5 >= 50, segmentation
mIoU >= 50. A wiring bug (labels off by one, boxes flipped or scaled wrongly, masks shifted) keeps
the score far below, however long it trains.

The encoder is a small random AlexNet (fc width 64; 256 for segmentation) whose BatchNorm
statistics are set on the images themselves (the within-layer normalisation of Kraehenbuehl et al.'s
init): fine-tuning keeps BatchNorm frozen, and without this step a random net's signal fades layer by
layer (fc7 varies by about 0.006 from image to image), so nothing could be learnt in a few steps. The
three are slow: ``-k overfit`` selects them.

What an overfit test cannot see: a corruption that is the same every time an image is drawn can be
learnt by heart too. Training images flipped without their boxes still reach mAP 89 here (the net
learns each mirrored image's boxes where they were drawn), while labels rolled by one image (mAP 31),
training boxes at half scale (mAP 0) and masks shifted 48 px (mIoU 39) fail. So the flips and crops
of the training data are checked directly, on synthetic images, by the two fast tests at the end.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir

from pretext.checkpoint_files import save_encoder
from pretext.images import read_rgb
from pretext.nets import AlexNetCC
from pretext.predict import encoder_input
from tests.conftest import ROOT, shared_path


def calibrated_encoder(path, images, side: int, fc_width: int = 64):
    """A random ``AlexNetCC`` (L input, up to fc7) whose BatchNorm statistics are those of ``images``
    resized to ``side`` x ``side``, saved as an exported colorization encoder."""
    torch.manual_seed(0)
    net = AlexNetCC(out_channels=1, fc_width=fc_width, last="fc7")
    x = torch.stack([
        F.interpolate(read_rgb(p)[None].float(), size=(side, side), mode="bilinear", antialias=True)[0]
        .round().clamp(0, 255).to(torch.uint8)
        for p in images
    ])  # fmt: skip
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None  # a plain average over the calibration batch
    net.train()
    with torch.no_grad():
        net(encoder_input(x, 1))
    net.eval()
    return save_encoder(net, "colorization", path)


def config(name: str, tmp_path, devkit, ckpt, *overrides):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose(name, overrides=[
            f"ckpt={ckpt}", f"data.root={devkit}", "data.num_workers=0", "logger=csv", "trainer.accelerator=cpu",
            "trainer.devices=1", "trainer.precision=32-true", f"run_dir={tmp_path / 'run'}",
            f"results={tmp_path / 'r.jsonl'}", *overrides,
        ])  # fmt: skip


def report(name: str, result, started: float, score: str) -> None:
    print(f"\n{name}: {score} {result.scores[score]:.1f} after {result.step} steps, {time.monotonic() - started:.0f} s")


@pytest.mark.slow
def test_overfit_pascal_cls_reaches_map_90_on_its_training_images(tmp_path):
    from downstream import pascal_cls

    devkit = shared_path("data", "voc_mini", "VOCdevkit")
    images = sorted((devkit / "VOC2007" / "JPEGImages").glob("*.jpg"))
    ckpt = calibrated_encoder(tmp_path / "enc.pt", images, side=70)
    cfg = config("pascal_cls", tmp_path, devkit, ckpt,
                 "data.test_split=trainval",  # scored on the training images
                 "freeze=none", "cls_schedule=short", "cls_schedule.max_steps=120", "cls_schedule.val_every=120",
                 "cls_schedule.ckpt_every=120", "cls_schedule.lr=0.005", "cls_schedule.lr_step=1000",
                 "cls_schedule.dropout=0", "cls_schedule.batch_size=10", "+data.repeats=2",
                 # the whole image at about 70 px: random 67 crops in training, 10 crops of 67 in the test
                 "data.crop=67", "data.scale=[0.18,0.2]", "data.test_resize=70")  # fmt: skip
    started = time.monotonic()
    result = pascal_cls.classify(cfg)
    report("pascal_cls", result, started, "mAP11")
    assert result.complete and result.step == 120
    assert result.scores["classes_scored"] == 6  # dog, person, train, sofa, chair, car
    assert result.scores["mAP11"] >= 90, result.scores
    assert result.records[0].options["images"] == 5


@pytest.mark.slow
def test_overfit_pascal_det_reaches_map50_of_50_on_its_training_images(tmp_path):
    from downstream import pascal_det

    devkit = shared_path("data", "voc_mini", "VOCdevkit")
    images = sorted((devkit / "VOC2007" / "JPEGImages").glob("*.jpg"))
    ckpt = calibrated_encoder(tmp_path / "enc.pt", images, side=200)
    cfg = config("pascal_det", tmp_path, devkit, ckpt,
                 "data.test_set=[2007,trainval]",  # scored on the training images
                 # the random conv layers fixed: the RPN and the box head learn on top (fc6, fc7, the predictor)
                 "freeze=conv5", "roi=align", "train_scales=[200]", "test_scale=200", "max_size=500",
                 "rois_per_image=32", "det_schedule=short", "det_schedule.max_steps=80", "det_schedule.val_every=80",
                 "det_schedule.ckpt_every=80", "det_schedule.batch_size=5", "det_schedule.lr=0.02",
                 "det_schedule.lr_step=1000", "det_schedule.dropout=0",
                 # without clipping, the first steps at this lr can throw the heads off (seen: mAP 38 at step 100)
                 "+trainer.gradient_clip_val=5")  # fmt: skip
    started = time.monotonic()
    result = pascal_det.detect(cfg)
    report("pascal_det", result, started, "mAP11")
    assert result.complete and result.step == 80
    assert result.scores["classes_scored"] == 6  # dog, person, train, sofa, chair, car
    assert result.scores["mAP11"] >= 50, result.scores
    assert result.records[0].options["images"] == 5


@pytest.mark.slow
def test_overfit_pascal_seg_reaches_miou_50_on_its_training_images(tmp_path):
    from downstream import pascal_seg
    from downstream.voc import segmentation_set

    devkit = shared_path("data", "voc_mini", "VOCdevkit")
    images, _ = segmentation_set(devkit, 2012, "train")
    ckpt = calibrated_encoder(tmp_path / "enc.pt", images, side=256, fc_width=256)  # 64 wide: 52 at step 140
    cfg = config("pascal_seg", tmp_path, devkit, ckpt,
                 "data.val_split=train",  # scored on the training images, each whole, at its own size
                 # the random conv layers fixed: fc6, fc7 and the score layers (fc7, conv2 and conv1 skips) learn
                 "freeze=conv5", "variant=fcn8s", "seg_schedule=short", "seg_schedule.max_steps=140",
                 "seg_schedule.val_every=140", "seg_schedule.ckpt_every=140", "seg_schedule.batch_size=4",
                 "seg_schedule.crop=256", "seg_schedule.lr=0.01", "seg_schedule.dropout=0", "pictures=4")  # fmt: skip
    started = time.monotonic()
    result = pascal_seg.segment(cfg)
    report("pascal_seg", result, started, "mIoU")
    assert result.complete and result.step == 140
    assert result.scores["mIoU"] >= 50, result.scores
    assert result.records[0].options["images"] == 4
    assert (tmp_path / "run" / "predictions.png").is_file()  # image | truth | prediction, to look at


# ----------------------------------------------------------------------------- what memorising cannot check
def white_box_image(path, h: int, w: int, box) -> None:
    """A black PNG with a white rectangle at ``box`` (x0, y0, x1, y1: inclusive, 0-based pixels)."""
    from PIL import Image

    img = np.zeros((h, w, 3), np.uint8)
    x0, y0, x1, y1 = box
    img[y0 : y1 + 1, x0 : x1 + 1] = 255
    Image.fromarray(img).save(path)


def test_flipped_training_boxes_still_frame_their_objects(tmp_path):
    from downstream.voc import VocBoxes

    box = (5, 10, 14, 29)
    white_box_image(tmp_path / "a.png", 40, 61, box)
    target = {"boxes": torch.tensor([box], dtype=torch.float32), "labels": torch.tensor([3]),
              "difficult": torch.tensor([False])}  # fmt: skip
    data = VocBoxes([tmp_path / "a.png"], [target], flip=True)
    flips = set()
    for seed in range(12):
        img, t = data[(0, seed)]
        x0, y0, x1, y1 = (int(v) for v in t["boxes"][0])
        white = img[0] > 127
        flips.add(bool(white[:, 40:].any()))  # mirrored: the object is in the right half
        assert white[y0 : y1 + 1, x0 : x1 + 1].all() and white.sum() == (x1 - x0 + 1) * (y1 - y0 + 1), (seed, t)
    assert flips == {True, False}  # both drawn


def test_cropped_flipped_training_masks_stay_on_their_pixels(tmp_path):
    from PIL import Image

    from downstream.voc import VocMasks

    white_box_image(tmp_path / "a.png", 50, 70, (3, 7, 20, 40))
    mask = np.zeros((50, 70), np.uint8)
    mask[7:41, 3:21] = 12
    mask[0, :] = 255
    Image.fromarray(mask, mode="L").save(tmp_path / "a_mask.png")
    flips = set()
    for crop in (32, 64):  # inside the image, and padded past it
        data = VocMasks([(tmp_path / "a.png", tmp_path / "a_mask.png")], crop)
        for seed in range(12):
            img, m = data[(0, seed)]
            assert img.shape[-2:] == m.shape == (crop, crop)
            white = img[0] > 127
            assert torch.equal(white, m == 12), (crop, seed)
            if white.any():
                flips.add(bool(white[:, crop // 2 :].sum() > white[:, : crop // 2].sum()))
    assert flips == {True, False}
