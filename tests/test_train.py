"""The pretext end to end on CPU with tiny inputs, composed from the real configs."""

import csv
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.errors import MissingConfigException
from hydra.utils import instantiate
from PIL import Image

from pretext import run as run_mod
from pretext import train as train_mod
from pretext.color import Gamut
from pretext.data import SAMPLE_TRAIN, sample_photo
from pretext.module import ColorizationModule, init_weights_from
from pretext.run import StopOnSignal
from tests.conftest import ROOT

TINY = [
    "model=alexnet_small",
    "model.net.fc_width=32",
    "model.crop=64",
    "model.batch_size=4",
    "model.max_steps=4",
    "model.lr_milestones=[]",
    "model.lr_factors=[]",
    "model.optimizer.lr=1e-3",
    "logger=csv",
    "data.num_workers=0",
    "data.repeats=2",
    "data.resize=80",
    "trainer.accelerator=cpu",
    "trainer.devices=1",
    "trainer.val_check_interval=2",
    "trainer.ckpt_every_n_steps=2",
    "trainer.log_every_n_steps=1",
    "trainer.limit_val_batches=1",
    "color.prior_images=7",
    "samples=false",
]


def cfg_for(run_dir: Path, *overrides: str):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose("pretext", overrides=[*TINY, f"run_dir={run_dir}", *overrides])


def losses_by_step(run_dir: Path, version: int) -> dict[int, float]:
    rows = csv.DictReader(open(run_dir / "csv" / f"version_{version}" / "metrics.csv"))
    return {int(r["step"]): float(r["train/loss"]) for r in rows if r.get("train/loss")}


# ------------------------------------------------------------------------------ unit-level
def test_gpus_maps_like_old_lightning():
    cfg = cfg_for(Path("unused"), "trainer.gpus=8").trainer
    kw = run_mod.trainer_kwargs(cfg, cuda_available=True)
    assert (kw["accelerator"], kw["devices"], kw["strategy"]) == ("gpu", 8, "ddp")
    assert "gpus" not in kw and "ckpt_every_n_steps" not in kw
    one = run_mod.trainer_kwargs(cfg_for(Path("u"), "trainer.gpus=1").trainer, cuda_available=True)
    assert (one["accelerator"], one["devices"], one["strategy"]) == ("gpu", 1, "auto")
    with pytest.warns(UserWarning, match="no GPU is available"):
        cpu = run_mod.trainer_kwargs(cfg, cuda_available=False)
    assert (cpu["accelerator"], cpu["devices"]) == ("cpu", 1)
    with pytest.raises(ValueError, match="number of GPUs"):
        run_mod.trainer_kwargs(cfg_for(Path("u"), "trainer.gpus=-1").trainer, cuda_available=True)


def _module(loss: str) -> ColorizationModule:
    cfg = cfg_for(Path("unused"), f"task.loss={loss}")
    torch.manual_seed(0)
    gamut = Gamut.from_srgb()
    gamut = Gamut(gamut.centers, torch.full((gamut.Q,), 1 / gamut.Q), "srgb")
    net = instantiate(cfg.model.net, out_channels=2 if loss == "l2" else gamut.Q)
    opt = instantiate(cfg.model.optimizer)
    return ColorizationModule(name="colorization", net=net, gamut=gamut, optimizer=opt, loss=loss)


def _fixed_batch(n=4, size=64) -> torch.Tensor:
    return torch.stack([sample_photo(name)[:, :size, :size] for name in SAMPLE_TRAIN[:n]])


@pytest.mark.parametrize("loss", ["full", "class", "l2"])
def test_a_few_steps_decrease_each_loss_on_a_fixed_batch(loss):
    module = _module(loss)
    batch = _fixed_batch()
    opt = torch.optim.Adam(module.net.parameters(), lr=1e-3)
    values = []
    for _ in range(12):
        losses = module._forward(batch)[-1]
        opt.zero_grad()
        losses["loss_weighted"].backward()
        opt.step()
        values.append(losses["loss_weighted"].item())
    assert values[-1] < 0.9 * values[0], values


def test_grey_images_get_zero_weight():
    module = _module("full")
    rgb = _fixed_batch()
    grey = rgb.float().mean(1, keepdim=True).round().to(torch.uint8).expand(-1, 3, -1, -1)
    mixed = torch.cat([grey[:2], rgb[2:]])
    losses = module._forward(grey)[-1]
    assert losses["loss"] > 0 and losses["loss_weighted"] == 0 and losses["grey_fraction"] == 1
    per_image = module._forward(mixed)[-1]
    assert per_image["grey_fraction"] == 0.5 and per_image["loss_weighted"] > 0


