"""Images/s of the pretext's input pipeline alone: CPU decode against device decode, measured in one run.

    python benchmarks/bench_input.py [--workers 0 1 2] [--batch 32] [--repeats 3] [--photos outputs/bench_photos]

The photos: ImageNet-sized JPEGs (quality 90; 375 x 500 and larger, both orientations) cut from the
colour photos embedded in scikit-image and scikit-learn, written once into ``--photos`` (under
outputs/, git-ignored; :func:`make_photos`). The pipeline: ``pretext.data.ColorizationData``'s
training loader as a run builds it (the paper's crops: shorter side to 256, random 180 crop, flip;
persistent workers, prefetch by the batch size, pinned memory on CUDA), each batch finished as the
module's ``on_after_batch_transfer`` does and on the device: ``data.decode=cpu`` (workers decode
and crop; the crops are moved to the device) against ``data.decode=device`` (workers read bytes;
``decode_jpeg`` on a list, resize and crop on the device). The device is CUDA when present, else the
CPU, where "device decode" means decoding in the main process.

For each worker count and decode mode, in turn and repeated (interleaved: drift hits all alike):
a fresh pass over the data, ``--warmup`` batches to reach the steady state (worker start-up and the
prefetch queue are not counted), then ``--batches`` timed. Reported: the best pass's images/s, every
pass, and device / cpu ratios. Writes benchmarks/results/bench_input.json (``--name`` to change).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from benchmarks.common import write_result
from pretext.data import SAMPLE_TRAIN, SAMPLE_VAL, ColorizationData, finish_on_device, sample_photo

ROOT = Path(__file__).resolve().parents[1]
# (height, width) of the photos written: ImageNet's common sizes and a few larger ones
SIZES = ((375, 500), (500, 375), (400, 600), (500, 500), (480, 640), (640, 480), (600, 800), (768, 1024))


def make_photos(folder: str | Path, n: int = 48, quality: int = 90, seed: int = 0) -> Path:
    """Write ``n`` JPEGs of the embedded colour photos into ``folder`` (kept when already there):
    a random region of each source photo at the target's aspect ratio, resized to one of ``SIZES``
    (upscaled where the source is smaller), quality ``quality``."""
    folder = Path(folder)
    stamp = folder / f".made_{n}_q{quality}_s{seed}"
    if stamp.is_file():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    sources = [sample_photo(name).permute(1, 2, 0).numpy() for name in SAMPLE_TRAIN + SAMPLE_VAL]
    rng = np.random.default_rng(seed)
    for i in range(n):
        src = sources[i % len(sources)]
        h, w = SIZES[(i // len(sources) + i) % len(SIZES)]
        sh, sw = src.shape[:2]
        scale = min(sh / h, sw / w) * rng.uniform(0.7, 1.0)  # a region at the target's aspect ratio
        rh, rw = max(1, int(h * scale)), max(1, int(w * scale))
        top, left = rng.integers(0, sh - rh + 1), rng.integers(0, sw - rw + 1)
        region = Image.fromarray(np.ascontiguousarray(src[top : top + rh, left : left + rw]))
        region.resize((w, h), Image.BICUBIC).save(folder / f"photo_{i:03d}.jpg", quality=quality)
    stamp.write_text("done\n")
    return folder


def describe(folder: Path) -> dict:
    files = sorted(folder.glob("*.jpg"))
    sizes = [Image.open(f).size[::-1] for f in files]
    return {
        "folder": str(folder.relative_to(ROOT) if folder.is_relative_to(ROOT) else folder),
        "files": len(files),
        "sizes_hw": sorted({f"{h}x{w}" for h, w in sizes}),
        "mean_megapixels": round(float(np.mean([h * w for h, w in sizes])) / 1e6, 3),
        "mean_kb": round(float(np.mean([f.stat().st_size for f in files])) / 1024, 1),
        "quality": 90,
    }


def loader(folder: Path, decode: str, workers: int, batch: int, crop: int, resize: int, repeats: int):
    data = ColorizationData("bench", root=str(folder), val_root=str(folder), crop=crop, resize=resize,
                            batch_size=batch, num_workers=workers, repeats=repeats, seed=0, decode=decode)  # fmt: skip
    data.setup("fit")
    return data.train_dataloader()


def timed_pass(dl, device: torch.device, warmup: int, batches: int) -> float:
    """Images/s over ``batches`` batches after ``warmup`` untimed ones, each finished on ``device``."""

    def finish(batch) -> int:
        x, _ = finish_on_device(batch, device)
        x = x.to(device, non_blocking=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return len(x)

    it = iter(dl)
    for _ in range(warmup):
        finish(next(it))
    t0, images = time.perf_counter(), 0
    for _ in range(batches):
        images += finish(next(it))
    seconds = time.perf_counter() - t0
    del it
    return images / seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photos", default=str(ROOT / "outputs" / "bench_photos"))
    ap.add_argument("--n-photos", type=int, default=48)
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--crop", type=int, default=180)
    ap.add_argument("--resize", type=int, default=256)
    ap.add_argument("--warmup", type=int, default=8, help="untimed batches per pass (steady state)")
    ap.add_argument("--batches", type=int, default=12, help="timed batches per pass")
    ap.add_argument("--repeats", type=int, default=3, help="passes per configuration (best kept)")
    ap.add_argument("--device", default=None, help="default: cuda when present, else cpu")
    ap.add_argument("--threads", type=int, default=None, help="torch threads of the main process (default: torch's)")
    ap.add_argument("--name", default="bench_input")
    args = ap.parse_args()
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if args.threads:
        torch.set_num_threads(args.threads)
    load_before = os.getloadavg()[0]
    folder = make_photos(args.photos, args.n_photos)
    per_pass = (args.warmup + args.batches) * args.batch
    data_repeats = -(-per_pass // len(list(folder.glob("*.jpg"))))  # one pass never runs out of images
    configs = [(w, d) for w in args.workers for d in ("cpu", "device")]
    loaders = {c: loader(folder, c[1], c[0], args.batch, args.crop, args.resize, data_repeats) for c in configs}
    passes: dict[tuple[int, str], list[float]] = {c: [] for c in configs}
    for r in range(args.repeats):
        for c in configs:
            passes[c].append(timed_pass(loaders[c], device, args.warmup, args.batches))
            print(f"pass {r}: workers {c[0]}, decode {c[1]}: {passes[c][-1]:.1f} images/s", flush=True)
    del loaders
    best = {c: max(v) for c, v in passes.items()}
    figures = [
        {
            "workers": w,
            "decode": d,
            "images_per_s": round(best[(w, d)], 1),
            "passes_images_per_s": [round(v, 1) for v in passes[(w, d)]],
        }
        for w, d in configs
    ]
    ratios = {f"workers_{w}": round(best[(w, "device")] / best[(w, "cpu")], 3) for w in args.workers}
    result = {
        "what": (
            f"input pipeline alone, images/s: ColorizationData training loader (shorter side {args.resize}, "
            f"random {args.crop} crop, flip), batch {args.batch}, each batch finished on {device.type}"
        ),
        "device": str(device) if device.type == "cpu" else torch.cuda.get_device_name(device),
        "main_process_torch_threads": torch.get_num_threads(),
        "photos": describe(folder),
        "timing": (
            f"best of {args.repeats} passes per configuration, configurations interleaved; a pass: "
            f"{args.warmup} untimed batches, then {args.batches} timed"
        ),
        "figures": figures,
        "device_over_cpu_decode": ratios,
        "load": {"before": load_before, "after": os.getloadavg()[0]},
        "note": (
            "decode=device on a CPU-only machine decodes in the main process (the training process), so "
            "it cannot use the workers; on CUDA, nvJPEG decodes the batch on the GPU"
            if device.type == "cpu"
            else "decode=device: nvJPEG batched decode, resize and crop on the GPU"
        ),
    }
    for f in figures:
        print(f"workers {f['workers']}, decode {f['decode']:6s}: {f['images_per_s']:8.1f} images/s")
    print("device / cpu decode:", ratios)
    print(f"wrote {write_result(args.name, result)}")


if __name__ == "__main__":
    main()
