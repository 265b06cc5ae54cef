"""Published numbers beside ours: a study's ``[[reference]]`` tables and ``[[claim]]`` scalars.

For each reference table: one row per hyperparameter value (theirs and ours), per column ours
(mean ± sample std over seeds), theirs and ours − theirs; one line on the trends (Spearman rank
correlation of each column, and of MIG, with the hyperparameter, in ours and in theirs); notes on
units and protocol where they may differ. :func:`comparisons_markdown` renders all of it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

from ..naming import format_value
from ..objectives.tc import REPORTED_TC
from ..studies.references import Claim, Reference
from ..studies.study import Study
from .tables import COLUMN_LABELS, Stat, Table, fmt

# What our results.csv columns measure (validation terms: on the run's held-out images).
OUR_UNITS = {
    "val_rec": "Bernoulli negative log-likelihood summed over all pixels, nats per image",
    "val_kl": "KL(q(z|x) || N(0, I)) summed over the latents, nats per image",
    "val_d_real": "discriminator's mean probability 'real' for codes z ~ q(z)",
    "val_d_perm": "discriminator's mean probability 'real' for dimension-wise permuted codes",
    "mig": "MIG, disentanglement_lib protocol (mean codes, 20-bin histograms), in [0, 1]",
}
BATCH_TC_UNITS = {
    "factor-vae": "the discriminator's density-ratio estimate mean(logit_real - logit_perm) over "
                  "validation batches, nats (an estimate; it can be negative)",
}
BATCH_TC_DEFAULT = ("the objective's minibatch estimate of TC (stratified, Chen et al. 2018) averaged over "
                    "validation batches of batch_size codes, nats; biased low at batch 64 and can be negative "
                    "(benchmarks/bench_tc_bias.py)")
# Columns whose trend is reported for ours even when the publication has no such column.
ALWAYS_TREND = ("mig",)


def our_units(column: str, model: str) -> str:
    """What our ``column`` (a results.csv column) measures for ``model``."""
    if column == "val_tc":
        return REPORTED_TC
    if column == "val_tc_batch":
        return BATCH_TC_UNITS.get(model, BATCH_TC_DEFAULT)
    return OUR_UNITS.get(column, column)


@dataclass
class Comparison:
    """One reference table beside ours: the table, its trend line and its notes."""

    reference: Reference
    table: Table
    trend: str
    notes: list[str] = field(default_factory=list)

    def to_markdown(self) -> str:
        lines = [self.table.to_markdown(), f"**Trends.** {self.trend}", ""]
        lines += [f"- {n}" for n in self.notes]
        return "\n".join(lines) + "\n"


def _ours(rows: Sequence[dict[str, Any]], dataset: str, model: str, hparam: str) -> dict[float, list[dict]]:
    """Finished rows of ``dataset``/``model`` grouped by their value of ``hparam``."""
    out: dict[float, list[dict]] = {}
    for r in rows:
        if r.get("status") == "finished" and r["dataset"] == dataset and r["model"] == model \
                and isinstance(r.get(hparam), (int, float)):
            out.setdefault(float(r[hparam]), []).append(r)
    return out


def spearman(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Spearman rank correlation of paired finite values; ``None`` with < 3 pairs or a constant side."""
    pairs = [(a, b) for a, b in zip(x, y) if a is not None and b is not None and math.isfinite(a) and math.isfinite(b)]
    if len(pairs) < 3 or len({a for a, _ in pairs}) < 2 or len({b for _, b in pairs}) < 2:
        return None
    from scipy.stats import spearmanr

    return float(spearmanr([a for a, _ in pairs], [b for _, b in pairs]).statistic)


def _rho(v: float | None) -> str:
    return "n/a" if v is None else f"{v:+.2f}"


