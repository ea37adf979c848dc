"""The networks of the pretext (SPEC.md: Networks).

- :class:`AlexNetCC`: the AlexNet-style cross-channel encoder the authors trained for representation
  learning (L in, ab distribution out). Any named layer comes out of one forward pass.
- :class:`VGGColorizer`: the paper's VGG-style colorizer, for colorization results.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from torch import Tensor, nn

ALEXNET_LAYERS = ("conv1", "pool1", "conv2", "pool2", "conv3", "conv4", "conv5", "pool5", "fc6", "fc7", "fc8")
# The layers the representation-learning protocols read (SPEC.md: linear probes on conv1..conv5, and
# pool5): every list of layers in the suite is this one or a part of it.
PROBE_LAYERS = ("conv1", "conv2", "conv3", "conv4", "conv5", "pool5")


def conv_bn_relu(
    cin: int, cout: int, kernel: int, stride: int = 1, padding: int = 0, groups: int = 1, dilation: int = 1
):
    """Conv, BatchNorm without affine, ReLU: the authors' block (BN before every ReLU, no LRN)."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, groups=groups, dilation=dilation),
        nn.BatchNorm2d(cout, affine=False),
        nn.ReLU(inplace=True),
    )


class AlexNetCC(nn.Module):
    """AlexNet cross-channel encoder, as trained by the authors.

    conv1 96 11x11/4 pad 5, max-pool 3/2; conv2 256 5x5 groups 2, pool 3/2; conv3 384 3x3; conv4 384
    3x3 groups 2; conv5 256 3x3 groups 2; pool5 3/1; fc6 as a 6x6 conv with dilation 2 to
    ``fc_width``; fc7 1x1 to ``fc_width``; fc8 1x1 to ``out_channels`` (Q bins, or 2 for the L2
    loss). Pools round up, as Caffe's do, so a 180 crop gives an 11 x 11 output.

    ``forward(x)`` returns the last layer; ``forward(x, layers=("conv1", "conv5"))`` returns a dict
    of those layers' outputs, computing only as far as the deepest one asked for.
    ``in_channels``: 1 (L, colorization) or 3 (RGB, for baselines that need it).
    ``fc_width``: 4096 as trained; a named reduced variant in config narrows it for CPU runs.
    ``last``: the deepest layer built (``pool5`` for an encoder without fc layers, as Context
    Encoders uses).
    """

    def __init__(self, out_channels: int = 313, in_channels: int = 1, fc_width: int = 4096, last: str = "fc8"):
        super().__init__()
        if in_channels not in (1, 3):
            raise ValueError(f"AlexNetCC in_channels must be 1 (L) or 3 (RGB), got {in_channels}")
        if last not in ALEXNET_LAYERS:
            raise ValueError(f"AlexNetCC last={last!r} is not a layer; valid: {', '.join(ALEXNET_LAYERS)}")
        self.in_channels, self.out_channels, self.fc_width, self.last = in_channels, out_channels, fc_width, last
        w = fc_width
        make = {  # built only as deep as ``last``
            "conv1": lambda: conv_bn_relu(in_channels, 96, 11, stride=4, padding=5),
            "pool1": lambda: nn.MaxPool2d(3, 2, ceil_mode=True),
            "conv2": lambda: conv_bn_relu(96, 256, 5, padding=2, groups=2),
            "pool2": lambda: nn.MaxPool2d(3, 2, ceil_mode=True),
            "conv3": lambda: conv_bn_relu(256, 384, 3, padding=1),
            "conv4": lambda: conv_bn_relu(384, 384, 3, padding=1, groups=2),
            "conv5": lambda: conv_bn_relu(384, 256, 3, padding=1, groups=2),
            "pool5": lambda: nn.MaxPool2d(3, 1, padding=1),
            "fc6": lambda: conv_bn_relu(256, w, 6, padding=5, dilation=2),
            "fc7": lambda: conv_bn_relu(w, w, 1),
            "fc8": lambda: nn.Conv2d(w, out_channels, 1),
        }
        keep = ALEXNET_LAYERS[: ALEXNET_LAYERS.index(last) + 1]
        self.blocks = nn.Sequential(OrderedDict((name, make[name]()) for name in keep))

    def channels(self, layer: str) -> int:
        """Channels of a layer's output, read from the weights (a pool keeps the conv's before it)."""
        names = list(self.blocks._modules)
        if layer not in names:
            raise ValueError(f"AlexNetCC has no layer {layer!r}; valid: {', '.join(names)}")
        for name in reversed(names[: names.index(layer) + 1]):
            convs = [m for m in self.blocks[names.index(name)].modules() if isinstance(m, nn.Conv2d)]
            if convs:
                return convs[0].out_channels
        raise AssertionError("conv1 has a convolution")

    def forward(self, x: Tensor, layers: Sequence[str] | None = None) -> Tensor | dict[str, Tensor]:
        if layers is None:
            return self.blocks(x)
        unknown = set(layers) - set(self.blocks._modules)
        if unknown:
            raise ValueError(f"AlexNetCC has no layer {sorted(unknown)}; valid: {', '.join(self.blocks._modules)}")
        wanted, out = set(layers), {}
        for name, block in self.blocks.named_children():
            x = block(x)
            if name in wanted:
                out[name] = x
                if len(out) == len(wanted):
                    break
        return out


class VGGColorizer(nn.Module):
    """The paper's VGG-style colorizer: 3x3 convs in 8 blocks, no pooling; 224 in -> 56 x 56 out.

    Blocks 1-7 end with ReLU then BatchNorm: 64x2, 128x2, 256x3 (the last conv of blocks 1-3 has
    stride 2), 512x3, 512x3 dilation 2, 512x3 dilation 2, 512x3; block 8 is a 4x4 stride-2
    transposed conv to 256, two 256 convs, and a 1x1 conv to ``out_channels``.
    """

    def __init__(self, out_channels: int = 313, in_channels: int = 1):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        spec = [  # (width, convs, stride of the last conv, dilation)
            (64, 2, 2, 1),
            (128, 2, 2, 1),
            (256, 3, 2, 1),
            (512, 3, 1, 1),
            (512, 3, 1, 2),
            (512, 3, 1, 2),
            (512, 3, 1, 1),
        ]
        blocks, cin = OrderedDict(), in_channels
        for i, (width, n, stride, dil) in enumerate(spec, start=1):
            layers: list[nn.Module] = []
            for j in range(n):
                s = stride if j == n - 1 else 1
                layers += [nn.Conv2d(cin, width, 3, stride=s, padding=dil, dilation=dil), nn.ReLU(inplace=True)]
                cin = width
            layers.append(nn.BatchNorm2d(width))
            blocks[f"conv{i}"] = nn.Sequential(*layers)
        blocks["conv8"] = nn.Sequential(
            nn.ConvTranspose2d(512, 256, 4, stride=2, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, 3, padding=1),
            nn.ReLU(inplace=True),
        )
        blocks["out"] = nn.Conv2d(256, out_channels, 1)
        self.blocks = nn.Sequential(blocks)

    def forward(self, x: Tensor) -> Tensor:
        return self.blocks(x)


def count_parameters(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())
