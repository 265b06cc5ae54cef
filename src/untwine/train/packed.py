"""K runs as one batched model: the step strategy of a pack (:class:`PackedStep`).

``untwine.train.train_packed(configs)`` (the one loop, :mod:`untwine.train.loop`) uses it for
K > 1 runs; a lone run takes the one-model fast path instead.

The K models share an architecture; their weights are stacked (``torch.func.stack_module_state``)
and one step runs all K with ``torch.vmap`` over ``torch.func.functional_call`` (convolutions
become grouped convolutions). Everything else stays per run, so each run is what it would have
been alone, up to float rounding:

* batches: each run has its own :class:`~untwine.data.BatchSampler` seeded with its seed (same
  split, same rows as alone); the K batches' rows are gathered from the resident images in one
  ``index_select`` and converted to float once;
* randomness: each run keeps its own torch random stream (a ``torch.Generator`` seeded with its
  seed, after its model's initialisation, as alone): ``eps`` is drawn from it, and it is swapped
  in as the global RNG whenever the run's objective may draw random numbers (every
  ``extra_step``, e.g. FactorVAE's permutations; ``terms`` of objectives whose
  ``random_terms`` is true), so each run consumes the same random stream as alone;
* loss: each run's objective (its own hyperparameters, even its own model) computes its own loss;
  the step minimises their *sum*, so each model's gradient is its own loss's gradient;
* optimizer: one Adam over the stacked weights. Adam is elementwise, so it is exactly K
  independent Adams (hence ``lr`` and the Adam betas must be equal across the pack);
* objectives with their own networks (FactorVAE's discriminator) train them run by run with
  ``extra_step`` (correct, but that part is not batched);
* run folders: each run writes its own ``config.json``, ``metrics.jsonl``, ``summary.json`` and
  checkpoint (optimizer state sliced out of the stacked Adam), so ``load_run``, resuming one run
  alone with :func:`~untwine.train.train` and the sweep see ordinary runs.

Host work per step that grows with K: per run one row draw, one ``eps`` draw and a few Python
lines of ``Job.after_step``, plus its forward with the loop backend; the objective's ``terms``
too unless all runs share one objective class without random draws in its terms, which then
computes all K runs' terms at once (``Objective.terms_packed``; batched arithmetic for every
built-in objective but FactorVAE, whose terms run run by run).
The batch gather, the per-run views of outputs and weights (one ``unbind`` per tensor; indexing
``t[k]`` would give every run's backward a whole ``K x ...`` zero gradient, O(K^2)), the logged
metrics of all K runs (one vmapped ``_logs`` into K-stacked running means, when the runs' terms
have equal keys and shapes; see :class:`_Books`) and the NaN check's host sync are done once per
step. ``benchmarks/bench_packed_overhead.py`` measures this overhead.

A run whose loss becomes NaN/inf is stopped as a lone run is (the loop's rule): its folder says
``failed``, its last good checkpoint is kept, and :meth:`PackedStep.drop` re-stacks the others
(weights, Adam state, books) so it is no longer computed while they carry on.
"""

from __future__ import annotations

import contextlib
import functools
import warnings
from typing import Any, Iterator, Sequence

import torch
from torch.func import functional_call, stack_module_state

from ..data import BatchSampler
from ..errors import UserError, check_choice
from .. import objectives
from ..models import Posterior
from ..objectives.base import Objective
from . import checkpoint
from .config import RunConfig
from .job import Job, _logs, load_optimizer_state, make_adam
from .log import MeansRow, StackedMeans

# Fields every run of a pack must share (the batched model and the stacked Adam need them equal;
# one process: one thread count). ``threads`` is read with getattr (older configs lack it).
SHARED = ("dataset", "source", "data_root", "arch", "latents", "steps", "batch_size", "lr",
          "adam_beta1", "adam_beta2", "device", "precision", "compile", "threads")


def _field(config: RunConfig, name: str) -> Any:
    return getattr(config, name, None)


