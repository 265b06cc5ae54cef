"""Minibatch estimates of the aggregate posterior q(z) and its total correlation (nats).

``q(z) = (1/N) sum_n q(z | x_n)`` over the ``N`` training images. For a batch of ``B`` codes
``z_i ~ q(z | x_i)`` the only tractable handle on it is the ``B x B x D`` matrix
``log q(z_i,d | x_j)``; an estimator is a choice of weights ``w_ij`` with

    log q(z_i)        ~ logsumexp_j (log w_ij + sum_d log q(z_i,d | x_j))
    log prod_d q(z_d) ~ sum_d logsumexp_j (log w_ij + log q(z_i,d | x_j))

* ``stratified=True`` (default): ``w_ii = 1/N`` (``z_i``'s own image is one of the N) and
  ``w_ij = (N - 1) / (N (B - 1))`` for ``j != i`` (the other codes stand for the other N - 1
  images). Rows sum to 1, so the estimate of ``q(z_i)`` is unbiased and the TC estimate is
  consistent as the batch grows (biased low for small batches, as any log of a mean is). This is
  the minibatch stratified sampling idea of Chen et al. (2018), with every off-diagonal image
  weighted alike (their reference code lays the weights out differently).
* ``stratified=False``: minibatch weighted sampling (MWS), Chen et al. (2018) eq. for
  ``E log q(z)``: ``w_ij = 1/(N B)`` for all ``i, j``. This is the paper's default training
  estimator (and disentanglement_lib's, which drops the constants). Its *value* is far off: the
  TC estimate carries an offset of about ``(D - 1) log N`` nats (about 120 nats for D = 10 on
  dSprites), so do not log or compare it; its gradients are the ones the paper trains with.

The *reported* ``tc`` (validation rows, results.csv) is :func:`gaussian_tc`, the total
correlation of a Gaussian with the covariance of the sampled codes ``z`` over the whole validation
sample: ``0.5 (sum_d log C_dd - log det C) >= 0``. Both minibatch estimators are biased low at the
sizes the trainer uses (64 codes per batch): on Gaussian codes with posterior std 0.1-0.3 of the
aggregate's spread the stratified estimate is 0.6-2.6 nats below a true TC of 0, and still 0.4-1.3
nats below with all 2,048 validation codes as one batch (``benchmarks/bench_tc_bias.py``), so it
cannot be reported as a TC. The Gaussian
TC is exact when ``q(z)`` is Gaussian, never negative, and measures only linear (second-order)
dependence between latents; :data:`REPORTED_TC` says so in reports.

References: R. T. Q. Chen, X. Li, R. Grosse, D. Duvenaud, "Isolating Sources of Disentanglement
in VAEs", NeurIPS 2018.
"""

from __future__ import annotations

import math

import torch

_LOG_2PI = math.log(2.0 * math.pi)


