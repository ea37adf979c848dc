import subprocess
import sys

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from PIL import Image

from pretext.color import Gamut
from pretext.stats import compute_stats
from tests.conftest import ROOT


@pytest.fixture
def image_folder(tmp_path):
    root = tmp_path / "imgs"
    (root / "class_a").mkdir(parents=True)
    (root / "class_b" / "deeper").mkdir(parents=True)
    red = np.zeros((8, 8, 3), np.uint8)
    red[..., 0] = 255
    Image.fromarray(red).save(root / "class_a" / "red.png")
    Image.fromarray(np.full((8, 8, 3), 128, np.uint8)).save(root / "class_b" / "deeper" / "grey.jpg", quality=100)
    (root / "class_b" / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    return root


def _cfg(*overrides):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose("stats", overrides=list(overrides))


def test_stats_writes_a_gamut_with_a_prior_and_counts_unreadable_files(image_folder, tmp_path):
    out = compute_stats(_cfg(f"data.root={image_folder}", f"output={tmp_path / 's.npz'}", "num_workers=0"))
    g = Gamut.from_file(out)
    assert g.Q == 309 and g.prior.sum().item() == pytest.approx(1.0)
    with np.load(out) as z:
        assert int(z["n_images"]) == 2 and int(z["n_skipped"]) == 1
        assert int(z["grid_counts"].sum()) == 2 * 64
    # half the pixels are grey: the (0, 0) bin carries the most mass; pure red (a~80, b~67) the rest
    zero = int(((g.centers == 0).all(1)).nonzero())
    assert int(g.prior.argmax()) == zero
    red = int(((g.centers - torch.tensor([80.0, 70.0])).abs().sum(1) == 0).nonzero())
    assert g.prior[red] > 0.05


def test_stats_with_the_data_gamut_keeps_only_used_bins(image_folder, tmp_path):
    out = compute_stats(
        _cfg(f"data.root={image_folder}", f"output={tmp_path / 's.npz'}", "num_workers=0", "gamut=data")
    )
    assert Gamut.from_file(out).Q == 2


def _cli(*args):
    return subprocess.run(
        [sys.executable, str(ROOT / "pretext" / "stats.py"), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )


def test_cli_runs_with_workers_and_rejects_unknown_keys_and_missing_folders(image_folder, tmp_path):
    ok = _cli(f"data.root={image_folder}", f"output={tmp_path / 'cli.npz'}", "num_workers=2")
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / "cli.npz").is_file()
    bad_key = _cli(f"data.root={image_folder}", "gamutt=srgb")
    assert bad_key.returncode != 0 and "gamutt" in bad_key.stderr
    missing = _cli(f"data.root={tmp_path / 'nowhere'}")
    assert missing.returncode != 0 and "is not a folder" in missing.stderr
