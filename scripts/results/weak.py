"""docs/results/weak: the Ada-GVAE recipes' evaluation draws (issue 30), every draw their study
files plan (a planned draw without a finished run folder is listed as not run), and their median
against the beta-TCVAE demo recipe's on the same draws; the side-by-side table is weak_side.py's.

The recipes are stated once, in ``RECIPES``: the 8,000-step recipe (``draws_*.toml``, ``sweeps/``,
``draws.csv``) and the same draws continued to 16,000 steps (``draws16_*.toml``, ``sweeps16/``,
``draws16.csv``) and the 16,000-step recipe trained from scratch on fresh seeds 5-9
(``fresh16_*.toml``, ``fresh16/``, ``fresh16.csv``) and the beta-4 recipe that screen 2 pointed to,
on fresh seeds 10-14 (``beta4_16_*.toml``, ``beta4_16/``, ``beta4_16.csv``); the 16,000-step tables
are in weak_lengths.py.
A recipe's data, once committed
(README "How it was made", "Twice the length"): its sweep folders without checkpoints
(results.csv, timings.csv, the run folders), its per-factor file (``scripts/recipe_draws.py``:
per-factor MIG, active latents, max NMI) and, for the 8,000-step draws, ``weak/machine.json``
(``{"cpu": untwine.train.speed.cpu_model(), "torch": ..., "code": ...}``). Until then the tables
say that no draws are committed yet."""

from __future__ import annotations

import re
import statistics
from dataclasses import dataclass
from typing import Any, Callable

from .core import (FACTORS, MBF, TABLES, Table, csv_rows, draw_list, factor_columns, key, markdown_table,
                   num, read_csv, read_json, read_toml, register, results_path, span, thousands)
from .demo_recipe import DEMO, gamma0_draws

WEAK = "weak"
BAR = 0.3  # issue 30's bar: MIG >= 0.3 (in at least 9 of 10 draws)
GOAL_HITS, GOAL_OF = 9, 10  # issue 30's goal: that many draws of so many at the bar
NONE_YET = "no draws committed yet"
PAIR_MODELS = {"ada-gvae", "ada-ml-vae", "gvae", "ml-vae"}  # a step's batch is pairs: two images each
HIDDEN_HPARAMS = {"stratified", "dlib_pairs"}  # switches at their defaults, not the recipe's settings
# CPUs the folders' READMEs state (their "Machine" lines; the run folders there do not record one)
DEMO_CPU = (f"{DEMO}/README.md",
            "Intel Xeon **with AMX** and AVX512-BF16 (`Intel(R) Xeon(R) Processor`, family 6 model 167)")


# ------------------------------------------------------------------------------- small helpers
def hit(v: Any) -> bool:
    return v not in (None, "") and float(v) >= BAR


def mig_cell(v: Any) -> str:
    return f"**{num(v)}**" if hit(v) else num(v)


def hits(values: list[Any]) -> int:
    return sum(hit(v) for v in values)


def med(values: list[Any], digits: int = 3, of: int | None = None) -> str:
    """Median of the non-empty ``values``; ``-`` when none; ``(k of n draws)`` when some are empty."""
    vs = [float(v) for v in values if v not in (None, "")]
    if not vs:
        return "-"
    n = len(values) if of is None else of
    return num(statistics.median(vs), digits) + (f" ({len(vs)} of {n} draws)" if len(vs) < n else "")


def minutes(seconds: Any) -> str:
    return "" if seconds in (None, "") else repr(float(seconds) / 60)


def recipe_label(cfg: dict) -> str:
    """``ada-gvae (beta 1, k 1), lr 0.001, 8,000 steps x 32 pairs (64 images)`` from a run's config
    (or a study file's settings in the same keys)."""
    hp = ", ".join(f"{k} {float(v):g}" for k, v in sorted(cfg.get("hparams", {}).items()) if k not in HIDDEN_HPARAMS)
    b = int(cfg["batch_size"])
    per_step = f"{b} pairs ({2 * b} images)" if cfg["model"] in PAIR_MODELS else f"{b} images"
    return f"{cfg['model']}" + (f" ({hp})" if hp else "") + f", lr {float(cfg['lr']):g}, " \
           f"{thousands(cfg['steps'])} steps x {per_step}"


