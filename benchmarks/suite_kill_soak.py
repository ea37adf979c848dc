"""Suite kill soak: a small suite (a colorization pretext and Gaussian init, each probed by the
Lightning probe and the cached one, plus the colorization AuC) killed with SIGKILL at random moments
and inside the results store's write (while its temporary file is half written, and between the
written file and its rename), restarted with the same command until it finishes. Its store must then
hold exactly the records of an uninterrupted run (every line a whole record, no key twice, the same
keys), with the same values.

    python benchmarks/suite_kill_soak.py [--runs 4] [--out benchmarks/results/suite_kill_soak.json]

CPU, no workers. Each start is ``benchmarks/suite.py`` run as a user runs it (a child process), with
the suite's config in a generated ``--config-dir``; a kill in the store write is made by the child
wrapper below, which wraps the store's ``json`` (mid-file) or ``Path.replace`` (before the rename)
once, remembered by a marker file.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

from benchmarks.common import machine
from downstream.results import read_records, record_key

ROOT = Path(__file__).resolve().parents[1]
PRETEXT = [
    "model=alexnet_small", "model.net.fc_width=16", "model.crop=64", "model.batch_size=4", "model.max_steps=6",
    "model.lr_milestones=[]", "model.lr_factors=[]", "data.num_workers=0", "data.resize=72", "data=folder",
    "trainer.accelerator=cpu", "trainer.devices=1", "trainer.val_check_interval=3", "trainer.ckpt_every_n_steps=2",
    "trainer.limit_val_batches=1", "trainer.precision=32-true", "color.prior_images=4", "samples=false", "logger=csv",
    "callbacks.progress_bar=null",
]  # fmt: skip
PROBE = [
    "layer=[conv1,conv2]", "schedule=short", "schedule.max_steps=6", "schedule.batch_size=8", "schedule.val_every=3",
    "schedule.ckpt_every=2", "data.num_workers=0", "logger=csv", "trainer.accelerator=cpu", "trainer.devices=1",
    "trainer.precision=32-true", "callbacks.progress_bar=null",
]  # fmt: skip
CACHED = [  # the cached probe: a kill may land in its feature cache's write, or in the suite's deletion of it
    "layer=[conv1,conv2]", "num_workers=0", "seeds=[0,1]", "probe.epochs=3", "probe.batch_size=4",
    "probe.lrs=[0.01,0.1]", "probe.held_out=0.25", "device=cpu", "data.name=soak",
]  # fmt: skip
PLANS = {0: "store_mid_write", 1: "store_before_rename"}  # run index -> its kill in the store write


def write_data(root: Path) -> None:
    """Two classes of flat-coloured JPEGs (4 train and 2 val photos each)."""
    rng = np.random.default_rng(0)
    for split, n in (("train", 4), ("val", 2)):
        for c in ("reds", "blues"):
            (root / split / c).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                img = (rng.random((6, 6, 3)) * 255).astype(np.uint8).repeat(16, 0).repeat(16, 1)
                img[..., 0 if c == "reds" else 2] = 230
                Image.fromarray(img).save(root / split / c / f"{i}.jpg", quality=90)


def write_suite(config_dir: Path, data: Path) -> None:
    suite = {
        "name": "kill_soak",
        "methods": {
            "colorization": {"pretext": [*PRETEXT, f"data.root={data / 'train'}", f"data.val_root={data / 'val'}"]},
            "gaussian": {"init": "gaussian"},
        },
        "evaluations": {
            "linear_probe": {"kind": "linear_probe", "overrides": [*PROBE, f"data.root={data}"]},
            "linear_probe_cached": {"kind": "linear_probe_cached", "overrides": [*CACHED, f"data.root={data}"]},
            "colorization_auc": {"kind": "colorization_auc", "overrides": [f"data.root={data / 'val'}", "net_size=64"]},
        },
    }
    (config_dir / "suite").mkdir(parents=True, exist_ok=True)
    (config_dir / "suite" / "kill_soak.yaml").write_text(yaml.safe_dump(suite))


def child(plan: str, marker: Path, argv: list[str]) -> None:
    """Run the suite's entry point as ``python benchmarks/suite.py ARGV`` would, killing this process
    once (``marker`` remembers it) inside the store's write when ``plan`` says so."""
    from benchmarks import suite
    from downstream import results

    def kill() -> None:
        marker.write_text(plan)
        os.kill(os.getpid(), signal.SIGKILL)

    if plan == "store_mid_write" and not marker.exists():

        class HalfWay:  # the store's json module: SIGKILL after the temporary file's first line
            calls = 0

            def __getattr__(self, name):
                return getattr(json, name)

            def dumps(self, obj, **kw):
                if isinstance(obj, dict):  # a record's line (keys are lists)
                    HalfWay.calls += 1
                    if HalfWay.calls == 2:
                        kill()
                return json.dumps(obj, **kw)

        results.json = HalfWay()
    if plan == "store_before_rename" and not marker.exists():
        replace = Path.replace

        def replace_then_maybe_kill(self, target):
            if Path(target).name == "results.jsonl":
                kill()
            return replace(self, target)

        Path.replace = replace_then_maybe_kill
    sys.argv = [str(ROOT / "benchmarks" / "suite.py"), *argv]
    suite.main()


