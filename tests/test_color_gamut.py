import numpy as np
import pytest
import torch

from pretext.color import (
    GRID_STEP,
    Gamut,
    ab_grid_histogram,
    check_centers,
    grid_points,
    rgb_to_lab,
)
from tests.conftest import shared_path


@pytest.fixture(scope="module")
def srgb():
    return Gamut.from_srgb()


def test_srgb_gamut_has_309_bins_on_the_grid(srgb):
    assert srgb.Q == 309
    assert torch.all(srgb.centers % GRID_STEP == 0)
    assert srgb.source == "srgb"


def test_srgb_gamut_holds_the_four_grid_corners_of_every_srgb_colour(srgb):
    ab = rgb_to_lab(torch.rand(3, 1, 200_000, dtype=torch.float64))[1:, 0].T
    lo = torch.floor(ab / GRID_STEP) * GRID_STEP
    have = {tuple(c) for c in srgb.centers.int().tolist()}
    for da in (0, GRID_STEP):
        for db in (0, GRID_STEP):
            corners = {tuple(c) for c in (lo + torch.tensor([da, db])).int().tolist()}
            assert corners <= have


def test_srgb_gamut_bins_all_lie_inside_the_released_313(srgb):
    released = np.load(shared_path("reference", "pts_in_hull.npy"))
    assert released.shape == (313, 2)
    inside = {tuple(c) for c in released.tolist()}
    assert {tuple(c) for c in srgb.centers.int().tolist()} <= inside


def test_released_file_loads_as_a_gamut():
    g = Gamut.from_file(shared_path("reference", "pts_in_hull.npy"))
    assert g.Q == 313 and g.prior is None


@pytest.mark.parametrize(
    "bad, message",
    [
        (np.zeros((313, 3)), r"shape \(313, 3\), expected an array of shape \(Q, 2\)"),
        (np.zeros(313), r"expected an array of shape \(Q, 2\)"),
        (np.array([[0.0, 0.0], [10.0, 5.0]]), "off the grid of step 10"),
        (np.array([[0.0, 0.0], [0.0, 0.0]]), "repeated"),
    ],
)
def test_bad_centres_are_refused_with_the_expected_shape(tmp_path, bad, message):
    path = tmp_path / "bad.npy"
    np.save(path, bad)
    with pytest.raises(ValueError, match=message):
        Gamut.from_file(path)
    with pytest.raises(ValueError, match=message):
        check_centers(bad)


def test_missing_gamut_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.npy"):
        Gamut.from_file(tmp_path / "nope.npy")


def test_grid_histogram_counts_the_nearest_grid_point():
    ab = torch.tensor([[4.9, 5.1, -200.0], [0.0, -14.0, 300.0]]).reshape(2, 1, 3)
    hist = ab_grid_histogram(ab)
    pts = grid_points()
    got = {tuple(pts[i].int().tolist()): int(c) for i, c in enumerate(hist) if c}
    assert got == {(0, 0): 1, (10, -10): 1, (-130, 130): 1}  # beyond the grid: clamped to its edge


def test_gamut_from_histogram_keeps_the_used_bins_with_their_prior():
    ab = torch.zeros(2, 4, 4)
    ab[0, :2] = 20.0  # half the pixels at (20, 0), half at (0, 0)
    g = Gamut.from_grid_histogram(ab_grid_histogram(ab))
    assert sorted(map(tuple, g.centers.int().tolist())) == [(0, 0), (20, 0)]
    assert g.prior.sum().item() == pytest.approx(1.0)
    assert g.prior[0].item() == pytest.approx(0.5, abs=1e-6)


def test_save_and_load_round_trip_with_prior(tmp_path, srgb):
    counts = torch.zeros(len(grid_points()), dtype=torch.long)
    counts[len(counts) // 2] = 100  # all pixels at ab = (0, 0)
    with_prior, outside = srgb.with_prior_from(counts)
    assert outside == 0
    with_prior.save(tmp_path / "stats.npz", grid_counts=counts.numpy())
    loaded = Gamut.from_file(tmp_path / "stats.npz")
    assert torch.equal(loaded.centers, srgb.centers)
    assert torch.allclose(loaded.prior, with_prior.prior)
    assert loaded.source == "srgb"
    assert int(loaded.prior.argmax()) == int(((srgb.centers == 0).all(1)).nonzero())


def test_prior_of_the_wrong_shape_is_refused(srgb):
    with pytest.raises(ValueError, match=r"shape \(309,\)"):
        Gamut(srgb.centers, torch.ones(5) / 5)


def test_pixels_outside_a_small_gamut_are_counted():
    small = Gamut(torch.tensor([[0.0, 0.0], [10.0, 0.0]]))
    counts = torch.zeros(len(grid_points()), dtype=torch.long)
    pts = grid_points()
    counts[((pts - torch.tensor([50.0, 50.0])).abs().sum(1) == 0).nonzero()] = 7
    counts[(pts.abs().sum(1) == 0).nonzero()] = 3
    g, outside = small.with_prior_from(counts)
    assert outside == 7
    assert g.prior.sum().item() == pytest.approx(1.0)
