"""VOC average precision against hand-worked cases."""

import math

import numpy as np
import pytest

from downstream.ap import area_ap, class_aps, precision_recall, voc07_ap


def aps(scores, labels):
    p, r = precision_recall(np.array(scores), np.array(labels))
    return voc07_ap(p, r), area_ap(p, r)


def test_perfect_and_simple_rankings():
    assert aps([0.9, 0.8, 0.1], [1, 1, -1]) == (1.0, 1.0)
    # ranking: +, -, +  -> precision 1 at recall 0.5, 2/3 at recall 1
    ap11, area = aps([0.9, 0.8, 0.7], [1, -1, 1])
    assert area == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    assert ap11 == pytest.approx((6 * 1 + 5 * 2 / 3) / 11)  # r = 0..0.5 -> 1; r = 0.6..1 -> 2/3


def test_tied_scores_enter_together():
    # one positive and one negative tied at the top: a single point (precision 1/2, recall 1/2)
    ap11, area = aps([0.5, 0.5, 0.2], [1, -1, 1])
    # points: (p=1/2, r=1/2), (p=2/3, r=1); envelope: 2/3 everywhere
    assert area == pytest.approx(2 / 3)
    assert ap11 == pytest.approx(2 / 3)
    swapped = aps([0.5, 0.5, 0.2], [-1, 1, 1])  # the order of tied items does not matter
    assert swapped == (ap11, area)


def test_all_negative_class_is_undefined_and_difficult_only_positives_too():
    assert all(math.isnan(x) for x in aps([0.3, 0.2], [-1, -1]))
    assert all(math.isnan(x) for x in aps([0.9, 0.2], [0, -1]))  # the only positive is difficult


def test_difficult_images_are_neither_hits_nor_misses():
    # a difficult image ranked first is ignored: as if absent
    assert aps([0.99, 0.9, 0.8, 0.1], [0, 1, 1, -1]) == (1.0, 1.0)
    assert aps([0.9, 0.85, 0.8], [1, 0, -1]) == aps([0.9, 0.8], [1, -1])


def test_class_aps_per_column():
    scores = np.array([[0.9, 0.1], [0.2, 0.8], [0.1, 0.3]])
    labels = np.array([[1, -1], [-1, -1], [-1, 0]])
    out = class_aps(scores, labels)
    assert out["ap11"][0] == 100 and math.isnan(out["ap11"][1]) and out["ap_area"][0] == 100
