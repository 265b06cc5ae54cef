"""docs/results/weak, "Twice the length" and "Fresh seeds": the 16,000-step recipes of weak.py's
registry (``RECIPES``). ``R16``, the 8,000-step draws continued to 16,000 steps: its draws, each
draw's MIG at both lengths, and the same-seeds comparison with the beta-TCVAE demo recipe, whose
draws ran 8,000 steps (so that one is not issue 30's same-step comparison, and says so).
``R16F``, the same settings trained from scratch on seeds 5-9 (fixed before they ran): its draws.
``DEMO16``, the beta-TCVAE demo recipe trained to 16,000 steps on R16's (precision, seed) draws
(``demo16_*.toml``, ``demo16/``, ``demo16.csv``): issue 30's same-step comparison at that length.

The data, once committed (README "Twice the length"): ``weak/sweeps16/{bf16,fp32}/`` and
``weak/draws16.csv``, laid out as the 8,000-step draws' ``sweeps/`` and ``draws.csv``. Until then
every planned draw is listed as not run."""

from __future__ import annotations

from decimal import Decimal

from .core import draw_list, markdown_table, num, register, thousands
from .weak import (BAR, DEMO, R8, R16, R16F, RB4, WEAK, Recipe, committed, draws_table, hit, hits, mig_cell, missing_studies, planned,
                   same_seeds_table, weak_config, weak_draws)


@register(f"{WEAK}/draws16")
def draws16() -> str:
    """The same draws continued to 16,000 steps (draws16_*.toml, sweeps16/, draws16.csv), as
    ``weak/draws``. Minutes: the 16,000-step sweep's timings.csv ``train_wall_s`` / 60, which is
    the whole run's: untwine keeps a run's training seconds in its checkpoint, so a continued
    run's ``train_wall_s`` includes the 8,000 steps before it (summary.json's ``session`` block
    holds the continuation alone). weak.weak_draws fails the check if a continued draw's time is
    below that of the 8,000-step draw it continues."""
    return draws_table(R16)


def change(a: str, b: str) -> str:
    """``b - a`` to three decimals with its sign (from the files' strings, exactly)."""
    d = Decimal(b) - Decimal(a)
    return ("+" if d > 0 else "") + num(str(d))


def lengths_table(recipe: Recipe) -> str:
    """Per (precision, seed) the recipe plans: MIG of the draw it continues and its own, side by
    side; then how many reach the bar at each length and how many rose and fell."""
    base = recipe.continues
    if base is None or not planned(recipe) or not planned(base):
        return missing_studies(recipe if base is None or not planned(recipe) else base)
    steps = [thousands(weak_config(r)["steps"]) for r in (base, recipe)]
    before = {(r["precision"], r["seed"]): r for r in weak_draws(base)}
    body, both, rows = [], [], weak_draws(recipe)
    for r in rows:
        b = before.get((r["precision"], r["seed"]), {"ran": False})
        cells = [mig_cell(x["mig"]) if x["ran"] else "**not run**" for x in (b, r)]
        diff = change(b["mig"], r["mig"]) if b["ran"] and r["ran"] else "-"
        if b["ran"] and r["ran"]:
            both.append((b["mig"], r["mig"]))
        body.append([r["precision"], r["seed"], *cells, diff])
    a_ran = [b for b in before.values() if b["ran"]]
    b_ran = [r for r in rows if r["ran"]]
    text = f"MIG >= {BAR}: {hits([b['mig'] for b in a_ran])} of {len(a_ran)} draws at {steps[0]} steps" + \
        (f" ({len(a_ran)} of {len(before)} planned ran)" if len(a_ran) != len(before) else "")
    if b_ran:
        text += f"; {hits([r['mig'] for r in b_ran])} of {len(b_ran)} at {steps[1]} steps" + \
            (f" ({len(b_ran)} of {len(rows)} planned ran)" if len(b_ran) != len(rows) else "")
    else:
        text += f"; at {steps[1]} steps none of the {len(rows)} planned draws ran yet"
    if both:
        up = sum(Decimal(y) > Decimal(x) for x, y in both)
        down = sum(Decimal(y) < Decimal(x) for x, y in both)
        same = len(both) - up - down
        crossed = [(r["precision"], r["seed"]) for r in rows if r["ran"]
                   and (r["precision"], r["seed"]) in before and before[(r["precision"], r["seed"])]["ran"]
                   and hit(r["mig"]) != hit(before[(r["precision"], r["seed"])]["mig"])]
        text += (f". Of the {len(both)} draws at both lengths, {up} rose and {down} fell" +
                 (f" ({same} unchanged)" if same else "") +
                 (f"; across the bar: {draw_list(crossed)}" if crossed else "; none crossed the bar"))
    else:
        text += "; no draw at both lengths yet"
    table = markdown_table(["precision", "seed", f"MIG at {steps[0]} steps", f"MIG at {steps[1]} steps",
                            "change"], body)
    return f"{table}\n\n{text}."


