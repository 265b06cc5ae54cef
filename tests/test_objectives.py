"""Objectives against hand-computed cases, the TC estimator against the analytic Gaussian TC,
the FactorVAE discriminator, and the registry's error messages."""

from __future__ import annotations

import functools
import math

import pytest
import torch

from untwine.objectives import bernoulli_rec, build, get, hparams_text, kl_per_dim, names
from untwine.objectives.base import bernoulli_rec_packed
from untwine.objectives.dip_vae import covariance, dip_penalty
from untwine.objectives.factor_vae import Discriminator, FactorVAE, permute_dims
from untwine.objectives.tc import (
    kl_decomposition,
    log_density_gaussian,
    log_weights,
    total_correlation,
)

ALL = ["vae", "beta-vae", "annealed-vae", "factor-vae", "beta-tcvae", "dip-vae-i", "dip-vae-ii"]


def batch(b: int = 4, d: int = 2, seed: int = 0):
    """A small fake batch: x, mu, logvar, z, logits (x and logits are B x 1 x 3 x 3)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(b, 1, 3, 3, generator=g).round()
    mu = torch.randn(b, d, generator=g)
    logvar = 0.3 * torch.randn(b, d, generator=g)
    z = mu + torch.exp(0.5 * logvar) * torch.randn(b, d, generator=g)
    logits = torch.randn(b, 1, 3, 3, generator=g)
    return x, mu, logvar, z, logits


def gaussian_codes(cov: torch.Tensor, n: int, noise_var: float, seed: int):
    """Codes whose aggregate posterior is N(0, cov): mu ~ N(0, cov - noise_var I),
    q(z|x) = N(mu, noise_var I). Returns z, mu, logvar (n x D)."""
    g = torch.Generator().manual_seed(seed)
    d = cov.shape[0]
    chol = torch.linalg.cholesky(cov - noise_var * torch.eye(d))
    mu = torch.randn(n, d, generator=g) @ chol.T
    logvar = torch.full((n, d), math.log(noise_var))
    z = mu + math.sqrt(noise_var) * torch.randn(n, d, generator=g)
    return z, mu, logvar


def gaussian_tc(cov: torch.Tensor) -> float:
    """TC of N(0, cov) in nats: 0.5 * (sum log diag(cov) - log det cov)."""
    return 0.5 * (torch.log(torch.diagonal(cov)).sum() - torch.logdet(cov)).item()


def equicorrelated(d: int, rho: float) -> torch.Tensor:
    return torch.full((d, d), rho) + (1 - rho) * torch.eye(d)


# --- registry and hyperparameters -------------------------------------------------------------

def test_registry_lists_the_seven_unsupervised_first() -> None:
    assert names()[: len(ALL)] == ALL  # in this order; every registered one: tests/test_registries.py
    assert get("beta_vae") is get("beta-vae")


def test_unknown_objective_names_the_choices() -> None:
    with pytest.raises(ValueError, match=r"unknown model 'gan'; choose one of ") as err:
        get("gan")
    assert all(n in str(err.value) for n in ALL)


@pytest.mark.parametrize("name", ALL)
def test_defaults_build_and_loss_backpropagates(name: str) -> None:
    obj = build(name, dataset_size=1000, latents=2)
    assert set(obj.hparams) == set(type(obj).params)
    x, mu, logvar, z, logits = batch()
    for t in (mu, logvar, z, logits):
        t.requires_grad_(True)
    out = obj.terms(x, mu, logvar, z, logits, step=10)
    assert {"loss", "rec", "kl"} <= set(out)
    for k, v in out.items():
        assert v.dim() == 0 and torch.isfinite(v), k
    out["loss"].backward()
    for t in (mu, logvar, z, logits):
        assert t.grad is None or torch.isfinite(t.grad).all()
    assert logits.grad is not None and mu.grad is not None and logvar.grad is not None


@pytest.mark.parametrize(
    ("name", "hparams", "message"),
    [
        ("vae", {"beta": 2.0}, "vae: unknown hyperparameter(s) beta; it takes none"),
        ("beta-vae", {"gamma": 1.0, "c": 2}, "beta-vae: unknown hyperparameter(s) c, gamma; it takes beta"),
        ("beta-vae", {"beta": -1.0}, "beta-vae: beta must be a finite number >= 0, got -1.0"),
        ("beta-vae", {"beta": 0.0}, "beta-vae: beta must be > 0, got 0.0"),
        ("annealed-vae", {"gamma": 0.0}, "annealed-vae: gamma must be > 0, got 0.0"),
        ("annealed-vae", {"c_max": float("nan")}, "annealed-vae: c_max must be a finite number >= 0, got nan"),
        ("annealed-vae", {"anneal_steps": -5}, "annealed-vae: anneal_steps must be a finite number >= 0, got -5"),
        ("factor-vae", {"gamma": -1.0}, "factor-vae: gamma must be a finite number >= 0, got -1.0"),
        ("factor-vae", {"gamma": float("inf")}, "factor-vae: gamma must be a finite number >= 0, got inf"),
        ("factor-vae", {"d_lr": 0.0}, "factor-vae: d_lr must be > 0, got 0.0"),
        ("factor-vae", {"beta": 0.0}, "factor-vae: beta must be > 0, got 0.0"),
        ("beta-tcvae", {"beta": 0.0}, "beta-tcvae: beta must be > 0, got 0.0"),
        ("beta-tcvae", {"gamma": -1.0}, "beta-tcvae: gamma must be a finite number >= 0, got -1.0"),
        ("beta-tcvae", {"stratified": 0.5},
         "beta-tcvae: stratified must be 0 (minibatch weighted sampling) or 1 (stratified), got 0.5"),
        ("dip-vae-i", {"lambda_od": -1.0}, "dip-vae-i: lambda_od must be a finite number >= 0, got -1.0"),
        ("dip-vae-ii", {"lambda_dd": 1.0}, "dip-vae-ii: unknown hyperparameter(s) lambda_dd; it takes lambda_od, lambda_d"),
    ],
)
def test_bad_hyperparameters_raise_with_exact_messages(name: str, hparams: dict, message: str) -> None:
    with pytest.raises(ValueError) as err:
        build(name, dataset_size=100, latents=3, **hparams)
    assert str(err.value) == message


def test_contract_flags() -> None:
    assert get("factor-vae").has_extra_step and get("factor-vae").min_batch_size == 2
    assert get("beta-tcvae").min_batch_size == 2
    assert get("dip-vae-i").min_batch_size == get("dip-vae-ii").min_batch_size == 2
    assert not any(get(n).has_extra_step for n in ALL if n != "factor-vae")
    assert build("factor-vae", dataset_size=10, latents=3).extra_optimizer is not None
    assert build("vae", dataset_size=10, latents=3).extra_optimizer is None


# --- shared terms ---------------------------------------------------------------------------

def test_kl_of_known_gaussians() -> None:
    mu = torch.ones(5, 3)
    torch.testing.assert_close(kl_per_dim(mu, torch.zeros(5, 3)), torch.full((3,), 0.5))
    # N(0, 2) vs N(0, 1): 0.5 * (2 - 1 - log 2)
    kl = kl_per_dim(torch.zeros(2, 1), torch.full((2, 1), math.log(2.0)))
    torch.testing.assert_close(kl, torch.tensor([0.5 * (1 - math.log(2.0))]))


def test_bernoulli_rec_matches_manual_formula() -> None:
    x, _, _, _, logits = batch(b=3)
    p = torch.sigmoid(logits)
    manual = -(x * torch.log(p) + (1 - x) * torch.log(1 - p)).sum() / 3
    torch.testing.assert_close(bernoulli_rec(logits, x), manual)
    # logits 0 give log 2 nats per pixel, whatever x is: 9 pixels per image
    torch.testing.assert_close(bernoulli_rec(torch.zeros_like(x), x), torch.tensor(9 * math.log(2.0)))


def test_vae_and_beta_vae_scale_the_kl() -> None:
    x, mu, logvar, z, logits = batch()
    rec, kl = bernoulli_rec(logits, x), kl_per_dim(mu, logvar).sum()
    vae = build("vae", dataset_size=10, latents=2).terms(x, mu, logvar, z, logits, 0)
    torch.testing.assert_close(vae["loss"], rec + kl)
    for beta in (0.5, 4.0, 16.0):
        out = build("beta-vae", dataset_size=10, latents=2, beta=beta).terms(x, mu, logvar, z, logits, 0)
        torch.testing.assert_close(out["loss"], rec + beta * kl)
        torch.testing.assert_close(out["kl"], kl)


# --- annealed VAE ---------------------------------------------------------------------------

def test_annealing_schedule() -> None:
    obj = build("annealed-vae", dataset_size=10, latents=2, c_max=20.0, anneal_steps=1000)
    assert [obj.capacity(s) for s in (0, 500, 1000, 5000)] == [0.0, 10.0, 20.0, 20.0]
    assert build("annealed-vae", dataset_size=10, latents=2, anneal_steps=0).capacity(0) == 25.0


def test_annealed_loss_is_gamma_times_distance_to_capacity() -> None:
    obj = build("annealed-vae", dataset_size=10, latents=2, gamma=100.0, c_max=4.0, anneal_steps=10)
    x, _, _, z, logits = batch()
    mu, logvar = torch.ones(4, 2), torch.zeros(4, 2)  # KL = 0.5 per dim = 1.0 nat
    rec = bernoulli_rec(logits, x)
    for step, c in ((0, 0.0), (5, 2.0), (10, 4.0), (99, 4.0)):
        out = obj.terms(x, mu, logvar, z, logits, step)
        torch.testing.assert_close(out["loss"], rec + 100.0 * abs(1.0 - c))
        assert out["capacity"].item() == c


# --- TC estimator and beta-TCVAE ------------------------------------------------------------

def test_log_density_gaussian_matches_torch_distributions() -> None:
    x, mu, logvar = torch.randn(3, 4), torch.randn(3, 4), torch.randn(3, 4)
    ref = torch.distributions.Normal(mu, torch.exp(0.5 * logvar)).log_prob(x)
    torch.testing.assert_close(log_density_gaussian(x, mu, logvar), ref)


@pytest.mark.parametrize("stratified", [True, False])
def test_log_weights(stratified: bool) -> None:
    w = log_weights(5, 100, stratified=stratified)
    if stratified:  # a weighted mean: each row sums to 1, own image weighted 1/N
        torch.testing.assert_close(torch.logsumexp(w, 1), torch.zeros(5))
        torch.testing.assert_close(torch.diagonal(w), torch.full((5,), -math.log(100)))
    else:
        torch.testing.assert_close(w, torch.full((5, 5), -math.log(500)))


def test_tc_of_gaussian_codes_matches_the_analytic_value() -> None:
    """The stratified estimator is consistent; at B = 2048, D = 4 and posterior variance 0.15
    its spread over seeds is about 0.05 nats and its (log-of-a-mean) bias about -0.05 nats, so
    0.25 nats is a ~5 sigma tolerance. N = 1e6 makes the aggregate posterior the smooth Gaussian."""
    d, n = 4, 10**6
    for rho in (0.0, 0.8):
        cov = equicorrelated(d, rho)
        z, mu, logvar = gaussian_codes(cov, 2048, 0.15, seed=1)
        tc = total_correlation(z, mu, logvar, n).item()
        assert abs(tc - gaussian_tc(cov)) < 0.25, (rho, tc, gaussian_tc(cov))
    assert gaussian_tc(equicorrelated(d, 0.8)) > 1.5  # so "correlated" is clearly not "independent"


def test_mws_is_offset_by_about_d_minus_1_log_n() -> None:
    d, n = 3, 10**5
    z, mu, logvar = gaussian_codes(torch.eye(d), 512, 0.3, seed=2)
    gap = (total_correlation(z, mu, logvar, n, stratified=False) - total_correlation(z, mu, logvar, n)).item()
    assert abs(gap - (d - 1) * math.log(n)) < 0.5


def test_tc_rejects_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match=r"z, mu and logvar must all be B x D, got \(4, 2\), \(4, 3\)"):
        total_correlation(torch.zeros(4, 2), torch.zeros(4, 3), torch.zeros(4, 2), 10)


@pytest.mark.parametrize("stratified", [True, False])
def test_kl_decomposition_sums_to_the_one_sample_kl(stratified: bool) -> None:
    _, mu, logvar, z, _ = batch(b=8, d=3)
    mi, tc, dwkl = kl_decomposition(z, mu, logvar, 1000, stratified=stratified)
    log_qzx = log_density_gaussian(z, mu, logvar).sum(1)
    log_pz = torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(1)
    torch.testing.assert_close(mi + tc + dwkl, (log_qzx - log_pz).mean())


@pytest.mark.parametrize("beta", [1.0, 3.0, 20.0])
@pytest.mark.parametrize("stratified", [0.0, 1.0])
def test_beta_tcvae_logged_loss_is_rec_mi_beta_tc_dwkl(stratified: float, beta: float) -> None:
    """The logged loss is rec + mi + beta tc + dwkl of the logged (stratified) terms, for MWS
    training too (no log(N B) constants); at beta = 1 it is rec + the one-sample KL estimate."""
    x, mu, logvar, z, logits = batch(b=8, d=3)
    out = build("beta-tcvae", dataset_size=500, latents=3, beta=beta, stratified=stratified).terms(
        x, mu, logvar, z, logits, 0
    )
    mi, tc, dwkl = kl_decomposition(z, mu, logvar, 500, stratified=True)
    rec = bernoulli_rec(logits, x)
    torch.testing.assert_close(out["loss"], rec + mi + beta * tc + dwkl, rtol=0, atol=1e-4)
    torch.testing.assert_close(out["loss"], out["rec"] + out["mi"] + beta * out["tc"] + out["dwkl"], rtol=0, atol=1e-4)
    if beta == 1.0:
        one_sample_kl = (log_density_gaussian(z, mu, logvar).sum(1)
                         - torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(1)).mean()
        torch.testing.assert_close(out["loss"], rec + one_sample_kl, rtol=0, atol=1e-4)
    torch.testing.assert_close(out["kl"], kl_per_dim(mu, logvar).sum())
    # logged decomposition: always the stratified estimate, comparable with other models' tc
    torch.testing.assert_close(out["tc"], total_correlation(z, mu, logvar, 500))


@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
@pytest.mark.parametrize("stratified", [0.0, 1.0])
def test_beta_tcvae_gamma_weights_the_dimension_wise_kl(stratified: float, gamma: float) -> None:
    """Chen et al.'s gamma: the logged loss is rec + mi + beta tc + gamma dwkl, and the gradients
    of ``terms`` and ``terms_packed`` are those of the training estimator's loss with that weight."""
    n, beta = 500, 20.0
    x, mu, logvar, z, logits = batch(b=8, d=3)
    obj = build("beta-tcvae", dataset_size=n, latents=3, beta=beta, gamma=gamma, stratified=stratified)
    out = obj.terms(x, mu, logvar, z, logits, 0)
    torch.testing.assert_close(out["loss"], out["rec"] + out["mi"] + beta * out["tc"] + gamma * out["dwkl"],
                               rtol=0, atol=1e-4)
    eps = (z - mu) * torch.exp(-0.5 * logvar)
    leaves = [t.clone().requires_grad_() for t in (mu, logvar, logits)]
    grads = []
    for loss_of in ("terms", "terms_packed", "reference"):
        m, lv, lg = leaves
        zz = m + torch.exp(0.5 * lv) * eps
        if loss_of == "terms":
            loss = obj.terms(x, m, lv, zz, lg, 0)["loss"]
        elif loss_of == "terms_packed":
            loss = type(obj).terms_packed([obj], x[None], m[None], lv[None], zz[None], lg[None], 0)["loss"].sum()
        else:
            mi, tc, dwkl = kl_decomposition(zz, m, lv, n, stratified=bool(stratified))
            loss = bernoulli_rec(lg, x) + mi + beta * tc + gamma * dwkl
        grads.append(torch.autograd.grad(loss, leaves))
    for g in grads[:2]:
        for a, b in zip(g, grads[2]):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    with_zero = build("beta-tcvae", dataset_size=n, latents=3, beta=beta, gamma=0.0, stratified=stratified)
    if gamma != 0.0:  # the weight changes what is trained: not a no-op
        assert not torch.allclose(with_zero.terms(x, mu, logvar, z, logits, 0)["loss"], out["loss"])


