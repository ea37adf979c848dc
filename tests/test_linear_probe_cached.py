"""Linear probes on cached features: the heads' maths against torch's own modules, the held-out
split, and the entry point on generated images (seeds as records, features read back from the cache)."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir

from downstream import features
from downstream.linear_heads import channel_statistics, head_logits, held_out_split, step_lr, top_k, train_heads
from tests.conftest import ROOT
from tests.test_linear_probe import LEVELS, write_folder


def test_channel_statistics_are_batchnorm2d_over_the_whole_set():
    maps = torch.randn(50, 4, 3, 3) * torch.tensor([1.0, 5.0, 0.1, 2.0])[None, :, None, None] + 3
    mean, inv = channel_statistics(maps.flatten(1), channels=4)
    ours = ((maps.flatten(1) - mean) * inv).reshape(maps.shape)
    bn = F.batch_norm(maps, None, None, training=True, eps=1e-5)  # BatchNorm2d(affine=False) on the whole set
    assert torch.allclose(ours, bn, atol=1e-5)


def test_heads_train_as_torch_sgd_does_one_head_per_rate():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(37, 12, generator=g), torch.randint(0, 3, (37,), generator=g)
    lrs, kw = [0.05, 0.2], dict(epochs=3, batch_size=8, momentum=0.9, weight_decay=5e-4, lr_steps=[0.5], lr_gamma=0.1)
    w, b = train_heads(x, y, 3, lrs, seed=4, **kw)
    for h, lr in enumerate(lrs):  # the same head with nn.Linear + torch.optim.SGD + the same batches
        ref = torch.Generator().manual_seed(4)
        w0 = (torch.rand(len(lrs), 3, 12, generator=ref) * 2 - 1) / 12**0.5
        b0 = (torch.rand(len(lrs), 3, generator=ref) * 2 - 1) / 12**0.5
        lin = torch.nn.Linear(12, 3)
        with torch.no_grad():
            lin.weight.copy_(w0[h])
            lin.bias.copy_(b0[h])
        opt = torch.optim.SGD(lin.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
        total, step = 3 * 5, 0
        for _ in range(3):
            order = torch.randperm(37, generator=ref)
            for i in range(0, 37, 8):
                for group in opt.param_groups:
                    group["lr"] = float(step_lr(torch.tensor(lr), step, total, [0.5], 0.1))
                idx = order[i : i + 8]
                opt.zero_grad()
                F.cross_entropy(lin(x[idx]), y[idx]).backward()
                opt.step()
                step += 1
        assert torch.allclose(w[h], lin.weight, atol=1e-5) and torch.allclose(b[h], lin.bias, atol=1e-5)
    assert not torch.allclose(w[0], w[1])  # the rates differ, so do the heads


def test_step_lr_drops_at_each_fraction():
    base = torch.tensor([1.0])
    rates = [float(step_lr(base, s, 10, [0.3, 0.6], 0.1)[0]) for s in (0, 2, 3, 5, 6, 9)]
    assert rates == pytest.approx([1.0, 1.0, 0.1, 0.1, 0.01, 0.01], rel=1e-6)


def test_held_out_split_takes_a_fraction_of_every_class_and_never_a_whole_one():
    labels = np.array([0] * 20 + [1] * 10 + [2] * 1)
    held = held_out_split(labels, 0.1, seed=3)
    assert held[labels == 0].sum() == 2 and held[labels == 1].sum() == 1 and held[labels == 2].sum() == 0
    assert not np.array_equal(held, held_out_split(labels, 0.1, seed=4))  # the seed draws the part


def test_top_k_and_logits():
    z = torch.tensor([[0.1, 0.9, 0.0], [0.8, 0.15, 0.05]])
    assert top_k(z, torch.tensor([1, 1]), 1) == 50.0 and top_k(z, torch.tensor([1, 1]), 2) == 100.0
    x, w, b = torch.randn(4, 6), torch.randn(2, 3, 6), torch.randn(2, 3)
    assert torch.allclose(head_logits(x, w, b)[1], x @ w[1].T + b[1], atol=1e-6)


def test_probe_on_cached_features_writes_a_record_per_seed_and_reads_its_cache_back(tmp_path, monkeypatch):
    from downstream import linear_probe_cached as lpc

    write_folder(tmp_path / "d" / "train", LEVELS, 10, seed=1)
    write_folder(tmp_path / "d" / "val", LEVELS, 4, seed=2)
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("linear_probe_cached", overrides=[
            "init=gaussian", "layer=[conv1,conv2]", f"data.root={tmp_path / 'd'}", "data.name=t", "num_workers=0",
            "seeds=[0,1]", "probe.epochs=20", "probe.batch_size=16", "probe.lrs=[0.01,0.1]",
            "probe.held_out=0.25", f"cache_dir={tmp_path / 'cache'}", f"results={tmp_path / 'r.jsonl'}",
        ])  # fmt: skip
    calls = []
    real = features.extract_features
    monkeypatch.setattr(features, "extract_features", lambda *a, **k: calls.append(1) or real(*a, **k))
    first = lpc.linear_probe_cached(cfg)
    assert len(calls) == 2  # train (with mirrors) and val
    assert all(m["top1"] >= 75 for per in first.scores.values() for m in per.values())  # brightness: separable
    recs = [json.loads(x) for x in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert {(r["layer"], r["metric"], r["options"]["seed"]) for r in recs} == {
        (layer, m, s) for layer in ("conv1", "conv2") for m in ("top1", "top5") for s in (0, 1)
    }
    assert all(r["options"]["schedule"] == "cached" and r["evaluation"] == "linear_probe" for r in recs)
    assert all(r["lr"] in (0.01, 0.1) and set(r["held_out_top1"]) == {"0.01", "0.1"} for r in recs)
    second = lpc.linear_probe_cached(cfg)
    assert len(calls) == 2  # read back from the cache
    assert second.scores == first.scores  # the same seeds give the same heads


def test_a_multi_label_set_is_refused_with_the_probe_to_use():
    from downstream import linear_probe_cached as lpc

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("linear_probe_cached", overrides=["init=gaussian", "data.kind=voc07"])
    with pytest.raises(ValueError, match="single-label.*svm_probe.py"):
        lpc.linear_probe_cached(cfg)


def test_features_are_not_cached_when_the_disk_lacks_room_and_the_probe_goes_on(tmp_path, monkeypatch, caplog):
    """A full disk stopped the long suite mid-write of a 700 MB cache file: the cache only saves time,
    so the probe scores the same without it and says why nothing was cached."""
    import shutil

    from downstream import linear_probe_cached as lpc

    write_folder(tmp_path / "d" / "train", LEVELS, 6, seed=1)
    write_folder(tmp_path / "d" / "val", LEVELS, 3, seed=2)
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("linear_probe_cached", overrides=[
            "init=gaussian", "layer=[conv1]", f"data.root={tmp_path / 'd'}", "data.name=t", "num_workers=0",
            "seeds=[0]", "probe.epochs=2", "probe.batch_size=16", "probe.lrs=[0.01]", "probe.held_out=0.25",
            f"cache_dir={tmp_path / 'cache'}", "results=null",
        ])  # fmt: skip
    full = shutil.disk_usage(tmp_path)._replace(free=features.CACHE_SPARE_BYTES)  # nothing beyond the spare
    monkeypatch.setattr(features.shutil, "disk_usage", lambda _p: full)
    with caplog.at_level("WARNING", logger="downstream.features"):
        outcome = lpc.linear_probe_cached(cfg)
    assert outcome.records and not list((tmp_path / "cache").rglob("*.npy"))
    assert sum("not cached" in r.getMessage() and "free" in r.getMessage() for r in caplog.records) == 2  # train, val
