"""``untwine report DIR``: one self-contained HTML page (PNG figures embedded as base64) with the
study's settings, a learning check, every table, every figure, failures and the environment.
Tables are also written to ``DIR/tables/*.{csv,md}`` and figures to ``DIR/figures/*.png``.
"""

from __future__ import annotations

import base64
import html
import json
import platform
import time
from pathlib import Path
from string import Template
from typing import Any

from ..metrics.baseline import baseline_path
from ..naming import format_value
from ..studies.execute import EVAL_TIME
from ..studies.results import collect_for_report
from ..studies.study import load_sweep_study
from ..train import files
from . import reference as R
from . import selection
from . import shipped as S
from . import tables as T
from .drawing import draw_figures
from .page import Report
from .tables import Stat, Table, fmt

TEMPLATE = Path(__file__).with_name("template.html")


NEEDS_FOLDERS = "needs the run folder"
# What a report cannot draw from results.csv alone (a results folder committed without its run folders)
RUN_FOLDER_FIGURES = ("loss curves (metrics.jsonl), KL per latent dimension (summary.json), latent traversals, "
                      "reconstructions, latent clusters, the beta-VAE score construction and mean |latent| "
                      "(checkpoints), and the learning check's step-0 reconstruction (summary.json)")


# ----------------------------------------------------------------------------- learning check
def learning_check(rep: Report) -> None:
    """Rec at step 0 vs final (validation) and MIG vs an untrained encoder, per model setting."""
    hps = T.hp_columns(rep.rows)
    has_mig = any(isinstance(r.get("mig"), float) for r in rep.rows)
    t = Table("learning", "Did the models learn?",
              "Validation reconstruction error (nats per image) of the untrained model at step 0 and "
              "at the end of training; MIG of the trained encoders and of an untrained encoder with "
              "the same architecture and seed (evaluated with the same metric settings).",
              ["dataset", "model", "setting", "rec at step 0", "rec final", "final / start"]
              + (["MIG", "MIG untrained"] if has_mig else []))
    ratios, migs = [], []
    for key, grp in T.group(rep.rows, hps):
        start, end = [], []
        for r in grp:  # from the run folders or results.csv alike (studies.results)
            a, b = r.get("val_rec_step0"), r.get("val_rec")
            if isinstance(a, (int, float)) and isinstance(b, (int, float)):
                start.append(a)
                end.append(b)
        s0, s1 = Stat.of(start), Stat.of(end)
        ratio = s1.mean / s0.mean if s0 and s1 and s0.mean > 0 else None
        if ratio is not None:
            ratios.append(ratio)
        row = [key[0], key[1], T.setting_label(key, hps), s0, s1, f"{ratio:.3f}" if ratio is not None else ""]
        if not start and all(r["run"] in rep.recorded for r in grp):  # a results.csv from before val_rec_step0
            row[3:6] = [NEEDS_FOLDERS, Stat.of([r.get("val_rec") for r in grp]), ""]
        if has_mig:
            base = (files.peek_json(baseline_path(rep.root, key[0])) or {}).get("mig")
            m = Stat.of([r.get("mig") for r in grp])
            row += [m, fmt(base) if isinstance(base, (int, float))
                    else "needs the sweep's baseline/ folder" if rep.recorded else "not computed"]
            if m and isinstance(base, (int, float)):
                migs.append((f"{key[1]} ({T.setting_label(key, hps)})", m.mean, base))
        t.rows.append(row)
    if t.rows:
        rep.learning = t
    if ratios:
        span = f"{min(ratios):.1%}" if f"{min(ratios):.1%}" == f"{max(ratios):.1%}" else \
            f"{min(ratios):.1%}–{max(ratios):.1%}"
        rep.headline.append(
            f"Validation reconstruction error at the end of training: {span} of its step-0 value "
            f"({len(ratios)} model setting{'s' if len(ratios) != 1 else ''})."
        )
    if migs:
        best = max(migs, key=lambda m: m[1])
        rep.headline.append(
            f"Best MIG {best[1]:.3f} ({best[0]}) vs {best[2]:.3f} for an untrained encoder; "
            f"{sum(m > b for _, m, b in migs)} of {len(migs)} settings beat the untrained encoder."
        )


