"""Access reviews in the TUI: the campaigns screen (v) with progress and overdue in red, a
campaign's items as a windowed table with the decision helpers, marks, k/x/s with a reason
(keep and shorten with a TOTP code, revoke without), filters and sorts, refusals as one line,
close with the dry run's confirmation (the count typed back when asked) and the directory
followed until it confirms; at 80x24 too; hostile names shown literally."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from textual.command import CommandPalette
from textual.message import Message
from textual.notifications import Notify
from textual.pilot import Pilot
from textual.widgets import Button, DataTable, Input, OptionList, ProgressBar, Static

from govtui import clock, db
from govtui.models import ReviewCampaign, ReviewItem
from govtui.services import (
    dashboard,
    grants,
    operators,
    review_close,
    review_decisions,
    reviews,
    sync,
)
from govtui.services.workspace import Workspace
from govtui.text import one_line
from govtui.tui.app import GovtuiApp
from govtui.tui.modals.review_close import CloseConfirm
from govtui.tui.modals.review_decision import DecisionPrompt
from govtui.tui.modals.review_progress import CloseProgress
from govtui.tui.modals.totp_prompt import TotpPrompt
from govtui.tui.screens.dashboard import DashboardScreen
from govtui.tui.screens.help import HelpScreen
from govtui.tui.screens.review_items import ReviewItemsScreen
from govtui.tui.screens.reviews import ReviewsScreen
from govtui.vocabulary import NoAnswer, ReviewDecision
from tests.conftest import FakeClock
from tests.directory_support import Directory, add_target, norm, private_subtree
from tests.factories import ADMIN, World, review_vendor
from tests.memory_keyring import MemoryKeyring
from tests.tui.tui_support import (
    SIZE,
    screen_text,
    settle,
    table_rows,
    text_of,
    wait_until,
)

SMALL = (80, 24)
HOSTILE = "[/b][link=https://evil.test]x[/link][bold red]\x1b[2J\x1b]0;t\x07"


def _grants(world: World, people: tuple[str, ...] = ("E1", "E2", "E3")) -> list[int]:
    """Active grants on acme/rlhf/pairs, requested by req and approved by ann."""
    ids = [world.request(person) for person in people]
    world.approve(*ids, by="ann")
    return ids


def _start(
    world: World,
    name: str = "q1",
    *,
    reviewers: tuple[str, ...] = ("rita", "ravi"),
    due_in: timedelta = timedelta(days=10),
    if_no_answer: NoAnswer = "keep",
) -> int:
    spec = reviews.CampaignSpec(
        name=name,
        client="acme",
        reviewers=reviewers,
        due_at=clock.now() + due_in,
        if_no_answer=if_no_answer,
    )
    with db.write_session(world.engine) as session:
        started = reviews.start(session, operators.find(session, ADMIN), spec=spec)
    return started.campaign_id


def _decisions(world: World) -> dict[int, str | None]:
    with db.read_session(world.engine) as session:
        rows = session.execute(sa.select(ReviewItem.id, ReviewItem.decision)).all()
    return {int(i): d for i, d in rows}


def _notes(messages: list[Message]) -> list[str]:
    return [m.notification.message for m in messages if isinstance(m, Notify)]


@pytest.fixture
def bare(sqlite_engine: Engine, memory_keyring: MemoryKeyring) -> World:
    """review_vendor (rita, ravi, ann and req review acme) on a SQLite file, no grant yet."""
    return review_vendor(sqlite_engine)


@pytest.fixture
def rworld(bare: World) -> World:
    """`bare` with three active grants of acme in one campaign `q1` (every item goes to
    rita: ann approved them, req requested them)."""
    world = bare
    _grants(world)
    _start(world)
    return world


async def _reviews(pilot: Pilot[None]) -> ReviewsScreen:
    await settle(pilot)
    await pilot.press("v")
    await settle(pilot)
    screen = pilot.app.screen
    assert isinstance(screen, ReviewsScreen) and screen.loaded
    return screen


async def _items(pilot: Pilot[None], name: str = "q1") -> ReviewItemsScreen:
    screen = await _reviews(pilot)
    table = screen.query_one("#campaign-table", DataTable)
    table.move_cursor(row=table.get_row_index(name))
    await pilot.press("enter")
    await settle(pilot)
    items = pilot.app.screen
    assert isinstance(items, ReviewItemsScreen) and items.loaded
    return items


async def _shows(pilot: Pilot[None], *texts: str) -> str:
    """The terminal's text once it shows every one of `texts` (a loaded machine may draw a
    frame late)."""
    await wait_until(
        pilot,
        lambda: all(t in screen_text(pilot.app) for t in texts),
        timeout=30.0,  # a 400-column screen under load took longer than 10 s once
        what=f"{texts!r} shown",
    )
    return screen_text(pilot.app)


def _item_ids(screen: ReviewItemsScreen) -> list[int]:
    table = screen.query_one("#item-table", DataTable)
    return [int(row.key.value or 0) for row in table.ordered_rows]


async def test_reviews_screen_lists_campaigns_with_progress_overdue_in_red(
    rworld: World, fake_clock: FakeClock
) -> None:
    _start(rworld, "late", due_in=timedelta(days=1))
    fake_clock.advance(days=2)  # `late` is past due with every item undecided
    app = GovtuiApp(Workspace(rworld.engine, "rita"))
    async with app.run_test(size=SIZE) as pilot:
        screen = await _reviews(pilot)
        rows = {row[0]: row for row in table_rows(screen.query_one("#campaign-table", DataTable))}
        assert set(rows) == {"q1", "late"}
        _name, client, state, progress, due, no_answer, reviewers = rows["q1"]
        assert (client, state, no_answer) == ("acme", "open", "keep")
        assert progress.endswith(" 0/3") and "░" in progress
        assert "OVERDUE" not in due and "OVERDUE" in rows["late"][4]
        assert "rita 0/3" in reviewers
        # Overdue in red: the name and the due cell carry the alert style.
        table = screen.query_one("#campaign-table", DataTable)
        late = table.get_row("late")
        assert "red" in str(late[0].style) and "red" in str(late[4].style)
        assert "red" not in str(table.get_row("q1")[0].style)
        assert "1 overdue" in text_of(screen.query_one("#campaign-status", Static))
        # The reminders (issue 13): who has undecided items overdue, due within 1 or 7 days.
        assert "Reminders: 1 overdue (rita 3 in late)" in text_of(
            screen.query_one("#campaign-status", Static)
        )


async def test_help_and_palette_list_the_reviews_screen(rworld: World) -> None:
    app = GovtuiApp(Workspace(rworld.engine, "rita"))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("question_mark")
        await settle(pilot)
        assert isinstance(app.screen, HelpScreen)
        keys = table_rows(app.screen.query_one("#help-keys", DataTable))
        assert ["Everywhere", "v", "Reviews"] in keys
        assert "Access reviews: Access review campaigns" in text_of(
            app.screen.query_one("#help-screens", Static)
        )
        await pilot.press("escape")
        await pilot.press("ctrl+p")
        await settle(pilot)
        assert isinstance(app.screen, CommandPalette)
        await pilot.press(*"access rev")
        await wait_until(
            pilot,
            lambda: app.screen.query_one(OptionList).option_count > 0,
            what="palette matches",
        )
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, ReviewsScreen)


async def test_items_show_the_decision_helpers(rworld: World) -> None:
    app = GovtuiApp(Workspace(rworld.engine, "rita"))
    async with app.run_test(size=(300, 40)) as pilot:
        items = await _items(pilot)
        assert items.filter == "my undecided"  # rita reviews here
        table = items.query_one("#item-table", DataTable)
        header = [str(column.label) for column in table.ordered_columns]
        assert header[1:] == [
            "Item",
            "Contractor",
            "Project",
            "Scope",
            "Access",
            "Reviewer",
            "Decision",
            "Days held",
            "Days left",
            "Contract end",
            "Requester",
            "Approvers",
            "Paused",
            "Offboarded",
            "Peers",
            "Previous",
            "Ended",
        ]
        first = next(row for row in table_rows(table) if row[2] == "E1")
        assert first[2:8] == ["E1", "rlhf", "pairs", "read", "rita", "undecided"]
        assert first[8:10] == ["0", "10"]  # granted today for 10 days
        assert first[11:13] == ["req", "ann"]
        assert first[15] == "2"  # E2 and E3 hold the same scope at the same level
        status = text_of(items.query_one("#item-status", Static))
        assert "3 of 3 items · my undecided, by item" in status


async def test_items_come_a_window_at_a_time_as_the_cursor_moves(
    bare: World, monkeypatch: pytest.MonkeyPatch, fake_clock: FakeClock
) -> None:
    # Six items, windows of two: the table never holds more than the cursor needs.
    for scope in ("acme/rlhf/pairs", "acme/rlhf/notes"):
        ids = [bare.request(person, scope=scope) for person in ("E1", "E2", "E3")]
        bare.approve(*ids, by="ann")
        fake_clock.advance(seconds=30)  # a fresh step for ann's next code
    _start(bare)
    monkeypatch.setattr(ReviewItemsScreen, "PAGE", 2)
    monkeypatch.setattr(ReviewItemsScreen, "LOOKAHEAD", 1)
    app = GovtuiApp(Workspace(bare.engine, "rita"))
    async with app.run_test(size=SIZE) as pilot:
        items = await _items(pilot)
        table = items.query_one("#item-table", DataTable)
        assert (table.row_count, items.total) == (2, 6)
        assert "2 of 6 items" in text_of(items.query_one("#item-status", Static))
        assert "more below" in text_of(items.query_one("#item-status", Static))
        await pilot.press("down")
        await settle(pilot)
        assert table.row_count == 4
        await pilot.press("down", "down")
        await settle(pilot)
        assert table.row_count == 6
        assert len(set(_item_ids(items))) == 6  # no item twice
        # Marking all covers the whole filter, also what no window has fetched.
        await pilot.press("ctrl+a")
        assert items.marked_count == 6


async def test_keep_asks_for_a_code_and_revoke_does_not(rworld: World) -> None:
    messages: list[Message] = []
    app = GovtuiApp(Workspace(rworld.engine, "rita"))
    async with app.run_test(size=SIZE, message_hook=messages.append) as pilot:
        items = await _items(pilot)
        first, second, third = _item_ids(items)
        await pilot.press("space")  # marks the first, walks down
        assert items.marked == {first}
        assert table_rows(items.query_one("#item-table", DataTable))[0][0] == "✓"
        await pilot.press("K")
        await settle(pilot)
        prompt = app.screen
        assert isinstance(prompt, DecisionPrompt)
        assert "#" + str(first) in text_of(prompt.query_one("#decision-details", Static))
        assert prompt.query_one("#decision-submit", Button).disabled  # a reason is required
        await pilot.press(*"still labelling", "enter")
        await settle(pilot)
        totp = app.screen
        assert isinstance(totp, TotpPrompt)  # keeping access needs the code
        assert totp.query_one("#totp-code", Input).password
        await pilot.press(*rworld.code("rita"), "enter")
        await settle(pilot)
        assert app.screen is items
        assert _decisions(rworld)[first] == "keep"
        assert "1 item kept" in _notes(messages)
        # The undecided filter no longer shows it.
        assert _item_ids(items) == [second, third]

        # Revoke: the reason, and no code at all.
        await pilot.press("x")
        await settle(pilot)
        assert isinstance(app.screen, DecisionPrompt)
        assert "No code is needed" in text_of(app.screen.query_one("#decision-hint", Static))
        await pilot.press(*"left the project", "enter")
        await settle(pilot)
        assert app.screen is items  # no TOTP prompt came up
        assert _decisions(rworld)[second] == "revoke"
        assert "1 item to be revoked at close" in _notes(messages)


async def test_shorten_asks_days_reason_and_code(rworld: World) -> None:
    app = GovtuiApp(Workspace(rworld.engine, "rita"))
    async with app.run_test(size=SIZE) as pilot:
        items = await _items(pilot)
        first = _item_ids(items)[0]
        await pilot.press("s")
        await settle(pilot)
        prompt = app.screen
        assert isinstance(prompt, DecisionPrompt)
        await pilot.press("5", "enter")  # days, then on to the reason
        assert prompt.query_one("#decision-submit", Button).disabled
        await pilot.press(*"wrap up", "enter")
        await settle(pilot)
        assert isinstance(app.screen, TotpPrompt)
        await pilot.press(*rworld.code("rita"), "enter")
        await settle(pilot)
        assert app.screen is items
    with db.read_session(rworld.engine) as session:
        item = session.get(ReviewItem, first)
        assert item is not None
        assert (item.decision, item.shorten_days, item.reason) == ("shorten", 5, "wrap up")


async def test_mark_all_of_the_filter_and_keep_with_one_code(rworld: World) -> None:
    app = GovtuiApp(Workspace(rworld.engine, "rita"))
    async with app.run_test(size=SIZE) as pilot:
        items = await _items(pilot)
        await pilot.press("ctrl+a")
        await wait_until(pilot, lambda: items.mark_ids is not None, what="the mark's items")
        assert items.marked_count == 3
        assert [row[0] for row in table_rows(items.query_one("#item-table", DataTable))] == [
            "✓"
        ] * 3
        await pilot.press("space")  # takes the first one back out
        assert items.marked_count == 2
        await pilot.press("K")
        await settle(pilot)
        await pilot.press(*"all still needed", "enter")
        await settle(pilot)
        assert isinstance(app.screen, TotpPrompt)
        assert "Keep 2 items as rita" in text_of(app.screen.query_one(".dialog-title", Static))
        await pilot.press(*rworld.code("rita"), "enter")
        await settle(pilot)
        assert list(_decisions(rworld).values()) == [None, "keep", "keep"]
        assert items.marked_count == 0


async def test_a_mark_all_never_decides_an_item_that_joined_the_filter_after_it(
    rworld: World, fake_clock: FakeClock
) -> None:
    """attack14b's lead: an item reassigned to me after ctrl+a is not decided unseen with the
    marked ones (the mark holds the filter's items as of the mark)."""
    late = rworld.request("E1", scope="acme/rlhf/notes", days=3)  # not in q1's population
    fake_clock.advance(seconds=30)  # a fresh step for ann's next code
    rworld.approve(late, by="ann")
    app = GovtuiApp(Workspace(rworld.engine, "rita"))
    async with app.run_test(size=SIZE) as pilot:
        items = await _items(pilot)
        await pilot.press("ctrl+a")
        await wait_until(pilot, lambda: items.mark_ids is not None, what="the mark's items")
        marked = set(_decisions(rworld))
        # Another terminal gives rita one more item of q1 (as a reassignment would).
        with db.write_session(rworld.engine) as session:
            first = session.get(ReviewItem, min(marked))
            assert first is not None
            session.add(
                ReviewItem(
                    campaign_id=first.campaign_id, grant_id=late, reviewer_id=first.reviewer_id
                )
            )
        await pilot.press("x")
        await wait_until(pilot, lambda: isinstance(app.screen, DecisionPrompt), what="prompt")
        await pilot.press(*"nobody vouches", "enter")
        await wait_until(
            pilot,
            lambda: all(_decisions(rworld)[i] == "revoke" for i in marked),
            what="the marked items revoked",
        )
        (added,) = set(_decisions(rworld)) - marked
        assert _decisions(rworld)[added] is None


async def test_filters_cycle_and_sort_by_days_left(rworld: World, fake_clock: FakeClock) -> None:
    # A fourth grant, shorter: sorted by days left it comes first.
    short = rworld.request("E1", scope="acme/rlhf/notes", days=3)
    fake_clock.advance(seconds=30)  # a fresh step for ann's next code
    rworld.approve(short, by="ann")
    _start(rworld, "q2")
    app = GovtuiApp(Workspace(rworld.engine, "rita"))
    async with app.run_test(size=SIZE) as pilot:
        items = await _items(pilot, "q2")
        ids = _item_ids(items)
        assert len(ids) == 4
        await pilot.press("x")
        await settle(pilot)
        await pilot.press(*"no longer needed", "enter")
        await settle(pilot)
        assert len(_item_ids(items)) == 3  # my undecided
        await pilot.press("f")
        await settle(pilot)
        assert items.filter == "mine" and len(_item_ids(items)) == 4
        await pilot.press("f")
        await settle(pilot)
        assert items.filter == "all" and len(_item_ids(items)) == 4
        await pilot.press("o")
        await settle(pilot)
        assert items.sort == "days_left"
        assert table_rows(items.query_one("#item-table", DataTable))[0][4] == "notes"
        await pilot.press("f")
        await settle(pilot)
        assert items.filter == "my undecided"


async def test_a_conflicted_decision_is_refused_in_one_line(rworld: World) -> None:
    # ann approved every grant of q1: none is hers, and deciding rita's is refused.
    messages: list[Message] = []
    app = GovtuiApp(Workspace(rworld.engine, "ann"))
    async with app.run_test(size=SIZE, message_hook=messages.append) as pilot:
        items = await _items(pilot)
        assert items.filter == "all"  # not a reviewer of this campaign
        await pilot.press("x")
        await settle(pilot)
        await pilot.press(*"not needed", "enter")
        await settle(pilot)
        assert app.screen is items
        refusals = [m.notification for m in messages if isinstance(m, Notify)]
        refused = [n for n in refusals if n.severity == "error"]
        assert refused and "\n" not in refused[-1].message
    assert set(_decisions(rworld).values()) == {None}


async def test_close_needs_the_count_typed_then_follows_the_directory(
    bare: World, directory: Directory
) -> None:
    rworld = bare
    add_target(rworld.engine, directory)
    people = {uid: directory.add_person(uid) for uid in ("ada", "bo", "cy")}
    pairs = directory.group("acme-rlhf-pairs-read")
    _grants(rworld)
    sync.run_once(rworld.engine)
    assert {norm(dn) for dn in people.values()} <= (directory.members(pairs) or set())
    _start(rworld, "sweep", if_no_answer="revoke")  # nobody answers: all 3 revoked
    app = GovtuiApp(Workspace(rworld.engine, ADMIN))
    async with app.run_test(size=SIZE) as pilot:
        screen = await _reviews(pilot)
        table = screen.query_one("#campaign-table", DataTable)
        table.move_cursor(row=table.get_row_index("sweep"))
        await pilot.press("C")
        await settle(pilot)
        confirm = app.screen
        assert isinstance(confirm, CloseConfirm)
        plan = text_of(confirm.query_one("#close-plan", Static))
        assert "Ends 3 grants of 3" in plan
        assert "member removals" in plan and "acme-rlhf-pairs-read" in plan
        submit = confirm.query_one("#close-submit", Button)
        assert submit.disabled
        await pilot.press("2")
        assert submit.disabled  # only the exact count
        await pilot.press("backspace", "3")
        assert not submit.disabled
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, CloseProgress), what="progress")
        progress = app.screen
        status = progress.query_one("#close-progress-status", Static)
        await wait_until(pilot, lambda: bool(text_of(status)), what="the outcome")
        assert "sweep is closed" in text_of(status)
        bar = progress.query_one("#close-progress-bar", ProgressBar)
        assert bar.total == bar.progress
    with db.read_session(rworld.engine) as session:
        campaign = session.execute(
            sa.select(ReviewCampaign).where(ReviewCampaign.name == "sweep")
        ).scalar_one()
        assert campaign.state == "closed"
    assert not {norm(dn) for dn in people.values()} & (directory.members(pairs) or set())


