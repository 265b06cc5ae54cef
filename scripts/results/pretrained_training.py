"""docs/results/pretrained_training: the shipped models' `untwine evaluate` numbers and MIG along
the beta-TCVAE run."""

from __future__ import annotations

import json

from .core import FACTORS, MBF, SHIPPED_DIR, markdown_table, num, read_csv, register, results_path, thousands
from .demo_recipe import DEMO

PT = "pretrained_training"


@register(f"{PT}/evaluate")
def shipped_models() -> str:
    """`untwine evaluate` (standard sizes) of the shipped models as they are now, and of
    beta-tcvae-dsprites as first shipped at 20,000 steps (shipped_20k/: its metrics.json and
    summary.json from commit 5722e1b)."""
    rows = [("`beta-tcvae-dsprites` as first shipped (commit 5722e1b)", results_path(f"{PT}/shipped_20k"))]
    rows += [(f"`{d.name}`", d) for d in sorted(SHIPPED_DIR.iterdir()) if (d / "metrics.json").is_file()]
    body = []
    for label, d in rows:
        m, s = json.loads((d / "metrics.json").read_text()), json.loads((d / "summary.json").read_text())
        hp = ", ".join(f"{k} {v:g}" for k, v in sorted(s["config"]["hparams"].items()) if k != "stratified")
        body.append([label, f"{s['config']['model']}" + (f" ({hp})" if hp else ""), s["config"]["precision"],
                     thousands(s["steps"]), num(m["mig"]), num(m["beta_vae_score"]), num(m["factor_vae_score"]),
                     num(m["dci_disentanglement"]), str(m["factor_vae_active_dims"])])
    return markdown_table(["model", "objective", "precision", "steps", "MIG", "beta-VAE score", "FactorVAE score",
                           "DCI disentanglement", "active latents (FactorVAE score's)"], body)


@register(f"{PT}/mig-by-step")
def pt_mig_by_step() -> str:
    """mig_by_factor.py along the beta-TCVAE run: the demo recipe's rows of
    demo_recipe/mig_by_step.csv and this folder's mig_by_factor.csv (the committed checkpoint)."""
    rows = [r for r in read_csv(f"{DEMO}/mig_by_step.csv") if r["run"].startswith("b20-lr1e-3") and
            not r["run"].endswith("-s1")]
    rows += [dict(r, run="this folder's checkpoint", tool="mig_by_factor") for r in read_csv(f"{PT}/mig_by_factor.csv")]
    body = [[thousands(r["step"]), num(r["mig"]), *[num(r[f]) for f in FACTORS],
             "`demo_recipe/mig_by_step.csv`" if r["run"].startswith("b20") else "`mig_by_factor.csv`"] for r in rows]
    return markdown_table(["step", f"MIG ({MBF})", *FACTORS, "file"], body)
