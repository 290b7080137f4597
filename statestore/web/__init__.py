"""The live web dashboard (``statestore serve``; ``pip install 'statestore[web]'``).

See :func:`statestore.web.app.create_app`."""

from statestore.web.app import create_app

__all__ = ["create_app"]
