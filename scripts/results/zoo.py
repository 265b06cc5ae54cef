"""docs/results/zoo: the beta-VAE and FactorVAE screens, trajectories and replications behind the
shipped zoo models, their `untwine evaluate` numbers, and the TC-estimator comparison."""

from __future__ import annotations

import statistics
from typing import Any

from .core import (FACTORS, MBF, SHIPPED_DIR, TABLES, Table, csv_rows, factor_columns, key, markdown_table,
                   mig_cell, num, read_csv, read_json, read_jsonl, register, results_path, span, thousands)

ZOO = "zoo"
ZOO_BAR = 0.3  # the zoo's bar (issue 22): MIG >= 0.3


def zoo_mig(v: Any) -> str:
    return mig_cell(v, ZOO_BAR)


def val_row(run: str, step: int | None = None) -> dict:
    """The validation row of a run folder's metrics.jsonl at ``step`` (default: the last)."""
    rows = [r for r in read_jsonl(f"{run}/metrics.jsonl") if r.get("split") == "val"]
    return rows[-1] if step is None else next(r for r in rows if r["step"] == step)


def active_kl(run: str, step: int | None = None) -> list[float]:
    """Validation KL (nats) of the latents above 0.1 nats, in latent order."""
    return [k for k in val_row(run, step)["kl_dims"] if k > 0.1]


def by_run(path: str) -> dict[str, dict]:
    """A *_mig.csv (mig_by_factor.py's output) keyed by (run folder's last parts, step)."""
    return {(r["run"].split("dsprites/", 1)[-1], r["step"]): r for r in read_csv(path)}


@register(f"{ZOO}/beta-vae-screen")
def beta_vae_screen() -> str:
    """The beta-VAE screen at 8,000 steps: the sweep's MIG (results.csv) beside mig_by_factor.py's
    MIG and terms (beta_vae_screen_mig.csv; beta 32 from its trajectory beta_vae_b32_s0_mig.csv)."""
    mbf = by_run(f"{ZOO}/beta_vae_screen_mig.csv")
    b32 = {r["step"]: r for r in read_csv(f"{ZOO}/beta_vae_b32_s0_mig.csv")}
    timing = {r["run"]: r for r in read_csv(f"{ZOO}/beta_vae_screen/timings.csv")}
    body = []
    for r in sorted(read_csv(f"{ZOO}/beta_vae_screen/results.csv"), key=lambda r: float(r["beta"])):
        m = b32["8000"] if r["beta"] == "32" else mbf[(r["run"].split("dsprites/", 1)[1], "8000")]
        kl = active_kl(f"{ZOO}/beta_vae_screen/{r['run']}", 8000)
        body.append([r["beta"], num(r["val_rec"], 1), num(r["val_kl"], 2), num(r["mig"]), num(m["mig"]),
                     *[num(m[f]) for f in FACTORS], ", ".join(num(k, 2) for k in kl),
                     thousands(timing[r["run"]]["train_wall_s"])])
    return markdown_table(["beta", "val rec", "val KL", "MIG (sweep)", f"MIG ({MBF})", *FACTORS,
                           "KL of the latents above 0.1 nats", "training s"], body)


def trajectory(path: str) -> Table:
    return Table(sources=[path], rows=csv_rows(path),
                 columns=[("step", key("step", thousands)), (f"MIG ({MBF})", key("mig", num)), *factor_columns()])


TABLES[f"{ZOO}/beta-vae-trajectory"] = trajectory(f"{ZOO}/beta_vae_b32_s0_mig.csv")
TABLES[f"{ZOO}/factor-vae-trajectory"] = trajectory(f"{ZOO}/factor_vae_b16_g10_s0_mig.csv")
TABLES[f"{ZOO}/factor-vae-g8-trajectory"] = trajectory(f"{ZOO}/factor_vae_g8_s0_mig.csv")

ZOO_SHIPPED = [  # the zoo's shipped runs, as committed here
    f"{ZOO}/beta_vae_screen/dsprites/beta-vae/beta=32/seed=0",
    f"{ZOO}/factor_vae_replication/fp32/dsprites/factor-vae/beta=16,gamma=10/seed=0",
]


def shipped_name(run: str) -> str:
    """The shipped model whose metrics.json is byte-identical to this run folder's."""
    mine = results_path(f"{run}/metrics.json").read_bytes()
    names = [d.name for d in sorted(SHIPPED_DIR.iterdir()) if (d / "metrics.json").is_file()
             and (d / "metrics.json").read_bytes() == mine]
    if len(names) != 1:
        raise SystemExit(f"docs/results/{run}: {len(names)} shipped models have its metrics.json (expected 1)")
    return names[0]


