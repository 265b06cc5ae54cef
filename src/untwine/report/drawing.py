"""The report's figures (:func:`draw_figures`): loss curves and KL per latent from the run
folders, the figures that need a dataset's images (traversals, reconstructions, clusters, the
beta-VAE score's construction, mean |latent|), metrics against hyperparameters and per model, and
published tables beside ours. A figure that cannot be drawn becomes a note, never an error."""

from __future__ import annotations

import math
import traceback
from typing import Any, Callable

from ..metrics.baseline import baseline_path
from ..train import files
from . import figures as F
from . import reference as R
from . import shipped as S
from . import tables as T
from .page import Figure, Report
from .tables import Stat


def add_figure(rep: Report, key: str, title: str, caption: str | Callable[[Any], str], make: Callable[[], Any]) -> None:
    """Draw a figure; ``caption`` may be a function of the drawn figure (a caption that describes it)."""
    try:
        fig = make()
    except Exception as e:  # a figure that cannot be drawn is reported, not fatal
        rep.notes.append(f"figure '{title}' could not be drawn: {type(e).__name__}: {e}")
        traceback.print_exc()
        return
    if fig is not None:
        rep.figures.append(Figure(key, title, caption if isinstance(caption, str) else caption(fig), F.to_png(fig)))


def representatives(rep: Report, rows: list[dict[str, Any]] | None = None
                    ) -> dict[tuple[str, str], tuple[str, dict[str, Any], float]]:
    """Per (dataset, model): the run (first seed) of the setting with the best mean MIG (the first
    setting without MIG), with a label; among ``rows`` (default: all the report's rows)."""
    hps = T.hp_columns(rep.rows)
    best: dict[tuple[str, str], tuple[float, str, dict[str, Any]]] = {}
    for key, grp in T.group(rep.rows if rows is None else rows, hps):
        mig = Stat.of([r.get("mig") for r in grp])
        score = mig.mean if mig else -math.inf
        k = (key[0], key[1])
        if k not in best or score > best[k][0]:
            label = f"{key[1]} ({T.setting_label(key, hps)})" if T.setting_label(key, hps) != "default" else key[1]
            best[k] = (score, label, min(grp, key=lambda r: r["seed"]))
    return {k: (label, row, score) for k, (score, label, row) in best.items()}


def _dataset_figures(rep: Report, ds: str, data: Any, here: list[dict[str, Any]], fin: list[dict[str, Any]],
                     reps: dict[tuple[str, str], tuple[str, dict[str, Any], float]], span: float
                     ) -> dict[str, dict[str, float]]:
    """The figures that need dataset ``ds``'s images (``data``): traversals of each model's
    representative run and of the shipped models on ``ds``, reconstructions, latent clusters, the
    beta-VAE score's construction. Returns the mean |latent| of each run of ``here`` whose model's
    grid varies a hyperparameter (run -> {"mean_abs_latent": value})."""
    from untwine.train import load_run

    root, hps, opts = rep.root, T.hp_columns(rep.rows), rep.study.report
    extra: dict[str, dict[str, float]] = {}
    ds_reps = [(label, row, score) for (d, _), (label, row, score) in reps.items() if d == ds]
    loaded, scores = [], {}
    for label, row, score in ds_reps:
        try:
            loaded.append((label, load_run(root / row["run"])))
            scores[label] = score
        except Exception as e:
            rep.notes.append(f"run {row['run']} could not be loaded: {type(e).__name__}: {e}")
    for label, run in loaded:
        add_figure(rep, f"traversal_{ds}_{label}", f"Latent traversals: {ds}, {label}",
             f"Each row changes one latent of the input's mean code from -{span:g} to {span:g} "
             "(others fixed) and decodes it; rows sorted by validation KL (in brackets, nats). "
             "A disentangled latent moves one factor.",
             lambda run=run, label=label: F.traversals(run, data, f"{ds} / {label}", span=span))
    for name, folder in rep.shipped:
        if (files.peek_json(folder / "config.json") or {}).get("dataset") != ds:
            continue
        add_figure(rep, f"traversal_{ds}_shipped_{name}", f"Latent traversals: {ds}, shipped model {name}",
             f"The shipped pretrained model {S.shipped_name(name)}, trained as: {S.how_trained(folder)}. "
             "Rows as in the traversals above; compare with the models this study trained.",
             lambda folder=folder, name=name: F.traversals(load_run(folder), data, f"{ds} / shipped {name}", span=span))
    if loaded:
        add_figure(rep, f"reconstructions_{ds}", f"Reconstructions: {ds}",
             "Inputs (top row) and each model's reconstruction.",
             lambda: F.reconstructions(loaded, data))
        factor = F.pick_factor(data, opts.get("cluster_factor"))
        add_figure(rep, f"clusters_{ds}", f"Latent clusters: {ds}",
             f"Mean codes of sampled images on the two highest-KL latents, coloured by "
             f"'{data.factor_names[factor]}'.",
             lambda: F.latent_clusters(loaded, data, factor))
        label, run = max(loaded, key=lambda lr: scores[lr[0]])  # the best-MIG model
        add_figure(rep, f"beta_vae_construction_{ds}", f"How the beta-VAE score is built: {ds}",
             "Pairs of images share one factor (the others random); the beta-VAE score trains a "
             "linear classifier to predict the shared factor from the mean |z1 - z2| over a batch "
             "of pairs. Rows: fixed factor; columns: latents. A dark cell = that latent barely "
             f"changes when the factor is fixed (shown for {label}).",
             lambda: F.beta_vae_score_construction(run, data, f"{ds} / {label}"))
    # mean |latent| of every run of models whose grid varies one hyperparameter
    for r in here:
        if r["dataset"] != ds:
            continue
        same = [x for x in fin if x["dataset"] == ds and x["model"] == r["model"]]
        if not any(len({x.get(h) for x in same}) > 1 for h in hps):
            continue
        try:
            extra[r["run"]] = {"mean_abs_latent": F.mean_abs_latent(load_run(root / r["run"]), data)}
        except Exception as e:
            rep.notes.append(f"mean |latent| of {r['run']}: {type(e).__name__}: {e}")
    return extra


