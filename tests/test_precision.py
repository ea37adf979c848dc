"""trainer.precision=auto: chosen from the hardware by a pure function, logged, recorded in checkpoints."""

import json
import logging
from pathlib import Path

import pytest
import torch

from pretext import run as run_mod
from pretext import train as train_mod
from pretext.color import annealed_mean, rgb_to_lab
from pretext.data import sample_photo
from pretext.run import choose_precision, read_cpu_flags, trainer_kwargs
from tests.conftest import ROOT
from tests.test_train import cfg_for


@pytest.mark.parametrize(
    "requested,accelerator,cuda_bf16,flags,expected,matmul",
    [
        ("auto", "gpu", True, set(), "bf16-mixed", "high"),
        ("auto", "cuda", True, set(), "bf16-mixed", "high"),
        ("auto", "gpu", False, set(), "32-true", "high"),
        ("auto", "cpu", False, {"avx2", "fma"}, "32-true", None),
        ("auto", "mps", False, set(), "32-true", None),
        ("16-mixed", "gpu", True, set(), "16-mixed", None),
        ("32-true", "cpu", False, {"amx_bf16"}, "32-true", None),
        ("bf16-mixed", "cpu", False, set(), "bf16-mixed", None),
    ],
)
def test_choose_precision(requested, accelerator, cuda_bf16, flags, expected, matmul):
    choice = choose_precision(requested, accelerator, cuda_bf16, flags)
    assert (choice.precision, choice.matmul) == (expected, matmul)
    assert choice.reason


@pytest.mark.parametrize("flag", ["amx_bf16", "avx512_bf16"])
@pytest.mark.parametrize("check_passed", [True, False])
def test_cpus_with_native_bf16_follow_the_check(monkeypatch, flag, check_passed):
    monkeypatch.setattr(run_mod, "CPU_BF16_MATCHES_FP32", check_passed)
    choice = choose_precision("auto", "cpu", False, {"avx2", flag})
    assert choice.precision == ("bf16-mixed" if check_passed else "32-true")
    assert flag in choice.reason and "precision_check_cpu.json" in choice.reason


def test_the_cpu_default_is_what_the_committed_check_found():
    result = json.loads((ROOT / "benchmarks" / "results" / "precision_check_cpu.json").read_text())
    assert result["bf16_matches_fp32"] == run_mod.CPU_BF16_MATCHES_FP32
    assert "command" in result and result["relative_difference"]


def test_trainer_kwargs_resolve_auto_after_mapping_gpus_and_log_why(caplog):
    cfg = cfg_for(Path("unused"), "trainer.gpus=8", "trainer.accelerator=auto").trainer
    with caplog.at_level(logging.INFO, logger="pretext.run"):
        gpu = trainer_kwargs(cfg, cuda_available=True, cuda_bf16_supported=True, cpu_flags=set())
    assert gpu["precision"] == "bf16-mixed" and gpu["accelerator"] == "gpu"
    assert any("precision bf16-mixed" in r.message and "GPU supports bf16" in r.message for r in caplog.records)
    with pytest.warns(UserWarning, match="no GPU"):
        cpu = trainer_kwargs(cfg, cuda_available=False, cuda_bf16_supported=False, cpu_flags={"sse4_2"})
    assert cpu["precision"] == "32-true"
    auto = cfg_for(Path("unused"), "trainer.accelerator=auto", "trainer.devices=auto").trainer
    no_bf16 = trainer_kwargs(auto, cuda_available=True, cuda_bf16_supported=False, cpu_flags=set())
    assert no_bf16["precision"] == "32-true"
    explicit = cfg_for(Path("unused"), "trainer.precision=16-mixed").trainer
    assert trainer_kwargs(explicit, cuda_available=True, cuda_bf16_supported=True)["precision"] == "16-mixed"


def test_the_checkpoint_records_the_precision_the_run_chose(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="pretext.run"):
        train_mod.train(cfg_for(tmp_path, "model.max_steps=2"))
    expected = choose_precision("auto", "cpu", False, read_cpu_flags()).precision
    ckpt = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["suite"]["precision"] == expected
    assert sum(f"precision {expected}:" in r.message for r in caplog.records) == 1


def test_the_colour_maths_stays_fp32_under_autocast():
    rgb = sample_photo("astronaut")[None, :, :128, :128]
    logits = torch.randn(1, 309, 8, 8)
    centers = torch.randn(309, 2) * 50
    with torch.autocast("cpu", dtype=torch.bfloat16):
        lab = rgb_to_lab(rgb)
        ab = annealed_mean(logits, centers)
        ab_bf16_in = annealed_mean(logits.bfloat16(), centers)
    assert torch.equal(lab, rgb_to_lab(rgb))
    assert ab.dtype == torch.float32 and torch.allclose(ab, annealed_mean(logits, centers), atol=1e-5)
    assert ab_bf16_in.dtype == torch.float32
