"""PASCAL VOC 2007 classification: fine-tune the encoder with layers frozen up to a point.

    python downstream/pascal_cls.py ckpt=PATH data.root=/data/VOCdevkit freeze=none    # "all"
    python downstream/pascal_cls.py ckpt=PATH data.root=/data/VOCdevkit freeze=conv5   # "fc6-8"
    python downstream/pascal_cls.py init=gaussian cls_schedule=short                   # on voc_mini

Config: conf/pascal_cls.yaml (groups cls_schedule, trainer, logger, callbacks). The mAP over the
classes with a positive in the test split, 11-point (VOC2007) and area (VOC2010+), goes to the
results store.
"""

from __future__ import annotations

from omegaconf import DictConfig

from downstream.cls_module import VocClassifier
from downstream.evaluation import run
from downstream.finetune import FinetuneEvaluation
from downstream.results import make_record
from downstream.voc import VOC_CLASSES
from pretext.cli import entry


class PascalClassification(FinetuneEvaluation):
    name = "pascal_cls"
    schedule_key = "cls_schedule"

    def build(self, cfg, loaded, datamodule):
        s = cfg.cls_schedule
        return VocClassifier(
            loaded[0], num_classes=len(VOC_CLASSES), freeze=cfg.freeze, lr=s.lr, momentum=s.momentum,
            weight_decay=s.weight_decay, head_lr_mult=s.head_lr_mult, lr_step=s.lr_step, lr_gamma=s.lr_gamma,
            dropout=s.dropout,
        )  # fmt: skip

    def records(self, cfg, info, loaded, scores, step, datamodule):
        options = self.base_options(cfg, info, loaded, step) | {"test": "10-crop", "images": len(datamodule.val_items)}
        return [
            make_record(info, self.name, f"freeze:{cfg.freeze}", options, cfg.data.name, metric, scores[metric],
                        label=cfg.label, classes_scored=scores["classes_scored"], pretext=info.extra,
                        per_class=dict(zip(VOC_CLASSES, scores[key], strict=True)))  # fmt: skip
            for metric, key in (("mAP11", "ap11"), ("mAP_area", "ap_area"))
        ]

    def summary(self, info, f) -> str:
        return f"{info.method}: mAP {f['mAP11']:.2f} (11-point) / {f['mAP_area']:.2f} (area) over " \
               f"{f['classes_scored']} classes"  # fmt: skip


def classify(cfg: DictConfig):
    return run(PascalClassification(), cfg)


@entry("pascal_cls")
def main(cfg: DictConfig) -> None:
    classify(cfg).print()


if __name__ == "__main__":
    main()
