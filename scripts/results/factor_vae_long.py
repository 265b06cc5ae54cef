"""docs/results/factor_vae_long: the long FactorVAE (beta 1) runs of issue 31, one row per run per
scored 10,000-step chunk (long_runs.csv, made by collect.py there)."""

from __future__ import annotations

from .core import TABLES, Table, csv_rows, factor_columns, key, num, thousands

FVL = "factor_vae_long"

TABLES[f"{FVL}/runs"] = Table(
    sources=[f"{FVL}/long_runs.csv"],
    rows=csv_rows(f"{FVL}/long_runs.csv", order=lambda r: (r["run"], int(r["step"]))),
    columns=[("run", key("run")), ("lr", key("lr")), ("gamma", key("gamma", lambda v: num(v, 0))),
             ("step", key("step", thousands)), ("MIG (`untwine evaluate`)", key("mig", num)), *factor_columns(),
             ("D(z_real)", key("val_d_real", num)), ("D(z_perm)", key("val_d_perm", num)),
             ("TC, discriminator (nats)", key("val_tc_discriminator", num)),
             ("TC, Gaussian, sampled codes (nats)", key("val_tc_gaussian_sampled", num)),
             ("rec (nats)", key("val_rec", lambda v: num(v, 1))), ("KL (nats)", key("val_kl", lambda v: num(v, 2)))])
