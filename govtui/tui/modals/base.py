"""What the modals share: Escape cancels, and a failed worker is reported like a screen's."""

from __future__ import annotations

from typing import ClassVar, TypeVar

from textual.binding import Binding, BindingType
from textual.message import Message
from textual.screen import ModalScreen
from textual.worker import Worker

from govtui.tui.screens.base import dispatch_tolerant, forward_failure

R = TypeVar("R")


class GovtuiModal(ModalScreen[R]):
    """A dialog over the current screen."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def action_cancel(self) -> None:
        self.dismiss(self.cancel_result())

    def cancel_result(self) -> R:
        """What the dialog returns when it is cancelled."""
        raise NotImplementedError

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        forward_failure(self, event)

    async def _dispatch_message(self, message: Message) -> None:
        await dispatch_tolerant(self, super()._dispatch_message, message)
