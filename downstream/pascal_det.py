"""PASCAL VOC 2007 detection: Faster R-CNN (torchvision) on the encoder.

    python downstream/pascal_det.py ckpt=PATH data.root=/data/VOCdevkit            # VOC07 trainval -> test
    python downstream/pascal_det.py ckpt=PATH 'data.train_sets=[[2007,trainval],[2012,trainval]]'   # 07+12
    python downstream/pascal_det.py init=gaussian det_schedule=short                # on voc_mini

Config: conf/pascal_det.yaml (groups det_schedule, trainer, logger, callbacks). VOC07 mAP at IoU 0.5
(11-point, and the area AP beside it) and per-class AP go to the results store.
"""

from __future__ import annotations

from omegaconf import DictConfig

from downstream.det_module import Detector
from downstream.detector import build_detector
from downstream.evaluation import run
from downstream.finetune import FinetuneEvaluation
from downstream.results import make_record
from downstream.voc import VOC_CLASSES
from pretext.cli import entry


class PascalDetection(FinetuneEvaluation):
    name = "pascal_det"
    schedule_key = "det_schedule"

    def build(self, cfg, loaded, datamodule):
        net, s = loaded[0], cfg.det_schedule
        model = build_detector(net, roi=cfg.roi, train_scales=tuple(cfg.train_scales), test_scale=cfg.test_scale,
                               max_size=cfg.max_size, rois_per_image=cfg.rois_per_image, dropout=s.dropout)  # fmt: skip
        return Detector(model, net, freeze=cfg.freeze, lr=s.lr, momentum=s.momentum, weight_decay=s.weight_decay,
                        lr_step=s.lr_step, lr_gamma=s.lr_gamma)  # fmt: skip

    def records(self, cfg, info, loaded, scores, step, datamodule):
        train_sets = "+".join(f"{y}{s_}" for y, s_ in cfg.data.train_sets)
        options = self.base_options(cfg, info, loaded, step) | {
            "roi": cfg.roi, "train_sets": train_sets, "train_scales": list(cfg.train_scales),
            "test_scale": int(cfg.test_scale), "iou": 0.5, "images": len(datamodule.val_items)}  # fmt: skip
        return [
            make_record(info, self.name, f"freeze:{cfg.freeze}", options, cfg.data.name, metric, scores[metric],
                        label=cfg.label, classes_scored=scores["classes_scored"], pretext=info.extra,
                        per_class_ap11=dict(zip(VOC_CLASSES, scores["ap11"], strict=True)),
                        boxes_clipped=datamodule.boxes_clipped, boxes_dropped=datamodule.boxes_dropped)  # fmt: skip
            for metric in ("mAP11", "mAP_area")
        ]

    def summary(self, info, f) -> str:
        return f"{info.method}: VOC07 mAP@0.5 {f['mAP11']:.2f} (11-point) / {f['mAP_area']:.2f} (area) over " \
               f"{f['classes_scored']} classes"  # fmt: skip


def detect(cfg: DictConfig):
    return run(PascalDetection(), cfg)


@entry("pascal_det")
def main(cfg: DictConfig) -> None:
    detect(cfg).print()


if __name__ == "__main__":
    main()
