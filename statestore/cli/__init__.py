"""The ``statestore`` command. Each module adds one group of commands to
:data:`~statestore.cli.root.app`; importing this package assembles them."""

from __future__ import annotations

from statestore.cli import (  # noqa: F401  (each registers its commands)
    check_command,
    dump_commands,
    events_command,
    flows_commands,
    jobs_commands,
    purge_command,
    schema_commands,
    serve_command,
    taskflow_commands,
    workers_commands,
)
from statestore.cli.root import app

__all__ = ["app", "main"]


def main() -> None:
    """Entry point of the ``statestore`` console script."""
    app()
