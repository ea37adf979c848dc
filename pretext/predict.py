"""From a trained net to colours: the network input, ab prediction and colorized images."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.transforms.v2.functional import resize

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


def encoder_input(rgb: Tensor, in_channels: int = 1, lab: Tensor | None = None) -> Tensor:
    """uint8 RGB (N, 3, H, W) -> what an encoder with ``in_channels`` sees (``lab``: its Lab, when
    already computed)."""
    return net_input(rgb_to_lab(rgb) if lab is None else lab, in_channels, rgb)


def predict_ab(output: Tensor, centers: Tensor | None, temperature: float = TEMPERATURE) -> Tensor:
    """ab at output resolution: the annealed mean of a distribution over the bins, or the output
    itself for a regression (2-channel) net."""
    if output.shape[1] == 2 and (centers is None or len(centers) != 2):
        return output
    return annealed_mean(output, centers, temperature)


@torch.no_grad()
def net_output(net: nn.Module, rgb: Tensor, net_size: int | None = None) -> Tensor:
    """The net's output for images (N, 3, H, W) uint8, seen at ``net_size`` x ``net_size``
    (antialiased bilinear resize; None: as they are)."""
    if net_size is not None:  # uint8 in, uint8 out: no float copy of a large image
        rgb = resize(rgb, [net_size, net_size], antialias=True)
    return net(encoder_input(rgb, getattr(net, "in_channels", 1)))


def upsample_rows(ab: Tensor, size: tuple[int, int], rows: slice) -> Tensor:
    """Rows ``rows`` of ``F.interpolate(ab, size, mode="bilinear", align_corners=False)``, without
    building the whole upsampled map (grid_sample at the same pixel centres)."""
    H, W = size
    ys = (torch.arange(rows.start, rows.stop, device=ab.device, dtype=ab.dtype) + 0.5) / H * 2 - 1
    xs = (torch.arange(W, device=ab.device, dtype=ab.dtype) + 0.5) / W * 2 - 1
    grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1)[None].expand(len(ab), -1, -1, -1)
    return F.grid_sample(ab, grid, mode="bilinear", padding_mode="border", align_corners=False)


@torch.no_grad()
def colorize(
    net: nn.Module,
    rgb: Tensor,
    centers: Tensor | None,
    temperature: float = TEMPERATURE,
    net_size: int | None = None,
    block_pixels: int = 1 << 18,
) -> Tensor:
    """Colorize images (N, 3, H, W) uint8: keep their L at full resolution, take the predicted ab
    (predicted at ``net_size`` x ``net_size``; None: full size) upsampled bilinearly. Returns uint8.

    The full-resolution work runs in blocks of rows of about ``block_pixels`` pixels, so beyond
    the net at its working size the memory is the input and output images and one block."""
    N, _, H, W = rgb.shape
    ab = predict_ab(net_output(net, rgb, net_size), centers, temperature).float()
    out = torch.empty_like(rgb)
    rows_per_block = max(1, block_pixels // (N * W))
    for top in range(0, H, rows_per_block):
        rows = slice(top, min(H, top + rows_per_block))
        L = rgb_to_lab(rgb[:, :, rows])[:, :1]
        lab = torch.cat([L, upsample_rows(ab, (H, W), rows)], 1)
        out[:, :, rows] = (lab_to_rgb(lab) * 255).round_().to(torch.uint8)
    return out


def grey_rgb(rgb: Tensor) -> Tensor:
    """The grey version of images (their L with ab = 0), float RGB in [0, 1]."""
    lab = rgb_to_lab(rgb)
    return lab_to_rgb(torch.cat([lab[:, :1], torch.zeros_like(lab[:, 1:])], 1))
