"""The benchmark suite: methods x evaluations, run where missing from the results store.

    python benchmarks/suite.py suite=imagenette_cpu           # colorization, Context Encoders, Gaussian, supervised
    python benchmarks/suite.py suite=imagenette_cpu dry_run=true   # list what would run
    make report                                                # benchmarks/report.py on the suite's store

A suite (conf/suite/<name>.yaml) names methods (a pretext run to make, a checkpoint, or an
initialisation) and evaluations (any of :data:`EVALUATIONS`), each with its config overrides. Every
(method, evaluation) job writes its records to ``${root}/results.jsonl`` tagged with the job and a
hash of its spec; a job whose records are there is skipped, so a second invocation runs nothing.
Each job has its own run folder under ``${root}/jobs``: a job killed part-way resumes from its last
checkpoint on the next invocation, and on SIGTERM / SIGUSR1 the suite saves, stops and says so.
"""

from __future__ import annotations

import hashlib
import importlib
import itertools
import json
import logging
import os
import shutil
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from downstream.results import Record, drop_records, read_records, write_records
from pretext.checkpoint_files import file_digest, repo_path
from pretext.cli import entry

ROOT = Path(__file__).resolve().parents[1]
log = logging.getLogger("benchmarks.suite")
# evaluation kind -> (config name, "module:function" returning a downstream.evaluation.Outcome)
EVALUATIONS = {
    "linear_probe": ("linear_probe", "downstream.linear_probe:probe"),
    "linear_probe_cached": ("linear_probe_cached", "downstream.linear_probe_cached:linear_probe_cached"),
    "svm_probe": ("svm_probe", "downstream.svm_probe:svm_probe"),
    "pascal_cls": ("pascal_cls", "downstream.pascal_cls:classify"),
    "pascal_det": ("pascal_det", "downstream.pascal_det:detect"),
    "pascal_seg": ("pascal_seg", "downstream.pascal_seg:segment"),
    "colorization_auc": ("evaluate", "benchmarks.colorization_auc:colorization_auc"),
}
KINDS = tuple(EVALUATIONS)
FEATURE_CACHED = ("svm_probe", "linear_probe_cached")  # no training run: nothing to resume, a feature cache


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


@dataclass(frozen=True)
class Method:
    """A method of a suite: exactly one of a pretext run to make (overrides of pretext/train.py), a
    checkpoint, an initialisation, or another method's pretext run at an earlier step (``of`` and
    ``step``: its step file, for learning curves; the run must keep it, e.g.
    ``callbacks.checkpoint.save_top_k=-1``)."""

    name: str
    pretext: tuple[str, ...] | None = None
    ckpt: str | None = None
    init: str | None = None
    init_data: str | None = None
    init_channels: int = 1
    of: str | None = None
    step: int | None = None
    config: dict = field(default_factory=dict, compare=False)  # as the suite gives it (part of job tags)

    @classmethod
    def from_config(cls, name: str, m: DictConfig) -> Method:
        given = [k for k in ("pretext", "ckpt", "init", "of") if m.get(k) is not None]
        if len(given) != 1:
            raise ValueError(f"method {name}: give exactly one of pretext (overrides for pretext/train.py), ckpt, "
                             "init, of (another method's pretext run, with step)")  # fmt: skip
        unknown = set(m) - {"pretext", "ckpt", "init", "init_data", "init_channels", "of", "step"}
        if unknown:
            raise ValueError(f"method {name}: unknown keys {sorted(unknown)}; valid: pretext, ckpt, init, "
                             "init_data, init_channels, of, step")  # fmt: skip
        if (m.get("of") is None) != (m.get("step") is None):
            raise ValueError(f"method {name}: of and step go together (the step file of that method's pretext run)")
        pretext = tuple(m.pretext) if m.get("pretext") is not None else None
        step = int(m.step) if m.get("step") is not None else None
        return cls(name, pretext, m.get("ckpt"), m.get("init"), m.get("init_data"), int(m.get("init_channels", 1)),
                   m.get("of"), step, OmegaConf.to_container(m))  # fmt: skip

    def encoder_overrides(self, ckpt: Path | str | None) -> list[str]:
        """What points an evaluation config at this method's encoder (``ckpt``: its checkpoint)."""
        if ckpt is not None:
            return [f"ckpt={ckpt}"]
        extra = [f"init_data={self.init_data}"] if self.init_data else []
        return [f"init={self.init}", *extra, f"init_channels={self.init_channels}"]


