"""Trained here vs shipped: the pretrained models named by a study's ``[report] pretrained`` beside
the study's own runs (how and how long each was trained, MIG, whether it disentangled), their
latent traversals, and one plain sentence on whether the study's own models disentangled.

"Disentangled" here means MIG >= :data:`DISENTANGLED_MIG` (0.2): above what entangled VAEs reach on
dSprites (the plain VAE stays below ~0.1) and the level disentanglement_lib's beta-TCVAE and
FactorVAE models start at; a threshold, not a proof.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from ..objectives import hparams_text
from ..train.files import peek_json
from .tables import Table, fmt

DISENTANGLED_MIG = 0.2


def _read(path: Path) -> dict[str, Any]:
    return peek_json(path) or {}


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def how_trained(run_dir: str | Path) -> str:
    """How and how long the run in ``run_dir`` was trained, from its config.json and summary.json:
    e.g. ``"beta-tcvae (beta 6), 100,000 steps x batch 64, lr 0.001, fp32, 1 thread, 2.1 h on cpu"``."""
    d = Path(run_dir)
    cfg, s = _read(d / "config.json"), _read(d / "summary.json")
    hp = hparams_text(cfg.get("hparams") or {})
    steps = s.get("steps", cfg.get("steps"))
    parts = [f"{cfg.get('model', '?')}" + (f" ({hp})" if hp else ""),
             f"{steps:,} steps x batch {cfg.get('batch_size', '?')}" if isinstance(steps, int) else "? steps",
             f"lr {cfg.get('lr', '?'):g}" if isinstance(cfg.get("lr"), (int, float)) else "lr ?",
             str(cfg.get("precision", "?"))]
    threads = cfg.get("threads")
    if isinstance(threads, int) and threads > 0:
        parts.append(f"{threads} thread{'s' if threads != 1 else ''}")
    wall = s.get("wall_time_s")
    if isinstance(wall, (int, float)):
        parts.append(f"{_duration(float(wall))} on {s.get('device', '?')}")
    return ", ".join(parts)


def _mig(x: Any) -> str:
    return fmt(float(x)) if isinstance(x, (int, float)) and x == x else "not computed"


def verdict(mig: Any) -> str:
    """``"yes"``/``"no"``/``"not measured"`` for a MIG value against :data:`DISENTANGLED_MIG`."""
    if not isinstance(mig, (int, float)) or mig != mig:
        return "not measured"
    return "yes" if mig >= DISENTANGLED_MIG else "no"


def disentangled_sentence(rows: Sequence[dict[str, Any]]) -> str | None:
    """One plain sentence on whether the finished runs in ``rows`` (results.csv rows) disentangled."""
    fin = [r for r in rows if r.get("status") == "finished" and isinstance(r.get("mig"), float)]
    if not fin:
        return None
    yes = [r for r in fin if r["mig"] >= DISENTANGLED_MIG]
    best = max(fin, key=lambda r: r["mig"])
    if yes:
        names = ", ".join(f"{r['run']} (MIG {r['mig']:.3f})" for r in yes)
        return (f"Disentangled: {len(yes)} of {len(fin)} of this study's models reached MIG >= "
                f"{DISENTANGLED_MIG:g}: {names}.")
    return (f"Not disentangled: none of this study's {len(fin)} models reached MIG >= {DISENTANGLED_MIG:g} "
            f"(best {best['run']}, MIG {best['mig']:.3f}); train longer (see docs/results/) or use a "
            "shipped model (`untwine pretrained list`).")


def shipped_name(name: str) -> str:
    """Shipped model ``name``, followed by its caveat (:data:`untwine.pretrained.CAVEATS`) in
    brackets where it has one, e.g. ``"factor-vae-beta16-dsprites (FactorVAE with KL weight 16, ...)"``."""
    from .. import pretrained

    caveat = pretrained.caveat(name)
    return f"{name} ({caveat})" if caveat else name


def resolve(names: Sequence[str]) -> tuple[list[tuple[str, Path]], list[str]]:
    """``(name, run folder)`` of the shipped models among ``names``, and a note for each missing one."""
    from .. import pretrained

    found, notes = [], []
    for name in names:
        try:
            found.append((name, pretrained.path(name)))
        except KeyError as e:
            notes.append(str(e) if name in pretrained.RENAMED else
                         f"pretrained model {name!r} is not shipped in this version ({e.args[0]})")
    return found, notes


def comparison_table(root: Path, rows: Sequence[dict[str, Any]], shipped: Sequence[tuple[str, Path]]) -> Table:
    """This study's finished runs and the shipped models, one row each: how each was trained, MIG
    and whether it disentangled (MIG >= :data:`DISENTANGLED_MIG`)."""
    t = Table("trained_vs_shipped", "Trained here vs shipped pretrained models",
              f"How and how long each model was trained (wall time as the run recorded it), its MIG, and "
              f"whether it disentangled (MIG >= {DISENTANGLED_MIG:g}). This study's MIG uses its [eval] sizes; "
              "a shipped model's MIG is its metrics.json (untwine evaluate, disentanglement_lib sizes), so "
              "compare the levels, not the last digits.",
              ["model", "source", "how trained", "MIG", "disentangled"])
    for r in rows:
        if r.get("status") != "finished":
            continue
        how = how_trained(root / r["run"]) if (root / r["run"]).is_dir() else "no run folder here (results.csv only)"
        t.rows.append([r["run"], "this study", how, _mig(r.get("mig")), verdict(r.get("mig"))])
    for name, folder in shipped:
        mig = _read(folder / "metrics.json").get("mig")
        t.rows.append([shipped_name(name), "shipped (untwine pretrained)", how_trained(folder), _mig(mig), verdict(mig)])
    return t


__all__ = ["DISENTANGLED_MIG", "comparison_table", "disentangled_sentence", "how_trained", "resolve", "shipped_name",
           "verdict"]
