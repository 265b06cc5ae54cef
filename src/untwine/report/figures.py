"""The report's figures (matplotlib, Agg, no pyplot global state). Each function returns a
:class:`matplotlib.figure.Figure`; :func:`to_png` renders it to PNG bytes.

Inputs are results rows (:func:`untwine.studies.results.collect`), loaded runs
(:func:`untwine.train.load_run`) and datasets (:class:`~untwine.data.GroundTruthData`).
"""

from __future__ import annotations

import io
import warnings
from collections import defaultdict
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator, NullLocator

from ..data.dsprites import SHAPES
from ..errors import UserError
from ..naming import format_value
from ..train.files import RunFolderError, peek_json, read_jsonl

METRIC_LABELS = {
    "mean_abs_latent": "mean |latent|",
    "mig": "MIG",
    "beta_vae_score": "beta-VAE score",
    "factor_vae_score": "FactorVAE score",
    "dci_disentanglement": "DCI disentanglement",
    "dci_completeness": "DCI completeness",
    "dci_informativeness": "DCI informativeness",
    "sap": "SAP",
    "modularity": "modularity",
    "explicitness": "explicitness",
}


def to_png(fig: Figure, dpi: int = 100) -> bytes:
    """PNG bytes of ``fig``."""
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return buf.getvalue()


def _grid_image(tiles: np.ndarray, pad: int = 2) -> np.ndarray:
    """``R x C x ch x H x W`` in [0, 1] -> one ``H' x W' x 3`` image with white padding."""
    r, c, ch, h, w = tiles.shape
    out = np.ones((r * (h + pad) + pad, c * (w + pad) + pad, 3), np.float32)
    for i in range(r):
        for j in range(c):
            t = tiles[i, j]
            t = np.repeat(t, 3, 0) if ch == 1 else t[:3]
            y, x = pad + i * (h + pad), pad + j * (w + pad)
            out[y : y + h, x : x + w] = t.transpose(1, 2, 0)
    return np.clip(out, 0, 1)


def _kl_dims(run: Any) -> np.ndarray | None:
    kl = (run.summary.get("val") or {}).get("kl_dims")
    return np.asarray(kl, dtype=float) if kl else None


def latent_order(run: Any, codes: np.ndarray | None = None) -> np.ndarray:
    """Latent indices sorted by validation KL (largest first); by code variance without KL logs."""
    kl = _kl_dims(run)
    if kl is None or len(kl) != run.model.latents:
        kl = codes.var(0) if codes is not None else np.zeros(run.model.latents)
    return np.argsort(-kl, kind="stable")


# ----------------------------------------------------------------------------- images
# A latent traversal sets one latent to TRAVERSAL_VALUES values in [-TRAVERSAL_SPAN, TRAVERSAL_SPAN]
# (the report's, TensorBoard's and the explorer's strips; a study's [report] traversal_range).
TRAVERSAL_SPAN = 2.0
TRAVERSAL_VALUES = 9


def traversals(run: Any, data: Any, title: str, span: float = TRAVERSAL_SPAN, n_values: int = TRAVERSAL_VALUES,
               max_rows: int = 10, seed: int = 0) -> Figure:
    """Latent traversal: rows = latent dims sorted by KL, columns = that dim set to values in
    ``[-span, span]`` around a base image's mean code (other dims kept); the base image is shown
    on the left."""
    rng = np.random.default_rng(seed)
    _, x = data.sample(1, rng)
    z0 = run.encode(x)[0]
    order = latent_order(run)[:max_rows]
    kl = _kl_dims(run)
    values = np.linspace(-span, span, n_values)
    z = np.repeat(z0[None], len(order) * n_values, 0).reshape(len(order), n_values, -1)
    for i, d in enumerate(order):
        z[i, :, d] = values
    imgs = run.decode(z.reshape(-1, z.shape[-1])).reshape(len(order), n_values, *x.shape[1:])
    # column 0: the input (first row only), then the traversal values
    blank = np.ones((len(order), 1, *imgs.shape[2:]), np.float32)
    blank[0, 0] = np.asarray(x)[0]
    grid = np.concatenate([blank, imgs], 1)
    fig = Figure(figsize=(1.6 + 0.75 * (n_values + 1), 0.5 + 0.75 * len(order)))
    ax = fig.add_subplot()
    ax.imshow(_grid_image(grid), interpolation="nearest")
    h = imgs.shape[-2] + 2
    w = imgs.shape[-1] + 2
    ax.set_yticks([2 + h * i + h / 2 for i in range(len(order))])
    ax.set_yticklabels([f"z{d}" + (f" (KL {kl[d]:.2f})" if kl is not None else "") for d in order], fontsize=8)
    ax.set_xticks([2 + w * j + w / 2 for j in range(n_values + 1)])
    ax.set_xticklabels(["input"] + [f"{v:+.1f}" for v in values], fontsize=8)
    ax.tick_params(length=0)
    for s_ in ax.spines.values():
        s_.set_visible(False)
    ax.set_title(f"{title}: latent traversals (rows sorted by KL)", fontsize=10)
    return fig


