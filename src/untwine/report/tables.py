"""The report's tables, aggregated over seeds (mean +- sample std), as CSV, Markdown and HTML.

Input: results rows (:func:`untwine.studies.results.collect`), finished runs only.
- :func:`beta_table`: beta-VAE per beta: validation rec, KL, MIG, beta-VAE score.
- :func:`gamma_table`: FactorVAE per gamma: validation rec, KL, TC, D(z_real), D(z_perm), MIG.
- :func:`suite_table`: every model x setting: the metrics that were computed (Locatello et al.).
- :func:`failures_table`: failed / missing runs and why.
"""

from __future__ import annotations

import csv
import html
import io
import math
from dataclasses import dataclass, field
from typing import Any, Sequence

from ..metrics.udr import SCORE_KEYS
from ..naming import format_value

COLUMN_LABELS = {
    "val_rec": "rec (nats)",
    "val_kl": "KL (nats)",
    "val_tc": "TC Gaussian, sampled codes (nats)",
    "val_tc_batch": "TC batch estimate (nats)",
    "val_d_real": "D(z_real)",
    "val_d_perm": "D(z_perm)",
    "mig": "MIG",
    "beta_vae_score": "beta-VAE score",
    "factor_vae_score": "FactorVAE score",
    "dci_disentanglement": "DCI dis.",
    "dci_completeness": "DCI compl.",
    "dci_informativeness": "DCI inf.",
    "sap": "SAP",
    "modularity": "modularity",
    "explicitness": "explicitness",
    "gaussian_tc": "Gaussian TC, mean codes",
    "irs": "IRS",
    "gaussian_wasserstein_correlation_norm": "Wasserstein corr. (norm.)",
    "mutual_info_score": "MI between codes",
    "downstream_lr_100": "LR acc. (100)",
    "downstream_lr_10000": "LR acc. (10k)",
    "downstream_gbt_100": "GBT acc. (100)",
    "downstream_gbt_10000": "GBT acc. (10k)",
    "reduced_downstream_10000": "reduced acc. (10k)",
    "reduced_downstream_10000_others": "reduced acc. others (10k)",
    "fairness_mean": "unfairness (mean)",
    "fairness_max": "unfairness (max)",
    "udr_lasso": "UDR lasso",
    "udr_spearman": "UDR Spearman",
}
SUITE = ["mig", "beta_vae_score", "factor_vae_score", "dci_disentanglement", "dci_completeness",
         "dci_informativeness", "sap", "modularity", "explicitness",
         # IRS, unsupervised, downstream (training sizes of Locatello et al.'s figures), fairness;
         # each shown when computed (results.csv has every size)
         "irs", "gaussian_wasserstein_correlation_norm", "mutual_info_score", "downstream_lr_100",
         "downstream_lr_10000", "downstream_gbt_100", "downstream_gbt_10000", "reduced_downstream_10000",
         "reduced_downstream_10000_others", "fairness_mean", "fairness_max",
         *SCORE_KEYS]  # UDR: across a setting's seeds (report/selection.py)


@dataclass(frozen=True)
class Stat:
    """Mean and sample standard deviation (ddof=1; 0 for one value) over ``n`` seeds."""

    mean: float
    std: float
    n: int

    @classmethod
    def of(cls, values: Sequence[float]) -> "Stat | None":
        v = [float(x) for x in values if x is not None and math.isfinite(float(x))]
        if not v:
            return None
        m = sum(v) / len(v)
        s = math.sqrt(sum((x - m) ** 2 for x in v) / (len(v) - 1)) if len(v) > 1 else 0.0
        return cls(m, s, len(v))

    def text(self) -> str:
        return f"{fmt(self.mean)} ± {fmt(self.std)}" if self.n > 1 else fmt(self.mean)


def fmt(x: float) -> str:
    """Display precision: 3 decimals below 1, 2 below 100, 1 above."""
    a = abs(x)
    return f"{x:.1f}" if a >= 100 else f"{x:.2f}" if a >= 1 else f"{x:.3f}"


