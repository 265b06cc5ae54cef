"""One run's part of training: :class:`Job` (folder, data, model, objective, books, evaluation,
NaN check, checkpoint, summary) and :func:`open_run` (config and folder checks, where it resumes).

The loop (:mod:`untwine.train.loop`) drives K >= 1 jobs; every rule about one run (what is logged,
when it evaluates and checkpoints, what a NaN or Ctrl-C does to its folder) is written here once.
"""

from __future__ import annotations

import dataclasses
import functools
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Callable, NamedTuple

import numpy as np
import torch

from .. import objectives
from .._version import __version__
from ..data import BatchSampler, GroundTruthData, to_float, train_val_split
from ..data.pairs import PairSampler, partner_rows
from ..errors import UserError
from ..models import VAE, Posterior
from ..objectives import bernoulli_rec, kl_per_dim
from ..objectives.tc import gaussian_tc
from . import checkpoint, files
from .config import RESUMABLE_CHANGES, RunConfig
from .log import MeansRow, MetricsLog, RunningMeans, write_json
from .resume import resume_point
from .run import Run, load_run
from .speed import cpu_model
from .tensorboard import TensorBoardLog


class Opened(NamedTuple):
    """A run to train: its resolved config, the checkpoint to load (``None``: from scratch) and
    the step training starts at."""

    cfg: RunConfig
    ckpt: Path | None
    step: int


def open_run(config: RunConfig, *, resume: bool, data: GroundTruthData | None) -> Run | Opened:
    """Resolve ``config`` and check its folder: the finished :class:`Run` when there is nothing to
    train, else what to train (where it resumes: :func:`untwine.train.resume.resume_point`)."""
    if data is not None:
        config = dataclasses.replace(config, dataset=data.name, source=data.source)
    cfg = config.resolved(check_dataset=data is None)
    out = Path(cfg.out)  # type: ignore[arg-type]
    if checkpoint.find(out) is not None or (out / "summary.json").exists():
        if not resume:
            raise UserError(
                f"{out} already holds a run; pass resume=True (--resume) to continue it, "
                "or choose another out folder"
            )
        if (out / "config.json").exists():
            saved = RunConfig.from_json(out / "config.json")
            # what was left automatic is what the run used: a resume computes the same way anywhere
            if config.precision == "auto":
                cfg = dataclasses.replace(cfg, precision=saved.precision)
            if config.threads == 0:
                cfg = dataclasses.replace(cfg, threads=saved.threads)
            _check_same_run(saved, cfg, out)
    if not resume:
        return Opened(cfg, None, 0)
    checkpoint.settle(out)  # finish or undo a checkpoint save that a kill interrupted
    point = resume_point(out, cfg.steps)
    if point.finished:
        return load_run(out)
    return Opened(cfg, point.checkpoint, point.step)


