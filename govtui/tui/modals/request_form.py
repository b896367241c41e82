"""Request a grant: contractor (found as you type by the contractors screen's search: name,
email, external id or uid), scope, access level, days and reason, sent as the acting
operator. The days a grant would really last after the caps are asked of the service as the
form is filled in; a field left empty says so beside it; the service's refusal is shown in
the form. On success the form closes and returns the new grant's id."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import Button, Input, Label, OptionList, Select, Static
from textual.widgets.option_list import Option
from textual.worker import Worker, WorkerState, get_current_worker

from govtui.errors import GovtuiError
from govtui.models import ACCESS_LEVELS
from govtui.services.catalog import ScopeView
from govtui.services.contractors import ContractorRow
from govtui.services.grants import EffectiveDays
from govtui.tui.modals.base import GovtuiModal
from govtui.tui.plain import line, plain


def scope_label(scope: ScopeView) -> Text:
    """A scope in the form's list (a Text: a str option is parsed as markup)."""
    label = f"{line(scope.path)}  ({line(scope.sensitivity)})"
    return Text(label + " — client paused" if scope.client_status == "paused" else label)


def effective_text(effective: EffectiveDays) -> Text:
    """'30 days after the caps (45 asked: the confidential tier's cap of 30 days)'."""
    if effective.asked is None:
        text = Text(f"At most {effective.days} days on this scope", style="dim")
        if effective.because:
            text.append(f" ({line(effective.because)})", style="dim")
        return text
    if effective.because is None:
        return Text(f"{effective.days} days, as asked", style="green")
    text = Text(f"{effective.days} days after the caps", style="bold yellow")
    text.append(f" ({effective.asked} asked: {line(effective.because)})", style="yellow")
    return text


@dataclass(frozen=True)
class RequestInput:
    """What the request form asks for."""

    contractor: str
    scope_path: str
    access: str
    days: int
    reason: str


