"""The encoder every evaluation starts from, frozen up to a named layer, and the layer names an
evaluation may ask for. (Loading an encoder from any suite file or an init: ``pretext/encoders.py``.)

The input the encoder sees (L - 50 for a 1-channel encoder, RGB in [-1, 1] for a 3-channel one) is
read from the weights (conv1's input channels), never chosen by hand.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from pretext.encoders import EncoderInfo, load_encoder
from pretext.nets import ALEXNET_LAYERS, PROBE_LAYERS, AlexNetCC
from pretext.predict import encoder_input


def check_layers(layers: Sequence[str], available: Sequence[str], valid: Sequence[str] = PROBE_LAYERS) -> None:
    bad = [x for x in layers if x not in valid]
    if bad:
        raise ValueError(f"layer {bad[0]!r} is not a probe layer; valid: {', '.join(valid)}, all")
    missing = [x for x in layers if x not in available]
    if missing:
        raise ValueError(f"the encoder has no layer {missing[0]!r}: its weights cover {', '.join(available)}")


def parse_layers(layer: str | Sequence[str], valid: Sequence[str] = PROBE_LAYERS) -> tuple[str, ...]:
    """``all`` (every layer in ``valid``), one name, a comma list or a sequence."""
    if isinstance(layer, str):
        names = valid if layer == "all" else tuple(x.strip() for x in layer.split(","))
    else:
        names = tuple(layer)
    check_layers(names, valid, valid)
    return tuple(names)


def encoder_from_config(cfg) -> tuple[AlexNetCC, EncoderInfo, tuple[str, ...]]:
    """What every evaluation starts with: its config's ``pool``, ``layer``, ``ckpt`` / ``init``
    checked, and the encoder loaded."""
    from downstream.reduce import POOLS

    if cfg.pool.name not in POOLS:
        raise ValueError(f"pool={cfg.pool.name!r} is not a reduction; valid: {', '.join(POOLS)}")
    layers = parse_layers(cfg.layer)
    net, info = load_encoder(cfg.ckpt, cfg.init, cfg.init_channels, cfg.seed, cfg.get("init_data"))
    check_layers(layers, info.layers)
    return net, info, layers


class FrozenEncoder(nn.Module):
    """The encoder up to ``max(layers)``, frozen: no gradients, BatchNorm in eval mode whatever
    ``train()`` is called with. ``forward(rgb)`` takes uint8 RGB (N, 3, H, W) and returns
    ``{layer: features}`` from one pass."""

    def __init__(self, net: AlexNetCC, layers: Sequence[str]):
        super().__init__()
        check_layers(layers, tuple(net.blocks._modules), tuple(net.blocks._modules))
        deepest = max(layers, key=ALEXNET_LAYERS.index)
        keep = ALEXNET_LAYERS[: ALEXNET_LAYERS.index(deepest) + 1]
        net.blocks = net.blocks[: len(keep)]  # nothing deeper is computed or kept
        self.net, self.layers = net, tuple(layers)
        self.net.requires_grad_(False)
        self.net.eval()

    def train(self, mode: bool = True) -> FrozenEncoder:
        super().train(mode)
        self.net.eval()
        return self

    @torch.no_grad()
    def forward(self, rgb: Tensor) -> dict[str, Tensor]:
        x = encoder_input(rgb, self.net.in_channels)
        return self.net(x, layers=self.layers)
