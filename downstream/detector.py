"""Faster R-CNN (torchvision) on the pretext encoder: conv1..conv5 as the backbone, the encoder's
own fc6/fc7 as the box head (new ones where it has none), input channels from its weights.

The box head pools each region to 11 x 11 cells of the stride-16 conv5 map and applies fc6 (a 6 x 6
kernel with dilation 2, which spans exactly 11 x 11) without padding, so fc6 acts as the fully
connected layer it is, on the region, then fc7.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor
from torchvision.ops import MultiScaleRoIAlign, RoIPool

from pretext.nets import AlexNetCC
from pretext.predict import encoder_input

ROI_SIZE = 11  # fc6's dilated 6 x 6 kernel spans 11 x 11 cells
STRIDE = 16  # conv5's output stride in this encoder
ROI_OPS = ("pool", "align")


class EncoderBackbone(nn.Module):
    """Float RGB in [0, 1] (as torchvision's detection transform hands it over, unnormalised) ->
    the encoder's input -> conv5, as torchvision's single feature map ``{"0": conv5}``."""

    def __init__(self, net: AlexNetCC):
        super().__init__()
        self.net = net
        names = ("conv1", "pool1", "conv2", "pool2", "conv3", "conv4", "conv5")
        self.body = nn.Sequential(OrderedDict((k, getattr(net.blocks, k)) for k in names))
        self.out_channels = 256

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        return {"0": self.body(encoder_input(x, self.net.in_channels))}


class EncoderBoxHead(nn.Module):
    """fc6 (no padding: the region's 11 x 11 cells in, one vector out) and fc7, with dropout."""

    def __init__(self, net: AlexNetCC, dropout: float = 0.5):
        super().__init__()
        self.fc6, self.fc7, self.dropout = net.blocks.fc6, net.blocks.fc7, dropout
        self.out_channels = net.fc_width

    def forward(self, x: Tensor) -> Tensor:
        conv, bn, relu = self.fc6
        x = relu(bn(F.conv2d(x, conv.weight, conv.bias, dilation=conv.dilation)))
        x = F.dropout(x, self.dropout, self.training)
        x = F.dropout(self.fc7(x), self.dropout, self.training)
        return x.flatten(1)


class SingleMapRoIPool(nn.Module):
    """Fast R-CNN's RoI max-pooling on the one stride-16 map, in torchvision's box_roi_pool API."""

    def __init__(self, size: int = ROI_SIZE, stride: int = STRIDE):
        super().__init__()
        self.pool = RoIPool(size, 1.0 / stride)

    def forward(self, features: dict[str, Tensor], proposals: list[Tensor], image_shapes) -> Tensor:
        return self.pool(features["0"], proposals)


def build_detector(
    net: AlexNetCC,
    num_classes: int = 21,
    roi: str = "pool",
    train_scales: tuple[int, ...] = (480, 576, 688, 864, 1200),
    test_scale: int = 600,
    max_size: int = 1000,
    rois_per_image: int = 128,
    dropout: float = 0.5,
) -> FasterRCNN:
    """``net`` grown to fc7. ``roi``: ``pool`` (Fast R-CNN's RoI max-pooling) or ``align``."""
    if roi not in ROI_OPS:
        raise ValueError(f"roi={roi!r} is not a region pooling; valid: {', '.join(ROI_OPS)}")
    head = EncoderBoxHead(net, dropout)
    model = FasterRCNN(
        EncoderBackbone(net),
        min_size=tuple(train_scales),
        max_size=max_size,
        image_mean=[0.0, 0.0, 0.0],  # the backbone makes its own input (L - 50 or RGB in [-1, 1])
        image_std=[1.0, 1.0, 1.0],
        rpn_anchor_generator=AnchorGenerator(((64, 128, 256, 512),), ((0.5, 1.0, 2.0),)),
        box_roi_pool=MultiScaleRoIAlign(["0"], ROI_SIZE, sampling_ratio=2),
        box_head=head,
        box_predictor=FastRCNNPredictor(head.out_channels, num_classes),
        box_batch_size_per_image=rois_per_image,
        box_positive_fraction=0.25,
    )
    if roi == "pool":  # torchvision's constructor accepts only its RoIAlign; the heads take any pooling
        model.roi_heads.box_roi_pool = SingleMapRoIPool()
    model.train_scales, model.test_scale = tuple(train_scales), int(test_scale)
    return model


def set_scales(model: FasterRCNN, training: bool) -> None:
    """Multi-scale training (a random shorter side per image), single-scale test."""
    model.transform.min_size = model.train_scales if training else (model.test_scale,)


def to_float(images: list[Tensor]) -> list[Tensor]:
    return [im.float() / 255 if im.dtype == torch.uint8 else im for im in images]