def images_per_step(cfg: dict) -> int:
    return int(cfg["batch_size"]) * (2 if cfg["model"] in PAIR_MODELS else 1)


# ------------------------------------------------------------------------------- CPUs
def cpu_key(text: str) -> tuple | None:
    """(vendor, family, model) of a CPU as recorded: ``cpu_model()``'s ``NAME (F/M/S)`` or prose's
    ``family F model M``; None when the text names no family and model."""
    m = re.search(r"\((\d+)/(\d+)(?:/\d+)?\)", text) or re.search(r"family (\d+) model (\d+)", text)
    if not m:
        return None
    vendor = "AMD" if "AMD" in text else "Intel" if "Intel" in text else ""
    return vendor, int(m.group(1)), int(m.group(2))


def has_amx(text: str) -> bool:
    """Whether a CPU statement says AMX ("AVX512-BF16, no AMX", "without AMX", "AMX: no" say the
    CPU has none)."""
    denied = re.sub(r"\b(?:no|without)\s+AMX\b|\bAMX:\s*no\b", "", text, flags=re.IGNORECASE)
    return "AMX" in denied


def stated_cpu(where: tuple[str, str]) -> dict:
    """A CPU stated in a README's prose: the phrase must still be there (whitespace aside), or the
    check fails and says where, rather than show a CPU the folder no longer states."""
    path, phrase = where
    text = " ".join(results_path(path).read_text().split())
    if phrase not in text:
        raise SystemExit(f"docs/results/{path} no longer states its CPU as {phrase!r}: update scripts/results/weak.py")
    k = cpu_key(phrase)
    label = f"Intel Xeon, family {k[1]} model {k[2]}" + (", AMX" if has_amx(phrase) else "")
    return {"label": f"{label} (stated in `{path}`)", "keys": {k}}


def recorded_cpu(summaries: list[dict], machine: str | None = None, stated: tuple[str, str] | None = None) -> dict:
    """The CPU of a set of draws, from the data that records it: the run folders' summary.json
    (``cpu``), else a machine.json, else a README's statement; else ``not recorded``."""
    cpus = list(dict.fromkeys(s["cpu"] for s in summaries if s.get("cpu")))
    if cpus:
        return {"label": "; ".join(cpus) + " (runs' `summary.json`)", "keys": {cpu_key(c) for c in cpus}}
    if machine and results_path(machine).is_file() and read_json(machine).get("cpu"):
        cpu = read_json(machine)["cpu"]
        return {"label": f"{cpu} (`{machine}`)", "keys": {cpu_key(cpu)}}
    if stated:
        return stated_cpu(stated)
    return {"label": "not recorded", "keys": {None}}


# ------------------------------------------------------------------------------- the recipes
@dataclass(frozen=True)
class Recipe:
    """One measured recipe of this folder, stated once: its name (the side-by-side label), its
    study files (one per precision, in weak/), the folder under weak/ holding its committed sweep
    folders (``SWEEPS/PRECISION[_*]/``, without checkpoints), its per-factor file
    (``scripts/recipe_draws.py``), the machine.json that states its CPU where its runs' summary.json
    do not, and the recipe whose draws it continues (a continued draw resumes that draw's run
    folder: the same seed and precision, trained on to this recipe's steps)."""

    name: str
    studies: tuple[str, ...]
    sweeps: str
    draws_csv: str
    machine: str | None = None
    continues: "Recipe | None" = None


R8 = Recipe("Ada-GVAE, first recipe (8,000 steps)", ("draws_bf16.toml", "draws_fp32.toml"), "sweeps", "draws.csv",
            machine=f"{WEAK}/machine.json")
R16 = Recipe("Ada-GVAE (same draws continued)", ("draws16_bf16.toml", "draws16_fp32.toml"), "sweeps16",
             "draws16.csv", continues=R8)
