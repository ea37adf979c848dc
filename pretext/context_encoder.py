"""Context Encoders (Pathak et al., CVPR 2016) on the suite's AlexNet encoder (SPEC.md: Context
Encoders): masks, the channel-wise fully connected layer, the up-convolution decoder, the
discriminator and the losses. Pure functions and plain modules; the LightningModule is in
``pretext/context_module.py``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

MASKS = ("central", "random_block", "random_region")
OVERLAP = 4  # px of context inside the reconstructed region, weighted OVERLAP_WEIGHT in the L2
OVERLAP_WEIGHT = 10.0
L2_WEIGHT, ADV_WEIGHT = 0.999, 0.001


# ----------------------------------------------------------------------------------- masks
def central_mask(n: int, size: int, fraction: float = 0.25, device=None) -> Tensor:
    """(n, 1, size, size) bool: a centred square covering ``fraction`` of the area (1/4: half the side)."""
    side = round(size * math.sqrt(fraction))
    lo = (size - side) // 2
    m = torch.zeros(n, 1, size, size, dtype=torch.bool, device=device)
    m[..., lo : lo + side, lo : lo + side] = True
    return m


def random_block_mask(n: int, size: int, fraction: float = 0.25, block: int | None = None, generator=None) -> Tensor:
    """Random squares of side ``block`` (default size // 8) added until ``fraction`` is covered."""
    block = block or max(1, size // 8)
    m = torch.zeros(n, 1, size, size, dtype=torch.bool)
    target = fraction * size * size
    for i in range(n):
        while m[i].sum() < target:
            y, x = torch.randint(0, size - block + 1, (2,), generator=generator).tolist()
            m[i, :, y : y + block, x : x + block] = True
    return m


def random_region_mask(n: int, size: int, fraction: float = 0.25, cells: int = 6, generator=None) -> Tensor:
    """Random blob-shaped regions: smooth noise (a ``cells`` x ``cells`` random grid, bicubically
    upsampled) thresholded at its (1 - fraction) quantile, so each mask covers ``fraction`` of the
    image to within ties. (The paper drew region shapes from PASCAL segmentations; smooth noise
    gives region-like shapes without that data.)"""
    noise = torch.rand(n, 1, cells, cells, generator=generator)
    field = F.interpolate(noise, size=(size, size), mode="bicubic", align_corners=False).flatten(1)
    k = max(1, round(fraction * size * size))
    thresh = field.topk(k, dim=1).values[:, -1:]
    return (field >= thresh).view(n, 1, size, size)


def make_mask(kind: str, n: int, size: int, fraction: float = 0.25, generator=None) -> Tensor:
    if kind == "central":
        return central_mask(n, size, fraction)
    if kind == "random_block":
        return random_block_mask(n, size, fraction, generator=generator)
    if kind == "random_region":
        return random_region_mask(n, size, fraction, generator=generator)
    raise ValueError(f"mask={kind!r} is not a mask kind; valid: {', '.join(MASKS)}")


def check_crop(crop: int, kind: str, fraction: float, min_crop: int = 64) -> None:
    """Below 64 px the hole covers a handful of pool5 cells (stride 16) and the 4 px overlap band
    swallows it; a central hole also needs a side of at least 4 x the overlap."""
    side = crop * math.sqrt(fraction)
    if crop < min_crop or (kind == "central" and side < 4 * OVERLAP):
        raise ValueError(
            f"context_encoder crop {crop} is too small for a {kind} mask of {fraction:.0%}: "
            f"use a crop of at least {min_crop} px (the paper: 227; e.g. model.crop=128)"
        )


# ----------------------------------------------------------------------------------- losses
def loss_weights(mask: Tensor, overlap: int = OVERLAP, overlap_weight: float = OVERLAP_WEIGHT) -> Tensor:
    """Per-pixel L2 weights: 1 in the hole, ``overlap_weight`` on the ``overlap``-px band of context
    around it, 0 elsewhere."""
    m = mask.float()
    grown = F.max_pool2d(m, 2 * overlap + 1, stride=1, padding=overlap) if overlap > 0 else m
    return m + overlap_weight * (grown - m)


def masked_l2(pred: Tensor, target: Tensor, weights: Tensor) -> Tensor:
    """Weighted mean squared error over the weighted pixels (channels averaged)."""
    err = (pred - target).pow(2).mean(1, keepdim=True)
    return (err * weights).sum() / weights.sum().clamp_min(1e-8)


def generator_loss(l2: Tensor, fake_logits: Tensor | None, adv_weight: float = ADV_WEIGHT) -> Tensor:
    """0.999 x masked L2 + 0.001 x adversarial (non-saturating); the L2 alone when there is no
    discriminator (``fake_logits`` None: the released feature-learning model)."""
    if fake_logits is None:
        return l2
    adv = F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))
    return (1 - adv_weight) * l2 + adv_weight * adv


