"""The training loop, one for K >= 1 runs: ``train(config) -> Run`` and ``train_packed(configs)``.

Read :func:`_fit` top to bottom. Before the loop a *step strategy* is chosen once:

* one run: :class:`SingleStep`, the fast path: the model itself (``channels_last`` for conv64,
  ``torch.compile`` and CUDA graphs with ``compile``, bfloat16 autocast with ``precision``), no
  stacking, no vmap;
* K > 1 runs (or an explicit ``backend``): :class:`~untwine.train.packed.PackedStep`, the K
  models batched as one.

One step either way: draw a batch from the resident ``uint8`` images, ``model(x) -> (mu,
logvar, z, logits)``, ``objective.terms(...)["loss"]``, backward, Adam; objectives with their own
networks then train them with ``extra_step(z.detach(), step)``; the step is booked in each run's
:class:`~untwine.train.job.Job`. The loop never looks at the model's name.

The rules below hold for every run, alone or in a pack, and are written once (here and in
``Job``). Host syncs happen only every ``log_every`` steps (NaN check + progress bar), at
evaluations and at checkpoints; running means stay on the device in between.
NaN: each run's summed loss of its last ``log_every`` steps is checked at every log step and
before every evaluation and checkpoint, so a non-finite loss is detected within ``log_every``
steps and no checkpoint is written after it. That run then stops: ``summary.json`` says
``failed`` with the ``FloatingPointError`` naming the first bad step and the last good checkpoint
(which is kept), and it is no longer computed; the others carry on. ``train`` raises that error;
``train_packed`` returns the failed run among the others.
Ctrl-C: the current step finishes, every running run saves a checkpoint and says
``interrupted``, and ``KeyboardInterrupt`` propagates. Any other error: every running run says
``failed`` and the error propagates.
"""

from __future__ import annotations

import signal
import threading
import warnings
from typing import Any, Callable, Sequence

import torch

from ..data import GroundTruthData, load
from ..errors import UserError, check_choice
from . import checkpoint
from .config import RunConfig
from .job import Job, Opened, _logs, load_optimizer_state, make_adam, open_run
from .log import Progress, to_python
from .packed import BACKENDS, PackedStep, check_packable
from .run import Run
from .speed import (compile_mode, compiled_step, flush_denormal, model_forward, resolve_device, step_forward,
                    torch_threads)


def train(
    config: RunConfig,
    *,
    progress: bool = True,
    resume: bool = False,
    data: GroundTruthData | None = None,
) -> Run:
    """Train the model described by ``config``; write its run folder ``config.out``; return the run.

    Args:
        config: the run (validated here, before any work).
        progress: show a progress bar (steps, ETA, images/s, loss terms).
        resume: continue the run in ``config.out`` from its last checkpoint (bit-identical on CPU);
            a finished run is returned as is (or extended if ``config.steps`` grew). Without a
            checkpoint there, a new run starts.
        data: train on this dataset instead of ``untwine.data.load(config.dataset, ...)``
            (e.g. ``untwine.data.from_arrays``); pass it again to resume.

    Raises:
        ValueError: bad config, or ``config.out`` holds another run (and ``resume`` is false).
        FloatingPointError: the loss became NaN/inf (``summary.json`` gets status ``"failed"``).
        KeyboardInterrupt: Ctrl-C; a checkpoint is saved first, so ``resume=True`` continues.
    """
    (run,), (error,) = _fit([config], progress=progress, resume=resume, data=data, backend="auto")
    if error is not None:
        raise error
    return run


def train_packed(
    configs: Sequence[RunConfig],
    *,
    progress: bool = True,
    resume: bool = False,
    data: GroundTruthData | None = None,
    backend: str = "auto",
) -> list[Run]:
    """Train the runs ``configs`` together; return their :class:`Run` s in order.

    The same loop and rules as :func:`train` (each run's folder is written as ``train`` writes
    it), with the K > 1 runs' steps batched as one model (:class:`~untwine.train.packed.PackedStep`);
    a run whose loss becomes NaN/inf stops alone (its ``Run.summary`` says ``failed``) and is not
    raised. The runs must share :data:`~untwine.train.packed.SHARED`; seeds, hyperparameters, the
    objective and the log/eval/checkpoint intervals may differ. Weights equal the runs trained
    alone up to float rounding (batched convolutions sum in another order).

    ``resume=True`` continues the runs from their checkpoints; all unfinished runs must be at the
    same step (e.g. a pack interrupted together); finished ones are returned as they are.
    ``backend``: how K models run, see :class:`~untwine.train.packed.PackedVAE` (``auto``: one
    run alone takes :func:`train`'s fast path; K > 1: vmap on CUDA, loop elsewhere).

    Raises:
        ValueError: the configs cannot be packed, or a run folder is taken (see ``train``).
        KeyboardInterrupt: Ctrl-C; every run saves a checkpoint first.
    """
    check_packable(configs)
    check_choice(backend, BACKENDS, "packed backend")
    runs, _ = _fit(configs, progress=progress, resume=resume, data=data, backend=backend)
    return runs