@pytest.fixture
def directory() -> Iterator[Directory]:
    yield from private_subtree()


async def test_close_is_refused_to_a_reviewer_in_one_line(rworld: World) -> None:
    messages: list[Message] = []
    app = GovtuiApp(Workspace(rworld.engine, "rita"))
    async with app.run_test(size=SIZE, message_hook=messages.append) as pilot:
        screen = await _reviews(pilot)
        await pilot.press("C")
        await settle(pilot)
        assert app.screen is screen  # no confirmation: rita is neither creator nor admin
        errors = [m.notification for m in messages if isinstance(m, Notify)]
        assert any(n.severity == "error" for n in errors)


async def test_reviews_at_80x24(rworld: World) -> None:
    app = GovtuiApp(Workspace(rworld.engine, "rita"))
    async with app.run_test(size=SMALL) as pilot:
        await _reviews(pilot)
        # The campaign, its progress and the screen's keys fit the smallest terminal.
        await _shows(pilot, "q1", "0/3", "Close campaign")
        items = await _items(pilot)
        await _shows(pilot, "E1", "3 of 3 items")
        await pilot.press("K")
        await settle(pilot)
        assert isinstance(app.screen, DecisionPrompt)
        await _shows(pilot, "Keep 1 item of q1?", "Reason")
        await pilot.press(*"keep it", "enter")
        await settle(pilot)
        assert isinstance(app.screen, TotpPrompt)
        assert "Keep" in screen_text(app)
        await pilot.press("escape")
        await settle(pilot)
        assert app.screen is items


