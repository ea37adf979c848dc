"""Speed of a pretext training step, measured in one run; and the CPU precision check.

    python benchmarks/bench_train.py [--batch 32] [--crop 180] [--repeats 3]           # step: module vs bare
    python benchmarks/bench_train.py --lightning [--steps 5] [--warmup 2] [--decode cpu]  # Trainer.fit vs bare
    python benchmarks/bench_train.py --compile [--repeats 3]                             # torch.compile gain
    python benchmarks/bench_train.py --precision-check [--check-steps 200]               # bf16-mixed vs fp32

Step (default): a decoded uint8 batch -> Lab -> point-sampled targets -> soft encoding and
rebalancing -> forward / backward -> optimizer step (the LightningModule's own code path) against
the bare step: forward / backward / step of the same net and loss on pre-made input and targets.
Target on this CPU: end to end <= 1.15 x bare. With a GPU it also records images/s at batch 256
with bf16 autocast and channels_last. Writes bench_train.json.

Lightning (``--lightning``): the real run, ``pretext/train.py``'s ``train()`` with overrides
(``model=alexnet``, fc 4096, on a folder of full-size JPEGs made by ``benchmarks/bench_input.py``,
``trainer.precision`` as resolved, auto by default), so each step includes the data loader,
the transfer and batch hook, logging and Lightning's loop. A callback times each step from the end
of the previous one, and after each runs one bare step (same net shape, same precision) timed on
its own: the two interleaved. The first ``--warmup`` steps are not counted. Reported: images/s of
both (best and median step) and the ratio. Writes bench_train_lightning.json.

Compile (``--compile``): the bare step with the net eager against ``net.compile()`` (what
``model.compile=true`` does), interleaved, after timing the compilation. Writes bench_train_compile.json.

Precision check (``--precision-check``): ``python pretext/train.py experiment=demo`` for 200 steps
at ``trainer.precision=32-true``, at ``bf16-mixed`` and at 32-true again (how far fp32 differs from
itself in another process), each run its own process, same seed; the final losses (train/loss,
mean of the last 5 logged values, and val/loss at the end) must agree within 1% for bf16-mixed to
be the CPU default (pretext/run.py ``CPU_BF16_MATCHES_FP32``). Writes precision_check_cpu.json.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import lightning as L
import torch

from benchmarks.bench_color import photos
from benchmarks.common import time_interleaved, write_result
from pretext.color import Gamut, rgb_to_lab
from pretext.losses import plain_and_weighted, soft_cross_entropy
from pretext.module import ColorizationModule
from pretext.nets import AlexNetCC

TARGET = 1.15
ROOT = Path(__file__).resolve().parents[1]


def make_module(device: torch.device, fc_width: int = 4096) -> ColorizationModule:
    gamut = Gamut.from_srgb()
    gamut = Gamut(gamut.centers, torch.full((gamut.Q,), 1.0 / gamut.Q), "srgb")
    net = AlexNetCC(out_channels=gamut.Q, fc_width=fc_width)
    opt = lambda params: torch.optim.Adam(params, lr=3e-5, betas=(0.9, 0.999), weight_decay=1e-3)  # noqa: E731
    return ColorizationModule(name="colorization", net=net, gamut=gamut, optimizer=opt).to(device)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def autocast_for(precision: str, device: torch.device):
    """The autocast context Lightning's ``precision`` puts around a step (none for true precisions)."""
    if precision == "bf16-mixed":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    if precision == "16-mixed":
        return torch.autocast(device.type, dtype=torch.float16)
    return contextlib.nullcontext()


def bare_step(module: ColorizationModule, rgb: torch.Tensor, precision: str = "32-true"):
    """A function running forward / backward / step of ``module``'s net and loss on input and targets
    made once from ``rgb`` (the step without the data and target work)."""
    device = rgb.device
    opt = module.optimizer_factory(module.net.parameters())
    with torch.no_grad():
        lab = rgb_to_lab(rgb)
        x = module.encoder_input(rgb, lab)
        out = module.net(x)
        ab_t = torch.nn.functional.interpolate(lab[:, 1:], size=out.shape[-2:], mode="nearest")
        idx, w, nearest = module.encoder(ab_t)
        weights = module.bin_weights[nearest]

    def step():
        with torch.enable_grad():
            with autocast_for(precision, device):
                out = module.net(x)
            loss = plain_and_weighted(soft_cross_entropy(out.float(), idx, w), weights)[1]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        sync(device)

    return step


