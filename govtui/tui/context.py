"""What the screens of one app share: the database, who is acting, and a counter of grant
changes so that a screen shown again knows whether it is out of date."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import Engine


@dataclass
class TuiContext:
    engine: Engine
    actor_name: str
    grants_version: int = 0  # bumped (on the UI thread) whenever the app changed grants
