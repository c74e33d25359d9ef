"""A local stand-in for the part of the Synapse REST API that curation work uses."""

from __future__ import annotations