def draw_figures(rep: Report) -> None:
    from untwine.data import load

    study, root, rows = rep.study, rep.root, rep.rows
    hps = T.hp_columns(rows)
    fin = [r for r in rows if r.get("status") == "finished"]
    if not fin:
        rep.notes.append("no finished runs: no figures")
        return
    opts = study.report
    span = float(opts.get("traversal_range", F.TRAVERSAL_SPAN))
    here = [r for r in fin if r["run"] not in rep.recorded]  # finished runs whose folders are here
    reps = representatives(rep, here)

    add_figure(rep, "loss_curves", "Loss curves",
         lambda fig: "Training loss (running mean, solid) and validation loss (dashed, dots) in nats per "
         f"image, first seed of every setting; {F.y_scale_caption(fig)}. What the loss of each "
         "objective is: docs/objectives.md.", lambda: F.loss_curves(here, root, hps))
    add_figure(rep, "kl_per_dim", "KL per latent dimension",
         "Validation KL of each latent (sorted, largest first): how many latents the model uses.",
         lambda: F.kl_per_dimension(here, root, hps))

    # the figures that need a dataset's images; per-run mean |latent| (models whose grid varies)
    extra: dict[str, dict[str, float]] = {}
    for ds in study.datasets:
        if not any(r["dataset"] == ds for r in here) and not any(
                (files.peek_json(folder / "config.json") or {}).get("dataset") == ds for _, folder in rep.shipped):
            continue  # nothing to draw from this dataset's images: do not load it
        kw = next(kw for name, kw in study.expand() if kw["dataset"] == ds)
        try:
            data = load(ds, kw.get("source"), kw.get("data_root"))
        except Exception as e:
            rep.notes.append(f"dataset {ds} could not be loaded for figures: {type(e).__name__}: {e}")
            continue
        extra.update(_dataset_figures(rep, ds, data, here, fin, reps, span))
        del data  # one dataset's images at a time

    metrics = [m for m in T.SUITE if any(isinstance(r.get(m), float) for r in fin)]
    add_figure(rep, "metric_vs_hparam", "Metrics vs hyperparameter",
         "Each metric against the swept hyperparameter: mean ± std over seeds (line), seeds (dots).",
         lambda: F.metric_vs_hparam(fin, metrics, extra))
    for comp in rep.references:
        add_figure(rep, f"reference_{comp.reference.name}", f"Published vs ours: {comp.reference.title}",
             f"Each column of the published table ({comp.reference.citation}) against {comp.reference.hparam}: "
             "ours (mean ± std over seeds, solid) and theirs (dashed), plus our MIG. Levels may differ in units "
             "and training length (see the table's notes); compare the trends.",
             lambda comp=comp: R.trend_figure(comp, fin))
    if extra:
        add_figure(rep, "mean_abs_latent", "Mean |latent| vs hyperparameter",
             "Mean absolute value of the mean codes (512 images, all latents): stronger KL pressure "
             "pulls codes towards 0.",
             lambda: F.metric_vs_hparam(fin, ["mean_abs_latent"], extra, title="mean |latent| vs hyperparameter"))
    for ds in study.datasets:
        groups = []
        for key, grp in T.group([r for r in fin if r["dataset"] == ds], hps):
            label = key[1] if T.setting_label(key, hps) == "default" else f"{key[1]}\n{T.setting_label(key, hps)}"
            groups.append((label, {m: [r[m] for r in grp if isinstance(r.get(m), float)] for m in metrics}))
        base = files.peek_json(baseline_path(root, ds))
        add_figure(rep, f"metrics_{ds}", f"Metrics per model: {ds}",
             "Each metric per model setting (bar: mean over seeds, dots: seeds); dashed line: the same "
             "metric for an untrained encoder.",
             lambda groups=groups, base=base: F.metrics_by_model(groups, base, metrics, f"metrics on {ds}"))
