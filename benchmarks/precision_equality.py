"""Does bfloat16 autocast learn what float32 learns? Compares two sweeps of the same study, one run
with ``--set train.precision=fp32`` and one with ``bf16`` (``studies/precision_check.toml``:
beta-VAE beta 1 and 16, FactorVAE gamma 10, dSprites, 3 seeds, 5,000 steps).

Usage::

    untwine sweep studies/precision_check.toml --out sweeps/precision-fp32 --set train.precision=fp32
    untwine sweep studies/precision_check.toml --out sweeps/precision-bf16 --set train.precision=bf16
    .venv/bin/python benchmarks/precision_equality.py sweeps/precision-fp32 sweeps/precision-bf16 [MORE ...]

For every model and grid point and each of validation rec, KL, TC (the Gaussian TC of the
validation codes) and MIG, prints a Markdown row: the fp32 seeds' values and their range, the bf16
seeds' values and mean, how many bf16 seeds fall inside the fp32 range, and the verdict **same**
when the bf16 mean lies inside the fp32 range (the issue's test), else **differs** with the
distance in fp32 seed standard deviations; and Welch's t-test p-value (small: the means differ).
With 3 seeds a side the range test says "differs" for ~37% of rows even when both sides are draws
of one distribution, so the summary line also prints how many rows it would flag by chance. Only
finished runs count; a sweep still running gives a partial table. Each run counts under the precision its ``config.json`` records; more seeds may
come in further sweep folders (a study with other ``seeds``).

Two tables: the final evaluation (what results.csv holds: the issue's test), then the validation
terms averaged over each run's last ``--last`` evaluations (default 5: steps 4,000-5,000 at
``eval_every = 250``). A single evaluation of a run trained at lr 1e-3 moves by about a nat of KL
from one evaluation to the next, which three seeds' range at one step does not show; the average
takes that out. MIG is computed once, at the end, so it is the same in both tables.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import numpy as np
from scipy.stats import ttest_ind

from untwine.report.tables import fmt
from untwine.studies.results import collect
from untwine.studies.study import load_study
from untwine.train import files

QUANTITIES = [("val_rec", "val rec (nats)"), ("val_kl", "val KL (nats)"), ("val_tc", "val TC (nats)"),
              ("mig", "MIG")]


def finished(sweeps: list[Path], last: int) -> dict[str, dict[tuple, dict[int, dict]]]:
    """{precision: {(model, hyperparameters): {seed: row}}} of the finished runs of ``sweeps``
    (the precision read from each run's config.json); with ``last`` > 1 the rows' ``val_*`` terms
    are the means over the run's last ``last`` evaluations."""
    out: dict[str, dict[tuple, dict[int, dict]]] = {"fp32": {}, "bf16": {}}
    for sweep in sweeps:
        study = load_study(sweep / "study.toml")
        hps = study.hparam_names()
        for row in collect(study, sweep):
            if row["status"] != "finished":
                continue
            precision = files.read_json(sweep / row["run"] / "config.json", "run the sweep again")["precision"]
            if last > 1:
                row.update(last_evaluations(sweep / row["run"], last))
            key = (row["model"], ", ".join(f"{h} {row[h]:g}" for h in hps if row.get(h) is not None))
            seeds = out[precision].setdefault(key, {})
            if row["seed"] in seeds:
                raise SystemExit(f"{sweep / row['run']}: seed {row['seed']} of {' '.join(key)} in {precision} "
                                 "is in two of the sweeps given; give each run once")
            seeds[row["seed"]] = row
    return out


def last_evaluations(run: Path, last: int) -> dict[str, float]:
    """``val_<term>`` means over the last ``last`` validation rows of ``run``'s metrics.jsonl."""
    val = [r for r in files.read_jsonl(run / "metrics.jsonl") if r["split"] == "val"][-last:]
    return {f"val_{k}": statistics.fmean(r[k] for r in val) for k in ("rec", "kl", "tc") if k in val[-1]}


def chance_outside(n_f: int, n_b: int, draws: int = 100_000) -> float:
    """How often the mean of ``n_b`` draws falls outside the range of ``n_f`` draws of the same
    normal distribution: the rate at which the range test says "differs" when nothing differs."""
    rng = np.random.default_rng(0)
    f, b = rng.standard_normal((draws, n_f)), rng.standard_normal((draws, n_b)).mean(1)
    return float(((b < f.min(1)) | (b > f.max(1))).mean())


def table(fp32: dict, bf16: dict) -> tuple[list[str], int, int, float]:
    """Markdown lines, rows judged same, rows judged, and the number of rows expected to read
    "differs" if bf16 and fp32 learned exactly the same (:func:`chance_outside`)."""
    lines = ["| model | quantity | fp32 seeds | fp32 range | bf16 seeds | bf16 mean | bf16 seeds in range | Welch p "
             "| verdict |", "|---|---|---|---|---|---|---|---|---|"]
    same = judged = 0
    expected = 0.0
    for key in fp32:
        if key not in bf16:
            continue
        f_rows, b_rows = fp32[key], bf16[key]
        for col, label in QUANTITIES:
            f = [f_rows[s][col] for s in sorted(f_rows) if f_rows[s].get(col) is not None]
            b = [b_rows[s][col] for s in sorted(b_rows) if b_rows[s].get(col) is not None]
            if len(f) < 2 or len(b) < 2:
                continue
            lo, hi, mean_b = min(f), max(f), statistics.fmean(b)
            inside = sum(lo <= v <= hi for v in b)
            ok = lo <= mean_b <= hi
            sd = statistics.stdev(f)
            dist = abs(mean_b - statistics.fmean(f)) / sd if sd > 0 else float("inf")
            verdict = "**same**" if ok else f"**differs** ({dist:.1f} sd)"
            p = float(ttest_ind(b, f, equal_var=False).pvalue)
            same += ok
            judged += 1
            expected += chance_outside(len(f), len(b))
            lines.append(f"| {key[0]} {key[1]} | {label} | {' / '.join(fmt(v) for v in f)} | {fmt(lo)} - {fmt(hi)} "
                         f"| {' / '.join(fmt(v) for v in b)} | {fmt(mean_b)} | {inside} of {len(b)} | {p:.2f} "
                         f"| {verdict} |")
    return lines, same, judged, expected


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sweeps", type=Path, nargs="+",
                    help="sweep folders of the same study, trained in fp32 and in bf16 (several of each may be given)")
    ap.add_argument("--last", type=int, default=5, help="evaluations averaged in the second table (default 5)")
    a = ap.parse_args()
    for last in (1, a.last):
        runs = finished(a.sweeps, last)
        lines, same, judged, expected = table(runs["fp32"], runs["bf16"])
        n_f = sum(len(v) for v in runs["fp32"].values())
        n_b = sum(len(v) for v in runs["bf16"].values())
        print("Final evaluation (results.csv):" if last == 1 else
              f"\nValidation terms: mean of each run's last {last} evaluations (MIG: final):")
        print("\n".join(lines))
        print(f"\n{same} of {judged} rows: bf16 mean inside the fp32 seeds' range ({n_f} fp32 and {n_b} bf16 "
              f"finished runs); {judged - same} differ, where {expected:.1f} would if bf16 and fp32 learned exactly "
              "the same (seeds as normal draws: the range test's own false alarms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
