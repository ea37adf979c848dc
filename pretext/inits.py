"""Initialisation baselines and the authors' rescaling before transfer (SPEC.md: Networks;
Kraehenbuehl et al., "Data-dependent initializations of convolutional neural networks", ICLR 2016).

Pure functions of an :class:`~pretext.nets.AlexNetCC` and a calibration batch (already in the net's
input space). Every conv is followed by a BatchNorm without affine; in eval mode that BatchNorm is
the fixed affine map set by its running statistics, which is what these functions adjust.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pretext.nets import AlexNetCC

EPS_FLOOR = 1e-12


def conv_layers(net: AlexNetCC) -> list[tuple[str, nn.Conv2d, nn.BatchNorm2d | None]]:
    """(name, conv, its BatchNorm or None) for every conv block the net has, in order."""
    out = []
    for name, block in net.blocks.named_children():
        if isinstance(block, nn.Sequential):
            out.append((name, block[0], block[1]))
        elif isinstance(block, nn.Conv2d):
            out.append((name, block, None))
    return out


def gaussian_init(net: AlexNetCC, std: float = 0.01) -> None:
    """N(0, std^2) weights, zero biases, identity BatchNorm statistics."""
    for _, conv, bn in conv_layers(net):
        nn.init.normal_(conv.weight, 0.0, std)
        nn.init.zeros_(conv.bias)
        if bn is not None:
            set_identity(bn)


def set_identity(bn: nn.BatchNorm2d) -> None:
    bn.running_mean.zero_()
    bn.running_var.fill_(1.0 - bn.eps)  # (x - 0) / sqrt(var + eps) = x exactly


def _capture(net: AlexNetCC, x: Tensor, which: int) -> dict[str, Tensor]:
    """Each conv block's ``which``-th module output (0: the conv, 1: its BatchNorm) on ``x``, eval mode.
    Outputs are cloned: the ReLU that follows works in place."""
    out, hooks = {}, []
    for name, conv, bn in conv_layers(net):
        module = (conv, bn)[which]

        def keep(m, i, o, name=name):
            out[name] = o.detach().clone()

        if module is not None:
            hooks.append(module.register_forward_hook(keep))
    try:
        with torch.no_grad():
            net.eval()(x)
    finally:
        for h in hooks:
            h.remove()
    return out


def pre_activations(net: AlexNetCC, x: Tensor) -> dict[str, Tensor]:
    """Each conv's output (before its BatchNorm) on ``x``, the net in eval mode."""
    return _capture(net, x, 0)


def bn_outputs(net: AlexNetCC, x: Tensor) -> dict[str, Tensor]:
    """Each BatchNorm's output (the input of each ReLU) on ``x``, the net in eval mode."""
    return _capture(net, x, 1)


def kmeans_conv1(net: AlexNetCC, x: Tensor, patches: int = 20000, seed: int = 0) -> None:
    """conv1's filters from k-means on the calibration batch's patches (each patch with its mean
    removed and scaled to unit norm), as Kraehenbuehl et al. initialise the first layer."""
    from sklearn.cluster import KMeans

    conv = net.blocks.conv1[0]
    k, s, p = conv.kernel_size[0], conv.stride[0], conv.padding[0]
    cols = F.unfold(x, k, stride=s, padding=p).transpose(1, 2).reshape(-1, conv.in_channels * k * k)
    g = torch.Generator().manual_seed(seed)
    cols = cols[torch.randperm(len(cols), generator=g)[:patches]].double()
    cols = cols - cols.mean(1, keepdim=True)
    cols = cols / cols.norm(dim=1, keepdim=True).clamp_min(1e-6)
    km = KMeans(conv.out_channels, n_init=1, random_state=seed).fit(cols.numpy())
    centres = torch.from_numpy(km.cluster_centers_).float()
    centres = centres / centres.norm(dim=1, keepdim=True).clamp_min(1e-6)
    with torch.no_grad():
        conv.weight.copy_(centres.view_as(conv.weight))
        conv.bias.zero_()


