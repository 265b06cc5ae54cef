"""What a report holds (:class:`Report`: its study, rows, tables, figures, notes...) and one
drawn figure (:class:`Figure`); :mod:`untwine.report.html` builds and renders it,
:mod:`untwine.report.drawing` draws its figures."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..studies.study import Study
from . import reference as R
from .tables import Table


@dataclass
class Figure:
    key: str
    title: str
    caption: str
    png: bytes


@dataclass
class Report:
    study: Study
    root: Path
    rows: list[dict[str, Any]]
    tables: list[Table] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # problems drawing figures etc.
    learning: Table | None = None
    headline: list[str] = field(default_factory=list)
    references: list[R.Comparison] = field(default_factory=list)  # published tables beside ours
    claims: list[str] = field(default_factory=list)  # one line per published scalar
    skipped: list[str] = field(default_factory=list)  # metrics that did not apply, with the reason
    shipped: list[tuple[str, Path]] = field(default_factory=list)  # [report] pretrained: (name, folder)
    recorded: list[str] = field(default_factory=list)  # runs without a run folder, rows from results.csv