# ------------------------------------------------------------------------------ runs
def test_a_killed_run_resumes_at_the_same_step_with_the_same_next_losses(tmp_path):
    full = tmp_path / "full"
    train_mod.train(cfg_for(full, "model.max_steps=6", "trainer.ckpt_every_n_steps=3"))
    reference = losses_by_step(full, 0)
    assert sorted(reference) == list(range(6))

    part = tmp_path / "part"
    first = train_mod.train(cfg_for(part, "model.max_steps=3", "trainer.ckpt_every_n_steps=3"))
    assert first["global_step"] == 3  # stopped mid-epoch (4 batches an epoch)
    ckpt = torch.load(part / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["global_step"] == 3
    assert ckpt["colorization"]["centers"].shape == (309, 2) and ckpt["colorization"]["prior"] is not None
    assert ckpt["colorization"]["config"]["model"]["name"] == "alexnet_small"

    resumed = train_mod.train(cfg_for(part, "model.max_steps=6", "trainer.ckpt_every_n_steps=3", "resume=true"))
    assert resumed["global_step"] == 6
    after = losses_by_step(part, 1)
    assert min(after) == 3
    for step in (3, 4, 5):
        assert after[step] == pytest.approx(reference[step], rel=1e-5, abs=1e-6), (step, after, reference)


def test_a_second_run_in_the_same_folder_needs_resume(tmp_path):
    train_mod.train(cfg_for(tmp_path, "model.max_steps=1"))
    with pytest.raises(FileExistsError, match="resume=true"):
        train_mod.train(cfg_for(tmp_path, "model.max_steps=1"))
    with pytest.raises(FileNotFoundError, match="holds no checkpoint"):
        train_mod.train(cfg_for(tmp_path / "other", "resume=true"))


class _SigtermAtStep2(StopOnSignal):
    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == 2 and self.received is None:
            os.kill(os.getpid(), signal.SIGTERM)
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)


def test_sigterm_saves_a_checkpoint_and_stops(tmp_path, monkeypatch):
    result = train_mod.train(cfg_for(tmp_path, "model.max_steps=50", "trainer.ckpt_every_n_steps=100",
                                     "callbacks.stop_on_signal._target_=tests.test_train._SigtermAtStep2"))
    assert result["global_step"] == 2 and result["stopped_by"] == "SIGTERM"
    assert torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 2
    assert signal.getsignal(signal.SIGTERM) is not _SigtermAtStep2._handler


