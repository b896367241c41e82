"""govtui.text.one_line: every character class a hostile server could use to take over the
terminal is shown as a visible escape, the result is one line, and it is cut to its limit."""

from __future__ import annotations

import pytest

from govtui.text import one_line


@pytest.mark.parametrize(
    ("char", "shown"),
    [
        ("\x1b", "\\x1b"),  # ESC: every ANSI/OSC sequence starts with it
        ("\x07", "\\x07"),  # BEL ends an OSC (set the window title)
        ("\x00", "\\x00"),
        ("\r", "\\x0d"),  # a carriage return overwrites the start of the line
        ("\n", "\\x0a"),
        ("\t", "\\x09"),
        ("\x7f", "\\x7f"),  # DEL
        ("\x9b", "\\x9b"),  # CSI, the one-byte C1 form of ESC [
        ("\x85", "\\x85"),  # NEL (C1)
        ("\x9f", "\\x9f"),
        ("\u202a", "\\u202a"),
        ("\u202e", "\\u202e"),  # right-to-left override: reorders what follows
        ("\u2066", "\\u2066"),
        ("\u2069", "\\u2069"),
        ("\u200e", "\\u200e"),
        ("\u200f", "\\u200f"),
        ("\u061c", "\\u061c"),
        ("\u2028", "\\u2028"),  # line separator
        ("\u2029", "\\u2029"),  # paragraph separator
    ],
)
def test_each_control_class_is_escaped(char: str, shown: str) -> None:
    assert one_line(f"a{char}b") == f"a{shown}b"


def test_printable_text_is_kept_as_it_is() -> None:
    text = "cn=Zoë Ünal,ou=people,dc=x — ok: ✓ 100 % ¡olé!"
    assert one_line(text) == text


def test_the_fake_servers_escape_codes_come_out_visible_on_one_line() -> None:
    shown = one_line("dn:\x1b]0;PWNED\x07\x1b[2J\x1b[31mFAKE\nsecond line")
    assert shown == "dn:\\x1b]0;PWNED\\x07\\x1b[2J\\x1b[31mFAKE\\x0asecond line"
    assert "\x1b" not in shown and "\n" not in shown


def test_a_megabyte_is_cut_to_the_limit_with_an_ellipsis() -> None:
    shown = one_line("\x1b[2J" + "A" * 1_000_000)
    assert len(shown) == 300 and shown.endswith("…") and "\x1b" not in shown
    assert len(one_line("B" * 1_000, 50)) == 50


def test_exactly_the_limit_is_not_cut_and_an_escape_is_never_split() -> None:
    assert one_line("x" * 300) == "x" * 300
    assert one_line("ab\x1b", 5) == "ab…"  # "\x1b" shown would need 4 more: cut before it
    assert one_line("ab\x1b", 6) == "ab\\x1b"


def test_any_object_and_idempotent() -> None:
    assert one_line(ValueError("bad\x1bvalue")) == "bad\\x1bvalue"
    once = one_line("a\x1b\u202eb")
    assert one_line(once) == once


def test_escaped_keeps_the_whole_value_and_hostile_char_finds_the_first() -> None:
    from govtui.text import escaped, hostile_char

    value = "a\x1b[2J" + "b" * 1000 + "\u202e"
    assert escaped(value) == "a\\x1b[2J" + "b" * 1000 + "\\u202e"
    assert escaped("plain [/b] text") == "plain [/b] text"
    assert hostile_char(value) == "\x1b" and hostile_char("é😀 ok") is None


def test_cut_quoted_shortens_only_long_quoted_values() -> None:
    from govtui.text import cut_quoted

    message = "unknown operator '" + "x" * 5000 + "' (see 'govtui operator list')"
    cut = cut_quoted(message)
    assert len(cut) < 150 and cut.endswith("…' (see 'govtui operator list')")
    assert cut_quoted("invalid 'short' value") == "invalid 'short' value"
