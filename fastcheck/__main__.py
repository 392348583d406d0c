"""``python -m fastcheck``: run the command-line interface."""
from fastcheck.cli import main

raise SystemExit(main())
