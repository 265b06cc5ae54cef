"""docs/results/weak, "Beside the unsupervised recipes and the shipped models": each Ada-GVAE recipe of
weak.py's ``RECIPES``, then the beta-TCVAE demo recipe (its 8,000-step gamma-0 draws, and the same recipe
trained to 16,000 steps on a recipe's own draws, ``DEMO_AT_LENGTH``, once committed), the zoo's
beta-VAE and FactorVAE-with-KL-16 replications and the shipped models, each row from its own
committed data."""

from __future__ import annotations

import json

from .core import FACTORS, SHIPPED_DIR, draw_list, markdown_table, read_csv, read_json, register, span
from .weak import (BAR, NONE_YET, RECIPES, WEAK, DEMO, DEMO_CPU, Recipe, committed, cpu_key, demo_draws, has_amx,
                   hits, med, minutes, planned, recipe_label, recorded_cpu, weak_config, weak_draws)
from .weak_lengths import DEMO16, DEMO16_S10

# the demo recipe at an Ada-GVAE recipe's length on its draws: a row once its draws are committed
DEMO_AT_LENGTH = (DEMO16, DEMO16_S10)
# the CPU the zoo's README states (its "Machine" line; its run folders do not record one)
ZOO_CPU = ("zoo/README.md",
           "Intel Xeon with AMX and AVX512-BF16 (`Intel(R) Xeon(R) Processor`, family 6 model 167)")


def zoo_beta_vae() -> dict:
    """beta-VAE beta 32, 24,000 steps: the replication sweeps' draws (the sweep's MIG; per factor
    from replication_mig.csv, mig_by_factor.py as recipe_draws.py computes it)."""
    mbf = {r["run"]: r for r in read_csv("zoo/replication/replication_mig.csv")}
    rows, sums = [], []
    for prec in ("bf16", "fp32"):
        sweep = f"zoo/replication/{prec}"
        t = {r["run"]: r for r in read_csv(f"{sweep}/timings.csv")}
        for r in read_csv(f"{sweep}/results.csv"):
            rows.append(dict(mbf[f"{prec}/{r['run']}"], mig=r["mig"], dci=r.get("dci_disentanglement", ""),
                             minutes=minutes(t[r["run"]]["train_wall_s"])))
            cfg = read_json(f"{sweep}/{r['run']}/config.json")
            sums.append(read_json(f"{sweep}/{r['run']}/summary.json"))
    return {"label": f"beta-VAE zoo recipe: {recipe_label(cfg)}", "rows": rows,
            "cpu": recorded_cpu(sums, stated=ZOO_CPU),
            "from": "`zoo/replication/`: the sweeps' `results.csv` (MIG), `timings.csv`; per factor "
                    "`replication_mig.csv` (`mig_by_factor.py`); bf16 seed 0 (the shipped run, not run by the "
                    "sweeps, scored at 24,000 steps by `mig_by_factor.py` only) not counted"}


def zoo_factor_vae() -> dict:
    """FactorVAE with KL weight 16, gamma 10, 24,000 steps: replication_mig.csv's five draws
    (untwine evaluate: MIG and per factor; wall time), DCI where a sweep's results.csv has it."""
    base = "zoo/factor_vae_replication"
    dci, sums, cfg = {}, [], None
    for prec in ("bf16", "fp32"):
        for r in read_csv(f"{base}/{prec}/results.csv"):
            dci[(prec, r["seed"])] = r.get("dci_disentanglement", "")
            cfg = read_json(f"{base}/{prec}/{r['run']}/config.json")
            sums.append(read_json(f"{base}/{prec}/{r['run']}/summary.json"))
    rows = [dict(r, dci=dci.get((r["precision"], r["seed"]), ""), minutes=minutes(r["wall_time_s"]))
            for r in read_csv(f"{base}/replication_mig.csv")]
    if {int(r["steps"]) for r in rows} != {int(cfg["steps"])}:
        raise SystemExit(f"docs/results/{base}/replication_mig.csv: draws of another length than the sweeps'")
    return {"label": f"FactorVAE-with-KL-16 zoo recipe: {recipe_label(cfg)}", "rows": rows,
            "cpu": recorded_cpu(sums, stated=ZOO_CPU),
            "from": "`zoo/factor_vae_replication/replication_mig.csv` (`untwine evaluate`: MIG, per factor, wall "
                    "time; bf16 seed 0 is the screen's run, resumed); DCI from the sweeps' `results.csv`"}