def _training_loss(z, mu, logvar, x, logits, n: int, beta, stratified: bool) -> torch.Tensor:
    """What beta-TCVAE trains on (the loss before the logged value was made readable): rec + mi +
    beta tc + dwkl of the training estimator, constants included (they do not move gradients)."""
    mi, tc, dwkl = kl_decomposition(z, mu, logvar, n, stratified=stratified)
    return bernoulli_rec(logits, x) + mi + beta * tc + dwkl


@pytest.mark.parametrize("stratified", [0.0, 1.0])
def test_beta_tcvae_gradients_are_the_training_estimators(stratified: float) -> None:
    """Making the logged loss readable leaves training alone: gradients of ``terms`` and
    ``terms_packed`` equal, bit for bit, those of the training estimator's own loss."""
    n, betas = 737_280, [1.0, 6.0, 20.0]
    runs = [batch(b=16, d=4, seed=k) for k in range(3)]
    for k, beta in enumerate(betas):
        x, mu, logvar, _, logits = runs[k]
        leaves = [t.clone().requires_grad_() for t in (mu, logvar, logits)]
        eps = (runs[k][3] - mu) * torch.exp(-0.5 * logvar)
        grads = []
        for loss_of in ("terms", "reference"):
            m, lv, lg = leaves
            z = m + torch.exp(0.5 * lv) * eps
            if loss_of == "terms":
                obj = build("beta-tcvae", dataset_size=n, latents=4, beta=beta, stratified=stratified)
                loss = obj.terms(x, m, lv, z, lg, 0)["loss"]
            else:
                loss = _training_loss(z, m, lv, x, lg, n, beta, bool(stratified))
            grads.append(torch.autograd.grad(loss, leaves))
        assert all(torch.equal(a, b) for a, b in zip(*grads)), (beta, stratified)
    objs = [build("beta-tcvae", dataset_size=n, latents=4, beta=b, stratified=stratified) for b in betas]
    x, mu, logvar, z, logits = (torch.stack(t) for t in zip(*runs))
    eps = (z - mu) * torch.exp(-0.5 * logvar)
    leaves = [t.clone().requires_grad_() for t in (mu, logvar, logits)]
    grads = []
    for loss_of in ("terms_packed", "reference"):
        m, lv, lg = leaves
        zz = m + torch.exp(0.5 * lv) * eps
        if loss_of == "terms_packed":
            loss = type(objs[0]).terms_packed(objs, x, m, lv, zz, lg, 0)["loss"].sum()
        else:
            decompose = functools.partial(kl_decomposition, dataset_size=n, stratified=bool(stratified))
            mi, tc, dwkl = torch.vmap(decompose)(zz, m, lv)
            loss = (bernoulli_rec_packed(lg, x) + mi + torch.tensor(betas) * tc + dwkl).sum()
        grads.append(torch.autograd.grad(loss, leaves))
    assert all(torch.equal(a, b) for a, b in zip(*grads)), stratified


