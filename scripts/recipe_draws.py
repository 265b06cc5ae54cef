"""The draws of training recipes: one row per finished run of one or more sweep folders, grouped
by recipe, with MIG, its per-factor terms and the active latents; a markdown table per recipe.

    .venv/bin/python scripts/recipe_draws.py SWEEP [SWEEP ...] [--csv FILE] [--markdown FILE]
                                             [--threshold 0.2] [--n 10000]

A recipe is everything in a run's config.json except ``seed``, ``out``, ``precision`` and
``threads``; a draw is one (seed, precision) of it. ``mig`` is the sweep's own score
(``metrics.json``: the standard protocol, 10,000 points); ``per-factor MIG`` is recomputed from
the final checkpoint on ``--n`` images (numpy seed 0), as ``scripts/mig_by_factor.py`` does, so
its mean can differ from ``mig`` in the third decimal. ``active`` counts latents whose final
validation KL exceeds 0.1 nats; ``max NMI`` is the largest normalised mutual information between
two latents whose means vary (a label-free sign of an entangled pair, see
docs/results/factor_vae_fix).
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
from pathlib import Path

import numpy as np

IGNORED = ("seed", "out", "precision", "threads")


def recipe_of(cfg: dict) -> str:
    """A short readable key of a run's settings, without seed, precision, threads and folder."""
    hp = ", ".join(f"{k} {v:g}" for k, v in sorted(cfg.get("hparams", {}).items()))
    return (f"{cfg['model']} ({hp}), batch {cfg['batch_size']}, lr {cfg['lr']:g}, "
            f"{cfg['steps']} steps, {cfg['arch']}")


def run_folders(sweep: Path) -> list[Path]:
    """Finished run folders (those with metrics.json) under a sweep folder, sorted."""
    return sorted(p.parent for p in sweep.rglob("metrics.json")
                  if (p.parent / "config.json").exists() and "baseline" not in p.parts)


def max_pair_nmi(codes: np.ndarray, active: float = 0.05) -> float:
    """Largest normalised discrete MI between two latents whose means vary (variance > ``active``),
    20 bins as MIG: a label-free sign of a rotated (entangled) pair; nan with < 2 such latents."""
    from untwine.metrics import latent_nmi

    act = np.where(codes.var(0) > active)[0]
    if len(act) < 2:
        return float("nan")
    return float(latent_nmi(codes[:, act])[~np.eye(len(act), dtype=bool)].max())  # MIG's bins


def draw_row(run_dir: Path, n: int, cache: dict) -> dict:
    import torch

    from untwine.data import load
    from untwine.metrics import mig
    from untwine.train import load_run

    torch.set_num_threads(1)
    cfg = json.loads((run_dir / "config.json").read_text())
    sweep_mig = json.loads((run_dir / "metrics.json").read_text()).get("mig")
    run = load_run(run_dir)
    key = (cfg["dataset"], cfg.get("source"), cfg.get("data_root"))
    if key not in cache:
        cache.clear()
        cache[key] = load(*key)
    data = cache[key]
    f, x = data.sample(n, np.random.default_rng(0))
    codes = np.asarray(run.encode(x), dtype=np.float64)
    per = mig(codes, f)["per_factor"]
    vals = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if '"val"' in line]
    kl_dims = vals[-1].get("kl_dims", []) if vals else []
    row = {"recipe": recipe_of(cfg), "precision": cfg["precision"], "seed": cfg["seed"],
           "mig": sweep_mig, "active": sum(1 for v in kl_dims if v > 0.1),
           "max_nmi": max_pair_nmi(codes), "run": str(run_dir)}
    row.update({name: float(v) for name, v in zip(data.factor_names, per)})
    return row


def markdown(rows: list[dict], threshold: float) -> str:
    out = []
    for recipe in dict.fromkeys(r["recipe"] for r in rows):
        rs = sorted((r for r in rows if r["recipe"] == recipe), key=lambda r: (r["precision"], r["seed"]))
        factors = [k for k in rs[0] if k not in ("recipe", "precision", "seed", "mig", "active", "max_nmi", "run")]
        migs = [r["mig"] for r in rs]
        hits = sum(m >= threshold for m in migs)
        out.append(f"### {recipe}\n")
        out.append(f"{len(rs)} draws, MIG >= {threshold} in **{hits}**; median {statistics.median(migs):.3f}, "
                   f"range {min(migs):.3f}-{max(migs):.3f}\n")
        out.append("| precision | seed | MIG | " + " | ".join(factors) + " | active latents | max NMI |")
        out.append("|---" * (5 + len(factors)) + "|")
        for r in rs:
            out.append(f"| {r['precision']} | {r['seed']} | {'**' if r['mig'] >= threshold else ''}{r['mig']:.3f}"
                       f"{'**' if r['mig'] >= threshold else ''} | "
                       + " | ".join(f"{r[k]:.3f}" for k in factors) + f" | {r['active']} | {r['max_nmi']:.3f} |")
        out.append("")
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sweeps", nargs="+", type=Path)
    ap.add_argument("--csv", type=Path, default=None)
    ap.add_argument("--markdown", type=Path, default=None)
    from untwine.metrics import registry
    from untwine.report.shipped import DISENTANGLED_MIG

    ap.add_argument("--threshold", type=float, default=DISENTANGLED_MIG, help="MIG bar (default: the report's)")
    ap.add_argument("--n", type=int, default=registry.get("mig").sizes["num_train"], help="images (default: MIG's)")
    a = ap.parse_args()
    cache: dict = {}
    rows = [draw_row(d, a.n, cache) for s in a.sweeps for d in run_folders(s)]
    if not rows:
        print("no finished runs (metrics.json) under " + ", ".join(map(str, a.sweeps)), file=sys.stderr)
        return 1
    if a.csv:
        with open(a.csv, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(rows[0]))
            w.writeheader()
            for r in rows:
                w.writerow({k: (f"{v:.4f}" if isinstance(v, float) else v) for k, v in r.items()})
    text = markdown(rows, a.threshold)
    if a.markdown:
        a.markdown.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
