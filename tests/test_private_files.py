"""Files govtui writes (the audit checkpoint and its lock, every --out, the SQLite database):
0600 whatever the umask, atomic, and never written through a planted symlink, FIFO or folder;
a bad target is one line, exit 2, with no temporary file left behind."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from govtui import db, migrations, private_files
from govtui.cli import main
from govtui.errors import InputError
from govtui.services import audit_checkpoint


@pytest.fixture
def umask_000() -> Iterator[None]:
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_a_new_file_is_private_under_umask_000(tmp_path: Path, umask_000: None) -> None:
    target = tmp_path / "out.jsonl"
    private_files.write_private(target, "one\n")
    assert target.read_text() == "one\n" and _mode(target) == 0o600
    assert os.listdir(tmp_path) == ["out.jsonl"]


def test_an_existing_wider_file_is_replaced_by_a_private_one(tmp_path: Path) -> None:
    target = tmp_path / "out"
    target.write_text("old")
    target.chmod(0o644)
    private_files.write_private(target, "new")
    assert target.read_text() == "new" and _mode(target) == 0o600


def test_a_planted_symlink_is_refused_and_its_victim_untouched(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("keep me")
    target = tmp_path / "out"
    target.symlink_to(victim)
    with pytest.raises(InputError, match="symbolic link"):
        private_files.write_private(target, "evil")
    assert victim.read_text() == "keep me" and target.is_symlink()
    assert sorted(os.listdir(tmp_path)) == ["out", "victim"]


def test_a_planted_tmp_symlink_is_never_opened(tmp_path: Path) -> None:
    """The finding: `<out>.tmp` followed a planted link. The temporary name is random now,
    and even the old fixed name planted as a link is left alone."""
    victim = tmp_path / "victim"
    victim.write_text("keep me")
    (tmp_path / "out.tmp").symlink_to(victim)
    private_files.write_private(tmp_path / "out", "data")
    assert victim.read_text() == "keep me"
    assert (tmp_path / "out").read_text() == "data"


def test_a_folder_a_fifo_and_a_missing_folder_are_one_line_with_nothing_left(
    tmp_path: Path,
) -> None:
    (tmp_path / "dir").mkdir()
    os.mkfifo(tmp_path / "fifo")
    cases = {
        tmp_path / "dir": "it is a folder",
        tmp_path / "fifo": "not a regular file",
        tmp_path / "missing" / "out": "does not exist",
    }
    for target, why in cases.items():
        with pytest.raises(InputError, match=why) as caught:
            private_files.write_private(target, "x")
        assert "\n" not in str(caught.value)
    assert sorted(os.listdir(tmp_path)) == ["dir", "fifo"]
    assert os.listdir(tmp_path / "dir") == []


def test_an_error_while_writing_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "out"
    target.write_text("old")
    with pytest.raises(RuntimeError), private_files.private_output(target) as out:
        out.write("half")
        raise RuntimeError("interrupted")
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["out"]


def test_checkpoint_and_lock_are_0600_under_umask_000(tmp_path: Path, umask_000: None) -> None:
    path = tmp_path / "heads" / "db.audit-head"
    audit_checkpoint.write_checkpoint(path, 1, "a" * 64)
    assert _mode(path) == 0o600
    assert _mode(path.with_name(path.name + ".lock")) == 0o600
    assert _mode(path.parent) == 0o700


def test_sqlite_database_wal_and_shm_are_0600_under_umask_000(
    tmp_path: Path, umask_000: None
) -> None:
    file = tmp_path / "data" / "govtui.db"
    engine = db.make_engine(f"sqlite:///{file}")
    try:
        migrations.upgrade(engine)
        with engine.connect() as connection:  # hold it open: -wal and -shm exist meanwhile
            connection.exec_driver_sql("SELECT 1")
            names = {p.name: _mode(p) for p in file.parent.iterdir()}
    finally:
        engine.dispose()
    assert names["govtui.db"] == 0o600
    assert names["govtui.db-wal"] == 0o600 and names["govtui.db-shm"] == 0o600
    assert _mode(file.parent) == 0o700


def _seeded(db_url: str) -> None:
    assert main(["--db", db_url, "init"]) == 0
    assert main(["--db", db_url, "--as", "root", "operator", "add", "root", "--role", "admin"]) == 0


def test_audit_export_out_is_private_under_umask_000(
    sqlite_url: str, tmp_path: Path, umask_000: None, capsys: pytest.CaptureFixture[str]
) -> None:
    _seeded(sqlite_url)
    out = tmp_path / "export" / "audit.jsonl"
    out.parent.mkdir()
    assert main(["--db", sqlite_url, "--as", "root", "audit", "export", "--out", str(out)]) == 0
    assert _mode(out) == 0o600 and out.read_text().count("\n") >= 1
    assert os.listdir(out.parent) == ["audit.jsonl"]


@pytest.mark.parametrize("where", ["missing-folder", "folder", "symlink"])
def test_audit_export_out_to_a_bad_target_is_one_line_exit_2_and_leaves_no_tmp(
    sqlite_url: str, tmp_path: Path, where: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _seeded(sqlite_url)
    spot = tmp_path / "spot"
    spot.mkdir()
    victim = spot / "victim"
    victim.write_text("keep me")
    target = {
        "missing-folder": spot / "nope" / "audit.jsonl",
        "folder": spot,
        "symlink": spot / "link",
    }[where]
    if where == "symlink":
        target.symlink_to(victim)
    before = sorted(os.listdir(spot))
    capsys.readouterr()
    code = main(["--db", sqlite_url, "--as", "root", "audit", "export", "--out", str(target)])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("govtui: error: ") and err.count("\n") == 1
    assert "Traceback" not in err
    assert sorted(os.listdir(spot)) == before and victim.read_text() == "keep me"
    assert not any(p.name.endswith(".tmp") for p in tmp_path.rglob("*"))


def test_a_planted_fifo_as_export_target_does_not_hang(
    sqlite_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _seeded(sqlite_url)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    result: list[int] = []
    worker = threading.Thread(
        target=lambda: result.append(
            main(["--db", sqlite_url, "--as", "root", "audit", "export", "--out", str(fifo)])
        ),
        daemon=True,
    )
    worker.start()
    worker.join(10)
    assert result == [2]