# --- DIP-VAE --------------------------------------------------------------------------------

def test_dip_penalty_of_a_known_covariance() -> None:
    mu = torch.tensor([[1.0, 1.0], [-1.0, -1.0], [1.0, 1.0], [-1.0, -1.0]])
    torch.testing.assert_close(covariance(mu), torch.ones(2, 2))
    # off-diagonal: 2 entries of 1 -> 2; diagonal: (1 - 1)^2 = 0
    torch.testing.assert_close(dip_penalty(torch.ones(2, 2), 10.0, 100.0), torch.tensor(20.0))
    x, _, _, z, logits = batch()
    logvar = torch.full((4, 2), math.log(0.5))
    base = bernoulli_rec(logits, x) + kl_per_dim(mu, logvar).sum()
    one = build("dip-vae-i", dataset_size=10, latents=2).terms(x, mu, logvar, z, logits, 0)
    torch.testing.assert_close(one["dip"], torch.tensor(20.0))
    torch.testing.assert_close(one["loss"], base + 20.0)
    # II: C = [[1.5, 1], [1, 1.5]]: 10 * 2 + 10 * 2 * 0.5^2 = 25
    two = build("dip-vae-ii", dataset_size=10, latents=2).terms(x, mu, logvar, z, logits, 0)
    torch.testing.assert_close(two["dip"], torch.tensor(25.0))
    torch.testing.assert_close(two["loss"], base + 25.0)


