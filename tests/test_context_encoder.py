"""Context Encoders: the channel-wise FC, masks, losses, bad input, and a short run."""

import pytest
import torch

from pretext.context_encoder import (
    MASKS,
    ChannelwiseFC,
    generator_loss,
    loss_weights,
    make_mask,
    masked_l2,
)
from pretext.context_module import ContextEncoderModule
from pretext.nets import AlexNetCC


def test_channelwise_fc_has_no_cross_channel_weights():
    fc = ChannelwiseFC(channels=5, hw=9)
    assert sum(p.numel() for p in fc.parameters()) == 5 * 9 * 9 + 5 * 9
    x = torch.randn(2, 5, 3, 3)
    y = fc(x)
    x2 = x.clone()
    x2[:, 3] += torch.randn(2, 3, 3)  # change channel 3 only
    y2 = fc(x2)
    same = [c for c in range(5) if torch.equal(y[:, c], y2[:, c])]
    assert same == [0, 1, 2, 4]
    expected = torch.einsum("ij,nj->ni", fc.weight[1], x[:, 1].flatten(1)) + fc.bias[1]
    assert torch.allclose(y[:, 1].flatten(1), expected, atol=1e-6)


@pytest.mark.parametrize("kind", MASKS)
@pytest.mark.parametrize("fraction", [0.25, 0.1])
def test_each_mask_covers_its_fraction_within_5_percent(kind, fraction):
    m = make_mask(kind, 6, 128, fraction, generator=torch.Generator().manual_seed(1))
    assert m.shape == (6, 1, 128, 128) and m.dtype == torch.bool
    cover = m.float().mean((1, 2, 3))
    assert torch.all((cover - fraction).abs() <= 0.05), cover


def test_overlap_band_weights():
    mask = make_mask("central", 1, 64)
    w = loss_weights(mask, overlap=4, overlap_weight=10.0)
    assert w[0, 0, 32, 32] == 1 and w[0, 0, 0, 0] == 0
    band = (w == 10).sum().item()
    side = mask.sum().sqrt().item()
    assert band == (side + 8) ** 2 - side**2  # a 4 px ring around the square hole
    pred, target = torch.zeros(1, 3, 64, 64), torch.ones(1, 3, 64, 64)
    assert masked_l2(pred, target, w).item() == pytest.approx(1.0)


def tiny_module(l2_only: bool, mask: str = "central", crop: int = 64) -> ContextEncoderModule:
    opt = lambda p: torch.optim.Adam(p, lr=1e-3)  # noqa: E731
    return ContextEncoderModule("context_encoder", AlexNetCC(in_channels=3, last="pool5"), opt, crop, mask=mask,
                                loss="l2" if l2_only else "l2_adversarial")


def test_without_the_adversarial_term_the_loss_is_the_masked_l2_alone():
    rgb = torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8)
    mask = make_mask("central", 2, 64)
    plain = tiny_module(l2_only=True)
    assert plain.discriminator is None
    out = plain.losses(rgb, mask)
    assert torch.equal(out["g"], out["l2"])
    adv = tiny_module(l2_only=False)
    out = adv.losses(rgb, mask)
    assert not torch.equal(out["g"], out["l2"])
    fake = torch.zeros(2)
    expected = 0.999 * out["l2"] + 0.001 * torch.nn.functional.binary_cross_entropy_with_logits(fake, torch.ones(2))
    assert torch.allclose(generator_loss(out["l2"], fake), expected)


def test_bad_context_encoder_settings_are_named():
    with pytest.raises(ValueError, match="too small for a central mask"):
        tiny_module(True, crop=32)
    with pytest.raises(ValueError, match="valid: central, random_block, random_region"):
        tiny_module(True, mask="square")


def test_a_short_context_encoder_run_gives_a_checkpoint_the_downstream_loader_reads(tmp_path):
    from pretext import train as train_mod
    from pretext.encoders import load_encoder
    from tests.test_train import cfg_for

    cfg = cfg_for(tmp_path / "run", "task=context_encoder", "task.loss=l2_adversarial")
    result = train_mod.train(cfg)
    assert result["global_step"] == cfg.trainer.max_steps  # one step per batch, discriminator or not
    net, info = load_encoder(result["last_checkpoint"])
    assert info.method == "context_encoder" and info.input == "RGB" and info.layers[-1] == "pool5"
    with pytest.raises(ValueError, match="valid: rgb, l"):
        train_mod.train(cfg_for(tmp_path / "run2", "task=context_encoder", "task.input=lab"))
