"""Shared pieces of the metrics: input validation, histogram discretisation, discrete MI.

Conventions (all metrics): arrays have one row per sample. ``codes`` are ``float`` ``N x D``
(one column per latent dimension), ``factors`` are integer ``N x K`` ground-truth factor indices.
Mutual information and entropies are in nats.

The discretisation and the mutual-information formula replicate disentanglement_lib 1.5
(``evaluation/metrics/utils.py``: ``_histogram_discretize``, ``discrete_mutual_info``,
``discrete_entropy``) and ``sklearn.metrics.mutual_info_score`` to floating-point rounding.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Iterable, Sequence, TypeVar

import numpy as np

T = TypeVar("T")


# The reference's defaults, stated once: equal-width bins of a histogram (MIG, IRS, modularity, the
# unsupervised scores) and images encoded per forward pass.
NUM_BINS = 20
CHUNK_SIZE = 4096

def to_numpy(x: Any) -> np.ndarray:
    """numpy view/copy of a numpy array, list or torch tensor (detached, moved to CPU)."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def check_codes(codes: Any, name: str = "codes") -> np.ndarray:
    """Validate a ``N x D`` code array; returns it as ``float64``.

    Raises:
        ValueError: not 2-D, empty, or containing NaN/inf (with the first offending position).
    """
    c = to_numpy(codes)
    if c.ndim != 2:
        raise ValueError(
            f"{name} must be a 2-D array N x D (one row per sample), got shape {c.shape}; "
            "reshape a single code dimension with x[:, None]"
        )
    if c.shape[0] < 2 or c.shape[1] < 1:
        raise ValueError(f"{name} needs at least 2 rows and 1 column, got shape {c.shape}")
    if c.dtype == object or not np.issubdtype(c.dtype, np.number):
        raise ValueError(f"{name} must be numeric, got dtype {c.dtype}")
    c = c.astype(np.float64, copy=False)
    bad = ~np.isfinite(c)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise ValueError(
            f"{name} contain {int(bad.sum())} NaN or infinite values (first at row {i}, "
            f"column {j}); check the encoder (diverged training?)"
        )
    return c


def check_factors(factors: Any, name: str = "factors") -> np.ndarray:
    """Validate a ``N x K`` array of integer factor indices; returns it as ``int64``.

    Floats are accepted only if every value is a whole number.
    """
    f = to_numpy(factors)
    if f.ndim != 2:
        raise ValueError(
            f"{name} must be a 2-D array N x K of factor indices, got shape {f.shape}; "
            "reshape a single factor with y[:, None]"
        )
    if f.shape[0] < 2 or f.shape[1] < 1:
        raise ValueError(f"{name} needs at least 2 rows and 1 column, got shape {f.shape}")
    if np.issubdtype(f.dtype, np.integer) or f.dtype == bool:
        return f.astype(np.int64, copy=False)
    if np.issubdtype(f.dtype, np.floating):
        if not np.isfinite(f).all() or (f != np.round(f)).any():
            raise ValueError(
                f"{name} must be integer factor indices (0 <= f[:, k] < factor_sizes[k]), "
                "got non-integer values; discretise continuous factors first"
            )
        return f.astype(np.int64)
    raise ValueError(f"{name} must be integer factor indices, got dtype {f.dtype}")


def check_pair(codes: Any, factors: Any, suffix: str = "") -> tuple[np.ndarray, np.ndarray]:
    """Validate ``codes`` (``N x D``) and ``factors`` (``N x K``) with the same ``N``."""
    c = check_codes(codes, "codes" + suffix)
    f = check_factors(factors, "factors" + suffix)
    if c.shape[0] != f.shape[0]:
        raise ValueError(
            f"codes{suffix} has {c.shape[0]} rows but factors{suffix} has {f.shape[0]}; "
            "rows are samples and must correspond one to one"
        )
    return c, f