# --- FactorVAE ------------------------------------------------------------------------------

def test_factor_vae_d_lr_follows_the_runs_lr_unless_given(tmp_path) -> None:
    from untwine.train import RunConfig

    def resolved(**kw) -> dict:
        return RunConfig(model="factor-vae", **kw).resolved(check_dataset=False).hparams

    assert resolved(lr=1e-3)["d_lr"] == pytest.approx(1e-3)
    assert resolved(lr=3e-4)["d_lr"] == pytest.approx(3e-4)
    assert resolved(lr=1e-3, hparams={"d_lr": 1e-4})["d_lr"] == pytest.approx(1e-4)
    assert resolved()["d_lr"] == pytest.approx(1e-4)  # the default lr, 1e-4: the paper's pair
    # the discriminator's optimizer gets it
    fv = build("factor-vae", dataset_size=10, latents=3, **resolved(lr=2e-3))
    assert fv.extra_optimizer.param_groups[0]["lr"] == pytest.approx(2e-3)
    # a run folder records the resolved value, so resuming keeps it
    cfg = RunConfig(model="factor-vae", lr=1e-3, out=str(tmp_path / "r")).resolved(check_dataset=False)
    assert RunConfig.from_dict(cfg.to_dict()).hparams["d_lr"] == pytest.approx(1e-3)


