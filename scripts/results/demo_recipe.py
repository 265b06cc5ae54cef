"""docs/results/demo_recipe: the gamma-1 and gamma-0 draws of the demo's recipe, gamma 0 against
gamma 1, the two-seed rule over pairs, UDR, MIG by step and the demo's wall time."""

from __future__ import annotations

import statistics
from pathlib import Path

from .core import (PASS, TABLES, Cell, Table, csv_rows, draw_list, factor_columns, k_of_n, key, markdown_table,
                   mig_cell, num, passes, read_csv, read_json, read_toml, register, span, thousands)

DEMO = "demo_recipe"
SESSION5_RUNS = {"b20-lr1e-3": 0, "b20-lr1e-3-s1": 1}  # fp32, the recipe's settings, session 5's CPU


def planned(files: list[str]) -> dict[tuple[str, int], str]:
    """(precision, seed) -> the study file that plans it."""
    out = {}
    for f in files:
        st = read_toml(f)
        for s in st["study"]["seeds"]:
            out[(st["train"]["precision"], int(s))] = Path(f).name
    return out


def gamma1_draws() -> list[dict]:
    """Every draw the gamma-1 study files plan: from draws.csv when it ran there, from session 5's
    8,000-step rows of mig_by_step.csv for fp32 seeds 0 and 1 (the same settings, run earlier on
    the Xeon without AMX and scored by mig_by_factor.py), else marked not run."""
    plan = planned([f"{DEMO}/draws/{f}" for f in ("b20_bf16.toml", "b20_bf16_s5_9.toml", "b20_fp32.toml")])
    ran = {(r["precision"], int(r["seed"])): r for r in read_csv(f"{DEMO}/draws/draws.csv")}
    s5 = {SESSION5_RUNS[r["run"]]: r for r in read_csv(f"{DEMO}/mig_by_step.csv")
          if r["run"] in SESSION5_RUNS and r["step"] == "8000"}
    rows = []
    for (prec, seed), study in sorted(plan.items()):
        if (prec, seed) in ran:
            rows.append(dict(ran[(prec, seed)], study=study, cpu="AMX", source=f"`draws.csv` (`{study}`)"))
        elif prec == "fp32" and seed in s5:
            rows.append(dict(s5[seed], precision=prec, seed=str(seed), study=study, cpu="no AMX", active="",
                             max_nmi="", source=f"session 5, `mig_by_step.csv` ({s5[seed]['run']}, step 8000)"))
        else:
            rows.append({"precision": prec, "seed": str(seed), "study": study, "mig": "", "cpu": "",
                         "source": f"**not run** (planned in `{study}`)"})
    return rows


def gamma0_draws() -> list[dict]:
    """The gamma-0 draws, each with the study file that ran it: g0.toml is the screen that chose
    gamma 0; A1, A2 and B1 are the evaluation draws."""
    plan = planned([f"{DEMO}/gamma0/{f}" for f in ("g0.toml", "A1.toml", "A2.toml", "B1.toml")])
    rows = []
    for r in read_csv(f"{DEMO}/gamma0/draws.csv"):
        study = plan[(r["precision"], int(r["seed"]))]
        rows.append(dict(r, study=study, role="screen" if study == "g0.toml" else "evaluation"))
    return sorted(rows, key=lambda r: (r["precision"], int(r["seed"])))


def draws_lead(rows: list[dict]) -> str:
    run = [r for r in rows if r["mig"] != ""]
    migs = [float(r["mig"]) for r in run]
    return (f"{len(run)} draws, MIG >= {PASS} in **{sum(passes(m) for m in migs)}**; median "
            f"{num(statistics.median(migs))}, range {span(migs)}")


DRAW_COLUMNS: list[tuple[str, Cell]] = [
    ("precision", key("precision")), ("seed", key("seed")), ("MIG", key("mig", mig_cell)),
    *factor_columns(), ("active latents", key("active", lambda v: v or "-")),
    ("max NMI", key("max_nmi", num)),
]


