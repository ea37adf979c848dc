"""The VOC07-style linear SVM probe and the VOC readers it uses."""

import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from downstream import features
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
    real = features.extract_features
    monkeypatch.setattr(features, "extract_features", lambda *a, **k: calls.append(1) or real(*a, **k))
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


# ------------------------------------------------------------------------------- the torch solver
def _features(n=150, d=40, classes=3, seed=0):
    """Non-negative, L2-normalised features with a shared mean direction (as ReLU features have) and
    a weak class signal; labels (n,) in 0..classes-1."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    x = np.abs(rng.normal(size=(n, d))) + 1.0 + 0.1 * rng.normal(size=(classes, d))[y]
    return svm.l2_normalise(np.abs(x)).astype(np.float32), y


def _liblinear(x, y, cost, pos_weight=2.0):
    from sklearn.svm import LinearSVC

    s = LinearSVC(C=cost, class_weight={1: pos_weight, -1: 1.0}, tol=1e-10, max_iter=1_000_000).fit(x, y)
    return np.r_[s.coef_[0], s.intercept_]


@pytest.mark.parametrize("cost", [1e-3, 1.0, 100.0])
def test_torch_solver_minimises_linearsvc_objective(cost):
    import torch

    x, y = _features()
    labels = np.where(np.eye(3)[y] > 0, 1.0, -1.0)
    labels[:12, 1] = 0  # ignored samples (VOC's difficult) are left out of that column's problem
    weight = np.where(labels > 0, 2.0, 1.0)
    xt = torch.from_numpy(x).double()
    for precond in (None, svm.LowRankPreconditioner(xt, 8)):
        w, z, stats = svm.fit_squared_hinge(xt, torch.from_numpy(labels), torch.from_numpy(cost * weight), tol=1e-8,
                                            precond=precond)  # fmt: skip
        assert stats["converged"]
        w = w.numpy()
        np.testing.assert_allclose(z.numpy(), x @ w[:-1] + w[-1], atol=1e-8)
        for k in range(3):
            keep = labels[:, k] != 0
            ref = _liblinear(x[keep], labels[keep, k], cost)
            assert np.abs(w[:, k] - ref).max() <= 1e-4 * max(1.0, np.abs(ref).max()), (cost, k)


def test_torch_svms_choose_the_costs_and_score_the_ap_of_linearsvc():
    xa, ya = _features(n=270, seed=1)
    x, y, xv, yv = xa[:180], ya[:180], xa[180:], ya[180:]
    train = np.where(np.eye(3)[y] > 0, 1, -1).astype(np.int8)
    test = np.where(np.eye(3)[yv] > 0, 1, -1).astype(np.int8)
    costs = [1e-3, 0.1, 10.0]
    ours = svm.torch_svms(x, train, xv, test, costs, 3, 2.0, seed=0, tol=1e-8, rank=8)
    for k in range(3):
        ref = svm.svm_class_ap(x, train[:, k], xv, test[:, k], costs, 3, 2.0, 1_000_000, seed=0)
        assert ours[k]["folds"] == ref["folds"] == 3
        assert set(ours[k]["cv_ap"]) == set(ref["cv_ap"]) == set(costs)
        for c in costs:  # the same folds, the same SVMs: the same cross-validated AP
            assert ours[k]["cv_ap"][c] == pytest.approx(ref["cv_ap"][c], abs=0.5)
        assert ours[k]["cost"] == ref["cost"]  # here 10, 10 and 0.1: a choice, not a tie
        assert ours[k]["ap"] == pytest.approx(ref["ap"], abs=0.5)
        np.testing.assert_allclose(ours[k]["decision"], ref["decision"], atol=1e-3)


def test_few_positives_cross_validate_with_fewer_folds_or_take_the_fallback_cost():
    x, _ = _features(n=12, seed=3)
    labels = -np.ones((12, 3), dtype=np.int8)
    labels[[0, 5], 0] = 1  # 2 positives: 2-fold CV
    labels[3, 1] = 1  # 1 positive: the fallback cost
    # class 2: no positive at all, nothing to learn
    assert [svm.class_folds(labels[:, k], 3) for k in range(3)] == [2, 1, 0]
    out = svm.torch_svms(x, labels, x, labels, [0.1, 1.0], 3, 2.0, fallback_cost=1.0)
    assert out[0]["folds"] == 2 and set(out[0]["cv_ap"]) == {0.1, 1.0}
    assert out[1]["folds"] == 1 and out[1]["cost"] == 1.0 and out[1]["cv_ap"] == {}
    assert out[2] is None
    assert svm.torch_svms(x, labels, x, labels, [0.1, 1.0], 3, 2.0, fallback_cost=None)[1] is None
    ref = svm.svm_class_ap(x, labels[:, 1], x, labels[:, 1], [0.1, 1.0], 3, 2.0, 100_000, fallback_cost=1.0)
    assert ref["cost"] == 1.0 and ref["ap"] == pytest.approx(out[1]["ap"], abs=0.5)


def test_even_subset_spreads_over_the_list():
    assert svm.even_subset(10, None).tolist() == list(range(10))
    assert svm.even_subset(10, 20).tolist() == list(range(10))
    assert svm.even_subset(10, 4).tolist() == [0, 3, 6, 9]
    with pytest.raises(ValueError, match="max_images"):
        svm.even_subset(10, 0)


def test_folder_splits_default_to_train_val_and_a_missing_one_names_the_override(tmp_path):
    write_folder(tmp_path / "d" / "training", {"a": 0, "b": 3}, 4, seed=1)
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("svm_probe", overrides=["data.kind=folder", f"data.root={tmp_path / 'd'}", "max_images=3"])
    assert svm.split_names(cfg) == ("train", "val") and svm.dataset_name(cfg) == "d"
    with pytest.raises(FileNotFoundError, match=r"data.train_split=NAME data.test_split=NAME \(its sub-folders: tra"):
        svm.dataset_items(cfg, "train")
    cfg.data.train_split = "training"
    paths, labels, classes = svm.dataset_items(cfg, svm.split_names(cfg)[0])
    assert classes == ["a", "b"] and len(paths) == 3 and labels.shape == (3, 2)  # an even subset of the 8
    assert [p.parent.name for p in paths] == ["a", "b", "b"]


def test_preconditioner_basis_is_orthonormal_in_float64_even_from_a_float32_sketch():
    import torch

    x, _ = _features(n=200, d=60)
    x32 = torch.from_numpy(x)
    pre = svm.LowRankPreconditioner(x32.double(), 16, sketch=x32)
    eye = torch.eye(16, dtype=torch.float64)
    assert pre.v.dtype == torch.float64 and (pre.v.T @ pre.v - eye).abs().max() < 1e-12  # fp32's 1e-7 stalls CG
    torch.testing.assert_close(pre.xv, svm.scores_of(x32.double(), pre.v))
