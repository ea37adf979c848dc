"""VOC07 classification: readers, bad devkits, frozen layers, and a short end-to-end run."""

import json

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir

from downstream.voc import VOC_CLASSES, classification_set, parse_annotation, read_split
from pretext.checkpoint_files import save_encoder
from pretext.nets import AlexNetCC
from tests.conftest import ROOT, shared_path
from tests.voc_fixture import write_devkit

TRAIN = [[("dog", 0)], [("cat", 0)], [("dog", 0), ("person", 1)], [("cat", 0)], [("dog", 0)], [("cat", 0)]]
TEST = [[("dog", 0)], [("cat", 0)], [("dog", 0)], [("cat", 1)]]


def test_voc_mini_annotations_parse_exactly():
    devkit = shared_path("data", "voc_mini", "VOCdevkit")
    base = devkit / "VOC2007" / "Annotations"
    first = parse_annotation(base / "000001.xml")
    assert (first.width, first.height) == (353, 500)
    assert [(o.name, o.box, o.difficult) for o in first.objects] == [
        ("dog", (48.0, 240.0, 195.0, 371.0), False),
        ("person", (8.0, 12.0, 352.0, 498.0), False),
    ]
    fifth = parse_annotation(base / "000005.xml")
    assert [(o.box, o.difficult) for o in fifth.objects] == [
        ((263.0, 211.0, 324.0, 339.0), False), ((165.0, 264.0, 253.0, 372.0), False),
        ((5.0, 244.0, 67.0, 374.0), True), ((241.0, 194.0, 295.0, 299.0), False),
        ((277.0, 186.0, 312.0, 220.0), True),
    ]  # fmt: skip
    assert {o.name for o in fifth.objects} == {"chair"}
    assert read_split(devkit, 2012, "val", kind="Segmentation") == ["2007_000033", "2007_000042", "2011_000025"]


def test_bad_devkits_name_the_file(tmp_path):
    devkit = write_devkit(tmp_path, {"trainval": TRAIN, "test": TEST})
    with pytest.raises(FileNotFoundError, match=r"ImageSets/Main/val.txt"):
        classification_set(devkit, 2007, "val")
    (devkit / "VOC2007" / "Annotations" / "000002.xml").write_text("<annotation><size>")
    with pytest.raises(ValueError, match="000002.xml does not parse"):
        classification_set(devkit, 2007, "trainval")
    for i in (3, 4, 5):
        (devkit / "VOC2007" / "JPEGImages" / f"00000{i}.jpg").unlink()
    with pytest.raises(FileNotFoundError, match=r"3 images of trainval are missing, e.g. .*000003.jpg"):
        classification_set(devkit, 2007, "trainval")
    with pytest.raises(FileNotFoundError, match="VOC2012"):
        read_split(devkit, 2012, "trainval")


def test_labels_keep_difficult_flags(tmp_path):
    devkit = write_devkit(tmp_path, {"trainval": TRAIN, "test": TEST})
    _, labels = classification_set(devkit, 2007, "test")
    cat, dog = VOC_CLASSES.index("cat"), VOC_CLASSES.index("dog")
    assert labels[:, dog].tolist() == [1, -1, 1, -1] and labels[:, cat].tolist() == [-1, 1, -1, 0]


def cls_cfg(tmp_path, devkit, ckpt, *overrides):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose("pascal_cls", overrides=[
            f"ckpt={ckpt}", f"data.root={devkit}", "cls_schedule=short", "cls_schedule.max_steps=6",
            "cls_schedule.val_every=6", "cls_schedule.ckpt_every=3", "cls_schedule.batch_size=3",
            "data.num_workers=0", "data.crop=67", "logger=csv", "trainer.accelerator=cpu", "trainer.devices=1",
            f"run_dir={tmp_path / 'run'}", f"results={tmp_path / 'r.jsonl'}", *overrides,
        ])  # fmt: skip


def small_encoder(path, last="fc7"):
    torch.manual_seed(0)
    return save_encoder(AlexNetCC(out_channels=1, fc_width=32, last=last), "colorization", path)


def test_frozen_layers_keep_bit_identical_weights(tmp_path, monkeypatch):
    from downstream import cls_module, pascal_cls

    devkit = write_devkit(tmp_path, {"trainval": TRAIN, "test": TEST})
    ckpt = small_encoder(tmp_path / "enc.pt")
    seen = {}
    original = cls_module.VocClassifier.__init__

    def spy(self, net, *a, **kw):
        original(self, net, *a, **kw)
        seen["net"], seen["before"] = net, {k: v.clone() for k, v in net.state_dict().items()}

    monkeypatch.setattr(cls_module.VocClassifier, "__init__", spy)
    result = pascal_cls.classify(cls_cfg(tmp_path, devkit, ckpt, "freeze=conv5"))
    after, before = seen["net"].state_dict(), seen["before"]
    for k in after:
        layer = k.split(".")[1]
        if layer in ("conv1", "conv2", "conv3", "conv4", "conv5") or "running" in k:
            assert torch.equal(after[k], before[k]), k  # frozen, and BatchNorm statistics untouched
    assert not torch.equal(after["blocks.fc6.0.weight"], before["blocks.fc6.0.weight"])  # fc6-8 trained
    assert result.complete and result.scores["classes_scored"] == 2  # cat and dog have test positives
    records = [json.loads(x) for x in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert {r["metric"] for r in records} == {"mAP11", "mAP_area"} and records[0]["layer"] == "freeze:conv5"
    assert np.isfinite(records[0]["value"])


def test_an_encoder_without_fc_layers_gets_new_ones_and_bad_freeze_is_named(tmp_path):
    from downstream import pascal_cls
    from downstream.finetune import grow_to_fc7

    own = AlexNetCC(out_channels=1, fc_width=32, last="fc7")
    grown, new = grow_to_fc7(own)
    assert new == [] and torch.equal(grown.blocks.fc6[0].weight, own.blocks.fc6[0].weight)
    grown, new = grow_to_fc7(AlexNetCC(in_channels=3, last="pool5"))  # Context Encoders stop at pool5
    assert new == ["fc6", "fc7"] and grown.fc_width == 4096 and grown.in_channels == 3
    assert torch.all(grown.blocks.fc7[0].bias == 0.1)
    devkit = write_devkit(tmp_path, {"trainval": TRAIN, "test": TEST})
    with pytest.raises(ValueError, match="valid: none, conv1"):
        pascal_cls.classify(cls_cfg(tmp_path, devkit, small_encoder(tmp_path / "e.pt"), "freeze=conv9"))


def test_a_short_run_on_voc_mini_writes_an_map_record(tmp_path):
    from downstream import pascal_cls

    devkit = shared_path("data", "voc_mini", "VOCdevkit")
    ckpt = small_encoder(tmp_path / "enc.pt")
    result = pascal_cls.classify(cls_cfg(tmp_path, devkit, ckpt, "freeze=none", "data.crop=99"))
    assert result.complete and 0 < result.scores["mAP11"] <= 100
    assert result.records[0].dataset == "voc07"
