"""VOC07 detection: targets from annotations, training steps, image-coordinate boxes, a short run."""

import math

import torch
from hydra import compose, initialize_config_dir

from downstream.detector import build_detector
from downstream.finetune import grow_to_fc7
from downstream.voc import VocAnnotation, VocObject, detection_targets
from downstream.voc_data import VocDetectionData
from pretext.nets import AlexNetCC
from tests.conftest import ROOT, shared_path
from tests.voc_fixture import OBJ, write_devkit


def small_detector(scale: int = 160):
    torch.manual_seed(0)
    net, _ = grow_to_fc7(AlexNetCC(out_channels=1, fc_width=32, last="fc7"))
    return build_detector(net, train_scales=(scale,), test_scale=scale, rois_per_image=32), net


def test_boxes_outside_the_image_are_clipped_and_degenerate_ones_dropped():
    ann = VocAnnotation("x", 50, 40, (
        VocObject("dog", (1.0, 1.0, 50.0, 40.0), False),  # the whole image: 0-based 0..49, 0..39
        VocObject("cat", (30.0, 10.0, 80.0, 60.0), False),  # runs past the right and bottom edges
        VocObject("cat", (60.0, 10.0, 70.0, 20.0), False),  # wholly outside: degenerate once clipped
        VocObject("bird", (5.0, 5.0, 5.0, 9.0), False),  # zero width
        VocObject("person", (2.0, 2.0, 9.0, 9.0), True),  # difficult: left out of training targets
    ))  # fmt: skip
    target, clipped, dropped = detection_targets(ann, keep_difficult=False)
    assert target["boxes"].tolist() == [[0.0, 0.0, 49.0, 39.0], [29.0, 9.0, 49.0, 39.0]]
    assert target["labels"].tolist() == [12, 8] and (clipped, dropped) == (2, 2)
    with_difficult, _, _ = detection_targets(ann, keep_difficult=True)
    assert with_difficult["difficult"].tolist() == [False, False, True]


def test_training_on_bad_boxes_and_empty_images_gives_finite_losses(tmp_path):
    devkit = write_devkit(tmp_path, {"trainval": [[("dog", 0)], []], "test": [[("dog", 0)]]})
    xml = devkit / "VOC2007" / "Annotations" / "000001.xml"
    xml.write_text(xml.read_text().replace("</annotation>", OBJ.format(name="cat", difficult=0, x0=60, y0=5, x1=200,
                                                                        y1=300) + "</annotation>"))  # fmt: skip
    data = VocDetectionData("t", root=str(devkit), batch_size=2, num_workers=0)
    data.setup()
    assert data.boxes_clipped == 1 and len(data.train_targets[1]["boxes"]) == 0  # an image with no object
    model, _ = small_detector()
    (images, targets), _ = next(iter(data.train_dataloader()))
    model.train()
    losses = model([im.float() / 255 for im in images], [{"boxes": t["boxes"], "labels": t["labels"]} for t in targets])
    assert all(math.isfinite(v.item()) for v in losses.values())


def test_a_few_training_steps_on_voc_mini_reduce_the_loss():
    devkit = shared_path("data", "voc_mini", "VOCdevkit")
    data = VocDetectionData("t", root=str(devkit), batch_size=2, num_workers=0)
    data.setup()
    ds = data._dataset(data.train_items[:2], False)
    images = [ds[i][0].float() / 255 for i in range(2)]
    targets = [{"boxes": ds[i][1]["boxes"], "labels": ds[i][1]["labels"]} for i in range(2)]
    model, _ = small_detector(200)
    model.train()
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.01, momentum=0.9)
    losses = []
    for _ in range(10):
        torch.manual_seed(0)  # the same region samples each step
        loss = sum(model(images, targets).values())
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] * 0.8, losses


def test_inference_returns_boxes_in_the_images_own_coordinates():
    model, _ = small_detector(320)  # images are resized to 320 inside the model
    model.roi_heads.score_thresh = 0.0  # an untrained head: keep every box
    model.eval()
    images = [torch.rand(3, 90, 150), torch.rand(3, 200, 130)]
    with torch.no_grad():
        outs = model(images)
    for im, out in zip(images, outs, strict=True):
        h, w = im.shape[-2:]
        assert len(out["boxes"]) > 0
        assert out["boxes"][:, [0, 2]].max() <= w and out["boxes"][:, [1, 3]].max() <= h
        assert out["boxes"].min() >= 0
    assert max(float(outs[1]["boxes"][:, 3].max()), 0) > 90  # the taller image's boxes reach past the first's height


def test_a_short_run_on_voc_mini_writes_an_map_record(tmp_path):
    from downstream import pascal_det
    from pretext.checkpoint_files import save_encoder

    devkit = shared_path("data", "voc_mini", "VOCdevkit")
    torch.manual_seed(0)
    ckpt = save_encoder(AlexNetCC(out_channels=1, fc_width=32, last="fc7"), "colorization", tmp_path / "e.pt")
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("pascal_det", overrides=[
            f"ckpt={ckpt}", f"data.root={devkit}", "det_schedule=short", "det_schedule.max_steps=2",
            "det_schedule.val_every=2", "train_scales=[200]", "test_scale=200", "data.num_workers=0", "logger=csv",
            "trainer.accelerator=cpu", "trainer.devices=1", "roi=align", f"run_dir={tmp_path / 'run'}",
            f"results={tmp_path / 'r.jsonl'}",
        ])  # fmt: skip
    result = pascal_det.detect(cfg)
    assert result.complete and result.scores["classes_scored"] == 6  # the test split's six classes
    assert {r.metric for r in result.records} == {"mAP11", "mAP_area"}
    assert result.records[0].options["roi"] == "align"
