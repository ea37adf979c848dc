"""Linear probes: reductions, the encoder loader, the frozen encoder and probe training."""

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml
from hydra import compose, initialize_config_dir
from torchvision.io import write_png

from downstream.encoder import FrozenEncoder, check_layers, parse_layers
from downstream.reduce import avg_reduce, reduce_map, reduced_dims
from pretext.checkpoint_files import save_encoder
from pretext.data import LabelledFolderData, class_folders
from pretext.encoders import load_encoder
from pretext.nets import AlexNetCC
from tests.conftest import ROOT

SPEC_DIMS = {"conv1": 96 * 10 * 10, "conv2": 256 * 6 * 6, "conv3": 384 * 5 * 5, "conv4": 384 * 5 * 5,
             "conv5": 256 * 6 * 6}  # fmt: skip


def pool_conf(name: str) -> dict:
    return yaml.safe_load((ROOT / "conf" / "pool" / f"{name}.yaml").read_text())


@pytest.mark.parametrize("pool", ["avg", "resize"])
def test_reduced_dims_equal_the_spec_table_at_227(pool):
    conf = pool_conf(pool)
    net = AlexNetCC(last="pool5").eval()
    with torch.no_grad():
        feats = net(torch.randn(2, 1, 227, 227), layers=list(SPEC_DIMS))
    for layer, dims in SPEC_DIMS.items():
        spec = {**conf["layers"][layer], "align_corners": conf["align_corners"]}
        out = reduce_map(feats[layer], pool, spec)
        assert out[0].numel() == dims == reduced_dims(feats[layer].shape[1], spec), layer


def test_avg_reduction_is_the_benchmarks_kernel_on_the_benchmarks_map():
    x = torch.randn(1, 4, 13, 13)  # the FAIR AlexNet's conv3 map: the reduction is plain avg-pooling
    assert torch.equal(avg_reduce(x, 9, 1, 5), F.avg_pool2d(x, 9, 1))
    big = torch.randn(1, 4, 14, 14)  # this encoder's map: centre 13 x 13, same windows
    assert torch.allclose(avg_reduce(big, 9, 1, 5), F.avg_pool2d(big[..., :13, :13], 9, 1))
    with pytest.raises(ValueError, match="smaller than"):
        avg_reduce(torch.randn(1, 4, 10, 10), 9, 1, 5)
    with pytest.raises(ValueError, match="valid: avg, resize"):
        reduce_map(x, "max", {"size": 5})


def test_resize_reduction_aligns_corners_like_caffe_interp():
    x = torch.arange(16.0).view(1, 1, 4, 4)
    out = reduce_map(x, "resize", {"size": 2, "align_corners": True})
    assert out.flatten().tolist() == [0.0, 3.0, 12.0, 15.0]


# ----------------------------------------------------------------------------- encoder loading
def test_lightning_checkpoint_and_exported_encoder_load_the_same_weights(tmp_path):
    net = AlexNetCC(out_channels=7, in_channels=1, fc_width=16).eval()
    state = {f"net.{k}": v for k, v in net.state_dict().items()}
    meta = {"gamut_source": "srgb", "loss": "full", "config": {"color": {"k": 5}}}
    torch.save({"state_dict": state, "suite": {"method": "colorization"}, "colorization": meta}, tmp_path / "run.ckpt")
    loaded, info = load_encoder(tmp_path / "run.ckpt")
    assert info.method == "colorization" and info.in_channels == 1 and info.input == "L"
    assert info.extra == {"gamut": "srgb", "loss": "full", "k": 5}  # named in every result
    assert loaded.fc_width == 16 and loaded.out_channels == 7 and len(info.digest) == 16
    save_encoder(AlexNetCC(in_channels=3, last="pool5"), "context_encoder", tmp_path / "ce.pt")
    ce, ce_info = load_encoder(tmp_path / "ce.pt")
    assert ce_info.method == "context_encoder" and ce_info.input == "RGB" and ce_info.layers[-1] == "pool5"
    x = torch.randn(1, 1, 67, 67)
    assert torch.equal(loaded(x, layers=["conv5"])["conv5"], net(x, layers=["conv5"])["conv5"])


