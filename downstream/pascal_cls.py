"""PASCAL VOC 2007 classification: fine-tune the encoder with layers frozen up to a point.

    python downstream/pascal_cls.py ckpt=PATH data.root=/data/VOCdevkit freeze=none    # "all"
    python downstream/pascal_cls.py ckpt=PATH data.root=/data/VOCdevkit freeze=conv5   # "fc6-8"
    python downstream/pascal_cls.py init=gaussian cls_schedule=short                   # on voc_mini

Config: conf/pascal_cls.yaml (groups cls_schedule, trainer, logger). The mAP over the classes with
a positive in the test split, 11-point (VOC2007) and area (VOC2010+), goes to the results store.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

log = logging.getLogger("downstream.pascal_cls")


def classify(cfg: DictConfig) -> dict:
    import lightning as L
    from hydra.utils import instantiate

    from downstream.cls_module import VocClassifier
    from downstream.encoder import load_encoder
    from downstream.finetune import frozen_layers, grow_to_fc7
    from downstream.results import make_record, write_records
    from downstream.runner import fit_evaluation
    from downstream.voc import VOC_CLASSES

    os.environ.setdefault("WANDB_MODE", "offline")
    frozen_layers(cfg.freeze)  # a bad freeze point fails before anything loads
    net, info = load_encoder(cfg.ckpt, cfg.init, cfg.init_channels, cfg.seed, cfg.get("init_data"))
    net, new_layers = grow_to_fc7(net, seed=cfg.seed)
    if cfg.run_name is None:
        cfg.run_name = f"{info.method}-{info.digest}_freeze-{cfg.freeze}_{cfg.cls_schedule.name}"
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule = instantiate(cfg.data)
    s = cfg.cls_schedule
    module = VocClassifier(
        net, num_classes=len(VOC_CLASSES), freeze=cfg.freeze, lr=s.lr, momentum=s.momentum,
        weight_decay=s.weight_decay, head_lr_mult=s.head_lr_mult, lr_step=s.lr_step, lr_gamma=s.lr_gamma,
        dropout=s.dropout,
    )  # fmt: skip
    trainer, complete = fit_evaluation(cfg, module, datamodule, info.method, "pascal_cls")
    if not complete:
        return {"run_dir": cfg.run_dir, "complete": False, "global_step": trainer.global_step}
    f = module.final
    options = {"freeze": cfg.freeze, "schedule": s.name, "steps": int(trainer.global_step), "test": "10-crop",
               "input": info.input, "new_layers": "/".join(new_layers) or "none"}  # fmt: skip
    per_class = {"ap11": dict(zip(VOC_CLASSES, f["ap11"], strict=True)),
                 "ap_area": dict(zip(VOC_CLASSES, f["ap_area"], strict=True))}  # fmt: skip
    records = [
        make_record(info, "pascal_cls", f"freeze:{cfg.freeze}", options, cfg.data.name, metric, f[metric], cfg=cfg)
        | {
            "classes_scored": f["classes_scored"],
            "per_class": per_class[key],
            "pretext": info.extra,
            "skipped_images": int(module.skipped),
        }  # fmt: skip
        for metric, key in (("mAP11", "ap11"), ("mAP_area", "ap_area"))
    ]
    if trainer.is_global_zero:
        write_records(cfg.results, records)
        log.info("%s freeze=%s: mAP %.2f (11-point) / %.2f (area) over %d classes", info.method, cfg.freeze,
                 f["mAP11"], f["mAP_area"], f["classes_scored"])  # fmt: skip
    return {"run_dir": cfg.run_dir, "complete": True, "results": f, "records": records}


@hydra.main(config_path="../conf", config_name="pascal_cls", version_base="1.3")
def main(cfg: DictConfig) -> None:
    f = classify(cfg).get("results")
    if f:
        print(f"mAP {f['mAP11']:.2f} (VOC07 11-point), {f['mAP_area']:.2f} (area), {f['classes_scored']} classes")


if __name__ == "__main__":
    main()
