"""Statistics over seeds, shared by the report (``benchmarks/report.py``) and the dashboard
(``benchmarks/dashboard.py``).

Records of the results store that differ only in an option ``seed`` (and so perhaps in their
checkpoint) are seeds of one measurement (:func:`measurements`). A measurement is shown as its mean
with the 95% t-interval when it has two seeds or more (:func:`summarize`), and a difference of two
measurements with its own interval, paired over the seeds both hold when they share two or more
(the mean and interval of the per-seed differences), else Welch's (:func:`difference`). A single
seed has no interval: its value, marked n=1.
"""

from __future__ import annotations

import json
import math
import statistics
from collections import defaultdict
from dataclasses import dataclass


@dataclass(frozen=True)
class Stat:
    """A measurement over seeds: the mean, and its 95% t-interval when there are two seeds or more."""

    mean: float
    n: int
    lo: float | None = None
    hi: float | None = None
    values: tuple[float, ...] = ()
    seeds: tuple = ()
    n_text: str = ""  # how n reads when it is not one number ("3 vs 1")

    def text(self, signed: bool = False) -> str:
        f = "{:+.1f}" if signed else "{:.1f}"
        if self.lo is None:
            return f.format(self.mean)
        return f"{f.format(self.mean)} [{f.format(self.lo)}, {f.format(self.hi)}]"

    def pm_text(self, signed: bool = False) -> str:
        """``mean ± half-width (n=3)``, or ``value (n=1)`` for a single seed."""
        f = "{:+.1f}" if signed else "{:.1f}"
        if self.lo is None:
            return f"{f.format(self.mean)} ({self.n_label})"
        return f"{f.format(self.mean)} ± {(self.hi - self.lo) / 2:.1f} ({self.n_label})"

    @property
    def n_label(self) -> str:
        return f"n={self.n_text or self.n}"

    def as_dict(self) -> dict:
        return {"mean": self.mean, "n": self.n, "lo": self.lo, "hi": self.hi, "n_label": self.n_label}


def t_half_width(sd: float, n: float, df: float) -> float:
    """Half-width of the 95% t-interval of a mean: t_{0.975, df} x sd / sqrt(n)."""
    from scipy.stats import t

    return float(t.ppf(0.975, df)) * sd / math.sqrt(n)


def summarize(values, seeds=()) -> Stat:
    values = tuple(float(v) for v in values)
    mean = statistics.fmean(values)
    if len(values) < 2:
        return Stat(mean, len(values), values=values, seeds=tuple(seeds))
    h = t_half_width(statistics.stdev(values), len(values), len(values) - 1)
    return Stat(mean, len(values), mean - h, mean + h, values, tuple(seeds))


def difference(a: Stat, b: Stat) -> Stat:
    """a minus b: paired over the seeds both hold when they share two or more (the mean and t-interval
    of the per-seed differences on those seeds alone: a side with extra seeds is compared on the
    shared ones), else Welch's interval; no interval when either side has a single seed."""
    mean = a.mean - b.mean
    if a.n < 2 or b.n < 2:
        n_text = "1" if a.n == b.n == 1 else f"{a.n} vs {b.n}"
        return Stat(mean, min(a.n, b.n), n_text=n_text)
    unique = a.seeds and len(set(a.seeds)) == a.n and b.seeds and len(set(b.seeds)) == b.n
    shared = [s for s in a.seeds if s in b.seeds] if unique else []
    if len(shared) >= 2:
        av, bv = dict(zip(a.seeds, a.values, strict=True)), dict(zip(b.seeds, b.values, strict=True))
        diffs = [av[s] - bv[s] for s in shared]
        m = statistics.fmean(diffs)
        h = t_half_width(statistics.stdev(diffs), len(diffs), len(diffs) - 1)
        return Stat(m, len(diffs), m - h, m + h, tuple(diffs), tuple(shared), n_text=f"{len(diffs)} paired")
    va, vb = statistics.variance(a.values) / a.n, statistics.variance(b.values) / b.n
    se = math.sqrt(va + vb)
    if se == 0:
        return Stat(mean, min(a.n, b.n), mean, mean, n_text=f"{a.n} vs {b.n}")
    df = (va + vb) ** 2 / (va**2 / (a.n - 1) + vb**2 / (b.n - 1))
    h = t_half_width(se, 1, df)
    return Stat(mean, min(a.n, b.n), mean - h, mean + h, n_text=f"{a.n} vs {b.n}")


# ----------------------------------------------------------------------------------------- the store
def protocol_key(options: dict, drop=("seed",)) -> str:
    """The options as one comparable string, without those in ``drop`` (by default the seed)."""
    return json.dumps({k: v for k, v in options.items() if k not in drop}, sort_keys=True)


def measurement_key(r: dict) -> tuple:
    """Everything that identifies a record except its seed: with an option `seed`, the checkpoint may
    differ from seed to seed, so its digest is left out too.
    (method, role, evaluation, layer, dataset, metric, protocol, digest)."""
    options = r.get("options", {})
    digest = None if "seed" in options else r.get("checkpoint_digest")
    role = r.get("pretext_method") or r["method"]
    return (r["method"], role, r["evaluation"], r["layer"], r["dataset"], r["metric"], protocol_key(options), digest)


def measurements(records: list[dict]) -> dict[tuple, tuple[Stat, list[dict]]]:
    """{measurement_key: (Stat over its seeds, its records sorted by seed)}; non-finite values are left out."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in records:
        if isinstance(r.get("value"), (int, float)) and math.isfinite(r["value"]):
            groups[measurement_key(r)].append(r)
    out = {}
    for key, rs in groups.items():
        rs.sort(key=lambda r: str(r.get("options", {}).get("seed")))
        out[key] = (summarize([r["value"] for r in rs], [r.get("options", {}).get("seed") for r in rs]), rs)
    return out
