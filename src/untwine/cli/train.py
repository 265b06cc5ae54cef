"""``untwine train``: flags (and an optional TOML file) -> ``RunConfig`` -> ``untwine.train.train``.

One flag per ``RunConfig`` field (``--batch-size``...) and one per hyperparameter of any registered
objective (``--beta``, ``--c-max``...), both generated, so a new field or objective needs no CLI
code. Precedence: flags > ``--config`` TOML file > ``RunConfig`` defaults. With ``--resume`` and an
existing ``--out`` folder, the folder's ``config.json`` is the base instead of the defaults.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

_SKIP = {"hparams"}


def _help() -> dict[str, str]:
    """Help texts of the RunConfig fields whose name does not say it all (choices and the
    defaults that follow other fields quoted from train.config and models)."""
    from ..models import ARCHITECTURES
    from ..train import config as c

    return {
        "dataset": "dataset name (untwine data list)",
        "source": "dataset source, e.g. official or procedural (default: the first of the dataset's sources "
                  "that is present, in untwine data list's order)",
        "out": f"run folder (default {c.DEFAULT_OUT.replace('{', '<').replace('}', '>')})",
        "device": f"{', '.join(c.DEVICES)} or cuda:N",
        "arch": " or ".join(ARCHITECTURES),
        "eval_every": f"steps between evaluations (default steps // {c.EVAL_EVERY_DIV}, at most {c.EVAL_EVERY_MAX})",
        "checkpoint_every": f"steps between checkpoints (default steps // {c.CHECKPOINT_EVERY_DIV}, at most "
                            f"{c.CHECKPOINT_EVERY_MAX})",
        "log_every": "steps between progress updates and NaN checks",
        "eval_images": "validation images per evaluation",
        "compile": "torch.compile the model: off, on (CUDA graphs on CUDA), or a torch.compile mode",
        "precision": "auto (bf16 on GPUs with native bfloat16 and on CPUs where it measures faster, once per machine, "
        "except for the plain VAE and beta-VAE with beta <= 1; else fp32: see docs/speed.md), fp32, or "
        "bf16 (encoder/decoder under bfloat16 autocast)",
        "threads": "torch threads for this run (0: torch's default, all physical cores); recorded in config.json",
        "tensorboard": f"also write TensorBoard event files to OUT/tb/ ({c.TENSORBOARD_INSTALL})",
        "score": "suite metrics scored at each evaluation, comma-separated (e.g. mig,gaussian_tc; default: none): "
                 "metrics.jsonl rows with split 'score', as untwine evaluate --metrics scores that step's checkpoint",
    }


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _hparam_names() -> dict[str, list[str]]:
    """Hyperparameter name -> the models that take it."""
    from .. import objectives

    out: dict[str, list[str]] = {}
    for m in objectives.names():
        for p in objectives.get(m).params:
            out.setdefault(p, []).append(m)
    return out


def _follows_lr(name: str) -> str:
    """Help text for a hyperparameter whose default follows --lr (``Objective.lr_defaults``)."""
    from .. import objectives

    ratios = {objectives.get(m).lr_defaults[name] for m in objectives.names() if name in objectives.get(m).lr_defaults}
    if not ratios:
        return ""
    (r,) = ratios
    return " (default: --lr)" if r == 1.0 else f" (default: {r:g} x --lr)"


def add(sub: argparse._SubParsersAction) -> None:
    from ..train import RunConfig

    p = sub.add_parser(
        "train",
        help="train a model; writes a run folder (config.json, metrics.jsonl, checkpoint/, summary.json)",
        description="Train a VAE objective on a dataset. Flags override --config; "
        "Ctrl-C saves a checkpoint and --resume continues from it.",
    )
    p.add_argument("--config", metavar="RUN.toml", help="TOML file of RunConfig keys (+ an [hparams] table)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--no-progress", action="store_true", help="no progress: neither the bar (on a terminal) nor the line a minute (in a log file)")
    defaults, helps = RunConfig(), _help()
    for f in dataclasses.fields(RunConfig):
        if f.name in _SKIP:
            continue
        d = getattr(defaults, f.name)
        if isinstance(d, bool):  # --tensorboard / --no-tensorboard
            p.add_argument(_flag(f.name), dest=f.name, action=argparse.BooleanOptionalAction, default=None,
                           help=helps.get(f.name, f.name.replace("_", " ")) + f" (default {'on' if d else 'off'})")
            continue
        typ = float if isinstance(d, float) else int if isinstance(d, int) else str
        text = helps.get(f.name, f.name.replace("_", " "))
        if f.name == "model":  # the registered objectives, listed where users look
            from .. import objectives

            text = f"objective: {', '.join(objectives.names())}"
        if f.name in ("eval_every", "checkpoint_every"):
            typ = int
        p.add_argument(
            _flag(f.name), dest=f.name, type=typ, default=None,
            metavar=f.name.upper(),
            help=text + ("" if d is None or d == "" else f" (default {d})"),
        )
    hp = p.add_argument_group("hyperparameters (each applies to the models listed)")
    for name, models in _hparam_names().items():
        hp.add_argument(
            _flag(name), dest=f"hp_{name}", type=float, default=None, metavar="X",
            help=f"{', '.join(models)}" + _follows_lr(name),
        )
    p.set_defaults(func=run)


def build_config(args: argparse.Namespace) -> Any:
    """The ``RunConfig`` the flags describe (validated), raising ``UserError`` for bad ones."""
    from ..train import RunConfig

    base: RunConfig
    out = args.out
    if args.resume and out and (Path(out) / "config.json").is_file() and not args.config:
        base = RunConfig.from_json(Path(out) / "config.json")
    elif args.config:
        base = RunConfig.from_toml(args.config)
    else:
        base = RunConfig()
    given = {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(RunConfig)
        if f.name not in _SKIP and getattr(args, f.name, None) is not None
    }
    cfg = dataclasses.replace(base, **given)
    hp_flags = {k[3:]: v for k, v in vars(args).items() if k.startswith("hp_") and v is not None}
    if hp_flags:
        from .. import objectives

        # a model change drops the base's hyperparameters of the old model; a flag the model does
        # not take is reported by validate() (Objective.check_hparams, the one check)
        params = objectives.get(cfg.model).params
        kept = {k: v for k, v in cfg.hparams.items() if k in params}
        cfg = dataclasses.replace(cfg, hparams={**kept, **hp_flags})
    cfg.validate()  # resolves once: train() reuses this resolution (RunConfig.resolved)
    return cfg


def run(args: argparse.Namespace) -> int:
    from ..train import train

    cfg = build_config(args)
    result = train(cfg, progress=not args.no_progress, resume=args.resume)
    s = result.summary
    val = s.get("val", {})
    session = s.get("session") or {}
    resumed = (f" [last session: steps {session['first_step']}-{session['first_step'] + session['steps']} in "
               f"{session['wall_time_s']:.1f} s, {session['images_per_s']:.0f} images/s]"
               if session.get("first_step") else "")
    score = s.get("score") or {}
    scored = "".join(f", {k} {v:.4f}" for k, v in score.items() if isinstance(v, float))
    print(
        f"{s.get('status', 'finished')}: {s.get('steps')} steps in {s.get('wall_time_s', 0):.1f} s "
        f"({s.get('images_per_s', 0):.0f} images/s){resumed}; val rec {val.get('rec', float('nan')):.2f}, "
        f"kl {val.get('kl', float('nan')):.2f} nats/image{scored}; run folder {result.dir}"
    )
    return 0