R16F = Recipe("Ada-GVAE 16,000 steps, fresh seeds", ("fresh16_bf16.toml", "fresh16_fp32.toml"), "fresh16",
              "fresh16.csv")
RB4 = Recipe("**Ada-GVAE recipe B4 (the chosen recipe), fresh seeds**", ("beta4_16_bf16.toml", "beta4_16_fp32.toml"),
             "beta4_16", "beta4_16.csv")
RECIPES = (R8, R16, R16F, RB4)  # the side-by-side table's order


def planned(recipe: Recipe) -> bool:
    """Whether the recipe's study files are all here (a test's docs/results may hold only some)."""
    return all(results_path(f"{WEAK}/{f}").is_file() for f in recipe.studies)


def weak_studies(recipe: Recipe = R8) -> list[dict]:
    return [read_toml(f"{WEAK}/{f}") | {"file": f} for f in recipe.studies]


def weak_config(recipe: Recipe = R8) -> dict:
    """The recipe as the study files set it, in a run config's keys (checked: the same in both)."""
    cfgs = []
    for st in weak_studies(recipe):
        (model,) = st["models"]
        cfgs.append({"model": model["name"], "hparams": {k: v[0] for k, v in model["grid"].items()},
                     **{k: st["train"][k] for k in ("lr", "steps", "batch_size")}})
    if any(c != cfgs[0] for c in cfgs):
        raise SystemExit(f"docs/results/{WEAK}: {' and '.join(recipe.studies)} plan different recipes")
    return cfgs[0]


def committed(recipe: Recipe = R8) -> bool:
    return results_path(f"{WEAK}/{recipe.sweeps}").is_dir()


def sweep_folders(precision: str, recipe: Recipe = R8) -> list[str]:
    """The committed sweep folders of one precision: ``SWEEPS/PRECISION/`` and any
    ``SWEEPS/PRECISION_*/`` (the same study run in another process for some of its seeds, e.g.
    ``--set study.seeds=[4]``)."""
    root = results_path(f"{WEAK}/{recipe.sweeps}")
    if not root.is_dir():
        return []
    names = sorted(p.name for p in root.iterdir() if p.is_dir() and (p.name == precision or p.name.startswith(f"{precision}_")))
    return [f"{WEAK}/{recipe.sweeps}/{n}" for n in names]


def run_steps(run: str, timing: dict) -> int | None:
    """The steps a committed run folder reached: its summary.json's, else its timings.csv row's."""
    steps = read_json(f"{run}/summary.json").get("steps") if results_path(f"{run}/summary.json").is_file() else None
    steps = timing.get("steps") if steps in (None, "") else steps
    return None if steps in (None, "") else int(float(steps))


