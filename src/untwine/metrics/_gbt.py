"""A fast, exact re-implementation of ``sklearn.ensemble.GradientBoostingClassifier()`` for DCI.

(Longer than the project's ~500-line guide on purpose: one estimator whose every rule must match
scikit-learn's, kept in one file so it can be read against scikit-learn's sources side by side.)

DCI (disentanglement_lib) fits, per factor, a ``GradientBoostingClassifier`` with default
parameters on the codes and reads ``feature_importances_`` and the train/test accuracy.
:func:`fit_gbt` returns the same three quantities for the same estimator: log-loss, 100 stages,
learning rate 0.1, one depth-3 regression tree per class and stage (one per stage for two
classes), ``min_samples_split=2``, ``min_samples_leaf=1``, best splitter, ``subsample=1``, prior
initialisation, Newton leaf values.

What is reproduced (scikit-learn 1.9's ``_gb.py``, ``tree/_splitter.pyx``, ``_partitioner.pyx``,
``_criterion.pyx``, ``_tree.pyx``, ``_loss``):

* codes are cast to ``float32``; residuals, sums and leaf values are ``float64``;
* init: class priors clipped to ``[eps, 1 - eps]``; raw scores ``logit(p1)`` (2 classes) or
  ``log(p / gmean(p))``;
* each stage: negative gradients ``onehot(y) - softmax(raw)`` (binary: ``y - expit(raw)`` with
  scikit-learn's overflow-safe formula); each tree is grown on one column of it;
* split search: every feature, every position between consecutive (within the node, sorted)
  values ``a < b`` with ``b > float32(a + float32(1e-7))``; the split maximises the squared-error
  decrease ``n_L n_R / n (mean_L - mean_R)^2`` (equivalently scikit-learn's proxy
  ``S_L^2/n_L + S_R^2/n_R``); threshold ``a/2 + b/2`` in ``float64``; samples go left iff
  ``x <= threshold``; a node is a leaf at depth 3, with fewer than 2 samples, with impurity
  ``sum(y^2)/n - mean^2 <= eps(float64)``, or without a valid split;
* leaf values: ``mean(g) * (K - 1)/K / mean(p (1 - p))`` (binary: without ``(K - 1)/K``),
  ``p = y - g``, 0 where the denominator is below ``1e-150``; ``raw += 0.1 * leaf``;
* importances: per feature the summed impurity decrease of its splits over all trees,
  normalised to sum 1 (all zeros if no tree split) -- what ``feature_importances_`` gives, as the
  per-tree normalisation by the root size and the mean over trees cancel in the normalisation;
* predictions: ``argmax`` of the raw scores (binary: ``raw >= 0``), classes as ``np.unique(y)``.

Where it may differ: exact ties between candidate splits. scikit-learn visits the features in
a random order (``random_state=None`` in the reference) and keeps the first best it meets; within
a feature the first position, unless its rounding makes a later tied one larger. Here candidates
within ``1e-12`` (relative) of the best count as tied (so that the choice does not depend on
summation order); the feature first in a pseudo-random order (a hash of stage, tree, node and
feature: deterministic, independent of threads) wins, then its first position. Ties are common in
tiny nodes, where several features isolate the same samples, and in the first stages, whose
residuals take few distinct values. A tie between features moves importance to another feature
(the spread is that of scikit-learn between two ``random_state``); a tie between different
partitions changes the later trees. Apart from ties, sums run in another order than
scikit-learn's, so importances and raw scores agree to rounding and predictions are identical
unless two raw scores tie to that precision (e.g. uninformative codes and equally frequent
classes).

How it is fast (the results do not depend on any of this): the features are presorted once and
cut into ``n_bins`` bins of consecutive values (never separating tied values). For every tree and
node of a level, per (feature, bin) sums of the residuals, of their positive parts and squares,
and counts come from sparse-matrix products with the (feature, bin) x sample indicator matrix for
all trees of the stage at once (small children: scatter-adds of their samples; the larger child
of a split: parent minus smaller). Bin ends are split candidates with exact proxies; within a bin
the proxy is bounded from those sums (first over groups of 8 bins, then per bin), and only the
bins whose bound reaches the best candidate found (a few percent) are searched sample by sample.
The trees of a stage can be grown in several threads.
"""

from __future__ import annotations

import contextlib
import threading
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import scipy.sparse
import scipy.stats
import torch

# The boosted-tree backends of DCI, the downstream tasks and fairness (``dci_backend``): this
# module's re-implementation of the reference estimator, scikit-learn's estimator itself, or
# histogram boosting (an approximation). Defined here once; the CLI and study files check against it.
BACKENDS = ("exact", "sklearn", "fast")
DEFAULT_BACKEND = BACKENDS[0]  # the reference's estimator: every backend argument's default
N_STAGES = 100
LEARNING_RATE = 0.1
MAX_DEPTH = 3
_FEATURE_THRESHOLD = np.float32(1e-7)  # sklearn/tree/_partitioner.pxd (float32_t)
_EPSILON = np.finfo(np.float64).eps  # sklearn/tree/_tree.pyx
_MARGIN = 1e-9  # relative slack of the bin bounds (they are exact up to rounding)
_TIE = 1e-12  # proxies this close (relative, or closer than their rounding error) are ties
_GROUP = 8  # bins per super bin of the two-level bound search
_DENSE = 0.2  # smaller children with at least this fraction of the samples: sparse products
_TREES_PER_THREAD = 10  # at least this many trees ...
_WORK_PER_THREAD = 100_000  # ... and (samples x trees) per thread


