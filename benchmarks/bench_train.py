"""Speed of a pretext training step, end to end against the bare model, measured in one run.

    python benchmarks/bench_train.py [--batch 32] [--crop 180] [--repeats 3]

End to end: a decoded uint8 batch -> Lab -> point-sampled targets -> soft encoding and
rebalancing -> forward / backward -> optimizer step (the LightningModule's own code path).
Bare: forward / backward / step of the same net and loss on pre-made input and targets.
Target on this CPU: end to end <= 1.15 x bare. With a GPU it also records images/s at batch 256
with bf16 autocast and channels_last. Writes benchmarks/results/bench_train.json.
"""

from __future__ import annotations

import argparse

import torch

from benchmarks.bench_color import photos
from benchmarks.common import time_interleaved, write_result
from pretext.color import Gamut
from pretext.losses import plain_and_weighted, soft_cross_entropy
from pretext.module import ColorizationModule
from pretext.nets import AlexNetCC

TARGET = 1.15


def make_module(device: torch.device) -> ColorizationModule:
    gamut = Gamut.from_srgb()
    gamut = Gamut(gamut.centers, torch.full((gamut.Q,), 1.0 / gamut.Q), "srgb")
    net = AlexNetCC(out_channels=gamut.Q)
    opt = lambda params: torch.optim.Adam(params, lr=3e-5, betas=(0.9, 0.999), weight_decay=1e-3)  # noqa: E731
    return ColorizationModule(net=net, gamut=gamut, optimizer=opt).to(device)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--crop", type=int, default=180)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    module = make_module(device)
    opt = module.optimizer_factory(module.net.parameters())
    rgb, source = photos(args.batch, size=args.crop)
    batch = (rgb.to(device), torch.tensor(0, device=device))

    # pre-made tensors for the bare step: the same input and targets, computed once
    with torch.no_grad():
        lab, x = module._targets(batch[0])
        out = module.net(x)
        ab_t = torch.nn.functional.interpolate(lab[:, 1:], size=out.shape[-2:], mode="nearest")
        idx, w, nearest = module.encoder(ab_t)
        weights = module.bin_weights[nearest]

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    def end_to_end():
        loss = module._forward_batch(batch)[-1]["loss_weighted"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sync()

    def bare():
        loss = plain_and_weighted(soft_cross_entropy(module.net(x), idx, w), weights)[1]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sync()

    t = time_interleaved({"end_to_end": end_to_end, "bare": bare}, repeats=args.repeats, warmup=1)
    ratio = t["end_to_end"] / t["bare"]
    result = {
        "what": f"AlexNetCC (fc 4096) training step, batch {args.batch}, {args.crop} crops",
        "input": source,
        "timing": f"best of {args.repeats}",
        "end_to_end_s": t["end_to_end"],
        "bare_s": t["bare"],
        "end_to_end_images_per_s": args.batch / t["end_to_end"],
        "ratio": ratio,
        "target": f"<= {TARGET}",
        "met": ratio <= TARGET,
    }
    if device.type == "cuda":
        result["gpu"] = gpu_throughput(module)
    print(
        f"end to end {t['end_to_end']:.3f} s, bare {t['bare']:.3f} s per step: ratio {ratio:.3f} "
        f"(target <= {TARGET}); {args.batch / t['end_to_end']:.1f} images/s"
    )
    print(f"wrote {write_result('bench_train', result)}")


def gpu_throughput(module: ColorizationModule, batch: int = 256, crop: int = 180, steps: int = 10) -> dict:
    """Images/s of the end-to-end step at batch 256 with bf16 autocast and channels_last."""
    module.net.to(memory_format=torch.channels_last)
    opt = module.optimizer_factory(module.net.parameters())
    rgb = (torch.rand(batch, 3, crop, crop, device="cuda") * 255).to(torch.uint8)
    data = (rgb, torch.tensor(0, device="cuda"))

    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = module._forward_batch(data)[-1]["loss_weighted"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(3):
        step()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(steps):
        step()
    end.record()
    torch.cuda.synchronize()
    seconds = start.elapsed_time(end) / 1000 / steps
    return {"batch": batch, "crop": crop, "bf16": True, "channels_last": True, "images_per_s": batch / seconds}


if __name__ == "__main__":
    main()