def launch(root: Path, config_dir: Path, plan: str, marker: Path) -> subprocess.Popen:
    argv = [f"--config-dir={config_dir}", "suite=kill_soak", f"root={root}"]
    cmd = [sys.executable, "-m", "benchmarks.suite_kill_soak", "--child", plan, str(marker), *argv]
    env = os.environ | {"WANDB_MODE": "offline"}
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def soak_one(root: Path, config_dir: Path, plan: str, rng: random.Random, random_kills: int, span: float) -> dict:
    """Start the suite until it finishes; ``random_kills`` of the starts are killed at a random
    moment within ``span`` seconds (the uninterrupted run's time)."""
    marker = root.parent / f"{root.name}.killed"
    events = []
    while True:
        p = launch(root, config_dir, plan, marker)
        if random_kills > 0:
            try:
                # anywhere in the run's life: a warm start takes less than the (first, cold) reference,
                # so a window at its end (8 s on) missed every random run once the suite took ~10 s
                p.wait(timeout=rng.uniform(1.0, span))
            except subprocess.TimeoutExpired:
                p.send_signal(signal.SIGKILL)
                random_kills -= 1
        _, err = p.communicate()
        events.append({"start": len(events) + 1, "returncode": p.returncode})
        if p.returncode == 0:
            return {"plan": plan, "starts": len(events), "events": events}
        if p.returncode != -signal.SIGKILL:
            raise RuntimeError(f"{root}: exit {p.returncode}:\n{err[-3000:]}")
        if len(events) > 12:
            raise RuntimeError(f"{root}: not done after {len(events)} starts")


def same_run_key(record: dict) -> str:
    """A record's key less the checkpoint's digest: each run's pretext checkpoint is its own file."""
    return record_key(record | {"checkpoint_digest": ""})


def check_store(store: Path, reference: dict[str, float]) -> dict:
    lines = [x for x in store.read_text().splitlines() if x.strip()]
    whole = []
    for line in lines:
        try:
            whole.append(json.loads(line))
        except json.JSONDecodeError:
            pass
    keys = [same_run_key(r) for r in whole]
    values = {same_run_key(r): float(r["value"]) for r in whole}
    diffs = [abs(values[k] - v) for k, v in reference.items() if k in values]
    stale = sorted(p.name for p in store.parent.glob(".results.jsonl.*"))
    return {
        "lines": len(lines),
        "torn_lines": len(lines) - len(whole),
        "duplicate_keys": len(keys) - len(set(keys)),
        "missing_keys": len(set(reference) - set(keys)),
        "extra_keys": len(set(keys) - set(reference)),
        "max_abs_value_diff": max(diffs) if diffs else None,
        "stale_temp_files": stale,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=4)
    ap.add_argument("--root", default="outputs/suite_kill_soak")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "suite_kill_soak.json"))
    ap.add_argument("--child", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        plan, marker, *argv = args.child
        return child(plan, Path(marker), argv)
    root = (Path(args.root) / time.strftime("%Y%m%d-%H%M%S")).resolve()
    write_data(root / "data")
    write_suite(root / "conf", root / "data")
    rng, start = random.Random(args.seed), time.time()
    ref = launch(root / "reference", root / "conf", "none", root / "reference.killed")
    _, err = ref.communicate()
    if ref.returncode != 0:
        raise RuntimeError(err[-3000:])
    span = time.time() - start
    reference = {same_run_key(r): float(r["value"]) for r in read_records(root / "reference" / "results.jsonl")}
    runs = []
    for i in range(args.runs):
        plan = PLANS.get(i, "random")
        r = soak_one(root / f"run{i:02d}", root / "conf", plan, rng, 1 if i in PLANS else 2, span)
        r |= check_store(root / f"run{i:02d}" / "results.jsonl", reference)
        r["kills"] = sum(e["returncode"] == -signal.SIGKILL for e in r["events"])
        r["passed"] = (r["torn_lines"] == r["duplicate_keys"] == r["missing_keys"] == r["extra_keys"] == 0
                       and not r["stale_temp_files"] and r["max_abs_value_diff"] <= 1e-6)  # fmt: skip
        runs.append(r)
        verdict = "ok" if r["passed"] else f"FAILED: {r}"
        print(f"run {i}: plan {plan}, {r['kills']} kills, {r['starts']} starts, {r['lines']} records, max |value - "
              f"reference| {r['max_abs_value_diff']:.3g} -> {verdict}", flush=True)  # fmt: skip
    result = {
        "what": "a small suite (colorization pretext and Gaussian init, linear probes, Lightning and cached, "
                "colorization AuC) killed with "
                "SIGKILL at random moments and inside the store's write (temporary file half written; written, "
                "not yet renamed), restarted with the same command until done, against an uninterrupted run",
        "command": " ".join(sys.argv),
        "machine": machine(),
        "reference_records": len(reference),
        "reference_wall_s": round(span, 1),
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