class _Presorted:
    """Per-feature sort order, sorted values, tie structure and bins of the training codes."""

    def __init__(self, X: np.ndarray, n_bins: int):
        n, d = X.shape
        self.n, self.d = n, d
        self.order = np.ascontiguousarray(np.argsort(X, axis=0, kind="stable").T)  # (D, N)
        self.xs = np.ascontiguousarray(np.take_along_axis(X, self.order.T, axis=0).T)  # (D, N) f32
        # tied[f, q]: positions q and q+1 of feature f's order cannot be separated
        tied = self.xs[:, 1:] <= self.xs[:, :-1] + _FEATURE_THRESHOLD
        width = max(1, -(-n // n_bins))
        starts, lens = [], []
        for f in range(d):
            cut = np.ones(n, dtype=bool)  # cut[q]: a bin may end at q (boundary after q)
            cut[:-1] = ~tied[f]
            allowed = np.flatnonzero(cut)
            ends = allowed[np.minimum(np.searchsorted(allowed, np.arange(width - 1, n, width)), allowed.size - 1)]
            # runs of tied values longer than a quarter bin get bins of their own
            run_start = np.flatnonzero(np.r_[True, cut[:-1]])
            run_end = np.flatnonzero(cut)
            long = (run_end - run_start + 1) > max(1, width // 4)
            ends = np.unique(np.r_[ends, run_end[long], run_start[long][run_start[long] > 0] - 1, n - 1])
            st = np.r_[0, ends[:-1] + 1]
            starts.append(st)
            lens.append(ends - st + 1)
        self.group = _GROUP  # bins per super bin
        nb = -(-max(len(s) for s in starts) // self.group) * self.group
        self.nb = nb
        self.bin_start = np.full((d, nb), n, dtype=np.int64)
        self.bin_len = np.zeros((d, nb), dtype=np.int64)
        for f in range(d):
            self.bin_start[f, : len(starts[f])] = starts[f]
            self.bin_len[f, : len(lens[f])] = lens[f]
        last = np.minimum(self.bin_start + np.maximum(self.bin_len, 1) - 1, n - 1)
        first = np.minimum(self.bin_start, n - 1)
        lo = np.take_along_axis(self.xs, first, axis=1)
        hi = np.take_along_axis(self.xs, last, axis=1)
        # a bin has separable positions inside iff its extreme values are not tied
        self.refinable = (self.bin_len >= 2) & (hi > lo + _FEATURE_THRESHOLD)
        tcum = np.zeros((d, n), dtype=np.int64)
        np.cumsum(tied, axis=1, out=tcum[:, 1:])
        # bins with tied neighbours: positions inside them need the tie test
        self.has_ties = np.take_along_axis(tcum, last, axis=1) - np.take_along_axis(tcum, first, axis=1) > 0
        self.counts = self.bin_len.astype(np.int16 if n < 2**15 else np.int32)  # (D, nb)
        # Z: (D * nb) x N, row (f, b) sums the samples of bin b of feature f
        indptr = np.r_[(self.bin_start + (np.arange(d) * n)[:, None]).ravel(), d * n]
        z = scipy.sparse.csr_matrix(
            (np.ones(d * n), self.order.ravel().astype(np.int32), indptr.astype(np.int32)), shape=(d * nb, n)
        )
        z.sort_indices()
        self._keys: dict[int, np.ndarray] = {}
        # binf[i, f] = f * nb + (bin of sample i in feature f), for scatter-adds
        pos_bin = np.zeros((d, n), dtype=np.int64)
        for f in range(d):
            pos_bin[f] = np.repeat(np.arange(nb), self.bin_len[f])
        self.binf = np.empty((n, d), dtype=np.int64)
        self.binf[self.order.T, np.arange(d)] = (pos_bin + (np.arange(d) * nb)[:, None]).T
        # smaller children with at least this many samples use the sparse products
        self.dense_size = max(1, int(_DENSE * n))
        crow, col = torch.from_numpy(z.indptr.astype(np.int64)), torch.from_numpy(z.indices.astype(np.int64))
        with warnings.catch_warnings():  # "beta" CSR support, unchecked invariants: Z is valid
            warnings.simplefilter("ignore", UserWarning)
            self.zt = {
                dt: torch.sparse_csr_tensor(crow, col, torch.from_numpy(z.data.astype(dt)), size=z.shape)
                for dt in (np.float64, np.float32)
            }
        # counts: exact small integers
        self.zc = z.astype(np.int16 if n < 2**15 else np.int32)
        # float32 sums of <= L nonnegative terms: relative error below L * 2^-24; a margin of 2x
        rel = (self.bin_len + 2.0) * 2.0**-23
        self.p_hi = 1.0 + rel  # (D, nb)
        self.p_lo = np.maximum(1.0 - rel, 0.0)

    def tree_keys(self, T: int) -> np.ndarray:
        """``[0, 1, ..., T-1]`` repeated for every sample: the column of each entry of (N, T)."""
        if T not in self._keys:
            self._keys[T] = np.tile(np.arange(T), self.n)
        return self._keys[T]


def _hist(ps: _Presorted, rhs: np.ndarray) -> np.ndarray:
    """``Z @ rhs``: per (feature, bin) sums of the rows of ``rhs`` (N, C); float64/32 or counts."""
    if rhs.dtype == ps.zc.dtype:
        return ps.zc @ rhs
    zt = ps.zt[rhs.dtype.type]
    C = rhs.shape[1]
    if C <= 48:  # torch's CSR product (exact, sequential sums per row); narrow blocks stay in cache
        return (zt @ torch.from_numpy(rhs)).numpy()
    out = np.empty((zt.shape[0], C), dtype=rhs.dtype)
    for c in range(0, C, 32):
        out[:, c : c + 32] = (zt @ torch.from_numpy(np.ascontiguousarray(rhs[:, c : c + 32]))).numpy()
    return out


_TORCH_LOCK = threading.Lock()
_torch_users = 0
_torch_threads = 1


@contextlib.contextmanager
def _torch_one_thread() -> Iterator[None]:
    """One intra-op torch thread while any fit runs (restored after the last one).

    torch's CSR x dense product (MKL) on 2 intra-op threads is ~15x slower than on one; the fits
    parallelise over trees themselves.
    """
    global _torch_users, _torch_threads
    with _TORCH_LOCK:
        if _torch_users == 0:
            _torch_threads = torch.get_num_threads()
            if _torch_threads != 1:
                torch.set_num_threads(1)
        _torch_users += 1
    try:
        yield
    finally:
        with _TORCH_LOCK:
            _torch_users -= 1
            if _torch_users == 0 and _torch_threads != 1:
                torch.set_num_threads(_torch_threads)


def _neg_gradient(raw: np.ndarray, y: np.ndarray, onehot: np.ndarray | None) -> np.ndarray:
    """``-loss.gradient``: ``(N, T)`` float64."""
    if onehot is None:  # HalfBinomialLoss, sklearn/_loss/_loss.pyx.tp cgradient_half_binomial
        r = raw[:, 0]
        yf = y.astype(np.float64)
        with np.errstate(over="ignore"):
            e = np.exp(-r)
            grad = np.where(r > -37, ((1 - yf) - yf * e) / (1 + e), np.exp(r) - yf)
        return -grad[:, None]
    e = raw - raw.max(axis=1, keepdims=True)
    np.exp(e, out=e)
    e /= e.sum(axis=1, keepdims=True)
    np.subtract(onehot, e, out=e)
    return e


def _bounds(S, P, Q, C, Dp, Cc, n, m):
    """Exact proxies at bin ends and upper bounds on them inside each bin.

    The proxy of a split with ``c`` samples on the left is ``d^2 / (c (n - c))``, ``d`` the sum of
    the centred residuals on the left: the impurity decrease divided by ``n``. ``S, C``: bin
    sums of the residuals and counts of the node's samples; ``P, Q``: upper bounds on the bin
    sums of their positive parts and squares; ``Dp, Cc``: ``d`` and ``c`` up to each bin's
    end (inclusive); ``n, m``: the node's size and mean (broadcastable). Bin ends with ``c`` in
    ``(0, n)`` are valid split positions (bins never cut a run of tied values); -1 marks none.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        lb = np.where((C > 0) & (Cc < n), Dp * Dp / (Cc * (n - Cc)), -1.0)
        drift = S - C * m  # sum of the centred steps in the bin
        dprev = Dp - drift
        # sums of the positive / |negative| centred steps: from the positive parts, and from
        # sum |g - m| <= sqrt(C sum (g - m)^2) (Cauchy-Schwarz)
        u = m * (2.0 * S - C * m)
        sse = np.maximum(Q - u, 0.0) + 1e-15 * (Q + np.abs(u))  # + its rounding error
        a = np.sqrt(C * sse)
        pos = np.minimum(P + C * np.maximum(-m, 0.0), np.maximum(a + drift, 0.0) * 0.5)
        neg = np.minimum((P - S) + C * np.maximum(m, 0.0), np.maximum(a - drift, 0.0) * 0.5)
        dmax = np.minimum(dprev + pos, Dp + neg)
        dmin = np.maximum(dprev - neg, Dp - pos)
        dd = np.maximum(dmax * dmax, dmin * dmin)
        e = np.minimum(Cc - C + 1.0, n - Cc + 1.0)  # inner positions: the one nearest an end
        ub = np.where(C >= 2, dd / (e * (n - e)), -1.0)
    return lb, ub


def _fine_bounds(ps: _Presorted, S, B, C, S2, C2, Dp2, Cc2, ma, na, sg, sf, sb):
    """Bounds of the bins of super bins ``(sg, sf, sb)`` (node, feature, super bin), ``(n2, R)``
    arrays ``(lb, ub, Dp, Cc, S, C, bin)``."""
    R = ps.group
    Ga, D, nb = S.shape
    fb = sb[:, None] * R + np.arange(R)
    flat = (sg[:, None] * D + sf[:, None]) * nb + fb
    Sf = np.take(S, flat)
    bflat = (sg[:, None] * 2 * D + sf[:, None]) * nb + fb
    Pf = np.take(B, bflat)
    Qf = np.take(B, bflat + D * nb)
    Cf = np.take(C, flat).astype(np.float64)
    m1, n1 = ma[sg][:, None], na[sg][:, None]
    c2 = C2[sg, sf, sb]
    Ccf = (Cc2[sg, sf, sb] - c2)[:, None] + np.cumsum(Cf, axis=1)
    Dpf = (Dp2[sg, sf, sb] - S2[sg, sf, sb] + c2 * ma[sg])[:, None] + np.cumsum(Sf - Cf * m1, axis=1)
    lbf, ubf = _bounds(Sf, Pf, Qf, Cf, Dpf, Ccf, n1, m1)
    ubf[~ps.refinable[sf[:, None], fb]] = -1.0
    return lbf, ubf, Dpf, Ccf, Sf, Cf, fb


def _super_sum(A: np.ndarray, R: int) -> np.ndarray:
    """Sums of ``R`` consecutive entries along the last axis (float64)."""
    out = A[..., 0::R].astype(np.float64)
    for r in range(1, R):
        out += A[..., r::R]
    return out


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: well-spread pseudo-random ``uint64`` from integer keys."""
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _group_max(v: np.ndarray, grp: np.ndarray, size: int) -> np.ndarray:
    """``out[j] = max(v[grp == j])`` (``-inf`` if empty)."""
    out = np.full(size, -np.inf)
    np.maximum.at(out, grp, v)
    return out


def _node_best(ps: _Presorted, g: np.ndarray, nid: np.ndarray, M: int, S, B, C, n, mean, impurity, active, tie_key):
    """Best split of every (tree, node) of a level.

    ``S, C``: ``(T*M, D, nb)`` bin sums of ``g`` and counts of each node's samples; ``B``:
    ``(T*M, 2, D, nb)`` upper bounds on the bin sums of ``max(g, 0)`` and ``g^2``; ``n, mean,
    impurity``: ``(T*M,)``; ``active``: nodes to split; ``tie_key(node, feature)``: integers whose
    order breaks ties between features. Returns ``(feature, q_lo, n_left, value)`` per node,
    ``value < 0`` for no split; ``q_lo`` is the position (in the feature's global order) of the
    last sample that goes left; ``value`` the impurity decrease (``n`` times the proxy).
    """
    G, D, nb = S.shape
    N, T = g.shape
    R = ps.group
    feat = np.zeros(G, dtype=np.int64)
    qlo = np.zeros(G, dtype=np.int64)
    nleft = np.zeros(G)
    value = np.full(G, -1.0)
    act = np.flatnonzero(active)
    if act.size == 0:
        return feat, qlo, nleft, value
    if act.size < G:
        S, B, C = np.take(S, act, axis=0), np.take(B, act, axis=0), np.take(C, act, axis=0)
    else:
        S, B, C = np.ascontiguousarray(S), np.ascontiguousarray(B), np.ascontiguousarray(C)
    Ga = act.size
    na, ma = n[act], mean[act]
    n3, m3 = na[:, None, None], ma[:, None, None]
    # bounds are exact up to rounding: slack relative to the best value and to the node's
    # impurity (which bounds every proxy)
    slack = 1e-12 * impurity[act]
    # rounding error of the centred sums d (partial sums of |g| and n |m| up to ~1e-15 relative)
    # and of the proxies d^2 / (c (n - c)) it gives: proxies closer than that are ties
    abs_g = 2.0 * B[:, 0, 0].sum(axis=1) - S[:, 0].sum(axis=1)
    d_err = 1e-15 * (abs_g + na * np.abs(ma)) / np.sqrt(np.maximum(na - 1.0, 1.0))

    def tol(v: np.ndarray, a: np.ndarray | slice = slice(None)) -> np.ndarray:
        return np.maximum(np.abs(v) * _TIE, 2.0 * np.sqrt(np.maximum(v, 0.0)) * d_err[a])

    # super bins (R consecutive bins): bounds for all of them ...
    S2 = _super_sum(S, R)
    B2 = _super_sum(B, R)
    C2 = _super_sum(C, R)
    Cc2 = np.cumsum(C2, axis=2)
    Dp2 = np.cumsum(S2, axis=2)
    Dp2 -= Cc2 * m3
    lb2, ub2 = _bounds(S2, B2[:, 0], B2[:, 1], C2, Dp2, Cc2, n3, m3)
    ub2 = np.maximum(ub2, lb2)
    best = lb2.reshape(Ga, -1).max(axis=1)
    # ... a better lower bound from the bin ends inside the most promising super bin per node ...
    nbs = nb // R
    top = np.argmax(ub2.reshape(Ga, -1), axis=1)
    lbt = _fine_bounds(ps, S, B, C, S2, C2, Dp2, Cc2, ma, na, np.arange(Ga), top // nbs, top % nbs)[0]
    best = np.maximum(best, lbt.max(axis=1))
    level = np.maximum(best - np.maximum(np.abs(best) * _MARGIN, 2.0 * tol(best)) - slack, 0.0)
    # ... bin bounds inside the super bins that can reach it ...
    sg, sf, sb = np.nonzero(ub2 >= level[:, None, None])  # ordered by node, feature, bin
    lbf, ubf, Dpf, Ccf, Sf, Cf, fb = _fine_bounds(ps, S, B, C, S2, C2, Dp2, Cc2, ma, na, sg, sf, sb)
    best = np.maximum(best, _group_max(lbf.max(axis=1), sg, Ga))
    level = np.maximum(best - np.maximum(np.abs(best) * _MARGIN, 2.0 * tol(best)) - slack, 0.0)
    # ... and every position inside the bins that can: candidates ordered by node, feature, bin
    ci, cr = np.nonzero(np.maximum(ubf, lbf) >= level[sg][:, None])
    if ci.size == 0:
        return feat, qlo, nleft, value
    cga, cf, cb = sg[ci], sf[ci], fb[ci, cr]
    cg = act[cga]
    c_dprev = Dpf[ci, cr] - Sf[ci, cr] + Cf[ci, cr] * ma[cga]
    c_cprev = Ccf[ci, cr] - Cf[ci, cr]
    c_start = ps.bin_start[cf, cb]
    c_len = ps.bin_len[cf, cb]
    c_ties = ps.has_ties[cf, cb]
    k = cg // M
    rv = np.full(cg.size, -1.0)
    gflat = g.ravel()
    nidflat = nid.ravel() if M > 1 else None  # at the roots every sample is in the node
    orderflat = ps.order.ravel()
    xsflat = ps.xs.ravel()
    # candidates in length classes, so that padding stays small
    lcls = np.ceil(np.log2(np.maximum(c_len, 1))).astype(np.int64)
    classes = []
    for lc in np.unique(lcls):
        r = np.flatnonzero(lcls == lc)
        L = int(c_len[r].max())
        t = np.arange(L)
        inb = t < c_len[r, None]
        q = c_start[r, None] + np.where(inb, t, 0)  # (R, L) global positions
        fl = orderflat[cf[r, None] * N + q] * T + k[r, None]  # (sample, tree) index
        if M > 1:
            inn = nidflat[fl] == cg[r, None]
            inn &= inb
        else:
            inn = inb
        d = np.cumsum(np.where(inn, gflat[fl] - mean[cg[r], None], 0.0), axis=1)
        d += c_dprev[r, None]
        cnt = np.cumsum(inn, axis=1) + c_cprev[r, None]
        nr = n[cg[r], None]
        ok = inn & (cnt < nr)
        tr = np.flatnonzero(c_ties[r])
        if tr.size:  # bins with tied values: the next sample of the node must not be tied
            big = np.where(inn[tr], t, L)
            nxt = np.minimum.accumulate(big[:, ::-1], axis=1)[:, ::-1]
            nxt = np.concatenate([nxt[:, 1:], np.full((tr.size, 1), L)], axis=1)
            xr = xsflat[cf[r[tr], None] * N + q[tr]]
            xn = np.take_along_axis(np.concatenate([xr, np.full((tr.size, 1), np.inf, np.float32)], 1), nxt, 1)
            ok[tr] &= ~(xn <= xr + _FEATURE_THRESHOLD)
        with np.errstate(divide="ignore", invalid="ignore"):
            prox = np.where(ok, d * d / (cnt * (nr - cnt)), -1.0)
        rv[r] = prox.max(axis=1)
        classes.append((r, prox, cnt))
    # per node, among the candidates within rounding of the best value (so that the choice does
    # not depend on summation order): the feature first in a pseudo-random order (scikit-learn
    # draws the order of the features at random and keeps the first best), then the first
    # position
    starts = np.flatnonzero(np.r_[True, cg[1:] != cg[:-1]])
    gmax = np.maximum.reduceat(rv, starts)
    grp = np.repeat(np.arange(starts.size), np.diff(np.r_[starts, cg.size]))
    level = gmax - tol(gmax, cga[starts])
    hit = np.flatnonzero(rv >= level[grp])
    hit = hit[np.lexsort((hit, tie_key(cg[hit], cf[hit]), grp[hit]))]
    _, first = np.unique(grp[hit], return_index=True)
    win = hit[first]
    win = win[rv[win] >= 0]
    is_win = np.zeros(cg.size, dtype=bool)
    is_win[win] = True
    for r, prox, cnt in classes:
        w = np.flatnonzero(is_win[r])
        if w.size == 0:
            continue
        rows = r[w]
        a = np.argmax(prox[w] >= level[grp[rows]][:, None], axis=1)
        nodes = cg[rows]
        feat[nodes] = cf[rows]
        qlo[nodes] = c_start[rows] + a
        nleft[nodes] = cnt[w, a]
        value[nodes] = prox[w, a] * n[nodes]
    return feat, qlo, nleft, value


def _thresholds(ps: _Presorted, nid: np.ndarray, M: int, feat, qlo, value) -> np.ndarray:
    """``x_lo/2 + x_hi/2`` per split node (``inf``: no split), ``x_hi`` the next sample of the node."""
    N, T = nid.shape
    G = feat.size
    thr = np.full(G, np.inf)
    sp = np.flatnonzero(value >= 0)
    if sp.size == 0:
        return thr
    k = sp // M
    f, q0 = feat[sp], qlo[sp]
    xlo = ps.xs[f, q0].astype(np.float64)
    xhi = np.full(sp.size, np.nan)
    todo = np.arange(sp.size)
    width = 64
    start = q0 + 1
    while todo.size:
        t = np.arange(width)
        q = start[todo, None] + t
        inr = q < N
        q = np.minimum(q, N - 1)
        s = ps.order[f[todo, None], q]
        hit = inr & (nid[s, k[todo, None]] == sp[todo, None])
        any_ = hit.any(axis=1)
        a = np.argmax(hit, axis=1)
        done = todo[any_]
        xhi[done] = ps.xs[f[done], q[any_, a[any_]]]
        start[todo] += width
        todo = todo[~any_]
        if todo.size and start[todo].min() >= N:  # cannot happen: a split leaves samples right
            raise RuntimeError("internal error: split without samples on the right")
        width *= 4
    thr[sp] = xlo / 2.0 + xhi / 2.0
    return thr


def _route(X: np.ndarray, nid: np.ndarray, M: int, feat: np.ndarray, thr: np.ndarray) -> np.ndarray:
    """Children ``2 * node + (x > threshold)`` of the nodes ``nid`` (N, T): global ids
    ``tree * M + j``, the ``(T * M,)`` arrays ``feat, thr`` indexed by them."""
    N, D = X.shape
    if M == 1:  # the roots: one feature per tree
        return (np.take(X, feat, axis=1) > thr) + 2 * nid[0]  # (X[:, feat] would be F-ordered)
    x = np.take(X.ravel(), feat[nid] + (np.arange(N) * D)[:, None])
    out = np.left_shift(nid, 1)
    out += x > thr[nid]
    return out


def _grow_stage(ps: _Presorted, X: np.ndarray, g: np.ndarray, imp: np.ndarray, seed: int) -> np.ndarray:
    """Grow the ``T`` depth-3 trees of a stage on the residual columns ``g`` (N, T).

    ``X``: the training codes followed by any others to predict; ``seed``: of the tie-breaking
    order of the features (per stage and tree). Adds the impurity decreases to ``imp`` and
    returns the leaf ids ``8 * tree + leaf`` of every (row of ``X``, tree).
    """
    N, T = g.shape
    D, nb = ps.d, ps.nb
    # node ids are global: node j of tree k at depth l is k * 2^l + j; children of v: 2v, 2v + 1
    nid_all = np.broadcast_to(np.arange(T), (X.shape[0], T))
    nid = nid_all[:N]
    n = np.full(T, float(N))
    # sums per node by bincount: sequential per column, whatever the number of columns
    g2 = g * g
    s1 = np.bincount(ps.tree_keys(T), weights=g.ravel(), minlength=T)
    s2 = np.bincount(ps.tree_keys(T), weights=g2.ravel(), minlength=T)
    # bin histograms of the G = T * 2^l nodes of the level: residual sums S (G, D, nb, float64),
    # sums of the positive parts and of the squares B (G, 2, D, nb: they only bound the search,
    # so float32 sums inflated by their rounding error bound), counts C (G, D, nb)
    gb = np.concatenate([np.maximum(g, 0.0), g2], axis=1).astype(np.float32)  # (N, 2T)
    S = np.ascontiguousarray(_hist(ps, g).T).reshape(T, D, nb)
    B = np.ascontiguousarray(_hist(ps, gb).T).reshape(2, T, D, nb).transpose(1, 0, 2, 3) * ps.p_hi
    C = np.broadcast_to(ps.counts, (T, D, nb))
    alive = np.ones(T, dtype=bool)
    for depth in range(MAX_DEPTH):
        M = 2**depth
        with np.errstate(divide="ignore", invalid="ignore"):
            mean = np.where(n > 0, s1 / n, 0.0)
            impurity = np.where(n > 0, s2 / n - mean * mean, 0.0)
        active = alive & (n >= 2) & (impurity > _EPSILON)

        def tie_key(node: np.ndarray, f: np.ndarray, M: int = M) -> np.ndarray:
            # per (tree, depth, node, feature), independent of how the trees are grouped
            return _mix((((seed + node // M) * 8 + M + node % M) * D + f).astype(np.uint64))

        feat, qlo, nleft, value = _node_best(ps, g, nid, M, S, B, C, n, mean, impurity, active, tie_key)
        split = value >= 0
        thr = _thresholds(ps, nid, M, feat, qlo, value)
        np.add.at(imp, (np.flatnonzero(split) // M, feat[split]), value[split])
        nid_all = _route(X, nid_all, M, feat, thr)
        nid = nid_all[:N]
        if depth == MAX_DEPTH - 1:
            break
        # children: sizes from the split; histograms of the smaller child of each parent (the
        # larger one's are parent - smaller)
        nleft = np.where(split, nleft, n)
        small_right = (n - nleft) <= nleft  # (G,)
        hs, hb_hi, hb_lo, hc = _small_hists(ps, g, gb, nid, small_right, np.minimum(nleft, n - nleft))
        S = _children(S, hs, hs, small_right)
        B = _children(B, hb_hi, hb_lo, small_right)
        C = _children(C, hc, hc, small_right)
        s1_small = hs[:, 0].sum(axis=1)
        s1_other = s1 - s1_small
        s1 = np.stack([np.where(small_right, s1_other, s1_small), np.where(small_right, s1_small, s1_other)], 1).ravel()
        n = np.stack([nleft, n - nleft], axis=1).ravel()
        s2 = np.bincount(nid.ravel(), weights=g2.ravel(), minlength=2 * T * M)
        alive = np.repeat(split, 2)
    return nid_all


def _small_hists(ps: _Presorted, g, gb, nid, small_right, size):
    """Histograms of the smaller child of each of the ``G`` parents.

    ``gb``: (N, 2T) float32 ``[max(g, 0), g^2]``; ``nid``: (N, T) child ids ``2 * parent + right``.
    Small children go through a scatter-add of their samples; large ones through sparse products
    with ``Z`` (one per parent position in the tree, whose smaller children are disjoint).
    Returns residual sums ``(G, D, nb)``, upper and lower bounds of the sums of ``gb``
    ``(G, 2, D, nb)``, counts ``(G, D, nb)``.
    """
    N, T = g.shape
    D, nb = ps.d, ps.nb
    G = small_right.size
    M = G // T
    small_child = 2 * np.arange(G) + small_right
    hs = np.zeros((G, D, nb))
    hb_hi = np.zeros((G, 2, D, nb))
    hb_lo = np.zeros((G, 2, D, nb))
    hc = np.zeros((G, D, nb), dtype=ps.counts.dtype)
    dense = size >= ps.dense_size
    for a in range(M):
        par = np.arange(T) * M + a
        ks = np.flatnonzero(dense[par])
        if ks.size == 0:
            continue
        tab = np.zeros(2 * G, dtype=bool)
        tab[small_child[par[ks]]] = True
        sub = ks.size < T
        mask = tab[np.take(nid, ks, axis=1) if sub else nid]  # (N, |ks|)
        gk = np.take(g, ks, axis=1) if sub else g
        bk = np.take(gb.reshape(N, 2, T), ks, axis=2) if sub else gb.reshape(N, 2, T)
        pk = par[ks]
        hs[pk] = _hist(ps, np.where(mask, gk, 0.0)).T.reshape(ks.size, D, nb)
        h = _hist(ps, np.where(mask[:, None, :], bk, np.float32(0)).reshape(N, 2 * ks.size))
        h = h.T.reshape(2, ks.size, D, nb).transpose(1, 0, 2, 3)
        hb_hi[pk] = h * ps.p_hi
        hb_lo[pk] = h * ps.p_lo
        hc[pk] = _hist(ps, mask.astype(ps.zc.dtype)).T.reshape(ks.size, D, nb)
    sparse = np.flatnonzero(~dense & (size > 0))
    if sparse.size:
        tab = np.zeros(2 * G, dtype=bool)
        tab[small_child[sparse]] = True
        flat = np.flatnonzero(tab[nid])  # row-major: each bin sums its samples in index order
        ii, kk = flat // T, flat % T
        col = np.zeros(G, dtype=np.int64)
        col[sparse] = np.arange(sparse.size)
        keys = (col[nid[ii, kk] >> 1] * (D * nb))[:, None] + ps.binf[ii]  # (pairs, D)
        keys = keys.ravel()
        size_out = sparse.size * D * nb
        w = g[ii, kk]
        hs[sparse] = np.bincount(keys, weights=np.repeat(w, D), minlength=size_out).reshape(-1, D, nb)
        for j, wj in enumerate((np.maximum(w, 0.0), w * w)):
            out = np.bincount(keys, weights=np.repeat(wj, D), minlength=size_out).reshape(-1, D, nb)
            hb_hi[sparse, j] = out
            hb_lo[sparse, j] = out
        hc[sparse] = np.bincount(keys, minlength=size_out).reshape(-1, D, nb)
    return hs, hb_hi, hb_lo, hc


def _children(parent: np.ndarray, small: np.ndarray, small_lo: np.ndarray, small_right: np.ndarray) -> np.ndarray:
    """``(G, ...)`` histograms of the parents and of their smaller children -> ``(2G, ...)``.

    The larger child gets ``parent - small_lo`` (``small_lo <= small``: lower bounds where the
    sums are upper bounds).
    """
    G = small.shape[0]
    other = parent - small_lo
    out = np.empty((G, 2) + small.shape[1:], dtype=other.dtype)
    sr, sl = small_right, ~small_right
    out[sr, 1] = small[sr]
    out[sr, 0] = other[sr]
    out[sl, 0] = small[sl]
    out[sl, 1] = other[sl]
    return out.reshape((2 * G,) + small.shape[1:])


def _stage_chunk(ps: _Presorted, X: np.ndarray, g: np.ndarray, yk: np.ndarray, factor: float, imp: np.ndarray, seed: int):
    """Grow the trees of the residual columns ``g`` (N, T'), add their impurity decreases to
    ``imp`` (T', D) and return their raw-score updates for every row of ``X`` (rows, T')."""
    N, T = g.shape
    leaf = _grow_stage(ps, X, g, imp, seed)
    key = leaf[:N].ravel()
    cnt = np.bincount(key, minlength=8 * T)
    num = np.bincount(key, weights=g.ravel(), minlength=8 * T)
    p = yk - g
    den = np.bincount(key, weights=(p * (1 - p)).ravel(), minlength=8 * T)
    with np.errstate(divide="ignore", invalid="ignore"):
        num = num / cnt * factor
        den = den / cnt
        val = np.where(np.abs(den) < 1e-150, 0.0, num / den)
    val = np.where(cnt > 0, val, 0.0)
    return LEARNING_RATE * val[leaf]


def predict_gbt(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_tests: tuple[np.ndarray, ...] = (),
    n_estimators: int = N_STAGES,
    n_bins: int | None = None,
    n_threads: int = 1,
) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """Fit on ``(x_train, y_train)``: ``(feature_importances_, predict(x_train), [predict(x) for x in x_tests])``.

    ``n_threads``: the trees of a stage are grown in up to that many threads (each with at least
    10 trees and 100,000 samples x trees); results do not depend on it.
    """
    X = np.ascontiguousarray(np.asarray(x_train, dtype=np.float32))
    y_train = np.asarray(y_train)
    if X.ndim != 2 or y_train.shape != (X.shape[0],):
        raise ValueError(f"x_train must be N x D and y_train of length N, got {X.shape} and {y_train.shape}")
    tests = [np.ascontiguousarray(np.asarray(x, dtype=np.float32)) for x in x_tests]
    classes, y = np.unique(y_train, return_inverse=True)
    K = classes.size
    if K < 2:
        raise ValueError("the gradient boosting classifier needs at least 2 classes in y_train")
    N, D = X.shape
    eps = np.finfo(np.float64).eps
    prior = np.clip(np.bincount(y, minlength=K) / N, eps, 1 - eps)  # DummyClassifier(prior)
    if K == 2:
        T = 1
        raw0 = np.array([np.log(prior[1] / (1 - prior[1]))])
        onehot = None
    else:
        T = K
        raw0 = np.log(prior / scipy.stats.gmean(prior))
        onehot = np.zeros((N, K))
        onehot[np.arange(N), y] = 1.0
    X_all = np.concatenate([X] + tests, axis=0)
    raw = np.tile(raw0, (X_all.shape[0], 1))  # training rows first
    if n_bins is None:  # balances the per-bin bounds against the per-sample search
        n_bins = int(np.clip(2.0 * np.sqrt(N), 16, 256))
    ps = _Presorted(X, n_bins)
    imp = np.zeros((T, D))  # per tree column, summed in a fixed order at the end
    yk = onehot if onehot is not None else y.astype(np.float64)[:, None]
    factor = (K - 1) / K if K > 2 else 1.0
    # threads pay off with large arrays only (they share the GIL between numpy calls)
    n_chunks = max(1, min(int(n_threads), T // _TREES_PER_THREAD, N * T // _WORK_PER_THREAD))
    edges = np.linspace(0, T, n_chunks + 1).round().astype(int)
    chunks = [slice(a, b) for a, b in zip(edges[:-1], edges[1:]) if b > a]

    def one(c: slice, g: np.ndarray, stage: int) -> np.ndarray:
        gc = g if c.stop - c.start == T else np.ascontiguousarray(g[:, c])
        return _stage_chunk(ps, X_all, gc, np.ascontiguousarray(yk[:, c]), factor, imp[c], stage * T + c.start)

    with contextlib.ExitStack() as stack:
        stack.enter_context(_torch_one_thread())
        pool = stack.enter_context(ThreadPoolExecutor(len(chunks))) if len(chunks) > 1 else None
        for stage in range(n_estimators):
            g = _neg_gradient(raw[:N], y, onehot)
            if pool is None:
                raw += one(chunks[0], g, stage)
            else:
                n = len(chunks)
                for c, upd in zip(chunks, pool.map(one, chunks, [g] * n, [stage] * n)):
                    raw[:, c] += upd
    imp = imp.sum(axis=0)
    total = imp.sum()
    imp = imp / total if total > 0 else np.zeros(D)

    def labels(r: np.ndarray) -> np.ndarray:
        return classes[(r[:, 0] >= 0).astype(np.int64) if K == 2 else r.argmax(axis=1)]

    bounds = np.cumsum([N] + [x.shape[0] for x in tests])
    return imp, labels(raw[:N]), [labels(raw[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]


def fit_gbt(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    n_estimators: int = N_STAGES,
    n_bins: int | None = None,
    n_threads: int = 1,
) -> tuple[np.ndarray, float, float]:
    """``(feature_importances_, train accuracy, test accuracy)`` of ``GradientBoostingClassifier()``.

    Args:
        x_train, x_test: ``N x D`` codes (cast to ``float32`` as scikit-learn does).
        y_train, y_test: labels; ``y_train`` needs at least 2 classes.
        n_estimators: boosting stages (scikit-learn's default 100; other values for testing).
        n_bins: bins per feature of the split search (``None``: ``2 sqrt(N)`` in ``[16, 256]``);
            speed only: results do not depend on it beyond rounding.
        n_threads: threads growing the trees of a stage (speed only; results do not depend on it).
    """
    imp, pred, (pred_te,) = predict_gbt(x_train, y_train, (x_test,), n_estimators, n_bins, n_threads)
    y_test = np.asarray(y_test)
    return imp, float(np.mean(pred == np.asarray(y_train))), float(np.mean(pred_te == y_test))