def log_density_gaussian(x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Elementwise ``log N(x; mu, exp(logvar))`` in nats; the arguments broadcast together."""
    return -0.5 * (_LOG_2PI + logvar + (x - mu).pow(2) * torch.exp(-logvar))


def pairwise_log_density(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """``log q(z_i,d | x_j)``: ``B x D`` codes and posteriors -> ``B x B x D`` (``i, j, d``)."""
    return log_density_gaussian(z.unsqueeze(1), mu.unsqueeze(0), logvar.unsqueeze(0))


def log_weights(batch_size: int, dataset_size: int, *, stratified: bool = True,
                device: torch.device | None = None, dtype: torch.dtype | None = None) -> torch.Tensor:
    """``B x B`` log importance weights ``log w_ij`` of the estimator (see the module docstring)."""
    b, n = int(batch_size), int(dataset_size)
    if b < 1 or n < 1:
        raise ValueError(f"batch_size and dataset_size must be >= 1, got {b} and {n}")
    if not stratified:
        return torch.full((b, b), -math.log(n * b), device=device, dtype=dtype)
    if b == 1:
        return torch.zeros((1, 1), device=device, dtype=dtype)
    off = math.log(n - 1) - math.log(n * (b - 1)) if n > 1 else -math.inf
    w = torch.full((b, b), off, device=device, dtype=dtype)
    w.fill_diagonal_(-math.log(n))
    return w


def log_qz_and_marginals(
    z: torch.Tensor,
    mu: torch.Tensor,
    logvar: torch.Tensor,
    dataset_size: int,
    *,
    stratified: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-code estimates ``(log q(z_i), sum_d log q(z_i,d))``, each ``B`` (nats)."""
    _check(z, mu, logvar)
    logq = pairwise_log_density(z, mu, logvar)  # B x B x D
    w = log_weights(z.shape[0], dataset_size, stratified=stratified, device=z.device, dtype=z.dtype)
    log_qz = torch.logsumexp(w + logq.sum(2), dim=1)
    log_prod = torch.logsumexp(w.unsqueeze(2) + logq, dim=1).sum(1)
    return log_qz, log_prod


def total_correlation(
    z: torch.Tensor,
    mu: torch.Tensor,
    logvar: torch.Tensor,
    dataset_size: int,
    *,
    stratified: bool = True,
) -> torch.Tensor:
    """Estimate of ``TC(q(z)) = KL(q(z) || prod_d q(z_d))`` in nats, a scalar.

    ``z, mu, logvar: B x D`` (codes sampled from ``N(mu, exp(logvar))``); ``dataset_size`` is the
    number of training images N. Default: the stratified (consistent) estimator, the one logged as
    ``tc`` for every model. Memory and time are ``O(B^2 D)``.
    """
    log_qz, log_prod = log_qz_and_marginals(z, mu, logvar, dataset_size, stratified=stratified)
    return (log_qz - log_prod).mean()


def kl_decomposition(
    z: torch.Tensor,
    mu: torch.Tensor,
    logvar: torch.Tensor,
    dataset_size: int,
    *,
    stratified: bool = True,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(mi, tc, dwkl)``: scalars in nats, batch means of (Chen et al. 2018, eq. 2)

    ``mi = log q(z|x) - log q(z)`` (index-code mutual information),
    ``tc = log q(z) - sum_d log q(z_d)`` (total correlation),
    ``dwkl = sum_d log q(z_d) - log p(z)`` (dimension-wise KL to ``p = N(0, I)``).
    They sum to the one-sample KL estimate ``log q(z|x) - log p(z)`` whatever the estimator.
    """
    log_qz, log_prod = log_qz_and_marginals(z, mu, logvar, dataset_size, stratified=stratified)
    log_qz_x = log_density_gaussian(z, mu, logvar).sum(1)
    log_pz = -0.5 * (_LOG_2PI + z.pow(2)).sum(1)
    return (log_qz_x - log_qz).mean(), (log_qz - log_prod).mean(), (log_prod - log_pz).mean()


REPORTED_TC = ("Gaussian TC of the sampled validation codes: 0.5 (sum_d log C_dd - log det C) for the "
               "covariance C of z ~ q(z|x) over the validation images, nats (>= 0; exact for a Gaussian "
               "q(z), measures linear dependence only)")


def gaussian_tc(z: torch.Tensor) -> torch.Tensor:
    """Total correlation (nats, a scalar >= 0) of the Gaussian with the sample covariance of ``z``
    (``n x D`` codes, ``n > D``): ``0.5 (sum_d log C_dd - log det C)``, computed in float64."""
    if z.dim() != 2 or z.shape[0] <= z.shape[1]:
        raise ValueError(f"gaussian_tc needs n x D codes with n > D, got {tuple(z.shape)}")
    c = torch.cov(z.detach().to(torch.float64).T)
    tc = 0.5 * (torch.log(torch.diagonal(c)).sum() - torch.linalg.slogdet(c)[1])
    return tc.clamp_min(0.0).to(z.dtype if z.is_floating_point() else torch.float64)


def sample_total_correlation(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, dataset_size: int,
                             *, chunk: int = 256) -> torch.Tensor:
    """The stratified estimate over *all* ``n`` codes at once (the minibatch estimator with
    ``B = n``), in row chunks of ``chunk`` so memory is ``O(chunk n D)``; a scalar, nats."""
    _check(z, mu, logvar)
    n = z.shape[0]
    if n < 2:
        raise ValueError(f"sample_total_correlation needs >= 2 codes, got {n}")
    z, mu, logvar = (t.detach().to(torch.float64) for t in (z, mu, logvar))
    off = math.log(dataset_size - 1) - math.log(dataset_size * (n - 1)) if dataset_size > 1 else -math.inf
    total = torch.zeros((), dtype=torch.float64)
    for a in range(0, n, chunk):
        logq = log_density_gaussian(z[a:a + chunk].unsqueeze(1), mu.unsqueeze(0), logvar.unsqueeze(0))
        w = torch.full(logq.shape[:2], off, dtype=torch.float64)
        rows = torch.arange(logq.shape[0])
        w[rows, rows + a] = -math.log(dataset_size)
        log_qz = torch.logsumexp(w + logq.sum(2), dim=1)
        log_prod = torch.logsumexp(w.unsqueeze(2) + logq, dim=1).sum(1)
        total += (log_qz - log_prod).sum()
    return total / n


def _check(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> None:
    if z.dim() != 2 or z.shape != mu.shape or z.shape != logvar.shape:
        raise ValueError(
            f"z, mu and logvar must all be B x D, got {tuple(z.shape)}, {tuple(mu.shape)}, "
            f"{tuple(logvar.shape)}"
        )


__all__ = ["REPORTED_TC", "gaussian_tc", "sample_total_correlation", "kl_decomposition", "log_density_gaussian", "log_qz_and_marginals", "log_weights", "pairwise_log_density",
           "total_correlation"]
