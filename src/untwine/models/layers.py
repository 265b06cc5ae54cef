"""Layers shared by the architectures.

:func:`latent_layer` runs the layers that write or read the latent code (the encoder's ``mu`` and
``logvar`` heads, the decoder's first layer) in float32 even when the rest of the network computes
in bfloat16 (``precision = "bf16"``). bfloat16 keeps 8 significant bits: a code value near 2 is
rounded by up to 0.008, a fifth of the posterior standard deviation of a factor encoded with 3.5
nats of KL (~0.03), and the code is what the metrics measure; these layers are under 0.1% of
the conv64 FLOPs. (What it changed in 5,000-step runs, and what bf16 learns against fp32:
``docs/results/precision_check``.)
"""

from __future__ import annotations

import torch
from torch import nn


def latent_layer(layer: nn.Module, x: torch.Tensor, out_like: torch.Tensor | None = None) -> torch.Tensor:
    """``layer(x)`` (a layer, or a Sequential of a layer and its activation) computed in float32
    whatever the autocast state and ``x``'s dtype.

    Args:
        layer: a module whose parameters are float32 (the architectures list them in
            ``FULL_PRECISION``).
        x: its input, any float dtype, ``B x ...``.
        out_like: if given, the result is cast to this tensor's dtype (the next layer's weight:
            bfloat16 in a packed bf16 model, float32 under autocast); else float32.
    """
    with torch.autocast(x.device.type, enabled=False):
        y = layer(x.float())
    return y if out_like is None else y.to(out_like.dtype)
