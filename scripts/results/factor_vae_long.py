"""docs/results/factor_vae_long: the long FactorVAE (beta 1) runs of issue 31, one row per run per
scored 10,000-step chunk (long_runs.csv, made by collect.py there), and the trend of MIG against
steps per setting (``trend``: the one fit that both the ``factor_vae_long/trend`` table and the
folder's figure.py use; it takes rows, not a path, so figure.py can hand it any --csv)."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Any

from .core import (TABLES, Table, csv_rows, factor_columns, key, markdown_table, num, read_csv, read_toml, register,
                   thousands)

FVL = "factor_vae_long"
CSV = f"{FVL}/long_runs.csv"

TABLES[f"{FVL}/runs"] = Table(
    sources=[CSV],
    rows=csv_rows(CSV, order=lambda r: (r["run"], int(r["step"]))),
    columns=[("run", key("run")), ("lr", key("lr")), ("gamma", key("gamma", lambda v: num(v, 0))),
             ("step", key("step", thousands)), ("MIG (`untwine evaluate`)", key("mig", num)), *factor_columns(),
             ("D(z_real)", key("val_d_real", num)), ("D(z_perm)", key("val_d_perm", num)),
             ("TC, discriminator (nats)", key("val_tc_discriminator", num)),
             ("TC, Gaussian, sampled codes (nats)", key("val_tc_gaussian_sampled", num)),
             ("rec (nats)", key("val_rec", lambda v: num(v, 1))), ("KL (nats)", key("val_kl", lambda v: num(v, 2)))])


# ------------------------------------------------------------------------------- the trend
TREND_FROM = 20_000      # the first chunk (10,000 steps) is still warming up: left out of the fit
TREND_MIN_STEPS = 3      # distinct steps >= TREND_FROM a setting needs before it gets a line
TREND_AT = (100_000, 300_000)  # where the line is read: the runs' planned end, issue 31's extrapolation
SEEDS_CLAIM = ("seeds_slides_cpu_fvae/study.toml", "slides-best-mig-dsprites")  # the seeds' MIG (0.22)


def seeds_mig() -> float:
    """The seeds' best FactorVAE MIG on dSprites: the [[claim]] of seeds_slides_cpu_fvae/study.toml."""
    path, name = SEEDS_CLAIM
    return float(next(c for c in read_toml(path)["claim"] if c["name"] == name)["value"])


def hp(v: Any) -> str:
    """A CSV number as written in the runs' names and the README: 0.0001 -> 1e-4, 35.0 -> 35."""
    f = float(v)
    if f.is_integer():
        return str(int(f))
    m, e = f"{f:e}".split("e")
    m = m.rstrip("0").rstrip(".")
    return f"{m}e{int(e)}" if abs(int(e)) >= 3 else repr(f)


@dataclass
class Trend:
    """One setting's fit ``mig = a + b * log10(step)``; ``a`` and ``b`` are None when the setting has
    fewer than TREND_MIN_STEPS distinct steps >= TREND_FROM (``steps`` then says how many it has)."""

    lr: float
    gamma: float
    runs: list[str]
    steps: list[int]                      # distinct steps >= TREND_FROM, ascending
    points: list[tuple[int, float]]       # (step, MIG) of every run's chunk in the fit
    a: float | None = None
    b: float | None = None
    predicted: dict[int, float] = field(default_factory=dict)  # step -> MIG on the line, TREND_AT

    @property
    def name(self) -> str:
        """The runs' shared prefix before ``_s<seed>`` (km, cpu), or lr and gamma when they share none."""
        prefixes = {r.rsplit("_s", 1)[0] for r in self.runs}
        return prefixes.pop() if len(prefixes) == 1 else f"lr {hp(self.lr)}, gamma {hp(self.gamma)}"

    @property
    def fitted(self) -> bool:
        return self.b is not None

    def at(self, step: float) -> float:
        return self.a + self.b * math.log10(step)


