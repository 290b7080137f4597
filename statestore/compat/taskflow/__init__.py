"""TaskFlow persistence backend: ``statestore+<url>`` connections.

Requires the ``taskflow`` extra (``pip install 'statestore[taskflow]'``).
"""

from statestore.compat.taskflow.backend import StatestoreBackend, StatestoreConnection, store_options

__all__ = ["StatestoreBackend", "StatestoreConnection", "store_options"]