def _fit(
    configs: Sequence[RunConfig], *, progress: bool, resume: bool, data: GroundTruthData | None, backend: str
) -> tuple[list[Run], list[BaseException | None]]:
    """The one loop: train ``configs`` (K >= 1, packable) to their ``steps``; their runs, and for
    each the error that stopped it (NaN), else ``None``."""
    opened = [open_run(c, resume=resume, data=data) for c in configs]
    todo = [i for i, o in enumerate(opened) if isinstance(o, Opened)]
    runs: list[Any] = list(opened)
    errors: list[BaseException | None] = [None] * len(configs)
    if not todo:
        return runs, errors
    check_packable([opened[i].cfg for i in todo])  # type: ignore[union-attr]  # as resolved ("auto" precision)
    starts = sorted({opened[i].step for i in todo})  # type: ignore[union-attr]
    if len(starts) > 1:
        raise UserError(
            f"cannot resume a pack whose runs stopped at different steps ({starts}); "
            "resume them one by one with untwine.train.train(config, resume=True)"
        )
    cfg = opened[todo[0]].cfg  # type: ignore[union-attr]
    device = resolve_device(cfg.device)
    if data is None:
        data = load(cfg.dataset, cfg.source, cfg.data_root)
    with torch_threads(cfg.threads), flush_denormal():  # denormals: docs/speed.md
        jobs = [Job(o.cfg, o.ckpt, data, device) for o in (opened[i] for i in todo)]  # type: ignore[union-attr]
        if len(jobs) == 1 and backend == "auto":
            strategy: SingleStep | PackedStep = SingleStep(jobs[0], device)
        else:
            strategy = PackedStep(jobs, backend, device)
        failed = _loop(jobs, strategy, progress)
    for i, job, error in zip(todo, jobs, failed):
        runs[i], errors[i] = job.result(), error
    return runs, errors


def _loop(jobs: list[Job], step_fn: SingleStep | PackedStep, progress: bool) -> list[BaseException | None]:
    """Train ``jobs`` (all at the same step) with ``step_fn``; the error that stopped each run."""
    cfg, k_runs = jobs[0].cfg, len(jobs)
    errors: list[BaseException | None] = [None] * k_runs
    active = list(range(k_runs))
    desc = f"{cfg.model} {cfg.dataset}" if k_runs == 1 else f"pack of {k_runs} {cfg.dataset}"
    bar = Progress(cfg.steps, jobs[0].step, progress, desc=desc)
    step = jobs[0].step
    for job in jobs:
        job.start()
    stop = _StopOnSigint()
    try:
        with stop:
            for job in jobs:
                job.initial_eval()
            while step < cfg.steps and active:
                for k in active:
                    jobs[k].in_step = True
                step_fn(step)
                step += 1
                logged = None
                for k in list(active):
                    try:
                        if jobs[k].after_step() and logged is None:
                            logged = jobs[k]
                    except FloatingPointError as e:  # this run stops; the others carry on
                        errors[k] = e
                        jobs[k].failed(e)
                        jobs[k].finish()
                        active.remove(k)
                        step_fn.drop(jobs[k])
                if logged is not None and active:
                    bar.update(step, logged.ips * len(active), _shown([jobs[k] for k in active]))
                if stop.requested and step < cfg.steps:
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
    return errors


