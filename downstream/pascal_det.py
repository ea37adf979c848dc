"""PASCAL VOC 2007 detection: Faster R-CNN (torchvision) on the encoder.

    python downstream/pascal_det.py ckpt=PATH data.root=/data/VOCdevkit            # VOC07 trainval -> test
    python downstream/pascal_det.py ckpt=PATH 'data.train_sets=[[2007,trainval],[2012,trainval]]'   # 07+12
    python downstream/pascal_det.py init=gaussian det_schedule=short                # on voc_mini

Config: conf/pascal_det.yaml (groups det_schedule, trainer, logger). VOC07 mAP at IoU 0.5 (11-point,
and the area AP beside it) and per-class AP go to the results store.
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

log = logging.getLogger("downstream.pascal_det")


def detect(cfg: DictConfig) -> dict:
    import lightning as L
    from hydra.utils import instantiate

    from downstream.det_module import Detector
    from downstream.detector import build_detector
    from downstream.encoder import load_encoder
    from downstream.finetune import frozen_layers, grow_to_fc7
    from downstream.results import make_record, write_records
    from downstream.runner import fit_evaluation
    from downstream.voc import VOC_CLASSES

    os.environ.setdefault("WANDB_MODE", "offline")
    frozen_layers(cfg.freeze)
    net, info = load_encoder(cfg.ckpt, cfg.init, cfg.init_channels, cfg.seed, cfg.get("init_data"))
    net, new_layers = grow_to_fc7(net, seed=cfg.seed)
    s = cfg.det_schedule
    model = build_detector(net, roi=cfg.roi, train_scales=tuple(cfg.train_scales), test_scale=cfg.test_scale,
                           max_size=cfg.max_size, rois_per_image=cfg.rois_per_image, dropout=s.dropout)  # fmt: skip
    if cfg.run_name is None:
        cfg.run_name = f"{info.method}-{info.digest}_freeze-{cfg.freeze}_{s.name}"
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule = instantiate(cfg.data)
    module = Detector(model, net, freeze=cfg.freeze, lr=s.lr, momentum=s.momentum, weight_decay=s.weight_decay,
                      lr_step=s.lr_step, lr_gamma=s.lr_gamma)  # fmt: skip
    trainer, complete = fit_evaluation(cfg, module, datamodule, info.method, "pascal_det")
    if not complete:
        return {"run_dir": cfg.run_dir, "complete": False, "global_step": trainer.global_step}
    f = module.final
    train_sets = "+".join(f"{y}{s_}" for y, s_ in cfg.data.train_sets)
    options = {"freeze": cfg.freeze, "roi": cfg.roi, "schedule": s.name, "steps": int(trainer.global_step),
               "train_sets": train_sets, "train_scales": list(cfg.train_scales), "test_scale": int(cfg.test_scale),
               "iou": 0.5, "input": info.input, "new_layers": "/".join(new_layers) or "none"}  # fmt: skip
    records = [
        make_record(info, "pascal_det", f"freeze:{cfg.freeze}", options, cfg.data.name, metric, f[metric], cfg=cfg)
        | {
            "classes_scored": f["classes_scored"],
            "per_class_ap11": dict(zip(VOC_CLASSES, f["ap11"], strict=True)),
            "boxes_clipped": datamodule.boxes_clipped,
            "boxes_dropped": datamodule.boxes_dropped,
            "pretext": info.extra,
        }  # fmt: skip
        for metric in ("mAP11", "mAP_area")
    ]
    if trainer.is_global_zero:
        write_records(cfg.results, records)
        log.info("%s: VOC07 mAP@0.5 %.2f (11-point) / %.2f (area) over %d classes", info.method, f["mAP11"],
                 f["mAP_area"], f["classes_scored"])  # fmt: skip
    return {"run_dir": cfg.run_dir, "complete": True, "results": f, "records": records}


@hydra.main(config_path="../conf", config_name="pascal_det", version_base="1.3")
def main(cfg: DictConfig) -> None:
    f = detect(cfg).get("results")
    if f:
        print(f"VOC07 mAP@0.5 {f['mAP11']:.2f} (11-point), {f['mAP_area']:.2f} (area), {f['classes_scored']} classes")


if __name__ == "__main__":
    main()