def test_permute_dims_permutes_each_column() -> None:
    torch.manual_seed(0)
    z = torch.arange(40.0).view(10, 4)
    p = permute_dims(z)
    torch.testing.assert_close(p.sort(0).values, z)
    assert not torch.equal(p, z)
    perms = [((p[:, d] - d) / 4).long().tolist() for d in range(4)]  # row order per column
    assert len({tuple(q) for q in perms}) > 1  # columns are shuffled independently


def test_vae_loss_gradient_reaches_z_but_not_the_discriminator() -> None:
    torch.manual_seed(0)
    obj = build("factor-vae", dataset_size=100, latents=2, gamma=5.0)
    x, mu, logvar, z, logits = batch()
    z.requires_grad_(True)
    out = obj.terms(x, mu, logvar, z, logits, 0)
    d_z = obj.discriminator(z)
    torch.testing.assert_close(out["tc"], (d_z[:, 0] - d_z[:, 1]).mean())
    torch.testing.assert_close(out["loss"], out["rec"] + out["kl"] + 5.0 * out["tc"])
    out["loss"].backward()
    assert z.grad is not None and z.grad.abs().sum() > 0
    assert all(p.grad is None for p in obj.discriminator.parameters())
    # extra_step trains D (its own grads only) and leaves z alone
    z_grad = z.grad.clone()
    before = [p.detach().clone() for p in obj.discriminator.parameters()]
    logs = obj.extra_step(z.detach(), 0)
    assert set(logs) == {"d_loss", "d_accuracy", "d_real", "d_perm"}
    # D(z_real) before the update is what terms saw; terms leaves d_perm to extra_step in training
    torch.testing.assert_close(logs["d_real"], out["d_real"])
    assert "d_perm" not in out
    assert all(not torch.equal(a, b) for a, b in zip(before, obj.discriminator.parameters()))
    torch.testing.assert_close(z.grad, z_grad)


