"""Initialisation baselines, the rescaling before transfer, export, and the supervised task."""

import pytest
import torch
from hydra import compose, initialize_config_dir

from pretext.checkpoint_files import save_encoder
from pretext.encoders import init_encoder, load_encoder
from pretext.inits import (
    bn_outputs,
    gradient_weight_ratios,
    kraehenbuehl_init,
    rescale_for_transfer,
)
from pretext.nets import AlexNetCC
from tests.conftest import ROOT

LAYERS = ["conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7"]


def calib(n: int = 8, size: int = 99) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, 1, size, size, generator=g) * 20  # L - 50 scale


def spread(ratios: dict) -> float:
    return max(ratios.values()) / min(ratios.values()) - 1


def test_data_dependent_init_gives_unit_variance_and_equal_ratios():
    x = calib()
    net = kraehenbuehl_init(AlexNetCC(out_channels=5, fc_width=64), x)
    for name, y in bn_outputs(net, x).items():
        var = y.var((0, 2, 3), unbiased=False)
        assert (var - 1).abs().max() < 0.10, name  # every channel of every layer, on its calibration batch
    assert spread(gradient_weight_ratios(net, x)) < 0.01
    w = net.blocks.conv1[0].weight.flatten(1)
    norms = w.norm(dim=1)  # k-means centres as unit filters, then one between-layer scale for the layer
    assert torch.allclose(norms, norms[0].expand(96), rtol=1e-4)


def test_rescaling_keeps_outputs_up_to_a_per_layer_scale_and_equalises_ratios():
    x = calib()
    torch.manual_seed(1)
    net = AlexNetCC(out_channels=5, fc_width=64).eval()
    for m in net.modules():  # BatchNorm statistics as after training
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.normal_()
            m.running_var.uniform_(0.5, 2.0)
    before = {k: v.detach() for k, v in net(x, layers=[*LAYERS, "fc8"]).items()}
    assert spread(gradient_weight_ratios(net, x)) > 0.5  # unequal to start with
    rescale_for_transfer(net, x)
    after = net(x, layers=[*LAYERS, "fc8"])
    for k in before:
        scale = (after[k] * before[k]).sum() / before[k].pow(2).sum()
        assert scale > 0
        assert torch.allclose(after[k], scale * before[k], atol=1e-5 * float(after[k].abs().max())), k
    assert spread(gradient_weight_ratios(net, x)) < 0.01
    for m in net.modules():  # BatchNorm folded: identity
        if isinstance(m, torch.nn.BatchNorm2d):
            assert torch.all(m.running_mean == 0) and torch.allclose(m.running_var + m.eps, torch.ones(1))


def test_inits_are_named_and_need_their_data():
    assert init_encoder("gaussian").blocks.conv1[0].weight.std().item() == pytest.approx(0.01, rel=0.05)
    with pytest.raises(ValueError, match="set init_data=DIR"):
        init_encoder("kraehenbuehl")
    with pytest.raises(ValueError, match="valid: gaussian, kraehenbuehl"):
        init_encoder("xavier")


def test_export_writes_a_rescaled_encoder_the_loader_reads(tmp_path):
    from pretext.export import export

    net = AlexNetCC(out_channels=3, fc_width=16, in_channels=3).eval()
    save_encoder(net, "supervised", tmp_path / "sup.pt")
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("export", overrides=[f"ckpt={tmp_path / 'sup.pt'}", "calib_images=4", "calib_crop=67",
                                           f"out={tmp_path / 'out.pt'}"])  # fmt: skip
    out = export(cfg)
    loaded, info = load_encoder(out)
    assert info.method == "supervised" and info.input == "RGB"
    extra = torch.load(out, weights_only=True)["encoder"]
    assert extra["rescaled"] and spread(extra["calibration"]["ratios"]) < 0.01
    x = torch.randn(2, 3, 67, 67)
    a, b = net(x, layers=["conv5"])["conv5"], loaded(x, layers=["conv5"])["conv5"]
    scale = (a * b).sum() / a.pow(2).sum()
    assert torch.allclose(b, scale * a, atol=1e-4 * float(b.abs().max()))


def test_supervised_task_trains_on_labelled_folders_and_refuses_unlabelled_data(tmp_path):
    from pretext import train as train_mod
    from tests.test_linear_probe import write_folder
    from tests.test_train import cfg_for

    write_folder(tmp_path / "d" / "train", {"a": 0, "b": 3}, 4)
    write_folder(tmp_path / "d" / "val", {"a": 0, "b": 3}, 2)
    cfg = cfg_for(tmp_path / "run", "task=supervised", "data=labelled", f"data.root={tmp_path / 'd'}")
    result = train_mod.train(cfg)
    net, info = load_encoder(result["last_checkpoint"])
    assert info.method == "supervised" and info.input == "RGB" and net.out_channels == 2
    with pytest.raises(ValueError, match="task=supervised needs labelled data"):
        train_mod.train(cfg_for(tmp_path / "run2", "task=supervised"))


def test_an_inits_digest_names_what_makes_the_net(tmp_path):
    """Features are cached by the encoder's digest: a 1- and a 3-channel Gaussian net once shared one
    (the second probe read the first's features), and so did two calibration folders of one name."""
    from tests.test_linear_probe import LEVELS, write_folder

    digests = {load_encoder(init="gaussian", in_channels=c, seed=s)[1].digest for c in (1, 3) for s in (0, 1)}
    assert len(digests) == 4
    for place in ("a", "b"):
        write_folder(tmp_path / place / "train", LEVELS, 1, seed=1)
    a, b = (load_encoder(init="kraehenbuehl", init_data=tmp_path / p / "train")[1].digest for p in ("a", "b"))
    assert a != b and a.startswith("kraehenbuehl-1ch-seed0-train-")
