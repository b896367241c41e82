"""The layering of DESIGN.md ("dependencies point one way") held by a test, not by convention:
every module under govtui/ is found on disk (no hand-kept list, so a new module is checked the
day it appears) and its imports are read from the AST (module level, inside functions, under
TYPE_CHECKING, relative, `import a.b` and `from a import b` alike). A subprocess then imports
every module outside the TUI and proves Textual was not loaded."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import govtui

# The rules are about the checkout's files, which the tests import (pytest puts the checkout
# first on sys.path; the installed copy is the same, as test_install_integrity.py checks).
PACKAGE_DIR = Path(__file__).resolve().parents[1] / "govtui"
assert Path(govtui.__file__ or "").resolve().parent == PACKAGE_DIR, "tests import the checkout"

CORE = (
    "govtui.services",
    "govtui.directory",
    "govtui.security",
    "govtui.db",
    "govtui.models",
    "govtui.migrations",
    "govtui.clock",
    "govtui.errors",
    "govtui.sqltypes",
)


@dataclass(frozen=True)
class Rule:
    """Modules under any of `importers` may not import anything under `forbidden`."""

    name: str
    importers: tuple[str, ...]
    forbidden: tuple[str, ...]


RULES = (
    Rule(
        "the TUI reads through the services",
        ("govtui.tui",),
        ("govtui.db", "sqlmodel", "sqlalchemy"),
    ),
    # No core module uses rich today, so none may start to: output formatting is a front end's.
    Rule("the core knows no front end", CORE, ("textual", "rich", "govtui.tui", "govtui.cli")),
    Rule("the models know no services", ("govtui.models",), ("govtui.services",)),
    Rule("the CLI is no TUI", ("govtui.cli",), ("govtui.tui", "textual")),
    Rule(
        "services sit above the lower layers",
        ("govtui.directory", "govtui.security", "govtui.db", "govtui.models"),
        ("govtui.services",),
    ),
)

# Deliberate exceptions, for good: (importer, imported). Each must stay lazy (inside a function)
# so that the importer loads nothing forbidden until it is called.
EXCEPTIONS = {
    # `govtui` with no command opens the TUI: the one place the CLI hands over to it.
    ("govtui.cli.main", "govtui.tui.app"),
}

# Violations that exist today and are being removed. This list may only shrink: the test fails
# on a violation not listed AND on a listed one that is gone. (Emptied when the TUI's screens
# came to read through services views, issue 9.)
SHRINKING: set[tuple[str, str]] = set()


@dataclass(frozen=True)
class Import:
    """One imported name. `from a import b` may name a module a.b or an attribute of a, so
    it stands for both: `candidates` is (a, a.b); a plain `import a.b` is just (a.b,)."""

    importer: str
    candidates: tuple[str, ...]
    line: int
    lazy: bool  # inside a function body

    def first_within(self, prefixes: tuple[str, ...]) -> str | None:
        return next((c for c in self.candidates if any(_within(c, p) for p in prefixes)), None)


def module_name(path: Path, root: Path = PACKAGE_DIR) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def all_modules(root: Path = PACKAGE_DIR) -> dict[str, Path]:
    """Every module of the package, by dotted name, from the files on disk."""
    return {module_name(path, root): path for path in sorted(root.rglob("*.py"))}


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def imports_of(name: str, path: Path) -> Iterator[Import]:
    """Every module `name` imports: `from a import b` yields a and a.b (b may be a module),
    relative imports are resolved, and `importlib.import_module("x")` with a literal counts."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]

    def visit(node: ast.AST, lazy: bool) -> Iterator[Import]:
        for child in ast.iter_child_nodes(node):
            inner = lazy or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
            if isinstance(child, ast.Import):
                for alias in child.names:
                    yield Import(name, (alias.name,), child.lineno, lazy)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = package.split(".")[: len(package.split(".")) - (child.level - 1)]
                    base = ".".join([*anchor, *([base] if base else [])])
                for alias in child.names:
                    yield Import(name, (base, f"{base}.{alias.name}"), child.lineno, lazy)
            elif (
                isinstance(child, ast.Call)
                and isinstance(child.func, ast.Attribute | ast.Name)
                and (child.func.attr if isinstance(child.func, ast.Attribute) else child.func.id)
                in ("import_module", "__import__")
                and child.args
                and isinstance(child.args[0], ast.Constant)
                and isinstance(child.args[0].value, str)
            ):
                yield Import(name, (child.args[0].value,), child.lineno, lazy)
            yield from visit(child, inner)

    yield from visit(tree, False)


