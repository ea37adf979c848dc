"""Which checkpoint a run resumes from: the newest that loads, whatever was killed when."""

import logging

import pytest
import torch

from pretext.run import newest_checkpoint, resume_checkpoint


def ckpt(path, step: int, truncate: bool = False):
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"global_step": step, "state_dict": {"w": torch.full((1000,), float(step))}}, path)
    if truncate:
        path.write_bytes(path.read_bytes()[:300])
    return path


def test_the_later_of_last_and_the_highest_step_file_wins(tmp_path):
    d = tmp_path / "checkpoints"
    assert newest_checkpoint(d) is None
    ckpt(d / "step0000004.ckpt", 4)
    assert newest_checkpoint(d) == d / "step0000004.ckpt"  # killed before last.ckpt ever existed
    ckpt(d / "last.ckpt", 4)
    assert newest_checkpoint(d) == d / "last.ckpt"  # a tie: last.ckpt
    ckpt(d / "step0000008.ckpt", 8)
    assert newest_checkpoint(d) == d / "step0000008.ckpt"  # killed between the step file and last.ckpt
    ckpt(d / "last.ckpt", 9)  # a SIGTERM checkpoint after the step file
    assert newest_checkpoint(d) == d / "last.ckpt"
    ckpt(d / "step0000010.ckpt", 10)
    assert newest_checkpoint(d) == d / "step0000010.ckpt"  # 10 sorts after 8 (not as text)


def test_a_truncated_checkpoint_is_skipped_with_a_warning_naming_it(tmp_path, caplog):
    d = tmp_path / "checkpoints"
    ckpt(d / "step0000004.ckpt", 4)
    ckpt(d / "step0000008.ckpt", 8, truncate=True)
    ckpt(d / "last.ckpt", 8, truncate=True)
    with caplog.at_level(logging.WARNING):
        assert newest_checkpoint(d) == d / "step0000004.ckpt"
    assert "step0000008.ckpt: it does not load" in caplog.text and "last.ckpt: it does not load" in caplog.text


def test_resume_modes(tmp_path):
    run = tmp_path / "run"
    assert resume_checkpoint(run, "auto") is None  # a requeue before the first checkpoint starts afresh
    assert resume_checkpoint(run, False) is None
    with pytest.raises(FileNotFoundError, match="resume=true but .* holds no checkpoint: .* resume=auto"):
        resume_checkpoint(run, True)
    ckpt(run / "checkpoints" / "step0000002.ckpt", 2, truncate=True)
    with pytest.raises(FileNotFoundError, match="holds no checkpoint that loads"):
        resume_checkpoint(run, "true")
    assert resume_checkpoint(run, "auto") is None
    with pytest.raises(FileExistsError, match="pass resume=true"):
        resume_checkpoint(run, False)  # never over someone's files, even unloadable ones
    ckpt(run / "checkpoints" / "step0000003.ckpt", 3)
    assert resume_checkpoint(run, "auto") == resume_checkpoint(run, True) == run / "checkpoints" / "step0000003.ckpt"
    with pytest.raises(ValueError, match="resume='maybe' is not valid"):
        resume_checkpoint(run, "maybe")


def test_measuring_the_prior_leaves_the_global_rng_alone(tmp_path):
    """A restart that finds the prior a killed start saved must build the same initial net."""
    from omegaconf import OmegaConf

    from pretext.data import ColorizationData
    from pretext.module import load_gamut

    cfg = OmegaConf.create({"color": {"stats": None, "prior_images": 3, "gamut": "srgb", "sigma": 5.0},
                            "task": {"loss": "full"}})  # fmt: skip
    data = ColorizationData(name="sample", root=None, val_root=None, crop=32, batch_size=2, num_workers=0)
    torch.manual_seed(0)
    before = torch.random.get_rng_state()
    measured = load_gamut(cfg, tmp_path, data)
    assert torch.equal(torch.random.get_rng_state(), before)
    assert torch.equal(load_gamut(cfg, tmp_path, data).prior, measured.prior)  # read back from the run folder
