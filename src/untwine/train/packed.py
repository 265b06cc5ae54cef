"""Many runs at once: ``train_packed(configs) -> list[Run]`` trains K VAEs as one batched model.

The K models share an architecture; their weights are stacked (``torch.func.stack_module_state``)
and one step runs all K with ``torch.vmap`` over ``torch.func.functional_call`` (convolutions
become grouped convolutions). Everything else stays per run, so each run is what it would have
been alone, up to float rounding:

* batches: each run has its own :class:`~untwine.data.BatchSampler` seeded with its seed (same
  split, same rows as alone);
* randomness: each run keeps its own torch RNG state (seeded with its seed, after its model's
  initialisation, as alone); it is swapped in whenever the run draws ``eps`` or its objective draws
  random numbers (FactorVAE's permutations), so each run consumes the same random stream as alone;
* loss: each run's objective (its own hyperparameters, even its own model) computes its own loss;
  the step minimises their *sum*, so each model's gradient is its own loss's gradient;
* optimizer: one Adam over the stacked weights. Adam is elementwise, so it is exactly K
  independent Adams (hence ``lr`` and the Adam betas must be equal across the pack);
* objectives with their own networks (FactorVAE's discriminator) train them run by run with
  ``extra_step`` (correct, but that part is not batched);
* run folders: each run writes its own ``config.json``, ``metrics.jsonl``, ``summary.json`` and
  checkpoint (optimizer state sliced out of the stacked Adam), so ``load_run``, resuming one run
  alone with :func:`~untwine.train.train` and the sweep see ordinary runs.

A run whose loss becomes NaN/inf is stopped (its ``summary.json`` says ``failed``, its last good
checkpoint is kept) while the others carry on; ``train_packed`` does not raise for it.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator, Sequence

import torch
from torch.func import functional_call, stack_module_state

from ..data import GroundTruthData, load
from . import checkpoint
from .config import RunConfig
from .log import Progress
from .loop import Job, _StopOnSigint, _adam_impl, _device, load_optimizer_state, open_run
from .run import Run

# Fields every run of a pack must share (the batched model and the stacked Adam need them equal).
SHARED = ("dataset", "source", "data_root", "arch", "latents", "steps", "batch_size", "lr",
          "adam_beta1", "adam_beta2", "device")


def check_packable(configs: Sequence[RunConfig]) -> None:
    """Raise ``ValueError`` unless ``configs`` can be trained as one pack (see :data:`SHARED`)."""
    if not configs:
        raise ValueError("train_packed needs at least one RunConfig")
    first = configs[0]
    for i, c in enumerate(configs[1:], 1):
        for f in SHARED:
            if getattr(c, f) != getattr(first, f):
                raise ValueError(
                    f"configs[{i}] has {f}={getattr(c, f)!r} but configs[0] has {getattr(first, f)!r}; "
                    f"a pack shares {', '.join(SHARED)} (seeds and hyperparameters may differ): "
                    "train such runs in separate packs"
                )
    outs = [c.out for c in configs]
    dup = sorted({o for o in outs if outs.count(o) > 1})
    if dup:
        raise ValueError(f"two runs of the pack write to the same out folder {dup[0]!r}; give each run its own out")


class _RNG:
    """One run's torch RNG state (CPU, plus the current CUDA device's on CUDA), swapped in on demand."""

    def __init__(self, device: torch.device, saved: dict[str, Any] | None) -> None:
        self.cuda = device.type == "cuda"
        if saved is not None:
            self.cpu = saved["torch"]
            self.gpu = saved["cuda"][torch.cuda.current_device()] if self.cuda and "cuda" in saved else None
        else:  # just after this run's model and objective were initialised from its seed
            self.cpu = torch.get_rng_state()
            self.gpu = torch.cuda.get_rng_state() if self.cuda else None

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        cpu, gpu = torch.get_rng_state(), (torch.cuda.get_rng_state() if self.cuda else None)
        torch.set_rng_state(self.cpu)
        if self.cuda:
            torch.cuda.set_rng_state(self.gpu)
        try:
            yield
        finally:
            self.cpu = torch.get_rng_state()
            torch.set_rng_state(cpu)
            if self.cuda:
                self.gpu = torch.cuda.get_rng_state()
                torch.cuda.set_rng_state(gpu)

    def state(self) -> dict[str, Any]:
        """What a checkpoint stores (the format of :func:`checkpoint.rng_state`)."""
        st = checkpoint.rng_state()
        st["torch"] = self.cpu.clone()
        if self.cuda:
            st["cuda"] = [self.gpu.clone()]
        return st


BACKENDS = ("auto", "vmap", "loop")


class PackedVAE:
    """K VAEs of one architecture as stacked weights.

    ``params[name]`` is ``K x <shape of the parameter>`` (a leaf that requires grad); each source
    model's parameters are re-pointed at their slice ``params[name][k]`` so the K ``nn.Module`` s
    always show the current weights (for evaluation and checkpoints) without copies.
    ``forward(x, eps)``: ``x: K x B x C x H x W``, ``eps: K x B x D`` ->
    ``(mu, logvar, z, logits)``, each with a leading ``K`` axis.

    ``backend="vmap"``: one ``torch.vmap`` call (grouped convolutions): the fast path on GPU.
    ``backend="loop"``: the K models one after another through ``functional_call`` on slices of the
    stacked weights, in ``channels_last`` for conv64. On CPU, where oneDNN's grouped (transposed)
    convolutions were measured ~2x slower than K separate ones, this is the faster path.
    ``"auto"``: ``vmap`` on CUDA, ``loop`` elsewhere.
    """

    def __init__(self, models: Sequence[torch.nn.Module], backend: str = "auto") -> None:
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
        params, buffers = stack_module_state(list(models))
        if buffers:
            raise ValueError("PackedVAE supports models without buffers (conv64, mlp)")
        self.params = params
        base = models[0]
        device = next(iter(params.values())).device
        if backend == "auto":
            backend = "vmap" if device.type == "cuda" else "loop"
        self.backend = backend
        self.channels_last = getattr(base, "arch", "") == "conv64"
        self.encoder, self.decoder = base.encoder, base.decoder
        self.enc = {k[len("encoder."):]: v for k, v in params.items() if k.startswith("encoder.")}
        self.dec = {k[len("decoder."):]: v for k, v in params.items() if k.startswith("decoder.")}
        for k, m in enumerate(models):
            for name, p in m.named_parameters():
                p.data = params[name].data[k]
        self._fn = torch.vmap(self._one, in_dims=(0, 0, 0, 0))

    def _one(self, enc: dict, dec: dict, x: torch.Tensor, eps: torch.Tensor):
        mu, logvar = functional_call(self.encoder, enc, (x,))
        z = mu + torch.exp(0.5 * logvar) * eps
        return mu, logvar, z, functional_call(self.decoder, dec, (z,))

    def _slice(self, weights: dict[str, torch.Tensor], k: int) -> dict[str, torch.Tensor]:
        if not self.channels_last:
            return {n: v[k] for n, v in weights.items()}
        return {n: v[k].contiguous(memory_format=torch.channels_last) if v.dim() == 5 else v[k]
                for n, v in weights.items()}

    def __call__(self, x: torch.Tensor, eps: torch.Tensor):
        if self.backend == "vmap":
            return self._fn(self.enc, self.dec, x, eps)
        outs = []
        for k in range(x.shape[0]):
            xk = x[k].contiguous(memory_format=torch.channels_last) if self.channels_last else x[k]
            outs.append(self._one(self._slice(self.enc, k), self._slice(self.dec, k), xk, eps[k]))
        return tuple(torch.stack(t) for t in zip(*outs))

    def parameters(self) -> list[torch.Tensor]:
        return list(self.params.values())


def _slice_adam(opt_state: dict[str, Any], k: int) -> dict[str, Any]:
    """Model ``k``'s part of a stacked Adam's ``state_dict``: what its own Adam would hold."""
    state = {
        i: {n: (v if n == "step" else v[k]).clone() for n, v in s.items()}
        for i, s in opt_state["state"].items()
    }
    return {"state": state, "param_groups": opt_state["param_groups"]}


def _stack_adam(states: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The stacked Adam ``state_dict`` of K per-model Adam ``state_dict`` s (all at the same step)."""
    first = states[0]
    state = {
        i: {n: (v if n == "step" else torch.stack([s["state"][i][n] for s in states])) for n, v in st.items()}
        for i, st in first["state"].items()
    }
    return {"state": state, "param_groups": first["param_groups"]}