async def test_close_confirmation_at_80x24(rworld: World) -> None:
    _start(rworld, "sweep", if_no_answer="revoke")
    app = GovtuiApp(Workspace(rworld.engine, ADMIN))
    async with app.run_test(size=SMALL) as pilot:
        screen = await _reviews(pilot)
        table = screen.query_one("#campaign-table", DataTable)
        table.move_cursor(row=table.get_row_index("sweep"))
        await pilot.press("C")
        await settle(pilot)
        assert isinstance(app.screen, CloseConfirm)
        # The count to type back is on screen, not cut off.
        await _shows(pilot, "Close the review sweep?", "Ends 3 grants of 3", "Type 3 to close")
        await pilot.press("escape")
        await settle(pilot)
        assert app.screen is screen
    with db.read_session(rworld.engine) as session:
        states = set(session.execute(sa.select(ReviewCampaign.state)).scalars())
    assert states == {"open"}  # cancelling closed nothing


async def test_dashboard_shows_open_campaigns_and_overdue_items(
    rworld: World, fake_clock: FakeClock
) -> None:
    _start(rworld, "late", due_in=timedelta(days=1))
    fake_clock.advance(days=2)
    app = GovtuiApp(Workspace(rworld.engine, "rita"))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert isinstance(app.screen, DashboardScreen)
        line = text_of(app.screen.query_one("#dashboard-reviews", Static))
        assert line.startswith("Reviews: 2 open · 3 overdue items")
        assert "late 0/3" in line and "q1 0/3" in line
        assert "Reminders: 1 overdue (rita 3 in late)" in line  # q1 is due in 8 days