@register(f"{WEAK}/lengths")
def lengths() -> str:
    """MIG (the sweeps' results.csv) at 8,000 and at 16,000 steps for each planned (precision,
    seed), bold at MIG >= 0.3; the last line counts the draws at the bar at each length and those
    that rose or fell."""
    return lengths_table(R16)


def step_caveat(recipe: Recipe, demo: list[dict]) -> str:
    """For a recipe of other steps than the demo recipe's draws: a plain statement that this is
    not issue 30's same-step comparison, and whether the demo recipe ran at this recipe's steps."""
    ours, theirs = int(weak_config(recipe)["steps"]), sorted({int(r["config"]["steps"]) for r in demo})
    if theirs == [ours]:
        return ""
    text = (f"**The step counts differ, so this is not issue 30's same-step comparison**: these Ada-GVAE draws are "
            f"{thousands(ours)} steps, the beta-TCVAE demo recipe's (its gamma-0 draws in `{DEMO}/gamma0/`) "
            f"{' and '.join(thousands(t) for t in theirs)}")
    if ours not in theirs:
        text += (f"; the demo recipe at {thousands(ours)} steps is `{WEAK}/same-steps16`" if committed(DEMO16) else
                 f"; the demo recipe at {thousands(ours)} steps was not run")
    return text + (f". The issue's comparison, at the same step count ({thousands(weak_config(R8)['steps'])}), is "
                   f"`{WEAK}/same-seeds`.")


@register(f"{WEAK}/same-seeds16")
def same_seeds16() -> str:
    """The draws continued to 16,000 steps against the demo recipe's 8,000-step draws on the same
    (precision, seed): said plainly not to be the issue's same-step comparison."""
    return same_seeds_table(R16, step_caveat)


@register(f"{WEAK}/fresh16")
def fresh16() -> str:
    """The 16,000-step recipe on fresh seeds 5-9 (fresh16_*.toml, fresh16/, fresh16.csv), as
    ``weak/draws``: every planned draw, a draw without a finished run folder listed as not run."""
    return draws_table(R16F)


# ------------------------------------------------------------------------------- the demo recipe at 16,000 steps
DEMO16 = Recipe("beta-TCVAE demo recipe at 16,000 steps", ("demo16_bf16.toml", "demo16_fp32.toml"), "demo16",
                "demo16.csv")


DEMO16_S10 = Recipe("beta-TCVAE demo recipe at 16,000 steps, seeds 10-14", ("demo16_s10_bf16.toml", "demo16_s10_fp32.toml"),
                    "demo16_s10", "demo16_s10.csv")


