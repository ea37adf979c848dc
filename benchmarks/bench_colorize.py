"""Time and peak memory of colorizing a photo with the VGG colorizer, measured in one run.

    python benchmarks/bench_colorize.py

Each measurement runs in a fresh child process and reports its peak resident memory:
1. the bare net at its working resolution (256 x 256), for reference;
2. colorizing a 1024 x 768 photo (time and peak memory);
3. colorizing a 4000 x 3000 photo: its peak must stay within the net's peak plus the image itself,
   in and out (8-bit): the net runs at the working size, ab is upsampled, and the full-resolution
   work goes in blocks of rows. Writes benchmarks/results/bench_colorize.json.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time

NET_SIZE = 256


def child(kind: str, width: int, height: int) -> None:
    import torch

    from pretext.nets import VGGColorizer
    from pretext.predict import colorize

    torch.manual_seed(0)
    net = VGGColorizer(out_channels=313).eval()
    centers = torch.randn(313, 2) * 40
    rgb = torch.randint(0, 256, (1, 3, height, width), dtype=torch.uint8)  # no float copy of the image
    with torch.no_grad():
        net(torch.zeros(1, 1, NET_SIZE, NET_SIZE))  # warm up allocator and kernels
        t0 = time.perf_counter()
        if kind == "net":
            net(torch.zeros(1, 1, NET_SIZE, NET_SIZE))
        else:
            out = colorize(net, rgb, centers, net_size=NET_SIZE)
            assert out.shape == rgb.shape
        seconds = time.perf_counter() - t0
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"kind": kind, "seconds": seconds, "peak_mb": peak_mb, "image_mb": rgb.numel() / 2**20}))


def measure(kind: str, width: int, height: int) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", kind, str(width), str(height)], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    from benchmarks.common import write_result

    net = measure("net", NET_SIZE, NET_SIZE)
    small = measure("colorize", 1024, 768)
    big = measure("colorize", 4000, 3000)
    bound = net["peak_mb"] + 2 * big["image_mb"]
    result = {
        "net": "VGGColorizer (random weights; speed and memory do not depend on them)",
        "working_size": NET_SIZE,
        "net_at_working_size": net,
        "colorize_1024x768": small,
        "colorize_4000x3000": big,
        "bound_4000x3000_mb": bound,
        "bound": "peak of the net at its working size + the 4000x3000 image in and out (uint8)",
        "within_bound": big["peak_mb"] <= bound,
    }
    print(
        f"1024x768: {small['seconds']:.2f} s, peak {small['peak_mb']:.0f} MB; "
        f"4000x3000: {big['seconds']:.2f} s, peak {big['peak_mb']:.0f} MB "
        f"(bound {bound:.0f} MB = net {net['peak_mb']:.0f} MB + image in/out {2 * big['image_mb']:.0f} MB): "
        + ("within" if result["within_bound"] else "OVER")
    )
    print(f"wrote {write_result('bench_colorize', result)}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    else:
        main()
