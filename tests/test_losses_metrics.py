import pytest
import torch

from pretext.color import Gamut, SoftEncoder, dense_target
from pretext.losses import l2_ab, pixel_weights, plain_and_weighted, soft_cross_entropy
from pretext.metrics import AuC, ab_error, auc, inverse_prior_weights


@pytest.fixture(scope="module")
def encoder():
    return SoftEncoder(Gamut.from_srgb().centers, k=5)


def test_sparse_cross_entropy_equals_the_dense_one(encoder):
    ab = torch.rand(2, 2, 6, 7) * 160 - 80
    logits = torch.randn(2, encoder.Q, 6, 7)
    idx, w, _ = encoder(ab)
    dense = dense_target(idx, w, encoder.Q)
    expected = -(dense * logits.log_softmax(1)).sum(1)
    assert torch.allclose(soft_cross_entropy(logits, idx, w), expected, atol=1e-5)


def test_pixel_weights_zero_grey_images_and_use_the_nearest_bin():
    bin_w = torch.tensor([0.5, 2.0, 4.0])
    nearest = torch.tensor([[[0, 1], [2, 2]], [[1, 1], [1, 1]]])
    w = pixel_weights(nearest, bin_w, torch.tensor([True, False]))
    assert torch.equal(w[0], torch.tensor([[0.5, 2.0], [4.0, 4.0]]))
    assert torch.equal(w[1], torch.zeros(2, 2))


def test_plain_and_weighted_means():
    per = torch.tensor([[[1.0, 3.0]]])
    plain, weighted = plain_and_weighted(per, torch.tensor([[[2.0, 0.0]]]))
    assert plain.item() == 2.0 and weighted.item() == 1.0


def test_l2_is_half_the_squared_distance():
    assert l2_ab(torch.zeros(1, 2, 1, 1), torch.tensor([3.0, 4.0]).view(1, 2, 1, 1)).item() == 12.5


def test_auc_is_100_for_a_perfect_prediction_and_exact_for_a_constant_error():
    ab = torch.randint(-80, 80, (2, 2, 5, 5)).double()  # integers: the distances below are exact
    assert auc(ab_error(ab, ab)).item() == pytest.approx(100.0)
    shifted = ab.clone()
    shifted[:, 0] += 10.0  # every pixel 10 away: within t for t >= 10, i.e. 141 of 151 thresholds
    assert auc(ab_error(shifted, ab)).item() == pytest.approx(100 * 141 / 151, abs=1e-3)
    far = ab + 500.0
    assert auc(ab_error(far, ab)).item() == 0.0


def test_weighted_auc_counts_heavy_pixels_more():
    err = torch.tensor([[[0.0, 200.0]]])
    assert auc(err).item() == pytest.approx(50.0)
    assert auc(err, torch.tensor([[[3.0, 1.0]]])).item() == pytest.approx(75.0)


def test_streaming_auc_equals_one_batch_and_rebalances_by_the_pure_inverse_prior():
    prior = torch.tensor([0.5, 0.3, 0.2, 0.0])
    pred, true = torch.randn(4, 2, 3, 3) * 20, torch.randn(4, 2, 3, 3) * 20
    nearest = torch.randint(0, 3, (4, 3, 3))
    metric = AuC(prior)
    metric.update(pred[:2], true[:2], nearest[:2])
    metric.update(pred[2:], true[2:], nearest[2:])
    out = metric.compute()
    err = ab_error(pred, true)
    assert out["auc"].item() == pytest.approx(auc(err).item())
    assert out["auc_rebal"].item() == pytest.approx(auc(err, 1 / prior[nearest]).item())
    assert inverse_prior_weights(torch.tensor([3]), prior).item() == 0.0
