"""Every runtime dependency keeps a one-line reason in pyproject.toml: each direct pin has a
comment above it, and the transitive-closure block names exactly the packages the runtime lock
brings besides them (so a new transitive package cannot arrive unexplained)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from govtui import lockfile

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = ROOT / "pyproject.toml"


def _direct() -> list[str]:
    project = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]
    return [lockfile.normalise(d.split("==")[0]) for d in project["dependencies"]]


def _closure_block() -> dict[str, str]:
    text = PYPROJECT.read_text(encoding="utf-8")
    block = text.split("# transitive-closure-begin\n")[1].split("# transitive-closure-end\n")[0]
    entries = {}
    # An entry too long for one line goes on, indented two more, on the next.
    joined = block.replace("\n#     ", " ")
    for line in joined.splitlines():
        match = re.fullmatch(r"#   ([a-z0-9-]+): ([a-z0-9, -]+); (.+\.)", line)
        assert match, f"not `#   package: who brings it; what for.`: {line!r}"
        entries[match[1]] = match[2]
    return entries


def test_every_direct_dependency_has_a_reason_comment_above_it() -> None:
    lines = PYPROJECT.read_text(encoding="utf-8").splitlines()
    start = lines.index("dependencies = [")
    for i, line in enumerate(lines[start + 1 :], start + 1):
        if line == "]":
            break
        if line.strip().startswith('"'):
            assert lines[i - 1].strip().startswith("#"), f"no reason above {line.strip()}"


def test_the_closure_block_is_the_runtime_lock_minus_the_direct_pins() -> None:
    pins = lockfile.read(ROOT / "requirements.lock")
    closure = {p.name: p for p in lockfile.runtime_closure(pins)}
    direct = set(_direct())
    block = _closure_block()
    assert direct <= set(closure)
    assert set(block) == set(closure) - direct
    for name, brought_by in block.items():
        assert set(brought_by.split(", ")) == set(closure[name].via), name
    assert len(closure) == 34  # the count the README gives