def check_packable(configs: Sequence[RunConfig]) -> None:
    """Raise ``ValueError`` unless ``configs`` can be trained as one pack (see :data:`SHARED`)."""
    if not configs:
        raise ValueError("train_packed needs at least one RunConfig")
    first = configs[0]
    for i, c in enumerate(configs[1:], 1):
        for f in SHARED:
            if _field(c, f) != _field(first, f):
                raise UserError(
                    f"configs[{i}] has {f}={_field(c, f)!r} but configs[0] has {_field(first, f)!r}; "
                    f"a pack shares {', '.join(SHARED)} (seeds and hyperparameters may differ): "
                    "train such runs in separate packs"
                )
    pairs = {c.model: objectives.get(c.model).pairs for c in configs}
    if len(set(pairs.values())) > 1:
        raise UserError(
            f"a pack cannot mix objectives trained on pairs with others ({', '.join(sorted(pairs))}): "
            "their batches differ; pack them separately"
        )
    outs = [c.out for c in configs]
    dup = sorted({o for o in outs if outs.count(o) > 1})
    if dup:
        raise UserError(f"two runs of the pack write to the same out folder {dup[0]!r}; give each run its own out")


class _RNG:
    """One run's torch random stream: a ``torch.Generator`` (CPU, plus one on the current CUDA
    device on CUDA) holding what the global RNG would hold if the run were trained alone.

    ``eps`` draws from it directly (no swapping); :meth:`active` swaps it in as the global RNG
    for code that draws from the global RNG (FactorVAE's permutations in ``extra_step``)."""

    def __init__(self, device: torch.device, state: dict[str, Any], init: dict[str, Any]) -> None:
        # ``state``: a checkpoint's RNG states, or ``init`` (``Job.init_rng``: the state just after
        # this run's model and objective were initialised from its seed, as alone); ``init``'s
        # CUDA state also stands in for a checkpoint that has none.
        self.device = device
        self.cuda = device.type == "cuda"
        self.cpu = torch.Generator()
        self.cpu.set_state(state["torch"])
        self.gpu: torch.Generator | None = None
        if self.cuda:
            cuda = state.get("cuda") or init["cuda"]
            self.gpu = torch.Generator(device=device)
            self.gpu.set_state(cuda[torch.cuda.current_device()])

    def randn(self, shape: tuple[int, ...]) -> torch.Tensor:
        """``torch.randn(shape, device=device)`` as the run alone would draw it."""
        return torch.randn(shape, device=self.device, generator=self.gpu if self.cuda else self.cpu)

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        cpu = torch.get_rng_state()
        torch.set_rng_state(self.cpu.get_state())
        if self.gpu is not None:
            gpu = torch.cuda.get_rng_state()
            torch.cuda.set_rng_state(self.gpu.get_state())
        try:
            yield
        finally:
            self.cpu.set_state(torch.get_rng_state())
            torch.set_rng_state(cpu)
            if self.gpu is not None:
                self.gpu.set_state(torch.cuda.get_rng_state())
                torch.cuda.set_rng_state(gpu)

    def state(self) -> dict[str, Any]:
        """What a checkpoint stores (the format of :func:`checkpoint.rng_state`)."""
        st = checkpoint.rng_state()
        st["torch"] = self.cpu.get_state()
        if self.gpu is not None:
            st["cuda"] = [self.gpu.get_state()]
        return st


def _next_batches(samplers: Sequence[BatchSampler]) -> torch.Tensor:
    """The next batch of each of K samplers (of one dataset), as ``K x B x C x H x W`` float32.

    The same rows and values as ``torch.stack([s.next() for s in samplers])`` (each sampler's
    generator advances as in ``next()``), with one gather and one conversion for all K."""
    batch = samplers[0].batch_at(torch.cat([s.next_indices() for s in samplers]))
    return batch.view(len(samplers), -1, *batch.shape[1:])