def trend(rows: list[dict]) -> list[Trend]:
    """Per setting (rows sharing lr and gamma, seeds pooled), ordered by (lr, gamma): the line
    MIG = a + b * log10(step) through every scored chunk at step >= TREND_FROM, with one slope b for
    the setting fitted within runs (each run centred on its own mean: least squares with a level per
    run) and a the mean of the runs' levels, fitted only when those chunks cover >= TREND_MIN_STEPS
    distinct steps, and read at TREND_AT.
    ``rows`` are long_runs.csv's (strings as the file holds them, or numbers)."""
    groups: dict[tuple[float, float], list[dict]] = {}
    for r in rows:
        groups.setdefault((float(r["lr"]), float(r["gamma"])), []).append(r)
    out = []
    for (lr, gamma), rs in sorted(groups.items()):
        pts = sorted((int(float(r["step"])), float(r["mig"])) for r in rs if int(float(r["step"])) >= TREND_FROM)
        t = Trend(lr, gamma, sorted({r["run"] for r in rs}), sorted({s for s, _ in pts}), pts)
        # one slope for the setting, each run its own level (run-centred least squares), so a seed
        # that has more chunks than the other does not turn the seeds' difference into slope
        by_run: dict[str, list[tuple[float, float]]] = {}
        for r in rs:
            if int(float(r["step"])) >= TREND_FROM:
                by_run.setdefault(r["run"], []).append((math.log10(int(float(r["step"]))), float(r["mig"])))
        means = {run: (statistics.fmean(x for x, _ in p), statistics.fmean(y for _, y in p)) for run, p in by_run.items()}
        den = sum((x - means[run][0]) ** 2 for run, p in by_run.items() for x, _ in p)
        if len(t.steps) >= TREND_MIN_STEPS and den > 0:
            t.b = sum((x - means[run][0]) * (y - means[run][1]) for run, p in by_run.items() for x, y in p) / den
            t.a = statistics.fmean(my - t.b * mx for mx, my in means.values())
            t.predicted = {s: t.at(s) for s in TREND_AT}
        out.append(t)
    return out


def trend_row(t: Trend) -> list[str]:
    covered = f"{thousands(t.steps[0])}-{thousands(t.steps[-1])}" if len(t.steps) > 1 else \
        thousands(t.steps[0]) if t.steps else f"none >= {thousands(TREND_FROM)}"
    head = [f"{t.name} (lr {hp(t.lr)}, gamma {hp(t.gamma)})", ", ".join(t.runs), str(len(t.points)), covered]
    if not t.fitted:
        return head + [f"too few chunks ({len(t.steps)} of {TREND_MIN_STEPS})"] + ["-" for _ in TREND_AT]
    return head + [f"{t.b:+.3f}"] + [num(t.predicted[s]) for s in TREND_AT]


@register(f"{FVL}/trend")
def trend_table() -> str:
    at = " and ".join(thousands(s) for s in TREND_AT)
    lead = (f"Per setting (seeds pooled), a line MIG = a + b log10(step) through every scored chunk at >= "
            f"{thousands(TREND_FROM)} steps (earlier chunks are still warming up): one slope fitted within the runs "
            f"(each run its own level, so a seed with more chunks does not turn the seeds' difference into slope) "
            f"and the runs' mean level, fitted once a "
            f"setting has chunks at >= {TREND_MIN_STEPS} distinct steps, and read at {at} steps: an "
            f"extrapolation of that line, not a measurement (the seeds' MIG is {num(seeds_mig(), 2)}, "
            f"`{SEEDS_CLAIM[0]}`).")
    header = ["setting", "runs", "points", "steps covered", "slope (MIG per decade of steps)",
              *(f"predicted MIG at {thousands(s)}" for s in TREND_AT)]
    return lead + "\n\n" + markdown_table(header, [trend_row(t) for t in trend(read_csv(CSV))])


# ------------------------------------------------------------------------------- the cost
FOLDERS = f"{FVL}/run_folders.csv"


