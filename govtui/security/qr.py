"""A QR code drawn with Unicode half blocks, for the terminal and the TUI alike."""

from __future__ import annotations

import segno

_BLOCKS = {(False, False): " ", (True, False): "▀", (False, True): "▄", (True, True): "█"}


def qr_text(data: str, *, border: int = 2) -> str:
    """The QR code of `data` as lines of text, two modules per character cell.

    Dark modules are drawn as blank and light ones as blocks, so it scans on a dark terminal."""
    rows = [list(row) for row in segno.make(data, error="m").matrix_iter(border=border)]
    if len(rows) % 2:
        rows.append([False] * len(rows[0]))
    lines = []
    for upper, lower in zip(rows[0::2], rows[1::2], strict=True):
        lines.append("".join(_BLOCKS[(not a, not b)] for a, b in zip(upper, lower, strict=True)))
    return "\n".join(lines)
