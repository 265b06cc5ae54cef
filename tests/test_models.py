"""Shapes and gradients of the conv64 and mlp architectures and the VAE wrapper."""

from __future__ import annotations

import pytest
import torch

from untwine.models import ARCHITECTURES, VAE
from untwine.objectives import bernoulli_rec, kl_per_dim


@pytest.mark.parametrize("arch", ["conv64", "mlp"])
@pytest.mark.parametrize("channels", [1, 3])
def test_forward_shapes_and_every_parameter_gets_a_gradient(arch: str, channels: int) -> None:
    torch.manual_seed(0)
    model = VAE(arch, channels=channels, latents=5)
    x = torch.rand(2, channels, 64, 64)
    out = model(x)
    assert len(out) == 4
    mu, logvar, z, logits = out
    assert mu.shape == logvar.shape == z.shape == (2, 5)
    assert logits.shape == (2, channels, 64, 64)
    loss = bernoulli_rec(logits, x) + kl_per_dim(mu, logvar).sum()
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, f"{name} got no gradient"
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, f"{name} has an all-zero gradient"


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_encoder_and_decoder_alone(arch: str) -> None:
    enc_cls, dec_cls = ARCHITECTURES[arch]
    enc, dec = enc_cls(3, 7), dec_cls(3, 7)
    mu, logvar = enc(torch.rand(4, 3, 64, 64))
    assert mu.shape == logvar.shape == (4, 7)
    assert dec(torch.randn(4, 7)).shape == (4, 3, 64, 64)


def test_reparameterize_is_mu_when_variance_vanishes() -> None:
    mu = torch.randn(3, 4)
    z = VAE.reparameterize(mu, torch.full_like(mu, -200.0))
    torch.testing.assert_close(z, mu)


def test_encode_decode_match_forward_parts() -> None:
    torch.manual_seed(1)
    model = VAE("conv64", channels=1, latents=3)
    x = torch.rand(2, 1, 64, 64)
    mu, logvar = model.encode(x)
    assert mu.shape == (2, 3)
    assert model.decode(mu).shape == (2, 1, 64, 64)


def test_bad_arguments_raise() -> None:
    with pytest.raises(ValueError, match=r"unknown architecture 'resnet'; choose one of conv64, mlp"):
        VAE("resnet")
    with pytest.raises(ValueError, match=r"latents must be >= 1, got 0"):
        VAE("mlp", latents=0)