def test_dashboard_counts_campaigns_on_both_backends(
    engine: Engine, memory_keyring: MemoryKeyring, fake_clock: FakeClock
) -> None:
    world = review_vendor(engine)
    first, second, third = _grants(world)
    _start(world, "late", due_in=timedelta(days=1))
    _start(world, "later", due_in=timedelta(days=5))
    _start(world, "done", if_no_answer="keep")
    with db.write_session(engine) as session:
        admin = operators.find(session, ADMIN)
        review_close.close(session, admin, campaign="done")  # nothing removed: closed at once
        grants.revoke(session, admin, grant_id=third, reason="left")  # ended: no decision needed
    fake_clock.advance(days=2)
    with db.write_session(engine) as session:
        review_decisions.decide(
            session,
            operators.find(session, "rita"),
            campaign="late",
            selection=review_decisions.ItemSelection(grant_ids=[first]),
            decision=ReviewDecision.REVOKE,
            reason="not needed",
        )
    with db.read_session(engine) as session:
        lines = {line.name: line for line in dashboard.campaigns(session)}
    assert list(lines) == ["late", "later"]  # closed ones are left out; soonest due first
    late, later = lines["late"], lines["later"]
    assert (late.total, late.decided, late.ended, late.overdue) == (3, 1, 1, 1)
    assert (later.total, later.decided, later.ended, later.overdue) == (3, 0, 1, 0)  # not due
    assert second  # the one overdue item of `late`