@register(f"{ZOO}/shipped-evaluate")
def shipped_evaluate() -> str:
    """`untwine evaluate` (standard sizes) of the two shipped zoo models: the metrics.json of their
    run folders here, byte-identical to the shipped models' (checked)."""
    body = []
    for run in ZOO_SHIPPED:
        m, s = read_json(f"{run}/metrics.json"), read_json(f"{run}/summary.json")
        body.append([f"`{shipped_name(run)}`", thousands(s["steps"]), s["config"]["precision"], zoo_mig(m["mig"]),
                     *[num(v) for v in m["per_factor"]["mig"]], num(m["beta_vae_score"]), num(m["factor_vae_score"]),
                     num(m["dci_disentanglement"]), num(m["sap"]), num(m["modularity"]),
                     str(m["factor_vae_active_dims"])])
    return markdown_table(["model", "steps", "precision", "MIG", *[f"MIG {f}" for f in FACTORS], "beta-VAE score",
                           "FactorVAE score", "DCI disentanglement", "SAP", "modularity",
                           "active latents (FactorVAE score's)"], body)


@register(f"{ZOO}/beta-vae-replication")
def beta_vae_replication() -> str:
    """The beta-VAE recipe (beta 32) at 24,000 steps: the sweeps' MIG and UDR (results.csv), the
    per-factor terms of mig_by_factor.py (replication/replication_mig.csv), the sweeps' timings."""
    mbf = {r["run"]: r for r in read_csv(f"{ZOO}/replication/replication_mig.csv")}
    shipped = mbf["../beta_vae_screen/dsprites/beta-vae/beta=32/seed=0"]
    body = [["bf16", "0 (the shipped run, at 24,000 of its 36,000 steps)", "not run by the sweep",
             *[num(shipped[c]) for c in ["mig", *FACTORS]], "-", "-", "-"]]
    for prec in ("bf16", "fp32"):
        t = {r["run"]: r for r in read_csv(f"{ZOO}/replication/{prec}/timings.csv")}
        for r in read_csv(f"{ZOO}/replication/{prec}/results.csv"):
            m = mbf[f"{prec}/{r['run']}"]
            body.append([prec, r["seed"], zoo_mig(r["mig"]), num(m["mig"]), *[num(m[f]) for f in FACTORS],
                         num(r["udr_lasso"]), thousands(t[r["run"]]["train_wall_s"]),
                         thousands(t[r["run"]]["images_per_s"])])
    return markdown_table(["precision", "seed", "MIG (sweep)", f"MIG ({MBF})", *FACTORS, "UDR (lasso, 2 seeds)",
                           "training s", "images/s"], body)


@register(f"{ZOO}/factor-vae-beta-screen")
def factor_vae_beta_screen() -> str:
    """FactorVAE with a KL weight at 6,000 steps: the sweep's MIG (results.csv, written at 6,000
    steps), mig_by_factor.py's MIG and terms, the latents above 0.1 nats at step 6,000."""
    mbf = by_run(f"{ZOO}/factor_vae_beta_screen_mig.csv") | by_run(f"{ZOO}/factor_vae_b16_g10_s0_mig.csv")
    body = []
    for r in sorted(read_csv(f"{ZOO}/factor_vae_beta_screen/results.csv"),
                    key=lambda r: (float(r["beta"]), float(r["gamma"]))):
        m = mbf[(r["run"].split("dsprites/", 1)[1], "6000")]
        kl = active_kl(f"{ZOO}/factor_vae_beta_screen/{r['run']}", 6000)
        body.append([r["beta"], r["gamma"], zoo_mig(r["mig"]), num(m["mig"]), *[num(m[f]) for f in FACTORS],
                     str(len(kl))])
    return markdown_table(["beta", "gamma", "MIG (sweep)", f"MIG ({MBF})", *FACTORS, "active latents"], body)


@register(f"{ZOO}/factor-vae-replication")
def factor_vae_replication() -> str:
    """The FactorVAE recipe (beta 16, gamma 10) at 24,000 steps: replication_mig.csv (untwine
    evaluate's MIG and terms, active latents, wall time) and the sweeps' UDR (results.csv)."""
    udr = {(p, r["seed"]): r["udr_lasso"] for p in ("bf16", "fp32")
           for r in read_csv(f"{ZOO}/factor_vae_replication/{p}/results.csv")}
    role = {("bf16", "0"): " (the screen's run, resumed)", ("fp32", "0"): f" (shipped: `{shipped_name(ZOO_SHIPPED[1])}`)"}
    body = [[r["precision"], r["seed"] + role.get((r["precision"], r["seed"]), ""), zoo_mig(r["mig"]),
             *[num(r[f]) for f in FACTORS], r["active_latents"], num(udr.get((r["precision"], r["seed"]), "")),
             thousands(r["wall_time_s"])]
            for r in read_csv(f"{ZOO}/factor_vae_replication/replication_mig.csv")]
    return markdown_table(["precision", "seed", "MIG", *FACTORS, "active latents", "UDR (lasso, 2 seeds)",
                           "wall s"], body)


