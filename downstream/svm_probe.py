"""The FAIR benchmark's linear SVM probe on frozen, pooled, L2-normalised features.

    python downstream/svm_probe.py init=gaussian layer=conv5        # ../shared/data/voc_mini: a pipeline check
    python downstream/svm_probe.py ckpt=PATH data.root=/data/VOCdevkit            # VOC07 trainval -> test
    python downstream/svm_probe.py init=gaussian layer=conv5 data.kind=folder data.root=../shared/data/imagenette

One linear SVM per class (squared hinge, positives weighted 2:1), its cost chosen from ``costs`` by
``cv_folds``-fold cross-validated AP on the training split, then refit on all of it and scored on
the test split. VOC07: images whose only objects of a class are "difficult" are left out of that
class's training and AP. A class with fewer positives (or negatives) than ``cv_folds`` is
cross-validated with as many folds as it has (at least 2); with a single one its cost cannot be
cross-validated and it is trained at ``fallback_cost`` (null: the class is skipped). AP is
scikit-learn's average precision (area under the precision-recall steps).

Features are extracted in batches, cached under ``cache_dir`` and read back by a second run.

Solvers (``solver``): ``torch`` (default) minimises LinearSVC's own objective,
1/2 (|w|^2 + b^2) + C sum_i c_i max(0, 1 - y_i (w.x_i + b))^2 (liblinear's regularised intercept,
``c_i`` = ``positive_weight`` for positives), for every (class, fold) and every class's refit at once:
a semismooth Newton method whose steps are solved by conjugate gradients, preconditioned by a low-rank
SVD of the features (they have a fast-decaying spectrum), with an exact line search, warm-started
from one cost to the next. ``liblinear``: scikit-learn's ``LinearSVC``, one class and cost at a time
(the reference; ``benchmarks/bench_svm.py`` measures both).
"""

from __future__ import annotations

import logging
import os
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig
from torch import Tensor

from downstream.encoder import FrozenEncoder, encoder_from_config
from downstream.evaluation import Outcome
from downstream.features import (  # noqa: F401 (split_names, even_subset, dataset_items: this probe's API too)
    ExtractionClock,
    Progress,
    cached_features,
    dataset_items,
    dataset_name,
    even_subset,
    is_cached,
    labelled_splits,
    split_names,
)
from downstream.results import make_record, write_records
from pretext.cli import entry

log = logging.getLogger("downstream.svm_probe")
SOLVERS = ("torch", "liblinear")
PRECISIONS = ("fp32", "bf16")