def test_hparams_text() -> None:
    assert hparams_text({"beta": 16.0, "gamma": 10.0, "d_lr": 0.001}) == "beta 16, gamma 10, d_lr 0.001"
    assert hparams_text({"beta": 20.0, "stratified": 0.0}) == "beta 20"
    assert hparams_text({"beta": 20.0, "stratified": 1.0}) == "beta 20, stratified 1"
    assert hparams_text({"beta": 1.0, "k": 1.0, "dlib_pairs": 0.0}) == "beta 1, k 1"
    assert hparams_text({"beta": 1.0, "k": 1.0, "dlib_pairs": 1.0}) == "beta 1, k 1, dlib_pairs 1"
    assert hparams_text({}) == ""


def test_factor_vae_beta_weights_the_kl_only() -> None:
    """beta = 1 is Kim & Mnih's loss; beta scales the KL term and nothing else."""
    torch.manual_seed(0)
    obj = build("factor-vae", dataset_size=100, latents=2, gamma=5.0)
    assert obj.hparams["beta"] == 1.0
    args = batch()
    base = obj.terms(*args, 0)
    obj.hparams["beta"] = 4.0
    out = obj.terms(*args, 0)
    for k in ("rec", "kl", "tc"):
        torch.testing.assert_close(out[k], base[k])
    torch.testing.assert_close(out["loss"] - base["loss"], 3.0 * base["kl"])