def reconstructions(runs: Sequence[tuple[str, Any]], data: Any, n: int = 10, seed: int = 0) -> Figure:
    """Top row: ``n`` validation-style inputs; one row of reconstructions per ``(label, run)``."""
    rng = np.random.default_rng(seed)
    _, x = data.sample(n, rng)
    x = np.asarray(x)
    rows = [x] + [run.decode(run.encode(x)) for _, run in runs]
    labels = ["input"] + [label for label, _ in runs]
    grid = np.stack(rows)
    fig = Figure(figsize=(0.75 * n + 1.5, 0.3 + 0.8 * len(rows)))
    ax = fig.add_subplot()
    ax.imshow(_grid_image(grid), interpolation="nearest")
    h = grid.shape[-2] + 2
    ax.set_yticks([2 + h * i + h / 2 for i in range(len(rows))])
    ax.set_yticklabels(labels, fontsize=9)
    ax.set_xticks([])
    ax.tick_params(length=0)
    for s in ax.spines.values():
        s.set_visible(False)
    ax.set_title("reconstructions (mean of p(x|z) at the mean code)", fontsize=10)
    return fig


# ----------------------------------------------------------------------------- curves
def _setting(row: dict[str, Any], hps: Sequence[str]) -> str:
    parts = [f"{k}={format_value(row[k])}" for k in hps if row.get(k) is not None]
    return ", ".join(parts) or "default"