@dataclass
class Table:
    """A titled table; cells are strings or :class:`Stat` (rendered ``mean ± std``)."""

    key: str
    title: str
    caption: str
    columns: list[str]
    rows: list[list[Any]] = field(default_factory=list)

    def _text(self, c: Any) -> str:
        return c.text() if isinstance(c, Stat) else ("" if c is None else str(c))

    def to_markdown(self) -> str:
        head = [COLUMN_LABELS.get(c, c) for c in self.columns]
        lines = [f"### {self.title}", "", self.caption, "",
                 "| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
        lines += ["| " + " | ".join(self._text(c).replace("|", "\\|") for c in r) + " |" for r in self.rows]
        return "\n".join(lines) + "\n"

    def to_csv(self) -> str:
        """Numbers as ``<col>_mean, <col>_std, <col>_n`` columns (full precision)."""
        stat_cols = {i for r in self.rows for i, c in enumerate(r) if isinstance(c, Stat)}
        head: list[str] = []
        for i, c in enumerate(self.columns):
            head += [f"{c}_mean", f"{c}_std", f"{c}_n"] if i in stat_cols else [c]
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(head)
        for r in self.rows:
            out: list[Any] = []
            for i, c in enumerate(r):
                if i in stat_cols:
                    out += [f"{c.mean:.6g}", f"{c.std:.6g}", c.n] if isinstance(c, Stat) else ["", "", ""]
                else:
                    out.append(self._text(c))
            w.writerow(out)
        return buf.getvalue()

    def to_html(self) -> str:
        head = "".join(f"<th>{html.escape(COLUMN_LABELS.get(c, c))}</th>" for c in self.columns)
        body = []
        for r in self.rows:
            cells = "".join(
                f'<td class="num">{html.escape(c.text())}</td>' if isinstance(c, Stat)
                else f"<td>{html.escape(self._text(c))}</td>"
                for c in r
            )
            body.append(f"<tr>{cells}</tr>")
        return (f'<table class="data"><thead><tr>{head}</tr></thead>'
                f'<tbody>{"".join(body)}</tbody></table>')


# ----------------------------------------------------------------------------- grouping
def hp_columns(rows: list[dict[str, Any]]) -> list[str]:
    """Hyperparameter columns of results rows (between ``model`` and ``seed``)."""
    if not rows:
        return []
    keys = list(rows[0])
    return keys[keys.index("model") + 1 : keys.index("seed")]


def group(rows: list[dict[str, Any]], hps: Sequence[str]) -> list[tuple[tuple, list[dict[str, Any]]]]:
    """Finished rows grouped by ``(dataset, model, *hps)`` in first-seen (study) order."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in rows:
        if r.get("status") != "finished":
            continue
        groups.setdefault((r["dataset"], r["model"], *(r.get(h) for h in hps)), []).append(r)
    return list(groups.items())


def setting_label(key: tuple, hps: Sequence[str]) -> str:
    parts = [f"{h}={format_value(v)}" for h, v in zip(hps, key[2:]) if v is not None]
    return ", ".join(parts) or "default"


def _present(rows: list[dict[str, Any]], cols: Sequence[str]) -> list[str]:
    return [c for c in cols if any(isinstance(r.get(c), (int, float)) for r in rows)]


def _per_param(rows: list[dict[str, Any]], model: str, param: str, cols: Sequence[str],
               key: str, title: str, caption: str) -> Table | None:
    mine = [r for r in rows if r["model"] == model and r.get("status") == "finished"]
    if not mine:
        return None
    cols = _present(mine, cols)
    t = Table(key, title, caption, ["dataset", param, "seeds"] + cols)
    for (ds, _, v), grp in group(mine, [param]):
        t.rows.append([ds, format_value(v) if v is not None else "default", len(grp)]
                      + [Stat.of([r.get(c) for r in grp]) for c in cols])
    return t


def beta_table(rows: list[dict[str, Any]]) -> Table | None:
    """beta-VAE per beta: validation reconstruction, KL, MIG, beta-VAE score (mean ± std over seeds)."""
    return _per_param(rows, "beta-vae", "beta", ["val_rec", "val_kl", "mig", "beta_vae_score"], "beta",
                      "beta-VAE per beta",
                      "Validation reconstruction error and KL (nats per image), MIG and beta-VAE score; "
                      "mean ± sample std over seeds.")


def gamma_table(rows: list[dict[str, Any]]) -> Table | None:
    """FactorVAE per gamma: validation rec, KL, TC, D(z_real), D(z_perm), MIG."""
    return _per_param(rows, "factor-vae", "gamma",
                      ["val_rec", "val_kl", "val_tc", "val_tc_batch", "val_d_real", "val_d_perm", "gaussian_tc",
                       "mig"], "gamma",
                      "FactorVAE per gamma",
                      "Validation reconstruction, KL and total correlation (nats; TC Gaussian, sampled "
                      "codes: of the covariance of the sampled validation codes, >= 0; TC batch estimate: "
                      "the discriminator's density-ratio estimate, which can be negative; the two agree "
                      "when the discriminator is not fooled), the discriminator's mean probability that "
                      "codes are real for q(z) samples (D(z_real)) and for dimension-wise permuted samples "
                      "(D(z_perm)), the Gaussian TC of the mean codes (disentanglement_lib's unsupervised "
                      "score, over all latents: collapsed latents, whose means barely move, can make it "
                      "large while the active latents are independent), and MIG; mean ± std over seeds.")


def weak_table(rows: list[dict[str, Any]]) -> Table | None:
    """Objectives trained on pairs per (model, k, beta), beside beta-VAE at the same beta (the same
    loss without pairs): MIG, DCI disentanglement, validation rec and KL (mean ± std over seeds)."""
    from .. import objectives

    def pairs(model: str) -> bool:
        try:
            return objectives.get(model).pairs
        except ValueError:  # a model this version does not know (an old results.csv)
            return False

    fin = [r for r in rows if r.get("status") == "finished"]
    weak = [r for r in fin if pairs(r["model"])]
    if not weak:
        return None
    cols = _present(weak, ["mig", "dci_disentanglement", "val_rec", "val_kl"])
    t = Table("weak", "Weak supervision: pairs against the same loss without pairs",
              "Objectives trained on pairs that share all but k factors (k 0: k uniform over 1..K-1 per "
              "pair), per setting; the last column is beta-VAE at the same beta in this study, i.e. the "
              "same loss on single images. Mean ± std over seeds.",
              ["dataset", "model", "k", "beta", "seeds"] + cols + ["MIG without pairs (beta-vae)"])
    for (ds, model, k, beta), grp in group(weak, ["k", "beta"]):
        alone = [r.get("mig") for r in fin if r["model"] == "beta-vae" and r["dataset"] == ds and r.get("beta") == beta]
        t.rows.append([ds, model, format_value(k) if k is not None else "default",
                       format_value(beta) if beta is not None else "default", len(grp)]
                      + [Stat.of([r.get(c) for r in grp]) for c in cols] + [Stat.of(alone) or "not in study"])
    return t


def suite_table(rows: list[dict[str, Any]]) -> Table | None:
    """Every dataset x model x setting with every metric computed (mean ± std over seeds)."""
    hps = hp_columns(rows)
    fin = [r for r in rows if r.get("status") == "finished"]
    cols = _present(fin, SUITE)
    if not fin or not cols:
        return None
    t = Table("suite", "Metric suite per model and setting",
              "Every metric that was computed, mean ± std over seeds (cf. Locatello et al., 2019).",
              ["dataset", "model", "setting", "seeds"] + cols)
    for key, grp in group(fin, hps):
        t.rows.append([key[0], key[1], setting_label(key, hps), len(grp)]
                      + [Stat.of([r.get(c) for r in grp]) for c in cols])
    return t


def failures_table(rows: list[dict[str, Any]]) -> Table | None:
    bad = [r for r in rows if r.get("status") != "finished"]
    if not bad:
        return None
    t = Table("failures", "Runs that did not finish",
              "failed: the run raised (NaN loss, error) and was recorded in <run>/failed.json; "
              "missing/incomplete: not run yet or interrupted (re-run the sweep to finish them).",
              ["run", "status", "error"])
    t.rows = [[r["run"], r["status"], r.get("error", "")] for r in bad]
    return t


def all_tables(rows: list[dict[str, Any]]) -> list[Table]:
    return [t for t in (beta_table(rows), gamma_table(rows), weak_table(rows), suite_table(rows),
                                     failures_table(rows)) if t]