FindContractors = Callable[[str], list[ContractorRow]]
# scope path, days asked (None: the most allowed), contractor external id (None: not known)
Effective = Callable[[str, int | None, str | None], EffectiveDays]
# The required fields, and what an empty one says beside it.
REQUIRED = {
    "request-contractor": "Give the contractor (type a name, email, external id or uid).",
    "request-scope": "Choose a dataset scope.",
    "request-days": "Give the number of days (1 or more).",
    "request-reason": "Give a reason for the request.",
}


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
    """Returns [the new grant's id] once requested; [] when closed without one."""

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

    @dataclass
    class EffectiveLoaded(Message):
        asked: tuple[str, int | None, str | None]
        effective: EffectiveDays | None

    def __init__(
        self,
        *,
        scopes: list[ScopeView],
        submit: Callable[[RequestInput], int],
        actor_name: str,
        find_contractors: FindContractors,
        effective: Effective,
    ) -> None:
        super().__init__()
        self.find_contractors = find_contractors
        self.effective = effective
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
            # Only the fields scroll: the title, the outcome and the buttons stay in view.
            with VerticalScroll(id="request-body"):
                yield Label("Contractor (name, email, external id or uid; ↓ to pick)")
                yield Input(placeholder="e.g. Gita or E1001", id="request-contractor")
                yield Static("", id="request-contractor-error", classes="field-error")
                yield OptionList(id="request-matches")
                yield Label("Dataset scope")
                yield Select(
                    [(scope_label(s), path) for path, s in self.scopes.items()],
                    prompt="Choose a scope",
                    id="request-scope",
                )
                yield Static("", id="request-scope-error", classes="field-error")
                with Horizontal(id="request-access-days"):
                    with Vertical():
                        yield Label("Access level")
                        yield Select(
                            [(level, level) for level in ACCESS_LEVELS],
                            allow_blank=False,
                            value=ACCESS_LEVELS[0],
                            id="request-access",
                        )
                    with Vertical():
                        yield Label("Days", id="request-days-label")
                        yield Input(
                            placeholder="days", restrict=r"[0-9]*", max_length=4, id="request-days"
                        )
                yield Static("", id="request-days-error", classes="field-error")
                yield Static("", id="request-effective")
                yield Label("Reason")
                yield Input(placeholder="why this access is needed", id="request-reason")
                yield Static("", id="request-reason-error", classes="field-error")
            yield Static("", id="request-result")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Request", variant="primary", id="request-submit")
                yield Button("Close", id="request-close")

    def on_mount(self) -> None:
        self.query_one("#request-matches", OptionList).display = False
        for error in self.query(".field-error").results(Static):
            error.display = False
        self.set_focus(self.query_one("#request-contractor", Input))

    # -- what is missing, beside its field ---------------------------------------------------

    def _field_error(self, field: str, text: str | None) -> None:
        error = self.query_one(f"#{field}-error", Static)
        error.update(Text(text or "", style="bold red"))
        error.display = text is not None

    @on(Input.Changed, "#request-contractor, #request-days, #request-reason")
    @on(Select.Changed, "#request-scope")
    def field_filled(self, event: Input.Changed | Select.Changed) -> None:
        field = event.control.id
        if field in REQUIRED and self._value(field):
            self._field_error(field, None)
        if field in ("request-contractor", "request-days", "request-scope"):
            self.show_effective()  # a contractor's contract end may cap the days

    def _value(self, field: str) -> str:
        widget = self.query_one(f"#{field}")
        if isinstance(widget, Select):
            return str(widget.value) if isinstance(widget.value, str) else ""
        assert isinstance(widget, Input)
        return widget.value.strip()

    # -- the days after the caps, from the service -------------------------------------------

    def show_effective(self) -> None:
        scope = self._value("request-scope")
        if not scope:
            self.query_one("#request-effective", Static).update("")
            return
        days = self._value("request-days")
        contractor = self._value("request-contractor")
        known = contractor if any(r.external_id == contractor for r in self.matches) else None
        self.load_effective((scope, int(days) if days and int(days) > 0 else None, known))

    @work(thread=True, exclusive=True, exit_on_error=False, group="request-effective")
    def load_effective(self, asked: tuple[str, int | None, str | None]) -> None:
        scope, days, contractor = asked
        effective: EffectiveDays | None
        try:
            effective = self.effective(scope, days, contractor)
        except GovtuiError:
            try:  # a contractor the service does not know: the scope's caps alone
                effective = self.effective(scope, days, None) if contractor else None
            except GovtuiError:
                effective = None
        self.post_message(self.EffectiveLoaded(asked, effective))

    @on(EffectiveLoaded)
    def effective_loaded(self, message: EffectiveLoaded) -> None:
        effective = message.effective
        shown = Text("") if effective is None else effective_text(effective)
        self.query_one("#request-effective", Static).update(shown)

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
        self.show_effective()  # the contractor typed may be known now (their contract's end)

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
        self.show_effective()  # their contract's end may cap the days

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
        if isinstance(form, list):
            for field in REQUIRED:
                self._field_error(field, REQUIRED[field] if field in form else None)
            self._result(
                f"{len(form)} required field{'s' if len(form) > 1 else ''} empty.", error=True
            )
            self.set_focus(self.query_one(f"#{form[0]}"))
            return
        self.busy = True
        self.query_one("#request-submit", Button).disabled = True
        self._result("Requesting…", error=False)
        self.send(form)

    def _read(self) -> RequestInput | list[str]:
        """The form's values, or the ids of the required fields left empty."""
        missing = [field for field in REQUIRED if not self._value(field)]
        days = self._value("request-days")
        if "request-days" not in missing and int(days) < 1:
            missing.append("request-days")
            missing.sort(key=list(REQUIRED).index)
        if missing:
            return missing
        access = self.query_one("#request-access", Select).value
        return RequestInput(
            self._value("request-contractor"),
            self._value("request-scope"),
            str(access),
            int(days),
            self._value("request-reason"),
        )

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
        self.notify(
            f"Requested grant #{message.grant_id}: {line(form.contractor)} → "
            f"{line(form.scope_path)} at {form.access}. It waits for an approver.",
            title="Request",
            markup=False,
        )
        self.dismiss(list(self.created))  # the grants screen selects the new row

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
