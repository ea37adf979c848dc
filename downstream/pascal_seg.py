"""PASCAL VOC 2012 segmentation: an FCN on the encoder, mean IoU at each image's own size.

    python downstream/pascal_seg.py ckpt=PATH data.root=/data/VOCdevkit              # FCN-32s, all layers
    python downstream/pascal_seg.py ckpt=PATH variant=fcn8s data.extra_root=/data/SBD_png
    python downstream/pascal_seg.py init=gaussian seg_schedule=short                 # on voc_mini

Config: conf/pascal_seg.yaml (groups seg_schedule, trainer, logger). mIoU, pixel accuracy and
per-class IoU go to the results store; ``predictions.png`` shows a few validation images.
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

log = logging.getLogger("downstream.pascal_seg")


def draw_predictions(module, datamodule, path: Path, n: int) -> Path | None:
    """Rows of image | truth | prediction in the VOC palette (ignored pixels white)."""
    import torch
    from torchvision.utils import save_image

    from downstream.voc import VOC_PALETTE

    if n <= 0 or not datamodule.val_items:
        return None
    palette = torch.tensor([*VOC_PALETTE, *([(255, 255, 255)] * (256 - len(VOC_PALETTE)))], dtype=torch.uint8)
    data = datamodule._dataset(datamodule.val_items[:n], False)
    tiles = []
    module.eval()
    with torch.no_grad():
        for i in range(len(data)):
            img, mask = data[i]
            pred = module(img[None].to(module.device)).argmax(1)[0].cpu()
            tiles += [img, palette[mask.long()].permute(2, 0, 1), palette[pred].permute(2, 0, 1)]
    size = max(max(t.shape[-2:]) for t in tiles)
    tiles = [torch.nn.functional.pad(t, (0, size - t.shape[-1], 0, size - t.shape[-2]), value=255) for t in tiles]
    path.parent.mkdir(parents=True, exist_ok=True)
    save_image(torch.stack(tiles).float() / 255, path, nrow=3, padding=2, pad_value=1.0)
    return path


def segment(cfg: DictConfig) -> dict:
    import lightning as L
    from hydra.utils import instantiate

    from downstream.encoder import load_encoder
    from downstream.fcn import FCN
    from downstream.finetune import frozen_layers, grow_to_fc7
    from downstream.results import make_record, write_records
    from downstream.runner import fit_evaluation
    from downstream.seg_module import Segmenter
    from downstream.voc import VOC_CLASSES

    os.environ.setdefault("WANDB_MODE", "offline")
    frozen_layers(cfg.freeze)
    net, info = load_encoder(cfg.ckpt, cfg.init, cfg.init_channels, cfg.seed, cfg.get("init_data"))
    net, new_layers = grow_to_fc7(net, seed=cfg.seed)
    fcn = FCN(net, num_classes=21, variant=cfg.variant, dropout=cfg.seg_schedule.dropout)
    if cfg.run_name is None:
        cfg.run_name = f"{info.method}-{info.digest}_{cfg.variant}_freeze-{cfg.freeze}_{cfg.seg_schedule.name}"
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule = instantiate(cfg.data)
    s = cfg.seg_schedule
    module = Segmenter(fcn, freeze=cfg.freeze, lr=s.lr, momentum=s.momentum, weight_decay=s.weight_decay,
                       head_lr_mult=s.head_lr_mult)  # fmt: skip
    trainer, complete = fit_evaluation(cfg, module, datamodule, info.method, "pascal_seg")
    if not complete:
        return {"run_dir": cfg.run_dir, "complete": False, "global_step": trainer.global_step}
    f = module.final
    classes = ("background", *VOC_CLASSES)
    options = {"variant": cfg.variant, "freeze": cfg.freeze, "schedule": s.name, "steps": int(trainer.global_step),
               "input": info.input, "extra_annotations": bool(cfg.data.extra_root),
               "new_layers": "/".join(new_layers) or "none"}  # fmt: skip
    per_class = dict(zip(classes, f["iou"], strict=True))
    records = [
        make_record(info, "pascal_seg", cfg.variant, options, cfg.data.name, metric, f[metric], cfg=cfg)
        | {"per_class_iou": per_class, "pixels": f["pixels"], "pretext": info.extra}
        for metric in ("mIoU", "pixel_acc")
    ]
    result = {"run_dir": cfg.run_dir, "complete": True, "results": f, "records": records}
    if trainer.is_global_zero:
        write_records(cfg.results, records)
        picture = draw_predictions(module, datamodule, Path(cfg.run_dir) / "predictions.png", cfg.pictures)
        result["pictures"] = str(picture) if picture else None
        log.info("%s %s: mIoU %.2f, pixel accuracy %.2f; pictures %s", info.method, cfg.variant, f["mIoU"],
                 f["pixel_acc"], picture)  # fmt: skip
    return result


@hydra.main(config_path="../conf", config_name="pascal_seg", version_base="1.3")
def main(cfg: DictConfig) -> None:
    r = segment(cfg)
    if r.get("results"):
        print(f"mIoU {r['results']['mIoU']:.2f}, pixel accuracy {r['results']['pixel_acc']:.2f}")
        print(f"pictures: {r.get('pictures')}")


if __name__ == "__main__":
    main()