def compare(ref: Reference, rows: Sequence[dict[str, Any]], study: Study | None = None) -> Comparison:
    """``ref`` beside the finished results ``rows`` of its dataset and model."""
    ours = _ours(rows, ref.dataset, ref.model, ref.hparam)
    values = sorted(set(ref.rows) | set(ours))
    cols = [ref.hparam, "seeds"]
    for c in ref.columns:
        cols += [f"{c.name}: ours", f"{c.name}: theirs", f"{c.name}: ours − theirs"]
    t = Table(f"reference_{ref.name}", f"{ref.title} — published vs ours",
              f"{ref.citation}. {ref.dataset}, {ref.model}, per {ref.hparam}. Ours: mean ± sample std over "
              f"seeds; theirs: as published; a blank cell: no such run or no such published value.", cols)
    for v in values:
        grp = ours.get(v, [])
        row: list[Any] = [format_value(v), len(grp)]
        theirs = ref.rows.get(v)
        for j, c in enumerate(ref.columns):
            s = Stat.of([r.get(c.ours) for r in grp])
            th = theirs[j] if theirs is not None else None
            row += [s, "" if th is None else fmt(th), "" if s is None or th is None else f"{s.mean - th:+.3g}"]
        t.rows.append(row)

    parts = []
    trend_cols = [(c.name, c.ours, j) for j, c in enumerate(ref.columns)]
    trend_cols += [(COLUMN_LABELS.get(c, c), c, None) for c in ALWAYS_TREND if c not in {x.ours for x in ref.columns}]
    for label, ours_col, j in trend_cols:
        mine = [(v, Stat.of([r.get(ours_col) for r in ours[v]])) for v in sorted(ours)]
        mine = [(v, s.mean) for v, s in mine if s is not None]
        rho_ours = spearman([v for v, _ in mine], [m for _, m in mine])
        rho_theirs = None if j is None else spearman(list(ref.rows), [vals[j] for vals in ref.rows.values()])
        if rho_ours is None and rho_theirs is None:
            continue
        theirs_text = "not published" if j is None else _rho(rho_theirs)
        parts.append(f"{label} ours {_rho(rho_ours)}, theirs {theirs_text}")
    n_ours = sum(1 for v in ours if ours[v])
    trend = (f"Spearman rank correlation with {ref.hparam} (ours over {n_ours} setting"
             f"{'s' if n_ours != 1 else ''}, theirs over {len(ref.rows)}): " + "; ".join(parts) + "."
             if parts else f"No trend: fewer than 3 {ref.hparam} values with numbers on either side.")

    notes = [f"Units — {c.name}: ours = {our_units(c.ours, ref.model)}; theirs = {c.units or 'not stated'}."
             for c in ref.columns]
    train = study.train if study is not None else {}
    ours_protocol = ", ".join(f"{k} {train[k]}" for k in ("steps", "batch_size", "lr", "latents", "precision")
                              if k in train) or "see the study file"
    notes.append(f"Protocol — ours: {ours_protocol}; theirs: {ref.protocol or 'not stated'}. Where theirs is "
                 "not stated, differences in level may come from training length, learning rate or units, "
                 "not from the method; the trends are the comparable part.")
    missing = [format_value(v) for v in ref.rows if v not in ours]
    if missing:
        notes.append(f"No finished runs of ours for {ref.hparam} = {', '.join(missing)}.")
    notes += list(ref.notes)
    return Comparison(ref, t, trend, notes)


