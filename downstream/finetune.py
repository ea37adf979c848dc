"""Fine-tuning the encoder on a downstream task: the encoder grown to fc7 (its own fc6/fc7 when it
has them, new ones otherwise) with layers frozen up to a named point."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import torch
from torch import Tensor, nn

from downstream.evaluation import Evaluation, EvaluationModule
from pretext.nets import ALEXNET_LAYERS, AlexNetCC

log = logging.getLogger(__name__)
FREEZE_POINTS = ("none", "conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7")
FC_WIDTH = 4096  # new fc6/fc7 when the encoder has none (AlexNet's)


def grow_to_fc7(net: AlexNetCC, seed: int = 0) -> tuple[AlexNetCC, list[str]]:
    """``net`` up to fc7: its own layers, and new fc6/fc7 (N(0, 0.01^2) weights, biases 0.1, as
    Kraehenbuehl et al.'s fine-tuning initialises layers it adds) where it stops before them.
    Returns the net and the names of the new layers."""
    fc_width = net.fc_width if "fc6" in net.blocks._modules else FC_WIDTH
    torch.manual_seed(seed)
    grown = AlexNetCC(out_channels=1, in_channels=net.in_channels, fc_width=fc_width, last="fc7")
    own = {k: v for k, v in net.state_dict().items() if k.split(".")[1] in grown.blocks._modules}
    missing, unexpected = grown.load_state_dict(own, strict=False)
    assert not unexpected, unexpected
    new = sorted({k.split(".")[1] for k in missing if "running" not in k and "num_batches" not in k})
    for name in new:
        conv, bn = getattr(grown.blocks, name)[0], getattr(grown.blocks, name)[1]
        nn.init.normal_(conv.weight, 0.0, 0.01)
        nn.init.constant_(conv.bias, 0.1)
        bn.running_mean.zero_()
        bn.running_var.fill_(1.0 - bn.eps)
    if new:
        log.info("the encoder has no %s: new layers of width %d", "/".join(new), fc_width)
    return grown, new


def frozen_layers(freeze: str) -> tuple[str, ...]:
    if freeze not in FREEZE_POINTS:
        raise ValueError(f"freeze={freeze!r} is not a layer to freeze up to; valid: {', '.join(FREEZE_POINTS)}")
    if freeze == "none":
        return ()
    return ALEXNET_LAYERS[: ALEXNET_LAYERS.index(freeze) + 1]


def freeze_up_to(net: AlexNetCC, freeze: str) -> tuple[str, ...]:
    """No gradients for the layers up to ``freeze`` (inclusive). BatchNorm statistics are never
    updated in fine-tuning (see :func:`bn_eval`)."""
    names = frozen_layers(freeze)
    for name in names:
        if name in net.blocks._modules:
            getattr(net.blocks, name).requires_grad_(False)
    return names


def bn_eval(net: nn.Module) -> None:
    """Every BatchNorm in eval mode: fine-tuning keeps the statistics the encoder came with (an
    exported, rescaled encoder has them folded to the identity)."""
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.eval()


class FrozenBatchNorm:
    """Mixin for fine-tuning modules: every BatchNorm stays in eval mode, whatever ``train()`` is
    called with and whatever modes Lightning restores around validation (it sets them module by
    module, not through ``train()``), so it is also enforced before every training step."""

    def train(self, mode: bool = True):
        super().train(mode)
        bn_eval(self)
        return self

    def on_train_batch_start(self, batch, batch_idx: int) -> None:
        bn_eval(self)


class FinetuneModule(FrozenBatchNorm, EvaluationModule):
    """What the PASCAL tasks share: layers of ``net`` frozen up to ``freeze``, SGD with
    ``lr``, ``momentum``, ``weight_decay`` (lr x ``lr_gamma`` every ``lr_step`` steps when given)."""

    def __init__(self, net: AlexNetCC, freeze: str, lr: float, momentum: float, weight_decay: float,
                 lr_step: int | None = None, lr_gamma: float = 0.1):  # fmt: skip
        super().__init__()
        self.freeze, self.frozen = freeze, freeze_up_to(net, freeze)
        self.opt = {"lr": lr, "momentum": momentum, "weight_decay": weight_decay}
        self.lr_step, self.lr_gamma = lr_step, lr_gamma

    def sgd(self, groups: list[dict]) -> dict:
        opt = torch.optim.SGD(groups, **self.opt)
        if not self.lr_step:
            return {"optimizer": opt}
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=self.lr_step, gamma=self.lr_gamma)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def run_blocks(net: AlexNetCC, x: Tensor, dropout: float, training: bool) -> Iterator[tuple[str, Tensor]]:
    """(name, output) of each block in turn, with AlexNet's dropout after fc6 and fc7 in training."""
    for name, block in net.blocks.named_children():
        x = block(x)
        if name in ("fc6", "fc7") and dropout > 0:
            x = nn.functional.dropout(x, dropout, training)
        yield name, x


class FinetuneEvaluation(Evaluation):
    """What the PASCAL evaluations share: the freeze point checked before anything loads, the
    encoder grown to fc7 (``loaded`` is ``(net, info, new_layers)``), run names by freeze point and
    schedule (``schedule_key``: the config group of the schedule)."""

    schedule_key = ""

    def load(self, cfg):
        frozen_layers(cfg.freeze)  # a bad freeze point fails before anything loads
        net, info = super().load(cfg)
        net, new_layers = grow_to_fc7(net, seed=cfg.seed)
        return net, info, new_layers

    def run_name(self, cfg, info, loaded) -> str:
        return f"freeze-{cfg.freeze}_{cfg[self.schedule_key].name}"

    def base_options(self, cfg, info, loaded, step: int) -> dict:
        return {"freeze": cfg.freeze, "schedule": cfg[self.schedule_key].name, "steps": int(step),
                "input": info.input, "new_layers": "/".join(loaded[2]) or "none"}  # fmt: skip
