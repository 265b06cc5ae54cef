"""MIG against training steps of the long FactorVAE runs (issue 31) -> mig_vs_steps.svg.

    python docs/results/factor_vae_long/figure.py [--csv ...] [--out ...]

--csv defaults to long_runs.csv beside this file (collect.py's), --out to mig_vs_steps.svg beside it.

One line with markers per run (colour per setting, lr and gamma; line style per seed), the seeds'
MIG as a dashed horizontal line, and per setting the trend of the README's ``factor_vae_long/trend``
table (the same function: ``trend`` in scripts/results/factor_vae_long.py) as a thin dotted line
from its first fitted step to the last step it is read at, where the setting has one. The SVG is
deterministic (fixed size, hash salt, no date, text as text), so it changes only when the data do.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2] / "scripts"))  # the results package: the trend and the seeds' MIG

from results.factor_vae_long import TREND_AT, TREND_FROM, hp, seeds_mig, trend  # noqa: E402

COLOURS = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple"]  # per setting, in (lr, gamma) order
STYLES = ["-", "--", "-.", (0, (5, 1, 1, 1, 1, 1))]                          # per seed, in seed order
PLANNED = 100_000  # run_chunks.sh's FINAL: the x axis reaches it even before the runs do


def figure(rows: list[dict], out: Path) -> None:
    plt.rcParams.update({"svg.hashsalt": "untwine", "svg.fonttype": "none", "font.size": 9,
                         "font.family": "sans-serif", "font.sans-serif": ["DejaVu Sans"]})
    fig, ax = plt.subplots(figsize=(7.0, 5.0), layout="constrained")
    trends = trend(rows)
    seeds = sorted({int(float(r["seed"])) for r in rows})
    for i, t in enumerate(trends):
        colour = COLOURS[i % len(COLOURS)]
        for run in t.runs:
            rs = sorted((r for r in rows if r["run"] == run), key=lambda r: int(float(r["step"])))
            seed = int(float(rs[0]["seed"]))
            ax.plot([int(float(r["step"])) / 1000 for r in rs], [float(r["mig"]) for r in rs],
                    color=colour, linestyle=STYLES[seeds.index(seed) % len(STYLES)], marker="o", markersize=4,
                    linewidth=1.4, label=f"{run} (lr {hp(t.lr)}, gamma {hp(t.gamma)}, seed {seed})")
        if t.fitted:
            xs = [t.steps[0] * (max(TREND_AT) / t.steps[0]) ** (k / 100) for k in range(101)]
            ax.plot([x / 1000 for x in xs], [t.at(x) for x in xs], color=colour, linestyle=":", linewidth=1.0,
                    label=f"{t.name} trend: a + b log10(step), {len(t.points)} chunks >= {TREND_FROM // 1000}k")
    target = seeds_mig()
    ax.axhline(target, color="0.35", linestyle="--", linewidth=1.0)
    right = max([PLANNED] + [int(float(r["step"])) for r in rows] + [max(TREND_AT)] * any(t.fitted for t in trends))
    ax.set_xlim(0, right / 1000 * 1.02)
    ax.text(right / 1000 * 0.01, target, f"the seeds' MIG {target:g}", color="0.35", va="bottom", ha="left")
    top = max([target] + [float(r["mig"]) for r in rows] + [v for t in trends for v in t.predicted.values()])
    ax.set_ylim(0, max(0.3, top * 1.1))
    ax.set_xlabel("training steps (thousands)")
    ax.set_ylabel("MIG (untwine evaluate)")
    ax.set_title("FactorVAE, beta 1, dSprites: MIG after each 10,000-step chunk")
    ax.grid(True, color="0.9", linewidth=0.6)
    fig.legend(loc="outside lower center", ncols=2, fontsize=7, frameon=False)
    fig.savefig(out, format="svg", metadata={"Date": None, "Creator": None})  # no date, no matplotlib version
    plt.close(fig)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--csv", default=str(HERE / "long_runs.csv"))
    ap.add_argument("--out", default=str(HERE / "mig_vs_steps.svg"))
    a = ap.parse_args()
    with open(a.csv, newline="") as fh:
        rows = list(csv.DictReader(fh))
    figure(rows, Path(a.out))
    print(f"{len(rows)} rows -> {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
