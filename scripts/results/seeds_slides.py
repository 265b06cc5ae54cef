"""docs/results/seeds_slides_cpu and seeds_slides_cpu_fvae: the published numbers beside ours
(published.md's tables, as `untwine report --markdown` writes them), and each folder's own tables."""

from __future__ import annotations

import math
import statistics
from typing import Any

from .core import TABLES, markdown_table, num, read_csv, read_toml, register, sig


# ================================================================================ published numbers beside ours
# The tables `untwine report --markdown` writes into published.md (report/reference.py), rebuilt
# from the folder's study.toml ([[reference]], [[claim]]) and results.csv.
def hp_text(v: float) -> str:
    """A hyperparameter value as in folder names (studies.study.format_value): 4, 0.5, 1e-05."""
    f = float(v)
    return str(int(f)) if f.is_integer() else repr(f)


def finite(values: list[Any]) -> list[float]:
    return [float(v) for v in values if v not in (None, "") and math.isfinite(float(v))]


def stat_text(values: list[float]) -> str:
    """``mean ± sample std`` (one value: itself), in the report's display precision."""
    m = statistics.fmean(values)
    return f"{sig(m)} ± {sig(statistics.stdev(values))}" if len(values) > 1 else sig(m)


def spearman(x: list[float], y: list[float]) -> float | None:
    """Spearman's rank correlation (average ranks for ties); None with < 3 pairs or a constant side."""
    def ranks(v: list[float]) -> list[float]:
        order = sorted(range(len(v)), key=v.__getitem__)
        r = [0.0] * len(v)
        i = 0
        while i < len(v):
            j = i
            while j + 1 < len(v) and v[order[j + 1]] == v[order[i]]:
                j += 1
            for k in range(i, j + 1):
                r[order[k]] = (i + j) / 2 + 1
            i = j + 1
        return r
    if len(x) < 3 or len(set(x)) < 2 or len(set(y)) < 2:
        return None
    return statistics.correlation(ranks(x), ranks(y))


def rho(v: float | None) -> str:
    return "n/a" if v is None else f"{v:+.2f}"


def reference_table(folder: str, name: str) -> str:
    """One [[reference]] of ``folder``/study.toml beside results.csv: the table and its trend line."""
    ref = next(r for r in read_toml(f"{folder}/study.toml")["reference"] if r["name"] == name)
    hp = ref["hparam"]
    theirs = {float(row[0]): row[1:] for row in ref["rows"]}
    ours: dict[float, list[dict]] = {}
    for r in read_csv(f"{folder}/results.csv"):
        if r["status"] == "finished" and r["dataset"] == ref["dataset"] and r["model"] == ref["model"] and r[hp]:
            ours.setdefault(float(r[hp]), []).append(r)
    cols = ref["columns"]
    header = [hp, "seeds"] + [f"{c['name']}: {side}" for c in cols for side in ("ours", "theirs", "ours − theirs")]
    body = []
    for v in sorted(set(theirs) | set(ours)):
        row = [hp_text(v), str(len(ours.get(v, [])))]
        for j, c in enumerate(cols):
            vals = finite([r[c["ours"]] for r in ours.get(v, [])])
            th = theirs[v][j] if v in theirs else None
            row += [stat_text(vals) if vals else "", "" if th is None else sig(th),
                    "" if not vals or th is None else f"{statistics.fmean(vals) - th:+.3g}"]
        body.append(row)
    parts = []
    trend = [(c["name"], c["ours"], j) for j, c in enumerate(cols)]
    trend += [("MIG", "mig", None)] if "mig" not in {c["ours"] for c in cols} else []
    for label, col, j in trend:
        mine = [(v, finite([r[col] for r in ours[v]])) for v in sorted(ours)]
        mine = [(v, statistics.fmean(x)) for v, x in mine if x]
        r_ours = spearman([v for v, _ in mine], [m for _, m in mine])
        r_theirs = None if j is None else spearman(list(theirs), [t[j] for t in theirs.values()])
        if r_ours is None and r_theirs is None:
            continue
        parts.append(f"{label} ours {rho(r_ours)}, theirs {'not published' if j is None else rho(r_theirs)}")
    n = sum(1 for v in ours if ours[v])
    line = (f"**Trends.** Spearman rank correlation with {hp} (ours over {n} setting{'s' if n != 1 else ''}, "
            f"theirs over {len(theirs)}): " + "; ".join(parts) + ".")
    return markdown_table(header, body) + "\n\n" + line