def violations(modules: dict[str, Path]) -> dict[tuple[str, str], list[str]]:
    """(importer, imported) → the rules and lines it breaks, exceptions left out."""
    found: dict[tuple[str, str], list[str]] = {}
    for name, path in modules.items():
        for imp in imports_of(name, path):
            for rule in RULES:
                if not any(_within(name, p) for p in rule.importers):
                    continue
                imported = imp.first_within(rule.forbidden)
                if imported is None:
                    continue
                key = (name, imported)
                if key in EXCEPTIONS and imp.lazy:
                    continue
                where = f"{path.name}:{imp.line}: {rule.name}"
                if where not in found.setdefault(key, []):
                    found[key].append(where)
    return found


def _broken(
    modules: dict[str, Path],
) -> tuple[dict[tuple[str, str], list[str]], set[tuple[str, str]]]:
    found = violations(modules)
    new = {key: why for key, why in found.items() if key not in SHRINKING}
    stale = SHRINKING - set(found)
    return new, stale


def test_the_walk_finds_every_layer() -> None:
    # A walk that found nothing would make every check below pass vacuously.
    names = set(all_modules())
    for expected in ("govtui.tui.app", "govtui.services.grants", "govtui.cli.main", "govtui.db"):
        assert expected in names, sorted(names)
    assert any(n.startswith("govtui.tui.screens.") for n in names)


def test_no_module_imports_across_the_layers() -> None:
    new, stale = _broken(all_modules())
    assert not new, "imports that break the layering:\n" + "\n".join(
        f"  {importer} imports {imported} ({'; '.join(why)})"
        for (importer, imported), why in sorted(new.items())
    )
    assert not stale, f"no longer violated: remove from SHRINKING in this file: {sorted(stale)}"


def test_the_exceptions_are_still_needed_and_lazy() -> None:
    modules = all_modules()
    for importer, imported in EXCEPTIONS:
        uses = [i for i in imports_of(importer, modules[importer]) if imported in i.candidates]
        assert uses, f"{importer} no longer imports {imported}: remove it from EXCEPTIONS"
        assert all(i.lazy for i in uses), f"{importer} must import {imported} inside a function"


def test_the_check_sees_every_form_of_import(tmp_path: Path) -> None:
    """Each spelling of a forbidden import, in a scratch package, is caught."""
    root = tmp_path / "govtui"
    forms = {
        "services/a.py": "import textual\n",
        "services/b.py": "import textual.widgets as w\n",
        "services/c.py": "def f():\n    from rich.text import Text\n",
        "services/d.py": "from ..tui import app\n",
        "services/e.py": "from .. import cli\n",
        "services/f.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import textual\n",
        "services/g.py": "import importlib\nimportlib.import_module('textual.app')\n",
        "models.py": "from govtui.services import grants\n",
        "tui/screens/h.py": "from govtui import db\n",
        "tui/screens/i.py": "from ...db import read_session\n",
        "tui/j.py": "import sqlalchemy.engine\n",
        "cli/k.py": "class C:\n    def run(self):\n        import govtui.tui.app\n",
        "cli/main.py": "import govtui.tui.app\n",  # the exception, but at module level
        "directory/l.py": "from govtui.services.sync import run_once\n",
        "clock.py": "import os\n",  # clean
    }
    for relative, text in forms.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    found = {importer for importer, _ in violations(all_modules(root))}
    expected = {module_name(root / r, root) for r in forms} - {"govtui.clock"}
    assert found == expected, (sorted(expected - found), sorted(found - expected))


def _core_modules() -> list[str]:
    """Every module outside the TUI, importable on its own (`__main__` would run the CLI)."""
    return sorted(
        name
        for name in all_modules()
        if not _within(name, "govtui.tui") and name != "govtui.__main__"
    )


def _loaded_after_importing(modules: list[str], prefix: str) -> list[str]:
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        f"print(sorted(m for m in sys.modules if m == {prefix!r} or m.startswith({prefix!r} + '.')))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    loaded: list[str] = ast.literal_eval(result.stdout.strip())
    return loaded


def test_nothing_outside_the_tui_loads_textual() -> None:
    modules = _core_modules()
    assert "govtui.cli.main" in modules and "govtui.services.grants" in modules
    assert _loaded_after_importing(modules, "textual") == []


def test_the_check_would_see_textual_if_it_were_loaded() -> None:
    # The check itself works: importing the TUI app does load Textual.
    assert "textual" in _loaded_after_importing(["govtui.tui.app"], "textual")
