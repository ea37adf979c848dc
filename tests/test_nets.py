import pytest
import torch

from pretext.nets import ALEXNET_LAYERS, AlexNetCC, VGGColorizer


def test_alexnet_returns_any_named_layer_in_one_pass():
    net = AlexNetCC(out_channels=313, fc_width=64).eval()
    x = torch.randn(2, 1, 180, 180)
    out = net(x, layers=list(ALEXNET_LAYERS))
    shapes = {k: tuple(v.shape[1:]) for k, v in out.items()}
    assert shapes["conv1"] == (96, 45, 45)
    assert shapes["conv2"] == (256, 22, 22)
    assert shapes["conv5"] == (256, 11, 11)
    assert shapes["pool5"] == (256, 11, 11)  # pool5 has stride 1
    assert shapes["fc6"] == (64, 11, 11)  # the dilated 6x6 fc6 keeps the map
    assert shapes["fc8"] == (313, 11, 11)
    assert torch.allclose(out["fc8"], net(x), atol=1e-5)


def test_alexnet_structure_is_the_authors():
    net = AlexNetCC()
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.in_channels for c in convs][:1] == [1]
    assert [c.groups for c in convs] == [1, 2, 1, 2, 2, 1, 1, 1]
    assert convs[0].stride == (4, 4) and convs[0].kernel_size == (11, 11)
    assert convs[5].kernel_size == (6, 6) and convs[5].dilation == (2, 2) and convs[5].out_channels == 4096
    bns = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(bns) == 7 and not any(b.affine for b in bns)
    assert not any(isinstance(m, (torch.nn.Dropout, torch.nn.LocalResponseNorm)) for m in net.modules())


def test_alexnet_takes_rgb_for_baselines_and_refuses_other_inputs():
    assert AlexNetCC(in_channels=3, fc_width=32)(torch.randn(1, 3, 96, 96)).shape[1] == 313
    with pytest.raises(ValueError, match="1 \\(L\\) or 3 \\(RGB\\)"):
        AlexNetCC(in_channels=2)
    with pytest.raises(ValueError, match="valid: conv1"):
        AlexNetCC(fc_width=32)(torch.randn(1, 1, 64, 64), layers=["conv9"])


def test_vgg_colorizer_maps_224_to_56():
    net = VGGColorizer(out_channels=309).eval()
    assert net(torch.randn(1, 1, 224, 224)).shape == (1, 309, 56, 56)
    assert net(torch.randn(1, 1, 176, 176)).shape == (1, 309, 44, 44)
