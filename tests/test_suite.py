"""The benchmark suite on generated data: end to end, then a second invocation that runs nothing."""

import json

import pytest
import torch
from omegaconf import OmegaConf

from benchmarks.suite import Suite, check_suite
from tests.test_linear_probe import LEVELS, write_folder

TINY_PRETEXT = [
    "model=alexnet_small", "model.net.fc_width=16", "model.crop=64", "model.batch_size=4", "model.max_steps=2",
    "model.lr_milestones=[]", "model.lr_factors=[]", "data.num_workers=0", "data.resize=72",
    "trainer.accelerator=cpu", "trainer.devices=1", "trainer.val_check_interval=2", "trainer.ckpt_every_n_steps=2",
    "trainer.limit_val_batches=1", "color.prior_images=4", "samples=false", "logger=csv",
]  # fmt: skip


def tiny_suite(tmp_path, data):
    probe = ["layer=[conv1,conv2]", "schedule=short", "schedule.max_steps=2", "schedule.batch_size=8",
             "schedule.val_every=2", "schedule.ckpt_every=2", "data.num_workers=0", "logger=csv",
             "trainer.accelerator=cpu", "trainer.devices=1"]  # fmt: skip
    return OmegaConf.create({
        "root": str(tmp_path / "suite"),
        "dry_run": False,
        "keep_features": False,
        "suite": {
            "name": "tiny",
            "methods": {
                "colorization": {"pretext": [*TINY_PRETEXT, "data=folder", f"data.root={data / 'train'}",
                                             f"data.val_root={data / 'val'}"]},
                "gaussian": {"init": "gaussian"},
            },
            "evaluations": {
                "linear_probe": {"kind": "linear_probe", "overrides": [*probe, f"data.root={data}"]},
                "colorization_auc": {"kind": "colorization_auc",
                                     "overrides": [f"data.root={data / 'val'}", "net_size=64"]},
            },
        },
    })  # fmt: skip


def test_a_tiny_suite_runs_end_to_end_and_a_second_invocation_runs_nothing(tmp_path):
    write_folder(tmp_path / "d" / "train", LEVELS, 3, seed=1)
    write_folder(tmp_path / "d" / "val", LEVELS, 2, seed=2)
    cfg = tiny_suite(tmp_path, tmp_path / "d")
    first = Suite(cfg).run()
    assert first["stopped"] is None
    assert first["ran"] == ["pretext-colorization", "linear_probe-colorization", "colorization_auc-colorization",
                            "linear_probe-gaussian"]  # fmt: skip
    store = [json.loads(x) for x in (tmp_path / "suite" / "results.jsonl").read_text().splitlines()]
    assert {(r["method"], r["evaluation"]) for r in store} == {
        ("colorization", "linear_probe"),
        ("colorization", "colorization_auc"),
        ("gaussian", "linear_probe"),
    }
    assert all(r["suite_job"] for r in store)
    second = Suite(cfg).run()
    assert second["ran"] == [] and len(second["skipped"]) == 3
    dry = Suite(OmegaConf.merge(cfg, {"dry_run": True})).run()
    assert dry["ran"] == []
    cfg.suite.evaluations.linear_probe.overrides.append("pool=avg")  # a changed spec runs again
    third = Suite(cfg).run()
    assert third["ran"] == ["linear_probe-colorization", "linear_probe-gaussian"]
    done = json.loads((tmp_path / "suite" / "jobs" / "pretext-colorization" / "done.json").read_text())
    ckpt = torch.load(done["checkpoint"], weights_only=True)  # the method's checkpoint changes
    ckpt["state_dict"]["net.blocks.conv1.0.bias"] += 0.5
    torch.save(ckpt, done["checkpoint"])
    fourth = Suite(cfg).run()
    assert fourth["ran"] == ["linear_probe-colorization", "colorization_auc-colorization"]
    store = [json.loads(x) for x in (tmp_path / "suite" / "results.jsonl").read_text().splitlines()]
    current = [r for r in store if r["method"] == "colorization" and r["options"].get("pool") != "resize"]
    assert len({r["checkpoint_digest"] for r in current}) == 1  # replaced, not kept beside the new ones
    assert len(current) == 2 * 2 + 2  # top-1 and top-5 of conv1 and conv2, and the two AuCs


def test_bad_suites_are_named():
    base = {"name": "x", "methods": {"a": {"init": "gaussian"}}, "evaluations": {}}
    with pytest.raises(ValueError, match="valid: linear_probe, linear_probe_cached, svm_probe"):
        check_suite(OmegaConf.create(base | {"evaluations": {"e": {"kind": "probe"}}}))
    with pytest.raises(ValueError, match="exactly one of pretext"):
        check_suite(OmegaConf.create(base | {"methods": {"a": {"init": "gaussian", "ckpt": "x"}}}))
    with pytest.raises(ValueError, match=r"only=\['b'\] names no method"):
        check_suite(OmegaConf.create(base | {"evaluations": {"e": {"kind": "pascal_cls", "only": ["b"]}}}))
    with pytest.raises(ValueError, match="of='b' names no method with a pretext run"):
        check_suite(OmegaConf.create(base | {"methods": {"a": {"of": "b", "step": 2}}}))
    with pytest.raises(ValueError, match="of and step go together"):
        check_suite(OmegaConf.create(base | {"methods": {"a": {"pretext": []}, "a2": {"of": "a"}}}))