# ----------------------------------------------------------------------------- environment
def environment(rep: Report) -> list[tuple[str, str]]:
    import numpy
    import torch

    from .._version import __version__

    sums = [files.peek_json(rep.root / r["run"] / "summary.json") or {} for r in rep.rows]
    train_s = sum(float(s.get("wall_time_s") or 0) for s in sums)
    evals = [files.peek_json(rep.root / r["run"] / EVAL_TIME) or {} for r in rep.rows]
    eval_s = sum(float(e.get("wall_time_s") or 0) for e in evals)
    absent = f" ({len(rep.recorded)} runs without a run folder here not counted)" if rep.recorded else ""
    devices = sorted({str(s.get("device") or (s.get("config") or {}).get("device", "")) for s in sums} - {""})
    log = files.read_jsonl(rep.root / "sweep_log.jsonl") if (rep.root / "sweep_log.jsonl").is_file() else []
    env = [
        ("untwine", __version__),
        ("python", platform.python_version()),
        ("torch", torch.__version__),
        ("numpy", numpy.__version__),
        ("platform", platform.platform()),
        ("CPU cores", str(__import__("os").cpu_count())),
        ("CUDA", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "not available"),
        ("run device setting", ", ".join(devices) or "unknown"),
        ("training wall time (sum over runs)", f"{train_s:.0f} s{absent}"),
        ("evaluation wall time (sum over runs)", f"{eval_s:.0f} s{absent}"),
    ]
    if log:
        last = log[-1]
        env.append(("sweeps", f"{len(log)} invocation(s); last: {last['time']}, backend {last['backend']}, "
                              f"{last['jobs']} job(s), {last['wall_time_s']:.0f} s wall"))
    env.append(("report written", time.strftime("%Y-%m-%d %H:%M:%S")))
    return env


# ----------------------------------------------------------------------------- results.csv only
def figures_sentence(rep: Report) -> str:
    """Which figures a report without (some) run folders leaves out (the Figures section)."""
    n, total = len(rep.recorded), len(rep.rows)
    if n == total:
        head = (f"None of the {total} runs has a run folder here (results.csv only): the figures below are "
                "those results.csv can give. Left out, as they need the run folders")
    else:
        head = (f"{n} of the {total} runs have no run folder here (results.csv only): they are in the figures "
                "drawn from results.csv, and left out of those that need the run folders")
    return (f"{head}: {RUN_FOLDER_FIGURES}. Copy the run folders next to results.csv (or report on the sweep "
            "folder itself) to draw them.")


# ----------------------------------------------------------------------------- HTML
CSS = """
:root { --fg:#1f2328; --muted:#59636e; --line:#d1d9e0; --bg2:#f6f8fa; --accent:#0969da; }
* { box-sizing: border-box; }
body { font: 15px/1.5 -apple-system, BlinkMacSystemFont, "Segoe UI", Helvetica, Arial, sans-serif;
       color: var(--fg); margin: 0; background: #fff; }
main { max-width: 1180px; margin: 0 auto; padding: 24px 32px 64px; }
h1 { font-size: 28px; margin: 0 0 4px; }
h2 { font-size: 21px; margin: 36px 0 12px; padding-bottom: 6px; border-bottom: 1px solid var(--line); }
h3 { font-size: 16px; margin: 22px 0 6px; }
p.sub { color: var(--muted); margin: 0 0 16px; }
nav { background: var(--bg2); border: 1px solid var(--line); border-radius: 6px; padding: 8px 14px; margin: 12px 0; }
nav a { color: var(--accent); text-decoration: none; margin-right: 14px; white-space: nowrap; }
.headline { background: #ddf4ff; border: 1px solid #b6e3ff; border-radius: 6px; padding: 10px 16px; }
.headline li { margin: 2px 0; }
.warn { background: #fff8c5; border: 1px solid #eed888; border-radius: 6px; padding: 8px 14px; }
table { border-collapse: collapse; font-size: 13.5px; margin: 6px 0 4px; }
table.data th, table.data td, table.kv th, table.kv td { border: 1px solid var(--line); padding: 4px 9px; }
table.data th { background: var(--bg2); text-align: left; font-weight: 600; }
table.data tbody tr:nth-child(even) { background: #fbfcfd; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
table.kv th { background: var(--bg2); text-align: left; font-weight: 600; width: 260px; }
.scroll { overflow-x: auto; }
.caption { color: var(--muted); font-size: 13px; margin: 2px 0 6px; max-width: 900px; }
figure { margin: 18px 0 28px; }
figure img { max-width: 100%; height: auto; border: 1px solid var(--line); border-radius: 4px; }
figcaption { color: var(--muted); font-size: 13px; margin-top: 4px; max-width: 900px; }
figcaption b { color: var(--fg); }
pre { background: var(--bg2); border: 1px solid var(--line); border-radius: 6px; padding: 10px 14px;
      overflow-x: auto; font-size: 12.5px; }
details summary { cursor: pointer; color: var(--accent); }
"""


def _kv(pairs: list[tuple[str, str]]) -> str:
    rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in pairs)
    return f'<table class="kv">{rows}</table>'


def _table_html(t: Table) -> str:
    return (f'<h3 id="t-{t.key}">{html.escape(t.title)}</h3><p class="caption">{html.escape(t.caption)}</p>'
            f'<div class="scroll">{t.to_html()}</div>')


