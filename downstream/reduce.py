"""Reducing a layer's feature map to about 9k dims for a linear probe (SPEC.md, Representation
learning protocols). Pure functions; the kernel, stride and size tables live in ``conf/pool/``.

- ``avg`` (FAIR benchmark, 227 input): average pooling with the benchmark's kernel and stride.
  The benchmark's AlexNet has 55 / 27 / 13 px maps at 227 input; this encoder pads conv1 by 5 and
  rounds its pools up, as the authors' Caffe net does, giving 57 / 28 / 14. The map is first
  centre-cropped to the extent the benchmark's windows cover, ``(size - 1) * stride + kernel``, so
  every window is the benchmark's own kernel at its own stride and the output has its size.
- ``resize`` (the authors' released test): bilinear resize of the map to a fixed size, with
  Caffe's ``Interp`` sampling (corners aligned).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch.nn.functional as F
from torch import Tensor
from torchvision.transforms.v2.functional import center_crop

POOLS = ("avg", "resize")


def avg_reduce(x: Tensor, kernel: int, stride: int, size: int) -> Tensor:
    extent = (size - 1) * stride + kernel
    h, w = x.shape[-2:]
    if h < extent or w < extent:
        raise ValueError(
            f"a {h}x{w} map is smaller than the {extent}x{extent} the avg reduction (kernel {kernel}, stride "
            f"{stride} -> {size}x{size}) needs: use the protocol's 227 input, or pool=resize"
        )
    x = center_crop(x, [extent, extent]) if (h, w) != (extent, extent) else x
    return F.avg_pool2d(x, kernel, stride)


def resize_reduce(x: Tensor, size: int, align_corners: bool = True) -> Tensor:
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=align_corners)


def reduce_map(x: Tensor, pool: str, spec: Mapping) -> Tensor:
    """``x`` (N, C, H, W) -> (N, C, s, s). ``spec``: the layer's entry in ``conf/pool/<pool>.yaml``
    (``{kernel, stride, size}`` for avg, ``{size}`` for resize) plus ``align_corners`` for resize."""
    if pool == "avg":
        return avg_reduce(x, int(spec["kernel"]), int(spec["stride"]), int(spec["size"]))
    if pool == "resize":
        return resize_reduce(x, int(spec["size"]), bool(spec.get("align_corners", True)))
    raise ValueError(f"pool={pool!r} is not a reduction; valid: {', '.join(POOLS)}")


def reduced_dims(channels: int, spec: Mapping) -> int:
    return channels * int(spec["size"]) ** 2