def test_a_method_can_be_another_methods_run_at_an_earlier_step(tmp_path):
    write_folder(tmp_path / "d" / "train", LEVELS, 3, seed=1)
    write_folder(tmp_path / "d" / "val", LEVELS, 2, seed=2)
    cfg = tiny_suite(tmp_path, tmp_path / "d")
    color = cfg.suite.methods.colorization
    color.pretext += ["model.max_steps=4", "callbacks.checkpoint.save_top_k=-1"]  # step files at 2 and 4, kept
    cfg.suite.methods = {"colorization": color, "colorization@2": {"of": "colorization", "step": 2},
                         "colorization@3": {"of": "colorization", "step": 3}}  # fmt: skip
    del cfg.suite.evaluations["colorization_auc"]
    with pytest.raises(FileNotFoundError, match=r"step0000003.ckpt does not exist \(kept: step0000002.ckpt, step00"):
        Suite(cfg).run()
    del cfg.suite.methods["colorization@3"]
    Suite(cfg).run()
    store = [json.loads(x) for x in (tmp_path / "suite" / "results.jsonl").read_text().splitlines()]
    steps = {r["method"]: (r["pretext"]["step"], r["pretext"]["crops_seen"]) for r in store}
    assert steps == {"colorization": (4, 16), "colorization@2": (2, 8)}  # batch 4, one device
    assert len({r["checkpoint_digest"] for r in store}) == 2


def cached_probe_suite(tmp_path, keep: bool):
    probe = ["layer=[conv1]", f"data.root={tmp_path / 'd'}", "data.name=t", "num_workers=0", "probe.epochs=2",
             "probe.batch_size=16", "probe.lrs=[0.01]", "probe.held_out=0.25"]  # fmt: skip
    return OmegaConf.create({"root": str(tmp_path / "suite"), "dry_run": False, "keep_features": keep, "suite": {
        "name": "cached", "methods": {"gaussian": {"init": "gaussian"}, "gaussian_rgb": {"init": "gaussian",
                                                                                         "init_channels": 3}},
        "evaluations": {"seed0": {"kind": "linear_probe_cached", "overrides": [*probe, "seeds=[0]"]},
                        "seed1": {"kind": "linear_probe_cached", "overrides": [*probe, "seeds=[1]"]}}}})  # fmt: skip


def test_a_methods_feature_cache_is_shared_by_its_jobs_then_deleted(tmp_path, monkeypatch):
    """Each checkpoint's cached features took ~5 GB on Imagenette and the long suite filled the disk:
    a method's jobs share its cache, which goes once they are done; a suite stopped in a method keeps
    that method's cache, and the next invocation reads it back."""
    from downstream import features

    write_folder(tmp_path / "d" / "train", LEVELS, 4, seed=1)
    write_folder(tmp_path / "d" / "val", LEVELS, 2, seed=2)
    calls = []
    real = features.extract_features
    monkeypatch.setattr(features, "extract_features", lambda *a, **k: calls.append(1) or real(*a, **k))

    def cached(root):  # the methods whose features are cached now
        return sorted(p.name for p in (root / "suite" / "features").glob("*") if any(p.rglob("*.npy")))

    suite = Suite(cached_probe_suite(tmp_path, keep=False))
    seen, evaluate = [], suite.evaluate
    monkeypatch.setattr(suite, "evaluate", lambda job: seen.append((job.id, cached(tmp_path))) or evaluate(job))
    assert suite.run()["stopped"] is None
    assert len(calls) == 4  # train and val once per method: a method's second job reads its cache
    assert seen == [("seed0-gaussian", []), ("seed1-gaussian", ["gaussian"]), ("seed0-gaussian_rgb", []),
                    ("seed1-gaussian_rgb", ["gaussian_rgb"])]  # fmt: skip
    assert cached(tmp_path) == []
    root = tmp_path / "k"
    root.mkdir()
    (root / "d").symlink_to(tmp_path / "d")
    Suite(cached_probe_suite(root, keep=True)).run()
    assert cached(root) == ["gaussian", "gaussian_rgb"]

    root = tmp_path / "s"  # stopped in the second method, then run again
    root.mkdir()
    (root / "d").symlink_to(tmp_path / "d")
    stopping = Suite(cached_probe_suite(root, keep=False))
    evaluate = stopping.evaluate

    def stop_after_the_third_job(job):
        evaluate(job)
        if job.id == "seed0-gaussian_rgb":
            stopping.signalled = "SIGTERM"

    monkeypatch.setattr(stopping, "evaluate", stop_after_the_third_job)
    assert "SIGTERM" in stopping.run()["stopped"]
    assert cached(root) == ["gaussian_rgb"]
    calls.clear()
    again = Suite(cached_probe_suite(root, keep=False)).run()
    assert again["ran"] == ["seed1-gaussian_rgb"] and calls == []  # its features read back, not made again
    assert cached(root) == []
