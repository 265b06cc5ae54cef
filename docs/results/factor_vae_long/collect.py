"""One row per run per scored chunk of the long FactorVAE runs (issue 31) -> long_runs.csv.

    python docs/results/factor_vae_long/collect.py RUNS_ROOT [--csv docs/results/factor_vae_long/long_runs.csv]

FactorVAE runs go to ``--csv``; beta-VAE runs (issue 31 item 2: bvae_b1, bvae_b4) to
``beta_vae_long.csv`` beside it (written only when there are some).

For each run folder under RUNS_ROOT (made by run_chunks.sh) and each ``eval/mig_step<N>.json``
(``untwine evaluate --metrics mig,gaussian_tc`` after the chunk that ended at step N): the run's
settings (config.json), MIG and its per-factor terms and the Gaussian TC of the mean codes (that
JSON), and the validation row at step N of its metrics.jsonl: D(z_real), D(z_perm), the
discriminator's TC estimate (``tc_batch``) and the sampled codes' Gaussian TC (``tc``).

Rows of runs whose folders are not under RUNS_ROOT (a machine's folder lost between sessions) are
kept as the CSVs hold them; the rows of each run found are replaced by what its folder gives now.

Also ``run_folders.csv`` beside ``--csv``: one row per run folder as it stands (summary.json: steps
trained, status, training seconds over all sessions, CPU where recorded; the newest checkpoint's
manifest: the bytes of each of its files), so the cost of a chunk and the size of a checkpoint are
committed data.
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


def scores_of(run: Path, rows: list[dict]) -> dict[int, dict]:
    """Step -> (MIG, its per-factor terms, Gaussian TC) of each scored chunk (step > 0): the
    ``eval/mig_step<N>.json`` files of ``untwine evaluate`` (run_chunks.sh), or else the run's own
    ``score`` rows in metrics.jsonl (``untwine train --score``, run_beta_vae.sh: the same numbers)."""
    files = sorted((run / "eval").glob("mig_step*.json"), key=lambda p: int(re.findall(r"\d+", p.name)[0]))
    if files:
        evaluated = {int(re.findall(r"\d+", f.name)[0]): json.loads(f.read_text()) for f in files}
        return {step: {"mig": m["mig"], "per_factor": m["per_factor"]["mig"], "gaussian_tc": m["gaussian_tc"]}
                for step, m in evaluated.items()}
    return {int(r["step"]): {"mig": r["mig"], "per_factor": r["mig_per_factor"], "gaussian_tc": r["gaussian_tc"]}
            for r in rows if r.get("split") == "score" and int(r["step"]) > 0}


def rows_of(run: Path) -> list[dict]:
    cfg = json.loads((run / "config.json").read_text())
    log = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    val = {int(r["step"]): r for r in log if r.get("split") == "val"}
    out = []
    for step, m in sorted(scores_of(run, log).items()):
        v = val.get(step, {})
        hp = cfg["hparams"]
        out.append({
            "model": cfg["model"], "dataset": cfg["dataset"], "beta": hp.get("beta"), "gamma": hp.get("gamma"),
            "lr": cfg["lr"], "d_lr": hp.get("d_lr"), "seed": cfg["seed"], "precision": cfg["precision"], "step": step,
            "mig": f"{m['mig']:.4f}", **{k: f"{x:.4f}" for k, x in zip(FACTORS, m["per_factor"])},
            "gaussian_tc_mean_codes": f"{m['gaussian_tc']:.4f}",
            "val_d_real": v.get("d_real"), "val_d_perm": v.get("d_perm"), "val_tc_discriminator": v.get("tc_batch"),
            "val_tc_gaussian_sampled": v.get("tc"), "val_rec": v.get("rec"), "val_kl": v.get("kl"), "run": run.name,
        })
    return out


FOLDER_COLUMNS = ["run", "model", "steps", "status", "wall_time_s", "cpu", "model_bytes", "objective_bytes",
                  "state_bytes"]


def folder_row(run: Path) -> dict:
    """The run folder as it stands: summary.json and the newest checkpoint's manifest."""
    s = json.loads((run / "summary.json").read_text())
    manifest = run / "checkpoint" / "manifest.json"  # absent before a run's first checkpoint
    files = json.loads(manifest.read_text())["files"] if manifest.is_file() else {}
    return {"run": run.name, "model": s["config"]["model"], "steps": s["steps"], "status": s["status"],
            "wall_time_s": f"{s['wall_time_s']:.1f}", "cpu": s.get("cpu", ""),
            **{f"{name.split('.')[0]}_bytes": files[name]["bytes"] if name in files else ""
               for name in ("model.safetensors", "objective.safetensors", "state.pt")}}


def write(path: str, columns: list[str], rows: list[dict], present: set[str]) -> None:
    """Write ``rows`` to ``path``, keeping the rows it already holds of runs not in ``present``
    (the run folders found now): a folder lost with its machine keeps its committed rows."""
    kept: list[dict] = []
    if Path(path).is_file():
        with open(path, newline="") as fh:
            kept = [r for r in csv.DictReader(fh) if r["run"] not in present]
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, columns)
        w.writeheader()
        w.writerows(sorted(kept + rows, key=lambda r: (r["run"], int(r.get("step") or 0))))
    gone = sorted({r["run"] for r in kept})
    print(f"{len(rows)} rows -> {path}" + (f" (kept {len(kept)} rows of runs not under the root: {', '.join(gone)})"
                                           if kept else ""))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("root")
    ap.add_argument("--csv", default=str(Path(__file__).with_name("long_runs.csv")))
    a = ap.parse_args(argv)
    runs = [run for run in sorted(Path(a.root).iterdir()) if (run / "config.json").is_file()]
    present = {run.name for run in runs}
    rows = [r for run in runs for r in rows_of(run)]
    outputs = {a.csv: [r for r in rows if r["model"] == "factor-vae"]}
    bvae = [r for r in rows if r["model"] == "beta-vae"]
    if bvae:
        outputs[str(Path(a.csv).with_name("beta_vae_long.csv"))] = bvae
    for path, part in outputs.items():
        write(path, COLUMNS, part, present)
    write(str(Path(a.csv).with_name("run_folders.csv")), FOLDER_COLUMNS,
          [folder_row(run) for run in runs if (run / "summary.json").is_file()], present)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
