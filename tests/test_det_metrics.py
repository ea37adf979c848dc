"""VOC07 detection AP against hand-computed values."""

import math

import numpy as np
import pytest

from downstream.det_metrics import class_pr, detection_aps, iou_voc

B = np.array


def test_iou_uses_the_devkits_inclusive_pixels():
    assert iou_voc(B([0, 0, 9, 9]), B([[0, 0, 9, 9]]))[0] == 1.0
    assert iou_voc(B([0, 0, 9, 9]), B([[5, 0, 14, 9]]))[0] == pytest.approx(50 / 150)


def test_duplicates_are_false_positives_and_difficult_matches_are_ignored():
    truths = {
        "a": (B([[0, 0, 9, 9], [20, 20, 29, 29]]), B([False, True])),  # the second box is difficult
        "b": (B([[0, 0, 9, 9]]), B([False])),
    }
    dets = [
        ("a", 0.9, B([0, 0, 9, 9])),  # hit
        ("a", 0.8, B([0, 0, 9, 9])),  # duplicate of the same object: false positive
        ("a", 0.7, B([20, 20, 29, 29])),  # matches the difficult box: ignored
        ("b", 0.6, B([50, 50, 59, 59])),  # nothing there: false positive
        ("b", 0.5, B([0, 0, 9, 9])),  # hit
    ]
    p, r = class_pr(dets, truths)
    # ranked outcomes: TP, FP, (skip), FP, TP with 2 positives
    assert r.tolist() == [0.5, 0.5, 0.5, 1.0]
    assert p.tolist() == pytest.approx([1.0, 0.5, 1 / 3, 0.5])
    out = detection_aps({1: dets}, {1: truths}, num_classes=2)
    # 11-point: r <= 0.5 -> best precision 1; r in 0.6..1 -> 0.5  => (6 * 1 + 5 * 0.5) / 11
    assert out["ap11"][0] == pytest.approx((6 + 2.5) / 11 * 100)
    assert out["ap_area"][0] == pytest.approx((0.5 * 1 + 0.5 * 0.5) * 100)


def test_a_class_with_positives_but_no_detection_scores_zero():
    out = detection_aps({}, {1: {"a": (B([[0, 0, 5, 5]]), B([False]))}}, 2)
    assert out["ap11"][0] == 0 and out["ap_area"][0] == 0


def test_a_class_without_positives_is_undefined():
    out = detection_aps({1: [("a", 0.9, B([0, 0, 5, 5]))]}, {1: {"a": (B([[0, 0, 5, 5]]), B([True]))}}, 2)
    assert math.isnan(out["ap11"][0])
