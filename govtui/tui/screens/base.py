"""What every data screen shares: the engine it reads, a refresh key, and failed workers
reported to the app as a message (a worker's StateChanged reaches only the screen)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from sqlalchemy.engine import Engine
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.screen import Screen
from textual.worker import Worker, WorkerState


class GovtuiScreen(Screen[None]):
    """A screen over the database; subclasses load their data in `reload`."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("r", "reload", "Refresh")]

    @dataclass
    class WorkerFailed(Message):
        """A worker of this screen raised; the app shows `error` to the person."""

        worker_name: str
        error: BaseException

    def __init__(self, engine: Engine) -> None:
        super().__init__()
        self.engine = engine

    def on_mount(self) -> None:
        # Textual calls every class's on_mount along the MRO, a subclass's first: by now its
        # widgets are set up. (So subclasses must not call super().on_mount() themselves.)
        self.reload()

    def reload(self) -> None:
        """Start the workers that (re)load what the screen shows."""
        raise NotImplementedError

    def action_reload(self) -> None:
        self.reload()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        # Worker.StateChanged does not bubble; this forwards failures to the app's one handler.
        error = event.worker.error
        if event.state is WorkerState.ERROR and error is not None:
            self.post_message(self.WorkerFailed(event.worker.name, error))