def claim_lines(folder: str) -> str:
    """The [[claim]] lines of ``folder``/study.toml: the published scalar and our best setting."""
    rows = read_csv(f"{folder}/results.csv")
    head = list(rows[0])
    hps = head[head.index("model") + 1: head.index("seed")]
    out = []
    for c in read_toml(f"{folder}/study.toml").get("claim", []):
        groups: dict[tuple, list[float]] = {}
        for r in rows:
            if r["status"] == "finished" and r["dataset"] == c["dataset"] and (not c.get("model") or r["model"] == c["model"]):
                groups.setdefault((r["model"], *(r[h] for h in hps)), []).append(r[c["metric"]])
        stats = {k: finite(v) for k, v in groups.items() if finite(v)}
        pick = max if c.get("statistic", "max") == "max" else min
        k = pick(stats, key=lambda k: statistics.fmean(stats[k]))
        m, n = statistics.fmean(stats[k]), len(stats[k])
        setting = ", ".join(f"{h}={hp_text(v)}" for h, v in zip(hps, k[1:]) if v != "")
        reached = m >= c["value"] if pick is max else m <= c["value"]
        out.append(f"- {c['title']} ({c['dataset']}, {c.get('model') or 'any model'}): theirs {sig(c['value'])}; "
                   f"ours {stat_text(stats[k])} ({k[0]}{', ' + setting if setting else ''}, {n} seed"
                   f"{'s' if n != 1 else ''}) — {'reached' if reached else 'not reached'} ({m - c['value']:+.3g}). "
                   f"Source: {c['citation']}.")
    return "\n".join(out)


for _folder, _refs in (("seeds_slides_cpu", ("slides-01", "slides-02")), ("seeds_slides_cpu_fvae", ("slides-02",))):
    TABLES[f"{_folder}/claims"] = (lambda f: lambda: claim_lines(f))(_folder)
    for _ref in _refs:
        TABLES[f"{_folder}/reference-{_ref}"] = (lambda f, r: lambda: reference_table(f, r))(_folder, _ref)


# ================================================================================ seeds_slides_cpu(_fvae)
SLIDES = "seeds_slides_cpu"


def by_hparam(folder: str, model: str, hp: str) -> dict[float, dict]:
    """The one-seed rows of ``model`` in ``folder``/results.csv keyed by their ``hp`` value."""
    return {float(r[hp]): r for r in read_csv(f"{folder}/results.csv") if r["model"] == model and r["status"] == "finished"}


@register(f"{SLIDES}/trends")
def slides_trends() -> str:
    """Spearman rank correlation of each published column with beta / gamma, ours and the slides'
    (as in published.md), and the discriminator's D(z_real) - D(z_perm) per gamma."""
    study = read_toml(f"{SLIDES}/study.toml")
    body = []
    for ref in study["reference"]:
        hp = ref["hparam"]
        ours = by_hparam(SLIDES, ref["model"], hp)
        theirs = {float(r[0]): r[1:] for r in ref["rows"]}
        label = "beta-VAE" if ref["model"] == "beta-vae" else "FactorVAE"
        for j, c in enumerate(ref["columns"]):
            vs = sorted(ours)
            name = c["name"] + (" (discriminator estimate)" if c["name"] == "TC" else "")
            body.append([f"{label} {name} vs {hp}", rho(spearman(vs, [float(ours[v][c['ours']]) for v in vs])),
                         rho(spearman(list(theirs), [t[j] for t in theirs.values()]))])
    fv = by_hparam(SLIDES, "factor-vae", "gamma")
    gs = sorted(fv)
    diff = [float(fv[g]["val_d_real"]) - float(fv[g]["val_d_perm"]) for g in gs]
    body.append(["FactorVAE D(z_real) - D(z_perm) vs gamma",
                 f"{rho(spearman(gs, diff))} ({', '.join(num(d, 2) for d in diff)} at gamma {', '.join(hp_text(g) for g in gs)})",
                 "—"])
    return markdown_table(["quantity", "ours", "slides"], body)


