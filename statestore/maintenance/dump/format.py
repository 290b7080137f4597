"""The dump's format: its name and version, and the kinds of line in the
order an export writes them (see :mod:`statestore.maintenance.dump`)."""

from __future__ import annotations

__all__ = ["BATCH", "FORMAT", "FORMAT_VERSION", "KINDS", "PAGE", "PARENT_PAGE"]

FORMAT = "statestore-dump"
FORMAT_VERSION = 1
"""The version of the line format this module writes; an import refuses a
header with a newer one."""

PAGE = 500
"""Rows per keyset read of an export."""

PARENT_PAGE = 100
"""Jobs or logbooks per page of an export; their children follow each page."""

BATCH = 500
"""Lines of one kind an import writes at once."""

KINDS = (
    "worker_tag",
    "worker",
    "sleep_schedule",
    "job",
    "task",
    "task_failure",
    "job_block",
    "status_history",
    "last_rendered",
    "logbook",
    "flow_detail",
    "atom_detail",
)
"""Every record kind, in the order an export writes them."""