def _panels(rows: list[dict[str, Any]]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    panels: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        panels[(r["dataset"], r["model"])].append(r)
    return dict(panels)


def _axes(n: int, ncols: int = 3, w: float = 4.2, h: float = 3.0) -> tuple[Figure, list[Any]]:
    ncols = max(1, min(ncols, n))
    nrows = (n + ncols - 1) // ncols
    fig = Figure(figsize=(w * ncols, h * nrows), layout="constrained")
    axes = [fig.add_subplot(nrows, ncols, i + 1) for i in range(n)]
    return fig, axes


def loss_curves(rows: list[dict[str, Any]], root: Path, hps: Sequence[str], term: str = "loss") -> Figure | None:
    """Train (solid) and validation (dashed, dots) ``term`` vs step, one panel per dataset x model,
    one colour per setting (first seed only). A panel's y axis is logarithmic when its values are
    all positive and span more than a factor of 10 (its label then says "log scale"), linear
    otherwise; :func:`y_scale_caption` describes the figure's axes."""
    panels = _panels(rows)
    if not panels:
        return None
    fig, axes = _axes(len(panels))
    for ax, ((ds, model), prs) in zip(axes, panels.items()):
        first_seed = min(r["seed"] for r in prs)
        values: list[float] = []
        for i, r in enumerate(r for r in prs if r["seed"] == first_seed):
            try:
                log = read_jsonl(root / r["run"] / "metrics.jsonl")
            except RunFolderError as e:  # one damaged log costs its own curve, not the figure
                warnings.warn(f"loss curves: {r['run']} left out: {e}", stacklevel=2)
                continue
            color = f"C{i % 10}"
            for split, style in (("train", "-"), ("val", "--")):
                pts = [(e["step"], e[term]) for e in log if e.get("split") == split and term in e
                       and e[term] is not None and np.isfinite(e[term])]
                if pts:
                    s, v = zip(*pts)
                    values += v
                    ax.plot(s, v, style, color=color, marker="." if split == "val" else None,
                            lw=1.2, label=f"{_setting(r, hps)} ({split})")
        log_y = bool(values) and min(values) > 0 and max(values) / min(values) > 10  # the data, not the padded limits
        if log_y:
            ax.set_yscale("log")
        ax.set_title(f"{ds} / {model}", fontsize=10)
        ax.set_xlabel("step")
        ax.set_ylabel(f"{term} (nats / image{', log scale' if log_y else ''})")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle("training (solid) and validation (dashed) loss", fontsize=11)
    return fig


def y_scale_caption(fig: Figure) -> str:
    """How ``fig``'s y axes are scaled, for its caption: "log scale", "linear scale" or which is which."""
    scales = [ax.get_yscale() for ax in fig.axes if ax.has_data()]
    if scales and all(s == "log" for s in scales):
        return "log scale"
    if "log" not in scales:
        return "linear scale"
    return ("log scale in the panels whose axis label says so (values positive and spanning more than "
            "a factor of 10), linear scale in the others")


def kl_per_dimension(rows: list[dict[str, Any]], root: Path, hps: Sequence[str]) -> Figure | None:
    """Validation KL per latent dimension (sorted, largest first), one line per setting."""
    panels = _panels(rows)
    have = False
    fig, axes = _axes(len(panels)) if panels else (None, [])
    for ax, ((ds, model), prs) in zip(axes, panels.items()):
        first_seed = min(r["seed"] for r in prs)
        for i, r in enumerate(r for r in prs if r["seed"] == first_seed):
            s = peek_json(root / r["run"] / "summary.json") or {}
            kl = (s.get("val") or {}).get("kl_dims")
            if kl:
                have = True
                kl = np.sort(np.asarray(kl, float))[::-1]
                ax.plot(np.arange(1, len(kl) + 1), kl, "o-", color=f"C{i % 10}", ms=4, label=_setting(r, hps))
        ax.set_title(f"{ds} / {model}", fontsize=10)
        ax.set_xlabel("latent (sorted by KL)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel("KL (nats)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    if not have:
        return None
    fig.suptitle("KL per latent dimension (validation)", fontsize=11)
    return fig


def metric_vs_hparam(rows: list[dict[str, Any]], metrics: Sequence[str],
                     extra: dict[str, dict[str, float]] | None = None,
                     title: str = "metrics vs hyperparameter") -> Figure | None:
    """Metric vs the swept hyperparameter (mean +- std over seeds, seeds as dots), one panel per
    dataset x model x metric, for models whose grid varies one hyperparameter.
    ``extra[run] = {name: value}`` adds per-run values (e.g. ``mean_abs_latent``)."""
    panels = []
    for (ds, model), prs in _panels(rows).items():
        varying = [k for k in _hp_keys(prs) if len({r[k] for r in prs}) > 1]
        if len(varying) != 1:
            continue
        hp = varying[0]
        for m in metrics:
            vals = [(r[hp], _value(r, m, extra)) for r in prs]
            vals = [(h, v) for h, v in vals if v is not None and np.isfinite(v)]
            if vals:
                panels.append((ds, model, hp, m, vals))
    if not panels:
        return None
    fig, axes = _axes(len(panels), ncols=3, w=3.8, h=2.8)
    for ax, (ds, model, hp, m, vals) in zip(axes, panels):
        xs = sorted({h for h, _ in vals})
        by = {x: [v for h, v in vals if h == x] for x in xs}
        mean = [np.mean(by[x]) for x in xs]
        std = [np.std(by[x], ddof=1) if len(by[x]) > 1 else 0.0 for x in xs]
        ax.errorbar(xs, mean, yerr=std, fmt="o-", capsize=3, color="C0", lw=1.5)
        for x in xs:
            ax.plot([x] * len(by[x]), by[x], ".", color="C1", alpha=0.6, ms=5)
        if min(xs) > 0 and max(xs) / min(xs) >= 10:
            ax.set_xscale("log")
        ax.set_xticks(xs)
        ax.set_xticklabels([format_value(x) for x in xs])
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xlabel(hp)
        ax.set_ylabel(METRIC_LABELS.get(m, m))
        ax.set_title(f"{ds} / {model}", fontsize=10)
        ax.grid(alpha=0.3)
    fig.suptitle(f"{title} (mean ± std over seeds; dots: seeds)", fontsize=11)
    return fig


def _hp_keys(prs: list[dict[str, Any]]) -> list[str]:
    """Hyperparameter columns of results rows (between ``model`` and ``seed``) set in every row."""
    keys = list(prs[0])
    hps = keys[keys.index("model") + 1 : keys.index("seed")]
    return [k for k in hps if all(r.get(k) is not None for r in prs)]


def _value(r: dict[str, Any], m: str, extra: dict[str, dict[str, float]] | None) -> float | None:
    if extra and r["run"] in extra and m in extra[r["run"]]:
        return extra[r["run"]][m]
    v = r.get(m)
    return float(v) if isinstance(v, (int, float)) else None


def metrics_by_model(groups: list[tuple[str, dict[str, list[float]]]], baseline: dict[str, float] | None,
                     metrics: Sequence[str], title: str) -> Figure | None:
    """Bar chart: each metric per model setting (mean over seeds, seeds as dots) with the untrained
    encoder's value as a dashed line."""
    metrics = [m for m in metrics if any(vals.get(m) for _, vals in groups)]
    if not metrics or not groups:
        return None
    fig, axes = _axes(len(metrics), ncols=3, w=max(3.6, 0.9 * len(groups) + 1.5), h=3.0)
    for ax, m in zip(axes, metrics):
        for i, (label, vals) in enumerate(groups):
            v = vals.get(m) or []
            if v:
                ax.bar(i, np.mean(v), color=f"C{i % 10}", alpha=0.8)
                ax.plot([i] * len(v), v, "k.", ms=4)
        if baseline and baseline.get(m) is not None:
            ax.axhline(baseline[m], color="k", ls="--", lw=1, label="untrained encoder")
            ax.legend(fontsize=7)
        ax.set_xticks(range(len(groups)))
        ax.set_xticklabels([g for g, _ in groups], rotation=30, ha="right", fontsize=8)
        ax.set_ylabel(METRIC_LABELS.get(m, m))
        ax.grid(alpha=0.3, axis="y")
    fig.suptitle(title, fontsize=11)
    return fig


# ----------------------------------------------------------------------------- latent space
def mean_abs_latent(run: Any, data: Any, n: int = 512, seed: int = 0) -> float:
    """Mean over images and latent dims of ``|mu|`` (mean codes of ``n`` sampled images)."""
    _, x = data.sample(n, np.random.default_rng(seed))
    return float(np.abs(run.encode(x)).mean())


def pick_factor(data: Any, preferred: str | None = None) -> int:
    """Index of the factor that colours cluster plots: ``preferred``, else digit/label/shape, else the
    first factor with 2..10 values, else the first one."""
    names = [n.lower() for n in data.factor_names]
    if preferred:
        if preferred.lower() not in names:
            raise UserError(f"report.cluster_factor {preferred!r} is not a factor of {data.name}: "
                             f"{', '.join(data.factor_names)}")
        return names.index(preferred.lower())
    for want in ("digit", "label", "shape", "object_shape"):
        if want in names:
            return names.index(want)
    for i, s in enumerate(data.factor_sizes):
        if 2 <= s <= 10:
            return i
    return 0


def category_names(data: Any, factor: int) -> list[str] | None:
    """Names of a categorical factor's values (dSprites shape, MNIST digit), else ``None``.

    A dataset may carry ``factor_value_names`` (``{factor name: [names]}``); otherwise the known
    categorical factors below are used."""
    name = data.factor_names[factor]
    given = (getattr(data, "factor_value_names", None) or {}).get(name)
    if given:
        return [str(v) for v in given]
    known = KNOWN_CATEGORIES.get((getattr(data, "name", ""), name))
    return list(known) if known and len(known) == data.factor_sizes[factor] else None


# (dataset, factor) -> value names, in factor-index order.
KNOWN_CATEGORIES: dict[tuple[str, str], tuple[str, ...]] = {
    ("dsprites", "shape"): SHAPES,
    ("mnist", "digit"): tuple(str(d) for d in range(10)),
}


def latent_clusters(runs: Sequence[tuple[str, Any]], data: Any, factor: int, n: int = 1500,
                    seed: int = 0) -> Figure:
    """Per run: a scatter of the two highest-KL latents' mean codes of ``n`` images, coloured by
    one factor: a legend of category names for a categorical factor (dSprites shape, MNIST
    digit), else a colour bar."""
    f, x = data.sample(n, np.random.default_rng(seed))
    f = np.asarray(f)
    fig, axes = _axes(len(runs), ncols=3, w=3.8, h=3.4)
    size = data.factor_sizes[factor]
    cats = category_names(data, factor)
    cmap = "tab10" if size <= 10 else "viridis"
    sc = None
    for ax, (label, run) in zip(axes, runs):
        z = run.encode(x)
        a, b = latent_order(run, z)[:2]
        if cats is not None:
            colours = plt_colormap("tab10" if size <= 10 else "tab20")
            for v, cat in enumerate(cats):
                m = f[:, factor] == v
                ax.scatter(z[m, a], z[m, b], color=colours(v % colours.N), s=5, alpha=0.7, label=cat)
        else:
            sc = ax.scatter(z[:, a], z[:, b], c=f[:, factor], cmap=cmap, s=5, alpha=0.7,
                            vmin=-0.5 if size <= 10 else None, vmax=(size - 0.5) if size <= 10 else None)
        ax.set_xlabel(f"z{a}")
        ax.set_ylabel(f"z{b}")
        ax.set_title(label, fontsize=9)
        ax.grid(alpha=0.3)
    if cats is not None:
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, title=data.factor_names[factor], loc="outside right center",
                   markerscale=3, frameon=False)
    elif sc is not None:
        cb = fig.colorbar(sc, ax=axes, shrink=0.8)
        cb.set_label(data.factor_names[factor])
    fig.suptitle(f"latent clusters: the two highest-KL latents, coloured by {data.factor_names[factor]}",
                 fontsize=11)
    return fig


def plt_colormap(name: str) -> Any:
    from matplotlib import colormaps

    return colormaps[name]


def beta_vae_score_construction(run: Any, data: Any, label: str, pairs: int = 256, show: int = 4,
                                seed: int = 0) -> Figure:
    """How the beta-VAE score is built: pairs of images that share one factor (all others random);
    the mean ``|z1 - z2|`` per latent over ``pairs`` pairs, one row per fixed factor. A latent that
    encodes the fixed factor alone shows a small difference there; a linear classifier predicts the
    fixed factor from this vector (its accuracy is the score)."""
    rng = np.random.default_rng(seed)
    K, D = data.num_factors, run.model.latents
    diffs = np.zeros((K, D))
    examples = None
    for k in range(K):
        f1 = data.sample_factors(pairs, rng)
        f2 = data.sample_factors(pairs, rng)
        f2[:, k] = f1[:, k]
        x1 = data.observations_from_factors(f1, rng)
        x2 = data.observations_from_factors(f2, rng)
        diffs[k] = np.abs(run.encode(x1) - run.encode(x2)).mean(0)
        if examples is None and data.factor_sizes[k] > 1:
            examples = (k, np.asarray(x1[:show]), np.asarray(x2[:show]))
    order = latent_order(run)
    fig = Figure(figsize=(11, 0.6 + 0.45 * max(K, 5)), layout="constrained")
    gs = fig.add_gridspec(1, 2, width_ratios=[1, 2.2])
    ax0 = fig.add_subplot(gs[0])
    if examples is not None:
        k, a, b = examples
        ax0.imshow(_grid_image(np.stack([a, b], 1)), interpolation="nearest")
        ax0.set_title(f"pairs sharing '{data.factor_names[k]}'\n(left z1 image, right z2 image)", fontsize=9)
    ax0.axis("off")
    ax = fig.add_subplot(gs[1])
    im = ax.imshow(diffs[:, order], aspect="auto", cmap="magma")
    ax.set_yticks(range(K))
    ax.set_yticklabels([f"fixed: {n}" for n in data.factor_names], fontsize=8)
    ax.set_xticks(range(D))
    ax.set_xticklabels([f"z{d}" for d in order], fontsize=8)
    ax.set_xlabel("latent (sorted by KL)")
    fig.colorbar(im, ax=ax, label="mean |z1 - z2|")
    ax.set_title(f"{label}: mean |z1 - z2| per latent over {pairs} pairs", fontsize=10)
    return fig
