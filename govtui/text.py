"""Text from outside (a directory server's diagnostics, DNs it returns) made safe to print.

A hostile or broken server can put escape codes in what it says: set the terminal's title,
clear the screen, fake a green "all checks passed", reorder a line with bidi controls, or send
a megabyte. Every such text goes through `one_line` before it becomes a message. This module
is the lowest layer: it imports nothing from govtui, so anything may use it."""

from __future__ import annotations

import re

LIMIT = 300
ELLIPSIS = "…"

# Unicode bidi controls: embeddings/overrides, isolates, marks; they reorder what is shown.
_BIDI = frozenset(
    [chr(c) for c in range(0x202A, 0x202F)]
    + [chr(c) for c in range(0x2066, 0x206A)]
    + ["\u200e", "\u200f", "\u061c"]
)
# Line and paragraph separators that end a line on screen though they are not C0/C1.
_BREAKS = frozenset(["\u2028", "\u2029", "\x85"])
# Every character _escaped changes, as one class: a table cell is checked in C, not per char.
_HOSTILE = re.compile("[\x00-\x1f\x7f-\x9f" + "".join(sorted(_BIDI | _BREAKS - {"\x85"})) + "]")


def _escaped(char: str) -> str:
    code = ord(char)
    if code < 0x20 or code == 0x7F or 0x80 <= code < 0xA0:  # C0, DEL, C1 (incl. CSI 0x9b)
        return f"\\x{code:02x}"
    if char in _BIDI or char in _BREAKS:
        return f"\\u{code:04x}"
    return char


def hostile_char(value: str) -> str | None:
    """The first character of `value` that would act on a terminal or reorder the text (C0,
    DEL, C1, bidi controls, line separators), or None when there is none."""
    found = _HOSTILE.search(value)
    return found.group() if found else None


def escaped(value: object) -> str:
    """`value` whole, with every control, bidi and line-break character shown as a visible
    escape: for data printed in full (table cells), where cutting would hide part of it."""
    text = str(value)
    if hostile_char(text) is None:
        return text  # the common case, walked once
    return "".join(_escaped(char) for char in text)


def quoted(value: object, limit: int = 80) -> str:
    """A value echoed in a message: escaped, cut to `limit` characters, in quotes (a megabyte
    typed or imported is not repeated whole)."""
    return f"'{one_line(value, limit)}'"


# A value quoted in a message ('…' or "…", as repr writes it) longer than a value need be shown.
_LONG_QUOTED = re.compile(r"'([^'\n]{81,})'|\"([^\"\n]{81,})\"")


def cut_quoted(message: str) -> str:
    """`message` with every quoted value longer than 80 characters cut (see `quoted`): a
    service's "unknown contractor '…'" never repeats 4 KB typed on the command line."""
    return _LONG_QUOTED.sub(lambda m: quoted(m.group(1) or m.group(2)), message)


def one_line(value: object, limit: int = LIMIT) -> str:
    """`value` as one printable line of at most `limit` characters: control characters, bidi
    controls and line breaks shown as visible escapes (`\\x1b`, `\\u202e`), cut with "…"."""
    whole = str(value)
    if len(whole) <= limit and _HOSTILE.search(whole) is None:
        return whole  # the common case: nothing to escape or cut
    # Cut before escaping too: a megabyte is not walked character by character.
    text = whole[: limit + 1]
    out: list[str] = []
    size = 0
    for char in text:
        piece = _escaped(char)
        if size + len(piece) > limit:
            break
        out.append(piece)
        size += len(piece)
    else:
        if len(whole) == len(text):
            return "".join(out)
    # Cut: make room for the ellipsis (an escape is never split in two).
    while out and size + len(ELLIPSIS) > limit:
        size -= len(out.pop())
    return "".join(out) + ELLIPSIS
