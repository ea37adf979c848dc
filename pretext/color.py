"""The colour maths of the method (SPEC.md: Colour, Class rebalancing, Decoding).

Pure functions over torch tensors: batched, channel-first ``(N, C, H, W)``, any device, no host
round-trips. The only state is :class:`SoftEncoder`'s lookup tables, which are derived from the
bin centres and move with ``.to(device)``.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

# sRGB (IEC 61966-2-1) primaries to XYZ and the D65 white of the 2-degree observer: the constants
# of skimage.color.rgb2lab, which the tests hold this module to within 1e-3.
XYZ_FROM_RGB = (
    (0.412453, 0.357580, 0.180423),
    (0.212671, 0.715160, 0.072169),
    (0.019334, 0.119193, 0.950227),
)
D65_WHITE = (0.95047, 1.0, 1.08883)
_LAB_EPS = 0.008856  # CIE's (6/29)^3 as skimage rounds it
_LAB_KAPPA = 7.787
_LAB_DELTA = 16.0 / 116.0

GRID_STEP = 10.0  # ab quantization step (SPEC.md)
GRID_HALF = 13  # the histogram grid covers ab in [-130, 130] in steps of 10: 27 x 27 points
SIGMA = 5.0  # Gaussian of the soft encoding and of the prior smoothing
LAMBDA = 0.5  # uniform mix of the rebalancing weights
GREY_THRESHOLD = 5.0  # an image is grey when no |a| or |b| exceeds this at target resolution
TEMPERATURE = 0.38  # annealed-mean temperature


# --------------------------------------------------------------------------------------------
# sRGB <-> CIE Lab (D65)
# --------------------------------------------------------------------------------------------
def srgb_to_linear(rgb: Tensor) -> Tensor:
    """The sRGB transfer curve, inverted: companded [0, 1] values to linear light."""
    return torch.where(rgb > 0.04045, ((rgb + 0.055) / 1.055).pow(2.4), rgb / 12.92)


def linear_to_srgb(lin: Tensor) -> Tensor:
    """Linear light to companded sRGB (not clipped)."""
    return torch.where(lin > 0.0031308, 1.055 * lin.clamp_min(0.0031308).pow(1 / 2.4) - 0.055, lin * 12.92)


@functools.lru_cache(maxsize=8)
def _linear_lut(device: torch.device) -> Tensor:
    # A 256-entry table of the transfer curve for 8-bit input: one gather per value instead of a
    # pow, the largest single cost of the conversion (measured in benchmarks/bench_color.py).
    codes = torch.arange(256, dtype=torch.float64) / 255.0
    return srgb_to_linear(codes).to(device=device, dtype=torch.float32)


# Lab from XYZ: [L, a, b] = LAB_FROM_F @ [fx, fy, fz] + [-16, 0, 0]
_LAB_FROM_F = ((0.0, 116.0, 0.0), (500.0, -500.0, 0.0), (0.0, 200.0, -200.0))
_XYZN_FROM_RGB = tuple(tuple(v / w for v in row) for row, w in zip(XYZ_FROM_RGB, D65_WHITE, strict=True))
_RGB_FROM_XYZ = tuple(map(tuple, np.linalg.inv(np.array(XYZ_FROM_RGB)).tolist()))
_CPU_CHUNK = 1 << 17  # pixels per block on CPU: the chain of passes then stays in cache (2x measured)


@functools.lru_cache(maxsize=16)
def _matrices(device: torch.device, dtype: torch.dtype) -> tuple[Tensor, Tensor, Tensor]:
    as_t = functools.partial(torch.tensor, device=device, dtype=dtype)
    return as_t(_XYZN_FROM_RGB), as_t(_LAB_FROM_F), as_t([[-16.0], [0.0], [0.0]])


def _lab_from_linear(lin: Tensor) -> Tensor:
    """Linear RGB (n, 3, P) to Lab (n, 3, P)."""
    m_xyz, m_lab, bias = _matrices(lin.device, lin.dtype)
    with torch.autocast(lin.device.type, enabled=False):  # bf16 / fp16 autocast would move ab by up to 3
        t = torch.matmul(m_xyz, lin)  # XYZ over the white point
        # The cube root as exp(log / 3): 1.7x faster than pow here, relative error < 1e-6.
        f = torch.where(t > _LAB_EPS, t.clamp_min(_LAB_EPS).log_().mul_(1 / 3).exp_(), t * _LAB_KAPPA + _LAB_DELTA)
        return torch.matmul(m_lab, f).add_(bias)


def rgb_to_lab(rgb: Tensor) -> Tensor:
    """sRGB ``(..., 3, H, W)`` to CIE Lab (D65), L in [0, 100].

    ``uint8`` input (0..255) goes through a 256-entry table and yields float32; float input is
    taken as [0, 1] and keeps its dtype.
    """
    if rgb.dim() < 3 or rgb.shape[-3] != 3:
        raise ValueError(f"rgb_to_lab expects (..., 3, H, W), got shape {tuple(rgb.shape)}")
    if rgb.dtype != torch.uint8 and not rgb.is_floating_point():
        raise TypeError(f"rgb_to_lab takes uint8 (0..255) or float (0..1) input, got {rgb.dtype}")
    flat = rgb.reshape(-1, 3, rgb.shape[-2] * rgb.shape[-1])
    out_dtype = torch.float32 if rgb.dtype == torch.uint8 else rgb.dtype
    out = torch.empty(flat.shape, dtype=out_dtype, device=rgb.device)
    per_chunk = max(1, _CPU_CHUNK // flat.shape[-1]) if rgb.device.type == "cpu" else len(flat)
    for i in range(0, len(flat), per_chunk):
        part = flat[i : i + per_chunk]
        if rgb.dtype == torch.uint8:
            lin = _linear_lut(rgb.device).index_select(0, part.reshape(-1).int()).view(part.shape)
        else:
            lin = srgb_to_linear(part)
        out[i : i + per_chunk] = _lab_from_linear(lin)
    return out.view(rgb.shape)


def lab_to_rgb(lab: Tensor) -> Tensor:
    """CIE Lab (D65) ``(..., 3, H, W)`` to sRGB in [0, 1], clipped (as skimage.color.lab2rgb)."""
    if lab.dim() < 3 or lab.shape[-3] != 3:
        raise ValueError(f"lab_to_rgb expects (..., 3, H, W), got shape {tuple(lab.shape)}")
    L, a, b = lab.unbind(-3)
    fy = (L + 16.0) / 116.0
    fx = a / 500.0 + fy
    fz = (fy - b / 200.0).clamp_min(0.0)
    x, y, z = (
        w * torch.where(f > 0.2068966, f.pow(3), (f - _LAB_DELTA) / _LAB_KAPPA)
        for f, w in zip((fx, fy, fz), D65_WHITE, strict=True)
    )
    rgb = torch.stack(tuple(r[0] * x + r[1] * y + r[2] * z for r in _RGB_FROM_XYZ), dim=-3)
    return linear_to_srgb(rgb).clamp(0.0, 1.0)


# --------------------------------------------------------------------------------------------
# The gamut: Q ab bin centres on the grid of step 10, with an optional prior
# --------------------------------------------------------------------------------------------
def grid_points() -> Tensor:
    """The (27 * 27, 2) ab grid of the histogram, a-major, in [-130, 130]."""
    v = torch.arange(-GRID_HALF, GRID_HALF + 1, dtype=torch.float64) * GRID_STEP
    return torch.cartesian_prod(v, v)


def ab_grid_histogram(ab: Tensor) -> Tensor:
    """Counts of the nearest grid point of every pixel of ``ab`` ``(..., 2, H, W)``: (27 * 27,).

    Values beyond the grid count at its edge; the grid covers every sRGB colour with room to spare.
    """
    n = 2 * GRID_HALF + 1
    i = torch.round(ab / GRID_STEP).clamp_(-GRID_HALF, GRID_HALF).long() + GRID_HALF
    flat = i.select(-3, 0) * n + i.select(-3, 1)
    return torch.bincount(flat.reshape(-1), minlength=n * n)


@functools.lru_cache(maxsize=1)
def _srgb_gamut_centers() -> np.ndarray:
    # Sample the RGB cube: its faces densely (1024 steps an edge; the boundary of the ab projection
    # comes from them) and its inside coarsely, then keep the four grid corners around every ab.
    e = torch.linspace(0, 1, 1024)
    u, v = torch.meshgrid(e, e, indexing="ij")
    u, v = u.reshape(-1), v.reshape(-1)
    faces = []
    for axis in range(3):
        for side in (0.0, 1.0):
            cols = [u, v]
            cols.insert(axis, torch.full_like(u, side))
            faces.append(torch.stack(cols))
    c = torch.linspace(0, 1, 64)
    inside = torch.cartesian_prod(c, c, c).T
    rgb = torch.cat(faces + [inside], dim=1)  # (3, P)
    ab = rgb_to_lab(rgb[:, :, None])[1:, :, 0]  # (2, P)
    lo = torch.floor(ab / GRID_STEP).long() + GRID_HALF  # grid indices, all >= 0
    n = 2 * GRID_HALF + 2
    codes = torch.unique(lo[0] * n + lo[1])
    corners = torch.unique(torch.cat([codes + da * n + db for da in (0, 1) for db in (0, 1)]))
    pts = torch.stack((corners // n, corners % n), dim=1) - GRID_HALF
    return (pts.double() * GRID_STEP).numpy()


def check_centers(centers: np.ndarray | Tensor, what: str = "gamut") -> np.ndarray:
    """Validate ab bin centres: a (Q, 2) array of distinct points on the grid of step 10."""
    arr = np.asarray(centers, dtype=np.float64)
    expected = "an array of shape (Q, 2) of ab bin centres (a, b), multiples of 10, Q >= 2"
    if arr.ndim != 2 or arr.shape[1] != 2 or arr.shape[0] < 2:
        raise ValueError(f"{what}: got shape {arr.shape}, expected {expected}")
    if not np.all(np.isfinite(arr)) or np.abs(arr / GRID_STEP - np.round(arr / GRID_STEP)).max() > 1e-6:
        raise ValueError(f"{what}: values off the grid of step 10, expected {expected}")
    if len(np.unique(np.round(arr), axis=0)) != len(arr):
        raise ValueError(f"{what}: repeated bin centres, expected {expected}")
    return np.round(arr)


@dataclass(frozen=True)
class Gamut:
    """Q ab bin centres (grid step 10) and, once measured on data, their smoothed prior."""

    centers: Tensor  # (Q, 2) float32
    prior: Tensor | None = None  # (Q,) float32, sums to 1
    source: str = ""

    def __post_init__(self):
        centers = torch.as_tensor(check_centers(self.centers, self.source or "gamut"), dtype=torch.float32)
        object.__setattr__(self, "centers", centers)
        if self.prior is not None:
            prior = torch.as_tensor(self.prior, dtype=torch.float32)
            if prior.shape != (len(centers),) or (prior < 0).any() or abs(float(prior.sum()) - 1) > 1e-4:
                raise ValueError(
                    f"{self.source or 'gamut'}: prior of shape {tuple(prior.shape)} must be a distribution "
                    f"of shape ({len(centers)},) over the bins"
                )
            object.__setattr__(self, "prior", prior)

    @property
    def Q(self) -> int:
        return len(self.centers)

    @classmethod
    def from_srgb(cls) -> Gamut:
        """The grid points within 10 (in a and in b) of some sRGB colour: 309 bins (SPEC.md)."""
        return cls(torch.from_numpy(_srgb_gamut_centers()), source="srgb")

    @classmethod
    def from_grid_histogram(cls, counts: Tensor, sigma: float = SIGMA) -> Gamut:
        """The bins a dataset uses (non-zero counts of :func:`ab_grid_histogram`), with their prior."""
        counts = torch.as_tensor(counts)
        keep = counts > 0
        if not keep.any():
            raise ValueError("the ab histogram is empty: no pixels were counted")
        centers = grid_points()[keep]
        return cls(centers, prior_from_counts(counts[keep], centers, sigma), source="data")

    @classmethod
    def from_file(cls, path: str | Path) -> Gamut:
        """A ``.npy`` of centres (Q, 2), like the released ``pts_in_hull.npy``, or a ``.npz`` written
        by :meth:`save` (centres and prior)."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"gamut file {path} does not exist: give a .npy of shape (Q, 2) or a stats .npz")
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                prior = z["prior"] if "prior" in z.files else None
                return cls(z["centers"], prior, source=str(z["source"]) if "source" in z.files else str(path))
        return cls(np.load(path, allow_pickle=False), source=str(path))

    def with_prior_from(self, grid_counts: Tensor, sigma: float = SIGMA) -> tuple[Gamut, int]:
        """This gamut with its prior measured from grid counts; also returns the count of pixels
        whose grid point is outside the gamut (they count toward their nearest bin)."""
        dist, nearest = torch.cdist(grid_points(), self.centers.double()).min(1)
        inside = dist < 1e-6
        counts = torch.zeros(self.Q, dtype=torch.float64).index_add_(0, nearest, grid_counts.double())
        outside = int(grid_counts[~inside].sum())
        return Gamut(self.centers, prior_from_counts(counts, self.centers, sigma), self.source), outside

    def save(self, path: str | Path, **extra: np.ndarray) -> None:
        """Write centres, prior and any extra arrays to an ``.npz`` (atomically)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {"centers": self.centers.numpy(), "source": np.array(self.source), **extra}
        if self.prior is not None:
            arrays["prior"] = self.prior.numpy()
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez(tmp, **arrays)
        tmp.replace(path)


# --------------------------------------------------------------------------------------------
# Class rebalancing
# --------------------------------------------------------------------------------------------
def prior_from_counts(counts: Tensor, centers: Tensor, sigma: float = SIGMA) -> Tensor:
    """Empirical bin distribution smoothed by a Gaussian (sigma in ab units) over the centres."""
    counts = torch.as_tensor(counts, dtype=torch.float64)
    if counts.sum() <= 0:
        raise ValueError("cannot build a prior from zero counts")
    c = torch.as_tensor(centers, dtype=torch.float64)
    kernel = torch.exp(-torch.cdist(c, c).square() / (2 * sigma**2))
    p = kernel @ (counts / counts.sum())
    return (p / p.sum()).float()


def rebalance_weights(prior: Tensor, lam: float = LAMBDA) -> Tensor:
    """w proportional to ((1 - lam) p + lam / Q')^-1, normalised so E_p[w] = 1.

    The uniform part is over the Q' bins with non-zero prior (SPEC.md). A bin with zero prior
    never occurs in the data the prior came from; it gets the limit of the formula, (lam / Q')^-1,
    the largest weight, rather than infinity. ``lam = 1`` gives all-ones (no rebalancing).
    """
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f"rebalancing lambda must be in [0, 1], got {lam}")
    p = prior.double()
    support = p > 0
    uniform = lam / support.sum()
    w = 1.0 / ((1 - lam) * p + uniform)
    w = w / (p * w).sum()
    return w.to(prior.dtype)


def nongrey_mask(ab: Tensor, threshold: float = GREY_THRESHOLD) -> Tensor:
    """(N,) bool: True where some pixel of the image has |a| or |b| above ``threshold``."""
    return (ab.abs() > threshold).flatten(1).any(1)


# --------------------------------------------------------------------------------------------
# Soft encoding
# --------------------------------------------------------------------------------------------
def soft_weights(a: Tensor, b: Tensor, idx: Tensor, centers: Tensor, sigma: float = SIGMA) -> tuple[Tensor, Tensor]:
    """Gaussian weights of the bins ``idx`` (k, P) for points (``a``, ``b``) (P,), normalised to 1,
    and the nearest of them (P,). Shifted by the smallest distance so far-out points do not
    underflow. Bins along dim 0 and coordinates kept apart: reductions over k then run across
    contiguous rows, measured 3-10x faster on CPU than over a trailing dim of size k."""
    k = len(idx)
    # gather from the centres expanded to k rows: measured 2x faster than take() here
    ca, cb = (c.expand(k, -1).gather(1, idx) for c in centers.T)
    d2 = (ca - a).square_().add_((cb - b).square_())
    d2min = d2.amin(0)
    # the nearest: the bin at the smallest distance (the largest index among exact ties)
    nearest = torch.where(d2 == d2min, idx, -1).amax(0)
    w = d2.sub_(d2min).mul_(-0.5 / sigma**2).exp_()
    return w.div_(w.sum(0)), nearest


def knn_bins(pts: Tensor, centers: Tensor, k: int, chunk: int = 1 << 16) -> Tensor:
    """Exact k nearest bins of points ``pts`` (P, 2) by brute force: (P, k), nearest first."""
    out = [torch.cdist(part, centers).topk(k, dim=1, largest=False).indices for part in pts.split(chunk)]
    return torch.cat(out) if out else pts.new_zeros((0, k), dtype=torch.long)


@functools.lru_cache(maxsize=8)
def _cell_tables(centers_key: bytes, k: int, cell: float) -> tuple[float, int, Tensor, Tensor, Tensor]:
    """The ab-cell tables of :class:`SoftEncoder` (cached per gamut, k and cell size)."""
    centers = torch.from_numpy(np.frombuffer(centers_key, dtype=np.float64).reshape(-1, 2).copy())
    lo = float(centers.min()) - 3 * GRID_STEP
    hi = float(centers.max()) + 3 * GRID_STEP
    n = int(math.ceil((hi - lo) / cell))
    edges = lo + cell * torch.arange(n + 1, dtype=torch.float64)
    knn = knn_bins(torch.cartesian_prod(edges, edges), centers, k).sort(1).values.view(n + 1, n + 1, k)
    c00 = knn[:-1, :-1]
    uniform = ((c00 == knn[:-1, 1:]) & (c00 == knn[1:, :-1]) & (c00 == knn[1:, 1:])).all(-1).reshape(-1)
    # Candidates of a mixed cell: the bins whose smallest distance to the cell is within R, the k-th
    # smallest of the bins' largest distances to it (a bound on the k-th NN distance in the cell).
    ids = uniform.logical_not().nonzero().squeeze(1)
    ca, cb = centers[:, 0][None], centers[:, 1][None]
    cands = []
    for part in ids.split(1 << 14):
        a0, b0 = edges[part // n, None], edges[part % n, None]
        dmin2 = torch.maximum(a0 - ca, ca - a0 - cell).clamp_min(0).square()
        dmin2 += torch.maximum(b0 - cb, cb - b0 - cell).clamp_min(0).square()
        dmax2 = torch.maximum((ca - a0).abs(), (ca - a0 - cell).abs()).square()
        dmax2 += torch.maximum((cb - b0).abs(), (cb - b0 - cell).abs()).square()
        cands.append(dmin2 <= dmax2.kthvalue(k, dim=1, keepdim=True).values + 1e-6)
    cand = torch.cat(cands) if cands else torch.zeros((0, len(centers)), dtype=torch.bool)
    width = int(cand.sum(1).max()) if len(ids) else k
    # Pad with a sentinel bin (index Q, far away) that can never be among the k nearest.
    order = torch.argsort((~cand).to(torch.int8), dim=1, stable=True)[:, :width]
    cand_idx = torch.where(cand.gather(1, order), order, torch.full_like(order, len(centers)))
    slot = torch.full((n * n,), -1, dtype=torch.long)
    slot[ids] = torch.arange(len(ids))
    return lo, n, c00.reshape(n * n, k).clone(), slot, cand_idx


@functools.lru_cache(maxsize=8)
def _square_table(k: int, resolution: int) -> tuple[Tensor, Tensor, Tensor]:
    """k nearest points of the infinite ab grid for every fine cell of one grid square.

    The grid is the same around every square, so one table over the square, in grid units, serves
    every point whose k nearest grid points all belong to the gamut: those are then its k nearest
    bins too (removing points from a set never brings another one closer). Returns the offsets
    (dx, dy) in grid steps of each cell's k nearest, (resolution^2, k, 2); a flag of the cells
    where the table is exact (all four corners share one k-NN set: the k-NN regions are convex);
    and every offset that occurs, (U, 2).
    """
    reach = int(math.ceil(math.sqrt(k))) + 2  # the k nearest lie well within this many steps
    span = torch.arange(-reach, reach + 2, dtype=torch.float64)
    grid = torch.cartesian_prod(span, span)  # offsets around the square [0, 1)^2
    edges = torch.arange(resolution + 1, dtype=torch.float64) / resolution
    knn = knn_bins(torch.cartesian_prod(edges, edges), grid, k).sort(1).values
    knn = knn.view(resolution + 1, resolution + 1, k)
    c00 = knn[:-1, :-1]
    exact = ((c00 == knn[:-1, 1:]) & (c00 == knn[1:, :-1]) & (c00 == knn[1:, 1:])).all(-1).reshape(-1)
    offsets = grid[c00.reshape(-1, k)].long()
    return offsets, exact, grid[torch.unique(knn)].long()


class SoftEncoder(torch.nn.Module):
    """Soft encoding of ab targets on a gamut: k nearest bins, Gaussian weights (sigma = 5).

    ``forward(ab (N, 2, H, W)) -> (idx (N, k, H, W) long, weights (N, k, H, W), nearest (N, H, W))``.
    The target stays sparse: the loss gathers the k log-probabilities it needs.

    Two exact ways to find the k nearest bins, chosen by ``method``:
    - ``brute``: a distance to every bin and a top-k. Static shapes, no host synchronisation: the
      default on accelerators, where it is cheap.
    - ``table`` (default on CPU, where brute force is the bottleneck; see benchmarks/bench_color.py):
      1. points in a grid square whose neighbourhood lies inside the gamut read their k nearest
         from one table over a grid square (:func:`_square_table`, ``resolution`` cells a side):
         all but the points near the gamut's edge.
      2. the rest go through a table over ab cells (``cell`` units a side): a cell whose four
         corners share one k-NN set is uniform; in the other cells an exact search runs over a
         candidate list (every bin whose distance to the cell can be within the k-th nearest
         distance of a point in it); points beyond the table get a brute-force search.
    """

    def __init__(
        self,
        centers: Tensor,
        k: int = 5,
        sigma: float = SIGMA,
        method: str = "auto",
        cell: float = 1.0,
        resolution: int = 256,
    ):
        super().__init__()
        if method not in ("auto", "table", "brute"):
            raise ValueError(f"soft encoding method must be one of auto, table, brute; got {method!r}")
        centers = torch.as_tensor(check_centers(centers, "soft encoding centres"), dtype=torch.float32)
        if not 1 <= k <= min(len(centers), 32):
            raise ValueError(f"soft encoding k must be in [1, min(Q={len(centers)}, 32)], got {k}")
        if resolution < 2 or resolution & (resolution - 1):
            raise ValueError(f"soft encoding resolution must be a power of two, got {resolution}")
        self.k, self.sigma, self.method = k, float(sigma), method
        self.cell, self.resolution = float(cell), resolution
        self.register_buffer("centers", centers, persistent=False)
        self.register_buffer("centers_padded", torch.cat([centers, torch.full((1, 2), 1e4)]), persistent=False)
        # 1. the grid-square table, as codes into a padded map from grid points to bin indices
        offsets, exact, used = _square_table(k, resolution)
        g = torch.round(centers.double() / GRID_STEP).long()
        self.pad = pad = int(used.abs().max()) + 1
        self.gmin = int(g.min()) - pad
        self.width = int(g.max()) + pad + 1 - self.gmin
        # grid point -> bin index; Q (the far sentinel of centers_padded) where there is no bin
        grid_map = torch.full((self.width * self.width,), len(centers), dtype=torch.long)
        grid_map[(g[:, 0] - self.gmin) * self.width + (g[:, 1] - self.gmin)] = torch.arange(len(centers))
        # a square is interior when every offset the table can name lands on a bin
        squares = torch.arange(self.width * self.width)
        si, sj = squares // self.width, squares % self.width
        ti, tj = si[:, None] + used[None, :, 0], sj[:, None] + used[None, :, 1]
        inside = (ti >= 0) & (ti < self.width) & (tj >= 0) & (tj < self.width)
        codes = ti.clamp(0, self.width - 1) * self.width + tj.clamp(0, self.width - 1)
        interior = (inside & (grid_map[codes] < len(centers))).all(1).view(self.width, self.width)
        # the clamping squares of _encode_square (just outside the bins' bounding box) never are
        interior[[pad - 1, self.width - pad]] = False
        interior[:, [pad - 1, self.width - pad]] = False
        interior = interior.reshape(-1)
        square_codes = offsets[..., 0] * self.width + offsets[..., 1]  # (R^2, k)
        self.register_buffer("grid_map", grid_map, persistent=False)
        self.register_buffer("square_interior", interior, persistent=False)
        # (k, R^2) int16: small enough to stay in cache (the gather below is the path's main cost)
        self.register_buffer("square_codes", square_codes.T.to(torch.int16).contiguous(), persistent=False)
        self.register_buffer("square_exact", exact, persistent=False)
        # 2. the ab-cell table
        self.lo, self.n, knn, slot, cand = _cell_tables(centers.double().numpy().tobytes(), k, self.cell)
        self.register_buffer("cell_knn", knn, persistent=False)
        self.register_buffer("cell_slot", slot, persistent=False)
        self.register_buffer("cell_candidates", cand, persistent=False)

    @property
    def Q(self) -> int:
        return len(self.centers)

    def _encode_square(self, a: Tensor, b: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Soft encoding (k nearest bins (k, P), weights (k, P), nearest (P,)) from the grid-square
        table, and where it is exact. There the k nearest lie within a few grid steps, so the
        weights need no shift against underflow, and the nearest bin is the nearest grid point."""
        # One integer index of a fine cell over the whole plane per coordinate; with R a power of two
        # the grid square is a shift and the cell within it a mask (fewer passes than float maths).
        R, width, shift = self.resolution, self.width, self.resolution.bit_length() - 1
        fa = (a * (R / GRID_STEP)).floor_().long()
        fb = (b * (R / GRID_STEP)).floor_().long()
        fine = (fa & (R - 1)).mul_(R).add_(fb & (R - 1))
        # A point beyond the bins' bounding box is clamped onto a square just outside it, which is
        # never interior; the clamp keeps every index valid.
        lo, hi = self.pad - 1, width - self.pad
        ia = (fa >> shift).sub_(self.gmin).clamp_(lo, hi)
        ib = (fb >> shift).sub_(self.gmin).clamp_(lo, hi)
        square = ia.mul_(width).add_(ib)
        ok = self.square_interior.take(square) & self.square_exact.take(fine)
        codes = square + self.square_codes.gather(1, fine.expand(self.k, -1))  # promoted to int64
        idx = self.grid_map.expand(self.k, -1).gather(1, codes)
        ca, cb = (c.expand(self.k, -1).gather(1, idx) for c in self.centers_padded.T)
        w = (ca - a).square_().add_((cb - b).square_()).mul_(-0.5 / self.sigma**2).exp_()
        w = w.div_(w.sum(0))
        # the nearest grid point, floor(x + 1/2) in grid units, from the same integer index
        na = fa.add_(R // 2).bitwise_right_shift_(shift).sub_(self.gmin).clamp_(lo, hi)
        nb = fb.add_(R // 2).bitwise_right_shift_(shift).sub_(self.gmin).clamp_(lo, hi)
        nearest = self.grid_map.take(na.mul_(width).add_(nb))
        return idx, w, nearest, ok

    def _knn_cells(self, a: Tensor, b: Tensor) -> Tensor:
        """k nearest bins (P, k) from the ab-cell table (exact search in mixed cells, off the table)."""
        n = self.n
        ia = torch.floor((a - self.lo) / self.cell).long()
        ib = torch.floor((b - self.lo) / self.cell).long()
        inside = (ia >= 0) & (ia < n) & (ib >= 0) & (ib < n)
        cell = ia.clamp_(0, n - 1).mul_(n).add_(ib.clamp_(0, n - 1))
        # index_select and take: measured 3-5x faster than advanced indexing here
        idx = self.cell_knn.index_select(0, cell)
        slot = self.cell_slot.take(cell)
        mixed = ((slot >= 0) & inside).nonzero().squeeze(1)
        if len(mixed):
            cand = self.cell_candidates.index_select(0, slot.take(mixed))  # (M, C)
            ca, cb = self.centers_padded.T.contiguous()
            d2 = (a.take(mixed).unsqueeze(1) - ca.take(cand)).square_()
            d2.add_((b.take(mixed).unsqueeze(1) - cb.take(cand)).square_())
            idx.index_copy_(0, mixed, cand.gather(1, d2.topk(self.k, dim=1, largest=False).indices))
        outside = inside.logical_not_().nonzero().squeeze(1)
        if len(outside):
            idx.index_copy_(0, outside, knn_bins(torch.stack((a[outside], b[outside]), 1), self.centers, self.k))
        return idx

    def encode_points(self, a: Tensor, b: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Soft encoding of points (``a``, ``b``), each (P,): bins (k, P), weights (k, P), nearest (P,)."""
        method = self.method
        if method == "auto":
            method = "table" if a.device.type == "cpu" else "brute"
        if method == "brute":
            idx = knn_bins(torch.stack((a, b), 1), self.centers, self.k).T
            return (idx, *soft_weights(a, b, idx, self.centers, self.sigma))
        idx, w, nearest, ok = self._encode_square(a, b)
        rest = ok.logical_not_().nonzero().squeeze(1)
        if len(rest):
            ar, br = a.take(rest), b.take(rest)
            idx_r = self._knn_cells(ar, br).T
            w_r, nearest_r = soft_weights(ar, br, idx_r, self.centers, self.sigma)
            idx.index_copy_(1, rest, idx_r)
            w.index_copy_(1, rest, w_r)
            nearest.index_copy_(0, rest, nearest_r)
        return idx, w, nearest

    def forward(self, ab: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        if ab.dim() != 4 or ab.shape[1] != 2:
            raise ValueError(f"soft encoding expects ab of shape (N, 2, H, W), got {tuple(ab.shape)}")
        N, _, H, W = ab.shape
        a, b = ab.float().transpose(0, 1).reshape(2, -1)
        idx, w, nearest = self.encode_points(a, b)
        return idx.view(self.k, N, H, W).transpose(0, 1), w.view(self.k, N, H, W).transpose(0, 1), nearest.view(N, H, W)


def dense_target(idx: Tensor, weights: Tensor, Q: int) -> Tensor:
    """The dense (N, Q, H, W) soft target, for tests and plots only (never on the training path)."""
    N, _, H, W = idx.shape
    return weights.new_zeros(N, Q, H, W).scatter_add_(1, idx, weights)


# --------------------------------------------------------------------------------------------
# Decoding
# --------------------------------------------------------------------------------------------
def annealed_mean(logits: Tensor, centers: Tensor, T: float = TEMPERATURE) -> Tensor:
    """H(Z) = E[ab] under softmax(log Z / T), Z = softmax(logits): (N, Q, H, W) -> (N, 2, H, W).

    log Z differs from the logits by a per-pixel constant, so softmax(log Z / T) = softmax(logits / T).
    T = 1 is the mean; T = 0 is the mode, taken exactly (argmax), not as a limit.
    """
    if T < 0:
        raise ValueError(f"annealed-mean temperature must be >= 0, got {T}")
    dtype = torch.promote_types(logits.dtype, torch.float32)  # bf16 / fp16 logits: the expectation in fp32
    c = centers.to(device=logits.device, dtype=dtype)
    if T == 0:
        return c[logits.argmax(1)].permute(0, 3, 1, 2)
    with torch.autocast(logits.device.type, enabled=False):
        p = torch.softmax(logits.to(dtype) / T, dim=1)
        return torch.einsum("nqhw,qc->nchw", p, c)
