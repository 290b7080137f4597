"""Operators' maintenance of a store, as functions for code and for the
``statestore`` command: :mod:`.purge` (retention), :mod:`.dump` (export
and import as JSON Lines), :mod:`.repair` (maintained columns)."""
