"""From a trained net to colours: the network input, ab prediction and colorized images."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pretext.color import TEMPERATURE, annealed_mean, lab_to_rgb, rgb_to_lab

L_CENTER = 50.0  # the network sees L - 50 (SPEC.md)


def net_input(lab: Tensor, in_channels: int = 1, rgb: Tensor | None = None) -> Tensor:
    """The encoder's input: centred L (colorization) or RGB in [-1, 1] (baselines that need it)."""
    if in_channels == 1:
        return lab[:, :1] - L_CENTER
    if rgb is None:
        rgb = lab_to_rgb(lab)
    rgb = rgb.float() / 255.0 if rgb.dtype == torch.uint8 else rgb
    return rgb * 2 - 1


def predict_ab(output: Tensor, centers: Tensor | None, temperature: float = TEMPERATURE) -> Tensor:
    """ab at output resolution: the annealed mean of a distribution over the bins, or the output
    itself for a regression (2-channel) net."""
    if output.shape[1] == 2 and (centers is None or len(centers) != 2):
        return output
    return annealed_mean(output, centers, temperature)


@torch.no_grad()
def colorize(
    net: nn.Module, rgb: Tensor, centers: Tensor | None, temperature: float = TEMPERATURE, net_size: int | None = None
) -> Tensor:
    """Colorize images (N, 3, H, W) uint8: keep their L at full resolution, take the predicted ab
    upsampled (bilinear). ``net_size``: the side the net sees (None: full size). Returns float RGB."""
    lab = rgb_to_lab(rgb)
    x = lab if net_size is None else F.interpolate(lab, size=(net_size, net_size), mode="bilinear", antialias=True)
    ab = predict_ab(net(net_input(x)), centers, temperature)
    ab = F.interpolate(ab, size=rgb.shape[-2:], mode="bilinear", align_corners=False)
    return lab_to_rgb(torch.cat([lab[:, :1], ab], 1))


def grey_rgb(rgb: Tensor) -> Tensor:
    """The grey version of images (their L with ab = 0), float RGB in [0, 1]."""
    lab = rgb_to_lab(rgb)
    return lab_to_rgb(torch.cat([lab[:, :1], torch.zeros_like(lab[:, 1:])], 1))
