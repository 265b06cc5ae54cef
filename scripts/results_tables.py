"""The tables of docs/results/*/*.md, regenerated from the CSV and JSON committed beside them:
the command. The tables and the check are the package scripts/results/ (its docstring says how
to add a results folder's tables).

    .venv/bin/python scripts/results_tables.py            # --check: fail, with a diff, on any difference
    .venv/bin/python scripts/results_tables.py --write    # rewrite what lies between the markers
    .venv/bin/python scripts/results_tables.py --list     # the registered table ids
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from results import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
