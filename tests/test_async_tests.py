"""The conftest hook that runs `async def` tests: a coroutine test is really run, with its
fixtures, and its failure is a failure (never a silent pass or a skip with a warning)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

INNER_TESTS = """
import asyncio

import pytest


@pytest.fixture
def value():
    return 41


async def test_uses_a_fixture(value, tmp_path):
    await asyncio.sleep(0)
    assert value == 41 and tmp_path.is_dir()


async def test_fails_when_run():
    await asyncio.sleep(0)
    raise AssertionError("the body ran")


def test_plain():
    pass
"""


def test_coroutine_tests_are_run_with_their_fixtures(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text("from tests.conftest import pytest_pyfunc_call\n")
    (tmp_path / "test_inner.py").write_text(INNER_TESTS)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    argv = ["-q", "-p", "no:randomly", "-p", "no:cacheprovider", "--rootdir", str(tmp_path)]
    result = subprocess.run(
        [sys.executable, "-m", "pytest", *argv, str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=120,
    )
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    assert "1 failed, 2 passed" in out, out
    assert "AssertionError: the body ran" in out, out
    assert "never awaited" not in out and "not natively supported" not in out, out