def mb(v: Any) -> str:
    return "-" if v in (None, "") else num(int(v) / 1e6, 1)


def per_10k(r: dict) -> str:
    return num(float(r["wall_time_s"]) / int(r["steps"]) * 10_000, 0) if int(r["steps"]) else "-"


def checkpoint_mb(r: dict) -> str:
    parts = [r[k] for k in ("model_bytes", "objective_bytes", "state_bytes")]
    return "no checkpoint yet" if all(v in (None, "") for v in parts) else mb(sum(int(v) for v in parts if v != ""))


@register(f"{FVL}/cost")
def cost_table() -> str:
    """Each run folder as collect.py last saw it (run_folders.csv): steps trained, training time
    over all its sessions, the average seconds per 10,000 steps, and its newest checkpoint's size
    by file (a folder keeps two checkpoints: the newest and the one before)."""
    rows = sorted(read_csv(FOLDERS), key=lambda r: r["run"])
    body = [[r["run"], r["model"], thousands(r["steps"]), r["status"], num(float(r["wall_time_s"]) / 3600, 2),
             per_10k(r), r["cpu"] or "not recorded", mb(r["model_bytes"]), mb(r["objective_bytes"]),
             mb(r["state_bytes"]), checkpoint_mb(r)] for r in rows]
    return markdown_table(["run", "model", "steps trained", "status", "training hours (all sessions)",
                           "seconds per 10,000 steps (average)", "CPU (summary.json)", "checkpoint: model (MB)",
                           "checkpoint: objective (MB)", "checkpoint: optimizers and RNG (MB)",
                           "checkpoint (MB)"], body)


# ------------------------------------------------------------------------------- the seeds' rows, at length
# Issue 31 items 2 and 3, shown in seeds_slides_cpu/published.md beside the 5,000-step rows.
BVAE_CSV = f"{FVL}/beta_vae_long.csv"          # collect.py writes it once a beta-VAE run has a scored chunk
BVAE_PLANNED = {1.0: "bvae_b1", 4.0: "bvae_b4"}  # run_chunks.sh's beta-VAE runs (issue 31 item 2)
FINAL = 100_000                                  # run_chunks.sh's FINAL: the runs' planned length
SLIDES_STUDY = "seeds_slides_cpu/study.toml"


@register("seeds_slides_cpu/claims-long")
def claims_long() -> str:
    """The seeds' FactorVAE MIG against the long beta-1 runs: per setting, its best scored chunk,
    the mean over its seeds at the furthest step all of them reached, and whether any chunk reached
    the seeds' MIG ("not reproduced at N steps": N the setting's furthest scored step)."""
    goal = seeds_mig()
    rows = read_csv(CSV)
    groups: dict[tuple[float, float], list[dict]] = {}
    for r in rows:
        groups.setdefault((float(r["lr"]), float(r["gamma"])), []).append(r)
    lines = []
    for t in trend(rows):
        rs = groups[(t.lr, t.gamma)]
        best = max(rs, key=lambda r: float(r["mig"]))
        last = {run: max(int(r["step"]) for r in rs if r["run"] == run) for run in t.runs}
        common = min(last.values())
        at_common = [float(r["mig"]) for r in rs if int(r["step"]) == common]
        top = max(last.values())
        verdict = (f"reproduced by {best['run']} at {thousands(best['step'])} steps" if float(best["mig"]) >= goal
                   else f"not reproduced at {thousands(top)} steps")
        lines.append(f"- FactorVAE with Kim & Mnih's loss (KL weight 1) trained long, {t.name} (lr {hp(t.lr)}, "
                     f"gamma {hp(t.gamma)}; {len(t.runs)} seeds, `{CSV}`): best chunk {num(best['mig'])} "
                     f"({best['run']} at {thousands(best['step'])} steps); mean over the seeds at {thousands(common)} "
                     f"steps, the furthest all reached: {num(statistics.fmean(at_common))}; the seeds' "
                     f"{num(goal, 2)} — {verdict} (planned: {thousands(FINAL)}).")
    return "\n".join(lines)