class _Books:
    """The per-step bookkeeping of a pack's jobs (what :meth:`Job.record` does for one run).

    Batched, when the K runs' terms have the same keys, shapes and dtypes and the runs the same
    training set size (which the logged ``tc`` depends on): one ``torch.vmap`` of ``_logs`` over
    the K-stacked tensors, added to a :class:`~untwine.train.log.StackedMeans` whose rows are the
    jobs' ``running``, and one write of the K losses: O(1) tensor ops per step, not O(K).
    Otherwise (e.g. mixed objectives) each job's own :meth:`Job.record`, from then on; also for
    K = 1, where the vmap's fixed cost (~0.8 ms on CPU) exceeds one run's books (~0.4 ms).
    Either way the jobs' ``loss_buf`` are the rows of one ``K x L`` ring buffer, so the NaN checks
    of any number of jobs at a step cost one host sync.
    """

    def __init__(self, jobs: Sequence[Job], losses: torch.Tensor | None = None) -> None:
        # ``losses``: the jobs' rings to carry on with (a pack re-stacked after a run stopped)
        self.jobs = jobs
        self.losses = losses if losses is not None else torch.zeros(
            len(jobs), max(j.cfg.log_every for j in jobs), device=jobs[0].device)
        self.writes = 0  # steps booked; keys the host copy of ``losses``
        self._host: tuple[int, torch.Tensor] | None = None
        for k, job in enumerate(jobs):
            job.loss_buf = self.losses[k]
            job.host_losses = functools.partial(self.host_row, k)
        same = len(jobs) > 1 and len({(j.train_size, j.tc_fn) for j in jobs}) == 1
        self.batched: bool | None = None if same else False  # None: decided at the first step
        self.logs = torch.vmap(functools.partial(_logs, tc_fn=jobs[0].tc_fn, dataset_size=jobs[0].train_size))
        self.stack: StackedMeans | None = None

    def host_row(self, k: int) -> torch.Tensor:
        """Job ``k``'s loss ring on the host; one device-to-host copy per step for all jobs."""
        if self._host is None or self._host[0] != self.writes:
            self._host = (self.writes, self.losses.cpu())
        return self._host[1][k]

    def record(self, terms: Sequence[dict[str, torch.Tensor]], outs: Sequence[torch.Tensor],
               per_run: Sequence[Sequence[torch.Tensor]], stacked: dict[str, torch.Tensor] | None = None) -> None:
        """Book a finished step of every job: ``terms[k]`` and ``per_run[k]`` (x, mu, logvar, z,
        logits) are run ``k``'s, ``outs`` the same five tensors K-stacked, ``stacked`` the terms
        K-stacked if the caller has them (``Objective.terms_packed``)."""
        self.writes += 1
        if self.batched is not False:
            if stacked is not None or _same_shapes(terms):
                if stacked is None:
                    with torch.no_grad():
                        stacked = {key: torch.stack([t[key] for t in terms]) for key in terms[0]}
                logs = self.logs(stacked, *outs)
                if self.batched is None:
                    self._start(logs)
                if self.batched:
                    self.stack.add(logs)  # type: ignore[union-attr]
                    self.losses[:, self.jobs[0].step % self.losses.shape[1]] = stacked["loss"].detach()
                    for job, t in zip(self.jobs, terms):
                        job.booked(t)
                    return
            elif self.batched:  # the terms changed: each run keeps its own means from now on
                for job in self.jobs:
                    assert isinstance(job.running, MeansRow)
                    job.running = job.running.detached()
            self.batched = False
        for job, t, out in zip(self.jobs, terms, per_run):
            job.record(t, *out)

    def _start(self, logs: dict[str, torch.Tensor]) -> None:
        """Go batched if the jobs' running means (fresh or resumed) fit ``logs``' keys and shapes."""
        self.stack = StackedMeans.of_runs([j.running for j in self.jobs], logs)  # type: ignore[misc]
        self.batched = self.stack is not None
        if self.stack is not None:
            for k, job in enumerate(self.jobs):
                job.running = self.stack.row(k)


def _batched_terms(cls: type[Objective]) -> bool:
    """Whether a pack computes K runs' terms of ``cls`` in one ``terms_packed`` call (the class
    declares ``batched_terms`` and draws no random numbers in ``terms``); otherwise it calls each
    run's ``terms`` (swapping RNGs where ``random_terms``)."""
    return cls.batched_terms and not cls.random_terms


