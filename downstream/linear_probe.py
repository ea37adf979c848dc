"""ImageNet linear probes per layer on a frozen encoder.

    python downstream/linear_probe.py ckpt=PATH layer=conv4            # one layer
    python downstream/linear_probe.py ckpt=PATH layer=all pool=avg     # conv1..conv5 + pool5, one pass
    python downstream/linear_probe.py init=gaussian schedule=short     # the random baseline
    make linear-probe LAYER=conv4 CKPT=PATH DATA=DIR

Config: conf/linear_probe.yaml (groups pool, schedule, trainer, logger). Top-1 and top-5 per layer
go to the results store (``results``), one record per (method, checkpoint, layer, pool, dataset),
and to wandb/CSV under the same keys.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

log = logging.getLogger("downstream.linear_probe")


def probe(cfg: DictConfig) -> dict:
    import lightning as L
    from hydra.utils import instantiate

    from downstream.encoder import FrozenEncoder, encoder_from_config
    from downstream.probe_module import LinearProbeModule
    from downstream.results import make_record, write_records
    from downstream.runner import fit_evaluation

    os.environ.setdefault("WANDB_MODE", "offline")
    net, info, layers = encoder_from_config(cfg)
    if cfg.run_name is None:
        which = "all" if cfg.layer == "all" else "-".join(layers)
        cfg.run_name = f"{info.method}-{info.digest}_{which}_{cfg.pool.name}_{cfg.schedule.name}"

    L.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule = instantiate(cfg.data)
    datamodule.setup("fit")
    s = cfg.schedule
    module = LinearProbeModule(
        FrozenEncoder(net, layers),
        num_classes=len(datamodule.classes),
        pool=cfg.pool.name,
        pool_spec=OmegaConf.to_container(cfg.pool, resolve=True),
        lr=s.lr, momentum=s.momentum, nesterov=s.nesterov, weight_decay=s.weight_decay,
        lr_step=s.lr_step, lr_gamma=s.lr_gamma,
    )  # fmt: skip
    trainer, complete = fit_evaluation(cfg, module, datamodule, info.method, "linear_probe")
    if not complete:
        return {"run_dir": cfg.run_dir, "complete": False, "global_step": trainer.global_step}
    options = {
        "pool": cfg.pool.name,
        "schedule": s.name,
        "steps": int(trainer.global_step),
        "crop": int(cfg.data.crop),
        "input": info.input,
    }
    records = [
        make_record(info, "linear_probe", layer, options, cfg.data.name, metric, value, cfg=cfg)
        | {"pretext": info.extra, "skipped_images": int(module.skipped)}
        for layer, metrics in module.final.items()
        for metric, value in metrics.items()
    ]
    if trainer.is_global_zero:
        write_records(cfg.results, records)
        for layer, m in module.final.items():
            log.info("%s %s (%s pool): top-1 %.2f  top-5 %.2f", info.method, layer, cfg.pool.name, m["top1"], m["top5"])
        log.info("%d records -> %s; %d unreadable images skipped", len(records), cfg.results, int(module.skipped))
    return {"run_dir": cfg.run_dir, "complete": True, "results": module.final, "records": records}


@hydra.main(config_path="../conf", config_name="linear_probe", version_base="1.3")
def main(cfg: DictConfig) -> None:
    result = probe(cfg)
    for layer, m in result.get("results", {}).items():
        print(f"{layer:6s} top-1 {m['top1']:6.2f}  top-5 {m['top5']:6.2f}")


if __name__ == "__main__":
    main()
