"""Kill soak: pretext runs killed with SIGKILL at random moments and at chosen ones (during a
checkpoint write, during validation, between the step file and last.ckpt), each restarted with
``resume=auto`` until done, must end at the asked step with the weights of an uninterrupted run.

    python benchmarks/kill_soak.py [--runs 10] [--out benchmarks/results/kill_soak.json]

CPU, one process, no workers (deterministic). A restart resumes from the newest checkpoint that loads
(``pretext/run.py``); the data order comes back with the datamodule's state.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import lightning as L
import torch

from benchmarks.common import machine

ROOT = Path(__file__).resolve().parents[1]
STEPS = 24
RUN = [
    "model=alexnet_small", "model.net.fc_width=256", "model.crop=64", "model.batch_size=4", f"model.max_steps={STEPS}",
    "model.lr_milestones=[0.5]", "model.lr_factors=[0.1]", "model.optimizer.lr=1e-3", "logger=csv",
    "data.num_workers=0", "data.repeats=2", "data.resize=80", "trainer.accelerator=cpu", "trainer.devices=1",
    "trainer.val_check_interval=6", "trainer.ckpt_every_n_steps=3", "trainer.limit_val_batches=2",
    "color.prior_images=7", "samples=false", "callbacks.progress_bar=null", "trainer.precision=32-true",
]  # fmt: skip
PLANS = {  # run index -> what kills it (the others: random moments only)
    0: ("checkpoint_write", 6),
    1: ("validation", 12),
    2: ("after_step_file", 9),
    3: ("checkpoint_write", 3),
}


class KillAt(L.Callback):
    """SIGKILL this process once (a marker file remembers it across restarts) at ``at``:
    ``checkpoint_write`` (a few ms into writing the checkpoint of ``step``), ``validation`` (at the
    first validation batch at ``step``) or ``after_step_file`` (the step file of ``step`` on disk,
    ``last.ckpt`` not yet written)."""

    def __init__(self, at: str, step: int, marker: str):
        self.at, self.step, self.marker = at, step, Path(marker)
        self._saves = 0

    def _kill(self, delay: float = 0.0) -> None:
        if self.marker.exists():
            return
        self.marker.write_text(self.at)
        if delay:
            threading.Timer(delay, os.kill, (os.getpid(), signal.SIGKILL)).start()
        else:
            os.kill(os.getpid(), signal.SIGKILL)

    def on_save_checkpoint(self, trainer, pl_module, checkpoint) -> None:
        if trainer.global_step != self.step:
            return
        self._saves += 1
        if self.at == "checkpoint_write" and self._saves == 1:
            self._kill(delay=0.005)  # lands inside torch.save of the step file
        if self.at == "after_step_file" and self._saves == 2:  # the second save at this step: last.ckpt
            self._kill()

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0) -> None:
        if self.at == "validation" and trainer.global_step == self.step:
            self._kill()


def launch(run_dir: Path, extra: list[str]) -> subprocess.Popen:
    cmd = [sys.executable, str(ROOT / "pretext" / "train.py"), *RUN, f"run_dir={run_dir}", *extra]
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def final_weights(run_dir: Path) -> tuple[int, dict]:
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    return int(ckpt["global_step"]), ckpt["state_dict"]


def soak_one(run_dir: Path, plan: tuple[str, int] | None, rng: random.Random, random_kills: int) -> dict:
    extra = []
    if plan:
        marker = run_dir.parent / f"{run_dir.name}.killed"
        extra = ["+callbacks.kill._target_=benchmarks.kill_soak.KillAt", f"+callbacks.kill.at={plan[0]}",
                 f"+callbacks.kill.step={plan[1]}", f"+callbacks.kill.marker={marker}"]  # fmt: skip
    events, starts = [], 0
    while True:
        p = launch(run_dir, [*extra, "resume=false" if starts == 0 else "resume=auto"])
        starts += 1
        if random_kills > 0:
            delay = rng.uniform(6.0, 20.0)  # start-up (imports) takes ~5-8 s on this CPU
            try:
                p.wait(timeout=delay)
            except subprocess.TimeoutExpired:
                p.send_signal(signal.SIGKILL)
                random_kills -= 1
        _, err = p.communicate()
        folder = run_dir / "checkpoints"
        ckpts = sorted(x.name for x in folder.glob("*")) if folder.is_dir() else []
        events.append({"start": starts, "returncode": p.returncode, "files_after": ckpts})
        if p.returncode == 0:
            break
        if p.returncode != -signal.SIGKILL:
            raise RuntimeError(f"{run_dir}: exit {p.returncode}:\n{err[-3000:]}")
        if starts > 12:
            raise RuntimeError(f"{run_dir}: not done after {starts} starts")
    return {"plan": list(plan) if plan else "random", "starts": starts, "events": events}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--root", default="outputs/kill_soak")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "kill_soak.json"))
    args = ap.parse_args()
    root = Path(args.root) / time.strftime("%Y%m%d-%H%M%S")
    rng = random.Random(args.seed)
    start = time.time()
    ref = launch(root / "reference", ["resume=false"])
    if ref.wait() != 0:
        raise RuntimeError(ref.stderr.read()[-3000:])
    ref_step, ref_w = final_weights(root / "reference")
    runs = []
    for i in range(args.runs):
        plan = PLANS.get(i)
        r = soak_one(root / f"run{i:02d}", plan, rng, random_kills=1 if plan else 2)
        step, w = final_weights(root / f"run{i:02d}")
        r["final_step"] = step
        r["max_abs_weight_diff"] = max(float((w[k].float() - ref_w[k].float()).abs().max()) for k in ref_w)
        r["kills"] = sum(e["returncode"] == -signal.SIGKILL for e in r["events"])
        r["passed"] = step == ref_step == STEPS and r["max_abs_weight_diff"] <= 1e-6
        runs.append(r)
        print(f"run {i}: plan {r['plan']}, {r['kills']} kills, {r['starts']} starts, step {step}, "
              f"max |w - w_ref| {r['max_abs_weight_diff']:.3g} -> {'ok' if r['passed'] else 'FAILED'}", flush=True)
    result = {
        "what": "pretext runs killed with SIGKILL (random moments, and during a checkpoint write, during validation, "
                "between the step file and last.ckpt), restarted with resume=auto until done, against an "
                "uninterrupted run",
        "command": " ".join(sys.argv),
        "machine": machine(),
        "steps": STEPS,
        "tolerance": 1e-6,
        "passed": sum(r["passed"] for r in runs),
        "runs": len(runs),
        "total_kills": sum(r["kills"] for r in runs),
        "wall_s": round(time.time() - start, 1),
        "details": runs,
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"{result['passed']} of {result['runs']} passed ({result['total_kills']} kills); wrote {args.out}")


if __name__ == "__main__":
    main()