@register(f"{ZOO}/factor-vae-eval-seeds")
def factor_vae_eval_seeds() -> str:
    """MIG of two draws under evaluation seeds 0-4: eval_seed_spread.csv."""
    rows = read_csv(f"{ZOO}/factor_vae_replication/eval_seed_spread.csv")
    body = []
    for run in dict.fromkeys(r["run"] for r in rows):
        migs = [r["mig"] for r in rows if r["run"] == run]
        shape = [r["shape"] for r in rows if r["run"] == run]
        body.append([run, " / ".join(num(m) for m in migs), num(statistics.fmean(float(m) for m in migs)),
                     span(shape)])
    return markdown_table(["run", "MIG, evaluation seeds 0 / 1 / 2 / 3 / 4", "mean", "shape term, range"], body)


def beta1_screen_rows() -> list[dict]:
    """FactorVAE at beta 1, 5,000 steps, d_lr = lr: gamma 8 and 20, seeds 0-3, from the three
    sweeps that ran them, with mig_by_factor.py's MIG beside the sweep's."""
    mbf = by_run(f"{ZOO}/factor_vae_screen_mig.csv")
    g8s0 = next(r for r in read_csv(f"{ZOO}/factor_vae_g8_s0_mig.csv") if r["step"] == "5000")
    rows = []
    for r in read_csv("seeds_slides_cpu_fvae/results.csv"):
        if r["gamma"] == "8":
            rows.append(dict(r, sweep="`seeds_slides_cpu_fvae/`", mbf=g8s0))
    for folder in ("factor_vae_screen", "factor_vae_screen_g20_s0"):
        for r in read_csv(f"{ZOO}/{folder}/results.csv"):
            rows.append(dict(r, sweep=f"`{folder}/`", mbf=mbf[(r["run"].split("dsprites/", 1)[1], "5000")]))
    return sorted(rows, key=lambda r: (float(r["gamma"]), int(r["seed"])))


@register(f"{ZOO}/factor-vae-beta1-screen")
def factor_vae_beta1_screen() -> str:
    body = [[r["gamma"], r["seed"], num(r["mig"]), num(r["mbf"]["mig"]) + (" (see note)" if r["mbf"].get("note") else ""),
             num(r.get("udr_lasso", "")), r["sweep"]] for r in beta1_screen_rows()]
    return markdown_table(["gamma", "seed", "MIG (sweep)", f"MIG ({MBF})", "UDR (lasso, seeds 1-3)", "sweep"], body)


@register(f"{ZOO}/tc-estimator")
def tc_estimator() -> str:
    """The same loss with two TC estimators: FactorVAE gamma g (discriminator) against beta-TCVAE
    beta 1 + g (minibatch estimator), seeds 0-3, 5,000 steps: MIG of the sweeps, of
    mig_by_factor.py, and UDR within each row's seeds."""
    fv = beta1_screen_rows()
    mbf = by_run(f"{ZOO}/tc_estimator_mig.csv")
    tc = read_csv(f"{ZOO}/tc_estimator/results.csv")
    body = []
    for g, b in (("8", "9"), ("20", "20")):
        for label, rows, m in ((f"FactorVAE gamma {g} (discriminator)", [r for r in fv if r["gamma"] == g],
                                lambda r: r["mbf"]["mig"]),
                               (f"beta-TCVAE beta {b} (minibatch estimator)", [r for r in tc if r["beta"] == b],
                                lambda r: mbf[(r["run"].split("dsprites/", 1)[1], "5000")]["mig"])):
            rows = sorted(rows, key=lambda r: int(r["seed"]))
            body.append([str(int(g) + 1) if label.startswith("F") else b, label,
                         " / ".join(num(r["mig"]) for r in rows), " / ".join(num(m(r)) for r in rows),
                         " / ".join(num(r.get("udr_lasso", "")) for r in rows)])
    return markdown_table(["TC weight (FactorVAE: 1 + gamma; beta-TCVAE: beta)", "model", "MIG (sweep), seeds 0 / 1 / 2 / 3",
                           f"MIG ({MBF}), same seeds", "UDR (lasso), same seeds"], body)