class Job:
    """One run's folder, data split, sampler, model, objective and bookkeeping.

    The loop (:mod:`untwine.train.loop`) holds one job per run, K >= 1; its step strategy owns
    the optimizer and the step itself, sets ``optimizer_state`` and ``rng_state`` (callables
    giving what a checkpoint stores) and books each step (:meth:`record`); the loop calls
    :meth:`start`, :meth:`initial_eval`, per step :meth:`after_step`, and finally
    :meth:`finish`. ``saved`` is the checkpoint's ``state.pt`` dict when resuming; ``init_rng``
    the torch RNG state just after the model and objective were initialised from the seed.

    A strategy that books steps itself (a pack, for all its runs at once) calls :meth:`booked`
    instead of :meth:`record`, having added the step's logs to ``running`` (which it may replace
    by a :class:`~untwine.train.log.MeansRow`) and its loss to ``loss_buf`` (a ring: step ``s``'s
    loss at ``s % len(loss_buf)``, at least ``log_every`` long; it may be a row of a shared
    buffer, then ``host_losses`` gives that row on the host, so K runs' checks share one sync).
    """

    def __init__(self, cfg: RunConfig, ckpt: Path | None, data: GroundTruthData, device: torch.device) -> None:
        self.cfg, self.data, self.device = cfg, data, device
        self.out = out = Path(cfg.out)  # type: ignore[arg-type]
        # ------------------------------------------------------------------ data
        train_idx, val_idx = train_val_split(len(data), cfg.val_fraction, cfg.seed)
        if len(train_idx) == 0 or len(val_idx) == 0:
            raise UserError(f"{data.name} has {len(data)} images: too few for val_fraction={cfg.val_fraction}")
        self.train_size, self.val_size = len(train_idx), len(val_idx)
        self.pairs = objectives.get(cfg.model).pairs  # batches of B pairs, 2B images
        self.sampler = _sampler(cfg, data, train_idx, device)
        val_rows = np.sort(np.random.default_rng(cfg.seed).permutation(val_idx)[: cfg.eval_images])
        self.val_x = to_float(data.images_at(torch.from_numpy(val_rows))).to(device)
        if isinstance(self.sampler, PairSampler):  # each validation image's partner, drawn once (the run's seed)
            f = torch.as_tensor(np.asarray(data.factors)[val_rows], dtype=torch.int64)
            rows2, self.val_labels = partner_rows(data, f, self.sampler.pairing, torch.Generator().manual_seed(cfg.seed))
            self.val_x2 = to_float(data.images_at(rows2)).to(device)
        self.images_per_step = cfg.batch_size * (2 if self.pairs else 1)

        # ------------------------------------------------------------------ model, objective
        torch.manual_seed(cfg.seed)
        self.model = VAE(cfg.arch, data.num_channels, cfg.latents).to(device)
        self.channels_last = _use_channels_last(cfg.arch, device)
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.objective = objectives.build(
            cfg.model, dataset_size=self.train_size, latents=cfg.latents, **cfg.hparams
        ).to(device)
        self.tc_fn = _total_correlation()
        self.init_rng = {"torch": torch.get_rng_state(),
                         "cuda": torch.cuda.get_rng_state_all() if device.type == "cuda" else None}
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "config.json", cfg.to_dict())
        self.meta = {"arch": cfg.arch, "channels": str(data.num_channels), "latents": str(cfg.latents)}

        # ------------------------------------------------------------------ state (fresh or resumed)
        self.step, self.elapsed = 0, 0.0
        self.running: RunningMeans | MeansRow = RunningMeans()
        self.last: dict[str, Any] = {"train": {}, "val": {}, "initial_val": {}}
        self.log = MetricsLog(out / "metrics.jsonl")
        self.saved: dict[str, Any] | None = None
        if ckpt is not None:
            state = self.saved = checkpoint.load_state(ckpt)
            checkpoint.load_weights(ckpt, self.model, self.objective)
            extra = self.objective.extra_optimizer
            if extra is not None and state.get("extra_optimizer") is not None:
                load_optimizer_state(extra, state["extra_optimizer"])
            self.sampler.load_state_dict(state["sampler"])
            self.running.load_state_dict(state["running"], device)  # type: ignore[union-attr]
            self.step, self.elapsed, self.last = int(state["step"]), float(state["elapsed_s"]), state["last"]
            self.log.truncate_after(self.step)
        elif self.log.path.exists():
            self.log.path.unlink()
        self.tb = TensorBoardLog(out, self.step, data, self.val_x, data.factors[val_rows]) if cfg.tensorboard else None
        self.last_good: int | None = self.step if ckpt is not None else None
        self.loss_buf = torch.zeros(cfg.log_every, device=device)
        self.host_losses: Callable[[], torch.Tensor] | None = None  # default: loss_buf.cpu()
        self.since_check = 0
        self.in_step = False
        self.evaluated: int | None = self.step if ckpt is not None else None  # the last step whose rows are all written
        self.status, self.error = "finished", None
        self.optimizer_state: Callable[[], dict[str, Any]] = dict
        self.rng_state: Callable[[], dict[str, Any]] = checkpoint.rng_state

    # ------------------------------------------------------------------ pieces of the loop
    def start(self) -> None:
        self.t_start = self.t_log = time.perf_counter()
        self.step_log = self.step
        self.session_start = (self.step, self.t_start)  # this call's first step and time (summary "session")

    def initial_eval(self) -> None:
        if self.step == 0:
            self.evaluation(train=False)  # with score, the untrained encoder's: where the curve starts
            self.last["initial_val"] = self.last["val"]

    def eval_due(self, step: int) -> bool:
        """Whether ``step`` has an evaluation (step 0, every ``eval_every``, the last)."""
        return step % self.cfg.eval_every == 0 or step == self.cfg.steps  # type: ignore[operator]

    def evaluation(self, train: bool = True) -> None:
        """Write this step's evaluation rows: ``train`` (the running means since the last one),
        ``val`` and, with ``score``, ``score``. Only then is :attr:`evaluated` this step, which is
        what lets an interrupt save a checkpoint here (:meth:`interrupted`)."""
        rows = {}
        if train:
            rows["train"] = self.last["train"] = self.running.means()  # type: ignore[union-attr]
            self.running.reset()  # type: ignore[union-attr]
        rows["val"] = self.last["val"] = self.evaluate()
        if self.cfg.score:
            rows["score"] = self.last["score"] = self.score()
        self.write_logs(self.step, rows)
        self.evaluated = self.step

    def record(self, terms: dict[str, torch.Tensor], *outs: torch.Tensor,
               logs: dict[str, torch.Tensor] | None = None) -> None:
        """Book one finished training step (no host sync): ``outs`` are the step's ``x, mu,
        logvar, z, logits``, from which the logged quantities are computed unless ``logs`` (what
        :func:`_logs` gives) is passed."""
        if logs is None:
            logs = _logs(terms, *outs, self.tc_fn, self.train_size)
        self.running.add(logs)  # type: ignore[union-attr]  # (a pack's MeansRow never records here)
        self.loss_buf[self.step % len(self.loss_buf)] = terms["loss"].detach()
        self.booked(terms)

    def booked(self, terms: dict[str, torch.Tensor]) -> None:
        """Count a finished step whose logs and loss the caller has booked (see the class doc)."""
        self.terms = terms
        self.since_check += 1
        self.step += 1
        self.in_step = False

    def after_step(self) -> bool:
        """NaN check (``FloatingPointError``) and speed every ``log_every`` steps; evaluation and
        checkpoint when due. True when it logged (``ips`` is new)."""
        cfg, step = self.cfg, self.step
        evaluating = self.eval_due(step)
        saving = step % cfg.checkpoint_every == 0 or step == cfg.steps  # type: ignore[operator]
        logged = self.since_check == cfg.log_every or evaluating or saving
        if logged:
            self.check_finite()
            now = time.perf_counter()
            self.ips = (step - self.step_log) * self.images_per_step / max(now - self.t_log, 1e-9)
            self.t_log, self.step_log = now, step
        if evaluating:
            self.evaluation()
        if saving:
            self.save()
        return logged

    def write_logs(self, step: int, rows: dict[str, dict[str, Any]]) -> None:
        """The one writer of ``metrics.jsonl``: a row per ``split -> values``; with ``tensorboard``,
        the same rows (and, at evaluations, metrics and traversals) go to the event files."""
        for split, values in rows.items():
            self.log.write(step, split, values)
        if self.tb is not None:
            self.tb.write(step, rows, self.model)

    def save(self) -> None:
        extra = self.objective.extra_optimizer
        checkpoint.save(self.out, model=self.model, objective=self.objective, metadata=self.meta, state={
            "step": self.step,
            "optimizer": self.optimizer_state(),
            "extra_optimizer": extra.state_dict() if extra is not None else None,
            "sampler": self.sampler.state_dict(),
            "rng": self.rng_state(),
            "running": self.running.state_dict(),
            "elapsed_s": self.elapsed + time.perf_counter() - self.t_start,
            "last": self.last,
        })
        self.last_good = self.step

    def posterior(self) -> Posterior | None:
        """What the model maps ``(mu, logvar)`` through before sampling in this step: a pair
        objective's :meth:`~untwine.objectives.Objective.aggregate` with the labels of the batch
        the sampler gave last; ``None`` for other objectives."""
        if not self.pairs:
            return None
        return functools.partial(self.objective.aggregate, labels=self.sampler.labels)  # type: ignore[attr-defined]

    def evaluate(self) -> dict[str, Any]:
        """Validation terms on ``val_x`` (with pairs: ``val_x`` and their partners ``val_x2``; no
        grad; own RNG so training is not perturbed)."""
        model, objective, val_x, cfg, step = self.model, self.objective, self.val_x, self.cfg, self.step
        model.eval()
        means = RunningMeans()
        bs = min(cfg.batch_size, len(val_x))
        cuda = list(range(torch.cuda.device_count())) if self.device.type == "cuda" else []
        codes = []
        with torch.no_grad(), torch.random.fork_rng(devices=cuda):
            torch.manual_seed(cfg.seed + step)
            for i in range(0, len(val_x) - bs + 1, bs):
                x, posterior = val_x[i : i + bs], None
                if self.pairs:
                    x = torch.cat([x, self.val_x2[i : i + bs]])
                    posterior = functools.partial(objective.aggregate, labels=self.val_labels[i : i + bs])
                mu, logvar, z, logits = model(x, posterior)
                terms = objective.terms(x, mu, logvar, z, logits, step)
                means.add(_logs(terms, x, mu, logvar, z, logits, self.tc_fn, self.train_size))
                codes.append(z.float())
        model.train()
        out = means.means()
        # The reported validation TC: the Gaussian TC of all sampled codes (>= 0; see
        # objectives.tc.REPORTED_TC); the minibatch estimate, biased negative at batch 64, is kept as tc_batch.
        if "tc" in out:
            out["tc_batch"] = out.pop("tc")
        z_all = torch.cat(codes)
        out["tc"] = float(gaussian_tc(z_all)) if z_all.shape[0] > z_all.shape[1] else float("nan")
        return out

    def score(self) -> dict[str, Any]:
        """``cfg.score``'s metrics of the model as it is now (:data:`untwine.hooks.run_scores`: as
        ``untwine evaluate`` scores a checkpoint; no global RNG drawn, so training goes on unchanged)."""
        from .. import hooks

        assert hooks.run_scores is not None  # set by untwine/__init__.py
        self.model.eval()
        try:
            return hooks.run_scores(Run(self.out, self.cfg, self.model, {}), self.data, self.cfg.score)
        except Exception as e:  # a metric that fails is recorded; the run (hours, maybe) goes on
            error = f"{type(e).__name__}: {e}"
            warnings.warn(f"{self.out}: score at step {self.step} failed: {error}", stacklevel=2)
            return {"error": error}
        finally:
            self.model.train()

    def losses_since_check(self) -> torch.Tensor:
        """The losses of the steps since the last NaN check, oldest first, on the host (one sync)."""
        ring = self.host_losses() if self.host_losses is not None else self.loss_buf.cpu()
        start = (self.step - self.since_check) % len(ring)
        return torch.cat([ring[start:], ring[:start]])[: self.since_check]

    def check_finite(self) -> None:
        """One host sync: raise if any loss since the last check was NaN/inf."""
        losses = self.losses_since_check()
        bad = (~torch.isfinite(losses)).nonzero()
        if len(bad):
            first = self.step - self.since_check + int(bad[0]) + 1
            where = (
                f"the last good checkpoint (step {self.last_good}) is kept in {self.out / 'checkpoint'}"
                if self.last_good is not None else "no checkpoint was saved before it"
            )
            raise FloatingPointError(
                f"loss became {float(losses[int(bad[0])])} at step {first}; {where}. "
                "Try a lower lr (or check the data and hyperparameters)."
            )
        self.since_check = 0

    def interrupted(self) -> None:
        """Ctrl-C: save a checkpoint if the last step completed, was finite and, when due, has its
        evaluation written (else the resumed run redoes the step and its evaluation); set the status."""
        self.status = "interrupted"
        if self.eval_due(self.step) and self.evaluated != self.step:  # e.g. a second Ctrl-C mid-evaluation,
            # its own or, in a pack, an earlier run's
            msg = f"interrupted before step {self.step}'s evaluation was written; last checkpoint: step {self.last_good}"
        elif not self.in_step and _finite(self.losses_since_check()):
            self.save()
            msg = f"interrupted at step {self.step}; checkpoint saved"
        else:
            msg = f"interrupted during step {self.step + 1}; last checkpoint: step {self.last_good}"
        self.error = f"{msg}. Resume with: untwine train --out {self.out} --resume"
        print(f"\n{self.error}", file=sys.stderr)

    def failed(self, e: BaseException) -> None:
        self.status, self.error = "failed", f"{type(e).__name__}: {e}"

    def finish(self) -> None:
        """Write ``summary.json`` (whatever the status)."""
        cfg, step = self.cfg, self.step
        now = time.perf_counter()
        self.elapsed += now - self.t_start
        first, t0 = getattr(self, "session_start", (step, now))
        session_s = now - t0
        if self.tb is not None:
            self.tb.close()
        self.t_start = time.perf_counter()
        write_json(self.out / "summary.json", {
            "status": self.status,
            **({"error": self.error} if self.error else {}),
            "config": cfg.to_dict(),
            "steps": step,
            "train": self.last["train"],
            "val": self.last["val"],
            "initial_val": self.last["initial_val"],
            **({"score": self.last.get("score", {})} if cfg.score else {}),
            "wall_time_s": self.elapsed,
            "images_per_s": step * self.images_per_step / max(self.elapsed, 1e-9),  # a pair is two images
            # the call that wrote this summary (a resumed run: from its checkpoint's step); the two above: the whole run
            "session": {"first_step": first, "steps": step - first, "wall_time_s": session_s,
                        "images_per_s": (step - first) * self.images_per_step / max(session_s, 1e-9)},
            "dataset": {"name": self.data.name, "source": self.data.source, "train_images": self.train_size,
                        "val_images": self.val_size, "eval_images": len(self.val_x)},
            "untwine_version": __version__,
            "torch_version": torch.__version__,
            "device": str(self.device),
            **({"cpu": cpu_model()} if self.device.type == "cpu" else {}),
        })

    def result(self) -> Run:
        self.model.eval()
        summary = files.read_summary(self.out / "summary.json") or {}
        return Run(self.out, self.cfg, self.model, summary)


