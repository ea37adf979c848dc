"""Context Encoders training step against the colorization step, same batch and crop, one run.

    python benchmarks/bench_context.py [--batch 32] [--crop 180] [--repeats 3]

Both run their LightningModule's own step on the same uint8 batch: colorization (the paper's AlexNet,
fc 4096: Lab, soft encoding, rebalanced loss, Adam step) and Context Encoders (encoder to pool5,
channel-wise FC, decoder, masked L2 + adversarial, generator and discriminator Adam steps). No
target: the figure is for planning GPU runs. Writes benchmarks/results/bench_context.json.
"""

from __future__ import annotations

import argparse

import torch

from benchmarks.bench_color import photos
from benchmarks.bench_train import make_module
from benchmarks.common import time_interleaved, write_result
from pretext.context_encoder import discriminator_loss
from pretext.context_module import ContextEncoderModule
from pretext.nets import AlexNetCC


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--crop", type=int, default=180)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    rgb, source = photos(args.batch, size=args.crop)
    rgb = rgb.to(device)
    color = make_module(device)
    color_opt = color.optimizer_factory(color.net.parameters())
    adam = lambda p: torch.optim.Adam(p, lr=2e-4, betas=(0.5, 0.999))  # noqa: E731
    ce = ContextEncoderModule("context_encoder", AlexNetCC(in_channels=3, last="pool5"), adam, args.crop,
                              mask="central").to(device)  # fmt: skip
    ce.train()
    g_opt, d_opt = ce.configure_optimizers()
    mask = ce.masks(args.batch, train=True)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    def colorization():
        loss = color._forward(rgb)[-1]["loss_weighted"]
        color_opt.zero_grad(set_to_none=True)
        loss.backward()
        color_opt.step()
        sync()

    def context_encoder():
        out = ce.losses(rgb, mask)
        g_opt.zero_grad(set_to_none=True)
        out["g"].backward()
        g_opt.step()
        dl = discriminator_loss(ce.discriminator(out["target"]), ce.discriminator(out["composite"].detach()))
        d_opt.zero_grad(set_to_none=True)
        dl.backward()
        d_opt.step()
        sync()

    t = time_interleaved({"colorization": colorization, "context_encoder": context_encoder}, args.repeats, warmup=1)
    result = {
        "what": f"training step, batch {args.batch}, {args.crop} crops: colorization AlexNet (fc 4096) vs Context "
        "Encoders (AlexNet to pool5 + channel-wise FC + decoder + discriminator, central mask)",
        "input": source,
        "timing": f"best of {args.repeats}, interleaved",
        "colorization_s": t["colorization"],
        "context_encoder_s": t["context_encoder"],
        "context_over_colorization": t["context_encoder"] / t["colorization"],
        "target": None,
    }
    print(f"colorization {t['colorization']:.2f} s, context encoder {t['context_encoder']:.2f} s per step "
          f"({result['context_over_colorization']:.2f}x)")  # fmt: skip
    print(f"wrote {write_result('bench_context', result)}")


if __name__ == "__main__":
    main()