# ------------------------------------------------------------------------------- pure parts
def l2_normalise(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def class_folds(labels: np.ndarray, folds: int) -> int:
    """The folds one class can be cross-validated with: ``folds``, or as many as it has positives
    (negatives) when fewer; 0 or 1 when it cannot be (labels in {1, 0, -1}; 0 = ignored)."""
    return int(min(folds, (labels == 1).sum(), (labels == -1).sum()))


def fold_splits(labels: np.ndarray, folds: int, seed: int) -> list[np.ndarray]:
    """The held-out indices (into ``labels``' non-ignored entries) of each fold: scikit-learn's
    ``StratifiedKFold(folds, shuffle=True, random_state=seed)``, as ``cross_val_score`` uses it."""
    from sklearn.model_selection import StratifiedKFold

    y = labels[labels != 0]
    cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
    return [test for _, test in cv.split(np.zeros(len(y)), y)]


def best_cost(scores: dict[float, float]) -> float:
    return max(scores, key=lambda c: (scores[c], -c))  # ties: the smaller cost


def average_precision(labels: np.ndarray, scores: np.ndarray) -> float:
    from sklearn.metrics import average_precision_score

    return float(average_precision_score(labels == 1, scores) * 100)


# ------------------------------------------------------------------------------- the reference solver
def choose_cost(x: np.ndarray, y: np.ndarray, costs, folds: int, pos_weight: float, max_iter: int, seed: int = 0):
    """(best cost, {cost: mean CV AP in %}) for one class with scikit-learn's LinearSVC; ``y`` in {-1, 1}."""
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.svm import LinearSVC

    cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
    scores = {}
    for c in costs:
        svm = LinearSVC(C=c, loss="squared_hinge", class_weight={1: pos_weight, -1: 1.0}, max_iter=max_iter)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ConvergenceWarning at extreme costs: the CV score judges them
            scores[float(c)] = float(cross_val_score(svm, x, y, cv=cv, scoring="average_precision").mean() * 100)
    return best_cost(scores), scores


def liblinear_fit(x: np.ndarray, y: np.ndarray, cost: float, pos_weight: float, max_iter: int):
    from sklearn.svm import LinearSVC

    svm = LinearSVC(C=cost, loss="squared_hinge", class_weight={1: pos_weight, -1: 1.0}, max_iter=max_iter)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return svm.fit(x, y)


def svm_class_ap(train_x, train_y, test_x, test_y, costs, folds, pos_weight, max_iter, seed=0,
                 fallback_cost: float | None = None) -> dict | None:  # fmt: skip
    """AP of one class with scikit-learn's LinearSVC (labels in {1, 0, -1}; 0 = ignored); None when
    the class has no positive or no negative to train on, or no test positive (and when it cannot
    be cross-validated and ``fallback_cost`` is None)."""
    keep, tkeep = train_y != 0, test_y != 0
    xtr, ytr, xte, yte = train_x[keep], train_y[keep], test_x[tkeep], test_y[tkeep]
    nf = class_folds(ytr, folds)
    if nf < 1 or (yte == 1).sum() == 0 or (nf < 2 and fallback_cost is None):
        return None
    if nf >= 2:
        best, scores = choose_cost(xtr, ytr, costs, nf, pos_weight, max_iter, seed)
    else:
        best, scores = float(fallback_cost), {}
    svm = liblinear_fit(xtr, ytr, best, pos_weight, max_iter)
    ap = average_precision(yte, svm.decision_function(xte))
    return {"ap": ap, "cost": best, "cv_ap": scores, "folds": nf, "decision": svm.decision_function(test_x)}


# ------------------------------------------------------------------------------- the torch solver
# A weight matrix W is (d + 1, K): one column per problem, its last row the intercept, which liblinear
# treats as the weight of a constant feature 1 (intercept_scaling=1), regularised like the others.
def scores_of(x: Tensor, w: Tensor) -> Tensor:
    """Decision values (n, K) of features ``x`` (n, d) for weights ``w`` (d + 1, K)."""
    return torch.addmm(w[-1:], x, w[:-1])


def transpose_times(x: Tensor, r: Tensor) -> Tensor:
    """[x, 1]^T r: (d + 1, K) for r (n, K); computed as (r^T x)^T, the fast memory layout."""
    return torch.cat([(r.T @ x).T, r.sum(0, keepdim=True)])


class LowRankPreconditioner:
    """The Newton system of column k is (I + X^T D_k X) s = -g with X = [x, 1] and D_k diagonal.
    With V the top right singular vectors of X (a randomised SVD, computed once), it is
    preconditioned by P_k = I + V M_k V^T, M_k = (X V)^T D_k (X V) (r x r, by Cholesky): P_k equals the
    Hessian on the span of V, where the features' spectrum is large, and I elsewhere, where
    D_k s^2 is small (the features' spectrum decays fast)."""

    def __init__(self, x: Tensor, rank: int, power_iterations: int = 1, seed: int = 0, sketch: Tensor | None = None):
        """``sketch``: the same features in a cheaper dtype, for finding V (X V is computed from ``x``)."""
        sketch = x if sketch is None else sketch
        n, d = x.shape
        q = min(rank + 10, n, d + 1)
        g = torch.Generator().manual_seed(seed)
        basis = torch.linalg.qr(scores_of(sketch, torch.randn(d + 1, q, generator=g, dtype=sketch.dtype))).Q
        for _ in range(power_iterations):
            basis = torch.linalg.qr(scores_of(sketch, transpose_times(sketch, basis))).Q
        _, s, vh = torch.linalg.svd(transpose_times(sketch, basis).T, full_matrices=False)  # basis^T X = u s vh
        keep = min(rank, len(s))
        # orthonormal in x's dtype: P^-1 assumes V^T V = I, and the Hessian's top eigenvalue (~1e7 at
        # high costs) would magnify a float32 basis's 1e-7 error into the solve
        self.v = torch.linalg.qr(vh[:keep].T.to(x.dtype)).Q.contiguous()  # (d + 1, r)
        self.xv = scores_of(x, self.v)  # (n, r): X V, exactly
        self.s2 = s[:keep].to(x.dtype) ** 2
        self.rank = 0

    def setup(self, d: Tensor, max_weight: float, threshold: float = 1.0) -> None:
        """For the diagonals ``d`` (n, K): only the directions where ``max_weight * s^2 > threshold``
        (the rest are within a factor 1 + threshold of I)."""
        self.rank = int((self.s2 * max_weight > threshold).sum())
        if self.rank == 0:
            return
        xv = self.xv[:, : self.rank]
        m = torch.einsum("nk,nc,nl->ckl", xv, d, xv)
        m.diagonal(dim1=1, dim2=2).add_(1.0)
        self.chol = torch.linalg.cholesky(m)

    def __call__(self, r: Tensor, cols: Tensor | None = None) -> Tensor:
        """P^-1 r for the columns ``cols`` of the last :meth:`setup` (all when None)."""
        if self.rank == 0:
            return r
        v = self.v[:, : self.rank]
        vr = v.T @ r
        chol = self.chol if cols is None else self.chol[cols]
        sol = torch.cholesky_solve(vr.T.unsqueeze(-1), chol).squeeze(-1).T
        return r + v @ (sol - vr)


def exact_line_search(w: Tensor, s: Tensor, z: Tensor, u: Tensor, y: Tensor, c: Tensor, iters: int = 60) -> Tensor:
    """Per column, the t > 0 minimising 1/2 |w + t s|^2 + sum_i c_i max(0, 1 - y_i (z_i + t u_i))^2:
    Newton's method on its derivative (piecewise linear and increasing), kept inside a bracket."""
    ws, ss = (w * s).sum(0), (s * s).sum(0)
    m0, yu = 1 - y * z, y * u
    t = torch.ones_like(ws)
    lo, hi = torch.zeros_like(ws), torch.full_like(ws, float("inf"))
    for _ in range(iters):
        r = m0 - t * yu
        a = c * (r > 0)
        d1 = ws + t * ss - 2 * (a * r * yu).sum(0)
        d2 = ss + 2 * (a * yu * yu).sum(0)
        lo, hi = torch.where(d1 < 0, t, lo), torch.where(d1 > 0, t, hi)
        new = t - d1 / d2
        new = torch.where((new > lo) & (new < hi), new, torch.where(hi.isinf(), 2 * t, (lo + hi) / 2))
        done = (new - t).abs() <= 1e-6 * t.abs().clamp_min(1e-3)
        t = new
        if bool(done.all()):
            break
    return t


def fit_squared_hinge(x: Tensor, y: Tensor, cost: Tensor, w: Tensor | None = None, tol: float = 1e-4,
                      precond: LowRankPreconditioner | None = None, max_newton: int = 50, max_cg: int = 500,
                      z: Tensor | None = None, g0: Tensor | None = None) -> tuple[Tensor, Tensor, dict]:  # fmt: skip
    """K linear SVMs on the same features at once, LinearSVC's objective for each column k:
    min 1/2 |w_k|^2 + sum_i cost_ik max(0, 1 - y_ik [x_i, 1].w_k)^2.

    ``x`` (n, d); ``y`` (n, K) in {-1, 0, 1} (0: sample i is not in problem k); ``cost`` (n, K): C
    times the class weight; ``w`` (d + 1, K): a warm start (``z``: its decision values on x, when
    known). Stops when every column's gradient norm is at most ``tol`` times its norm at w = 0
    (``g0``, when known). Returns (w, decision values on x, statistics)."""
    n, d = x.shape
    k = y.shape[1]
    w = torch.zeros(d + 1, k, dtype=x.dtype) if w is None else w.clone()
    c = cost * (y != 0)
    stats = {"newton": 0, "cg": 0, "passes": int(z is None) + int(g0 is None), "converged": True}
    z = scores_of(x, w) if z is None else z.clone()
    g0 = (transpose_times(x, 2 * c * y).norm(dim=0) if g0 is None else g0).clamp_min(1e-30)
    for _ in range(max_newton):
        dg = 2 * c * ((1 - y * z) > 0)
        g = w + transpose_times(x, dg * (z - y))
        stats["passes"] += 1
        rel = g.norm(dim=0) / g0
        todo = (rel > tol).nonzero().squeeze(1)
        if len(todo) == 0:
            break
        dc, gc = dg[:, todo], g[:, todo]
        if precond is not None:
            precond.setup(dc, float(c[:, todo].max()) * 2)
        apply = precond if precond is not None else (lambda r, cols=None: r)
        eta = rel[todo].sqrt().clamp(max=0.1)  # inexact Newton: a looser step far from the optimum
        target = eta * gc.norm(dim=0)
        s, u = torch.zeros_like(gc), torch.zeros(n, len(todo), dtype=x.dtype)  # the step and x times it
        live = torch.arange(len(todo))  # the columns whose CG goes on; each stops at its own target
        r = -gc
        p = apply(r)
        rz = (r * p).sum(0)
        for _ in range(max_cg):
            xp = scores_of(x, p)
            hp = p + transpose_times(x, dc[:, live] * xp)
            stats["cg"] += 1
            stats["passes"] += 2 * len(live) / k
            php = (p * hp).sum(0)
            alpha = torch.where(php > 0, rz / php.clamp_min(1e-30), torch.zeros_like(rz))
            s[:, live] += alpha * p
            u[:, live] += alpha * xp
            r = r - alpha * hp
            going = r.norm(dim=0) > target[live]
            if not bool(going.any()):
                break
            live, r, p, rz = live[going], r[:, going], p[:, going], rz[going]
            zr = apply(r, live)
            rz_new = (r * zr).sum(0)
            beta = torch.where(rz > 0, rz_new / rz.clamp_min(1e-30), torch.zeros_like(rz))
            p, rz = zr + beta * p, rz_new
        t = exact_line_search(w[:, todo], s, z[:, todo], u, y[:, todo], c[:, todo])
        w[:, todo] += t * s
        z[:, todo] += t * u
        stats["newton"] += 1
    else:
        stats["converged"] = False
    return w, z, stats


def torch_svms(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray, costs,
               folds: int, pos_weight: float, seed: int = 0, fallback_cost: float | None = None, tol: float = 1e-4,
               rank: int = 256, description: str = "SVMs") -> list[dict | None]:  # fmt: skip
    """Every class of ``train_y`` (n, K) in {1, 0, -1}: its cost chosen by cross-validated AP and its
    refit on the whole training split, as :func:`svm_class_ap` does class by class, here in one
    warm-started path over the costs with all (class, fold) problems and refits solved together.
    Each class: None (as :func:`svm_class_ap`), or its test ``ap``, ``cost``, ``cv_ap``, ``folds``,
    ``decision`` (test scores) and ``weights`` (d + 1: w, then the intercept)."""
    # float64: the features share a large mean direction (the Hessian's top eigenvalue is ~1e7 times
    # the smallest at high costs), and fp32 products lose the small directions (CG then stalls)
    x32 = torch.from_numpy(np.ascontiguousarray(train_x, dtype=np.float32))
    x = x32.double()
    xt = torch.from_numpy(np.ascontiguousarray(test_x))
    n, k = train_y.shape
    columns: list[tuple[int, np.ndarray | None]] = []  # (class, held-out rows) or (class, None): the refit
    nfolds: dict[int, int] = {}
    for j in range(k):
        yj = train_y[:, j]
        nf = class_folds(yj, folds)
        if nf < 1 or (test_y[:, j] == 1).sum() == 0 or (nf < 2 and fallback_cost is None):
            continue
        nfolds[j] = nf
        if nf >= 2:
            rows = np.flatnonzero(yj != 0)
            columns += [(j, rows[held]) for held in fold_splits(yj, nf, seed)]
        columns.append((j, None))
    out: list[dict | None] = [None] * k
    if not columns:
        return out
    y = np.zeros((n, len(columns)), dtype=np.float32)
    weight = np.zeros_like(y)
    for col, (j, held) in enumerate(columns):
        y[:, col] = train_y[:, j]
        if held is not None:
            y[held, col] = 0
        weight[:, col] = np.where(train_y[:, j] == 1, pos_weight, 1.0)
    y_t, weight_t = torch.from_numpy(y).double(), torch.from_numpy(weight).double()
    path = sorted({float(c) for c in costs} | ({float(fallback_cost)} if fallback_cost is not None else set()))
    precond = LowRankPreconditioner(x, rank, seed=seed, sketch=x32) if rank > 0 else None
    cv_ap: dict[int, dict[float, list[float]]] = {j: {} for j in nfolds}
    test_scores: dict[float, np.ndarray] = {}
    refit_weights: dict[float, np.ndarray] = {}
    refit = [col for col, (_, held) in enumerate(columns) if held is None]
    g0 = transpose_times(x, 2 * weight_t * y_t).norm(dim=0)  # the gradient's norm at w = 0, per unit cost
    w = z = None
    progress = Progress(description, len(path), " costs")
    passes = 0.0
    for cost in path:
        w, z, stats = fit_squared_hinge(x, y_t, cost * weight_t, w, tol, precond, z=z, g0=cost * g0)
        passes += stats["passes"]
        if not stats["converged"]:
            log.warning("cost %g: the Newton iterations stopped before tol=%g", cost, tol)
        test_scores[cost] = scores_of(xt, w[:, refit].to(xt.dtype)).numpy()
        refit_weights[cost] = w[:, refit].numpy()
        if cost in {float(c) for c in costs}:
            for col, (j, held) in enumerate(columns):
                if held is not None and nfolds[j] >= 2:
                    cv_ap[j].setdefault(cost, []).append(average_precision(train_y[held, j], z[held, col].numpy()))
        progress.advance(description=f"{description}, cost {cost:g} ({stats['newton']} Newton, {stats['cg']} CG)")
    progress.close()
    log.info("%s: %d problems, %.0f passes over the features", description, len(columns), passes)
    for i, col in enumerate(refit):
        j = columns[col][0]
        scores = {c: float(np.mean(v)) for c, v in cv_ap.get(j, {}).items()}
        best = best_cost(scores) if nfolds[j] >= 2 else float(fallback_cost)
        decision = test_scores[best][:, i]
        keep = test_y[:, j] != 0
        out[j] = {"ap": average_precision(test_y[keep, j], decision[keep]), "cost": best, "cv_ap": scores,
                  "folds": nfolds[j], "decision": decision, "weights": refit_weights[best][:, i]}  # fmt: skip
    return out


def normalised_features(cfg, encoder, info, split: str, paths, layers, clock=None) -> dict:
    """:func:`~downstream.features.cached_features`, each row L2-normalised (the FAIR protocol)."""
    feats = cached_features(cfg, encoder, info, split, paths, layers, clock)
    return {k: l2_normalise(v) for k, v in feats.items() if k != "readable"} | {"readable": feats["readable"]}


def svm_seconds_estimate(n: int, dims: list[int], columns: int, passes: int = 200) -> float:
    """A rough time for the torch solver: ``passes`` float64 products of each layer's (n, d) features
    with ``columns`` problems (about what Imagenette conv5 took over 7 costs, its SVD included),
    timed here on a slice of random features."""
    total = 0.0
    for d in dims:
        x, w = torch.rand(min(n, 1024), d, dtype=torch.float64), torch.rand(d + 1, columns, dtype=torch.float64)
        transpose_times(x, scores_of(x, w))
        t = time.perf_counter()
        for _ in range(2):
            transpose_times(x, scores_of(x, w))
        total += (time.perf_counter() - t) / 4 * n / len(x) * passes
    return total


# ------------------------------------------------------------------------------- main
def svm_probe(cfg: DictConfig) -> Outcome:
    """One SVM per class on each layer's cached features; records go to ``cfg.results`` (null: none)."""
    os.environ.setdefault("WANDB_MODE", "offline")
    if cfg.solver not in SOLVERS:
        raise ValueError(f"solver={cfg.solver!r} is not valid; valid: {', '.join(SOLVERS)}")
    net, info, layers = encoder_from_config(cfg)
    encoder = FrozenEncoder(net, layers)
    (train_split, train_paths, train_labels), (test_split, test_paths, test_labels), classes = labelled_splits(cfg)
    name = dataset_name(cfg)
    to_extract = sum(len(p) for s, p in ((train_split, train_paths), (test_split, test_paths))
                     if not is_cached(cfg, info, s, p))  # fmt: skip
    columns = len(classes) * (int(cfg.cv_folds) + 1)

    def svm_estimate():
        if cfg.solver != "torch":
            return None
        dims = [encoder.net.channels(k) * int(cfg.pool.layers[k].size) ** 2 for k in layers]
        return svm_seconds_estimate(len(train_paths), dims, columns)

    clock = ExtractionClock(to_extract, svm_estimate=svm_estimate)
    print(f"{info.method} on {name}: {len(train_paths)} {train_split} -> {len(test_paths)} {test_split} images, "
          f"{len(classes)} classes, layers {', '.join(layers)}, solver {cfg.solver}", flush=True)  # fmt: skip
    train = normalised_features(cfg, encoder, info, train_split, train_paths, layers, clock)
    test = normalised_features(cfg, encoder, info, test_split, test_paths, layers, clock)
    if not clock.said and (svm := svm_estimate()) is not None:
        print(f"expected: the SVMs about {svm / 60:.1f} min", flush=True)
    ytr, yte = train_labels[train["readable"]], test_labels[test["readable"]]
    skipped = int((~train["readable"]).sum() + (~test["readable"]).sum())
    options = {"pool": cfg.pool.name, "crop": int(cfg.data.crop), "input": info.input, "cv_folds": int(cfg.cv_folds),
               "positive_weight": float(cfg.positive_weight)}  # fmt: skip
    if cfg.max_images is not None:
        options["max_images"] = int(cfg.max_images)
    if cfg.precision != "fp32":
        options["precision"] = str(cfg.precision)
    fallback = None if cfg.fallback_cost is None else float(cfg.fallback_cost)
    results, records = {}, []
    for layer in layers:
        t = time.perf_counter()
        if cfg.solver == "torch":
            per = torch_svms(train[layer], ytr, test[layer], yte, list(cfg.costs), cfg.cv_folds, cfg.positive_weight,
                             cfg.seed, fallback, cfg.tol, cfg.precond_rank, f"SVMs {layer}")  # fmt: skip
        else:
            progress = Progress(f"SVMs {layer} (liblinear)", len(classes), " classes", every=1)
            per = []
            for j in range(len(classes)):
                r = svm_class_ap(train[layer], ytr[:, j], test[layer], yte[:, j], list(cfg.costs), cfg.cv_folds,
                                 cfg.positive_weight, cfg.max_iter, cfg.seed, fallback)  # fmt: skip
                per.append(r)
                progress.advance()
            progress.close()
        per_class, decisions = {}, []
        for j, (cls, r) in enumerate(zip(classes, per, strict=True)):
            if r is None:
                continue
            per_class[cls] = {"ap": r["ap"], "cost": r["cost"], "folds": r["folds"]}
            decisions.append((j, r["decision"]))
        few = {c: v["folds"] for c, v in per_class.items() if v["folds"] < cfg.cv_folds}
        if few:
            log.warning("%s: %d classes have fewer than %d positives or negatives: %s", layer, len(few), cfg.cv_folds,
                        ", ".join(f"{c} ({f}-fold CV)" if f >= 2 else f"{c} (cost {fallback:g}, not cross-validated)"
                                  for c, f in few.items()))  # fmt: skip
        left_out = [c for c, r in zip(classes, per, strict=True) if r is None]
        if left_out:
            why = "no positive or negative to train on, no test positive"
            why += ", or one positive and fallback_cost=null" if fallback is None else ""
            log.warning("%s: classes left out (%s): %s", layer, why, ", ".join(left_out))
        if not per_class:
            hint = " (and 2 of each for CV, or set fallback_cost)" if fallback is None else ""
            raise ValueError(f"no class of {name} can be scored: each needs positives and negatives in {train_split} "
                             f"and a positive in {test_split}{hint}")  # fmt: skip
        m = {"mAP": float(np.mean([v["ap"] for v in per_class.values()])), "classes": len(per_class),
             "seconds": time.perf_counter() - t}  # fmt: skip
        if cfg.data.kind == "folder" and len(decisions) == len(classes):  # single-label: top-1 of the SVM scores
            scores = np.stack([d for _, d in decisions], 1)
            m["top1"] = float((scores.argmax(1) == yte.argmax(1)).mean() * 100)
        results[layer] = m | {"per_class": per_class}
        records += [
            make_record(info, "svm_probe", layer, options, name, metric, m[metric], label=cfg.label,
                        classes_scored=len(per_class), per_class=per_class, skipped_images=skipped)  # fmt: skip
            for metric in ("mAP", "top1")
            if metric in m
        ]
        log.info("%s %s: mAP %.2f over %d classes", info.method, layer, m["mAP"], len(per_class))
    if cfg.results:
        write_records(cfg.results, records)
    return Outcome(records, Path(cfg.cache_dir), 0, scores=results)


@entry("svm_probe")
def main(cfg: DictConfig) -> None:
    start = time.perf_counter()
    for layer, m in svm_probe(cfg).scores.items():
        extra = f"  top-1 {m['top1']:.2f}" if "top1" in m else ""
        print(f"{layer:6s} mAP {m['mAP']:6.2f} ({m['classes']} classes){extra}  SVMs {m['seconds']:.0f} s")
    print(f"done in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