def gamma1_lead(rows: list[dict]) -> str:
    not_run = [r for r in rows if r["mig"] == ""]
    run = [r for r in rows if r["mig"] != ""]
    amx = [r for r in run if r["cpu"] == "AMX"]
    missing = draw_list([(r["precision"], r["seed"]) for r in not_run])
    other = draw_list([(r["precision"], r["seed"]) for r in run if r["cpu"] != "AMX"])
    return (f"{len(rows)} draws planned by the three study files, {len(run)} run; **not run: {missing}** "
            f"(`{'`, `'.join(dict.fromkeys(r['study'] for r in not_run))}`). "
            f"{other} are session 5's runs of the same settings on the Xeon without AMX, scored by "
            f"`mig_by_factor.py` (not by the sweep). MIG >= {PASS} in **{k_of_n([r['mig'] for r in run])}** "
            f"draws run; on the AMX Xeon alone in {k_of_n([r['mig'] for r in amx])}; median "
            f"{num(statistics.median(float(r['mig']) for r in run))}, range {span([r['mig'] for r in run])}.")


TABLES[f"{DEMO}/gamma1-draws"] = Table(
    sources=[f"{DEMO}/draws/draws.csv", f"{DEMO}/mig_by_step.csv", f"{DEMO}/draws/*.toml"],
    rows=gamma1_draws, lead=gamma1_lead,
    columns=[*DRAW_COLUMNS, ("from", key("source"))],
)


def gamma0_lead(rows: list[dict]) -> str:
    ev = [r for r in rows if r["role"] == "evaluation"]
    sc = [r for r in rows if r["role"] == "screen"]
    return (f"Evaluation draws (`A1.toml`, `A2.toml`, `B1.toml`): MIG >= {PASS} in "
            f"**{k_of_n([r['mig'] for r in ev])}**, median {num(statistics.median(float(r['mig']) for r in ev))}, "
            f"range {span([r['mig'] for r in ev])}. The screen that chose gamma 0 (`g0.toml`, "
            + draw_list([(r["precision"], r["seed"]) for r in sc])
            + f"): {k_of_n([r['mig'] for r in sc])}; it is not counted among the evaluation draws. "
            f"All {len(rows)} together: {k_of_n([r['mig'] for r in rows])}.")


TABLES[f"{DEMO}/gamma0-draws"] = Table(
    sources=[f"{DEMO}/gamma0/draws.csv", f"{DEMO}/gamma0/*.toml"], rows=gamma0_draws, lead=gamma0_lead,
    columns=[*DRAW_COLUMNS, ("run by", lambda r: f"`{r['study']}` ({r['role']})")],
)


@register(f"{DEMO}/gamma-compare")
def gamma_compare() -> str:
    """gamma 0 against gamma 1 on the same (precision, seed) draws, with the CPU said."""
    g1 = {(r["precision"], int(r["seed"])): r for r in gamma1_draws() if r["mig"] != ""}
    g0 = {(r["precision"], int(r["seed"])): r for r in gamma0_draws()}
    seeds04 = [(p, s) for p in ("bf16", "fp32") for s in range(5)]
    same_cpu = [k for k in seeds04 if g1[k]["cpu"] == "AMX"]
    screen = {k for k, r in g0.items() if r["role"] == "screen"}
    sets = [
        ("seeds 0-4, bf16 and fp32", seeds04,
         f"gamma 1's {draw_list([k for k in seeds04 if g1[k]['cpu'] != 'AMX'])} ran on the Xeon without AMX"),
        ("seeds 0-4, the AMX Xeon only", same_cpu, "same CPU, same draws"),
        ("seeds 0-4 without the gamma-0 screen's draws", [k for k in seeds04 if k not in screen],
         "gamma 0's evaluation draws only"),
        ("seeds 0-4, AMX only, without the screen's draws", [k for k in same_cpu if k not in screen],
         "same CPU, evaluation draws only"),
        ("bf16 seeds 5 and 6", [("bf16", 5), ("bf16", 6)], "gamma 0's seed 6 is the screen's"),
    ]

    def cell(runs: dict, keys: list) -> str:
        have = [k for k in keys if k in runs]
        text = f"{k_of_n([runs[k]['mig'] for k in have])}"
        gone = [k for k in keys if k not in runs]
        return text + (f" (not run: {draw_list(gone)})" if gone else "")

    body = [[label, str(len(keys)), cell(g1, keys), cell(g0, keys), note] for label, keys, note in sets]
    return markdown_table(["draws (precision, seed)", "draws", f"gamma 1: MIG >= {PASS}",
                           f"gamma 0: MIG >= {PASS}", "note"], body)


