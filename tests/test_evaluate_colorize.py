"""Colorization quality (evaluate.py) and the colorize command on tiny real-format fixtures."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from PIL import Image

from pretext import train as train_mod
from pretext.checkpoint_files import load_colorizer
from pretext.color import Gamut, rgb_to_lab
from pretext.colorize import run as colorize_run
from pretext.evaluate import evaluate
from pretext.metrics import ab_error, auc
from pretext.predict import colorize
from tests.conftest import ROOT
from tests.test_train import cfg_for


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    run = tmp_path_factory.mktemp("ckpt") / "run"
    return train_mod.train(cfg_for(run, "model.max_steps=1"))["last_checkpoint"]


@pytest.fixture
def photo_folder(tmp_path):
    root = tmp_path / "photos"
    rng = np.random.default_rng(0)
    for cls in ("n0001", "n0002"):
        (root / cls).mkdir(parents=True)
        for i in range(3):
            img = (rng.random((6, 8, 3)) * 255).astype(np.uint8).repeat(10, 0).repeat(10, 1)
            Image.fromarray(img).save(root / cls / f"{i}.png")
    return root


def _compose(name, *overrides):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose(name, overrides=list(overrides))


class _Const(torch.nn.Module):
    """A stand-in 'L2' net that returns fixed ab (2 channels) at the input's size."""

    in_channels = 1

    def __init__(self, ab=None):
        super().__init__()
        self.ab = ab

    def forward(self, x):
        return torch.zeros(len(x), 2, *x.shape[-2:]) if self.ab is None else self.ab


def test_colorize_keeps_the_input_l():
    rgb = torch.from_numpy(np.array(Image.fromarray((np.random.rand(37, 53, 3) * 255).astype(np.uint8)))).permute(
        2, 0, 1
    )
    rgb = rgb[None]
    grey = colorize(_Const(), rgb, None, net_size=16, block_pixels=500)
    assert grey.dtype == torch.uint8 and grey.shape == rgb.shape
    assert (rgb_to_lab(grey)[:, 0] - rgb_to_lab(rgb)[:, 0]).abs().max() < 0.6  # 8-bit output
    # fed the image's own ab at full size, the colorization is the image again
    own = colorize(_Const(rgb_to_lab(rgb)[:, 1:]), rgb, None, net_size=None, block_pixels=500)
    assert (own.int() - rgb.int()).abs().max() <= 1


def test_rebalancing_changes_auc_in_the_expected_direction():
    err = torch.tensor([[[0.0, 0.0, 0.0, 100.0]]])  # common pixels right, the rare one wrong
    weights = torch.tensor([[[1.0, 1.0, 1.0, 10.0]]])  # the rare bin's inverse prior is large
    assert auc(err, weights) < auc(err)


def test_evaluate_scores_the_baselines_and_a_checkpoint(ckpt, photo_folder, tmp_path):
    weights = tmp_path / "clf.pt"
    import torchvision

    torch.save(torchvision.models.resnet18(num_classes=2).state_dict(), weights)
    cfg = _compose(
        "evaluate",
        f"ckpt={ckpt}",
        f"data.root={photo_folder}",
        f"output={tmp_path / 'eval'}",
        "sweep_T=true",
        "net_size=64",
        "classifier.arch=resnet18",
        f"classifier.weights={weights}",
        "classifier.size=32",
    )
    result = evaluate(cfg)
    rows = {r["method"]: r for r in result["rows"]}
    assert rows["Ground truth"]["auc"] == pytest.approx(100) and rows["Ground truth"]["auc_rebal"] == pytest.approx(100)
    assert 0 < rows["Gray"]["auc"] < 100 and 0 < rows["Random"]["auc"] < 100
    assert {f"checkpoint T={t:g}" for t in (0, 0.1, 0.2, 0.38, 0.5, 0.77, 1)} <= set(rows)
    for name in ("Ground truth", "Gray", "checkpoint T=0.38"):
        assert 0 <= rows[name]["classifier_top1"] <= 100
    saved = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert saved["images"] == 6 and saved["rebalanced_auc_weights"] == "pure inverse prior of the true bin"
    for f in ("table.md", "best_worst.png", "auc_vs_T.png"):
        assert (tmp_path / "eval" / f).is_file()


def test_gray_row_matches_the_metric_computed_by_hand(photo_folder, tmp_path):
    result = evaluate(_compose("evaluate", f"data.root={photo_folder}", f"output={tmp_path / 'e'}", "temperature=0"))
    assert result["temperature"] == 0.0
    errs = []
    from pretext.images import list_images, read_rgb

    for f in list_images(photo_folder):
        ab = rgb_to_lab(read_rgb(f)[None])[:, 1:]
        errs.append(ab_error(torch.zeros_like(ab), ab).reshape(-1))
    gray = {r["method"]: r for r in result["rows"]}["Gray"]
    assert gray["auc"] == pytest.approx(auc(torch.cat(errs)).item(), abs=1e-6)