def weak_draws(recipe: Recipe = R8) -> list[dict]:
    """One row per draw the study files plan, with its data where a finished run folder (with
    metrics.json, at the recipe's steps) is committed in a sweep folder of its precision
    (:func:`sweep_folders`); ``ran`` False otherwise. A run folder at other steps (a continued
    draw's folder before it was continued) is not the recipe's draw.

    Minutes: ``train_wall_s`` / 60 from the sweep's timings.csv. A continued run's
    ``train_wall_s`` is the whole run's (untwine keeps a run's training seconds in its checkpoint
    and adds each resumed call's; summary.json's ``session`` block holds the last call's alone), so
    a continued draw's minutes cover its first recipe's steps as well; the check fails if one is
    below the training time of the draw it continues."""
    per_factor = {}
    if results_path(f"{WEAK}/{recipe.draws_csv}").is_file():
        per_factor = {(r["precision"], int(r["seed"])): r for r in read_csv(f"{WEAK}/{recipe.draws_csv}")}
    steps = int(weak_config(recipe)["steps"])
    before = {(r["precision"], int(r["seed"])): r for r in weak_draws(recipe.continues) if r["ran"]} \
        if recipe.continues and planned(recipe.continues) else {}
    rows = []
    for st in weak_studies(recipe):
        prec = st["train"]["precision"]
        done: dict[int, tuple[str, dict]] = {}
        timing: dict[tuple[str, str], dict] = {}
        for sweep in sweep_folders(prec, recipe):
            if results_path(f"{sweep}/timings.csv").is_file():
                timing |= {(sweep, r["run"]): r for r in read_csv(f"{sweep}/timings.csv")}
            if results_path(f"{sweep}/results.csv").is_file():
                for r in read_csv(f"{sweep}/results.csv"):
                    run = f"{sweep}/{r['run']}"
                    if (r.get("status") == "finished" and results_path(f"{run}/metrics.json").is_file()
                            and run_steps(run, timing.get((sweep, r["run"]), {})) in (steps, None)):
                        done.setdefault(int(r["seed"]), (sweep, r))
        for seed in sorted(int(s) for s in st["study"]["seeds"]):
            row = {"precision": prec, "seed": str(seed), "study": st["file"], "ran": seed in done}
            if seed in done:
                (sweep, r), d = done[seed], per_factor.get((prec, seed), {})
                run = f"{sweep}/{r['run']}"
                wall = timing.get((sweep, r["run"]), {}).get("train_wall_s")
                first = before.get((prec, seed), {}).get("minutes", "")
                if wall not in (None, "") and first != "" and float(wall) / 60 < float(first):
                    raise SystemExit(f"docs/results/{run}: train_wall_s {wall} is below the {prec} seed {seed} draw's "
                                     f"it continues ({float(first) * 60:.3f} s): not the whole run's; "
                                     f"update scripts/results/weak.py")
                row |= {"mig": r["mig"], "dci": r.get("dci_disentanglement", ""), "minutes": minutes(wall),
                        "active": d.get("active", ""), "max_nmi": d.get("max_nmi", ""),
                        **{f: d.get(f, "") for f in FACTORS},
                        "summary": read_json(f"{run}/summary.json") if results_path(f"{run}/summary.json").is_file()
                        else {}}
            rows.append(row)
    return sorted(rows, key=lambda r: (r["precision"], int(r["seed"])))


def missing_studies(recipe: Recipe) -> str:
    return (f"**Not planned here**: {' and '.join(f'`{f}`' for f in recipe.studies)} "
            f"{'is' if len(recipe.studies) == 1 else 'are'} not in `docs/results/{WEAK}/`.")


def draws_lead(rows: list[dict], recipe: Recipe = R8) -> str:
    ran = [r for r in rows if r["ran"]]
    goal = f"issue 30's goal: MIG >= {BAR} in at least {GOAL_HITS} of {GOAL_OF}"
    if not committed(recipe):
        return (f"**{NONE_YET.capitalize()}** (`docs/results/{WEAK}/{recipe.sweeps}/` is missing): 0 of {len(rows)} "
                f"planned draws ran ({goal}).")
    text = f"{len(ran)} of {len(rows)} planned draws ran; {hits([r['mig'] for r in ran])} reach MIG >= {BAR}"
    if ran:
        text += f"; median {med([r['mig'] for r in ran])}, range {span([r['mig'] for r in ran])}"
    missing = [(r["precision"], r["seed"]) for r in rows if not r["ran"]]
    if missing:
        text += f". **Not run: {draw_list(missing)}**"
    text += f" ({goal})."
    below = len(ran) - hits([r["mig"] for r in ran])
    if missing and len(rows) - below < GOAL_HITS * len(rows) / GOAL_OF:
        text += (f" With {below} of the draws run below the bar, at most {len(rows) - below} of the {len(rows)} "
                 "planned can reach it: the goal is out of reach for this recipe whatever the draws not run give.")
    return text


def continued_note(recipe: Recipe) -> str:
    """What a continued recipe's minutes and draws are, in a sentence (nothing for a fresh one)."""
    if recipe.continues is None:
        return ""
    a, b = (thousands(weak_config(r)["steps"]) for r in (recipe.continues, recipe))
    return (f"Each draw is the {a}-step draw of the same precision and seed, continued to {b} steps; minutes: "
            f"all {b} steps (a continued run's `train_wall_s` includes the {a} steps before it).")


