"""Host overhead of ``train_packed``'s step per run: everything but the model's arithmetic.

Usage::

    .venv/bin/python benchmarks/bench_packed_overhead.py [--ks 1 8 32] [--steps 40] [--rounds 3]
        [--model beta-vae] [--batch 2] [--ref 47f9084] [--no-model]

On a GPU a tiny conv VAE's step is bound by launches and host work; whatever of it grows with
the number of packed runs K (Python calls, small kernels per run) caps what packing can win.
Measured on CPU, where a null model makes the compute negligible:

* **glue** (``train_packed`` itself): the real training loop with ``PackedVAE`` replaced by a
  null model (one K-vector weight; outputs are a few elementwise ops on the batch, whatever K),
  one thread. Hooks timestamp the pieces of each step (``torch.randn``, the model call,
  ``Tensor.backward``, ``Adam.step``, ``Job.after_step``), so a step splits into
  ``batches`` (sampling K batches), ``eps`` (K eps draws, RNG swaps), ``terms`` (the K
  objectives' terms, stacking the loss), ``backward`` (of the K terms' graphs), ``optim``
  (Adam on the null weight, constant) and ``book`` (``extra_step``, ``record``, ``after_step``).
  Median over steps (the first three and the last, which evaluates and checkpoints, are left
  out), microseconds per run per step, at batch ``--batch`` (default 2).
* **model** (``PackedVAE``, loop backend): forward, ``sum()`` of the outputs, backward and Adam
  of the real conv64 pack at batch 2, milliseconds per step (mostly compute on CPU; shows what
  slicing the stacked weights per run costs as K grows).

Both are measured for the current ``untwine.train.packed`` and, as ``ref``, for
``src/untwine/train/packed.py`` at git revision ``--ref`` (default: the commit before the host
overhead work), loaded from git into this process and interleaved with the current one, so the
two share ``Job``/``BatchSampler``/objectives and only ``packed.py`` differs (if that old file
no longer runs against the current package, it is skipped). ``--ref ''`` skips it.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path
from typing import Any, Callable

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_train import synthetic_images  # noqa: E402

from untwine.data import GroundTruthData, from_arrays  # noqa: E402
from untwine.train import RunConfig  # noqa: E402
from untwine.train import loop as loop_mod  # noqa: E402
from untwine.train import packed as packed_mod  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
REF = "47f9084"
PIECES = ("batches", "eps", "terms", "backward", "optim", "book")


def load_ref(rev: str) -> types.ModuleType | None:
    """``untwine/train/packed.py`` at git revision ``rev`` as module ``untwine.train._packed_ref``."""
    try:
        src = subprocess.run(["git", "show", f"{rev}:src/untwine/train/packed.py"], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        print(f"ref {rev}: not available ({e}); measuring the current code only")
        return None
    name = "untwine.train._packed_ref"
    spec = importlib.util.spec_from_loader(name, loader=None)
    mod = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    mod.__package__ = "untwine.train"
    sys.modules[name] = mod
    try:
        exec(compile(src, f"packed.py@{rev}", "exec"), mod.__dict__)
    except Exception as e:  # e.g. it imports a name the current package no longer has
        print(f"ref {rev}: packed.py does not load against the current package ({e!r}); skipped")
        return None
    return mod


# ---------------------------------------------------------------------- timestamps
class Trace:
    """``(tag, time)`` events of the hooked calls; ``on`` only while a timed run is going."""

    def __init__(self) -> None:
        self.events: list[tuple[str, float]] = []
        self.on = False

    def mark(self, tag: str) -> None:
        if self.on:
            self.events.append((tag, time.perf_counter()))

    def wrap(self, fn: Callable[..., Any], tag: str) -> Callable[..., Any]:
        def hooked(*a: Any, **kw: Any) -> Any:
            self.mark(tag + "<")
            try:
                return fn(*a, **kw)
            finally:
                self.mark(tag + ">")
        return hooked

    def steps(self) -> list[dict[str, float]]:
        """Seconds of each piece (see the module docstring) of every step between two others."""
        ev = self.events

        def first(tag: str, lo: int, hi: int) -> int:
            return next(i for i in range(lo, hi) if ev[i][0] == tag)

        def last(tag: str, lo: int, hi: int) -> int:
            return next(i for i in range(hi - 1, lo - 1, -1) if ev[i][0] == tag)

        calls = [i for i, (tag, _) in enumerate(ev) if tag == "model<"]
        out = []
        for prev, m, nxt in zip(calls, calls[1:], calls[2:]):
            t = lambda i: ev[i][1]  # noqa: E731
            start = last("book>", prev, m)  # the previous step's last after_step
            randn = first("randn<", start, m)
            bw = first("backward<", m, nxt)
            opt = first("optim<", bw, nxt)
            end = last("book>", m, nxt)
            out.append({
                "batches": t(randn) - t(start), "eps": t(m) - t(randn),
                "terms": t(bw) - t(first("model>", m, nxt)),
                "backward": t(first("backward>", bw, nxt)) - t(bw),
                "optim": t(first("optim>", opt, nxt)) - t(opt),
                "book": t(end) - t(first("optim>", opt, nxt)),
            })
        return out


TRACE = Trace()


class NullPacked:
    """Stands in for ``PackedVAE``: a ``K``-vector weight, outputs of the right shapes from a few
    elementwise ops on the batch (constant work in K), so the step's time is the loop's glue."""

    def __init__(self, models: list[torch.nn.Module], backend: str = "auto", precision: str = "fp32") -> None:
        self.w = torch.zeros(len(models), requires_grad=True)
        self.backend = backend

    def __call__(self, x: torch.Tensor, eps: torch.Tensor):
        TRACE.mark("model<")
        w = self.w.view(-1, 1, 1)
        d = eps.shape[-1]
        h = x.flatten(2)[..., :d] * w + 0.1
        z = h + torch.exp(0.5 * h) * eps
        logits = x * w.unsqueeze(-1).unsqueeze(-1)
        TRACE.mark("model>")
        return h, h, z, logits

    def parameters(self) -> list[torch.Tensor]:
        return [self.w]


def install_hooks() -> None:
    torch.randn = TRACE.wrap(torch.randn, "randn")
    torch.Tensor.backward = TRACE.wrap(torch.Tensor.backward, "backward")
    torch.optim.Adam.step = TRACE.wrap(torch.optim.Adam.step, "optim")
    loop_mod.Job.after_step = TRACE.wrap(loop_mod.Job.after_step, "book")


def glue_run(mod: types.ModuleType, k: int, a: argparse.Namespace, data: GroundTruthData, d: str) -> dict[str, float]:
    """One ``mod.train_packed`` run of ``k`` runs with the null model: median us/run/step per piece."""
    cfgs = [RunConfig(model=a.model, seed=i, steps=a.steps, batch_size=a.batch, eval_images=2, eval_every=a.steps,
                      checkpoint_every=a.steps, log_every=a.steps, device="cpu", out=f"{d}/{id(mod)}-{k}-{i}")
            for i in range(k)]
    real = mod.PackedVAE
    mod.PackedVAE = NullPacked
    TRACE.events, TRACE.on = [], True
    try:
        # backend="loop": the pack path even at K = 1 (a lone run would take train()'s fast path)
        mod.train_packed(cfgs, progress=False, data=data, backend="loop")
    finally:
        TRACE.on = False
        mod.PackedVAE = real
    for c in cfgs:  # next round writes fresh folders
        for f in Path(c.out).rglob("*"):
            if f.is_file():
                f.unlink()
    steps = TRACE.steps()[2:]
    res = {p: 1e6 * statistics.median(s[p] for s in steps) / k for p in PIECES}
    res["total"] = 1e6 * statistics.median(sum(s[p] for p in PIECES) for s in steps) / k
    return res


def model_step(mod: types.ModuleType, k: int, reps: int) -> float:
    """Median ms of one loop-backend ``PackedVAE`` step: forward, sum, backward, Adam (conv64, batch 2)."""
    from untwine.models import VAE

    models = []
    for i in range(k):
        torch.manual_seed(i)
        models.append(VAE("conv64", 1, 10))
    packed = mod.PackedVAE(models, "loop")
    opt = torch.optim.Adam(packed.parameters(), lr=1e-4, fused=True)
    x, eps = torch.rand(k, 2, 1, 64, 64), torch.randn(k, 2, 10)
    ts = []
    for _ in range(reps + 1):
        t = time.perf_counter()
        out = packed(x, eps)
        opt.zero_grad(set_to_none=True)
        sum(o.sum() for o in out).backward()
        opt.step()
        ts.append(time.perf_counter() - t)
    return 1e3 * statistics.median(ts[1:])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ks", type=int, nargs="+", default=[1, 8, 32], help="pack sizes K")
    ap.add_argument("--steps", type=int, default=40, help="steps per glue run")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds (medians of the rounds' medians)")
    ap.add_argument("--model", default="beta-vae", help="objective of every run")
    ap.add_argument("--batch", type=int, default=2, help="batch size of the glue runs")
    ap.add_argument("--ref", default=REF, help="git revision of packed.py to compare with ('' : none)")
    ap.add_argument("--no-model", action="store_true", help="skip the PackedVAE model-step timing")
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    impls: dict[str, types.ModuleType] = {"current": packed_mod}
    ref = load_ref(a.ref) if a.ref else None
    if ref is not None:
        impls = {"ref": ref, **impls}
    load = os.getloadavg()
    print(f"bench_packed_overhead: torch {torch.__version__}, threads {a.threads}, objective {a.model}, "
          f"{a.steps} steps x {a.rounds} rounds, ref {a.ref or '-'}, load average "
          f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    imgs, f = synthetic_images(512)
    data = from_arrays(imgs, f, ["shape", "scale", "x", "y"], name="bench-shapes")
    install_hooks()

    print(f"\nglue of train_packed with a null model, us per run per step (median; batch {a.batch})")
    print(f"{'K':>3} {'impl':8s} " + " ".join(f"{p:>8s}" for p in PIECES) + f" {'total':>8s}")
    totals: dict[tuple[str, int], float] = {}
    with tempfile.TemporaryDirectory() as d:
        for k in a.ks:
            rounds: dict[str, list[dict[str, float]]] = {n: [] for n in impls}
            for _ in range(a.rounds):
                for name, mod in impls.items():
                    rounds[name].append(glue_run(mod, k, a, data, d))
            for name in impls:
                med = {p: statistics.median(r[p] for r in rounds[name]) for p in (*PIECES, "total")}
                print(f"{k:3d} {name:8s} " + " ".join(f"{med[p]:8.1f}" for p in (*PIECES, "total")), flush=True)
                totals[name, k] = med["total"]
    base = min(a.ks)
    for name in impls:
        for k in a.ks:
            if k != base:
                print(f"ratio host glue per run per step, K={k} / K={base} ({name}): "
                      f"{totals[name, k] / totals[name, base]:.3f} (what K runs in a pack cost the host, per run, "
                      "relative to one run)")

    if not a.no_model:
        print("\nPackedVAE loop backend, conv64 batch 2: forward + sum + backward + Adam, ms per step (median)")
        for k in a.ks:
            reps = 3 if k >= 16 else 7
            times: dict[str, list[float]] = {n: [] for n in impls}
            for _ in range(a.rounds):
                for name, mod in impls.items():
                    times[name].append(model_step(mod, k, reps))
            print(f"{k:3d} " + "  ".join(f"{n} {statistics.median(v):8.2f}" for n, v in times.items()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