def render(rep: Report) -> str:
    s = rep.study
    title = s.report.get("title") or f"Study {s.name}"
    n_fin = sum(r["status"] == "finished" for r in rep.rows)
    n_fail = sum(r["status"] == "failed" for r in rep.rows)
    models = "; ".join(
        m.name + (" (" + ", ".join(f"{k} ∈ {{{', '.join(format_value(v) for v in vs)}}}" for k, vs in m.grid.items()) + ")"
                  if m.grid else "")
        for m in s.models)
    settings = [
        ("study", s.name + (f" — {s.description}" if s.description else "")),
        ("datasets", ", ".join(s.datasets)),
        ("models", models),
        ("seeds", ", ".join(map(str, s.seeds))),
        ("training", ", ".join(f"{k}={v}" for k, v in s.train.items()) or "defaults"),
        ("evaluation", "metrics: " + (", ".join(s.metrics) if s.metrics else "full suite")
         + (f"; sizes: {json.dumps(s.sizes)}" if s.sizes else "; reference sample sizes")
         + (f"; UDR pool also holds {', '.join(s.udr_reference)}" if s.udr_reference else "")),
        ("runs", f"{len(rep.rows)} ({n_fin} finished, {n_fail} failed, "
                 f"{len(rep.rows) - n_fin - n_fail} not finished)"),
    ]
    if rep.recorded:
        which = "all runs" if len(rep.recorded) == len(rep.rows) else f"{len(rep.recorded)} of {len(rep.rows)} runs"
        settings.append(("results from", f"results.csv for {which}: their run folders are not in {rep.root}, so "
                         "their tables come from results.csv (settings, status, final validation terms, metrics)"))
    parts = [f"<h1>{html.escape(title)}</h1>",
             f'<p class="sub">untwine report for <code>{html.escape(str(rep.root))}</code></p>']
    nav = [("settings", "Settings"), ("learning", "Learning check"), ("tables", "Tables")]
    nav += [("published", "Published numbers")] if rep.references or rep.claims else []
    nav += [("figures", "Figures"), ("failures", "Failures"), ("environment", "Environment")]
    parts.append("<nav>" + "".join(f'<a href="#{a}">{b}</a>' for a, b in nav) + "</nav>")
    if rep.headline:
        parts.append('<div class="headline"><ul>' + "".join(f"<li>{html.escape(h)}</li>" for h in rep.headline)
                     + "</ul></div>")
    parts.append('<h2 id="settings">Settings</h2>' + _kv(settings))
    if s.text:
        parts.append(f"<details><summary>study file</summary><pre>{html.escape(s.text)}</pre></details>")
    parts.append('<h2 id="learning">Learning check</h2>')
    parts.append(_table_html(rep.learning) if rep.learning else "<p>No finished runs yet.</p>")
    parts.append('<h2 id="tables">Tables</h2>')
    shown = [t for t in rep.tables if t.key != "failures"]
    parts += [_table_html(t) for t in shown] or ["<p>No finished runs yet.</p>"]
    parts.append(f"<p class=\"caption\">TC (nats): {html.escape(R.our_units('val_tc', ''))}. "
                 f"TC batch: {html.escape(R.BATCH_TC_DEFAULT)}; for FactorVAE "
                 f"{html.escape(R.BATCH_TC_UNITS['factor-vae'])}.</p>")
    if rep.skipped:
        parts.append("<p>Metrics that do not apply (skipped):</p><ul>"
                     + "".join(f"<li>{html.escape(x)}</li>" for x in rep.skipped) + "</ul>")
    if rep.references or rep.claims:
        parts.append('<h2 id="published">Published numbers beside ours</h2>')
        if rep.claims:
            parts.append("<ul>" + "".join(f"<li>{html.escape(c)}</li>" for c in rep.claims) + "</ul>")
        for c in rep.references:
            parts.append(_table_html(c.table) + f"<p><b>Trends.</b> {html.escape(c.trend)}</p>"
                         + '<ul class="caption">' + "".join(f"<li>{html.escape(n)}</li>" for n in c.notes)
                         + "</ul>")
    parts.append('<h2 id="figures">Figures</h2>')
    if rep.recorded:
        parts.append(f'<p class="warn">{html.escape(figures_sentence(rep))}</p>')
    if rep.figures:
        parts.append("<p>" + " · ".join(f'<a href="#f-{i}">{html.escape(f.title)}</a>'
                                        for i, f in enumerate(rep.figures)) + "</p>")
    for i, f in enumerate(rep.figures):
        b64 = base64.b64encode(f.png).decode("ascii")
        parts.append(f'<figure id="f-{i}"><img alt="{html.escape(f.title)}" src="data:image/png;base64,{b64}">'
                     f"<figcaption><b>{html.escape(f.title)}.</b> {html.escape(f.caption)}</figcaption></figure>")
    if not rep.figures:
        parts.append("<p>No figures.</p>")
    parts.append('<h2 id="failures">Failures</h2>')
    fail = next((t for t in rep.tables if t.key == "failures"), None)
    parts.append(_table_html(fail) if fail else "<p>Every run finished.</p>")
    if rep.notes:
        parts.append('<div class="warn"><b>Report notes</b><ul>'
                     + "".join(f"<li>{html.escape(n)}</li>" for n in rep.notes) + "</ul></div>")
    parts.append('<h2 id="environment">Environment</h2>' + _kv(environment(rep)))
    body = "\n".join(parts)
    tpl = Template(TEMPLATE.read_text(encoding="utf-8")) if TEMPLATE.is_file() else Template(_FALLBACK)
    return tpl.substitute(title=html.escape(title), css=CSS, body=body)


