"""ImageNet linear probes per layer on a frozen encoder.

    python downstream/linear_probe.py ckpt=PATH layer=conv4            # one layer
    python downstream/linear_probe.py ckpt=PATH layer=all pool=avg     # conv1..conv5 + pool5, one pass
    python downstream/linear_probe.py init=gaussian schedule=short     # the random baseline
    make linear-probe LAYER=conv4 CKPT=PATH DATA=DIR

Config: conf/linear_probe.yaml (groups pool, schedule, trainer, logger, callbacks). Top-1 and top-5
per layer go to the results store (``results``), one record per (method, checkpoint, layer, pool,
dataset), and to wandb/CSV under the same keys.
"""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from downstream.encoder import FrozenEncoder, encoder_from_config
from downstream.evaluation import Evaluation, run
from downstream.probe_module import LinearProbeModule
from downstream.results import make_record
from pretext.cli import entry


class LinearProbe(Evaluation):
    name = "linear_probe"

    def load(self, cfg):
        return encoder_from_config(cfg)  # (net, info, layers)

    def run_name(self, cfg, info, loaded) -> str:
        which = "all" if cfg.layer == "all" else "-".join(loaded[2])
        return f"{which}_{cfg.pool.name}_{cfg.schedule.name}"

    def build(self, cfg, loaded, datamodule):
        net, _, layers = loaded
        datamodule.setup("fit")
        s = cfg.schedule
        return LinearProbeModule(
            FrozenEncoder(net, layers),
            num_classes=len(datamodule.classes),
            pool=cfg.pool.name,
            pool_spec=OmegaConf.to_container(cfg.pool, resolve=True),
            lr=s.lr, momentum=s.momentum, nesterov=s.nesterov, weight_decay=s.weight_decay,
            lr_step=s.lr_step, lr_gamma=s.lr_gamma,
        )  # fmt: skip

    def records(self, cfg, info, loaded, scores, step, datamodule):
        options = {"pool": cfg.pool.name, "schedule": cfg.schedule.name, "steps": int(step),
                   "crop": int(cfg.data.crop), "input": info.input}  # fmt: skip
        return [
            make_record(info, self.name, layer, options, cfg.data.name, metric, value, label=cfg.label,
                        pretext=info.extra)  # fmt: skip
            for layer, metrics in scores.items()
            for metric, value in metrics.items()
        ]

    def summary(self, info, scores) -> str:
        return "\n".join(f"{info.method} {k:6s} top-1 {m['top1']:6.2f}  top-5 {m['top5']:6.2f}"
                         for k, m in scores.items())  # fmt: skip


def probe(cfg: DictConfig):
    return run(LinearProbe(), cfg)


@entry("linear_probe")
def main(cfg: DictConfig) -> None:
    probe(cfg).print()


if __name__ == "__main__":
    main()
