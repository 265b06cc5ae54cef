"""docs/results/factor_vae_fix: the two FactorVAE runs beside scripts/code_dependence.py's numbers."""

from __future__ import annotations

import re

from .core import markdown_table, num, read_csv, register, results_path, sig

FIX = "factor_vae_fix"


def code_dependence() -> dict[str, dict]:
    """scripts/code_dependence.py's printout (code_dependence.txt), one dict per run it read."""
    out: dict[str, dict] = {}
    run = None
    for line in results_path(f"{FIX}/code_dependence.txt").read_text().splitlines():
        if line and not line.startswith(" "):
            run = line
            out[run] = {"shares": []}
        elif m := re.search(r"active: (\d+)", line):
            out[run]["active"] = m.group(1)
        elif m := re.search(r"all latents ([\d.]+) nats, active only ([\d.]+); largest NMI between two active "
                            r"latents ([\d.]+)", line):
            out[run].update(tc_all=m.group(1), tc_active=m.group(2), nmi=m.group(3))
        elif m := re.match(r"\s+MIG ([\d.]+);", line):
            out[run]["mig"] = m.group(1)
        elif re.fullmatch(r"\s+[\d.\s]+", line) and "[" not in line:
            out[run]["shares"] += line.split()
    return out


@register(f"{FIX}/dependence")
def fix_dependence() -> str:
    """The two FactorVAE runs (sweep/results.csv) beside code_dependence.py's numbers for them, the
    shipped beta-TCVAE and the failed beta-TCVAE draw."""
    dep = code_dependence()
    body = []
    for r in read_csv(f"{FIX}/sweep/results.csv"):
        d = dep["sweep/" + r["run"]]
        body.append([f"FactorVAE, d_lr {r['d_lr']}", sig(r["val_rec"]), sig(r["val_kl"]), num(r["val_tc_batch"], 2),
                     sig(r["val_tc"]), f"{sig(r['val_d_real'])} / {sig(r['val_d_perm'])}", sig(r["gaussian_tc"]),
                     f"{d['tc_all']} / **{d['tc_active']}**", d["nmi"], max(d["shares"], key=float), d["active"],
                     num(r["mig"]), d["mig"]])
    for label, run in (("*shipped beta-TCVAE*", "src/untwine/pretrained/models/beta-tcvae-dsprites"),
                       ("*a failed beta-TCVAE draw (demo recipe, gamma 1, bf16 seed 0)*",
                        "demo_recipe bf16 sweep/dsprites/beta-tcvae/beta=20/seed=0")):
        d = dep[run]
        body.append([label, "", "", "", "", "", "", f"{d['tc_all']} / {d['tc_active']}", d["nmi"],
                     max(d["shares"], key=float), d["active"], "", d["mig"]])
    return markdown_table(["run", "val rec", "val KL", "TC, discriminator", "TC Gaussian, sampled codes",
                           "D(z_real) / D(z_perm)", "`gaussian_tc` (suite: mean codes, all latents)",
                           "Gaussian TC of mean codes: all latents / active only", "largest NMI between two active latents",
                           "largest share of a factor's entropy in one active latent", "active latents",
                           "MIG (sweep)", "MIG (`code_dependence.py`)"], body)
