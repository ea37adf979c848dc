"""FCN on the encoder (Long et al. 2015): fc6/fc7 as convolutions, a 1x1 score layer, skip scores
from finer layers, bilinear upsampling to the input size.

This encoder's fc7 has an output stride of 16 (its pool5 has stride 1), not AlexNet's 32, so the
variants are named by their skips: ``fcn32s`` scores fc7 alone, ``fcn16s`` adds a skip from conv2
(stride 8), ``fcn8s`` also from conv1 (stride 4). Score layers start at zero, as in FCN.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from downstream.finetune import run_blocks
from pretext.nets import AlexNetCC

VARIANTS = {"fcn32s": (), "fcn16s": ("conv2",), "fcn8s": ("conv2", "conv1")}
CHANNELS = {"conv1": 96, "conv2": 256}


def zero_conv(cin: int, cout: int) -> nn.Conv2d:
    conv = nn.Conv2d(cin, cout, 1)
    nn.init.zeros_(conv.weight)
    nn.init.zeros_(conv.bias)
    return conv


class FCN(nn.Module):
    def __init__(self, net: AlexNetCC, num_classes: int = 21, variant: str = "fcn32s", dropout: float = 0.5):
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"variant={variant!r} is not an FCN variant; valid: {', '.join(VARIANTS)}")
        self.net, self.variant, self.dropout = net, variant, dropout
        self.skip_layers = VARIANTS[variant]
        self.score = zero_conv(net.fc_width, num_classes)
        self.skips = nn.ModuleDict({k: zero_conv(CHANNELS[k], num_classes) for k in self.skip_layers})

    def forward(self, x: Tensor) -> Tensor:
        """(N, C, H, W) net input -> (N, classes, H, W) scores."""
        taps = {}
        for name, out in run_blocks(self.net, x, self.dropout, self.training):
            if name in self.skip_layers or name == "fc7":
                taps[name] = out
        s = self.score(taps["fc7"])
        for layer in self.skip_layers:  # coarse to fine
            tap = taps[layer]
            s = F.interpolate(s, size=tap.shape[-2:], mode="bilinear", align_corners=False) + self.skips[layer](tap)
        return F.interpolate(s, size=x.shape[-2:], mode="bilinear", align_corners=False)