def _sampler(cfg: RunConfig, data: GroundTruthData, rows: np.ndarray, device: torch.device) -> BatchSampler:
    """The run's batches from ``rows``: pairs (:class:`~untwine.data.pairs.PairSampler`, with the
    objective's ``k`` and ``dlib_pairs``) for a pair objective, else single images."""
    cls = objectives.get(cfg.model)
    if not cls.pairs:
        return BatchSampler(data, cfg.batch_size, rows, seed=cfg.seed, device=device)
    return PairSampler(data, cfg.batch_size, rows, seed=cfg.seed, device=device, **_pair_args(cfg))


def _pair_args(cfg: RunConfig) -> dict[str, Any]:
    """A pair objective's ``k`` and pair ``mode`` from the run's resolved hyperparameters."""
    hp = cfg.hparams  # resolved: the objective's defaults merged in (RunConfig.resolved)
    return {"k": int(hp["k"]), "mode": "dlib" if hp["dlib_pairs"] else "paper"}


def _logs(
    terms: dict[str, torch.Tensor],
    x: torch.Tensor,
    mu: torch.Tensor,
    logvar: torch.Tensor,
    z: torch.Tensor,
    logits: torch.Tensor,
    tc_fn: Callable[..., torch.Tensor] | None,
    dataset_size: int,
) -> dict[str, torch.Tensor]:
    """What is logged for one batch: the objective's terms plus ``rec``, ``kl`` (nats/image),
    ``kl_dims`` (``D``), ``elbo = -(rec + kl)`` and a ``tc`` estimate, all detached."""
    with torch.no_grad():
        logs = {k: v.detach() for k, v in terms.items()}
        mu, logvar = mu.detach(), logvar.detach()
        kl_dims = kl_per_dim(mu, logvar)
        if "rec" not in logs:
            logs["rec"] = bernoulli_rec(logits.detach(), x)
        if "kl" not in logs:
            logs["kl"] = kl_dims.sum()
        logs["kl_dims"] = kl_dims
        logs["elbo"] = -(logs["rec"] + logs["kl"])
        if "tc" not in logs and tc_fn is not None:
            logs["tc"] = tc_fn(z.detach(), mu, logvar, dataset_size)
    return logs


