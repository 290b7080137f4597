"""What one dashboard was started with, kept on the app's state."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from pathlib import Path

from starlette.templating import Jinja2Templates

__all__ = ["Settings", "templates"]

HERE = Path(__file__).parent


def templates() -> Jinja2Templates:
    """The page templates. Autoescaping is on for every template (they are
    all HTML, SVG inside), so every string a user stored — a job's name, a
    failure's message — is shown as text, never read as markup."""
    found = Jinja2Templates(directory=HERE / "templates")
    found.env.autoescape = True
    found.env.trim_blocks = True
    found.env.lstrip_blocks = True
    return found


@dataclass
class Settings:
    """A dashboard's settings."""

    url: str
    """The store's database URL."""
    allow_control: bool = False
    """Whether control actions (cancel, pause, requeue) are on."""
    token: str | None = None
    """The access token every request must carry, if any."""
    csrf_token: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    """The token control forms and calls must send back; new at every start."""
    templates: Jinja2Templates = field(default_factory=templates)
