"""One place opens the transaction of an operation (DESIGN: services/workspace.py): a scan of
every module on disk for calls of `db.write_session`, so a second adapter cannot creep back."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "govtui"

# Every other caller, with why it is not an operation of an acting operator.
ALLOWED = {
    "services/workspace.py": "the one entry point of every operation (CLI and TUI)",
    "migrations.py": "schema upgrades, one transaction per migration, before any operator exists",
    "services/second_factor.py": "a rejected code is counted in its own short transaction",
    "services/sync.py": "the outbox worker records what the directory confirmed, as no operator",
}


def _callers(name: str, root: Path = ROOT) -> dict[str, list[int]]:
    found: dict[str, list[int]] = {}
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Call):
                func = node.func
                called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                if called == name:
                    found.setdefault(rel, []).append(node.lineno)
    for lines in found.values():
        lines.sort()
    return found


def test_only_the_workspace_and_the_listed_owners_open_write_transactions() -> None:
    callers = _callers("write_session")
    stray = {rel: lines for rel, lines in callers.items() if rel not in ALLOWED}
    assert not stray, f"write_session called outside its owners: {stray}"
    assert set(ALLOWED) <= set(callers) | {"db.py"}, "an allowed owner no longer needs it: drop it"


def test_the_scan_sees_a_call_through_the_module_and_by_name(tmp_path: Path) -> None:
    (tmp_path / "tui").mkdir()
    (tmp_path / "tui" / "screen.py").write_text(
        "from govtui import db\nwith db.write_session(e) as s:\n    pass\nwrite_session(e)\n"
    )
    assert _callers("write_session", tmp_path) == {"tui/screen.py": [2, 4]}
