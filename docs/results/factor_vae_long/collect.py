"""One row per run per scored chunk of the long FactorVAE runs (issue 31) -> long_runs.csv.

    python docs/results/factor_vae_long/collect.py RUNS_ROOT [--csv docs/results/factor_vae_long/long_runs.csv]

FactorVAE runs go to ``--csv``; beta-VAE runs (issue 31 item 2: bvae_b1, bvae_b4) to
``beta_vae_long.csv`` beside it (written only when there are some).

For each run folder under RUNS_ROOT (made by run_chunks.sh) and each ``eval/mig_step<N>.json``
(``untwine evaluate --metrics mig,gaussian_tc`` after the chunk that ended at step N): the run's
settings (config.json), MIG and its per-factor terms and the Gaussian TC of the mean codes (that
JSON), and the validation row at step N of its metrics.jsonl: D(z_real), D(z_perm), the
discriminator's TC estimate (``tc_batch``) and the sampled codes' Gaussian TC (``tc``).
"""

from __future__ import annotations

import argparse
import csv
import json
import re
from pathlib import Path

FACTORS = ["shape", "scale", "orientation", "posX", "posY"]
COLUMNS = ["model", "dataset", "beta", "gamma", "lr", "d_lr", "seed", "precision", "step", "mig", *FACTORS,
           "gaussian_tc_mean_codes", "val_d_real", "val_d_perm", "val_tc_discriminator", "val_tc_gaussian_sampled",
           "val_rec", "val_kl", "run"]


def rows_of(run: Path) -> list[dict]:
    cfg = json.loads((run / "config.json").read_text())
    val = {}
    for line in (run / "metrics.jsonl").read_text().splitlines():
        r = json.loads(line)
        if r.get("split") == "val":
            val[int(r["step"])] = r
    out = []
    for f in sorted((run / "eval").glob("mig_step*.json"), key=lambda p: int(re.findall(r"\d+", p.name)[0])):
        step = int(re.findall(r"\d+", f.name)[0])
        m, v = json.loads(f.read_text()), val.get(step, {})
        hp = cfg["hparams"]
        out.append({
            "model": cfg["model"], "dataset": cfg["dataset"], "beta": hp.get("beta"), "gamma": hp.get("gamma"),
            "lr": cfg["lr"], "d_lr": hp.get("d_lr"), "seed": cfg["seed"], "precision": cfg["precision"], "step": step,
            "mig": f"{m['mig']:.4f}", **{k: f"{x:.4f}" for k, x in zip(FACTORS, m["per_factor"]["mig"])},
            "gaussian_tc_mean_codes": f"{m['gaussian_tc']:.4f}",
            "val_d_real": v.get("d_real"), "val_d_perm": v.get("d_perm"), "val_tc_discriminator": v.get("tc_batch"),
            "val_tc_gaussian_sampled": v.get("tc"), "val_rec": v.get("rec"), "val_kl": v.get("kl"), "run": run.name,
        })
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("root")
    ap.add_argument("--csv", default=str(Path(__file__).with_name("long_runs.csv")))
    a = ap.parse_args()
    rows = [r for run in sorted(Path(a.root).iterdir()) if (run / "config.json").is_file() for r in rows_of(run)]
    outputs = {a.csv: [r for r in rows if r["model"] == "factor-vae"]}
    bvae = [r for r in rows if r["model"] == "beta-vae"]
    if bvae:
        outputs[str(Path(a.csv).with_name("beta_vae_long.csv"))] = bvae
    for path, part in outputs.items():
        with open(path, "w", newline="") as fh:
            w = csv.DictWriter(fh, COLUMNS)
            w.writeheader()
            w.writerows(part)
        print(f"{len(part)} rows -> {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