@dataclass(frozen=True)
class Job:
    method: Method
    evaluation: str  # its name in the suite
    kind: str
    overrides: tuple[str, ...]

    @property
    def id(self) -> str:
        return f"{self.evaluation}-{self.method.name}"

    @property
    def tag(self) -> str:
        return f"{self.id}#{spec_hash(list(self.overrides), self.method.config)}"


def check_suite(suite: DictConfig) -> list[Method]:
    methods = [Method.from_config(name, m) for name, m in suite.methods.items()]
    runs = {m.name for m in methods if m.pretext is not None}
    for m in methods:
        if m.of is not None and m.of not in runs:
            raise ValueError(f"method {m.name}: of={m.of!r} names no method with a pretext run; valid: "
                             f"{', '.join(sorted(runs)) or '(none)'}")  # fmt: skip
    for name, ev in suite.evaluations.items():
        if ev.kind not in KINDS:
            raise ValueError(f"evaluation {name}: kind={ev.kind!r} is not an evaluation; valid: {', '.join(KINDS)}")
        unknown = set(ev.get("only") or []) - set(suite.methods)
        if unknown:
            raise ValueError(f"evaluation {name}: only={sorted(unknown)} names no method of the suite "
                             f"({', '.join(suite.methods)})")  # fmt: skip
    return methods