def train_packed(
    configs: Sequence[RunConfig],
    *,
    progress: bool = True,
    resume: bool = False,
    data: GroundTruthData | None = None,
    backend: str = "auto",
) -> list[Run]:
    """Train the runs ``configs`` together as one batched model; return their :class:`Run` s in order.

    The runs must share :data:`SHARED` (dataset, arch, latents, steps, batch size, lr, Adam betas,
    device); seeds, hyperparameters, the objective and the log/eval/checkpoint intervals may
    differ. Each run's folder is written as by :func:`untwine.train.train`, and its weights equal
    the unpacked run's up to float rounding (the batched convolutions sum in another order).

    ``resume=True`` continues the runs from their checkpoints; all unfinished runs must be at the
    same step (e.g. a pack interrupted together); finished ones are returned as they are.
    On CUDA pass ``device="cuda"`` in the configs; throughput grows with K until the GPU is full.
    ``backend``: how the K models run, see :class:`PackedVAE` (``auto``: vmap on CUDA, loop on CPU).

    Raises:
        ValueError: the configs cannot be packed, or a run folder is taken (see ``train``).
        KeyboardInterrupt: Ctrl-C; every run saves a checkpoint first.
    """
    check_packable(configs)
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    opened = [open_run(c, resume=resume, data=data) for c in configs]
    todo = [i for i, o in enumerate(opened) if not isinstance(o, Run)]
    runs: list[Run | None] = [o if isinstance(o, Run) else None for o in opened]
    if not todo:
        return runs  # type: ignore[return-value]
    cfgs = [opened[i][0] for i in todo]  # type: ignore[index]
    cfg0 = cfgs[0]
    device = _device(cfg0.device)
    if data is None:
        data = load(cfg0.dataset, cfg0.source, cfg0.data_root)

    # ------------------------------------------------------------------ K jobs, one stacked model
    jobs, rngs = [], []
    for i in todo:
        cfg, ckpt = opened[i]  # type: ignore[misc]
        job = Job(cfg, ckpt, data, device)
        if job.channels_last:  # the stacked weights are plain contiguous tensors
            job.model = job.model.to(memory_format=torch.contiguous_format)
        jobs.append(job)
        rngs.append(_RNG(device, job.saved["rng"] if job.saved is not None else None))
    steps0 = {j.step for j in jobs}
    if len(steps0) > 1:
        raise ValueError(
            f"cannot resume a pack whose runs stopped at different steps ({sorted(steps0)}); "
            "resume them one by one with untwine.train.train(config, resume=True)"
        )
    packed = PackedVAE([j.model for j in jobs], backend)
    optimizer = torch.optim.Adam(
        packed.parameters(), lr=cfg0.lr, betas=(cfg0.adam_beta1, cfg0.adam_beta2), **_adam_impl(device)
    )
    if jobs[0].saved is not None:
        load_optimizer_state(optimizer, _stack_adam([j.saved["optimizer"] for j in jobs]))  # type: ignore[index]
    for k, (job, rng) in enumerate(zip(jobs, rngs)):
        job.optimizer_state = lambda k=k: _slice_adam(optimizer.state_dict(), k)
        job.rng_state = rng.state
    active = list(range(len(jobs)))

    def fail(k: int, e: BaseException) -> None:
        jobs[k].failed(e)
        jobs[k].finish()
        active.remove(k)

    # ------------------------------------------------------------------ the loop
    shape = (cfg0.batch_size, cfg0.latents)
    bar = Progress(cfg0.steps, jobs[0].step, progress, desc=f"pack of {len(jobs)} {cfg0.dataset}")
    for job in jobs:
        job.start()
    stop = _StopOnSigint()
    step = jobs[0].step
    try:
        with stop:
            for job in jobs:
                job.initial_eval()
            while step < cfg0.steps and active:
                for job in jobs:
                    job.in_step = True
                x = torch.stack([j.sampler.next() for j in jobs])
                eps = []
                for rng in rngs:
                    with rng.active():
                        eps.append(torch.randn(shape, device=device))
                mu, logvar, z, logits = packed(x, torch.stack(eps))
                terms = []
                for k, job in enumerate(jobs):
                    with rngs[k].active():
                        terms.append(job.objective.terms(x[k], mu[k], logvar[k], z[k], logits[k], step))
                optimizer.zero_grad(set_to_none=True)
                torch.stack([t["loss"] for t in terms]).sum().backward()
                optimizer.step()
                for k, job in enumerate(jobs):
                    if job.objective.has_extra_step:
                        with rngs[k].active():
                            terms[k] = {**terms[k], **job.objective.extra_step(z[k].detach(), step)}
                step += 1
                for k in list(active):
                    jobs[k].record(terms[k], x[k], mu[k], logvar[k], z[k], logits[k])
                    try:
                        jobs[k].after_step(None)
                    except FloatingPointError as e:
                        fail(k, e)
                for job in jobs:
                    job.in_step = False
                if active:
                    j = jobs[active[0]]
                    if step == j.step_log:  # it just logged
                        bar.update(step, j.ips * len(active), {})
                if stop.requested and step < cfg0.steps:
                    raise KeyboardInterrupt
    except KeyboardInterrupt:
        for k in active:
            jobs[k].interrupted()
        raise
    except BaseException as e:
        for k in active:
            jobs[k].failed(e)
        raise
    finally:
        bar.close()
        for k in active:
            jobs[k].finish()
    for i, job in zip(todo, jobs):
        runs[i] = job.result()
    return runs  # type: ignore[return-value]


def pack_key(config: RunConfig) -> tuple:
    """Runs with equal keys can share a pack (for grouping a sweep's runs)."""
    return tuple(getattr(config, f) for f in SHARED)


__all__ = ["BACKENDS", "PackedVAE", "SHARED", "check_packable", "pack_key", "train_packed"]