def _jpeg_folder(root: Path, n: int, truncated: int = 0) -> Path:
    root.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        img = (rng.random((8, 8, 3)) * 255).astype(np.uint8).repeat(12, 0).repeat(12, 1)
        Image.fromarray(img).save(root / f"{i:03d}.jpg", quality=90)
    for i in range(truncated):
        data = (root / f"{i:03d}.jpg").read_bytes()
        (root / f"{i:03d}.jpg").write_bytes(data[: len(data) // 2])
    return root


def test_truncated_jpegs_are_skipped_and_counted_once_per_file_and_named(tmp_path, caplog):
    train_root = _jpeg_folder(tmp_path / "train", 20, truncated=1)  # 5% truncated
    val_root = _jpeg_folder(tmp_path / "val", 3, truncated=1)
    cfg = cfg_for(tmp_path / "run", "data=folder", f"data.root={train_root}", f"data.val_root={val_root}",
                  "data.repeats=1", "model.max_steps=-1", "trainer.max_epochs=2", "color.prior_images=100")
    with caplog.at_level(logging.INFO):
        result = train_mod.train(cfg)
    assert result["global_step"] == 10  # 19 readable images in batches of 4, two epochs
    bad = sorted([str(train_root / "000.jpg"), str(val_root / "000.jpg")])
    assert result["skipped_images"] == 2 and sorted(result["skipped_files"]) == bad  # each file once, two epochs
    warned = [r.getMessage() for r in caplog.records if r.getMessage().startswith("unreadable image skipped")]
    assert sorted(w.split(": ", 1)[1] for w in warned) == bad  # named once each, as met
    assert any(r.getMessage().startswith("skipped 2 unreadable images: ") for r in caplog.records)  # the summary


def test_bad_overrides_and_data_fail_at_once_with_the_valid_choices(tmp_path):
    with pytest.raises(MissingConfigException, match="alexnet_small"):
        cfg_for(tmp_path, "model=alexnett")
    with pytest.raises(MissingConfigException, match="colorization"):
        cfg_for(tmp_path, "task=colourization")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="no images under"):
        train_mod.train(cfg_for(tmp_path / "r1", "data=folder", f"data.root={empty}"))
    with pytest.raises(FileNotFoundError, match="not a folder"):
        train_mod.train(cfg_for(tmp_path / "r2", "data=folder", f"data.root={tmp_path / 'nowhere'}"))
    with pytest.raises(ValueError, match="number of GPUs"):
        train_mod.train(cfg_for(tmp_path / "r3", "trainer.gpus=-1"))


def test_cli_rejects_an_unknown_key():
    out = subprocess.run(
        [sys.executable, str(ROOT / "pretext" / "train.py"), "trainer.gpuss=2"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert out.returncode != 0 and "gpuss" in out.stderr


@pytest.mark.slow
def test_two_process_ddp_spawn_run_completes_on_cpu(tmp_path):
    run_dir = tmp_path / "ddp"
    overrides = [o for o in TINY if not o.startswith("trainer.accelerator") and not o.startswith("trainer.devices")]
    out = subprocess.run(
        [sys.executable, str(ROOT / "pretext" / "train.py"), *overrides, "trainer=ddp_sim", f"run_dir={run_dir}"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
        env={**os.environ, "WANDB_MODE": "offline"},
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 4


@pytest.mark.slow
def test_under_ddp_every_ranks_unreadable_files_reach_the_checkpoint(tmp_path):
    """Each rank reads its own share of the images: the checkpoint (written by rank 0) once named only
    rank 0's unreadable files."""
    train_root = _jpeg_folder(tmp_path / "train", 16, truncated=6)  # one epoch: 8 images a rank
    val_root = _jpeg_folder(tmp_path / "val", 4)
    run_dir = tmp_path / "ddp"
    overrides = [o for o in TINY if not o.startswith(("trainer.accelerator", "trainer.devices", "data.repeats"))]
    out = subprocess.run(
        [sys.executable, str(ROOT / "pretext" / "train.py"), *overrides, "trainer=ddp_sim", f"run_dir={run_dir}",
         "data=folder", f"data.root={train_root}", f"data.val_root={val_root}", "data.repeats=1",
         "model.max_steps=-1", "trainer.max_epochs=1", "color.prior_images=16"],
        capture_output=True, text=True, cwd=ROOT, timeout=600, env={**os.environ, "WANDB_MODE": "offline"},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert sorted(ckpt["callbacks"]["SkippedImages"]["files"]) == [str(train_root / f"{i:03d}.jpg") for i in range(6)]


def test_l2_fine_tune_starts_from_a_full_models_weights_but_its_classifier(tmp_path):
    full = train_mod.train(cfg_for(tmp_path / "full", "model.max_steps=1"))
    cfg = cfg_for(tmp_path / "l2", "task.loss=l2")
    net = instantiate(cfg.model.net, out_channels=2)
    before_fc8 = net.blocks.fc8.weight.clone()
    init_weights_from(net, full["last_checkpoint"])
    state = torch.load(full["last_checkpoint"], weights_only=True)["state_dict"]
    assert torch.equal(net.blocks.conv1[0].weight, state["net.blocks.conv1.0.weight"])
    assert torch.equal(net.blocks.fc7[0].weight, state["net.blocks.fc7.0.weight"])
    assert torch.equal(net.blocks.fc8.weight, before_fc8)  # 2 outputs, not Q: kept at its init


def test_checkpoints_record_their_step_and_the_crops_seen(tmp_path):
    from pretext.encoders import load_encoder

    train_mod.train(cfg_for(tmp_path, "model.max_steps=3", "model.batch_size=4"))  # checkpoints every 2 steps
    ckpt = torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["global_step"] == 3  # the final step is saved although off the checkpoint interval
    assert ckpt["suite"]["step"] == 3 and ckpt["suite"]["crops_seen"] == 3 * 4  # one device
    _, info = load_encoder(str(tmp_path / "checkpoints" / "last.ckpt"), None, 1, 0)
    assert info.extra["crops_seen"] == 12 and info.extra["step"] == 3  # and so every record of its evaluations
