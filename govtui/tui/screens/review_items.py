"""One campaign's items for the acting reviewer: a window of rows fetched as the cursor nears
the end (never the whole population), the decision helpers as columns, filters (my undecided
/ mine / all) and sorts (item, days left, project). Space marks, ctrl+a marks every item of
the filter; K keeps, x revokes, s shortens the marked batch after a reason (keep and shorten
with the reviewer's TOTP code; revoke never asks for one); R moves the marked items of one
reviewer to another (an admin, with their code); C closes the campaign."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.coordinate import Coordinate
from textual.message import Message
from textual.widgets import DataTable, Header, Static
from textual.worker import Worker

from govtui.errors import GovtuiError
from govtui.services import operator_views, review_decisions, review_reassign, review_views
from govtui.services.review_decisions import Decided, ItemSelection
from govtui.services.review_views import CampaignSummary, ItemRow, ItemSort, ItemWindow
from govtui.services.second_factor import CodeRejected
from govtui.tui.context import TuiContext
from govtui.tui.footer import GovtuiFooter
from govtui.tui.modals.reason_prompt import ReasonPrompt
from govtui.tui.modals.review_decision import DecisionInput, DecisionPrompt
from govtui.tui.modals.totp_prompt import TotpPrompt
from govtui.tui.plain import line, notify
from govtui.tui.review_text import ITEM_COLUMNS, batch_text, item_cells
from govtui.tui.screens.base import GrantsChanged, WindowedScreen
from govtui.vocabulary import ReviewDecision

MARK = "✓"
# filter name -> (mine, undecided) as review_views.items takes them
FILTERS: dict[str, tuple[bool, bool]] = {
    "my undecided": (True, True),
    "mine": (True, False),
    "all": (False, False),
}
SORTS: tuple[ItemSort, ...] = ("id", "days_left", "project")
SORT_WORDS: dict[str, str] = {"id": "item", "days_left": "days left", "project": "project"}
# a column header clicked -> the sort it asks for
HEADER_SORTS: dict[str, ItemSort] = {"item": "id", "left": "days_left", "project": "project"}
DONE_WORDS = {
    ReviewDecision.KEEP: "kept",
    ReviewDecision.REVOKE: "to be revoked at close",
    ReviewDecision.SHORTEN: "to be shortened at close",
}


@dataclass(frozen=True)
class Batch:
    """What a decision is for: item ids, or every item of a filter but the excluded ones."""

    item_ids: tuple[int, ...] | None  # None: the whole filter
    count: int
    rows: list[ItemRow]  # the batch's rows on screen, for the prompt
    mine: bool = False
    undecided: bool = False
    excluded: frozenset[int] = field(default_factory=frozenset)
    marked_ids: frozenset[int] = field(default_factory=frozenset)  # the filter when marked


@dataclass(frozen=True)
class Refusal:
    """A decision the service refused (a conflict, a closed campaign, a short reason)."""

    message: str


class ReviewItemsScreen(WindowedScreen):
    """The items of one campaign, a window at a time, with marks for batch decisions."""

    HELP = (
        "A campaign's items with the decision helpers: f cycles my undecided / mine / all, o "
        "the sort (item, days left, project); space marks, ctrl+a marks every item of the "
        "filter; K keeps and s shortens (your TOTP code), x revokes (no code); R reassigns the "
        "marked items to another reviewer (an admin, your code); C closes."
    )
    TABLE_ID = "item-table"
    AUTO_FOCUS = f"#{TABLE_ID}"
    SHOWS_GRANTS = True
    PAGE: ClassVar[int] = 200
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("space", "toggle_mark", "Mark"),
        Binding("ctrl+a", "mark_all", "Mark all"),
        Binding("K", "decide('keep')", "Keep"),
        Binding("x", "decide('revoke')", "Revoke"),
        Binding("s", "decide('shorten')", "Shorten"),
        Binding("R", "reassign", "Reassign"),
        Binding("f", "next_filter", "Filter"),
        Binding("o", "next_sort", "Sort"),
        Binding("C", "close_campaign", "Close campaign"),
        Binding("escape", "back", "Campaigns"),
    ]

    @dataclass
    class WindowLoaded(Message):
        generation: int
        window: ItemWindow
        first: bool

    @dataclass
    class DecisionDone(Message):
        result: Decided | Refusal

    @dataclass
    class MarkRead(Message):
        """The items a mark-all holds: the filter's as they were when it was made."""

        generation: int
        item_ids: frozenset[int]

    def __init__(
        self,
        context: TuiContext,
        summary: CampaignSummary,
        *,
        close: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__(context)
        self.summary = summary
        self.campaign = summary.name
        self.sub_title = f"Review {line(summary.name)}"
        self.close = close
        reviews_here = any(r.reviewer == self.actor_name for r in summary.reviewers)
        # A reviewer starts on what is left for them; anyone else (an admin) on everything.
        self.filter = "my undecided" if reviews_here else "all"
        self.sort: ItemSort = "id"
        self.generation = 0
        self.rows: dict[int, ItemRow] = {}
        self.total = 0
        self.next_offset = 0
        self.loaded = False
        self.marked: set[int] = set()
        self.all_marked = False  # every item of the filter, but the excluded ones
        self.excluded: set[int] = set()
        # A mark-all holds the filter's items as of the mark (read in a worker): an item that
        # joins the filter later (reassigned to me) is never decided unseen with it.
        self.mark_ids: frozenset[int] | None = None
        self._mark_generation = 0
        self._page_worker: Worker[None] | None = None
        self._restore: int | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield DataTable(id="item-table", cursor_type="row", zebra_stripes=True)
        yield Static("Loading…", id="item-status")
        yield GovtuiFooter()

    def on_mount(self) -> None:
        table = self.query_one("#item-table", DataTable)
        table.add_column(MARK, key="mark")
        for label, key in ITEM_COLUMNS:
            table.add_column(label, key=key)

    # -- windows ----------------------------------------------------------------------------

    def reload(self) -> None:
        """Query again from the top with the filter and sort shown, as many rows as shown."""
        table = self.query_one("#item-table", DataTable)
        if table.row_count:
            self._restore = self._cursor_id()
        limit = max(self.PAGE, min(table.row_count, self.MAX_ROWS))
        self.start_query(limit)

    def start_query(self, limit: int) -> None:
        self.generation += 1
        self._exhausted = True
        self.workers.cancel_group(self, "items-page")
        self._show_status(busy=True)
        self.run_query(self.generation, self.filter, self.sort, limit)

    def _window(self, filter_name: str, sort: ItemSort, offset: int, limit: int) -> ItemWindow:
        mine, undecided = FILTERS[filter_name]
        return self.workspace.read_as(
            review_views.items,
            campaign=self.campaign,
            mine=mine,
            undecided=undecided,
            sort=sort,
            offset=offset,
            limit=limit,
        )

    @work(thread=True, exclusive=True, exit_on_error=False, group="items-query")
    def run_query(self, generation: int, filter_name: str, sort: ItemSort, limit: int) -> None:
        window = self._window(filter_name, sort, 0, limit)
        self.post_message(self.WindowLoaded(generation, window, first=True))

    def load_next_window(self) -> None:
        if self._exhausted or self._capped or not self.rows:
            return
        if self._page_worker is not None and not self._page_worker.is_finished:
            return
        self._page_worker = self.fetch_window(
            self.generation, self.filter, self.sort, self.next_offset
        )
        self._show_status(busy=True)

    @work(thread=True, exclusive=True, exit_on_error=False, group="items-page")
    def fetch_window(self, generation: int, filter_name: str, sort: ItemSort, offset: int) -> None:
        window = self._window(filter_name, sort, offset, self.PAGE)
        self.post_message(self.WindowLoaded(generation, window, first=False))

    @on(WindowLoaded)
    def show_window(self, message: WindowLoaded) -> None:
        if message.generation != self.generation:
            return  # an answer to a filter or sort no longer shown
        table = self.query_one("#item-table", DataTable)
        window = message.window
        if message.first:
            table.clear()
            self.rows.clear()
        for row in window.rows:
            if row.item_id in self.rows:
                continue  # a decision meanwhile shifted the window: keep one copy
            self.rows[row.item_id] = row
            table.add_row(self._mark_cell(row.item_id), *item_cells(row), key=str(row.item_id))
        self.total = window.total
        self.next_offset = window.offset + len(window.rows)
        self._exhausted = self.next_offset >= window.total or not window.rows
        self.loaded = True
        if message.first and self._restore is not None:
            if str(self._restore) in {key.value for key in table.rows}:
                table.move_cursor(row=table.get_row_index(str(self._restore)))
            self._restore = None
        self._show_status()
        if not message.first and self._near_end():
            self.load_next_window()

    def _show_status(self, *, busy: bool = False) -> None:
        table = self.query_one("#item-table", DataTable)
        summary = self.summary
        text = Text()
        text.append(f"{line(summary.name)} ", style="bold")
        text.append(f"({line(summary.state)}) · ")
        text.append(f"{table.row_count:,} of {self.total:,} items")
        text.append(f" · {self.filter}, by {SORT_WORDS[self.sort]}")
        if not self._exhausted:
            text.append(" · more below")
        if self._capped:
            text.append(" (filter or sort to see the rest)")
        marked = self.marked_count
        if marked:
            text.append(f" · {marked:,} marked", style="bold green")
        if summary.state != "open":
            text.append(" · decisions are closed", style="bold yellow")
        if busy:
            text.append(" · loading…")
        self.query_one("#item-status", Static).update(text)

    def _cursor_id(self) -> int | None:
        table = self.query_one("#item-table", DataTable)
        if table.row_count == 0:
            return None
        key = table.coordinate_to_cell_key(Coordinate(table.cursor_row, 0)).row_key.value
        return int(key) if key is not None else None

    # -- filters and sorts ------------------------------------------------------------------

    def action_next_filter(self) -> None:
        names = list(FILTERS)
        self.filter = names[(names.index(self.filter) + 1) % len(names)]
        self._clear_marks()  # marks belong to the filter they were made in
        self.start_query(self.PAGE)

    def action_next_sort(self) -> None:
        self._sort_by(SORTS[(SORTS.index(self.sort) + 1) % len(SORTS)])

    @on(DataTable.HeaderSelected, "#item-table")
    def header_selected(self, event: DataTable.HeaderSelected) -> None:
        sort = HEADER_SORTS.get(str(event.column_key.value))
        if sort is not None:
            self._sort_by(sort)

    def _sort_by(self, sort: ItemSort) -> None:
        self.sort = sort
        self.start_query(self.PAGE)

    # -- marks ------------------------------------------------------------------------------

    def is_marked(self, item_id: int) -> bool:
        if self.all_marked:
            held = self.mark_ids is None or item_id in self.mark_ids
            return held and item_id not in self.excluded
        return item_id in self.marked

    @property
    def marked_count(self) -> int:
        if self.all_marked:
            if self.mark_ids is not None:
                return len(self.mark_ids - self.excluded)
            return max(0, self.total - len(self.excluded))
        return len(self.marked)

    def _mark_cell(self, item_id: int) -> Text:
        return Text(MARK if self.is_marked(item_id) else "", style="bold green")

    def _redraw_marks(self) -> None:
        table = self.query_one("#item-table", DataTable)
        for item_id in self.rows:
            table.update_cell(str(item_id), "mark", self._mark_cell(item_id))
        self._show_status()

    def _clear_marks(self) -> None:
        self.marked.clear()
        self.excluded.clear()
        self.all_marked = False
        self.mark_ids = None
        self._mark_generation += 1

    def action_toggle_mark(self) -> None:
        item_id = self._cursor_id()
        if item_id is None:
            return
        # With every item marked, space excludes one (or takes it back); else it marks one.
        chosen = self.excluded if self.all_marked else self.marked
        if item_id in chosen:
            chosen.discard(item_id)
        else:
            chosen.add(item_id)
        table = self.query_one("#item-table", DataTable)
        table.update_cell(str(item_id), "mark", self._mark_cell(item_id))
        table.move_cursor(row=table.cursor_row + 1)  # space walks down, as in a mailer
        self._show_status()

    def action_mark_all(self) -> None:
        everything = self.all_marked and not self.excluded
        self._clear_marks()
        self.all_marked = not everything
        if self.all_marked:
            mine, undecided = FILTERS[self.filter]
            self.read_mark(self._mark_generation, mine, undecided)
        self._redraw_marks()

    @work(thread=True, exclusive=True, exit_on_error=False, group="items-mark")
    def read_mark(self, generation: int, mine: bool, undecided: bool) -> None:
        ids = frozenset(self._filter_ids(mine, undecided))
        self.post_message(self.MarkRead(generation, ids))

    @on(MarkRead)
    def mark_read(self, message: MarkRead) -> None:
        if message.generation == self._mark_generation and self.all_marked:
            self.mark_ids = message.item_ids
            self._redraw_marks()

    def _filter_ids(self, mine: bool, undecided: bool) -> list[int]:
        """The ids of every item of a filter, read now."""
        return self.workspace.read_as(
            lambda session, actor: [
                row.item_id
                for row in review_views.iter_items(
                    session, actor, campaign=self.campaign, mine=mine, undecided=undecided
                )
            ]
        )

    def _batch(self) -> Batch | None:
        """The marked items, or else the item under the cursor."""
        if self.all_marked:
            if self.mark_ids is None:
                return None  # still being read (action_decide says so)
            mine, undecided = FILTERS[self.filter]
            rows = [row for row in self.rows.values() if self.is_marked(row.item_id)]
            return Batch(
                None,
                self.marked_count,
                rows,
                mine=mine,
                undecided=undecided,
                excluded=frozenset(self.excluded),
                marked_ids=self.mark_ids,
            )
        if self.marked:
            ids = tuple(sorted(self.marked))
            return Batch(ids, len(ids), [self.rows[i] for i in ids if i in self.rows])
        item_id = self._cursor_id()
        if item_id is None:
            return None
        return Batch((item_id,), 1, [self.rows[item_id]])

    # -- decisions --------------------------------------------------------------------------

    def action_decide(self, decision_name: str) -> None:
        decision = ReviewDecision(decision_name)
        if self.all_marked and self.mark_ids is None:
            notify(self, "Still reading the marked items: try again in a moment.")
            return
        batch = self._batch()
        if batch is None or batch.count == 0:
            notify(self, "Nothing to decide: no item is marked or under the cursor.")
            return
        noun = "item" if batch.count == 1 else "items"
        prompt = DecisionPrompt(
            decision=decision,
            title=f"{decision.value.capitalize()} {batch.count:,} {noun} of {self.campaign}?",
            details=batch_text(batch.rows, batch.count),
        )
        self.app.push_screen(prompt, partial(self._answered, decision, batch))

    def _answered(
        self, decision: ReviewDecision, batch: Batch, answer: DecisionInput | None
    ) -> None:
        if answer is None:
            return
        if decision == ReviewDecision.REVOKE:
            # Removing access never waits for a code.
            self.run_revoke(batch, answer)
            return
        noun = "item" if batch.count == 1 else "items"
        days = f" to {answer.days} days" if answer.days is not None else ""
        prompt: TotpPrompt[Decided | Refusal] = TotpPrompt(
            title=f"{decision.value.capitalize()} {batch.count:,} {noun}{days} as "
            f"{self.actor_name}",
            summary=batch_text(batch.rows, batch.count),
            attempt=partial(self._decide, decision, batch, answer),
            lockout=partial(self.workspace.read_as, operator_views.lockout),
            action_label=decision.value.capitalize(),
        )
        self.app.push_screen(prompt, self._prompt_closed)

    def _item_ids(self, batch: Batch) -> list[int]:
        """The batch's item ids; a whole filter is read again now (in a worker) and kept to
        what the mark held: still in the filter, and in it when marked."""
        if batch.item_ids is not None:
            return list(batch.item_ids)
        return [
            item_id
            for item_id in self._filter_ids(batch.mine, batch.undecided)
            if item_id in batch.marked_ids and item_id not in batch.excluded
        ]

    def _decide(
        self, decision: ReviewDecision, batch: Batch, answer: DecisionInput, code: str | None
    ) -> Decided | Refusal:
        """Record the decision (in a worker); a refusal other than the code's is returned, so
        that it shows as one line; a rejected code raises for the prompt to ask again."""
        try:
            return self.workspace.act(
                review_decisions.decide,
                campaign=self.campaign,
                selection=ItemSelection(item_ids=self._item_ids(batch)),
                decision=decision,
                reason=answer.reason,
                days=answer.days,
                code=code,
            )
        except CodeRejected:
            raise
        except GovtuiError as exc:
            return Refusal(str(exc))

    @work(thread=True, exclusive=True, exit_on_error=False, group="items-decide")
    def run_revoke(self, batch: Batch, answer: DecisionInput) -> None:
        self.post_message(
            self.DecisionDone(self._decide(ReviewDecision.REVOKE, batch, answer, None))
        )

    def _prompt_closed(self, result: Decided | Refusal | None) -> None:
        if result is None:
            self.refresh_data()  # a refused code may have locked the reviewer out
            return
        self.post_message(self.DecisionDone(result))

    @on(DecisionDone)
    def decision_done(self, message: DecisionDone) -> None:
        result = message.result
        if isinstance(result, Refusal):
            notify(self, result.message, title="Refused", severity="error", timeout=12)
            return
        count = len(result.item_ids)
        text = f"{count:,} item{'s' if count != 1 else ''} {DONE_WORDS[result.decision]}"
        if result.changed:
            text += f" ({result.changed:,} changed their decision)"
        if result.ended:
            text += f"; {len(result.ended):,} skipped: their grant ended already"
        notify(self, text, title=f"Review {result.campaign}")
        self._clear_marks()
        self.post_message(GrantsChanged())

    # -- reassigning (an admin) -------------------------------------------------------------

    def action_reassign(self) -> None:
        batch = self._batch()
        if batch is None or batch.count == 0 or batch.item_ids is None:
            notify(self, "Mark the items to reassign (or put the cursor on one): not a filter.")
            return
        sources = {row.reviewer for row in batch.rows}
        if len(sources) != 1:
            notify(self, "Reassign the items of one reviewer at a time.")
            return
        (source,) = sources
        prompt = ReasonPrompt(
            title=f"Reassign {batch.count:,} item(s) of {source} to whom?",
            details=batch_text(batch.rows, batch.count),
            action_label="Next",
            placeholder="Operator name (a reviewer of this client, independent of each item)",
        )
        self.app.push_screen(prompt, partial(self._reassign_to, batch, source))

    def _reassign_to(self, batch: Batch, source: str, target: str | None) -> None:
        if target is None:
            return
        prompt = ReasonPrompt(
            title=f"Reassign {batch.count:,} item(s) from {source} to {target}: why?",
            details=batch_text(batch.rows, batch.count),
            action_label="Next",
        )
        self.app.push_screen(prompt, partial(self._reassign_why, batch, source, target))

    def _reassign_why(self, batch: Batch, source: str, target: str, reason: str | None) -> None:
        if reason is None:
            return
        prompt: TotpPrompt[review_reassign.Reassigned | Refusal] = TotpPrompt(
            title=f"Reassign {batch.count:,} item(s) from {source} to {target} as "
            f"{self.actor_name}",
            summary=batch_text(batch.rows, batch.count),
            attempt=partial(self._reassign, batch, source, target, reason),
            lockout=partial(self.workspace.read_as, operator_views.lockout),
            action_label="Reassign",
        )
        self.app.push_screen(prompt, self._reassigned)

    def _reassign(
        self, batch: Batch, source: str, target: str, reason: str, code: str
    ) -> review_reassign.Reassigned | Refusal:
        """Move the items (in the prompt's worker); a refusal other than the code's comes
        back as one line, a rejected code raises for the prompt to ask again."""
        try:
            return self.workspace.act(
                review_reassign.reassign,
                campaign=self.campaign,
                from_reviewer=source,
                to_reviewer=target,
                reason=reason,
                item_ids=list(batch.item_ids or ()),
                code=code,
            )
        except CodeRejected:
            raise
        except GovtuiError as exc:
            return Refusal(str(exc))

    def _reassigned(self, result: review_reassign.Reassigned | Refusal | None) -> None:
        if result is None:
            self.refresh_data()
            return
        if isinstance(result, Refusal):
            notify(self, result.message, title="Refused", severity="error", timeout=12)
            return
        text = f"{result.count:,} item(s) moved from {result.from_reviewer} to {result.to_reviewer}"
        if result.decided:
            text += f"; {len(result.decided):,} decided already stay"
        notify(self, text, title=f"Review {result.campaign}")
        self._clear_marks()
        self.reload()

    # -- leaving ----------------------------------------------------------------------------

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_close_campaign(self) -> None:
        self.app.pop_screen()
        if self.close is not None:
            self.close(self.campaign)