def trend_figure(comp: Comparison, rows: Sequence[dict[str, Any]]) -> Any:
    """One panel per column of the reference table (and MIG): ours (mean ± std over seeds, solid)
    and theirs (dashed) against the hyperparameter (log2 axis when all values are > 0); ``None``
    when neither side has a number. Returns a matplotlib ``Figure``."""
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ref = comp.reference
    ours = _ours(rows, ref.dataset, ref.model, ref.hparam)
    cols = [(c.name, c.ours, j) for j, c in enumerate(ref.columns)]
    cols += [(COLUMN_LABELS.get(c, c), c, None) for c in ALWAYS_TREND if c not in {x.ours for x in ref.columns}]
    panels = []
    for label, ours_col, j in cols:
        mine = [(v, Stat.of([r.get(ours_col) for r in ours[v]])) for v in sorted(ours)]
        mine = [(v, st) for v, st in mine if st is not None]
        theirs = [] if j is None else [(v, vals[j]) for v, vals in sorted(ref.rows.items()) if vals[j] is not None]
        if mine or theirs:
            panels.append((label, mine, theirs))
    if not panels:
        return None
    ncols = min(3, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.1 * nrows), squeeze=False)
    values = [v for _, m, t in panels for v, _ in (*m, *t)]
    for ax, (label, mine, theirs) in zip(axes.flat, panels):
        if mine:
            ax.errorbar([v for v, _ in mine], [st.mean for _, st in mine],
                        yerr=[st.std if math.isfinite(st.std) else 0.0 for _, st in mine],
                        marker="o", capsize=3, label="ours")
        if theirs:
            ax.plot([v for v, _ in theirs], [t for _, t in theirs], "--x", color="C3", label="theirs (published)")
        if values and min(values) > 0:
            ax.set_xscale("log", base=2)
            ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: format_value(v)))
        ax.set_xlabel(ref.hparam)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.suptitle(f"{ref.title}: ours vs published ({ref.dataset}, {ref.model})")
    fig.tight_layout()
    return fig


def claim_line(claim: Claim, rows: Sequence[dict[str, Any]]) -> str:
    """One line: the published scalar and ours (``statistic`` over settings of the seed mean)."""
    groups: dict[tuple, list[dict]] = {}
    hps = _hp_columns(rows)
    for r in rows:
        if r.get("status") == "finished" and r["dataset"] == claim.dataset and (not claim.model or r["model"] == claim.model):
            groups.setdefault((r["model"], *(r.get(h) for h in hps)), []).append(r)
    stats = [(k, Stat.of([r.get(claim.metric) for r in g])) for k, g in groups.items()]
    stats = [(k, s) for k, s in stats if s is not None]
    scope = f"{claim.dataset}, {claim.model or 'any model'}"
    head = f"{claim.title} ({scope}): theirs {fmt(claim.value)}"
    if not stats:
        return f"{head}; ours: no finished run with {claim.metric}. Source: {claim.citation}."
    pick = max if claim.statistic == "max" else min
    key, s = pick(stats, key=lambda ks: ks[1].mean)
    setting = ", ".join(f"{h}={format_value(v)}" for h, v in zip(hps, key[1:]) if v is not None)
    reached = s.mean >= claim.value if claim.statistic == "max" else s.mean <= claim.value
    return (f"{head}; ours {s.text()} ({key[0]}{', ' + setting if setting else ''}, {s.n} seed"
            f"{'s' if s.n != 1 else ''}) — {'reached' if reached else 'not reached'}"
            f" ({s.mean - claim.value:+.3g}). Source: {claim.citation}.")


def _hp_columns(rows: Sequence[dict[str, Any]]) -> list[str]:
    if not rows:
        return []
    keys = list(rows[0])
    return keys[keys.index("model") + 1: keys.index("seed")]


def comparisons(study: Study, rows: Sequence[dict[str, Any]]) -> tuple[list[Comparison], list[str]]:
    """Every reference table of ``study`` beside ``rows``, and one line per claim."""
    return [compare(r, rows, study) for r in study.references], [claim_line(c, rows) for c in study.claims]


def comparisons_markdown(study: Study, rows: Sequence[dict[str, Any]]) -> str:
    """The published numbers beside ours as Markdown (tables, trend lines, notes, claims)."""
    comps, claims = comparisons(study, rows)
    if not comps and not claims:
        return (f"# {study.name}: published numbers beside ours\n\nThe study has no [[reference]] or [[claim]] "
                "entries (see docs/studies.md).\n")
    out = [f"# {study.name}: published numbers beside ours", ""]
    if claims:
        out += ["## Claims", ""] + [f"- {c}" for c in claims] + [""]
    for c in comps:
        out += [c.to_markdown()]
    return "\n".join(out)
