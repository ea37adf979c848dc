"""The benchmark suite: methods x evaluations, run where missing from the results store.

    python benchmarks/suite.py suite=imagenette_cpu           # colorization, Context Encoders, Gaussian, supervised
    python benchmarks/suite.py suite=imagenette_cpu dry_run=true   # list what would run
    make report                                                # benchmarks/report.py on the suite's store

A suite (conf/suite/<name>.yaml) names methods (a pretext run to make, a checkpoint, or an
initialisation) and evaluations (linear_probe, svm_probe, pascal_cls, pascal_det, pascal_seg,
colorization_auc), each with its config overrides. Every (method, evaluation) job writes its records
to ``${root}/results.jsonl`` tagged with the job and a hash of its spec; a job whose records are
there is skipped, so a second invocation runs nothing. Each job has its own run folder under
``${root}/jobs``: a job killed part-way resumes from its last checkpoint on the next invocation, and
on SIGTERM / SIGUSR1 the suite saves, stops and says so.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import signal
import sys
import time
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

log = logging.getLogger("benchmarks.suite")
KINDS = ("linear_probe", "svm_probe", "pascal_cls", "pascal_det", "pascal_seg", "colorization_auc")


PENDING = object()  # a pretext checkpoint still to make


class Stopped(Exception):
    """A signal asked the suite to stop; what was done is saved."""


def spec_hash(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:10]


def compose_cfg(name: str, overrides: list[str]) -> DictConfig:
    """A config of conf/ composed with overrides, inside or outside a running Hydra app."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    if GlobalHydra.instance().is_initialized():
        return compose(config_name=name, overrides=overrides)
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose(config_name=name, overrides=overrides)


def check_suite(suite: DictConfig) -> None:
    for name, ev in suite.evaluations.items():
        if ev.kind not in KINDS:
            raise ValueError(f"evaluation {name}: kind={ev.kind!r} is not an evaluation; valid: {', '.join(KINDS)}")
        unknown = set(ev.get("only") or []) - set(suite.methods)
        if unknown:
            raise ValueError(f"evaluation {name}: only={sorted(unknown)} names no method of the suite "
                             f"({', '.join(suite.methods)})")  # fmt: skip
    for name, m in suite.methods.items():
        given = [k for k in ("pretext", "ckpt", "init") if m.get(k) is not None]
        if len(given) != 1:
            raise ValueError(f"method {name}: give exactly one of pretext (overrides for pretext/train.py), ckpt, init")


