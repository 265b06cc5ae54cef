"""Reports: tables (CSV/Markdown/HTML), matplotlib figures and one self-contained HTML page."""

from .html import build_report, write_report
from .tables import Table, all_tables

__all__ = ["Table", "all_tables", "build_report", "write_report"]