def _same_shapes(terms: Sequence[dict[str, torch.Tensor]]) -> bool:
    """Whether every run's terms have the first run's keys (in order), shapes and dtypes."""
    sig = [(key, v.shape, v.dtype) for key, v in terms[0].items()]
    return all([(key, v.shape, v.dtype) for key, v in t.items()] == sig for t in terms[1:])


BACKENDS = ("auto", "vmap", "loop")


class PackedVAE:
    """K VAEs of one architecture as stacked weights.

    ``params[name]`` is ``K x <shape of the parameter>`` (a leaf that requires grad); each source
    model's parameters are re-pointed at their slice ``params[name][k]`` so the K ``nn.Module`` s
    always show the current weights (for evaluation and checkpoints) without copies.
    ``forward(x, eps)``: ``x: K x B x C x H x W``, ``eps: K x B x D`` ->
    ``(mu, logvar, z, logits)``, each with a leading ``K`` axis.

    ``backend="vmap"``: one ``torch.vmap`` call (grouped convolutions): the fast path on GPU.
    ``backend="loop"``: the K models one after another through ``functional_call`` on views of
    the stacked weights (``unbind``, so the backward stacks their gradients in one go). For conv64
    the stacked conv weights are laid out so that every ``params[name][k]`` is ``channels_last``
    (as the run alone), with no copy per step. On CPU, where oneDNN's grouped (transposed)
    convolutions were measured ~2x slower than K separate ones, this is the faster path.
    ``"auto"``: ``vmap`` on CUDA, ``loop`` elsewhere.
    ``precision="bf16"``: the encoders and decoders compute in bfloat16 with float32 outputs, as
    :class:`untwine.train.speed.AutocastForward` does for a run alone (bit-equal with ``loop``).
    """

    def __init__(self, models: Sequence[torch.nn.Module], backend: str = "auto", precision: str = "fp32") -> None:
        check_choice(backend, BACKENDS, "packed backend")
        params, buffers = stack_module_state(list(models))
        if buffers:
            raise ValueError("PackedVAE supports models without buffers (conv64, mlp)")
        base = models[0]
        device = next(iter(params.values())).device
        if backend == "auto":
            backend = "vmap" if device.type == "cuda" else "loop"
        self.backend = backend
        self.autocast = precision == "bf16"  # as untwine.train.speed.AutocastForward, run alone
        self.channels_last = getattr(base, "arch", "") == "conv64"
        if self.channels_last and backend == "loop":
            params = {n: _channels_last_slices(v) if v.dim() == 5 else v for n, v in params.items()}
        self.params = params
        self.encoder, self.decoder = base.encoder, base.decoder
        self.enc = {k[len("encoder."):]: v for k, v in params.items() if k.startswith("encoder.")}
        self.dec = {k[len("decoder."):]: v for k, v in params.items() if k.startswith("decoder.")}
        for k, m in enumerate(models):
            for name, p in m.named_parameters():
                p.data = params[name].data[k]
        self._fn = torch.vmap(self._one, in_dims=(0, 0, 0, 0))

    def _encode(self, enc: dict, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.autocast:
            # bfloat16 weights and inputs: what torch.autocast does for these layers (conv, linear,
            # then elementwise ops in bfloat16); autocast itself does not reach inside torch.vmap.
            # The latent layers (FULL_PRECISION) keep float32 weights and cast for themselves.
            enc, x = _bf16(enc, self.encoder), x.to(torch.bfloat16)
        mu, logvar = functional_call(self.encoder, enc, (x,))
        return mu.float(), logvar.float()  # no-ops with latent_layer heads; as AutocastForward

    def _decode(self, dec: dict, z: torch.Tensor) -> torch.Tensor:
        if self.autocast:
            return functional_call(self.decoder, _bf16(dec, self.decoder), (z,)).float()
        return functional_call(self.decoder, dec, (z,))

    def _one(self, enc: dict, dec: dict, x: torch.Tensor, eps: torch.Tensor, posterior: Posterior | None = None):
        mu, logvar = self._encode(enc, x)
        if posterior is not None:
            mu, logvar = posterior(mu, logvar)
        z = mu + torch.exp(0.5 * logvar) * eps
        return mu, logvar, z, self._decode(dec, z)

    def __call__(self, x: torch.Tensor, eps: torch.Tensor, posteriors: Sequence[Posterior | None] | None = None):
        """``posteriors``: per run, what ``(mu, logvar)`` go through before sampling (pair
        objectives, :meth:`untwine.train.job.Job.posterior`), or ``None``."""
        if self.backend == "vmap":
            if posteriors is None:
                return self._fn(self.enc, self.dec, x, eps)
            mu, logvar = torch.vmap(self._encode)(self.enc, x)  # run by run only the aggregation
            agg = [(m, v) if p is None else p(m, v) for p, m, v in zip(posteriors, mu.unbind(0), logvar.unbind(0))]
            mu, logvar = torch.stack([a[0] for a in agg]), torch.stack([a[1] for a in agg])
            z = mu + torch.exp(0.5 * logvar) * eps
            return mu, logvar, z, torch.vmap(self._decode)(self.dec, z)
        outs = []
        posts = posteriors if posteriors is not None else [None] * len(x)
        for enc, dec, xk, ek, post in zip(_unbind(self.enc), _unbind(self.dec), x.unbind(0), eps.unbind(0), posts):
            if self.channels_last:
                xk = xk.contiguous(memory_format=torch.channels_last)
            outs.append(self._one(enc, dec, xk, ek, post))
        return tuple(torch.stack(t) for t in zip(*outs))

    def parameters(self) -> list[torch.Tensor]:
        return list(self.params.values())


def _bf16(weights: dict[str, torch.Tensor], module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """``module``'s ``weights`` in bfloat16, except those of its submodules named in its
    ``FULL_PRECISION`` (the latent layers, :func:`untwine.models.layers.latent_layer`): float32."""
    keep = getattr(module, "FULL_PRECISION", ())
    return {n: w if n.rpartition(".")[0] in keep else w.to(torch.bfloat16) for n, w in weights.items()}


def _unbind(weights: dict[str, torch.Tensor]) -> list[dict[str, torch.Tensor]]:
    """``[{name: w[k]} for k in range(K)]`` through one ``unbind`` per weight. (Indexing ``w[k]``
    K times would cost a zero-filled ``K x ...`` gradient per run in the backward: O(K^2).)"""
    names = list(weights)
    return [dict(zip(names, ws)) for ws in zip(*(weights[n].unbind(0) for n in names))]


def _channels_last_slices(w: torch.Tensor) -> torch.Tensor:
    """A leaf copy of stacked 4-d weights ``K x A x B x H x W`` in which every ``[k]`` is
    ``channels_last`` (memory ``K x A x H x W x B``), as ``Module.to(memory_format=channels_last)``
    lays out one model's weights."""
    k, a, b, h, wd = w.shape
    out = torch.empty_strided(w.shape, (a * h * wd * b, h * wd * b, 1, wd * b, b), dtype=w.dtype, device=w.device)
    with torch.no_grad():
        out.copy_(w)
    return out.requires_grad_(w.requires_grad)


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




class PackedStep:
    """The step of K runs batched: one :class:`PackedVAE`, one stacked Adam, the runs' own batches,
    random streams, objectives and books (see the module docstring). ``step(s)`` trains the live
    runs one step and books it; :meth:`drop` stops computing a run (after its NaN)."""

    def __init__(self, jobs: Sequence[Job], backend: str, device: torch.device) -> None:
        cfg = jobs[0].cfg
        if cfg.compile != "off":
            warnings.warn(f"train_packed runs its models uncompiled (compile={cfg.compile!r} applies to runs "
                          "trained alone with untwine.train.train)", stacklevel=3)
        self.backend, self.device, self.cfg = backend, device, cfg
        self.pairs = jobs[0].pairs  # (check_packable: all runs of a pack agree)
        self.shape = (cfg.batch_size * (2 if self.pairs else 1), cfg.latents)
        self.rngs: dict[int, _RNG] = {}
        for job in jobs:
            if job.channels_last:  # the stacked weights are plain contiguous tensors
                job.model = job.model.to(memory_format=torch.contiguous_format)
            self.rngs[id(job)] = _RNG(device, job.saved["rng"] if job.saved is not None else job.init_rng,
                                      job.init_rng)
            job.rng_state = self.rngs[id(job)].state
        saved = [j.saved["optimizer"] for j in jobs] if jobs[0].saved is not None else None  # type: ignore[index]
        self._stack(list(jobs), saved, None)

    def _stack(self, jobs: list[Job], adam: list[dict[str, Any]] | None, losses: torch.Tensor | None) -> None:
        """Stack ``jobs``' weights (their current values) and Adam states (``adam``: one per job)."""
        self.jobs = jobs
        self.model = PackedVAE([j.model for j in jobs], self.backend, self.cfg.precision)
        self.optimizer = opt = make_adam(self.model.parameters(), self.cfg, self.device)
        if adam is not None:
            load_optimizer_state(opt, _stack_adam(adam))
        for k, job in enumerate(jobs):
            job.optimizer_state = lambda k=k: _slice_adam(opt.state_dict(), k)
        self.books = _Books(jobs, losses)
        self.rng = [self.rngs[id(j)] for j in jobs]
        self.swap = [j.objective.random_terms for j in jobs]  # the run's RNG around its terms
        self.objs = [j.objective for j in jobs]
        cls = type(self.objs[0])
        self.together = cls if len({type(o) for o in self.objs}) == 1 and _batched_terms(cls) else None
        self.any_extra = any(o.has_extra_step for o in self.objs)

    def drop(self, job: Job) -> None:
        """Stop computing ``job``: re-stack the other runs as they are now (weights, Adam state,
        running means, loss rings), so the pack carries on without it."""
        keep = [k for k, j in enumerate(self.jobs) if j is not job]
        if len(keep) == len(self.jobs) or not keep:
            return
        state = self.optimizer.state_dict()
        adam = [_slice_adam(state, k) for k in keep] if state["state"] else None
        for k in keep:
            if isinstance(self.jobs[k].running, MeansRow):
                self.jobs[k].running = self.jobs[k].running.detached()
        self._stack([self.jobs[k] for k in keep], adam, self.books.losses[keep])

    def __call__(self, step: int) -> None:
        jobs, rngs = self.jobs, self.rng
        x = _next_batches([j.sampler for j in jobs])
        eps = torch.stack([rng.randn(self.shape) for rng in rngs])
        mu, logvar, z, logits = self.model(x, eps, [j.posterior() for j in jobs] if self.pairs else None)
        # per run (x, mu, logvar, z, logits): views through one unbind per tensor
        outs = list(zip(*(t.unbind(0) for t in (x, mu, logvar, z, logits))))
        if self.together is not None:  # one objective class: its terms_packed, O(1) ops in K
            stacked = self.together.terms_packed(self.objs, x, mu, logvar, z, logits, step)
            terms = [dict(zip(stacked, v)) for v in zip(*(t.unbind(0) for t in stacked.values()))]
            loss = stacked["loss"].sum()
        else:
            stacked, terms = None, []
            for k, obj in enumerate(self.objs):
                with rngs[k].active() if self.swap[k] else contextlib.nullcontext():
                    terms.append(obj.terms(*outs[k], step))
            loss = torch.stack([t["loss"] for t in terms]).sum()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        if self.any_extra:
            codes = z.detach().unbind(0)
            for k, obj in enumerate(self.objs):
                if obj.has_extra_step:
                    with rngs[k].active():
                        terms[k] = {**terms[k], **obj.extra_step(codes[k], step)}
        self.books.record(terms, (x, mu, logvar, z, logits), outs, None if self.any_extra else stacked)


def pack_key(config: RunConfig) -> tuple:
    """Runs with equal keys can share a pack (for grouping a sweep's runs): :data:`SHARED`, with
    ``precision`` as it resolves (``"auto"`` depends on the objective: ``speed.bf16_learns_the_same``),
    and whether the objective trains on pairs."""
    precision = config.resolved(check_dataset=False).precision
    pairs = objectives.get(config.model).pairs
    return (*(precision if f == "precision" else _field(config, f) for f in SHARED), pairs)