def _train_discriminator(cov: torch.Tensor, steps: int, seed: int) -> dict[str, float]:
    """Train a FactorVAE's D through ``extra_step`` on codes ~ N(0, cov); evaluate ``terms``.

    D is swapped for a narrower one (6 x 128 units, Adam 1e-3, the paper's betas) to keep this
    test fast on a CPU; the paper-sized D with default settings is the slow test below."""
    torch.manual_seed(seed)
    obj = build("factor-vae", dataset_size=10**6, latents=cov.shape[0])
    obj.discriminator = Discriminator(cov.shape[0], hidden=128)
    obj.extra_optimizer = torch.optim.Adam(obj.discriminator.parameters(), lr=1e-3, betas=(0.5, 0.9))
    chol = torch.linalg.cholesky(cov)
    for step in range(steps):
        obj.extra_step(torch.randn(128, cov.shape[0]) @ chol.T, step)
    z = torch.randn(512, cov.shape[0]) @ chol.T
    x = torch.zeros(512, 1, 1, 1)
    with torch.no_grad():
        out = obj.terms(x, z, torch.zeros_like(z), z, torch.zeros_like(x), steps)
    return {k: out[k].item() for k in ("tc", "d_real", "d_perm")}


def test_discriminator_learns_to_spot_correlated_codes(one_thread) -> None:
    """On strongly correlated codes (analytic TC 2.8 nats) D separates real from permuted codes
    and its TC estimate is clearly positive (2.2 to 3.1 over seeds 0-2); on independent codes
    it has nothing to learn and stays at 0.5 / 0 nats."""
    corr = _train_discriminator(equicorrelated(4, 0.9), 100, seed=0)
    assert corr["d_real"] > 0.7 and corr["d_perm"] < 0.3 and corr["tc"] > 1.0, corr
    indep = _train_discriminator(torch.eye(4), 60, seed=0)
    assert abs(indep["d_real"] - 0.5) < 0.1 and abs(indep["d_perm"] - 0.5) < 0.1, indep
    assert abs(indep["tc"]) < 0.3, indep


@pytest.mark.slow
def test_discriminator_with_default_settings(one_thread) -> None:
    """The paper's D optimiser (Adam 1e-4, betas 0.5/0.9), a few hundred steps of 128 codes."""
    cov = equicorrelated(4, 0.9)
    torch.manual_seed(0)
    obj = FactorVAE(dataset_size=10**6, latents=4)
    chol = torch.linalg.cholesky(cov)
    for step in range(200):
        logs = obj.extra_step(torch.randn(128, 4) @ chol.T, step)
    assert logs["d_accuracy"] > 0.8
    z = torch.randn(1024, 4) @ chol.T
    with torch.no_grad():
        out = obj.terms(torch.zeros(1024, 1, 1, 1), z, torch.zeros_like(z), z, torch.zeros(1024, 1, 1, 1), 0)
    assert out["d_real"] > 0.7 and out["d_perm"] < 0.3 and out["tc"] > 1.0


def test_untrained_discriminator_loss_is_about_log_2() -> None:
    torch.manual_seed(0)
    obj = build("factor-vae", dataset_size=100, latents=3)
    logs = obj.extra_step(torch.randn(16, 3), 0)
    assert abs(logs["d_loss"].item() - math.log(2)) < 0.05
    assert 0.0 <= logs["d_accuracy"].item() <= 1.0