@register(f"{SLIDES}/large-beta")
def slides_large_beta() -> str:
    """beta-VAE's levels at beta >= 16, ours (results.csv) and the slides' (study.toml)."""
    ref = next(r for r in read_toml(f"{SLIDES}/study.toml")["reference"] if r["name"] == "slides-01")
    ours = by_hparam(SLIDES, "beta-vae", "beta")
    body = [[hp_text(row[0]), f"{sig(ours[float(row[0])]['val_rec'])} / {sig(ours[float(row[0])]['val_kl'])}",
             f"{sig(row[1])} / {sig(row[2])}"] for row in ref["rows"] if row[0] >= 16]
    return markdown_table(["beta", "ours (rec / KL)", "slides (rec / KL)"], body)


@register(f"{SLIDES}/mig")
def slides_mig() -> str:
    """MIG of each setting (one seed): results.csv; d_lr 1e-3 from seeds_slides_cpu_fvae."""
    body = []
    for folder, model, hp, label in ((SLIDES, "beta-vae", "beta", "beta-VAE"),
                                     (SLIDES, "factor-vae", "gamma", "FactorVAE, d_lr 1e-4"),
                                     ("seeds_slides_cpu_fvae", "factor-vae", "gamma", "FactorVAE, d_lr = lr (`../seeds_slides_cpu_fvae/`)")):
        rows = by_hparam(folder, model, hp)
        best = max(rows, key=lambda v: float(rows[v]["mig"]))
        body.append([label, hp, *[f"**{num(rows[v]['mig'])}**" if v == best else num(rows[v]["mig"]) for v in sorted(rows)]])
    values = sorted(by_hparam(SLIDES, "beta-vae", "beta"))
    return markdown_table(["model", "hyperparameter", *[hp_text(v) for v in values]], body)


@register("seeds_slides_cpu_fvae/results")
def fvae_results() -> str:
    """The gamma sweep with d_lr = lr beside the old d_lr 1e-4 run's MIG: both results.csv."""
    old = by_hparam(SLIDES, "factor-vae", "gamma")
    new = by_hparam("seeds_slides_cpu_fvae", "factor-vae", "gamma")
    best = max(new, key=lambda g: float(new[g]["mig"]))
    body = [[hp_text(g), num(old[g]["mig"]), f"**{num(new[g]['mig'])}**" if g == best else num(new[g]["mig"]),
             sig(new[g]["val_tc"]), sig(new[g]["val_tc_batch"]), sig(new[g]["val_d_real"]), sig(new[g]["val_d_perm"]),
             sig(new[g]["gaussian_tc"])] for g in sorted(new)]
    higher = sum(float(new[g]["mig"]) > float(old[g]["mig"]) for g in new)
    return (f"MIG higher than with the old d_lr in {higher} of {len(new)} settings; best {num(new[best]['mig'])} "
            f"(gamma {hp_text(best)}), against the old run's best {num(max(float(r['mig']) for r in old.values()))}.\n\n"
            + markdown_table(["gamma", "MIG, d_lr 1e-4 (old)", "**MIG, d_lr = lr**", "TC Gaussian, sampled codes",
                              "TC, discriminator's estimate", "D(z_real)", "D(z_perm)", "Gaussian TC, mean codes"], body))
