"""The services, the database layer and the CLI never load Textual (DESIGN: dependencies point
one way; only `govtui.tui` may import it)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

MODULES = [
    "govtui.services.dashboard",
    "govtui.services.contractors",
    "govtui.services.catalog",
    "govtui.services.audit",
    "govtui.db",
    "govtui.cli.main",
    # Packages that may not exist yet in every checkout are checked when they do.
    *(name for name in ("govtui.security", "govtui.directory") if importlib.util.find_spec(name)),
]


def test_services_db_and_cli_do_not_import_textual() -> None:
    code = (
        f"import {', '.join(MODULES)}; import sys; "
        "loaded = sorted(m for m in sys.modules if m == 'textual' or m.startswith('textual.')); "
        "assert not loaded, loaded"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_the_check_would_see_textual_if_it_were_loaded() -> None:
    # The check itself works: importing the TUI app does load Textual.
    code = "import govtui.tui.app, sys; assert 'textual' in sys.modules"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