_FALLBACK = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>$title</title><style>$css</style></head>
<body><main>
$body
</main></body></html>
"""


def skipped_metrics(root: Path, rows: list[dict[str, Any]]) -> list[str]:
    """``"<dataset>: <metric>: <reason> (n runs)"`` for metrics a run's ``metrics.json`` skipped."""
    seen: dict[tuple[str, str, str], int] = {}
    for r in rows:
        for name, why in ((files.peek_json(root / r["run"] / "metrics.json") or {}).get("skipped") or {}).items():
            key = (r["dataset"], name, str(why))
            seen[key] = seen.get(key, 0) + 1
    return [f"{ds}: {name}: {why} ({n} run{'s' if n != 1 else ''})" for (ds, name, why), n in seen.items()]


def build_report(root: str | Path, figures: bool | None = None,
                 references: str | Path | None = None) -> Report:
    """Collect a sweep folder's results and build the tables and figures (no files written).
    ``references``: a study file whose ``[[reference]]``/``[[claim]]`` entries to use instead of
    those of the sweep's own study file."""
    r = Path(root)
    study = load_sweep_study(r, references)
    rows, recorded = collect_for_report(study, r)
    rep = Report(study, r, rows, tables=T.all_tables(rows), recorded=recorded)
    at = next((i for i, t in enumerate(rep.tables) if t.key == "failures"), len(rep.tables))
    rep.tables[at:at] = selection.selection_tables(rows)  # UDR per seed beside MIG, and the picks
    rep.references, rep.claims = R.comparisons(study, rows)
    rep.skipped = skipped_metrics(r, rows)
    learning_check(rep)
    if (udr_sentence := selection.headline(rows)) is not None:
        rep.headline.append(udr_sentence)
    if "keep" in study.report and (k := selection.kept_sentence(rows, study.report["keep"], study.udr_reference)):
        rep.headline.insert(0, k)
    rep.shipped, missing = S.resolve([str(n) for n in study.report_option("pretrained")])
    rep.notes += missing
    if rep.shipped:
        rep.tables.insert(0, S.comparison_table(r, rows, rep.shipped))
        sentence = S.disentangled_sentence(rows)
        if sentence:
            rep.headline.insert(0, sentence)
    if figures if figures is not None else study.report_option("figures"):
        draw_figures(rep)
    return rep


def table_files(rep: Report) -> dict[str, str]:
    """``tables/`` of a report as :func:`write_report` writes it: file name -> text, each table as
    ``KEY.csv`` and ``KEY.md`` (scripts/results_tables.py checks committed ``.md`` ones against it)."""
    out: dict[str, str] = {}
    for t in rep.tables + ([rep.learning] if rep.learning else []) + [c.table for c in rep.references]:
        out[f"{t.key}.csv"], out[f"{t.key}.md"] = t.to_csv(), t.to_markdown()
    return out


def write_report(root: str | Path, output: str | Path | None = None, figures: bool | None = None,
                 references: str | Path | None = None, markdown: str | Path | None = None) -> Path:
    """Write ``root/report.html`` (or ``output``), ``root/tables/*.csv|md`` and ``root/figures/*.png``;
    with ``markdown``, also the published numbers beside ours as one Markdown file there
    (:func:`untwine.report.reference.comparisons_markdown`). Returns the HTML path."""
    rep = build_report(root, figures, references)
    r = Path(root)
    if markdown is not None:
        Path(markdown).write_text(R.comparisons_markdown(rep.study, rep.rows), encoding="utf-8")
    (r / "tables").mkdir(exist_ok=True)
    for name, text in table_files(rep).items():
        (r / "tables" / name).write_text(text, encoding="utf-8")
    if rep.figures:
        (r / "figures").mkdir(exist_ok=True)
        for f in rep.figures:
            (r / "figures" / f"{_slug(f.key)}.png").write_bytes(f.png)
    out = Path(output) if output is not None else r / "report.html"
    out.write_text(render(rep), encoding="utf-8")
    return out


def _slug(s: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in s)