def pair_summary(label: str, precision: str, rows: list[dict]) -> list[str]:
    seeds = sorted({int(r["seed_a"]) for r in rows} | {int(r["seed_b"]) for r in rows})
    mig = {int(r["seed_a"]): r["mig_a"] for r in rows} | {int(r["seed_b"]): r["mig_b"] for r in rows}
    mixed_fail, mixed_pass = [], []
    for r in rows:
        a, b = (r["mig_a"], r["udr_lasso_a"]), (r["mig_b"], r["udr_lasso_b"])
        if passes(a[0]) != passes(b[0]):
            bad, good = (a, b) if passes(b[0]) else (b, a)
            mixed_fail.append(bad[1])
            mixed_pass.append(good[1])
    return [label, precision, ", ".join(map(str, seeds)), k_of_n([mig[s] for s in seeds]), str(len(rows)),
            f"**{k_of_n([r['kept_mig_lasso'] for r in rows])}**",
            k_of_n([max(float(r["mig_a"]), float(r["mig_b"])) for r in rows]),
            f"{span(mixed_fail)} / {span(mixed_pass)}" if mixed_fail else "-"]


@register(f"{DEMO}/pairs")
def pairs() -> str:
    """The demo's rule (two seeds, keep the higher UDR with the shipped model in the pool) over
    every pair of draws of one precision: recipe_pairs.py's pairs.csv files."""
    g0 = read_csv(f"{DEMO}/gamma0/pairs.csv")
    body = [pair_summary("gamma 0", p, [r for r in g0 if r["group"] == p]) for p in ("bf16", "fp32")]
    body.append(pair_summary("gamma 1", "bf16", read_csv(f"{DEMO}/draws/pairs_bf16.csv")))
    return markdown_table(["recipe", "precision", "seeds", "one seed passes", "pairs", "the kept seed passes",
                           "the better seed of the pair (by MIG) passes",
                           "UDR (lasso) in pairs of a failing and a passing seed: failing / passing"], body)


@register(f"{DEMO}/gamma1-udr")
def gamma1_udr() -> str:
    """UDR over the gamma-1 draws of one sweep (untwine evaluate --metrics udr): draws/udr_*.json."""
    mig = {(r["precision"], r["seed"]): r["mig"] for r in read_csv(f"{DEMO}/draws/draws.csv")}
    body = []
    for prec in ("bf16", "fp32"):
        u = read_json(f"{DEMO}/draws/udr_{prec}.json")
        for i, run in enumerate(u["runs"]):
            seed = run.split("=")[1]
            body.append([prec, seed, num(u["udr_lasso"][i]), num(u["udr_spearman"][i]), str(u["num_active"][i]),
                         mig_cell(mig[(prec, seed)])])
    return markdown_table(["precision", "seed", "UDR (lasso)", "UDR (Spearman)", "latents above UDR's KL threshold",
                           "MIG"], body)


TABLES[f"{DEMO}/mig-by-step"] = Table(
    sources=[f"{DEMO}/mig_by_step.csv"], rows=csv_rows(f"{DEMO}/mig_by_step.csv"),
    columns=[("run", key("run")), ("beta", key("beta")), ("lr", key("lr")), ("seed", key("seed")),
             ("step", key("step", thousands)), ("scored by", key("tool", lambda t: f"`{t}`")),
             ("MIG", key("mig", num)), *factor_columns()],
)

def minutes(s: str) -> str:
    return f"{int(s) // 60} min {int(s) % 60} s"


TABLES[f"{DEMO}/quickstart-time"] = Table(  # the README's: how long `untwine demo` takes, install not included
    sources=[f"{DEMO}/demo_time.csv"],
    rows=csv_rows(f"{DEMO}/demo_time.csv", where=lambda r: r["what"].startswith("`untwine demo`")),
    columns=[("CPU", key("cpu")), ("precision", key("precision")), ("`untwine demo`", key("seconds", minutes)),
             ("untwine commit", key("commit")), ("date", key("date"))],
)

TABLES[f"{DEMO}/demo-time"] = Table(
    sources=[f"{DEMO}/demo_time.csv"], rows=csv_rows(f"{DEMO}/demo_time.csv"),
    columns=[("date", key("date")), ("what", key("what")), ("precision", key("precision")),
             ("CPU", key("cpu")), ("untwine commit", key("commit")),
             ("wall time", key("seconds", minutes)),
             ("source", key("source"))],
)
