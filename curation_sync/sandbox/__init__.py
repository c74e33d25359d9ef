"""A local stand-in for the part of the Synapse REST API that curation work uses.

`Sandbox` serves the repo, file and auth paths on one base URL on 127.0.0.1 for the
unmodified synapseclient; `write_synapse_config` points a client at it.

Limitations:
    Principals are users only: teams, team-owned grid sessions and team assignees
    are not modelled. The Grid web UI (websocket replicas, cell edits, grid update
    jobs) is not served; `Sandbox.edit_grid` stands in for a person's cell edits.
    CSV reading does not tell an empty unquoted field from a quoted empty one. The
    task `execute` job is not served.
"""

from __future__ import annotations

from curation_sync.sandbox.runtime import Sandbox, write_synapse_config

__all__ = ["Sandbox", "write_synapse_config"]