def shipped_cpu(name: str) -> dict:
    """The CPU the shipped model's COMMAND.txt says it was trained on (its first line)."""
    path = SHIPPED_DIR / name / "COMMAND.txt"
    line = " ".join(l.lstrip("# ") for l in path.read_text().splitlines()[:2]) if path.is_file() else ""
    k = cpu_key(line)
    if k is None:
        return {"label": "not recorded", "keys": {None}}
    label = ("Intel Xeon" if k[0] == "Intel" else k[0]) + f", family {k[1]} model {k[2]}" + \
        (", AMX" if has_amx(line) else "")
    return {"label": f"{label} (its `COMMAND.txt`)", "keys": {k}}


def shipped() -> list[dict]:
    out = []
    for d in sorted(SHIPPED_DIR.iterdir()):
        if not (d / "metrics.json").is_file():
            continue
        m, s = (json.loads((d / f).read_text()) for f in ("metrics.json", "summary.json"))
        per = m.get("per_factor", {}).get("mig", [""] * len(FACTORS))
        row = {"mig": m["mig"], "dci": m.get("dci_disentanglement", ""), **dict(zip(FACTORS, per)),
               "minutes": minutes(s.get("wall_time_s"))}
        out.append({"label": f"shipped `{d.name}`: {recipe_label(s['config'] | {'steps': s['steps']})}",
                    "rows": [row], "cpu": recorded_cpu([s]) if s.get("cpu") else shipped_cpu(d.name),
                    "from": "its `metrics.json` (`untwine evaluate`), `summary.json` (steps, wall time)"})
    return out


def weak_recipe(recipe: Recipe, rows: list[dict]) -> dict:
    ran = [r for r in rows if r["ran"]]
    sums = [r["summary"] for r in ran]
    source = (f"the sweeps' `results.csv` (MIG, DCI), `timings.csv`; per factor `{recipe.draws_csv}` "
              "(`recipe_draws.py`)")
    if recipe.continues is not None:
        source = (f"`{WEAK}/{recipe.sweeps}/`: " + source.replace("`timings.csv`", "`timings.csv` (the whole run's "
                  "minutes)") + f"; the `{WEAK}/{recipe.continues.sweeps}/` draws continued")
    return {"label": f"{recipe.name}: {recipe_label(weak_config(recipe))}", "rows": ran, "planned": len(rows),
            "committed": committed(recipe),
            "cpu": recorded_cpu(sums, machine=recipe.machine) if ran else {"label": "-", "keys": {None}},
            "from": source if committed(recipe) else f"`{WEAK}/{recipe.sweeps}/`: {NONE_YET}"}


def demo_recipe(rows: list[dict]) -> dict:
    ev = [r for r in rows if r["role"] == "evaluation"]
    sc = [r for r in rows if r["role"] == "screen"]
    studies = ", ".join(f"`{s}`" for s in sorted({r["study"] for r in ev}))
    screens = ", ".join(f"`{s}`" for s in sorted({r["study"] for r in sc}))
    return {"label": f"beta-TCVAE demo recipe: {recipe_label(ev[0]['config'])}", "rows": ev,
            "cpu": recorded_cpu([r["summary"] for r in ev], stated=DEMO_CPU),
            "from": f"`{DEMO}/gamma0/draws.csv` (`recipe_draws.py`) and its sweeps' `results.csv`, `timings.csv`: "
                    f"the evaluation draws ({studies}); the screen's "
                    f"({draw_list([(r['precision'], r['seed']) for r in sc])}, {screens}) not counted"}


@register(f"{WEAK}/side-by-side")
def side_by_side() -> str:
    ours = [weak_recipe(r, weak_draws(r)) for r in RECIPES if planned(r)]
    demo_long = [weak_recipe(r, weak_draws(r)) for r in DEMO_AT_LENGTH if planned(r) and committed(r)]
    recipes = [*ours, demo_recipe(demo_draws()), *demo_long, zoo_beta_vae(), zoo_factor_vae(), *shipped()]
    body = []
    for rc in recipes:
        rows = rc["rows"]
        n = str(len(rows)) + (f" of {rc['planned']} planned" if rc.get("planned", len(rows)) != len(rows) else "")
        if not rows:
            none = NONE_YET if not rc.get("committed", True) else "none finished"
            body.append([rc["label"], f"{n} ({none})", *["-"] * (5 + len(FACTORS)), rc["cpu"]["label"], rc["from"]])
            continue
        migs = [r["mig"] for r in rows]
        body.append([rc["label"], n, f"{hits(migs)} of {len(rows)}", med(migs), span(migs),
                     med([r.get("dci", "") for r in rows]), *[med([r.get(f, "") for r in rows]) for f in FACTORS],
                     med([r["minutes"] for r in rows], 1), rc["cpu"]["label"], rc["from"]])
    return markdown_table(["recipe (model and hyperparameters, steps x images per step)", "draws",
                           f"draws with MIG >= {BAR}", "median MIG", "MIG min-max", "median DCI disentanglement",
                           *[f"median MIG {f}" for f in FACTORS], "median minutes per draw", "CPU", "from"], body)
