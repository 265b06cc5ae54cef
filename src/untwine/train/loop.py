"""The training loop: ``train(config) -> Run``. Read it top to bottom.

One step: draw a batch from the resident ``uint8`` images, ``model(x) -> (mu, logvar, z, logits)``,
``objective.terms(...)["loss"]``, backward, Adam; objectives with their own networks then train
them with ``extra_step(z.detach(), step)``. The loop never looks at the model's name.

Host syncs happen only every ``log_every`` steps (NaN check + progress bar), at evaluations and at
checkpoints; running means of every logged term stay on the device in between.

NaN policy: the summed loss of the last ``log_every`` steps is checked at every log step and
before every evaluation and checkpoint, so a non-finite loss is detected within ``log_every``
steps, no checkpoint is ever written after it, and the run stops with ``FloatingPointError``
naming the first bad step and the last good checkpoint (which is kept).
"""

from __future__ import annotations

import dataclasses
import json
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from .. import __version__, objectives
from ..data import BatchSampler, GroundTruthData, load, to_float, train_val_split
from ..models import VAE
from ..objectives import bernoulli_rec, kl_per_dim
from . import checkpoint
from .config import RESUMABLE_CHANGES, RunConfig
from .log import MetricsLog, Progress, RunningMeans, to_python, write_json
from .run import Run, load_run


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
    # ------------------------------------------------------------------ config and run folder
    if data is not None:
        config = dataclasses.replace(config, dataset=data.name, source=data.source)
    cfg = config.resolved(check_dataset=data is None)
    out = Path(cfg.out)  # type: ignore[arg-type]
    ckpt = checkpoint.find(out)
    if ckpt is not None or (out / "summary.json").exists():
        if not resume:
            raise ValueError(
                f"{out} already holds a run; pass resume=True (--resume) to continue it, "
                "or choose another out folder"
            )
        if (out / "config.json").exists():
            _check_same_run(RunConfig.from_json(out / "config.json"), cfg, out)
    if ckpt is not None and resume:
        saved_step = int(checkpoint.load_state(ckpt)["step"])
        if saved_step > cfg.steps:
            raise ValueError(f"{out}: the checkpoint is at step {saved_step}, beyond steps={cfg.steps}")
        if saved_step == cfg.steps and _status(out) == "finished":
            return load_run(out)
    elif not resume:
        ckpt = None
    device = _device(cfg.device)

    # ------------------------------------------------------------------ data
    if data is None:
        data = load(cfg.dataset, cfg.source, cfg.data_root)
    train_idx, val_idx = train_val_split(len(data), cfg.val_fraction, cfg.seed)
    if len(train_idx) == 0 or len(val_idx) == 0:
        raise ValueError(f"{data.name} has {len(data)} images: too few for val_fraction={cfg.val_fraction}")
    sampler = BatchSampler(data, cfg.batch_size, train_idx, seed=cfg.seed, device=device)
    val_rows = np.sort(np.random.default_rng(cfg.seed).permutation(val_idx)[: cfg.eval_images])
    val_x = to_float(data.images_at(torch.from_numpy(val_rows))).to(device)

    # ------------------------------------------------------------------ model, objective, optimizer
    torch.manual_seed(cfg.seed)
    model = VAE(cfg.arch, data.num_channels, cfg.latents).to(device)
    channels_last = _use_channels_last(cfg.arch, device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    objective = objectives.build(
        cfg.model, dataset_size=len(train_idx), latents=cfg.latents, **cfg.hparams
    ).to(device)
    optimizer = torch.optim.Adam(
        model.parameters(), lr=cfg.lr, betas=(cfg.adam_beta1, cfg.adam_beta2), **_adam_impl(device)
    )
    tc_fn = _total_correlation()
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "config.json", cfg.to_dict())
    meta = {"arch": cfg.arch, "channels": str(data.num_channels), "latents": str(cfg.latents)}

    # ------------------------------------------------------------------ state (fresh or resumed)
    step, elapsed = 0, 0.0
    running = RunningMeans()
    last: dict[str, Any] = {"train": {}, "val": {}, "initial_val": {}}
    log = MetricsLog(out / "metrics.jsonl")
    if ckpt is not None:
        state = checkpoint.load_state(ckpt)
        checkpoint.load_weights(ckpt, model, objective)
        optimizer.load_state_dict(state["optimizer"])
        if objective.extra_optimizer is not None and state.get("extra_optimizer") is not None:
            objective.extra_optimizer.load_state_dict(state["extra_optimizer"])
        sampler.load_state_dict(state["sampler"])
        running.load_state_dict(state["running"], device)
        step, elapsed, last = int(state["step"]), float(state["elapsed_s"]), state["last"]
        checkpoint.set_rng_state(state["rng"])
        log.truncate_after(step)
    elif log.path.exists():
        log.path.unlink()
    last_good = step if ckpt is not None else None

    def save() -> None:
        nonlocal last_good
        extra = objective.extra_optimizer
        checkpoint.save(out, model=model, objective=objective, metadata=meta, state={
            "step": step,
            "optimizer": optimizer.state_dict(),
            "extra_optimizer": extra.state_dict() if extra is not None else None,
            "sampler": sampler.state_dict(),
            "rng": checkpoint.rng_state(),
            "running": running.state_dict(),
            "elapsed_s": elapsed + time.perf_counter() - t_start,
            "last": last,
        })
        last_good = step

    def evaluate() -> dict[str, Any]:
        """Validation terms on ``val_x`` (no grad; own RNG so training is not perturbed)."""
        model.eval()
        means = RunningMeans()
        bs = min(cfg.batch_size, len(val_x))
        cuda = list(range(torch.cuda.device_count())) if device.type == "cuda" else []
        with torch.no_grad(), torch.random.fork_rng(devices=cuda):
            torch.manual_seed(cfg.seed + step)
            for i in range(0, len(val_x) - bs + 1, bs):
                x = val_x[i : i + bs]
                mu, logvar, z, logits = model(x)
                terms = objective.terms(x, mu, logvar, z, logits, step)
                means.add(_logs(terms, x, mu, logvar, z, logits, tc_fn, len(train_idx)))
        model.train()
        return means.means()

    def check_finite() -> None:
        """One host sync: raise if any loss since the last check was NaN/inf."""
        nonlocal since_check
        losses = loss_buf[:since_check].cpu()
        bad = (~torch.isfinite(losses)).nonzero()
        if len(bad):
            first = step - since_check + int(bad[0]) + 1
            where = (
                f"the last good checkpoint (step {last_good}) is kept in {out / 'checkpoint'}"
                if last_good is not None else "no checkpoint was saved before it"
            )
            raise FloatingPointError(
                f"loss became {float(losses[int(bad[0])])} at step {first}; {where}. "
                "Try a lower lr (or check the data and hyperparameters)."
            )
        since_check = 0

    # ------------------------------------------------------------------ the loop
    loss_buf = torch.zeros(cfg.log_every, device=device)
    since_check = 0
    bar = Progress(cfg.steps, step, progress, desc=f"{cfg.model} {cfg.dataset}")
    t_start = t_log = time.perf_counter()
    step_log = step
    in_step = False
    status, error = "finished", None
    stop = _StopOnSigint()
    try:
        with stop:
            if step == 0:
                last["val"] = last["initial_val"] = evaluate()
                log.write(0, "val", last["val"])
            while step < cfg.steps:
                in_step = True
                x = sampler.next()
                if channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                mu, logvar, z, logits = model(x)
                terms = objective.terms(x, mu, logvar, z, logits, step)
                optimizer.zero_grad(set_to_none=True)
                terms["loss"].backward()
                optimizer.step()
                if objective.has_extra_step:
                    terms = {**terms, **objective.extra_step(z.detach(), step)}
                running.add(_logs(terms, x, mu, logvar, z, logits, tc_fn, len(train_idx)))
                loss_buf[since_check] = terms["loss"].detach()
                since_check += 1
                step += 1
                in_step = False

                evaluating = step % cfg.eval_every == 0 or step == cfg.steps  # type: ignore[operator]
                saving = step % cfg.checkpoint_every == 0 or step == cfg.steps  # type: ignore[operator]
                if since_check == cfg.log_every or evaluating or saving:
                    check_finite()
                    now = time.perf_counter()
                    ips = (step - step_log) * cfg.batch_size / max(now - t_log, 1e-9)
                    t_log, step_log = now, step
                    shown = to_python({k: v for k, v in terms.items() if v.dim() == 0})
                    bar.update(step, ips, shown)
                if evaluating:
                    last["train"] = running.means()
                    running.reset()
                    last["val"] = evaluate()
                    log.write(step, "train", last["train"])
                    log.write(step, "val", last["val"])
                if saving:
                    save()
                if stop.requested and step < cfg.steps:
                    raise KeyboardInterrupt
    except KeyboardInterrupt:
        status = "interrupted"
        if not in_step and _finite(loss_buf[:since_check]):
            save()
            msg = f"interrupted at step {step}; checkpoint saved"
        else:
            msg = f"interrupted during step {step + 1}; last checkpoint: step {last_good}"
        error = f"{msg}. Resume with: untwine train --out {out} --resume"
        print(f"\n{error}", file=sys.stderr)
        raise
    except BaseException as e:
        status, error = "failed", f"{type(e).__name__}: {e}"
        raise
    finally:
        bar.close()
        elapsed += time.perf_counter() - t_start
        write_json(out / "summary.json", {
            "status": status,
            **({"error": error} if error else {}),
            "config": cfg.to_dict(),
            "steps": step,
            "train": last["train"],
            "val": last["val"],
            "initial_val": last["initial_val"],
            "wall_time_s": elapsed,
            "images_per_s": step * cfg.batch_size / max(elapsed, 1e-9),
            "dataset": {"name": data.name, "source": data.source, "train_images": len(train_idx),
                        "val_images": len(val_idx), "eval_images": len(val_x)},
            "untwine_version": __version__,
            "torch_version": torch.__version__,
            "device": str(device),
        })
    model.eval()
    summary = json.loads((out / "summary.json").read_text())
    return Run(out, cfg, model, summary)


# ---------------------------------------------------------------------- helpers
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


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _use_channels_last(arch: str, device: torch.device) -> bool:
    """channels_last: conv64 steps measured ~20-25% faster on CPU (1 thread, torch 2.13) and it
    is the layout cuDNN prefers; the MLP gains nothing."""
    return arch == "conv64"


def _adam_impl(device: torch.device) -> dict[str, bool]:
    return {"fused": True} if device.type == "cuda" else {"foreach": True}


def _status(out: Path) -> str | None:
    p = out / "summary.json"
    return json.loads(p.read_text()).get("status") if p.is_file() else None


def _check_same_run(saved: RunConfig, cfg: RunConfig, out: Path) -> None:
    a, b = saved.to_dict(), cfg.to_dict()
    for k in a:
        if k not in RESUMABLE_CHANGES and a[k] != b[k]:
            raise ValueError(
                f"{out} holds a run with {k}={a[k]!r}, not {b[k]!r}; resume it with the same "
                "settings (only steps, eval_every, checkpoint_every, log_every and device may change) "
                "or choose another out folder"
            )


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