def test_bad_checkpoints_and_layers_are_named(tmp_path):
    (tmp_path / "junk.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a checkpoint this suite can read"):
        load_encoder(tmp_path / "junk.ckpt")
    torch.save({"state_dict": {}}, tmp_path / "other.ckpt")
    with pytest.raises(ValueError, match="not one of this suite's pretext tasks"):
        load_encoder(tmp_path / "other.ckpt")
    with pytest.raises(FileNotFoundError):
        load_encoder(tmp_path / "missing.ckpt")
    with pytest.raises(ValueError, match="exactly one of ckpt"):
        load_encoder()
    with pytest.raises(ValueError, match="not an initialisation; valid: gaussian"):
        load_encoder(init="uniform")
    with pytest.raises(ValueError, match="'conv9' is not a probe layer; valid: conv1, conv2"):
        parse_layers("conv9")
    assert parse_layers("all") == ("conv1", "conv2", "conv3", "conv4", "conv5", "pool5")
    shallow = AlexNetCC(last="conv3")
    with pytest.raises(ValueError, match="has no layer 'conv5'"):
        check_layers(["conv5"], tuple(shallow.blocks._modules))


def test_frozen_encoder_stays_in_eval_without_grads_and_reads_its_input_from_the_weights():
    enc = FrozenEncoder(AlexNetCC(in_channels=3, fc_width=8), ["conv1", "conv2"])
    enc.train()
    assert not any(m.training for m in enc.net.modules())
    assert all(not p.requires_grad for p in enc.parameters())
    assert list(enc.net.blocks._modules) == ["conv1", "pool1", "conv2"]  # nothing deeper is kept
    out = enc(torch.randint(0, 256, (2, 3, 67, 67), dtype=torch.uint8))
    assert set(out) == {"conv1", "conv2"} and out["conv1"].shape[1] == 96


# ----------------------------------------------------------------------------- labelled folders
def write_folder(root: Path, classes: dict[str, int], n: int, size: int = 40, seed: int = 0, labels=None) -> None:
    """Images whose brightness is set by their class (``classes``: name -> level 0..3); ``labels``:
    optional per-image class names overriding which folder each image goes to (shuffled labels)."""
    g = torch.Generator().manual_seed(seed)
    names = list(classes)
    k = 0
    for name, level in classes.items():
        for i in range(n):
            img = (torch.rand(3, size, size, generator=g) * 50 + level * 65).to(torch.uint8)
            folder = root / (labels[k] if labels else name)
            folder.mkdir(parents=True, exist_ok=True)
            write_png(img, str(folder / f"{name}_{i}.png"))
            k += 1
    for name in names:
        (root / name).mkdir(parents=True, exist_ok=True)


def test_labelled_folders_check_their_layout(tmp_path):
    write_folder(tmp_path / "d" / "train", {"a": 0, "b": 1}, 2)
    write_folder(tmp_path / "d" / "val", {"a": 0, "c": 1}, 1)
    classes, files, labels = class_folders(tmp_path / "d" / "train")
    assert classes == ["a", "b"] and labels == [0, 0, 1, 1] and len(files) == 4
    data = LabelledFolderData("t", root=str(tmp_path / "d"), crop=32, resize=40, batch_size=2, num_workers=0)
    with pytest.raises(ValueError, match=r"only in train \['b'\], only in val \['c'\]"):
        data.setup()
    with pytest.raises(FileNotFoundError, match="has no train/ folder"):
        LabelledFolderData("t", root=str(tmp_path))
    (tmp_path / "flat").mkdir()
    write_png(torch.zeros(3, 8, 8, dtype=torch.uint8), str(tmp_path / "flat" / "x.png"))
    with pytest.raises(FileNotFoundError, match="no class folders"):
        class_folders(tmp_path / "flat")


# ----------------------------------------------------------------------------- probe training
def probe_cfg(tmp_path: Path, data_root: Path, *overrides: str):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose(
            "linear_probe",
            overrides=[
                "init=gaussian", "layer=conv1", "schedule=short", f"data.root={data_root}", "data.num_workers=0",
                "schedule.batch_size=16", "schedule.max_steps=40", "schedule.lr_step=1000", "schedule.val_every=40",
                "schedule.ckpt_every=20", "schedule.lr=0.05", "logger=csv", "trainer.accelerator=cpu",
                "trainer.devices=1", "trainer.log_every_n_steps=5", f"run_dir={tmp_path / 'run'}",
                f"results={tmp_path / 'results.jsonl'}", *overrides,
            ],
        )  # fmt: skip


