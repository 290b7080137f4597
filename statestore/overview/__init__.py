"""What the store holds, as plain JSON-ready shapes: the ``--json`` output
of the ``statestore`` command and the dashboard's ``/api`` share them.
One module per model: :mod:`.jobs`, :mod:`.workers`, :mod:`.flows`."""