def within_layer(net: AlexNetCC, x: Tensor) -> None:
    """Each BatchNorm's statistics set, layer by layer, to its conv's per-channel mean and variance
    on ``x``: every ReLU then sees zero-mean, unit-variance inputs on the calibration batch. One
    pass: each block runs once, on the output of the block before it as just normalised."""
    net.eval()
    with torch.no_grad():
        for block in net.blocks.children():
            if isinstance(block, nn.Sequential):
                conv, bn = block[0], block[1]
                y = conv(x)
                bn.running_mean.copy_(y.mean((0, 2, 3)))
                bn.running_var.copy_((y.var((0, 2, 3), unbiased=False) - bn.eps).clamp_min(EPS_FLOOR))
                x = block[2](bn(y))
            else:
                x = block(x)


def gradient_weight_ratios(net: AlexNetCC, x: Tensor, seed: int = 0) -> dict[str, float]:
    """||dL/dW_k|| / ||W_k|| per conv, for L a fixed random projection of the top layer's output
    averaged over the batch (eval mode: BatchNorm as its fixed affine map)."""
    net.eval()
    out = net(x)
    g = torch.randn(out.shape[1:], generator=torch.Generator().manual_seed(seed)).to(out)
    convs = conv_layers(net)
    grads = torch.autograd.grad((out * g).sum() / len(x), [c.weight for _, c, _ in convs])
    return {name: float(gr.norm() / c.weight.detach().norm()) for (name, c, _), gr in zip(convs, grads, strict=True)}


def equalise_ratios(net: AlexNetCC, x: Tensor, keep_outputs: bool, seed: int = 0) -> dict[str, float]:
    """Scale each conv by alpha_k = sqrt(r_k / geometric mean of r) so that every layer has the same
    gradient-to-weight ratio r_k. A positive scale passes through ReLU and max-pooling, so:

    - ``keep_outputs`` (BatchNorm live): the BatchNorm statistics absorb alpha_k and every layer's
      output is unchanged; the ratio goes as 1 / alpha_k^2.
    - otherwise (BatchNorm folded to identity): biases take the product P_k of the scales so far,
      each layer's output is scaled by P_k (a per-layer constant), and the ratio goes as
      P_K / alpha_k^2 for the top layer K: equal for all k.

    Returns the ratios before scaling."""
    ratios = gradient_weight_ratios(net, x, seed)
    mean_log = sum(math.log(r) for r in ratios.values()) / len(ratios)
    cumulative = 1.0
    with torch.no_grad():
        for name, conv, bn in conv_layers(net):
            alpha = math.sqrt(ratios[name] / math.exp(mean_log))
            cumulative *= alpha
            conv.weight.mul_(alpha)
            if keep_outputs and bn is not None:
                conv.bias.mul_(alpha)
                bn.running_mean.mul_(alpha)
                bn.running_var.copy_(((bn.running_var + bn.eps) * alpha**2 - bn.eps).clamp_min(EPS_FLOOR))
            else:
                conv.bias.mul_(cumulative)
    return ratios


def fold_bn(net: AlexNetCC) -> None:
    """Fold each eval-mode BatchNorm into its conv (w / s, (b - m) / s with s = sqrt(var + eps)) and
    leave the BatchNorm as the identity: the same function, plain convs."""
    with torch.no_grad():
        for _, conv, bn in conv_layers(net):
            if bn is None:
                continue
            s = (bn.running_var + bn.eps).sqrt()
            conv.weight.div_(s.view(-1, 1, 1, 1))
            conv.bias.sub_(bn.running_mean).div_(s)
            set_identity(bn)


def kraehenbuehl_init(net: AlexNetCC, x: Tensor, seed: int = 0, std: float = 0.01) -> AlexNetCC:
    """Data-dependent init: Gaussian weights, k-means conv1, within-layer normalisation (unit
    variance per channel on ``x``), then between-layer scaling (equal gradient-to-weight ratios,
    the BatchNorm statistics absorbing the scales so the unit variances stay)."""
    torch.manual_seed(seed)
    gaussian_init(net, std)
    kmeans_conv1(net, x, seed=seed)
    within_layer(net, x)
    equalise_ratios(net, x, keep_outputs=True, seed=seed)
    return net.eval()


def rescale_for_transfer(net: AlexNetCC, x: Tensor, seed: int = 0) -> AlexNetCC:
    """The authors' step before transfer: fold BatchNorm into the convs, then equalise the
    gradient-to-weight ratios across layers."""
    fold_bn(net.eval())
    equalise_ratios(net, x, keep_outputs=False, seed=seed)
    return net
