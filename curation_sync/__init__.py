"""curation-sync: keep a folder of spreadsheets in sync with Synapse curation tasks."""

from __future__ import annotations

__version__ = "0.1.0"
