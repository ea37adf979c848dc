"""Speed of linear-probe training: heads on all layers from one encoder pass vs one layer alone.

    python benchmarks/bench_probe.py [--batch 256] [--classes 1000] [--repeats 5]

Both variants run the LinearProbeModule's own step (uint8 crops -> Lab -> frozen encoder ->
reduction -> heads -> cross-entropy -> backward -> SGD step) on the same batch, interleaved, in one
run. "one layer" is conv5 alone (the deepest conv: the encoder runs all the way in both cases);
"all layers" trains conv1..conv5 and pool5 heads together. Training the five conv layers one at a time
would cost about five "one layer" steps. Target: all <= 1.5 x one. Writes
benchmarks/results/bench_probe.json.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import yaml

from benchmarks.bench_color import photos
from benchmarks.common import time_interleaved, write_result
from downstream.encoder import FrozenEncoder
from downstream.probe_module import LinearProbeModule
from pretext.nets import PROBE_LAYERS, AlexNetCC

TARGET = 1.5
ROOT = Path(__file__).resolve().parents[1]


def make(layers, classes: int, pool: str, device) -> tuple[LinearProbeModule, torch.optim.Optimizer]:
    spec = yaml.safe_load((ROOT / "conf" / "pool" / f"{pool}.yaml").read_text())
    torch.manual_seed(0)
    module = LinearProbeModule(FrozenEncoder(AlexNetCC(last="pool5"), layers), classes, pool, spec).to(device)
    return module, module.configure_optimizers()["optimizer"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=256)  # the protocol's batch
    ap.add_argument("--classes", type=int, default=1000)
    ap.add_argument("--pool", default="resize", choices=["avg", "resize"])
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    rgb, source = photos(args.batch, size=227)
    rgb = rgb.to(device)
    y = torch.randint(0, args.classes, (args.batch,), device=device)
    variants = {"one_layer": ("conv5",), "all_layers": PROBE_LAYERS}
    steps = {}
    for name, layers in variants.items():
        module, opt = make(layers, args.classes, args.pool, device)
        module.train()

        def step(module=module, opt=opt):
            losses = [torch.nn.functional.cross_entropy(z, y) for z in module.logits(rgb).values()]
            opt.zero_grad(set_to_none=True)
            torch.stack(losses).sum().backward()
            opt.step()
            if device.type == "cuda":
                torch.cuda.synchronize()

        steps[name] = step
    t = time_interleaved(steps, repeats=args.repeats, warmup=1)
    ratio = t["all_layers"] / t["one_layer"]
    result = {
        "what": f"linear-probe training step, batch {args.batch}, 227 crops, {args.classes} classes, pool={args.pool}",
        "input": source,
        "timing": f"best of {args.repeats}, interleaved",
        "one_layer": "conv5",
        "all_layers": list(PROBE_LAYERS),
        "one_layer_s": t["one_layer"],
        "all_layers_s": t["all_layers"],
        "ratio": ratio,
        "target": f"<= {TARGET}",
        "met": ratio <= TARGET,
    }
    print(f"one layer {t['one_layer']:.3f} s, all layers {t['all_layers']:.3f} s per step: ratio {ratio:.3f} "
          f"(target <= {TARGET})")  # fmt: skip
    print(f"wrote {write_result('bench_probe', result)}")


if __name__ == "__main__":
    main()
