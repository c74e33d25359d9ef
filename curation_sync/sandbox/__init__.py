"""A local stand-in for the part of the Synapse REST API that curation work uses.

`Sandbox` serves the repo, file and auth paths on one base URL on 127.0.0.1 for the
unmodified synapseclient; `write_synapse_config` points a client at it.
"""

from __future__ import annotations

from curation_sync.sandbox.runtime import Sandbox, write_synapse_config

__all__ = ["Sandbox", "write_synapse_config"]
