import pytest
import torch

from pretext.color import annealed_mean, nongrey_mask, prior_from_counts, rebalance_weights

CENTERS = torch.tensor([[0.0, 0.0], [10.0, 0.0], [20.0, 0.0], [0.0, 10.0], [50.0, 50.0]])


def test_prior_is_smoothed_by_a_gaussian_of_sigma_5():
    counts = torch.tensor([100.0, 0, 0, 0, 0])
    p = prior_from_counts(counts, CENTERS)
    assert p.sum().item() == pytest.approx(1.0)
    # neighbours 10 units away get exp(-10^2 / (2 * 5^2)) = exp(-2) of the peak, 20 away exp(-8)
    assert (p[1] / p[0]).item() == pytest.approx(torch.exp(torch.tensor(-2.0)).item(), rel=1e-5)
    assert (p[3] / p[0]).item() == pytest.approx(torch.exp(torch.tensor(-2.0)).item(), rel=1e-5)
    assert (p[2] / p[0]).item() == pytest.approx(torch.exp(torch.tensor(-8.0)).item(), rel=1e-4)
    assert p[4].item() < 1e-20


def test_prior_with_tiny_sigma_is_the_empirical_distribution():
    counts = torch.tensor([1.0, 2, 3, 4, 0])
    assert torch.allclose(prior_from_counts(counts, CENTERS, sigma=0.1), counts / counts.sum())


def test_zero_counts_are_refused():
    with pytest.raises(ValueError, match="zero counts"):
        prior_from_counts(torch.zeros(5), CENTERS)


def test_rebalancing_weights_have_unit_expectation_and_favour_rare_bins():
    p = torch.tensor([0.7, 0.2, 0.09, 0.01, 0.0])
    w = rebalance_weights(p, lam=0.5)
    assert (p * w).sum().item() == pytest.approx(1.0, abs=1e-6)
    assert torch.all(w[:-2].diff() > 0)  # rarer -> heavier
    # the uniform part covers the 4 bins with non-zero prior
    expected = 1 / (0.5 * p[:4] + 0.5 / 4)
    expected = expected / (p[:4] * expected).sum()
    assert torch.allclose(w[:4], expected, rtol=1e-5)
    # a zero-prior bin gets the formula's limit, the largest weight
    assert w[4].item() == pytest.approx((1 / (0.5 / 4)) / (p[:4] * 1 / (0.5 * p[:4] + 0.5 / 4)).sum().item(), rel=1e-5)
    assert w[4] == w.max()


def test_lambda_one_is_no_rebalancing_and_lambda_zero_is_inverse_prior():
    p = torch.tensor([0.5, 0.3, 0.2])
    assert torch.allclose(rebalance_weights(p, lam=1.0), torch.ones(3))
    w0 = rebalance_weights(p, lam=0.0)
    assert torch.allclose(w0, (1 / p) / 3)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        rebalance_weights(p, lam=1.5)


def test_nongrey_mask_uses_a_threshold_of_5_on_a_or_b():
    ab = torch.zeros(4, 2, 3, 3)
    ab[1, 0, 1, 1] = 5.0  # exactly 5: still grey
    ab[2, 1, 2, 0] = -5.01  # one pixel above: colour
    ab[3] = 40.0
    assert nongrey_mask(ab).tolist() == [False, False, True, True]


def _logits():
    torch.manual_seed(3)
    return torch.randn(2, len(CENTERS), 4, 5, dtype=torch.float64) * 3


def test_annealed_mean_at_t1_is_the_mean():
    logits = _logits()
    mean = torch.einsum("nqhw,qc->nchw", logits.softmax(1), CENTERS.double())
    assert torch.allclose(annealed_mean(logits, CENTERS, T=1.0), mean)


def test_annealed_mean_at_t0_is_the_mode_and_small_t_tends_to_it():
    logits = _logits()
    mode = CENTERS.double()[logits.argmax(1)].permute(0, 3, 1, 2)
    assert torch.equal(annealed_mean(logits, CENTERS, T=0.0), mode)
    assert torch.allclose(annealed_mean(logits, CENTERS, T=1e-3), mode, atol=1e-6)


def test_default_temperature_lies_between_mode_and_mean():
    logits = _logits()
    # a bimodal pixel: the mean is pulled toward the middle, the annealed mean less so
    logits[0, :, 0, 0] = torch.tensor([2.0, -9, -9, -9, 1.8], dtype=torch.float64)
    mean = annealed_mean(logits, CENTERS, T=1.0)[0, :, 0, 0]
    annealed = annealed_mean(logits, CENTERS)[0, :, 0, 0]
    mode = CENTERS[0].double()
    assert (annealed - mode).norm() < (mean - mode).norm()
    assert (annealed - mode).norm() > 0


def test_negative_temperature_is_refused():
    with pytest.raises(ValueError, match=">= 0"):
        annealed_mean(_logits(), CENTERS, T=-0.1)