def _shown(jobs: list[Job]) -> dict[str, Any]:
    """The progress bar's loss terms: each scalar term, averaged over the running runs (one sync)."""
    keys = [key for key, v in jobs[0].terms.items() if v.dim() == 0 and all(key in j.terms for j in jobs[1:])]
    if len(jobs) == 1:
        return to_python({key: jobs[0].terms[key] for key in keys})
    return to_python({key: torch.stack([j.terms[key].detach().float() for j in jobs]).mean() for key in keys})


class SingleStep:
    """The step of one run alone, the fast path: the model itself, eager or compiled (``compile``:
    forward + terms + logs as one graph where :func:`_fused_step` allows, CUDA graphs on CUDA),
    ``channels_last`` batches for conv64, bfloat16 autocast with ``precision="bf16"``."""

    def __init__(self, job: Job, device: torch.device) -> None:
        self.job = job
        self.optimizer = make_adam(job.model.parameters(), job.cfg, device)
        if job.saved is not None:
            load_optimizer_state(self.optimizer, job.saved["optimizer"])
            checkpoint.set_rng_state(job.saved["rng"])
        job.optimizer_state = self.optimizer.state_dict
        job.rng_state = checkpoint.rng_state
        self.fused = _fused_step(job, job.cfg, device)  # with compile: forward + terms + logs as one graph
        if job.pairs:  # the posterior hook changes every step: the model runs uncompiled
            if compile_mode(job.cfg.compile, device) is not None:
                warnings.warn(f"{job.cfg.model} trains on pairs and runs uncompiled (compile={job.cfg.compile!r} "
                              "is ignored)", stacklevel=4)
            self.forward = model_forward(job.model, job.cfg.precision, device)
        else:
            cfg = job.cfg
            self.forward = job.model if self.fused is not None else step_forward(job.model, cfg.precision, cfg.compile, device)

    def __call__(self, step: int) -> None:
        job, objective, optimizer = self.job, self.job.objective, self.optimizer
        x = job.sampler.next()
        if job.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        if self.fused is None:
            posterior = job.posterior()
            mu, logvar, z, logits = self.forward(x) if posterior is None else self.forward(x, posterior)
            terms = objective.terms(x, mu, logvar, z, logits, step)
        else:
            terms, logs = self.fused(x)
        optimizer.zero_grad(set_to_none=True)
        terms["loss"].backward()
        optimizer.step()
        if self.fused is not None:
            job.record(terms, logs=logs)
        else:
            if objective.has_extra_step:
                terms = {**terms, **objective.extra_step(z.detach(), step)}
            job.record(terms, x, mu, logvar, z, logits)

    def drop(self, job: Job) -> None:
        """A lone run that stopped: nothing is left to compute (the loop ends)."""


def _fused_step(job: Job, cfg: RunConfig, device: torch.device) -> Callable[..., Any] | None:
    """With ``cfg.compile``: ``x -> (terms, logs)``, the model's forward, the objective's terms and
    the logged quantities as one compiled function, so on CUDA ("reduce-overhead") nearly the whole
    step (its backward too) replays as CUDA graphs instead of ~250 kernel launches. ``None``
    without compile, and for objectives whose terms depend on the step (``uses_step``) or that
    train networks of their own (``has_extra_step``): those compile the model only; pair
    objectives (``pairs``) run uncompiled."""
    objective = job.objective
    mode = compile_mode(cfg.compile, device)
    if mode is None or objective.uses_step or objective.has_extra_step or objective.pairs:
        return None
    forward = model_forward(job.model, cfg.precision, device)

    def step(x: torch.Tensor) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        mu, logvar, z, logits = forward(x)
        terms = objective.terms(x, mu, logvar, z, logits, 0)
        return terms, _logs(terms, x, mu, logvar, z, logits, job.tc_fn, job.train_size)

    return compiled_step(step, mode, device)


class _StopOnSigint:
    """While active (main thread only), Ctrl-C sets ``requested``; the loop stops at the end of the
    current step so the checkpoint is consistent. A second Ctrl-C interrupts at once."""

    def __init__(self) -> None:
        self.requested = False
        self._prev: Any = None
        self._installed = False

    def _handler(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self) -> "_StopOnSigint":
        if threading.current_thread() is threading.main_thread():
            self._prev = signal.getsignal(signal.SIGINT)
            signal.signal(signal.SIGINT, self._handler)
            self._installed = True
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, self._prev if self._prev is not None else signal.SIG_DFL)
            self._installed = False


__all__ = ["SingleStep", "train", "train_packed"]
