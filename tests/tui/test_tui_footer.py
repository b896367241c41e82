"""The one-widget footer: the screen's keys on one line, "? more keys" last when they do not
fit, the palette's key on the right when they do, and a click on a key presses it."""

from __future__ import annotations

from govtui.tui.footer import MORE_KEYS, FooterKey, GovtuiFooter, fit, key_width
from govtui.tui.screens.browser import BrowserScreen
from tests.factories import World
from tests.tui.tui_support import running, wait_until


def _keys(*names: str) -> list[FooterKey]:
    return [FooterKey(n, n, f"do {n}", True) for n in names]


def test_every_key_fits_or_the_last_says_there_are_more() -> None:
    keys = _keys("a", "b", "c")
    palette = FooterKey("ctrl+p", "^p", "palette", True)
    room = sum(key_width(k) for k in [*keys, palette])
    assert fit(keys, palette, room) == [*keys, palette]
    shown = fit(keys, palette, room - 1)  # one cell short: the palette goes, "?" comes
    assert shown[-1].description == MORE_KEYS
    assert sum(key_width(k) for k in shown) <= room - 1
    assert fit(keys, None, key_width(FooterKey("?", "?", MORE_KEYS, True)))[0].description == (
        MORE_KEYS
    )


async def test_the_footer_draws_one_line_and_a_click_presses_its_key(world: World) -> None:
    async with running(world.engine, "ann", size=(80, 24)) as (app, pilot):
        footer = app.screen.query_one(GovtuiFooter)
        drawn = footer.render().plain
        assert len(drawn) <= 80 and drawn.rstrip().endswith(f"? {MORE_KEYS}")
        start = drawn.index(" b Browse ")
        await pilot.click(GovtuiFooter, offset=(start + 2, 0))
        await wait_until(
            pilot, lambda: isinstance(app.screen, BrowserScreen), what="the browser after a click"
        )
