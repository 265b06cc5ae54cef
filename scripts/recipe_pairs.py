"""The demo's selection rule measured over pairs of draws: train two seeds, keep the one with the
higher UDR computed with a shipped model in the pool (``[eval] udr_reference``), as `untwine demo`.

    .venv/bin/python scripts/recipe_pairs.py --group bf16 RUN RUN ... --group fp32 RUN RUN ... \\
        [--reference beta-tcvae-dsprites] [--out pairs.csv]

For each group (one precision) the pairwise UDR scores of all its runs and the reference are
computed once (:func:`untwine.metrics.udr_runs`, 1,000 observations, seed 0: the sample a study
with the default ``[eval] seed`` draws). For a pool ``{a, b, reference}`` a seed's UDR is the
median (here the mean) of the scores of the pairs in which it is the second model, so every pair of
runs is settled from that matrix without encoding again. Each pair's row: both seeds and their MIG
(``metrics.json``), the kept seed by the lasso and by the Spearman variant, the kept run's MIG, and
whether it reaches 0.2. A summary per group compares with one seed alone.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import sys
from pathlib import Path




def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--group", nargs="+", action="append", required=True, metavar=("NAME", "RUN"),
                    help="a group name (e.g. bf16) and its run folders")
    ap.add_argument("--reference", default="beta-tcvae-dsprites", help="shipped model in every pool")
    ap.add_argument("--out", type=Path, default=None, help="CSV of every pair")
    a = ap.parse_args()

    import torch

    from untwine import pretrained
    from untwine.metrics import udr_runs
    from untwine.report.shipped import DISENTANGLED_MIG as THRESHOLD

    torch.set_num_threads(1)
    ref = pretrained.path(a.reference)
    rows = []
    for name, *runs in a.group:
        migs = [json.loads((Path(r) / "metrics.json").read_text())["mig"] for r in runs]
        seeds = [json.loads((Path(r) / "config.json").read_text())["seed"] for r in runs]
        res = udr_runs(list(runs) + [ref])
        n = len(runs)
        for i, j in itertools.combinations(range(n), 2):
            row = {"group": name, "seed_a": seeds[i], "seed_b": seeds[j], "mig_a": round(migs[i], 4),
                   "mig_b": round(migs[j], 4)}
            for v in ("lasso", "spearman"):
                p = res[f"pairwise_{v}"]
                ua, ub = (p[j, i] + p[n, i]) / 2, (p[i, j] + p[n, j]) / 2
                k = i if ua > ub else j if ub > ua else None
                row[f"udr_{v}_a"], row[f"udr_{v}_b"] = round(float(ua), 4), round(float(ub), 4)
                row[f"kept_{v}"] = "tie" if k is None else seeds[k]
                row[f"kept_mig_{v}"] = "" if k is None else round(migs[k], 4)
            rows.append(row)
        ok = [r for r in rows if r["group"] == name]
        single = sum(m >= THRESHOLD for m in migs)
        kept = sum(isinstance(r["kept_mig_lasso"], float) and r["kept_mig_lasso"] >= THRESHOLD for r in ok)
        best = sum(max(r["mig_a"], r["mig_b"]) >= THRESHOLD for r in ok)
        print(f"{name}: {n} runs, one seed reaches MIG >= {THRESHOLD} in {single} of {n}; over the {len(ok)} pairs "
              f"the seed UDR (lasso) keeps reaches it in {kept} of {len(ok)} (the better of the two, by MIG: {best})")
        for s, m, u in zip(seeds, migs, res["pairwise_lasso"][n, :n]):
            print(f"  seed {s}: MIG {m:.3f}, agreement with {a.reference} (lasso pair score) {u:.3f}")
    if a.out:
        with open(a.out, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