def test_an_unreadable_image_is_skipped_and_named_and_never_drops_its_random_partner(photo_folder, tmp_path, capsys):
    from pretext.images import list_images

    good = list_images(photo_folder)
    Image.open(photo_folder / "n0001" / "0.png").save(tmp_path / "full.jpg")
    bad = photo_folder / "n0002" / "9_truncated.jpg"
    bad.write_bytes((tmp_path / "full.jpg").read_bytes()[:300])  # a JPEG cut short: cannot be decoded
    files = list_images(photo_folder)
    b = files.index(bad)
    # a seed for which the truncated file is some good image's Random partner
    def partner_of_bad(seed):
        order = torch.randperm(len(files), generator=torch.Generator().manual_seed(seed)).tolist()
        return any(j == b and i != b for i, j in enumerate(order))

    seed = next(s for s in range(100) if partner_of_bad(s))
    result = evaluate(_compose("evaluate", f"data.root={photo_folder}", f"output={tmp_path / 'e'}", f"seed={seed}"))
    assert result["images"] == len(good) == 6  # every good image scored
    assert result["skipped"] == [str(bad)]
    out = capsys.readouterr().out
    assert f"skipped 1 unreadable image: {bad}" in out
    for name in ("results.json", "table.md", "best_worst.png"):
        assert f"{tmp_path / 'e' / name}" in out and (tmp_path / "e" / name).is_file()
    assert Image.open(tmp_path / "e" / "best_worst.png").size[1] > Image.open(tmp_path / "e" / "best_worst.png").size[0]


def test_the_shipped_prior_is_found_beside_the_package_and_is_the_training_default(photo_folder, tmp_path):
    import pretext
    from pretext.assets import stats_file

    shipped = stats_file("imagenette_train")
    assert shipped == Path(pretext.__file__).resolve().parent / "assets" / "imagenette_train_stats.npz"
    gamut = Gamut.from_file(shipped)
    assert gamut.Q == 309 and gamut.prior.sum().item() == pytest.approx(1.0) and shipped.stat().st_size < 20_000
    assert _compose("pretext").color.stats == "imagenette_train"
    result = evaluate(_compose("evaluate", f"data.root={photo_folder}", f"output={tmp_path / 'e'}",
                               "color.stats=imagenette_train"))  # fmt: skip
    assert result["prior"] == str(shipped)
    with pytest.raises(FileNotFoundError, match="a shipped name \\(imagenette_train\\) or measure"):
        stats_file(tmp_path / "nowhere.npz")


def test_colorize_a_file_a_folder_and_side_by_side(ckpt, photo_folder, tmp_path):
    src = photo_folder / "n0001" / "0.png"
    out = tmp_path / "one.jpg"
    colorize_run(_compose("colorize", f"ckpt={ckpt}", f"input={src}", f"output={out}", "net_size=32"))
    assert Image.open(out).size == Image.open(src).size and Image.open(out).format == "JPEG"
    sbs = tmp_path / "sbs.png"
    colorize_run(_compose("colorize", f"ckpt={ckpt}", f"input={src}", f"output={sbs}", "side_by_side=true"))
    assert Image.open(sbs).size == (2 * Image.open(src).size[0], Image.open(src).size[1])
    (photo_folder / "n0002" / "broken.jpg").write_bytes(b"\xff\xd8\xff broken")
    written = colorize_run(_compose("colorize", f"ckpt={ckpt}", f"input={photo_folder}", f"output={tmp_path / 'all'}"))
    assert len(written) == 6 and all(p.is_file() for p in written)
    assert not (tmp_path / "all" / "n0002" / "broken.jpg").exists()


def test_colorize_modes_grey_rgba_16bit(ckpt, tmp_path):
    for mode in ("L", "RGBA", "I;16"):
        arr = (np.random.rand(20, 30, 3) * 255).astype(np.uint8)
        img = Image.fromarray(arr).convert("L" if mode == "I;16" else mode)
        if mode == "I;16":
            img = Image.fromarray(np.array(img).astype(np.uint16) * 257)
        img.save(tmp_path / "in.png")
        out = tmp_path / f"out_{mode.replace(';', '')}.png"
        colorize_run(_compose("colorize", f"ckpt={ckpt}", f"input={tmp_path / 'in.png'}", f"output={out}"))
        assert Image.open(out).mode == "RGB" and Image.open(out).size == (30, 20)


def test_bad_inputs_get_clear_errors_and_leave_no_file(ckpt, tmp_path):
    out = tmp_path / "out.png"
    with pytest.raises(FileNotFoundError, match="does not exist"):
        colorize_run(_compose("colorize", f"ckpt={ckpt}", f"input={tmp_path / 'nope.jpg'}", f"output={out}"))
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ValueError, match="not an image"):
        colorize_run(_compose("colorize", f"ckpt={ckpt}", f"input={tmp_path / 'notes.txt'}", f"output={out}"))
    (tmp_path / "fake.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="cannot read"):
        colorize_run(_compose("colorize", f"ckpt={ckpt}", f"input={tmp_path / 'fake.png'}", f"output={out}"))
    torch.save({"weights": torch.zeros(3)}, tmp_path / "other.ckpt")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "ok.png")
    with pytest.raises(ValueError, match="not a colorization checkpoint"):
        colorize_run(
            _compose("colorize", f"ckpt={tmp_path / 'other.ckpt'}", f"input={tmp_path / 'ok.png'}", f"output={out}")
        )
    (tmp_path / "junk.ckpt").write_text("junk")
    with pytest.raises(ValueError, match="not a checkpoint this suite can read"):
        load_colorizer(tmp_path / "junk.ckpt")
    with pytest.raises(ValueError, match="trained on a gamut of 309 bins"):
        load_colorizer(ckpt, gamut=Gamut(torch.tensor([[0.0, 0.0], [10.0, 0.0]]), source="tiny"))
    assert not out.exists() and not list(tmp_path.glob(".*.tmp"))
