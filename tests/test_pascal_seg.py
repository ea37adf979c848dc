"""VOC segmentation: IoU from confusion matrices, masks, FCN sizes, training, an end-to-end run."""

import math

import pytest
import torch
from hydra import compose, initialize_config_dir
from torchvision.io import write_png

from downstream.fcn import FCN
from downstream.finetune import grow_to_fc7
from downstream.seg_metrics import SegmentationScores
from downstream.seg_module import Segmenter
from downstream.voc import VocMasks, read_mask, segmentation_set
from pretext.nets import AlexNetCC
from tests.conftest import ROOT, shared_path


def test_iou_from_a_constructed_confusion_matrix():
    # confusion (rows: truth, columns: prediction) [[3, 1, 0], [2, 4, 0], [0, 0, 0]]; class 2 absent from both
    truth = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1, 1, 1])
    pred = torch.tensor([0, 0, 0, 1, 0, 0, 1, 1, 1, 1])
    metric = SegmentationScores(num_classes=3)
    metric.update(pred[:4], truth[:4])  # two images, scored together
    metric.update(pred[4:], truth[4:])
    s = metric.compute()
    assert s["iou"][0] == pytest.approx(3 / (3 + 1 + 2) * 100)  # tp / (row + column - tp) = 3 / 6
    assert s["iou"][1] == pytest.approx(4 / (6 + 5 - 4) * 100)  # 4 / 7
    assert math.isnan(s["iou"][2])
    assert s["mIoU"] == pytest.approx((50 + 400 / 7) / 2)  # the absent class is not averaged in
    assert s["pixel_acc"] == pytest.approx(7 / 10 * 100)


def test_ignored_pixels_never_count():
    truth = torch.tensor([[0, 1, 255], [255, 1, 0]])
    pred = torch.tensor([[0, 0, 1], [1, 1, 0]])
    metric = SegmentationScores(num_classes=2)
    metric.update(pred, truth)
    s = metric.compute()  # confusion [[2, 0], [1, 1]] over the 4 pixels that count
    assert metric.pixels == 4 and s["pixel_acc"] == pytest.approx(75.0)
    assert s["iou"] == pytest.approx([2 / 3 * 100, 1 / 2 * 100])


def test_fcn_output_matches_any_input_size_for_every_variant():
    net, _ = grow_to_fc7(AlexNetCC(out_channels=1, fc_width=16, last="fc7"))
    for variant in ("fcn32s", "fcn16s", "fcn8s"):
        module = Segmenter(FCN(net, variant=variant)).eval()
        for h, w in ((67, 93), (101, 77), (32, 32)):
            out = module(torch.randint(0, 256, (1, 3, h, w), dtype=torch.uint8))
            assert out.shape == (1, 21, h, w), (variant, h, w)
    with pytest.raises(ValueError, match="valid: fcn32s, fcn16s, fcn8s"):
        FCN(net, variant="fcn4s")


def test_bad_masks_name_their_file(tmp_path):
    write_png(torch.zeros(1, 5, 7, dtype=torch.uint8), str(tmp_path / "ok.png"))
    assert read_mask(tmp_path / "ok.png", (5, 7)).shape == (5, 7)
    with pytest.raises(ValueError, match=r"ok.png is \(5, 7\) \(H, W\) but its image is \(6, 7\)"):
        read_mask(tmp_path / "ok.png", (6, 7))
    bad = torch.zeros(1, 5, 7, dtype=torch.uint8)
    bad[0, 0, 0] = 42
    write_png(bad, str(tmp_path / "bad.png"))
    with pytest.raises(ValueError, match=r"bad.png holds values \[42\] outside the classes"):
        read_mask(tmp_path / "bad.png")
    write_png(torch.zeros(3, 5, 7, dtype=torch.uint8), str(tmp_path / "rgb.png"))
    with pytest.raises(ValueError, match="rgb.png has 3 channels"):
        read_mask(tmp_path / "rgb.png")


def test_a_few_steps_on_voc_mini_reduce_the_loss():
    devkit = shared_path("data", "voc_mini", "VOCdevkit")
    images, masks = segmentation_set(devkit, 2012, "train")
    data = VocMasks(list(zip(images, masks, strict=True))[:2], crop=160)
    rgb = torch.stack([data[(i, i)][0] for i in range(2)])
    mask = torch.stack([data[(i, i)][1] for i in range(2)]).long()
    torch.manual_seed(0)
    net, _ = grow_to_fc7(AlexNetCC(out_channels=1, fc_width=32, last="fc7"))
    module = Segmenter(FCN(net, dropout=0.0), lr=0.01)
    opt = module.configure_optimizers()["optimizer"]
    losses = []
    for _ in range(8):
        loss = torch.nn.functional.cross_entropy(module(rgb), mask, ignore_index=255)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] * 0.8, losses


def test_a_short_run_on_voc_mini_writes_an_miou_record_and_pictures(tmp_path):
    from downstream import pascal_seg
    from pretext.checkpoint_files import save_encoder

    devkit = shared_path("data", "voc_mini", "VOCdevkit")
    torch.manual_seed(0)
    ckpt = save_encoder(AlexNetCC(out_channels=1, fc_width=32, last="fc7"), "colorization", tmp_path / "e.pt")
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("pascal_seg", overrides=[
            f"ckpt={ckpt}", f"data.root={devkit}", "seg_schedule=short", "seg_schedule.max_steps=2",
            "seg_schedule.val_every=2", "seg_schedule.crop=96", "data.num_workers=0", "logger=csv", "pictures=2",
            "trainer.accelerator=cpu", "trainer.devices=1", "variant=fcn8s", "freeze=conv3",
            f"run_dir={tmp_path / 'run'}", f"results={tmp_path / 'r.jsonl'}",
        ])  # fmt: skip
    result = pascal_seg.segment(cfg)
    assert result.complete and 0 <= result.scores["mIoU"] <= 100
    assert {r.metric for r in result.records} == {"mIoU", "pixel_acc"}
    assert result.records[0].options["variant"] == "fcn8s" and (tmp_path / "run" / "predictions.png").is_file()