@register("seeds_slides_cpu/long-beta-vae")
def long_beta_vae() -> str:
    """beta-VAE at beta 1 and 4: the slides' reconstruction and KL beside ours at 5,000 steps
    (seeds_slides_cpu's sweep) and at each scored 10,000-step chunk of the long runs; a planned run
    without a scored chunk is listed as not run."""
    ref = next(r for r in read_toml(SLIDES_STUDY)["reference"] if r["model"] == "beta-vae")
    theirs = {float(row[0]): row[1:] for row in ref["rows"]}
    short = {float(r["beta"]): r for r in read_csv("seeds_slides_cpu/results.csv")
             if r["model"] == "beta-vae" and r["status"] == "finished" and r["beta"]}
    train = read_toml(SLIDES_STUDY)["train"]
    try:
        long = read_csv(BVAE_CSV)
    except FileNotFoundError:
        long = []
    body, gaps = [], []
    for beta, run in BVAE_PLANNED.items():
        rec_t, kl_t = (num(v, 2) for v in theirs[beta])
        s = short[beta]
        body.append([hp(beta), "5,000", "seeds_slides_cpu (sweep)", train["precision"], num(s["val_rec"], 2), rec_t,
                     num(s["val_kl"], 2), kl_t])
        mine = sorted((r for r in long if float(r["beta"]) == beta), key=lambda r: int(r["step"]))
        body += [[hp(beta), thousands(r["step"]), r["run"], r["precision"], num(r["val_rec"], 2), rec_t,
                  num(r["val_kl"], 2), kl_t] for r in mine]
        if not mine or int(mine[-1]["step"]) < FINAL:
            done = "not run yet" if not mine else f"not reached yet (scored to {thousands(mine[-1]['step'])})"
            body.append([hp(beta), f"{thousands(FINAL)} (planned)", f"{run}: {done}", "-", "-", rec_t, "-", kl_t])
        if mine:
            gaps.append(gap_sentence(beta, s, train["precision"], mine[-1], theirs[beta]))
    lead = (f"beta-VAE on dSprites, one seed per beta (lr {hp(float(train['lr']))}, batch {train['batch_size']}): validation reconstruction and KL (nats per image) at 5,000 steps and at each scored "
            f"chunk of the long runs (`{BVAE_CSV}`), beside the slides' (units not stated there; steps not "
            f"stated).")
    table = markdown_table(["beta", "steps", "run", "precision", "rec: ours", "rec: theirs", "KL: ours", "KL: theirs"], body)
    return "\n\n".join([lead, table, *(["How much of the distance to the slides' the length closed (ours minus "
                                          "theirs, nats per image):", "\n".join(gaps)] if gaps else [])])


def gap_sentence(beta: float, short: dict, short_precision: str, furthest: dict, theirs: list) -> str:
    """One bullet: ours minus the slides' reconstruction and KL at 5,000 steps and at the furthest
    scored chunk, and the share of the 5,000-step reconstruction distance that closed."""
    rec_5k, rec_n = (float(r["val_rec"]) - float(theirs[0]) for r in (short, furthest))
    kl_5k, kl_n = (float(r["val_kl"]) - float(theirs[1]) for r in (short, furthest))
    closed = ("ours was not above theirs" if rec_5k <= 0 else "closed, and ours is now below theirs" if rec_n < 0
              else f"{num(100 * (1 - rec_n / rec_5k), 0)}% of it closed")
    return (f"- beta {hp(beta)}: rec {num(rec_5k, 2)} at 5,000 steps ({short_precision}), {num(rec_n, 2)} at "
            f"{thousands(furthest['step'])} ({furthest['precision']}): {closed}; KL {num(kl_5k, 2)}, then {num(kl_n, 2)}.")
