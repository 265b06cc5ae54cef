"""Unsupervised model selection in the report: UDR per seed beside MIG, and whether UDR's pick among
a setting's seeds is MIG's pick (Duan et al. 2020 select a seed by UDR without ground truth; MIG
needs the factors). Input: results rows with ``udr_lasso``/``udr_spearman`` (see
:mod:`untwine.studies.udr`).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

from . import tables as T
from ..metrics.udr import SCORE_KEYS
from .tables import Table, fmt

VARIANTS = tuple((k, T.COLUMN_LABELS[k]) for k in SCORE_KEYS)  # (column, label) of each UDR score
KEEP = SCORE_KEYS[0]  # the lasso UDR (dlib's default): the score that keeps a seed, and marks a seed as scored


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and math.isfinite(float(v)) else None


TIE = -1  # several seeds share the highest value: no pick (e.g. the Spearman UDR of two seeds)


def _pick(grp: list[dict[str, Any]], col: str) -> int | None:
    """Seed with the highest ``col``, :data:`TIE` when several share it, ``None`` unless every
    seed has it."""
    vals = [_num(r.get(col)) for r in grp]
    if len(grp) < 2 or any(v is None for v in vals):
        return None
    best = max(vals)
    top = [r for r, v in zip(grp, vals) if v == best]
    return int(top[0]["seed"]) if len(top) == 1 else TIE


def _settings(rows: list[dict[str, Any]]) -> list[tuple[tuple, list[dict[str, Any]]]]:
    """Finished settings whose seeds have UDR (>= 2 seeds), study order, seeds sorted."""
    hps = T.hp_columns(rows)
    out = []
    for key, grp in T.group(rows, hps):
        mine = sorted((r for r in grp if _num(r.get(KEEP)) is not None), key=lambda r: r["seed"])
        if len(mine) >= 2:
            out.append((key, mine))
    return out


def udr_table(rows: list[dict[str, Any]]) -> Table | None:
    """One row per seed of each setting with UDR: MIG, UDR (lasso, Spearman), which scores pick it."""
    settings = _settings(rows)
    if not settings:
        return None
    hps = T.hp_columns(rows)
    t = Table("udr", "UDR per seed beside MIG",
              "UDR (Duan et al. 2020; disentanglement_lib's protocol): how well a seed's active latents "
              "match, one to one, those of the setting's other seeds (median over them; lasso: |Lasso "
              "coefficients| between standardised codes, at most ~0.9 for identical models because of "
              "the Lasso's shrinkage; Spearman: |rank correlations|). It needs no factors; MIG does. "
              "'picked by' names the scores whose highest value among the setting's seeds is this seed "
              "(none on a tie: the Spearman UDR of exactly two seeds is symmetric, so always tied).",
              ["dataset", "model", "setting", "seed", "mig", *SCORE_KEYS, "picked by"])
    for key, grp in settings:
        picks = {label: _pick(grp, col) for col, label in (("mig", "MIG"),) + VARIANTS}
        for r in grp:
            scores = [_num(r.get(c)) for c in ("mig", *SCORE_KEYS)]
            t.rows.append([key[0], key[1], T.setting_label(key, hps), r["seed"]]
                          + ["" if v is None else fmt(v) for v in scores]
                          + [", ".join(k for k, s in picks.items() if s == r["seed"])])
    return t


def agreement(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """How often UDR's pick is MIG's: ``{"settings": n, "chance": expected k of a random pick (sum
    of 1 / seeds)}`` and ``k`` per UDR score (``udr_lasso``, ``udr_spearman``: ``SCORE_KEYS``) over the settings where every seed
    has MIG and UDR (and MIG's highest value is one seed's); ``None`` if there is none. A tie in
    UDR counts as no agreement."""
    both = [grp for _, grp in _settings(rows) if _pick(grp, "mig") not in (None, TIE)]
    if not both:
        return None
    out: dict[str, Any] = {"settings": len(both), "chance": sum(1 / len(g) for g in both)}
    for col, _ in VARIANTS:
        out[col] = sum(_pick(g, col) == _pick(g, "mig") for g in both)
    return out


def picks_table(rows: list[dict[str, Any]]) -> Table | None:
    """Per setting: the seed MIG picks and the seeds UDR picks; last row: how often they agree."""
    settings = [(k, g) for k, g in _settings(rows) if _pick(g, "mig") not in (None, TIE)]
    agree = agreement(rows)
    if not settings or agree is None:
        return None
    hps = T.hp_columns(rows)
    t = Table("udr_picks", "Does UDR pick MIG's best seed?",
              "Per setting: the seed with the highest MIG, and the seed with the highest UDR (either "
              "variant), which one would pick without ground truth ('tie': several seeds share the "
              "highest UDR, no pick, counted as no agreement). Last row: in how many settings the two "
              f"agree; a random seed would agree in {agree['chance']:.2f} of {agree['settings']} on "
              "average.",
              ["dataset", "model", "setting", "seeds", "MIG's pick"] + [f"{label}'s pick" for _, label in VARIANTS])
    for key, grp in settings:
        t.rows.append([key[0], key[1], T.setting_label(key, hps), len(grp)]
                      + [_text(_pick(grp, c)) for c in ("mig", *SCORE_KEYS)])
    n = agree["settings"]
    t.rows.append(["all", "", f"{n} setting{'s' if n != 1 else ''}", "", ""]
                  + [f"{agree[c]} of {n} = MIG's" for c in SCORE_KEYS])
    return t


def _text(seed: int | None) -> str:
    return "" if seed is None else "tie" if seed == TIE else f"seed {seed}"


def headline(rows: list[dict[str, Any]]) -> str | None:
    """One sentence for the report's headline: how often UDR's pick among seeds is MIG's."""
    a = agreement(rows)
    if a is None:
        return None
    n = a["settings"]
    counts = [f"{a[c]} of {n}" + (f" setting{'s' if n != 1 else ''}" if i == 0 else "")
              + f" ({label.removeprefix('UDR ')})" for i, (c, label) in enumerate(VARIANTS)]
    return (f"UDR's pick among a setting's seeds (no factors needed) is MIG's pick in {' and '.join(counts)}; "
            f"a random seed: {a['chance']:.2f} of {n} on average.")


def kept(rows: list[dict[str, Any]], col: str = KEEP) -> list[dict[str, Any]]:
    """The row each setting keeps by ``col`` (its highest value among the setting's seeds; none on
    a tie), study order."""
    out = []
    for _, grp in _settings(rows):
        seed = _pick(grp, col)
        out += [r for r in grp if seed not in (None, TIE) and r["seed"] == seed]
    return out


def kept_sentence(rows: list[dict[str, Any]], col: str = KEEP, references: Sequence[str] = ()) -> str | None:
    """One sentence naming the run each setting keeps by ``col`` (no factors used) and, as a check,
    its MIG; ``None`` when no setting has a pick."""
    from .shipped import verdict

    picks = kept(rows, col)
    if not picks:
        return None
    label = dict(VARIANTS)[col]
    pool = f", with the shipped {', '.join(references)} in the pool as a reference" if references else ""
    runs = "; ".join(
        r["run"] + ("" if (m := _num(r.get("mig"))) is None else f" (MIG {fmt(m)}, disentangled: {verdict(m)})")
        for r in picks)
    return f"Kept without labels (the highest {label} among each setting's seeds{pool}): {runs}."


def selection_tables(rows: list[dict[str, Any]]) -> list[Table]:
    return [t for t in (udr_table(rows), picks_table(rows)) if t]