# ----------------------------------------------------------------------------------- step (default)
def bench_step(args) -> None:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    module = make_module(device)
    opt = module.optimizer_factory(module.net.parameters())
    rgb, source = photos(args.batch, size=args.crop)
    rgb = rgb.to(device)

    def end_to_end():
        loss = module._forward(rgb)[-1]["loss_weighted"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sync(device)

    bare = bare_step(module, rgb)
    load_before = os.getloadavg()[0]
    t = time_interleaved({"end_to_end": end_to_end, "bare": bare}, repeats=args.repeats, warmup=1)
    ratio = t["end_to_end"] / t["bare"]
    result = {
        "what": f"AlexNetCC (fc 4096) training step, batch {args.batch}, {args.crop} crops, fp32",
        "input": source,
        "timing": f"best of {args.repeats}",
        "end_to_end_s": t["end_to_end"],
        "bare_s": t["bare"],
        "end_to_end_images_per_s": args.batch / t["end_to_end"],
        "ratio": ratio,
        "target": f"<= {TARGET}",
        "met": ratio <= TARGET,
        "load": {"before": load_before, "after": os.getloadavg()[0]},
    }
    if device.type == "cuda":
        result["gpu"] = gpu_throughput(module)
    print(
        f"end to end {t['end_to_end']:.3f} s, bare {t['bare']:.3f} s per step: ratio {ratio:.3f} "
        f"(target <= {TARGET}); {args.batch / t['end_to_end']:.1f} images/s"
    )
    print(f"wrote {write_result(args.name or 'bench_train', result)}")


def gpu_throughput(module: ColorizationModule, batch: int = 256, crop: int = 180, steps: int = 10) -> dict:
    """Images/s of the end-to-end step at batch 256 with bf16 autocast and channels_last."""
    module.net.to(memory_format=torch.channels_last)
    opt = module.optimizer_factory(module.net.parameters())
    rgb = (torch.rand(batch, 3, crop, crop, device="cuda") * 255).to(torch.uint8)

    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = module._forward(rgb)[-1]["loss_weighted"]
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


# ----------------------------------------------------------------------------------- Lightning
class StepClock(L.Callback):
    """Times every training step from the end of the previous one (``wait``: until the batch is on
    the device and finished; ``step``: the whole of it), then runs one bare step, timed on its own.
    The bare step is set on the class by the benchmark (the callback is built by Hydra)."""

    bare = None  # a callable, or None: no bare steps
    last: StepClock | None = None

    def __init__(self):
        self.steps: list[float] = []
        self.waits: list[float] = []
        self.bares: list[float] = []
        StepClock.last = self

    def on_train_start(self, trainer, pl_module) -> None:
        self._t = time.perf_counter()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.waits.append(time.perf_counter() - self._t)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        sync(pl_module.device)
        self.steps.append(time.perf_counter() - self._t)
        if StepClock.bare is not None:
            t0 = time.perf_counter()
            StepClock.bare()
            self.bares.append(time.perf_counter() - t0)
        self._t = time.perf_counter()


def compose(overrides: list[str]):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return hydra_compose("pretext", overrides=overrides)


def bench_lightning(args) -> None:
    from benchmarks.bench_input import describe, make_photos
    from benchmarks.bench_train import StepClock as Clock  # the class Hydra instantiates (not __main__'s)
    from pretext.run import trainer_kwargs
    from pretext.train import train

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    folder = make_photos(args.photos)
    run_dir = ROOT / "outputs" / "bench_train_lightning"
    shutil.rmtree(run_dir, ignore_errors=True)
    total = args.warmup + args.steps
    overrides = [
        "model=alexnet",
        f"model.batch_size={args.batch}",
        f"model.crop={args.crop}",
        f"model.max_steps={total}",
        "data=folder",
        f"data.root={folder}",
        f"data.val_root={folder}",
        f"data.num_workers={args.workers}",
        f"data.decode={args.decode}",
        f"data.repeats={-(-(total + 1) * args.batch // len(list(folder.glob('*.jpg'))))}",  # one epoch
        f"trainer.precision={args.precision}",
        "trainer.val_check_interval=100000",
        "trainer.limit_val_batches=0",
        "trainer.ckpt_every_n_steps=100000",
        "trainer.log_every_n_steps=1",
        "logger=csv",
        "samples=false",
        "color.prior_images=16",
        f"run_dir={run_dir}",
        "+callbacks.step_clock._target_=benchmarks.bench_train.StepClock",
        *args.override,
    ]
    cfg = compose(overrides)
    precision = str(trainer_kwargs(cfg.trainer)["precision"])
    torch.manual_seed(0)
    bare_module = make_module(device, fc_width=cfg.model.net.fc_width)
    rgb, source = photos(args.batch, size=args.crop)
    Clock.bare = bare_step(bare_module, rgb.to(device), precision)
    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    outcome = train(cfg)
    wall = time.perf_counter() - t0
    clock = Clock.last
    steps, waits, bares = clock.steps[args.warmup :], clock.waits[args.warmup :], clock.bares[args.warmup :]
    best, best_bare = min(steps), min(bares)
    med, med_bare = statistics.median(steps), statistics.median(bares)
    result = {
        "what": (
            f"AlexNetCC (fc {cfg.model.net.fc_width}) pretext training, batch {args.batch}, {args.crop} crops: "
            "pretext/train.py's train() (Trainer.fit: data loader, transfer, batch hook, Lab, encoding, "
            "forward / backward / step, logging) against the bare step (net and loss on pre-made tensors)"
        ),
        "precision": precision,
        "decode": args.decode,
        "workers": args.workers,
        "data": describe(folder),
        "bare_input": source,
        "overrides": overrides,
        "timing": (
            f"{args.steps} steps after {args.warmup} warm-up steps, one bare step after each Lightning step "
            "(interleaved); best and median"
        ),
        "lightning_step_s": {"best": best, "median": med, "all": steps},
        "data_wait_s": {"best": min(waits), "median": statistics.median(waits), "all": waits},
        "bare_step_s": {"best": best_bare, "median": med_bare, "all": bares},
        "lightning_images_per_s": {"best": args.batch / best, "median": args.batch / med},
        "bare_images_per_s": {"best": args.batch / best_bare, "median": args.batch / med_bare},
        "ratio_lightning_over_bare": {"best": best / best_bare, "median": med / med_bare},
        "fit_wall_s": wall,
        "global_step": outcome["global_step"],
        "load": {"before": load_before, "after": os.getloadavg()[0]},
    }
    print(
        f"Lightning {best:.3f} s (median {med:.3f}), bare {best_bare:.3f} s (median {med_bare:.3f}) per step: "
        f"ratio {best / best_bare:.3f} (median {med / med_bare:.3f}); {args.batch / best:.2f} images/s, "
        f"precision {precision}"
    )
    print(f"wrote {write_result(args.name or 'bench_train_lightning', result)}")


# ----------------------------------------------------------------------------------- compile
def bench_compile(args) -> None:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    rgb, source = photos(args.batch, size=args.crop)
    rgb = rgb.to(device)
    torch.manual_seed(0)
    eager = make_module(device)
    torch.manual_seed(0)
    compiled = make_module(device)
    compiled.net.compile()
    eager_step, compiled_step = bare_step(eager, rgb, args.precision), bare_step(compiled, rgb, args.precision)
    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    compiled_step()  # compiles forward and backward
    compile_s = time.perf_counter() - t0
    print(f"compiled in {compile_s:.1f} s (first step)", flush=True)
    t = time_interleaved({"eager": eager_step, "compiled": compiled_step}, repeats=args.repeats, warmup=1)
    result = {
        "what": (
            f"bare training step (forward / backward / Adam) of AlexNetCC (fc 4096), batch {args.batch}, "
            f"{args.crop} crops, {args.precision}: eager net against net.compile() (model.compile=true)"
        ),
        "input": source,
        "timing": f"best of {args.repeats}, interleaved, after one warm-up step each",
        "first_compiled_step_s": compile_s,
        "eager_s": t["eager"],
        "compiled_s": t["compiled"],
        "speedup_compiled": t["eager"] / t["compiled"],
        "load": {"before": load_before, "after": os.getloadavg()[0]},
    }
    print(f"eager {t['eager']:.3f} s, compiled {t['compiled']:.3f} s: {t['eager'] / t['compiled']:.3f}x")
    print(f"wrote {write_result(args.name or 'bench_train_compile', result)}")


# ----------------------------------------------------------------------------------- precision check
def logged(run_dir: Path) -> tuple[dict[int, float], dict[int, float]]:
    """train/loss and val/loss by step from a run's CSV log."""
    train, val = {}, {}
    for row in csv.DictReader(open(run_dir / "csv" / "version_0" / "metrics.csv")):
        if row.get("train/loss"):
            train[int(row["step"])] = float(row["train/loss"])
        if row.get("val/loss"):
            val[int(row["step"])] = float(row["val/loss"])
    return train, val


def precision_check(args) -> None:
    from pretext.run import CPU_BF16_FLAGS, read_cpu_flags

    flags = sorted(set(CPU_BF16_FLAGS) & read_cpu_flags())
    load_before = os.getloadavg()[0]
    runs = {}
    for name in ("32-true", "bf16-mixed", "32-true_repeat")[: 3 if args.repeat_fp32 else 2]:
        precision = name.split("_")[0]
        run_dir = ROOT / "outputs" / "precision_check" / name
        shutil.rmtree(run_dir, ignore_errors=True)
        overrides = ["experiment=demo", f"model.max_steps={args.check_steps}", f"trainer.precision={precision}",
                     "trainer.accelerator=cpu", "logger=csv", "samples=false", f"run_dir={run_dir}"]  # fmt: skip
        command = ["python", "pretext/train.py", *overrides]
        t0 = time.perf_counter()  # each run in its own process, as a user runs it
        subprocess.run([sys.executable, *command[1:]], cwd=ROOT, check=True, capture_output=True,
                       env={**os.environ, "WANDB_MODE": "offline"})  # fmt: skip
        wall = time.perf_counter() - t0
        tr, val = logged(run_dir)
        last = sorted(tr)[-5:]
        log_lines = (run_dir / "train.log").read_text().splitlines() if (run_dir / "train.log").is_file() else []
        runs[name] = {
            "command": " ".join(command),
            "log_precision_line": next((x for x in log_lines if "[pretext.run]" in x and "] - precision " in x), None),
            "global_step": torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["global_step"],
            "train_loss_last5_mean": statistics.mean(tr[s] for s in last),
            "train_loss_last5_steps": last,
            "train_loss_final": tr[max(tr)],
            "val_loss_final": val[max(val)],
            "val_loss_by_step": val,
            "train_loss_by_step": tr,
            "wall_s": wall,
        }
        print(f"{name}: train/loss {runs[name]['train_loss_last5_mean']:.4f} (last 5 logged), "
              f"val/loss {runs[name]['val_loss_final']:.4f}, {wall:.0f} s", flush=True)  # fmt: skip
    keys = ("train_loss_last5_mean", "val_loss_final", "train_loss_final")
    fp32, bf16 = runs["32-true"], runs["bf16-mixed"]
    rel = {key: abs(bf16[key] - fp32[key]) / abs(fp32[key]) for key in keys}
    if "32-true_repeat" in runs:  # the noise floor: fp32 against itself, same seed, another process
        again = runs["32-true_repeat"]
        rel_fp32 = {key: abs(again[key] - fp32[key]) / abs(fp32[key]) for key in keys}
    matches = rel["train_loss_last5_mean"] <= 0.01 and rel["val_loss_final"] <= 0.01
    result = {
        "what": (
            f"{args.check_steps} steps of the demo (python pretext/train.py experiment=demo model.max_steps="
            f"{args.check_steps}), fp32 (32-true) against bf16-mixed, same seed, on this CPU"
        ),
        "cpu_bf16_flags": flags,
        "criterion": (
            "final losses within 1%: train/loss (mean of the last 5 logged values) and val/loss at the end; "
            "the single final train/loss is reported too"
        ),
        "relative_difference": rel,
        "fp32_repeat_relative_difference": rel_fp32 if args.repeat_fp32 else None,
        "bf16_matches_fp32": matches,
        "decision": "bf16-mixed is the CPU default on CPUs with native bf16" if matches else "fp32 stays the default",
        "runs": runs,
        "wall_note": "wall_s are whole runs one after the other, not interleaved: indicative only",
        "load": {"before": load_before, "after": os.getloadavg()[0]},
    }
    print(f"relative differences {rel}: {'match' if matches else 'no match'}")
    print(f"wrote {write_result(args.name or 'precision_check_cpu', result)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--lightning", action="store_true", help="Trainer.fit end to end against the bare step")
    mode.add_argument("--compile", action="store_true", help="torch.compile of the net against eager")
    mode.add_argument("--precision-check", action="store_true", help="200 demo steps, bf16-mixed vs fp32")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--crop", type=int, default=180)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--steps", type=int, default=5, help="--lightning: timed steps")
    ap.add_argument("--warmup", type=int, default=2, help="--lightning: untimed first steps")
    ap.add_argument("--workers", type=int, default=2, help="--lightning: data.num_workers")
    ap.add_argument("--decode", default="cpu", help="--lightning: data.decode (cpu | device)")
    ap.add_argument("--precision", default="auto", help="--lightning: trainer.precision; --compile: autocast")
    ap.add_argument("--photos", default=str(ROOT / "outputs" / "bench_photos"), help="--lightning: JPEG folder")
    ap.add_argument("--override", nargs="*", default=[], help="--lightning: more Hydra overrides")
    ap.add_argument("--check-steps", type=int, default=200)
    ap.add_argument("--no-repeat-fp32", dest="repeat_fp32", action="store_false",
                    help="--precision-check: skip the second fp32 run (the run-to-run noise floor)")  # fmt: skip
    ap.add_argument("--name", default=None, help="result file name (without .json)")
    args = ap.parse_args()
    if args.compile and args.precision == "auto":
        args.precision = "32-true"
    if args.lightning:
        bench_lightning(args)
    elif args.compile:
        bench_compile(args)
    elif args.precision_check:
        precision_check(args)
    else:
        bench_step(args)


if __name__ == "__main__":
    main()
