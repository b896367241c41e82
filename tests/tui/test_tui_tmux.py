"""The real `govtui` executable, in a real terminal (tmux): start, search contractors, quit;
and a reviewer revoking an item of an access review (keys sent, the screen read back)."""

from __future__ import annotations

import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlmodel import col

from govtui import clock, db
from govtui.models import ReviewItem
from govtui.services import contractors, operators, reviews
from tests.conftest import FakeClock
from tests.factories import ADMIN, review_vendor
from tests.memory_keyring import MemoryKeyring
from tests.tui.tmux_support import GOVTUI, migrated_sqlite, real_clock, terminal

SEARCH = "abara"  # a demo surname, lower case as a person types it


@pytest.mark.tmux
def test_govtui_in_tmux_shows_dashboard_searches_contractors_and_quits(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'tmux.db'}"
    for command in (["init"], ["demo"]):
        subprocess.run([str(GOVTUI), "--db", url, *command], check=True, capture_output=True)
    engine = db.make_engine(url)
    with db.read_session(engine) as session:
        matching = contractors.count(session, search=SEARCH)
    engine.dispose()
    assert matching > 0

    env = {"GOVTUI_DB": url, "GOVTUI_OPERATOR": "alex", "TERM": "xterm-256color"}
    with terminal(tmp_path, "govtui", [str(GOVTUI)], env, size=(120, 40)) as term:
        screen, pane, keys, alive = term.screen, term.pane, term.keys, term.alive
        term.wait(lambda: "helios-labs" in screen(), "the dashboard", shows=pane)
        dashboard = screen()
        assert "govtui — acting as alex" in dashboard
        assert "northwind-ai" in dashboard and "orbital-research" in dashboard

        keys("c")
        term.wait(lambda: "contractors · showing" in screen(), "the contractors screen", shows=pane)
        keys("/")
        # The search box has the focus once the footer stops offering the screen keys.
        term.wait(lambda: "d Dashboard" not in screen(), "the search box to take focus", shows=pane)
        keys(SEARCH, literal=True)
        status = f"{matching} contractors match “{SEARCH}”"
        term.wait(lambda: status in screen(), f"the status line {status!r}", shows=pane)
        shown = screen()
        assert "Abara" in shown
        # Only matching rows: every table row (they carry a C00000-style id) names Abara.
        rows = [line for line in shown.splitlines() if " C0" in line]
        assert rows and all("Abara" in line or "abara" in line for line in rows), rows

        keys("Enter")  # from the search to the table
        # Keys sent faster than a person types would otherwise reach the search box still.
        term.wait(lambda: "d Dashboard" in screen(), "the table to take focus", shows=pane)
        keys("q")
        term.wait(term.exited, "govtui to quit", shows=pane)
        assert term.exit_code() == "0"
        term.wait(lambda: not alive(), "the tmux session to end", shows=pane)


@pytest.mark.tmux
def test_reviewer_revokes_an_item_in_tmux_without_a_code(
    tmp_path: Path, memory_keyring: MemoryKeyring, fake_clock: FakeClock
) -> None:
    url, engine = migrated_sqlite(tmp_path / "review.db")
    # Built on the real clock: govtui in tmux runs on it, and would expire grants of the
    # tests' fixed day.
    with real_clock(fake_clock):
        world = review_vendor(engine)
        # (E2's contract ended on the tests' fixed day: E1 twice instead.)
        wanted = [("E1", "acme/rlhf/pairs"), ("E3", "acme/rlhf/pairs"), ("E1", "acme/rlhf/notes")]
        grant_ids = [world.request(person, scope=scope) for person, scope in wanted]
        world.approve(*grant_ids, by="ann")
        spec = reviews.CampaignSpec(
            name="q1",
            client="acme",
            reviewers=("rita",),
            due_at=clock.now() + timedelta(days=10),
            if_no_answer="keep",
        )
        with db.write_session(engine) as session:
            reviews.start(session, operators.find(session, ADMIN), spec=spec)
    engine.dispose()

    env = {"GOVTUI_DB": url, "GOVTUI_OPERATOR": "rita", "TERM": "xterm-256color"}
    with terminal(tmp_path, "reviews", [str(GOVTUI)], env, size=(120, 40)) as term:
        screen, keys = term.screen, term.keys
        term.wait(lambda: "Reviews: 1 open" in screen(), "the dashboard's reviews line")
        keys("v")
        term.wait(lambda: "0/3" in screen() and "q1" in screen(), "the campaigns")
        # As a person would: press Enter again if the first one landed while the table was
        # still being filled (seen once under a loaded CI machine).
        for attempt in range(3):
            keys("Enter")
            try:
                term.wait(lambda: "3 of 3 items" in screen(), "the items of q1", 10.0)
                break
            except AssertionError:
                if attempt == 2 or "Reviews" not in screen().splitlines()[0]:
                    raise
        keys("x")
        term.wait(lambda: "Revoke 1 item of q1?" in screen(), "the reason prompt")
        assert "No code is needed" in screen()
        keys("left the project", literal=True)
        keys("Enter")
        term.wait(lambda: "2 of 2 items" in screen(), "the item to leave the list")
        assert "TOTP" not in screen()  # revoking never asked for a code
        keys("Escape")
        term.wait(lambda: "1/3" in screen(), "the campaign's progress")
        keys("q")
        term.wait(term.exited, "govtui to quit")
        assert term.exit_code() == "0"
    engine = db.make_engine(url)
    with db.read_session(engine) as session:
        decided = session.execute(
            sa.select(ReviewItem.decision, ReviewItem.reason).where(
                col(ReviewItem.decision).is_not(None)
            )
        ).all()
    engine.dispose()
    assert [tuple(row) for row in decided] == [("revoke", "left the project")]
