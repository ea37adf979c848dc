"""The VOC07-style linear SVM probe and the VOC readers it uses."""

import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from downstream import svm_probe as svm
from downstream.voc import VOC_CLASSES, classification_set, image_labels, parse_annotation
from tests.conftest import ROOT, shared_path
from tests.test_linear_probe import write_folder


def test_svm_on_separable_features_scores_high_and_ignores_difficult():
    rng = np.random.default_rng(0)
    n = 60
    y = np.where(np.arange(n) % 3 == 0, 1, -1)
    x = svm.l2_normalise(rng.normal(size=(n, 16)) + 3.0 * (y[:, None] == 1) * np.eye(16)[0])
    noisy = y.copy()
    noisy[:6] = 0  # "difficult": left out of training and AP
    r = svm.svm_class_ap(x, noisy, x, noisy, [0.01, 1.0], 3, 2.0, 2000)
    assert r["ap"] > 95 and r["cost"] in (0.01, 1.0) and set(r["cv_ap"]) == {0.01, 1.0}
    shuffled = rng.permutation(y)
    r = svm.svm_class_ap(x, shuffled, x[::-1], shuffled, [1.0], 3, 2.0, 2000)
    assert r["ap"] < 70  # chance is ~33 (a third positive)
    assert svm.svm_class_ap(x, -np.ones(n), x, y, [1.0], 3, 2.0, 2000) is None  # no positive to learn from


def test_svm_probe_caches_features_and_writes_records(tmp_path, monkeypatch):
    write_folder(tmp_path / "d" / "train", {"a": 0, "b": 3}, 6, seed=1)
    write_folder(tmp_path / "d" / "val", {"a": 0, "b": 3}, 3, seed=2)
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("svm_probe", overrides=[
            "init=gaussian", "layer=[conv1,conv2]", "data.kind=folder", f"data.root={tmp_path / 'd'}", "data.name=t",
            "data.train_split=train", "data.test_split=val", "num_workers=0", "costs=[0.1,10.0]",
            f"cache_dir={tmp_path / 'cache'}", f"results={tmp_path / 'r.jsonl'}",
        ])  # fmt: skip
    calls = []
    real = svm.extract_features
    monkeypatch.setattr(svm, "extract_features", lambda *a, **k: calls.append(1) or real(*a, **k))
    first = svm.svm_probe(cfg)
    assert len(calls) == 2  # train and val
    assert first.scores["conv1"]["mAP"] > 90 and first.scores["conv1"]["top1"] > 90
    second = svm.svm_probe(cfg)
    assert len(calls) == 2  # read back from the cache
    assert second.scores["conv2"]["mAP"] == first.scores["conv2"]["mAP"]
    recs = [r for r in svm_records(tmp_path / "r.jsonl")]
    assert {(r["layer"], r["metric"]) for r in recs} == {(l, m) for l in ("conv1", "conv2") for m in ("mAP", "top1")}


def svm_records(path):
    from downstream.results import read_records

    return read_records(path)


def test_voc_labels_mark_difficult_only_classes_zero(tmp_path):
    xml = tmp_path / "1.xml"
    xml.write_text(
        "<annotation><size><width>10</width><height>8</height></size>"
        "<object><name>dog</name><difficult>0</difficult><bndbox><xmin>1</xmin><ymin>2</ymin><xmax>5</xmax>"
        "<ymax>6</ymax></bndbox></object>"
        "<object><name>cat</name><difficult>1</difficult><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>3</xmax>"
        "<ymax>3</ymax></bndbox></object></annotation>"
    )
    ann = parse_annotation(xml)
    assert (ann.width, ann.height) == (10, 8) and ann.objects[0].box == (1.0, 2.0, 5.0, 6.0)
    labels = image_labels(ann.objects)
    assert labels[VOC_CLASSES.index("dog")] == 1 and labels[VOC_CLASSES.index("cat")] == 0
    assert (labels == -1).sum() == 18
    (tmp_path / "bad.xml").write_text("<annotation><size>")
    with pytest.raises(ValueError, match="bad.xml does not parse"):
        parse_annotation(tmp_path / "bad.xml")


def test_voc_mini_classification_labels():
    devkit = shared_path("data", "voc_mini", "VOCdevkit")
    paths, labels = classification_set(devkit, 2007, "trainval")
    assert [p.stem for p in paths] == ["000001", "000002", "000003", "000004", "000005"]
    named = [sorted(VOC_CLASSES[j] for j in np.flatnonzero(row == 1)) for row in labels]
    assert named == [["dog", "person"], ["train"], ["chair", "sofa"], ["car"], ["chair"]]
    with pytest.raises(FileNotFoundError, match="ImageSets/Main/val.txt"):
        classification_set(devkit, 2007, "val")