class Suite:
    def __init__(self, cfg: DictConfig):
        self.cfg, self.suite = cfg, cfg.suite
        check_suite(self.suite)
        self.root = Path(cfg.root)
        self.store = self.root / "results.jsonl"
        self.ran: list[str] = []
        self.skipped: list[str] = []
        self._digests: dict[str, str] = {}

    # ----------------------------------------------------------------------------------- methods
    def encoder_args(self, name: str) -> list[str]:
        """Overrides that point an evaluation at the method's encoder (training it first if needed)."""
        m = self.suite.methods[name]
        if m.get("ckpt"):
            return [f"ckpt={m.ckpt}"]
        if m.get("init"):
            extra = [f"init_data={m.init_data}"] if m.get("init_data") else []
            return [f"init={m.init}", *extra, f"init_channels={m.get('init_channels', 1)}"]
        return [f"ckpt={self.pretext(name)}"]

    def pretext(self, name: str) -> Path:
        from pretext.checkpointing import PreemptionCheckpoint
        from pretext.train import train

        overrides = [*self.suite.get("pretext_overrides", []), *self.suite.methods[name].pretext]
        job = self.root / "jobs" / f"pretext-{name}"
        done = job / "done.json"
        h = spec_hash(overrides)
        if done.is_file() and json.loads(done.read_text()).get("spec") == h:
            return Path(json.loads(done.read_text())["checkpoint"])
        run_dir = job / f"run-{h}"
        resume = (run_dir / "checkpoints" / "last.ckpt").is_file()
        if self.cfg.dry_run:
            job_name = f"pretext-{name}" + (" (resume)" if resume else "")
            if job_name not in self.ran:
                self.ran.append(job_name)
            return run_dir / "checkpoints" / "last.ckpt"
        log.info("suite: pretext run for %s%s", name, " (resuming)" if resume else "")
        start = time.time()
        cfg = compose_cfg("pretext", [*overrides, f"run_dir={run_dir}", f"resume={str(resume).lower()}"])
        result = train(cfg)
        if PreemptionCheckpoint.preempted:
            raise Stopped(f"pretext run of {name} stopped on a signal at step {result['global_step']}")
        done.write_text(json.dumps({"spec": h, "checkpoint": result["last_checkpoint"], "overrides": overrides,
                                    "global_step": result["global_step"], "wall_s": time.time() - start}))  # fmt: skip
        self.ran.append(f"pretext-{name}")
        return Path(result["last_checkpoint"])

    # ----------------------------------------------------------------------------------- evaluations
    def digest(self, path: str) -> str:
        from downstream.encoder import file_digest

        if path not in self._digests:
            self._digests[path] = file_digest(path)
        return self._digests[path]

    def known_checkpoint(self, method: str):
        """The method's checkpoint path, None for an init, PENDING for a pretext run still to make."""
        m = self.suite.methods[method]
        if m.get("ckpt"):
            return str(m.ckpt)
        if m.get("init"):
            return None
        done = self.root / "jobs" / f"pretext-{method}" / "done.json"
        overrides = [*self.suite.get("pretext_overrides", []), *m.pretext]
        if done.is_file() and json.loads(done.read_text()).get("spec") == spec_hash(overrides):
            return json.loads(done.read_text())["checkpoint"]
        return PENDING

    def is_done(self, tag: str, ckpt: str | None) -> bool:
        """The job's records are in the store, and of the checkpoint the method has now (a pretext
        run made again has another digest: its evaluations run again)."""
        from downstream.results import read_records

        records = [r for r in read_records(self.store) if r.get("suite_job") == tag]
        if not records:
            return False
        return ckpt is None or all(r["checkpoint_digest"] == self.digest(ckpt) for r in records)

    def evaluate(self, ev_name: str, method: str) -> None:
        from downstream.results import drop_records
        from pretext.checkpointing import PreemptionCheckpoint

        ev = self.suite.evaluations[ev_name]
        m = self.suite.methods[method]
        overrides = [*self.suite.get("eval_overrides", {}).get(ev.kind, []), *ev.get("overrides", [])]
        job_id = f"{ev_name}-{method}"
        tag = f"{job_id}#{spec_hash(overrides, OmegaConf.to_container(m))}"
        if ev.kind == "colorization_auc" and m.get("init"):
            return  # an initialisation does not colour
        if self.cfg.dry_run:
            ckpt = self.known_checkpoint(method)
            if ckpt is not PENDING and self.is_done(tag, ckpt):
                self.skipped.append(job_id)
                return
            if ckpt is PENDING:
                self.pretext(method)  # lists the pretext run still to make
            self.ran.append(job_id + (" (if a colorizer)" if ev.kind == "colorization_auc" else ""))
            return
        encoder = self.encoder_args(method)  # makes the pretext run first when needed
        ckpt = encoder[0].split("=", 1)[1] if encoder[0].startswith("ckpt=") else None
        if self.is_done(tag, ckpt):
            self.skipped.append(job_id)
            return
        if ev.kind == "colorization_auc" and not self.is_colorization(method, encoder):
            return  # only a colorizer colours
        drop_records(self.store, lambda r: r.get("suite_job") == tag)  # a stale run of this job
        run_dir = self.root / "jobs" / job_id / tag.split("#")[1]
        log.info("suite: %s", job_id)
        if ev.kind == "colorization_auc":
            self.colorization_auc(method, encoder, overrides, run_dir, tag)
        else:
            resume = (run_dir / "checkpoints" / "last.ckpt").is_file()
            job_args = [f"label={method}", f"tag='{tag}'", f"results={self.store}", f"run_dir={run_dir}",
                        f"resume={str(resume).lower()}"]  # fmt: skip
            cfg = compose_cfg(ev.kind, [*overrides, *encoder, *job_args])
            result = RUNNERS[ev.kind]()(cfg)
            if PreemptionCheckpoint.preempted or not result.get("complete", True):
                raise Stopped(f"{job_id} stopped before its last step: run the suite again to resume it")
        self.ran.append(job_id)

    def is_colorization(self, method: str, encoder: list[str]) -> bool:
        """Whether the method's checkpoint is a colorizer (its file says so)."""
        from pretext.checkpoint import read_checkpoint

        if not encoder[0].startswith("ckpt="):
            return False
        return "colorization" in read_checkpoint(encoder[0].split("=", 1)[1])

    def colorization_auc(self, method: str, encoder: list[str], overrides: list[str], run_dir: Path, tag: str) -> None:
        from downstream.encoder import load_encoder
        from downstream.results import make_record, write_records
        from pretext.evaluate import evaluate

        ckpt = encoder[0].split("=", 1)[1]
        cfg = compose_cfg("evaluate", [*overrides, f"ckpt={ckpt}", f"output={run_dir}"])
        result = evaluate(cfg)
        _, info = load_encoder(ckpt)
        rows = {r["method"]: r for r in result["rows"]}
        t = float(result["temperature"])
        row = rows.get(f"checkpoint T={t:g}") or next(r for k, r in rows.items() if k.startswith("checkpoint"))
        options = {"net_size": int(cfg.net_size), "temperature": t, "images": int(result["images"]),
                   "rebalanced": "pure inverse prior"}  # fmt: skip
        label = OmegaConf.create({"label": method, "tag": tag})
        baselines = {
            k: {"auc": r["auc"], "auc_rebal": r["auc_rebal"]} for k, r in rows.items() if k in ("Gray", "Random")
        }
        records = [
            make_record(
                info,
                "colorization_auc",
                "-",
                options,
                Path(cfg.data.root).parent.name or "data",
                metric,
                row[metric],
                cfg=label,
            )
            | {"baselines": baselines, "pretext": info.extra}  # fmt: skip
            for metric in ("auc", "auc_rebal")
        ]
        write_records(self.store, records)

    # ----------------------------------------------------------------------------------- all
    def run(self) -> dict:
        from pretext.checkpointing import PreemptionCheckpoint

        def stop(signum, frame):
            PreemptionCheckpoint.preempted = True

        previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGUSR1)}
        start = time.time()
        stopped = None
        try:
            for method in self.suite.methods:
                for ev_name, ev in self.suite.evaluations.items():
                    if ev.get("only") and method not in ev.only:
                        continue
                    if PreemptionCheckpoint.preempted:
                        raise Stopped("a signal arrived between jobs")
                    self.evaluate(ev_name, method)
        except Stopped as err:
            stopped = str(err)
            log.warning("suite stopped: %s. Run the same command again to resume.", stopped)
        finally:
            for s, h in previous.items():
                signal.signal(s, h)
        summary = {"suite": self.suite.name, "store": str(self.store), "ran": self.ran, "skipped": self.skipped,
                   "stopped": stopped, "wall_s": time.time() - start, "dry_run": bool(self.cfg.dry_run)}  # fmt: skip
        if not self.cfg.dry_run:
            self.root.mkdir(parents=True, exist_ok=True)
            with open(self.root / "invocations.jsonl", "a") as f:
                f.write(json.dumps(summary | {"command": " ".join(sys.argv)}) + "\n")
        return summary


def _runner(module: str, fn: str):
    def load():
        import importlib

        return getattr(importlib.import_module(module), fn)

    return load


RUNNERS = {
    "linear_probe": _runner("downstream.linear_probe", "probe"),
    "svm_probe": _runner("downstream.svm_probe", "svm_probe"),
    "pascal_cls": _runner("downstream.pascal_cls", "classify"),
    "pascal_det": _runner("downstream.pascal_det", "detect"),
    "pascal_seg": _runner("downstream.pascal_seg", "segment"),
}


@hydra.main(config_path="../conf", config_name="benchmark_suite", version_base="1.3")
def main(cfg: DictConfig) -> None:
    os.environ.setdefault("WANDB_MODE", "offline")
    summary = Suite(cfg).run()
    what = "would run" if summary["dry_run"] else "ran"
    print(f"suite {summary['suite']}: {what} {len(summary['ran'])} jobs, {len(summary['skipped'])} already in "
          f"{summary['store']} ({summary['wall_s']:.0f} s)")  # fmt: skip
    for job in summary["ran"]:
        print(f"  {what}: {job}")
    if summary["stopped"]:
        print(f"stopped: {summary['stopped']}; run the same command again to resume")


if __name__ == "__main__":
    main()