def check_train_test(
    codes_train: Any, factors_train: Any, codes_test: Any, factors_test: Any
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Validate a train/test split: same ``D`` and ``K`` in both halves."""
    ctr, ftr = check_pair(codes_train, factors_train, "_train")
    cte, fte = check_pair(codes_test, factors_test, "_test")
    if ctr.shape[1] != cte.shape[1]:
        raise ValueError(
            f"codes_train has {ctr.shape[1]} columns but codes_test has {cte.shape[1]}"
        )
    if ftr.shape[1] != fte.shape[1]:
        raise ValueError(
            f"factors_train has {ftr.shape[1]} columns but factors_test has {fte.shape[1]}"
        )
    return ctr, ftr, cte, fte


def histogram_discretize(codes: np.ndarray, num_bins: int = NUM_BINS) -> np.ndarray:
    """Bin each column into ``num_bins`` equal-width bins over its own sample range.

    Exactly disentanglement_lib's ``_histogram_discretize``: the edges are
    ``np.histogram(col, num_bins)[1]`` and the bin is ``np.digitize(col, edges[:-1])``, so values
    are ``1..num_bins`` (the column maximum lands in the last bin). ``N x D`` -> ``N x D`` int64.
    """
    check_sizes(num_bins=num_bins)
    out = np.empty(codes.shape, dtype=np.int64)
    for j in range(codes.shape[1]):
        col = codes[:, j]
        edges = np.histogram_bin_edges(col, num_bins)
        out[:, j] = np.digitize(col, edges[:-1])
    return out


def _compact(labels: np.ndarray) -> tuple[np.ndarray, int]:
    uniq, inv = np.unique(labels, return_inverse=True)
    return inv.reshape(-1).astype(np.int64), len(uniq)


def _mi_from_contingency(cont: np.ndarray) -> float:
    """``sklearn.metrics.mutual_info_score`` on a dense contingency table (same formula)."""
    nzx, nzy = np.nonzero(cont)
    nz_val = cont[nzx, nzy].astype(np.float64)
    total = cont.sum()
    pi = cont.sum(axis=1)
    pj = cont.sum(axis=0)
    if (pi > 0).sum() == 1 or (pj > 0).sum() == 1:
        return 0.0
    nm = nz_val / total
    outer = pi.take(nzx).astype(np.int64) * pj.take(nzy).astype(np.int64)
    log_outer = -np.log(outer) + np.log(pi.sum()) + np.log(pj.sum())
    mi = nm * (np.log(nz_val) - np.log(total)) + nm * log_outer
    mi = np.where(np.abs(mi) < np.finfo(mi.dtype).eps, 0.0, mi)
    return float(np.clip(mi.sum(), 0.0, None))


def discrete_mutual_info(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Mutual information (nats) between every column of ``a`` (``N x D``) and of ``b`` (``N x K``).

    Both hold discrete labels. Returns ``D x K``; entry ``[i, j]`` equals
    ``sklearn.metrics.mutual_info_score(b[:, j], a[:, i])`` (computed from one bincount each).
    """
    ca = [_compact(a[:, i]) for i in range(a.shape[1])]
    cb = [_compact(b[:, j]) for j in range(b.shape[1])]
    m = np.zeros((a.shape[1], b.shape[1]))
    for i, (ai, na) in enumerate(ca):
        for j, (bj, nb) in enumerate(cb):
            cont = np.bincount(ai * nb + bj, minlength=na * nb).reshape(na, nb)
            m[i, j] = _mi_from_contingency(cont)
    return m


def discrete_entropy(b: np.ndarray) -> np.ndarray:
    """Entropy (nats) of each column of the discrete ``N x K`` array ``b`` (= MI with itself)."""
    out = np.zeros(b.shape[1])
    for j in range(b.shape[1]):
        bj, nb = _compact(b[:, j])
        out[j] = _mi_from_contingency(np.diag(np.bincount(bj, minlength=nb)))
    return out


def num_jobs(n_jobs: int | None) -> int:
    """Worker count: ``None``/``-1`` -> all CPUs; at least 1."""
    if n_jobs is None or n_jobs < 0:
        return max(1, os.cpu_count() or 1)
    return max(1, int(n_jobs))


def parallel_map(fn: Callable[..., T], items: Sequence[Any] | Iterable[Any], n_jobs: int | None) -> list[T]:
    """``[fn(x) for x in items]`` on a thread pool (scikit-learn fits release the GIL).

    Threads, not processes: no pickling, no start-up cost; results keep the input order.
    """
    items = list(items)
    n = min(num_jobs(n_jobs), len(items))
    if n <= 1:
        return [fn(x) for x in items]
    from concurrent.futures import ThreadPoolExecutor

    from threadpoolctl import threadpool_limits

    # One BLAS/OpenMP thread per worker: the workers already fill the cores.
    with threadpool_limits(limits=1), ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(fn, items))


def encode_chunks(encode: Callable[[Any], Any], chunks: Iterable[Any], n: int) -> np.ndarray:
    """Codes (``n x D`` float64) of observations arriving in chunks, in order.

    ``encode(chunk)`` must return one code row per observation (numpy or torch); every chunk is
    validated (shape, finite values, same ``D``) and only one is alive at a time.
    """
    out: np.ndarray | None = None
    start = 0
    for obs in chunks:
        m = len(obs)
        z = to_numpy(encode(obs))
        if z.ndim != 2 or z.shape[0] != m:
            raise ValueError(
                f"encode must return one code row per observation (n x D), got shape {z.shape} "
                f"for {m} observations"
            )
        z = check_codes(z, "encoded codes")
        if out is None:
            out = np.empty((n, z.shape[1]), dtype=np.float64)
        elif z.shape[1] != out.shape[1]:
            raise ValueError(f"encode returned {z.shape[1]} columns, earlier {out.shape[1]}")
        out[start : start + m] = z
        start += m
    assert out is not None and start == n, "no observations to encode"
    return out


def encode_factors(
    data: Any,
    encode: Callable[[Any], Any],
    factors: np.ndarray,
    rng: Any,
    chunk_size: int = CHUNK_SIZE,
) -> np.ndarray:
    """Codes (``M x D`` float64) of observations drawn for ``factors`` (``M x K``), in chunks.

    ``data.observations_from_factors(chunk, rng)`` renders each chunk and ``encode`` maps it to
    codes (numpy or torch, ``chunk x D``); only one chunk of observations is alive at a time.
    """
    check_sizes(chunk_size=chunk_size)
    chunks = (
        data.observations_from_factors(factors[i : i + chunk_size], rng)
        for i in range(0, len(factors), chunk_size)
    )
    return encode_chunks(encode, chunks, len(factors))


def check_data(data: Any) -> None:
    """Check that ``data`` offers the sampling API the metrics need."""
    missing = [
        a
        for a in ("factor_sizes", "num_factors", "sample_factors", "observations_from_factors")
        if not hasattr(data, a)
    ]
    if missing:
        raise ValueError(
            f"data must provide factor_sizes, num_factors, sample_factors(n, rng) and "
            f"observations_from_factors(factors, rng); {type(data).__name__} lacks {', '.join(missing)}"
        )


def check_sizes(**sizes: int) -> None:
    """The metrics' one count rule: raise ``ValueError("NAME must be >= 1, got V")`` for the first
    keyword whose value is below 1."""
    for name, v in sizes.items():
        if int(v) < 1:
            raise ValueError(f"{name} must be >= 1, got {v}")
