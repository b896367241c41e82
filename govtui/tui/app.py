"""The govtui Textual app: key bindings, screens as modes, command palette, error reporting,
and the background work (expiry, directory sync)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import partial
from typing import Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.css.query import NoMatches
from textual.dom import DOMNode
from textual.message import Message
from textual.screen import Screen
from textual.worker import Worker, WorkerState, get_current_worker

from govtui import clock
from govtui.services import catalog_views, convergence, doctor, grants, identity, operators
from govtui.services.workspace import Workspace
from govtui.tui import heap
from govtui.tui.context import SyncSummary, TargetHealth, TuiContext
from govtui.tui.css_preload import preload
from govtui.tui.directory_text import first_error, report_text
from govtui.tui.doctor_line import run_detached
from govtui.tui.error_text import describe_error
from govtui.tui.modals.act_as import ActAsPrompt
from govtui.tui.pause_flow import PauseFlow
from govtui.tui.plain import for_markup, line, notify
from govtui.tui.screens.approvals import ApprovalsScreen
from govtui.tui.screens.base import (
    SCREEN_KEYS,
    DirectoryChanged,
    DrillIn,
    GovtuiScreen,
    GrantsChanged,
)
from govtui.tui.screens.browser import BrowserScreen
from govtui.tui.screens.contractors import ContractorsScreen
from govtui.tui.screens.dashboard import DashboardScreen
from govtui.tui.screens.directory import DirectoryScreen
from govtui.tui.screens.enrol import EnrolScreen
from govtui.tui.screens.grants import GrantsScreen
from govtui.tui.screens.help import HelpScreen
from govtui.tui.screens.reviews import ReviewsScreen

# mode name -> (the screen class, the command palette's title for it)
SCREEN_MODES: dict[str, tuple[type[GovtuiScreen], str]] = {
    "dashboard": (DashboardScreen, "Dashboard"),
    "browser": (BrowserScreen, "Clients / projects / scopes"),
    "contractors": (ContractorsScreen, "Contractors"),
    "grants": (GrantsScreen, "Grants"),
    "approvals": (ApprovalsScreen, "Approvals"),
    "reviews": (ReviewsScreen, "Access reviews"),
    "directory": (DirectoryScreen, "Directory"),
}
ENROL_TITLE = "Enrol my authenticator"
# The worker groups that write a person's change (a pause, an approval, a revoke...): quitting
# while one runs interrupts it, and the person is told on the way out that it may not be made.
WRITE_GROUPS = frozenset(
    {
        "approvals-write",
        "grants-write",
        "pause-change",
        "enrol-write",
        "items-decide",
        "reviews-close",
        "request",
        "directory-reconcile",
    }
)
QUIT_DURING_WRITE = (
    "govtui quit while a change was being written: it was interrupted and rolled back unless "
    "it had just committed. Look (the grants, the client, the audit log) before doing it again."
)
_SWITCHING = "_switching"  # a blank mode, while the demo's screens are made afresh


class GovtuiApp(App[None]):
    """The TUI over one database, acting as one operator. While it runs, grants past their
    expiry are ended every EXPIRY_INTERVAL seconds and the directory outbox is pushed every
    SYNC_INTERVAL seconds; the screens showing what changed refresh."""

    CSS_PATH = "app.tcss"
    DEFAULT_MODE = "dashboard"
    # The one global key map (screens/base.py): a key per screen, the same everywhere.
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(SCREEN_KEYS["dashboard"], "show('dashboard')", "Dashboard"),
        Binding(SCREEN_KEYS["browser"], "show('browser')", "Browse"),
        Binding(SCREEN_KEYS["contractors"], "show('contractors')", "Contractors"),
        Binding(SCREEN_KEYS["grants"], "show('grants')", "Grants"),
        Binding(SCREEN_KEYS["approvals"], "show('approvals')", "Approvals"),
        Binding(SCREEN_KEYS["reviews"], "show('reviews')", "Reviews"),
        Binding(SCREEN_KEYS["directory"], "show('directory')", "Directory"),
        Binding("question_mark", "help", "Help", key_display="?"),
        Binding("f1", "help", "Help", show=False),
        Binding("q", "quit", "Quit"),
    ]
    EXPIRY_INTERVAL: ClassVar[float] = 60.0  # seconds between background expiry runs
    SYNC_INTERVAL: ClassVar[float] = 30.0  # seconds between background directory syncs

    @dataclass
    class GrantsExpired(Message):
        """The background expiry ended these grants."""

        ids: list[int]

    @dataclass
    class SyncFinished(Message):
        """A sync run ended; `run` is None when there is no directory target."""

        run: convergence.SyncRun | None
        manual: bool

    @dataclass
    class SyncProgressed(Message):
        """A sync run has handled `handled` of its `total` operations."""

        handled: int
        total: int

        def can_replace(self, message: Message) -> bool:
            # A burst of progress collapses into one redraw of the newest.
            return isinstance(message, GovtuiApp.SyncProgressed)

    @dataclass
    class RosterLoaded(Message):
        """The operators one may act as (the demo only)."""

        roster: list[operators.OperatorView]

    @dataclass
    class ActorChecked(Message):
        """`name` may act here (bound to this login): the app now acts as them."""

        name: str

    @dataclass
    class DoctorFinished(Message):
        """`govtui doctor`'s checks (all but the audit chain, which the dashboard verifies
        on its own line) have run."""

        report: doctor.Report

    @dataclass
    class ClientsLoaded(Message):
        """Every client's name and status, for the command palette."""

        clients: list[tuple[str, str]]

    def __init__(self, workspace: Workspace, *, demo: bool = False, doctor: bool = False) -> None:
        """`demo`: the database is a demo's (services.demo.is_demo), whose operators all share
        the login running it; only then may the acting operator be switched (key w). Outside
        the demo the operator is the one govtui was started as, for the whole session.
        `doctor`: run `govtui doctor`'s checks in the background at start; the dashboard shows
        a red line if one fails (`govtui` itself says so; tests say when they want it)."""
        super().__init__()
        preload(self.stylesheet)
        self.workspace = workspace
        self.actor_name = workspace.actor_name
        self.context = TuiContext(workspace, doctor_on=doctor)
        self.demo = demo
        if demo:
            self.bind("w", "act_as", description="Act as… (demo)")
        self._set_title()
        # The palette lists a command per client; it may not query on the UI thread, so it
        # reads this list, which a worker refreshes on mount and after grants or pauses change.
        self.clients: list[tuple[str, str]] = []
        # The last error each background job showed; repeats are only logged.
        self._shown_errors: dict[str, str | None] = {"expiry": None, "sync": None}
        self._sync_manual = False  # whether the sync run going was asked for
        for mode, (screen_class, _title) in SCREEN_MODES.items():
            self.add_mode(mode, partial(self._new_screen, screen_class))
        self.pause_flow = PauseFlow(self, self.context, changed=self._pause_changed)
        self.quitting = False  # q was pressed: nothing new starts, failures are not shown

    def _new_screen(self, screen_class: type[GovtuiScreen]) -> GovtuiScreen:
        """A mode's screen, made when first shown. Marked as styled with the current CSS:
        Textual re-parses the whole stylesheet for a new mode's screen otherwise (about a
        second, twice), and css_preload put every widget's CSS in at start; govtui's screens
        have no CSS of their own."""
        screen = screen_class(self.context)
        screen._css_update_count = self._css_update_count
        return screen

    def _set_title(self) -> None:
        demo = " (demo: w switches)" if self.demo else ""
        self.title = f"govtui — acting as {line(self.actor_name)}{demo}"

    def on_mount(self) -> None:
        self.call_after_refresh(heap.freeze)  # the app, its stylesheet and the first screen
        if self.context.doctor_on:
            self.run_doctor()
        self.load_clients()
        self.expire_now()
        self.set_interval(self.EXPIRY_INTERVAL, self.expire_now)
        self.set_interval(self.SYNC_INTERVAL, self.sync_in_background)

    def expire_now(self) -> None:
        """Start a background expiry run, unless one is still going."""
        if not any(w.group == "expiry" and not w.is_finished for w in self.workers):
            self.run_expiry()

    async def action_quit(self) -> None:
        """Quit at once: every worker is cancelled and the queries running stop (each rolls
        back), so no load, sync or count keeps the exit waiting."""
        self.quitting = True
        writing = any(w.group in WRITE_GROUPS and not w.is_finished for w in self.workers)
        self.workers.cancel_all()
        self.workspace.interrupt()
        # Said on the way out (as Text: never parsed as markup), not silently undone.
        self.exit(message=Text(QUIT_DURING_WRITE) if writing else None)

    async def _dispatch_action(self, namespace: DOMNode, action_name: str, params: Any) -> bool:
        # A key pressed while a screen composes or the app quits may reach an action whose
        # widget is not there (yet, or any more): it does nothing, where Textual would end
        # the app with a traceback (`NoMatches: '#grant-table'`).
        try:
            return await super()._dispatch_action(namespace, action_name, params)
        except NoMatches as error:
            self.log.warning(f"action {action_name} dropped: {error}")
            return True

    def action_show(self, mode: str) -> None:
        """Switch to a screen; its state (search, cursor) is kept while away. The help and
        the enrolment screen (and its QR code) close on the way."""
        while len(self.screen_stack) > 1 and isinstance(self.screen, HelpScreen | EnrolScreen):
            self.pop_screen()
        self.switch_mode(mode)

    @on(DrillIn)
    async def drill_in(self, message: DrillIn) -> None:
        """Enter on a client or a contractor: the grants screen, filtered to them."""
        await self.switch_mode("grants")
        screen = self.screen
        if isinstance(screen, GrantsScreen):
            screen.filter_to(client=message.client, contractor=message.contractor)

    def action_help(self) -> None:
        """Show the keys of the app and of the current screen."""
        if not isinstance(self.screen, HelpScreen):
            screens = [(title, cls.HELP or "") for cls, title in SCREEN_MODES.values()]
            screens.append((ENROL_TITLE, EnrolScreen.HELP))
            self.push_screen(HelpScreen(self.screen, screens))

    def action_enrol(self) -> None:
        """Open the enrolment screen over the current one."""
        if isinstance(self.screen, HelpScreen):
            self.pop_screen()
        if not isinstance(self.screen, EnrolScreen):
            self.push_screen(EnrolScreen(self.context))

    # -- the demo's acting operator ----------------------------------------------------------

    def action_act_as(self) -> None:
        """The demo only: choose another of its operators to act as."""
        if self.demo and not isinstance(self.screen, ActAsPrompt):
            self.load_roster()

    @work(thread=True, exclusive=True, exit_on_error=False, group="roster")
    def load_roster(self) -> None:
        self.post_message(self.RosterLoaded(self.workspace.read(operators.list_all)))

    @on(RosterLoaded)
    def roster_loaded(self, message: RosterLoaded) -> None:
        if isinstance(self.screen, HelpScreen | EnrolScreen):
            self.pop_screen()
        self.push_screen(ActAsPrompt(message.roster, self.actor_name), self._act_as_chosen)

    def _act_as_chosen(self, name: str | None) -> None:
        if name is not None and name != self.actor_name:
            self.check_actor(name)

    @work(thread=True, exclusive=True, exit_on_error=False, group="roster")
    def check_actor(self, name: str) -> None:
        # The same check every action makes: the operator is bound to this login.
        Workspace(self.workspace.engine, name).read_as(identity.require_bound)
        self.post_message(self.ActorChecked(name))

    @on(ActorChecked)
    async def actor_checked(self, message: ActorChecked) -> None:
        if not self.demo:  # never outside the demo, whatever posted this
            return
        self.workspace = Workspace(self.workspace.engine, message.name)
        self.actor_name = message.name
        self.context.workspace = self.workspace
        self._set_title()
        # Every screen is made afresh for the new operator (their queue, their enrolment),
        # by way of a blank screen: a govtui screen made only to be removed at once crashed
        # in its Header's title (NoMatches; w on the dashboard, attack14).
        current = self.current_mode
        self.add_mode(_SWITCHING, Screen)
        await self.switch_mode(_SWITCHING)
        for mode, (screen_class, _title) in SCREEN_MODES.items():
            await self.remove_mode(mode)
            self.add_mode(mode, partial(self._new_screen, screen_class))
        await self.switch_mode(current)
        await self.remove_mode(_SWITCHING)
        notify(self, f"Now acting as {message.name}.", title="Demo")  # a name, not markup

    def get_system_commands(self, screen: Screen[object]) -> Iterable[SystemCommand]:
        for mode, (screen_class, title) in SCREEN_MODES.items():
            yield SystemCommand(title, screen_class.HELP or "", partial(self.action_show, mode))
        yield SystemCommand(ENROL_TITLE, EnrolScreen.HELP, self.action_enrol)
        if self.demo:
            yield SystemCommand(
                "Act as… (demo)", "Choose which demo operator acts next", self.action_act_as
            )
        for client, status in self.clients:
            if status == "paused":
                yield SystemCommand(
                    f"Resume client {for_markup(client)}",
                    "Restore exactly what the pause suspended (your TOTP code)",
                    partial(self.pause_flow.resume, client),
                )
            else:
                yield SystemCommand(
                    f"Pause client {for_markup(client)}",
                    "Suspend every grant and request of the client now, after its blast radius",
                    partial(self.pause_flow.pause, client),
                )
        yield SystemCommand("Help", "Every key of the app and of this screen", self.action_help)
        yield from super().get_system_commands(screen)

    @work(thread=True, exclusive=True, exit_on_error=False, group="clients")
    def load_clients(self) -> None:
        self.post_message(self.ClientsLoaded(self.workspace.read(catalog_views.client_statuses)))

    @on(ClientsLoaded)
    def clients_loaded(self, message: ClientsLoaded) -> None:
        self.clients = message.clients

    # -- govtui doctor at start ----------------------------------------------------------------

    @work(thread=True, exclusive=True, exit_on_error=False, group="doctor")
    def run_doctor(self) -> None:
        worker = get_current_worker()
        engine = self.workspace.engine

        def checks() -> doctor.Report:
            return doctor.run_on(engine, chain=False, cancelled=lambda: worker.is_cancelled)

        # In a thread of its own: hashing the installed files cannot stop halfway, and q
        # must not wait for it (tui/doctor_line.py).
        report = run_detached(checks, lambda: worker.is_cancelled or self.quitting)
        if report is not None and not worker.is_cancelled:
            self.post_message(self.DoctorFinished(report))

    @on(DoctorFinished)
    def doctor_finished(self, message: DoctorFinished) -> None:
        if self.quitting:
            return
        self.context.doctor = message.report
        # The dashboard says so (a red line when a check failed); no toast over other screens.
        for screen in self.screen_stack:
            if isinstance(screen, DashboardScreen):
                screen.show_doctor()

    # -- grants changing under the screens ---------------------------------------------------

    @work(thread=True, exclusive=True, exit_on_error=False, group="expiry")
    def run_expiry(self) -> None:
        # Expiry needs nobody's authority; the audit log names this TUI as the actor.
        ended = self.workspace.act_system(
            grants.expire_due, actor_name=f"system (tui {self.actor_name})"
        )
        if ended:
            self.post_message(self.GrantsExpired(ended))

    @on(GrantsExpired)
    def grants_expired(self, message: GrantsExpired) -> None:
        count = len(message.ids)
        self.notify(f"{count} grant{'s' if count != 1 else ''} expired", title="Expiry")
        self.grants_changed()

    @on(GrantsChanged)
    def screen_changed_grants(self) -> None:
        self.grants_changed()

    def grants_changed(self) -> None:
        """Grants changed: the visible screen reloads if it shows any, the others when shown."""
        self.context.grants_version += 1
        self.load_clients()
        screen = self._data_screen()
        if screen is not None and screen.SHOWS_GRANTS:
            screen.refresh_data()

    def directory_changed(self) -> None:
        """The directories' state changed: likewise for the screens that show it."""
        self.context.directory_version += 1
        screen = self._data_screen()
        if screen is not None and screen.SHOWS_DIRECTORY:
            screen.refresh_data()

    @on(DirectoryChanged)
    def screen_changed_directory(self) -> None:
        self.directory_changed()

    def _data_screen(self) -> GovtuiScreen | None:
        """The data screen on view (under the help or a dialog, if one is open)."""
        for screen in reversed(self.screen_stack):
            if isinstance(screen, GovtuiScreen):
                return screen
        return None

    # -- pausing and resuming clients --------------------------------------------------------

    @on(BrowserScreen.PauseRequested)
    def pause_requested(self, message: BrowserScreen.PauseRequested) -> None:
        self.pause_flow.pause(message.client)

    @on(BrowserScreen.ResumeRequested)
    def resume_requested(self, message: BrowserScreen.ResumeRequested) -> None:
        self.pause_flow.resume(message.client)

    def _pause_changed(self) -> None:
        self.grants_changed()
        self.directory_changed()

    # -- the directory outbox ----------------------------------------------------------------

    def sync_in_background(self) -> None:
        """Start a background sync run, unless one is going."""
        self.start_sync(manual=False)

    def start_sync(self, *, manual: bool) -> bool:
        """Start a sync run unless one is going; whether it started."""
        if any(w.group == "sync" and not w.is_finished for w in self.workers):
            return False
        self._sync_manual = manual
        self.context.syncing = True
        self.context.sync_progress = None
        self._sync_state_changed()
        self.run_sync(manual)
        return True

    @on(DirectoryScreen.SyncRequested)
    def sync_requested(self) -> None:
        if not self.start_sync(manual=True):
            self.notify("A sync is running already; its progress shows on the directory screen.")

    @work(thread=True, exit_on_error=False, group="sync")
    def run_sync(self, manual: bool) -> None:
        # The sync key is a person asking: everything open is tried now. The background
        # worker keeps the backoff.
        run = convergence.sync_now(
            self.workspace.engine,
            progress=self._progress_from_thread,
            due="now" if manual else "backoff",
        )
        self.post_message(self.SyncFinished(run, manual))

    def _progress_from_thread(self, handled: int, total: int) -> None:
        self.post_message(self.SyncProgressed(handled, total))

    @on(SyncProgressed)
    def sync_progressed(self, message: SyncProgressed) -> None:
        if self.context.syncing:
            self.context.sync_progress = (message.handled, message.total)
            self._sync_state_changed()

    def _sync_state_changed(self) -> None:
        screen = self._data_screen()
        if screen is not None:
            screen.sync_state_changed()

    @on(SyncFinished)
    def sync_finished(self, message: SyncFinished) -> None:
        context = self.context
        context.syncing = False
        run = message.run
        if run is None:
            self._sync_state_changed()
            if message.manual:
                self.notify("No directory target: add one with `govtui directory add`.")
            return
        now = clock.now()
        report = run.report
        errors = {name: describe_error(e) if e else None for name, e in run.health.items()}
        health = {name: TargetHealth(error, now) for name, error in errors.items()}
        changed = (
            bool(report.done or report.retrying or report.failed or report.errors)
            or {name: h.error for name, h in context.health.items()} != errors
        )
        context.last_sync = SyncSummary(report, now, message.manual)
        context.health = health
        problems = list(report.errors)
        problems += [e for e in errors.values() if e is not None and e not in problems]
        if message.manual:
            trouble = report.retrying or report.failed or problems
            self.notify(
                report_text(report),
                title="Sync",
                severity="warning" if trouble else "information",
            )
            if problems:
                self._show_error(first_error(problems))
        elif problems:
            if not self._repeated("sync", first_error(problems)):
                self._show_error(first_error(problems))
        else:
            self._shown_errors["sync"] = None
        self._sync_state_changed()
        if changed or message.manual:
            self.directory_changed()

    def _repeated(self, job: str, text: str) -> bool:
        """Whether a background job's error was the last one it showed (then only logged)."""
        if text == self._shown_errors.get(job):
            self.log.error(f"background {job} failed again: {text}")
            return True
        self._shown_errors[job] = text
        return False

    # -- errors ------------------------------------------------------------------------------

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        # The app's own workers (expiry, sync); the screens forward theirs.
        worker, error = event.worker, event.worker.error
        if worker.group == "expiry" and event.state is WorkerState.SUCCESS:
            self._shown_errors["expiry"] = None
        if worker.group == "sync" and event.state in (WorkerState.ERROR, WorkerState.CANCELLED):
            self.context.syncing = False
            self._sync_state_changed()
        if event.state is not WorkerState.ERROR or error is None:
            return
        background = worker.group == "expiry" or (worker.group == "sync" and not self._sync_manual)
        # Every minute (or half) the same error would bury everything else.
        if background and self._repeated(worker.group, describe_error(error)):
            return
        self.post_message(GovtuiScreen.WorkerFailed(worker.name, error))

    @on(GovtuiScreen.WorkerFailed)
    def show_worker_error(self, message: GovtuiScreen.WorkerFailed) -> None:
        """The one place where a failed worker becomes a message for the person."""
        if self.quitting:  # the queries q interrupted fail on the way out: nobody to tell
            return
        self.log.error(f"worker {message.worker_name!r} failed", message.error)
        self._show_error(describe_error(message.error))

    def _show_error(self, text: str) -> None:
        # The text is the error's own, brackets, escapes and all.
        notify(self, text, title="Error", severity="error", timeout=12)
