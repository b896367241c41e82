"""The grants screen on a bulk world bigger than a window: its counts are the whole filter's
(from SQL, not the rows loaded), End reaches the list's real last row; the contractor filter
and the request form's contractor field find people by the contractors screen's search."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.engine import Engine
from textual.widgets import DataTable, Input, OptionList, Select, Static

from govtui import db
from govtui.services import contractors, grant_views
from govtui.tui.modals.request_form import RequestForm
from govtui.tui.screens.grants import GrantsScreen
from tests.factories import ADMIN, BulkVendor, Scope, World, bulk_vendor, every_pair
from tests.memory_keyring import MemoryKeyring
from tests.tui.tui_support import open_screen, row_ids, running, settle, text_of, wait_until

PEOPLE, SCOPES = 150, 20  # 3,000 grants: fifteen windows of 200
SOON_SCOPES = 7  # scope k ends in k + 1 days: these seven within 7 days
DASH = "\N{EN DASH}"


def _vendor(engine: Engine) -> BulkVendor:
    vendor = bulk_vendor(
        engine,
        scopes=[Scope(f"acme/p{p}/s{s}") for p in range(4) for s in range(SCOPES // 4)],
        contractors=PEOPLE,
        target=None,
        name=lambda i: f"Gita {i}" if i % 50 == 0 else f"Person {i}",
    )
    for k, scope in enumerate(vendor.scopes):
        vendor.grant(every_pair(range(PEOPLE), [scope]), expires_in=timedelta(days=k + 1))
    return vendor


def _status(screen: GrantsScreen) -> str:
    return text_of(screen.query_one("#grant-status", Static))


def _ids(screen: GrantsScreen) -> list[int]:
    return row_ids(screen.query_one("#grant-table", DataTable))


async def test_counts_are_the_whole_filters_and_end_reaches_the_last_row(
    sqlite_engine: Engine, memory_keyring: MemoryKeyring
) -> None:
    vendor = _vendor(sqlite_engine)
    total, soon = PEOPLE * SCOPES, PEOPLE * SOON_SCOPES
    with db.read_session(sqlite_engine) as session:
        last = grant_views.window(session, from_end=True, limit=1)[0].id
        assert grant_views.counts(session) == grant_views.GrantCounts(total, soon)

    async with running(vendor.engine, ADMIN) as (_, pilot):
        screen = await open_screen(pilot, "t", GrantsScreen)
        assert len(_ids(screen)) == GrantsScreen.PAGE
        assert _status(screen) == (
            f"{total:,} grants · showing 1{DASH}200 · by expiry, soonest first · "
            f"{soon:,} expire within 7 days"
        )
        # End: the real last row (of 3,000), not the end of the 200 loaded.
        await pilot.press("end")
        await settle(pilot)
        assert screen._cursor_id() == last
        assert _ids(screen)[-1] == last and len(_ids(screen)) == GrantsScreen.PAGE
        assert _status(screen).startswith(f"{total:,} grants · showing 2,801{DASH}3,000 ·")

        # A filtered subset: its own counts, never more than the whole's.
        screen.query_one("#filter-expiring", Input).value = "3"
        await wait_until(pilot, lambda: "expiring within 3d" in _status(screen), what="filter")
        await settle(pilot)
        subset = PEOPLE * 3
        assert _status(screen) == (
            f"{subset:,} grants (expiring within 3d) · showing 1{DASH}200 · by expiry, soonest "
            f"first · {subset:,} expire within 7 days"
        )
        # The contractor filter is the contractors screen's search ("Gita": 3 of them).
        screen.query_one("#filter-expiring", Input).value = ""
        screen.query_one("#filter-contractor", Input).value = "gita"
        await wait_until(pilot, lambda: "matching" in _status(screen), what="search")
        await settle(pilot)
        with db.read_session(sqlite_engine) as session:
            gitas = {r.external_id for r in contractors.window(session, search="gita")}
        assert len(gitas) == 3
        shown = {
            str(screen.query_one("#grant-table", DataTable).get_row_at(i)[3])
            for i in range(len(_ids(screen)))
        }
        assert shown == gitas
        assert _status(screen).startswith(f"{3 * SCOPES} grants (contractors matching “gita”)")


async def test_the_request_forms_contractor_field_finds_people_as_the_search_does(
    world: World,
) -> None:
    async with running(world.engine, "req") as (_, pilot):
        await pilot.press("t")
        await settle(pilot)
        form = await open_screen(pilot, "n", RequestForm)
        contractor = form.query_one("#request-contractor", Input)
        matches = form.query_one("#request-matches", OptionList)
        # Part of a name: the matches are listed; down and Enter pick one.
        await pilot.press("a", "d")
        await wait_until(pilot, lambda: matches.option_count == 1, what="matches for 'ad'")
        assert matches.display
        assert str(matches.get_option_at_index(0).prompt).startswith("E1  Ada")
        await pilot.press("down", "enter")
        await settle(pilot)
        assert contractor.value == "E1"
        assert not matches.display
        assert form.focused is form.query_one("#request-scope", Select)
        # Enter on a search that found one contractor picks them (Bo is E2, by uid "bo").
        contractor.value = ""
        contractor.focus()
        await pilot.press("b", "o")
        # (the matches for "ad", still listed, are one too: wait for Bo's)
        await wait_until(
            pilot,
            lambda: (
                [row.external_id for row in form.matches] == ["E2"] and contractor.value == "bo"
            ),
            what="matches for 'bo'",
        )
        await pilot.press("enter")
        await settle(pilot)
        assert contractor.value == "E2"
        # Nobody: no list, and the form says what it needs on submit.
        contractor.value = "zzz"
        await settle(pilot)
        assert not matches.display
