"""Request a grant: contractor (found as you type by the contractors screen's search: name,
email, external id or uid), scope, access level, days and reason, sent as the acting
operator. The new grant's id, or the service's refusal, is shown in the form itself; the form
stays open for the next request and returns the ids it created when closed."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Button, Input, Label, OptionList, Select, Static
from textual.widgets.option_list import Option
from textual.worker import Worker, WorkerState, get_current_worker

from govtui.errors import GovtuiError
from govtui.models import ACCESS_LEVELS
from govtui.services.catalog import TIER_CAP_DAYS, ScopeView
from govtui.services.contractors import ContractorRow
from govtui.tui.modals.base import GovtuiModal
from govtui.tui.plain import line, plain


def scope_label(scope: ScopeView) -> Text:
    """A scope in the form's list (a Text: a str option is parsed as markup)."""
    label = f"{line(scope.path)}  ({line(scope.sensitivity)}, up to {_max_days(scope)}d)"
    return Text(label + " — client paused" if scope.client_status == "paused" else label)


def _max_days(scope: ScopeView) -> int:
    return min(scope.max_grant_days, TIER_CAP_DAYS[scope.sensitivity])


@dataclass(frozen=True)
class RequestInput:
    """What the request form asks for."""

    contractor: str
    scope_path: str
    access: str
    days: int
    reason: str


FindContractors = Callable[[str], list[ContractorRow]]


def match_label(row: ContractorRow) -> Text:
    """One contractor in the list of matches (data as text, never markup)."""
    label = plain(row.external_id, "bold")
    label.append("  ")
    label.append_text(plain(row.name))
    label.append_text(plain(f"  {row.email}", "dim"))
    if row.status != "active":
        label.append_text(plain(f"  ({row.status})", "dim"))
    return label