def same_steps_table(ours: Recipe, demo: Recipe) -> str:
    """Issue 30's comparison: ``ours`` against the demo recipe's draws of ``demo`` (the same steps,
    on the same (precision, seed)), CPUs as recorded; "not run yet" until ``demo``'s are committed."""
    if not planned(demo):
        return missing_studies(demo)
    rows = weak_draws(demo)  # every planned draw; those with a finished run folder have "ran"
    if not committed(demo):
        plan = [(r["precision"], r["seed"]) for r in rows]
        return (f"**Not run yet**: the {demo.name} ({' and '.join(f'`{f}`' for f in demo.studies)}) "
                f"has no committed draws (`docs/results/{WEAK}/{demo.sweeps}/` is missing); planned: {draw_list(plan)}.")
    # the demo's finished draws in weak.demo_draws' shape: all evaluation draws (no screen chose
    # these settings), the study's settings as config
    cfg = weak_config(demo)
    ran = [dict(r, role="evaluation", config=cfg) for r in rows if r["ran"]]
    table = same_seeds_table(ours, theirs=lambda: ran)
    missing = [(r["precision"], r["seed"]) for r in rows if not r["ran"]]
    return table + (f"\n\n**Not run yet** (the {demo.name}, planned in {' and '.join(f'`{f}`' for f in demo.studies)}): "
                    f"{draw_list(missing)}; the comparison is on the draws both ran." if missing else "")


@register(f"{WEAK}/same-steps16")
def same_steps16() -> str:
    """Issue 30's comparison at 16,000 steps: the 16,000-step Ada-GVAE draws (R16) against the
    beta-TCVAE demo recipe trained to 16,000 steps on the same (precision, seed), CPUs as recorded."""
    return same_steps_table(R16, DEMO16)


# ------------------------------------------------------------------------------- recipe B4: beta 4 on seeds 10-14
@register(f"{WEAK}/beta4_16")
def beta4_16() -> str:
    """Recipe B4 (beta4_16_*.toml: beta 4, fixed after screen 2, fresh seeds 10-14), as
    ``weak/draws``: every planned draw, a draw without a finished run folder listed as not run."""
    return draws_table(RB4)


@register(f"{WEAK}/same-steps-beta4")
def same_steps_beta4() -> str:
    """Issue 30's comparison for recipe B4: its draws against the beta-TCVAE demo recipe trained to
    16,000 steps on the same (precision, seed) (demo16_s10_*.toml), CPUs as recorded."""
    return same_steps_table(RB4, DEMO16_S10)


# ------------------------------------------------------------------------------- screen 2: beta 4 on fresh seeds
S2 = Recipe("Ada-GVAE beta 4 (screen 2)", ("screen2.toml",), "screen2", "screen2.csv")


@register(f"{WEAK}/screen2")
def screen2() -> str:
    """Screen 2 (screen2.toml: beta 4, not evaluation draws) beside the fresh-seed beta-1 draw of
    the same (precision, seed) (R16F), MIG and per factor, every planned screen run listed."""
    if not planned(S2):
        return missing_studies(S2)
    beta1 = {(r["precision"], r["seed"]): r for r in weak_draws(R16F)} if planned(R16F) else {}
    body, rows = [], weak_draws(S2)
    for r in rows:
        b = beta1.get((r["precision"], r["seed"]), {"ran": False})
        cells = []
        for x in (b, r):
            cells += [mig_cell(x["mig"]), num(x["posX"]), num(x["posY"]), x["active"] or "-"] if x["ran"] \
                else ["**not run**", "-", "-", "-"]
        body.append([r["precision"], r["seed"], *cells])
    ran = [r for r in rows if r["ran"]]
    lead = (f"A screen, not evaluation draws: {len(ran)} of {len(body)} planned runs finished"
            + (f", {hits([r['mig'] for r in ran])} at MIG >= {BAR}" if ran else "") + ".")
    return lead + "\n\n" + markdown_table(
        ["precision", "seed", "beta 1 (fresh16): MIG", "beta 1: posX", "beta 1: posY", "beta 1: active latents",
         "beta 4 (screen 2): MIG", "beta 4: posX", "beta 4: posY", "beta 4: active latents"], body)
