"""PASCAL VOC detection AP (the VOC2007 devkit's rules). Pure numpy.

For each class, detections are ranked by score; each is a hit when its best-overlapping ground
truth box of that class in the same image has IoU >= 0.5 and was not claimed before (a second
detection of the same object is a false positive), a miss otherwise. A detection whose best match
is a "difficult" box counts neither way, and difficult boxes are not among the positives. IoU uses
the devkit's inclusive pixel convention (width = x2 - x1 + 1).
"""

from __future__ import annotations

import numpy as np

from downstream.ap import area_ap, voc07_ap


def iou_voc(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one (4,) box with (M, 4) boxes, inclusive pixel coordinates as the devkit."""
    ix0, iy0 = np.maximum(boxes[:, 0], box[0]), np.maximum(boxes[:, 1], box[1])
    ix1, iy1 = np.minimum(boxes[:, 2], box[2]), np.minimum(boxes[:, 3], box[3])
    iw, ih = np.maximum(ix1 - ix0 + 1.0, 0.0), np.maximum(iy1 - iy0 + 1.0, 0.0)
    inter = iw * ih
    area = (box[2] - box[0] + 1.0) * (box[3] - box[1] + 1.0)
    areas = (boxes[:, 2] - boxes[:, 0] + 1.0) * (boxes[:, 3] - boxes[:, 1] + 1.0)
    return inter / (area + areas - inter)


def class_pr(detections: list[tuple[str, float, np.ndarray]], truths: dict[str, tuple[np.ndarray, np.ndarray]],
             iou_threshold: float = 0.5) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Precision and recall down the ranked ``detections`` (image id, score, box) of one class;
    ``truths``: image id -> (boxes (M, 4), difficult (M,) bool) of that class."""
    npos = int(sum((~d).sum() for _, d in truths.values()))
    if npos == 0:
        return np.zeros(0), np.zeros(0)
    claimed = {k: np.zeros(len(b), dtype=bool) for k, (b, _) in truths.items()}
    order = sorted(range(len(detections)), key=lambda i: -detections[i][1])  # stable: ties keep their order
    tp, fp = [], []
    for i in order:
        image, _, box = detections[i]
        boxes, difficult = truths.get(image, (np.zeros((0, 4)), np.zeros(0, dtype=bool)))
        if len(boxes):
            ious = iou_voc(np.asarray(box, dtype=np.float64), boxes)
            j = int(ious.argmax())
            best = ious[j]
        else:
            best = 0.0
        if best >= iou_threshold:
            if difficult[j]:
                continue  # neither a hit nor a miss
            if not claimed[image][j]:
                claimed[image][j] = True
                tp.append(1)
                fp.append(0)
            else:
                tp.append(0)
                fp.append(1)  # a duplicate
        else:
            tp.append(0)
            fp.append(1)
    if not tp:  # positives but no (counted) detection: AP 0, not undefined
        return np.zeros(1), np.zeros(1)
    tp, fp = np.cumsum(tp), np.cumsum(fp)
    return tp / np.maximum(tp + fp, np.finfo(np.float64).eps), tp / npos


def detection_aps(detections: dict[int, list], truths: dict[int, dict], num_classes: int) -> dict[str, np.ndarray]:
    """Per-class AP in % (11-point and area) for classes 1..num_classes-1 (0 is background);
    ``detections[c]``: [(image, score, box)], ``truths[c]``: {image: (boxes, difficult)}."""
    ap11, ap_area = [], []
    for c in range(1, num_classes):
        p, r = class_pr(detections.get(c, []), truths.get(c, {}))
        ap11.append(voc07_ap(p, r) * 100)
        ap_area.append(area_ap(p, r) * 100)
    return {"ap11": np.array(ap11), "ap_area": np.array(ap_area)}
