"""Soft encoding against an independent float64 brute-force k-NN."""

import numpy as np
import pytest
import skimage.data
import torch

from pretext.color import Gamut, SoftEncoder, dense_target, rgb_to_lab
from tests.conftest import shared_path

SIGMA = 5.0


def oracle(ab: torch.Tensor, centers: torch.Tensor, k: int):
    """Distances to all bins (P, Q) and the dense soft target (P, Q), by brute force in float64."""
    p = ab.permute(0, 2, 3, 1).reshape(-1, 2).double().numpy()
    c = centers.double().numpy()
    d = np.sqrt(((p[:, None, :] - c[None]) ** 2).sum(-1))
    order = np.argsort(d, axis=1, kind="stable")
    top = order[:, :k]
    dk = np.take_along_axis(d, top, 1)
    w = np.exp(-(dk**2 - dk[:, :1] ** 2) / (2 * SIGMA**2))
    w /= w.sum(1, keepdims=True)
    dense = np.zeros_like(d)
    np.put_along_axis(dense, top, w, 1)
    sorted_d = np.take_along_axis(d, order, 1)
    if k == d.shape[1]:  # every bin is chosen: the set is unique
        return d, dense, np.zeros(len(d), dtype=bool)
    tie_at_k = np.abs(sorted_d[:, k - 1] - sorted_d[:, k]) < 1e-6
    return d, dense, tie_at_k


def test_inputs():
    """Random values in range, on bins, between bins, outside the gamut, and real photos."""
    g = torch.Generator().manual_seed(1)
    rand = torch.rand(2, 2, 16, 16, generator=g) * 240 - 120
    grid = torch.arange(-120, 121, 5, dtype=torch.float32)  # on bins and exactly between them
    on_and_between = torch.cartesian_prod(grid, grid).T.reshape(1, 2, len(grid), len(grid))
    quarter = on_and_between + 2.5
    far = torch.rand(1, 2, 8, 8, generator=g) * 600 - 300
    photo = rgb_to_lab(torch.from_numpy(skimage.data.coffee()[::8, ::8].copy()).permute(2, 0, 1)[None])[:, 1:]
    return {"random": rand, "on_between": on_and_between, "quarter": quarter, "far": far, "photo": photo}


INPUTS = test_inputs()
GAMUTS = {}


def gamut(name):
    if name == "released":
        return Gamut.from_file(shared_path("reference", "pts_in_hull.npy")).centers
    if name not in GAMUTS:
        GAMUTS[name] = (
            Gamut.from_srgb().centers
            if name == "srgb"
            # a small irregular gamut, so points outside it are common
            else (
                torch.tensor(
                    [[0, 0], [10, 0], [0, 10], [-10, -10], [20, 30], [-40, 10], [30, -20]], dtype=torch.float32
                )
            )
        )
    return GAMUTS[name]


@pytest.mark.parametrize("method", ["table", "brute"])
@pytest.mark.parametrize("k", [5, 10])
@pytest.mark.parametrize("gamut_name", ["srgb", "released", "irregular"])
@pytest.mark.parametrize("input_name", list(INPUTS))
def test_soft_encoding_equals_brute_force_knn(method, k, gamut_name, input_name):
    centers = gamut(gamut_name)
    k = min(k, len(centers))
    ab = INPUTS[input_name]
    enc = SoftEncoder(centers, k=k, method=method)
    idx, w, nearest = enc(ab)
    N, _, H, W = ab.shape
    assert idx.shape == (N, k, H, W) and w.shape == (N, k, H, W) and nearest.shape == (N, H, W)
    assert idx.dtype == torch.long
    d, dense_ref, tie = oracle(ab, centers, k)
    ii = idx.permute(0, 2, 3, 1).reshape(-1, k).numpy()
    ww = w.permute(0, 2, 3, 1).reshape(-1, k).double().numpy()
    # the chosen bins are distinct and are a k-nearest set (their distances are the k smallest)
    assert all(len(set(row)) == k for row in ii[:200])
    chosen = np.sort(np.take_along_axis(d, ii, 1), 1)
    assert np.abs(chosen - np.sort(d, 1)[:, :k]).max() < 1e-4
    # weights: equal to the oracle's dense target (where the k-NN set is unique), else as a multiset
    ours = dense_target(idx, w, len(centers)).permute(0, 2, 3, 1).reshape(-1, len(centers)).double().numpy()
    assert np.abs(ours[~tie] - dense_ref[~tie]).max(initial=0) < 1e-5
    ref_sorted = np.sort(dense_ref[tie], 1)[:, -k:]
    assert np.abs(np.sort(ww[tie], 1) - ref_sorted).max(initial=0) < 1e-5
    assert np.allclose(ww.sum(1), 1, atol=1e-5)
    # the nearest bin is at the smallest distance
    nn = nearest.reshape(-1).numpy()
    assert np.abs(d[np.arange(len(nn)), nn] - d.min(1)).max() < 1e-4


def test_the_table_path_really_uses_its_tables():
    enc = SoftEncoder(gamut("srgb"), k=5, method="table")
    a, b = INPUTS["photo"].permute(1, 0, 2, 3).reshape(2, -1)
    *_, ok = enc._encode_square(a, b)
    assert ok.float().mean() > 0.9  # most real colours resolve from the grid-square table


def test_dense_target_is_a_distribution():
    enc = SoftEncoder(gamut("srgb"), k=5)
    idx, w, _ = enc(INPUTS["random"])
    dense = dense_target(idx, w, enc.Q)
    assert dense.shape == (2, 309, 16, 16)
    assert torch.allclose(dense.sum(1), torch.ones(2, 16, 16), atol=1e-6)
    assert ((dense > 0).sum(1) == 5).all()


def test_bad_arguments_are_refused():
    c = gamut("srgb")
    with pytest.raises(ValueError, match="k must be"):
        SoftEncoder(c, k=0)
    with pytest.raises(ValueError, match="auto, table, brute"):
        SoftEncoder(c, method="kd")
    with pytest.raises(ValueError, match=r"\(N, 2, H, W\)"):
        SoftEncoder(c)(torch.zeros(1, 3, 4, 4))