def draws_table(recipe: Recipe) -> str:
    if not planned(recipe):
        return missing_studies(recipe)
    rows = weak_draws(recipe)
    body = []
    for r in rows:
        if r["ran"]:
            body.append([r["precision"], r["seed"], mig_cell(r["mig"]), num(r["dci"]), *[num(r[f]) for f in FACTORS],
                         r["active"] or "-", num(r["max_nmi"]), num(r["minutes"], 1), f"`{r['study']}`"])
        else:
            body.append([r["precision"], r["seed"], "**not run**", *["-"] * (len(FACTORS) + 4),
                         f"planned in `{r['study']}`"])
    note = continued_note(recipe)
    return "\n".join([draws_lead(rows, recipe) + (f" {note}" if note else ""), "", markdown_table(
        ["precision", "seed", "MIG", "DCI disentanglement", *FACTORS, "active latents", "max NMI", "minutes",
         "study file"], body)])


@register(f"{WEAK}/draws")
def draws() -> str:
    """Every planned draw (the study files' seeds x precision): MIG and DCI disentanglement from
    the sweep's results.csv, per-factor MIG, active latents and max NMI from draws.csv, minutes
    from timings.csv (train_wall_s / 60)."""
    return draws_table(R8)


# ------------------------------------------------------------------------------- the demo recipe's draws, and the same draws compared
def demo_draws() -> list[dict]:
    """The beta-TCVAE demo recipe's gamma-0 draws (demo_recipe.gamma0_draws: evaluation and screen
    told apart), with DCI (if the sweep's results.csv has it), minutes and config from its sweep."""
    out = []
    for r in gamma0_draws():
        sweep, run = r["run"].split("/dsprites/", 1)
        sweep, run = f"{DEMO}/gamma0/{sweep}", f"dsprites/{run}"
        res = next(x for x in read_csv(f"{sweep}/results.csv") if x["run"] == run)
        t = next(x for x in read_csv(f"{sweep}/timings.csv") if x["run"] == run)
        out.append(dict(r, dci=res.get("dci_disentanglement", ""), minutes=minutes(t["train_wall_s"]),
                        config=read_json(f"{sweep}/{run}/config.json"),
                        summary=read_json(f"{sweep}/{run}/summary.json")))
    return out



