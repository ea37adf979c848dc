"""Average precision as the PASCAL VOC devkits compute it. Pure numpy.

Labels follow the devkit's class files: 1 positive, -1 negative, 0 "difficult" (left out: neither
a hit nor a miss). Tied scores enter the ranking together (one threshold per distinct score), so
the result does not depend on the order of tied items.
"""

from __future__ import annotations

import numpy as np


def precision_recall(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(precision, recall) at each distinct score, from the highest down. Empty when there is no
    positive (AP is then undefined)."""
    scores, labels = np.asarray(scores, dtype=np.float64), np.asarray(labels)
    keep = labels != 0
    scores, pos = scores[keep], labels[keep] == 1
    n_pos = int(pos.sum())
    if n_pos == 0:
        return np.zeros(0), np.zeros(0)
    order = np.argsort(-scores, kind="stable")
    scores, pos = scores[order], pos[order]
    tp, fp = np.cumsum(pos), np.cumsum(~pos)
    last_of_tie = np.r_[scores[1:] != scores[:-1], True]  # the end of each group of equal scores
    tp, fp = tp[last_of_tie], fp[last_of_tie]
    return tp / (tp + fp), tp / n_pos


def voc07_ap(precision: np.ndarray, recall: np.ndarray) -> float:
    """VOC2007's 11-point AP: the mean over r in {0, 0.1, ..., 1} of the best precision at recall >= r."""
    if len(recall) == 0:
        return float("nan")
    return float(np.mean([precision[recall >= t].max() if np.any(recall >= t) else 0.0 for t in np.linspace(0, 1, 11)]))


def area_ap(precision: np.ndarray, recall: np.ndarray) -> float:
    """VOC2010+'s AP: the area under the precision envelope (precision made non-increasing in recall)."""
    if len(recall) == 0:
        return float("nan")
    r = np.r_[0.0, recall, 1.0]
    p = np.r_[0.0, precision, 0.0]
    p = np.maximum.accumulate(p[::-1])[::-1]
    steps = np.flatnonzero(r[1:] != r[:-1]) + 1
    return float(np.sum((r[steps] - r[steps - 1]) * p[steps]))


def class_aps(scores: np.ndarray, labels: np.ndarray) -> dict[str, np.ndarray]:
    """Per-class 11-point and area AP (in %) for (N, C) scores and labels; NaN where a class has no
    positive."""
    pr = [precision_recall(scores[:, c], labels[:, c]) for c in range(labels.shape[1])]
    return {
        "ap11": np.array([voc07_ap(p, r) for p, r in pr]) * 100,
        "ap_area": np.array([area_ap(p, r) for p, r in pr]) * 100,
    }