def _total_correlation() -> Callable[..., torch.Tensor] | None:
    try:
        from ..objectives.tc import total_correlation
    except ModuleNotFoundError as e:  # pragma: no cover - only while tc.py is missing
        if e.name != "untwine.objectives.tc":
            raise
        return None
    return total_correlation


def _finite(t: torch.Tensor) -> bool:
    return bool(torch.isfinite(t).all())


def _use_channels_last(arch: str, device: torch.device) -> bool:
    """channels_last: conv64 steps measured ~20-25% faster on CPU (1 thread, torch 2.13) and it
    is the layout cuDNN prefers; the MLP gains nothing."""
    return arch == "conv64"


def load_optimizer_state(optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    """``optimizer.load_state_dict(state)``, then give every state tensor its parameter's memory
    layout: the fused Adam kernel walks parameter and state memory in step, so a contiguous
    ``exp_avg`` for a ``channels_last`` weight (e.g. a checkpoint written by ``train_packed``)
    would be updated element-mismatched."""
    optimizer.load_state_dict(state)
    for group in optimizer.param_groups:
        for p in group["params"]:
            for k, v in optimizer.state.get(p, {}).items():
                if isinstance(v, torch.Tensor) and v.shape == p.shape and v.stride() != p.stride():
                    optimizer.state[p][k] = torch.empty_like(p, dtype=v.dtype).copy_(v)


def _check_same_run(saved: RunConfig, cfg: RunConfig, out: Path) -> None:
    a, b = saved.to_dict(), cfg.to_dict()
    may_change = [k for k in a if k in RESUMABLE_CHANGES and k != "out"]  # in RunConfig's order
    for k in a:
        if k not in RESUMABLE_CHANGES and a[k] != b[k]:
            raise UserError(
                f"{out} holds a run with {k}={a[k]!r}, not {b[k]!r}; resume it with the same "
                f"settings (only {', '.join(may_change[:-1])} and {may_change[-1]} may change) or choose "
                "another out folder"
            )


def make_adam(params: Any, cfg: RunConfig, device: torch.device) -> torch.optim.Adam:
    """The run's Adam (``lr``, betas; the fused kernel where the device has one) over ``params``."""
    return torch.optim.Adam(params, lr=cfg.lr, betas=(cfg.adam_beta1, cfg.adam_beta2), **_adam_impl(device))


def _adam_impl(device: torch.device) -> dict[str, bool]:
    """The fused Adam kernel (CUDA, and CPU since torch 2.4): on CPU it was measured 4-8x faster
    per step than ``foreach`` and the default for-loop (benchmarks/RESULTS.md); same arithmetic."""
    try:
        from torch.utils._foreach_utils import _get_fused_kernels_supported_devices

        fused_ok = device.type in _get_fused_kernels_supported_devices()
    except ImportError:  # pragma: no cover - older torch
        fused_ok = device.type == "cuda"
    return {"fused": True} if fused_ok else {"foreach": True}