LEVELS = {"c0": 0, "c1": 1, "c2": 2, "c3": 3}


def test_probe_separates_separable_classes_and_leaves_the_encoder_untouched(tmp_path, monkeypatch):
    from downstream import linear_probe, probe_module

    write_folder(tmp_path / "d" / "train", LEVELS, 16, seed=1)
    write_folder(tmp_path / "d" / "val", LEVELS, 8, seed=2)
    seen = {}
    original = probe_module.LinearProbeModule.__init__

    def spy(self, encoder, *a, **kw):
        seen["before"] = {k: v.clone() for k, v in encoder.state_dict().items()}
        seen["encoder"] = encoder
        original(self, encoder, *a, **kw)

    monkeypatch.setattr(probe_module.LinearProbeModule, "__init__", spy)
    result = linear_probe.probe(probe_cfg(tmp_path, tmp_path / "d"))
    assert result.complete and result.scores["conv1"]["top1"] >= 90.0
    after = seen["encoder"].state_dict()
    assert seen["before"].keys() == after.keys() and any("running_var" in k for k in after)
    assert all(torch.equal(seen["before"][k], after[k]) for k in after)  # weights and BN statistics
    records = [json.loads(x) for x in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert {(r["layer"], r["metric"]) for r in records} == {("conv1", "top1"), ("conv1", "top5")}
    logged = (tmp_path / "run" / "csv" / "version_0")  # the loggers get the final scores and the config
    assert "final/conv1/top1" in (logged / "metrics.csv").read_text()
    assert "schedule:" in (logged / "hparams.yaml").read_text()
    assert records[0]["options"]["pool"] == "resize" and records[0]["method"] == "gaussian"


def test_probe_on_shuffled_labels_stays_at_chance(tmp_path):
    from downstream import linear_probe

    g = torch.Generator().manual_seed(3)
    for split, n in (("train", 16), ("val", 8)):
        names = [list(LEVELS)[i] for i in torch.randint(0, 4, (4 * n,), generator=g).tolist()]
        write_folder(tmp_path / "d" / split, LEVELS, n, seed=len(split), labels=names)
    result = linear_probe.probe(probe_cfg(tmp_path, tmp_path / "d"))
    assert result.scores["conv1"]["top1"] <= 50.0  # chance is 25%


def test_probe_refuses_a_layer_the_checkpoint_lacks(tmp_path):
    from downstream import linear_probe

    save_encoder(AlexNetCC(last="conv3"), "colorization", tmp_path / "shallow.pt")
    write_folder(tmp_path / "d" / "train", {"a": 0}, 1)
    write_folder(tmp_path / "d" / "val", {"a": 0}, 1)
    cfg = probe_cfg(tmp_path, tmp_path / "d", "init=null", f"ckpt={tmp_path / 'shallow.pt'}", "layer=conv4")
    with pytest.raises(ValueError, match="has no layer 'conv4'"):
        linear_probe.probe(cfg)


def test_a_stopped_probe_resumes_from_its_last_checkpoint(tmp_path):
    from downstream import linear_probe

    write_folder(tmp_path / "d" / "train", LEVELS, 4, seed=1)
    write_folder(tmp_path / "d" / "val", LEVELS, 2, seed=2)
    first = linear_probe.probe(probe_cfg(tmp_path, tmp_path / "d", "schedule.max_steps=4", "schedule.ckpt_every=2"))
    assert first.complete
    with pytest.raises(FileExistsError, match="pass resume=true"):
        linear_probe.probe(probe_cfg(tmp_path, tmp_path / "d", "schedule.max_steps=6"))
    again = linear_probe.probe(probe_cfg(tmp_path, tmp_path / "d", "schedule.max_steps=6", "resume=true"))
    assert again.complete and again.records[0].options["steps"] == 6
