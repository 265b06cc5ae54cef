"""Reports: tables (CSV/Markdown/HTML), matplotlib figures, one self-contained HTML page, and
published numbers beside ours (:mod:`untwine.report.reference`)."""

from .html import build_report, write_report
from .reference import compare, comparisons, comparisons_markdown
from .tables import Table, all_tables

__all__ = ["Table", "all_tables", "build_report", "compare", "comparisons", "comparisons_markdown", "write_report"]
