"""docs/results/precision_check: benchmarks/precision_equality.py's bf16-against-fp32 tables and the
speed of each precision."""

from __future__ import annotations

import statistics

from .core import TABLES, markdown_table, num, read_csv, read_json, read_jsonl, read_toml, register, results_path, sig

# benchmarks/precision_equality.py's two tables, from the committed sweep folders (results.csv,
# each run's config.json for its precision, metrics.jsonl for the last evaluations).
PREC = "precision_check"
PREC_SWEEPS = ("fp32", "bf16", "more-fp32", "more-bf16")  # bf16-first/ is the first attempt, not compared
QUANTITIES = [("val_rec", "val rec (nats)"), ("val_kl", "val KL (nats)"), ("val_tc", "val TC (nats)"), ("mig", "MIG")]


def precision_runs(last: int) -> dict[str, dict[tuple, dict[int, dict]]]:
    """{precision: {(model, hyperparameters): {seed: row}}}; with ``last`` > 1 the val_* terms are
    the means over each run's last ``last`` validation rows."""
    out: dict[str, dict] = {"fp32": {}, "bf16": {}}
    for sweep in PREC_SWEEPS:
        st = read_toml(f"{PREC}/{sweep}/study.toml")
        hps = list(dict.fromkeys(h for m in st["models"] for h in m.get("grid", {})))
        for r in read_csv(f"{PREC}/{sweep}/results.csv"):
            if r["status"] != "finished":
                continue
            run = f"{PREC}/{sweep}/{r['run']}"
            row = {k: float(r[k]) for k, _ in QUANTITIES}
            if last > 1:
                val = [v for v in read_jsonl(f"{run}/metrics.jsonl") if v["split"] == "val"][-last:]
                row.update({f"val_{k}": statistics.fmean(v[k] for v in val) for k in ("rec", "kl", "tc")})
            hp = ", ".join(f"{h} {float(r[h]):g}" for h in hps if r.get(h))
            out[read_json(f"{run}/config.json")["precision"]].setdefault((r["model"], hp), {})[int(r["seed"])] = row
    return out


def chance_outside(n_f: int, n_b: int, draws: int = 100_000) -> float:
    """How often the mean of n_b normal draws falls outside the range of n_f (precision_equality.py's)."""
    import numpy as np

    rng = np.random.default_rng(0)
    f, b = rng.standard_normal((draws, n_f)), rng.standard_normal((draws, n_b)).mean(1)
    return float(((b < f.min(1)) | (b > f.max(1))).mean())


def precision_table(last: int) -> str:
    from scipy.stats import ttest_ind

    runs = precision_runs(last)
    body, same, judged, expected = [], 0, 0, 0.0
    for key, f_rows in runs["fp32"].items():
        b_rows = runs["bf16"].get(key)
        if not b_rows:
            continue
        for col, label in QUANTITIES:
            f = [f_rows[s][col] for s in sorted(f_rows)]
            b = [b_rows[s][col] for s in sorted(b_rows)]
            lo, hi, mean_b = min(f), max(f), statistics.fmean(b)
            ok = lo <= mean_b <= hi
            dist = abs(mean_b - statistics.fmean(f)) / statistics.stdev(f)
            same, judged = same + ok, judged + 1
            expected += chance_outside(len(f), len(b))
            body.append([f"{key[0]} {key[1]}", label, " / ".join(sig(v) for v in f),
                         f"{sig(lo)} - {sig(hi)}", " / ".join(sig(v) for v in b), sig(mean_b),
                         f"{sum(lo <= v <= hi for v in b)} of {len(b)}",
                         f"{float(ttest_ind(b, f, equal_var=False).pvalue):.2f}",
                         "**same**" if ok else f"**differs** ({dist:.1f} sd)"])
    n_f = sum(len(v) for v in runs["fp32"].values())
    n_b = sum(len(v) for v in runs["bf16"].values())
    return (markdown_table(["model", "quantity", "fp32 seeds", "fp32 range", "bf16 seeds", "bf16 mean",
                            "bf16 seeds in range", "Welch p", "verdict"], body)
            + f"\n\n{same} of {judged} rows: bf16 mean inside the fp32 seeds' range ({n_f} fp32 and {n_b} bf16 "
              f"finished runs); {judged - same} differ, where {expected:.1f} would if bf16 and fp32 learned exactly "
              "the same (seeds as normal draws: the range test's own false alarms)")


TABLES[f"{PREC}/final"] = lambda: precision_table(1)
TABLES[f"{PREC}/last5"] = lambda: precision_table(5)


@register(f"{PREC}/speed")
def precision_speed() -> str:
    """images/s of seeds 0-2 (summary.json), per precision and setting; bf16-first is the first bf16
    attempt (the code itself in bf16, commit c63fc7f, beta 1 only)."""
    def ips(sweep: str, run: str) -> float:
        return float(read_json(f"{PREC}/{sweep}/{run}/summary.json")["images_per_s"])
    body = []
    for r in read_csv(f"{PREC}/fp32/results.csv"):
        if r["seed"] != "0":
            continue
        base = r["run"].rsplit("/", 1)[0]
        f = [ips("fp32", f"{base}/seed={s}") for s in range(3)]
        b = [ips("bf16", f"{base}/seed={s}") for s in range(3)]
        first = ([ips("bf16-first", f"{base}/seed={s}") for s in range(3)]
                 if results_path(f"{PREC}/bf16-first/{base}").exists() else [])
        label = f"{'beta-VAE' if r['model'] == 'beta-vae' else 'FactorVAE'} " + \
                (f"beta {r['beta']}" if r["model"] == "beta-vae" else f"gamma {r['gamma']}")
        body.append([label, " / ".join(num(v, 0) for v in f), " / ".join(num(v, 0) for v in b),
                     num(statistics.fmean(b) / statistics.fmean(f), 2),
                     " / ".join(num(v, 0) for v in first) or "-"])
    return markdown_table(["", "fp32 images/s", "bf16 images/s", "bf16 / fp32",
                           "bf16-first images/s (c63fc7f)"], body)