PACK_HPARAMS = {  # three runs of each objective with different hyperparameters
    "vae": [{}, {}, {}],
    "beta-vae": [{"beta": 0.5}, {"beta": 4.0}, {"beta": 16.0}],
    "annealed-vae": [{"c_max": 5.0, "anneal_steps": 10.0}, {"gamma": 100.0, "anneal_steps": 0.0},
                     {"c_max": 50.0, "anneal_steps": 1.0}],
    "factor-vae": [{"gamma": 10.0}, {"gamma": 40.0}, {"gamma": 1.0}],
    "beta-tcvae": [{"beta": 1.0}, {"beta": 6.0}, {"beta": 10.0}],
    "beta-tcvae-stratified": [{"beta": 1.0, "stratified": 1.0}, {"stratified": 1.0}, {"beta": 2.0, "stratified": 1.0}],
    "beta-tcvae-mixed": [{"beta": 1.0}, {"beta": 6.0, "stratified": 1.0}, {"beta": 10.0}],  # run by run
    "dip-vae-i": [{"lambda_od": 1.0}, {"lambda_od": 10.0}, {"lambda_od": 50.0, "lambda_d": 5.0}],
    "dip-vae-ii": [{"lambda_od": 1.0}, {"lambda_od": 10.0}, {"lambda_d": 2.0}],
}


@pytest.mark.parametrize("case", list(PACK_HPARAMS))
@pytest.mark.parametrize("step", [0, 3, 20])
def test_terms_packed_equal_terms_run_by_run(case: str, step: int) -> None:
    """What train_packed computes for K runs at once equals each run's own terms (values and
    gradients), for every objective whose terms draw no random numbers."""
    name = case.replace("-stratified", "").replace("-mixed", "")
    if get(name).random_terms:
        pytest.skip(f"{name}'s terms draw random numbers: train_packed calls them run by run")
    objs = []
    for h in PACK_HPARAMS[case]:
        torch.manual_seed(0)  # FactorVAE: the same discriminator initialisation per run is fine here
        objs.append(build(name, dataset_size=1000, latents=2, **h))
    runs = [batch(seed=k) for k in range(3)]
    leaves = [torch.stack(t).requires_grad_() for t in zip(*runs)]  # x, mu, logvar, z, logits: K x ...
    packed = type(objs[0]).terms_packed(objs, *leaves, step)
    grads_packed = torch.autograd.grad(packed["loss"].sum(), leaves[1:], allow_unused=True)
    alone = [o.terms(*(t[k] for t in leaves), step) for k, o in enumerate(objs)]
    grads_alone = torch.autograd.grad(sum(t["loss"] for t in alone), leaves[1:], allow_unused=True)
    assert set(packed) == set(alone[0])
    for key in packed:
        torch.testing.assert_close(packed[key], torch.stack([t[key] for t in alone]), rtol=1e-5, atol=1e-5, msg=key)
    for gp, ga in zip(grads_packed, grads_alone):
        assert (gp is None) == (ga is None)
        if gp is not None:
            torch.testing.assert_close(gp, ga, rtol=1e-5, atol=1e-6)
    assert len(set(packed["loss"].detach().tolist())) == 3  # three different runs


def test_gaussian_tc_known_answer_and_full_sample_estimate():
    from untwine.objectives.tc import gaussian_tc, sample_total_correlation, total_correlation

    g = torch.Generator().manual_seed(0)
    cov = torch.tensor([[1.0, 0.6], [0.6, 1.0]], dtype=torch.float64)
    z = torch.randn(20000, 2, generator=g, dtype=torch.float64) @ torch.linalg.cholesky(cov).T
    true = -0.5 * math.log(1 - 0.36)  # TC of a bivariate Gaussian with correlation 0.6
    assert float(gaussian_tc(z)) == pytest.approx(true, abs=0.02)
    assert float(gaussian_tc(torch.randn(20000, 3, generator=g))) == pytest.approx(0.0, abs=2e-3)
    with pytest.raises(ValueError, match=r"gaussian_tc needs n x D codes with n > D, got \(3, 3\)"):
        gaussian_tc(torch.zeros(3, 3))
    mu, logvar = torch.randn(50, 4, generator=g, dtype=torch.float64), torch.full((50, 4), -1.0, dtype=torch.float64)
    zz = mu + 0.6 * torch.randn(50, 4, generator=g, dtype=torch.float64)
    # all codes in one batch, chunked rows == the minibatch estimator with B = n
    assert float(sample_total_correlation(zz, mu, logvar, 1000, chunk=7)) == pytest.approx(
        float(total_correlation(zz, mu, logvar, 1000)), rel=1e-9)