class RequestForm(GovtuiModal[list[int]]):
    """Returns the ids of the grants requested while it was open."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("down", "to_matches", "Matching contractors", show=False),
    ]
    MATCHES = 8  # contractors listed under the field
    DEBOUNCE = 0.15  # as the contractors screen's search

    @dataclass
    class Requested(Message):
        grant_id: int
        form: RequestInput

    @dataclass
    class Refused(Message):
        message: str

    @dataclass
    class Matches(Message):
        search: str
        rows: list[ContractorRow]

    def __init__(
        self,
        *,
        scopes: list[ScopeView],
        submit: Callable[[RequestInput], int],
        actor_name: str,
        find_contractors: FindContractors,
    ) -> None:
        super().__init__()
        self.find_contractors = find_contractors
        self.matches: list[ContractorRow] = []
        self.scopes = {scope.path: scope for scope in scopes}
        self.submit_request = submit
        self.actor_name = actor_name
        self.created: list[int] = []
        self.busy = False

    def cancel_result(self) -> list[int]:
        return list(self.created)

    def compose(self) -> ComposeResult:
        with Vertical(id="request-dialog", classes="dialog"):
            yield Static(
                Text(f"Request a grant (as {line(self.actor_name)})", style="bold"),
                classes="dialog-title",
            )
            yield Label("Contractor (name, email, external id or uid; ↓ to pick)")
            yield Input(placeholder="e.g. Gita or E1001", id="request-contractor")
            yield OptionList(id="request-matches")
            yield Label("Dataset scope")
            yield Select(
                [(scope_label(s), path) for path, s in self.scopes.items()],
                prompt="Choose a scope",
                id="request-scope",
            )
            yield Label("Access level")
            yield Select(
                [(level, level) for level in ACCESS_LEVELS],
                allow_blank=False,
                value=ACCESS_LEVELS[0],
                id="request-access",
            )
            yield Label("Days", id="request-days-label")
            yield Input(placeholder="days", restrict=r"[0-9]*", max_length=4, id="request-days")
            yield Label("Reason")
            yield Input(placeholder="why this access is needed", id="request-reason")
            yield Static("", id="request-result")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Request", variant="primary", id="request-submit")
                yield Button("Close", id="request-close")

    def on_mount(self) -> None:
        self.query_one("#request-matches", OptionList).display = False
        self.set_focus(self.query_one("#request-contractor", Input))

    # -- the contractor, found by the contractors screen's search ---------------------------

    @on(Input.Changed, "#request-contractor")
    def contractor_typed(self, event: Input.Changed) -> None:
        text = event.value.strip()
        if any(row.external_id == text for row in self.matches):
            return  # a match just picked
        self.search(text)

    @work(thread=True, exclusive=True, exit_on_error=False, group="request-search")
    def search(self, text: str) -> None:
        worker = get_current_worker()
        if worker.cancelled_event.wait(self.DEBOUNCE):
            return  # a newer keystroke
        rows = self.find_contractors(text) if text else []
        if not worker.is_cancelled:
            self.post_message(self.Matches(text, rows))

    @on(Matches)
    def show_matches(self, message: Matches) -> None:
        if message.search != self.query_one("#request-contractor", Input).value.strip():
            return  # typed on since
        self.matches = message.rows
        matches = self.query_one("#request-matches", OptionList)
        matches.clear_options()
        matches.add_options(Option(match_label(row), id=row.external_id) for row in message.rows)
        exact = [r for r in message.rows if r.external_id == message.search]
        matches.display = bool(message.rows) and not (len(message.rows) == 1 and exact)

    def action_to_matches(self) -> None:
        matches = self.query_one("#request-matches", OptionList)
        if self.focused is self.query_one("#request-contractor", Input) and matches.display:
            matches.highlighted = 0
            self.set_focus(matches)

    @on(OptionList.OptionSelected, "#request-matches")
    def match_chosen(self, event: OptionList.OptionSelected) -> None:
        self._pick(str(event.option.id))

    def _pick(self, external_id: str) -> None:
        contractor = self.query_one("#request-contractor", Input)
        contractor.value = external_id
        self.query_one("#request-matches", OptionList).display = False
        self.set_focus(self.query_one("#request-scope", Select))

    @on(Select.Changed, "#request-scope")
    def scope_changed(self, event: Select.Changed) -> None:
        scope = self.scopes.get(str(event.value))
        label = "Days" if scope is None else f"Days (at most {_max_days(scope)} for this scope)"
        self.query_one("#request-days-label", Label).update(Text(label))

    @on(Input.Submitted, "#request-contractor")
    def contractor_submitted(self, event: Input.Submitted) -> None:
        # Enter on a search that found one contractor picks them.
        text = event.value.strip()
        if len(self.matches) == 1 and self.matches[0].external_id != text:
            self._pick(self.matches[0].external_id)
        else:
            self.query_one("#request-matches", OptionList).display = False
            self.set_focus(self.query_one("#request-scope", Select))

    @on(Input.Submitted, "#request-days")
    def next_field(self) -> None:
        self.focus_next()

    @on(Input.Submitted, "#request-reason")
    @on(Button.Pressed, "#request-submit")
    def submit(self) -> None:
        if self.busy:
            return
        form = self._read()
        if isinstance(form, str):
            self._result(form, error=True)
            return
        self.busy = True
        self.query_one("#request-submit", Button).disabled = True
        self._result("Requesting…", error=False)
        self.send(form)

    def _read(self) -> RequestInput | str:
        """The form's values, or what is missing."""
        contractor = self.query_one("#request-contractor", Input).value.strip()
        scope = self.query_one("#request-scope", Select).value
        access = self.query_one("#request-access", Select).value
        days = self.query_one("#request-days", Input).value.strip()
        reason = self.query_one("#request-reason", Input).value.strip()
        if not contractor:
            return "Give the contractor (type a name, email, external id or uid)."
        if not isinstance(scope, str):
            return "Choose a dataset scope."
        if not days or int(days) < 1:
            return "Give the number of days (1 or more)."
        if not reason:
            return "Give a reason for the request."
        return RequestInput(contractor, scope, str(access), int(days), reason)

    @work(thread=True, exclusive=True, exit_on_error=False, group="request")
    def send(self, form: RequestInput) -> None:
        try:
            grant_id = self.submit_request(form)
        except GovtuiError as exc:
            self.post_message(self.Refused(str(exc)))
            return
        self.post_message(self.Requested(grant_id, form))

    @on(Requested)
    def requested(self, message: Requested) -> None:
        self._done()
        self.created.append(message.grant_id)
        form = message.form
        self._result(
            f"Requested grant #{message.grant_id}: {form.contractor} → {form.scope_path} at "
            f"{form.access} for {form.days} days. It waits for an approver.",
            error=False,
        )
        self.notify(f"Grant #{message.grant_id} requested", markup=False)

    @on(Refused)
    def refused(self, message: Refused) -> None:
        self._done()
        self._result(message.message, error=True)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        # (Textual also calls the base class's handler, which reports the failure.)
        if event.state is WorkerState.ERROR:
            self._done()
            self._result("The request failed: see the error message.", error=True)

    @on(Button.Pressed, "#request-close")
    def close_pressed(self) -> None:
        self.action_cancel()

    def _done(self) -> None:
        self.busy = False
        self.query_one("#request-submit", Button).disabled = False

    def _result(self, text: str, *, error: bool) -> None:
        style = "bold red" if error else "green"
        # What the service said may quote what was typed: escaped, never markup.
        self.query_one("#request-result", Static).update(Text(line(text), style=style))
