"""A read-only copy of the database (file 0444, or also its folder read-only) can be listed
and verified; a write is refused in one line. The commands run as root without the
capabilities that let root ignore file modes, so the modes are really enforced."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from govtui.cli import main

# Root without these capabilities is held to file modes like anyone else.
NO_OVERRIDE = ["setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner,-fsetid"]


def _govtui(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*NO_OVERRIDE, sys.executable, "-m", "govtui", "--db", url, "--as", "root", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)},
    )


@pytest.fixture
def read_only_copy(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    if shutil.which("setpriv") is None:
        pytest.skip("needs setpriv (util-linux)")
    folder = tmp_path / "copy"
    folder.mkdir()
    url = f"sqlite:///{folder / 'govtui.db'}"
    assert main(["--db", url, "init"]) == 0
    assert main(["--db", url, "--as", "root", "operator", "add", "root", "--role", "admin"]) == 0
    assert main(["--db", url, "--as", "root", "client", "add", "acme"]) == 0
    for file in folder.iterdir():
        file.chmod(0o444)
    if getattr(request, "param", "file") == "folder":
        folder.chmod(0o555)
    yield url
    folder.chmod(0o755)  # so that pytest can clean up


@pytest.mark.parametrize("read_only_copy", ["file", "folder"], indirect=True)
def test_a_read_only_database_can_be_verified_and_listed(read_only_copy: str) -> None:
    verified = _govtui(read_only_copy, "audit", "verify")
    assert verified.returncode == 0, verified.stderr
    assert "audit chain intact" in verified.stdout
    listed = _govtui(read_only_copy, "client", "list")
    assert listed.returncode == 0, listed.stderr
    assert "acme" in listed.stdout
    exported = _govtui(read_only_copy, "audit", "export")
    assert exported.returncode == 0 and exported.stdout.count("\n") == 2


@pytest.mark.parametrize("read_only_copy", ["file", "folder"], indirect=True)
def test_a_write_to_a_read_only_database_is_one_line_exit_2(read_only_copy: str) -> None:
    before = Path(read_only_copy.removeprefix("sqlite:///")).read_bytes()
    wrote = _govtui(read_only_copy, "client", "add", "beta")
    assert wrote.returncode == 2
    assert wrote.stderr.startswith("govtui: error: ") and wrote.stderr.count("\n") == 1
    assert "read-only" in wrote.stderr
    assert Path(read_only_copy.removeprefix("sqlite:///")).read_bytes() == before


@pytest.mark.parametrize("content", [b"just some text\n", b"\x00" * 200, b"SQLite format 3"])
def test_db_naming_a_file_that_is_not_sqlite_is_one_line_exit_2(
    tmp_path: Path, content: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    text = tmp_path / "notes.txt"
    text.write_bytes(content)
    for args in (["client", "list"], ["audit", "verify"], ["init"], ["client", "add", "x"]):
        code = main(["--db", f"sqlite:///{text}", "--as", "root", *args])
        err = capsys.readouterr().err
        assert code == 2, args
        assert err.startswith("govtui: error: ") and err.count("\n") == 1
        assert "not a SQLite database" in err
    assert text.read_bytes() == content


@pytest.mark.parametrize("kind", ["folder", "fifo"])
def test_db_naming_a_folder_or_fifo_is_one_line_exit_2(
    tmp_path: Path, kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    spot = tmp_path / "spot"
    if kind == "folder":
        spot.mkdir()
    else:
        os.mkfifo(spot)
    assert main(["--db", f"sqlite:///{spot}", "--as", "root", "client", "list"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("govtui: error: ") and err.count("\n") == 1


def test_db_in_a_folder_that_cannot_be_made_is_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert main(["--db", f"sqlite:///{blocker / 'sub' / 'gov.db'}", "init"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("govtui: error: cannot create the database") and err.count("\n") == 1
