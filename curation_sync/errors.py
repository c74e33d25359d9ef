"""The exception hierarchy: one base class, a child per kind of failure."""

from __future__ import annotations


class CurationSyncError(Exception):
    """Base class of every error curation-sync raises on purpose."""


class ConfigError(CurationSyncError):
    """The configuration file or a command-line option is wrong."""


class WorkbookError(CurationSyncError):
    """A workbook cannot be read or does not fit the task's schema."""


class MappingError(CurationSyncError):
    """A workbook cannot be mapped to a task, or maps to more than one."""


class RemoteError(CurationSyncError):
    """Synapse refused a request or could not be reached."""


class TransientRemoteError(RemoteError):
    """Synapse is unreachable or overloaded; the same request may succeed later."""
