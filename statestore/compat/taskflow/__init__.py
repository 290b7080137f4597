"""TaskFlow persistence backend: ``statestore+<url>`` connections.

Requires the ``taskflow`` extra (``pip install 'statestore[taskflow]'``);
``import statestore`` never imports this package, so statestore works
without TaskFlow installed.

* :mod:`.backend` — TaskFlow's ``Backend`` and ``Connection``;
* :mod:`.bridge` — the private event loop the store lives on, run by the calling threads;
* :mod:`.convert` — TaskFlow's model objects ↔ statestore's records;
* :mod:`.migration` — copying logbooks from and to any other TaskFlow backend;
* :mod:`.options` — TaskFlow conf keys → statestore URL and options.
"""

from statestore.compat.taskflow.backend import StatestoreBackend, StatestoreConnection
from statestore.compat.taskflow.migration import TransferProgress, TransferReport, export_taskflow, import_taskflow
from statestore.compat.taskflow.options import store_options

__all__ = [
    "StatestoreBackend",
    "StatestoreConnection",
    "TransferProgress",
    "TransferReport",
    "export_taskflow",
    "import_taskflow",
    "store_options",
]