class Suite:
    def __init__(self, cfg: DictConfig):
        self.cfg, self.suite = cfg, cfg.suite
        self.methods = check_suite(self.suite)
        self.by_name = {m.name: m for m in self.methods}
        self.root = Path(cfg.root)
        self.store = self.root / "results.jsonl"
        self.ran: list[str] = []
        self.skipped: list[str] = []
        self.signalled: str | None = None
        self._digests: dict[str, str] = {}

    # ----------------------------------------------------------------------------------- methods
    def pretext_spec(self, method: Method) -> tuple[list[str], str, Path]:
        overrides = [*self.suite.get("pretext_overrides", []), *method.pretext]
        h = spec_hash(overrides)
        return overrides, h, self.root / "jobs" / f"pretext-{method.name}"

    def made_checkpoint(self, method: Method) -> Path | None:
        """The checkpoint of a pretext run already made with the method's current spec."""
        _, h, job = self.pretext_spec(method)
        done = job / "done.json"
        if done.is_file() and json.loads(done.read_text()).get("spec") == h:
            return ROOT / json.loads(done.read_text())["checkpoint"]  # repository-relative, or absolute
        return None

    def checkpoint(self, method: Method, make: bool) -> Path | None:
        """The method's checkpoint (None for an init), making its pretext run first when ``make``."""
        if method.ckpt:
            return Path(method.ckpt)
        if method.init:
            return None
        if method.of is not None:
            return self.step_checkpoint(method, make)
        made = self.made_checkpoint(method)
        if made is not None or not make:
            return made
        return self.train_pretext(method)

    def step_checkpoint(self, method: Method, make: bool) -> Path | None:
        """The step file ``method.step`` of method ``method.of``'s pretext run (made first when ``make``)."""
        last = self.checkpoint(self.by_name[method.of], make)
        if last is None:
            return None
        path = last.parent / f"step{method.step:07d}.ckpt"
        if not path.is_file():
            kept = sorted(p.name for p in last.parent.glob("step*.ckpt"))
            raise FileNotFoundError(f"method {method.name}: {path} does not exist (kept: {', '.join(kept) or 'none'}); "
                                    f"the run of {method.of} must save a step file at step {method.step} and keep it "
                                    "(trainer.ckpt_every_n_steps, callbacks.checkpoint.save_top_k=-1)")  # fmt: skip
        return path

    def train_pretext(self, method: Method) -> Path:
        from pretext.train import train

        overrides, h, job = self.pretext_spec(method)
        run_dir = job / f"run-{h}"
        log.info("suite: pretext run for %s", method.name)
        start = time.time()
        result = train(compose_cfg("pretext", [*overrides, f"run_dir={run_dir}", "resume=auto"]))
        if result["stopped_by"]:
            raise Stopped(f"pretext run of {method.name} stopped on {result['stopped_by']} at step "
                          f"{result['global_step']}")  # fmt: skip
        (job / "done.json").write_text(json.dumps({
            "spec": h, "checkpoint": repo_path(result["last_checkpoint"]), "overrides": overrides,
            "global_step": result["global_step"], "wall_s": time.time() - start}))  # fmt: skip
        self.ran.append(f"pretext-{method.name}")
        return Path(result["last_checkpoint"])  # absolute: the jobs run from anywhere

    # ----------------------------------------------------------------------------------- evaluations
    def digest(self, path: Path) -> str:
        if str(path) not in self._digests:
            self._digests[str(path)] = file_digest(path)
        return self._digests[str(path)]

    def is_done(self, job: Job, ckpt: Path | None) -> bool:
        """The job's records are in the store, and of the checkpoint the method has now (a pretext
        run made again has another digest: its evaluations run again)."""
        records = [Record.from_dict(r) for r in read_records(self.store)]
        mine = [r for r in records if r.suite_job == job.tag]
        return bool(mine) and (ckpt is None or all(r.checkpoint_digest == self.digest(ckpt) for r in mine))

    def plan(self, job: Job) -> None:
        """dry_run: say what would run (a pretext run still to make first)."""
        made = self.checkpoint(job.method, make=False)
        pending = job.method.pretext is not None and made is None
        if not pending and self.is_done(job, made):
            self.skipped.append(job.id)
            return
        if pending and f"pretext-{job.method.name}" not in self.ran:
            self.ran.append(f"pretext-{job.method.name}")
        self.ran.append(job.id + (" (if a colorizer)" if job.kind == "colorization_auc" else ""))

    def evaluate(self, job: Job) -> None:
        from benchmarks.colorization_auc import is_colorizer

        if job.kind == "colorization_auc" and job.method.init:
            return  # an initialisation does not colour
        if self.cfg.dry_run:
            return self.plan(job)
        ckpt = self.checkpoint(job.method, make=True)
        if self.is_done(job, ckpt):
            self.skipped.append(job.id)
            return
        if job.kind == "colorization_auc" and not is_colorizer(ckpt):
            return  # only a colorizer colours
        drop_records(self.store, lambda r: r.get("suite_job") == job.tag)  # a stale run of this job
        run_dir = self.root / "jobs" / job.id / job.tag.split("#")[1]
        log.info("suite: %s", job.id)
        config_name, target = EVALUATIONS[job.kind]
        if job.kind == "colorization_auc":
            place = [f"output={run_dir}"]
        elif job.kind in FEATURE_CACHED:  # features cached per checkpoint, shared by the method's jobs
            place = [f"cache_dir={self.features(job.method)}"]
        else:
            place = [f"run_dir={run_dir}", "resume=auto"]
        cfg = compose_cfg(config_name, [*job.overrides, *job.method.encoder_overrides(ckpt), *place, "results=null"])
        module, fn = target.split(":")
        outcome = getattr(importlib.import_module(module), fn)(cfg)
        if not outcome.complete:
            raise Stopped(f"{job.id} stopped ({outcome.stopped}) at step {outcome.step}: run the suite again to "
                          "resume it")  # fmt: skip
        write_records(self.store, [r.relabel(job.method.name, job.tag) for r in outcome.records])
        self.ran.append(job.id)

    def features(self, method: Method) -> Path:
        return self.root / "features" / method.name

    def drop_features(self, method: Method) -> None:
        """Deletes the method's feature cache once its jobs are done: they share its checkpoint's
        features (about 5 GB on Imagenette: 6 layers of 9,469 photos and their mirrors), which no other
        method reads, so a long suite needs the room of one checkpoint, not of all;
        ``keep_features=true`` keeps them (an evaluation added later then skips the extraction). A
        suite stopped part-way keeps the cache of the method it stopped in, for the next invocation."""
        cache = self.features(method)
        if self.cfg.keep_features or self.cfg.dry_run or not cache.is_dir():
            return
        size = sum(f.stat().st_size for f in cache.rglob("*") if f.is_file())
        shutil.rmtree(cache)
        log.info("suite: %s is done: deleted its feature cache, %.2f GB (keep_features=true keeps it)",
                 method.name, size / 1e9)  # fmt: skip

    # ----------------------------------------------------------------------------------- all
    def jobs(self) -> list[Job]:
        out = []
        for method in self.methods:
            for ev_name, ev in self.suite.evaluations.items():
                if ev.get("only") and method.name not in ev.only:
                    continue
                overrides = (*self.suite.get("eval_overrides", {}).get(ev.kind, []), *ev.get("overrides", []))
                out.append(Job(method, ev_name, ev.kind, overrides))
        return out

    def _on_signal(self, signum, frame) -> None:
        self.signalled = signal.Signals(signum).name

    def run(self) -> dict:
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGUSR1)}
        start = time.time()
        stopped = None
        try:
            for method, jobs in itertools.groupby(self.jobs(), key=lambda j: j.method):  # jobs() is method-major
                for job in jobs:
                    if self.signalled:
                        raise Stopped(f"{self.signalled} arrived between jobs")
                    self.evaluate(job)
                self.drop_features(method)  # its jobs are done
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


@entry("benchmark_suite")
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
