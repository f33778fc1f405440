"""``python -m helpers.model_report``: see :mod:`helpers.model_report.cli`."""

from helpers.model_report.cli import main

raise SystemExit(main())
