"""PASCAL VOC 2012 segmentation: an FCN on the encoder, mean IoU at each image's own size.

    python downstream/pascal_seg.py ckpt=PATH data.root=/data/VOCdevkit              # FCN-32s, all layers
    python downstream/pascal_seg.py ckpt=PATH variant=fcn8s data.extra_root=/data/SBD_png
    python downstream/pascal_seg.py init=gaussian seg_schedule=short                 # on voc_mini

Config: conf/pascal_seg.yaml (groups seg_schedule, trainer, logger, callbacks). mIoU, pixel accuracy and
per-class IoU go to the results store; ``predictions.png`` shows a few validation images.
"""

from __future__ import annotations

from pathlib import Path

import torch
from omegaconf import DictConfig
from torchvision.utils import save_image

from downstream.evaluation import run
from downstream.fcn import FCN
from downstream.finetune import FinetuneEvaluation
from downstream.results import make_record
from downstream.seg_module import Segmenter
from downstream.voc import VOC_CLASSES, VOC_PALETTE
from pretext.cli import entry


def draw_predictions(module, datamodule, path: Path, n: int) -> Path | None:
    """Rows of image | truth | prediction in the VOC palette (ignored pixels white)."""
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


class PascalSegmentation(FinetuneEvaluation):
    name = "pascal_seg"
    schedule_key = "seg_schedule"

    def run_name(self, cfg, info, loaded) -> str:
        return f"{cfg.variant}_{super().run_name(cfg, info, loaded)}"

    def build(self, cfg, loaded, datamodule):
        s = cfg.seg_schedule
        fcn = FCN(loaded[0], num_classes=21, variant=cfg.variant, dropout=s.dropout)
        return Segmenter(fcn, freeze=cfg.freeze, lr=s.lr, momentum=s.momentum, weight_decay=s.weight_decay,
                         head_lr_mult=s.head_lr_mult)  # fmt: skip

    def records(self, cfg, info, loaded, scores, step, datamodule):
        options = self.base_options(cfg, info, loaded, step) | {
            "variant": cfg.variant, "extra_annotations": bool(cfg.data.extra_root),
            "images": len(datamodule.val_items)}  # fmt: skip
        per_class = dict(zip(("background", *VOC_CLASSES), scores["iou"], strict=True))
        return [
            make_record(info, self.name, cfg.variant, options, cfg.data.name, metric, scores[metric], label=cfg.label,
                        per_class_iou=per_class, pixels=scores["pixels"], pretext=info.extra)  # fmt: skip
            for metric in ("mIoU", "pixel_acc")
        ]

    def finish(self, cfg, module, datamodule) -> dict:
        picture = draw_predictions(module, datamodule, Path(cfg.run_dir) / "predictions.png", cfg.pictures)
        return {"pictures": picture} if picture else {}

    def summary(self, info, f) -> str:
        return f"{info.method}: mIoU {f['mIoU']:.2f}, pixel accuracy {f['pixel_acc']:.2f}"


def segment(cfg: DictConfig):
    return run(PascalSegmentation(), cfg)


@entry("pascal_seg")
def main(cfg: DictConfig) -> None:
    segment(cfg).print()


if __name__ == "__main__":
    main()