async def test_hostile_campaign_and_contractor_names_show_literally(rworld: World) -> None:
    # Names that validation would refuse, written by SQL as an older database may hold them.
    with db.write_session(rworld.engine) as session:
        session.execute(
            sa.text("UPDATE review_campaign SET name = :n WHERE name = 'q1'"),
            {"n": f"N{HOSTILE}"},
        )
        session.execute(
            sa.text("UPDATE contractor SET external_id = :x WHERE external_id = 'E1'"),
            {"x": f"X{HOSTILE}"},
        )
    app = GovtuiApp(Workspace(rworld.engine, "rita"))
    async with app.run_test(size=(400, 40)) as pilot:
        screen = await _reviews(pilot)
        shown = await _shows(pilot, one_line(f"N{HOSTILE}"))
        assert "\x1b" not in shown
        assert table_rows(screen.query_one("#campaign-table", DataTable))[0][0] == one_line(
            f"N{HOSTILE}"
        )
        items = await _items(pilot, f"N{HOSTILE}")
        shown = await _shows(pilot, one_line(f"X{HOSTILE}"))
        assert "\x1b" not in shown
        await pilot.press("ctrl+a")  # the prompt then names every item
        await pilot.press("K")
        await settle(pilot)
        assert one_line(f"X{HOSTILE}") in text_of(app.screen.query_one("#decision-details", Static))
        await pilot.press("escape")
        await settle(pilot)
        assert app.screen is items
