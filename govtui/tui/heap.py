"""Keeping the cyclic garbage collector off the keys' path.

A full collection walks every object alive: with Textual's widgets, styles and a 200-row
window in memory that is 0.1 s, and it falls, as often as not, inside a screen's first load
(scripts/bench_tui saw key answers wait for it). What is alive once the app or a screen is
built stays alive, so it is moved out of the collector's view: refcounting still frees it."""

from __future__ import annotations

import gc


def freeze() -> None:
    """Every object alive now out of the cyclic collector's scans (gc.freeze)."""
    gc.freeze()
