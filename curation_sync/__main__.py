"""Run the command line with `python -m curation_sync`."""

from __future__ import annotations

import sys

from curation_sync.cli import main

sys.exit(main())