def discriminator_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    real = F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
    fake = F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
    return (real + fake) / 2


# ----------------------------------------------------------------------------------- modules
class ChannelwiseFC(nn.Module):
    """Each feature map fully connected to itself: ``out[:, c] = W[c] @ in[:, c] + b[c]`` over the
    ``hw`` positions, no weights across channels (C x hw x hw + C x hw parameters)."""

    def __init__(self, channels: int, hw: int):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(channels, hw, hw) / math.sqrt(hw))
        self.bias = nn.Parameter(torch.zeros(channels, hw))

    def forward(self, x: Tensor) -> Tensor:
        n, c, h, w = x.shape
        y = torch.einsum("cij,ncj->nci", self.weight, x.flatten(2)) + self.bias
        return y.view(n, c, h, w)


def upconv(cin: int, cout: int, stride: int = 2) -> nn.Sequential:
    return nn.Sequential(
        nn.ConvTranspose2d(cin, cout, 4 if stride == 2 else 3, stride=stride, padding=1),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class ContextDecoder(nn.Module):
    """Channel-wise FC on the pool5 map (dropout 0.5 as in the release), a 1x1 conv that mixes
    channels, then 5 up-convolutions: four of stride 2 undo the encoder's stride of 16, the fifth
    (stride 1) maps to the image channels, tanh. ``grid``: the pool5 grid (crop / 16)."""

    def __init__(self, out_channels: int, grid: int, channels: int = 256):
        super().__init__()
        self.cfc = ChannelwiseFC(channels, grid * grid)
        self.drop = nn.Dropout(0.5)
        self.mix = nn.Sequential(nn.Conv2d(channels, channels, 1), nn.ReLU(inplace=True))
        self.up = nn.Sequential(upconv(channels, 128), upconv(128, 64), upconv(64, 64), upconv(64, 32))
        self.out = nn.ConvTranspose2d(32, out_channels, 3, stride=1, padding=1)

    def forward(self, feat: Tensor, size: int) -> Tensor:
        x = self.up(self.mix(self.drop(self.cfc(feat))))
        x = torch.tanh(self.out(x))
        return x if x.shape[-1] == size else F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)


class Discriminator(nn.Module):
    """DCGAN-style: stride-2 4x4 convs with LeakyReLU (BatchNorm from the second), then a global
    logit per image."""

    def __init__(self, in_channels: int, width: int = 64, depth: int = 4):
        super().__init__()
        layers, c = [], in_channels
        for i in range(depth):
            layers += [nn.Conv2d(c, width * 2**i, 4, 2, 1)]
            if i:
                layers += [nn.BatchNorm2d(width * 2**i)]
            layers += [nn.LeakyReLU(0.2, inplace=True)]
            c = width * 2**i
        self.features = nn.Sequential(*layers)
        self.logit = nn.Conv2d(c, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.logit(self.features(x)).mean((1, 2, 3))