def same_seeds_table(recipe: Recipe, caveat: Callable[[Recipe, list[dict]], str] = lambda r, d: "",
                     theirs: Callable[[], list[dict]] = demo_draws) -> str:
    """The recipe's draws against the beta-TCVAE demo recipe's (``theirs()``, rows as
    :func:`demo_draws`'; default its 8,000-step gamma-0 draws) on the (precision, seed) draws both
    ran; ``caveat(recipe, demo draws)``, when not empty, is said first (and the headers name the
    two step counts)."""
    if not planned(recipe):
        return missing_studies(recipe)
    draws = theirs()
    caveat = caveat(recipe, draws)
    head = f"{caveat}\n\n" if caveat else ""
    ours = {(r["precision"], int(r["seed"])): r for r in weak_draws(recipe) if r["ran"]}
    demo = {(r["precision"], int(r["seed"])): r for r in draws}
    common = sorted(set(ours) & set(demo))
    if not common:
        return head + (f"**{NONE_YET.capitalize()}**: no (precision, seed) draw of Ada-GVAE to set beside the demo "
                       "recipe's." if not ours else "The demo recipe ran none of the Ada-GVAE draws' (precision, seed).")
    sets = [("every draw both ran", common)]
    ev = [k for k in common if demo[k]["role"] == "evaluation"]
    if ev and ev != common:
        sets.append(("without the demo recipe's screen draws", ev))
    screen = [k for k in common if k not in ev]
    body = []
    for label, keys in sets:
        a, b = [ours[k]["mig"] for k in keys], [demo[k]["mig"] for k in keys]
        higher = sum(float(x) > float(y) for x, y in zip(a, b))
        body.append([f"{label}: {draw_list([(p, str(s)) for p, s in keys])}", str(len(keys)), med(a),
                     f"{hits(a)} of {len(keys)}", med(b), f"{hits(b)} of {len(keys)}", f"{higher} of {len(keys)}"])
    wc, dc = weak_config(recipe), demo[common[0]]["config"]
    who_a, who_b = ("Ada-GVAE", "beta-TCVAE demo") if not caveat else \
        (f"Ada-GVAE at {thousands(wc['steps'])} steps", f"beta-TCVAE demo at {thousands(dc['steps'])} steps")
    table = markdown_table(["draws (precision, seed)", "draws", f"{who_a}: median MIG", f"{who_a}: MIG >= {BAR}",
                            f"{who_b}: median MIG", f"{who_b}: MIG >= {BAR}", "Ada-GVAE's MIG higher"], body)
    length = (f"Both {thousands(wc['steps'])} steps of {images_per_step(wc)} images"
              if (wc["steps"], images_per_step(wc)) == (dc["steps"], images_per_step(dc)) else
              f"Ada-GVAE {thousands(wc['steps'])} steps of {images_per_step(wc)} images, the demo recipe "
              f"{thousands(dc['steps'])} of {images_per_step(dc)}")
    cpu_a = recorded_cpu([ours[k]["summary"] for k in common], machine=recipe.machine)
    cpu_b = recorded_cpu([demo[k]["summary"] for k in common], stated=DEMO_CPU)
    if None in cpu_a["keys"] | cpu_b["keys"]:
        same = "whether the CPUs are the same is not recorded"
    elif cpu_a["keys"] == cpu_b["keys"]:
        same = "the same CPU model"
    else:
        same = "**the CPUs differ**"
    studies = ", ".join(f"`{s}`" for s in dict.fromkeys(demo[k]["study"] for k in screen))
    note = (f" The demo recipe's {draw_list([(p, str(s)) for p, s in screen])} "
            f"{'is' if len(screen) == 1 else 'are'} its screen's ({studies}), not evaluation draws." if screen else "")
    return (f"{head}{table}\n\n{length} (Ada-GVAE: {wc['batch_size']} pairs). CPU: Ada-GVAE {cpu_a['label']}; the "
            f"demo recipe {cpu_b['label']}: {same}.{note}")


@register(f"{WEAK}/same-seeds")
def same_seeds() -> str:
    """Ada-GVAE against the beta-TCVAE demo recipe on the (precision, seed) draws both ran, at
    the same step count (the issue's comparison)."""
    return same_seeds_table(R8)


# The screen (screen.toml): not evaluation draws. mig_by_factor.py at the run's last checkpoint.
TABLES[f"{WEAK}/screen"] = Table(
    sources=[f"{WEAK}/screen_mig.csv"], rows=csv_rows(f"{WEAK}/screen_mig.csv"),
    columns=[("run", key("run", lambda v: v.split("ada-gvae/", 1)[-1])), ("step", key("step", thousands)),
             (f"MIG ({MBF})", key("mig", num)), *factor_columns()])

# The shipped ada-gvae-dsprites as it trained: the bf16 seed-1 draw (8,000 steps), a copy of its
# folder resumed 4,000 steps at a time; mig_by_factor.py after each chunk (ship_mig.csv).
TABLES[f"{WEAK}/ship-trajectory"] = Table(
    sources=[f"{WEAK}/ship_mig.csv"], rows=csv_rows(f"{WEAK}/ship_mig.csv", order=lambda r: int(r["step"])),
    columns=[("step", key("step", thousands)), (f"MIG ({MBF})", key("mig", num)), *factor_columns()])

# The shipped model under evaluation seeds 0-4 (untwine evaluate --metrics mig --seed S): ship_eval_seeds.csv.
TABLES[f"{WEAK}/ship-eval-seeds"] = Table(
    sources=[f"{WEAK}/ship_eval_seeds.csv"], rows=csv_rows(f"{WEAK}/ship_eval_seeds.csv"),
    columns=[("model", key("model")), ("evaluation seed", key("eval_seed")), ("MIG (`untwine evaluate`)", key("mig", num))])
